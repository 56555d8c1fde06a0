// Package demo runs a whole multi-region Meridian cluster in one process:
// one node per region (or more), on an emulated world network, each node
// serving RESP on its own port. It is what `meridian demo` runs.
//
// The demo is secure, as a real cluster is (security.go): a CA and
// certificates made in its data directory, mutual TLS between its nodes,
// TLS for RESP and HTTP, and an admin user with a random password, which
// it prints with the commands to connect. Options.Insecure runs it in
// plaintext without authentication instead.
package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/resp"
	"github.com/meridian-db/meridian/transport"
)

// Options configures a demo cluster.
type Options struct {
	// Regions of the cluster. Default us-east, eu-west, ap-southeast.
	Regions []string
	// NodesPerRegion. Default 1.
	NodesPerRegion int
	// Latency is "none", "world" (the built-in matrix) or a path to a
	// matrix file in the world-rtt.json format.
	Latency string
	// DataDir holds the nodes' data; empty means a temporary directory
	// removed when the demo stops.
	DataDir string
	// BasePort is the first RESP port (one per node, counting up); the
	// HTTP ports start at BasePort+1000. 0 picks free ports.
	BasePort int
	// Logger for the nodes. Nil discards.
	Logger *slog.Logger
	// Insecure runs the demo without certificates or users: plaintext,
	// no authentication (on loopback addresses only).
	Insecure bool
}

// Run starts the cluster, prints how to connect, and serves until ctx ends.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"us-east", "eu-west", "ap-southeast"}
	}
	if opts.NodesPerRegion <= 0 {
		opts.NodesPerRegion = 1
	}
	if opts.Latency == "" {
		opts.Latency = "world"
	}
	matrix, err := netsim.MatrixFor(opts.Latency)
	if err != nil {
		return err
	}
	for _, r := range opts.Regions {
		if matrix == nil {
			break
		}
		for _, r2 := range opts.Regions {
			if _, ok := matrix.RTT(r, r2); !ok {
				return fmt.Errorf("demo: the latency matrix has no round trip between %s and %s (it knows %v)", r, r2, matrix.Regions())
			}
		}
	}
	netw, err := netsim.New(netsim.Config{Matrix: matrix})
	if err != nil {
		return err
	}
	defer netw.Close()
	dir := opts.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "meridian-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	type member struct {
		peer            transport.Peer
		ln, respLn, hLn net.Listener
	}
	var members []member
	var peers []transport.Peer
	id := uint64(1)
	listen := func(port int) (net.Listener, error) {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil, fmt.Errorf("demo: %w (choose other ports with --base-port, or 0 for free ones)", err)
		}
		return ln, nil
	}
	port := func(base, i int) int {
		if base <= 0 {
			return 0
		}
		return base + i
	}
	for _, r := range opts.Regions {
		for range opts.NodesPerRegion {
			i := len(members)
			ln, err := listen(0)
			if err != nil {
				return err
			}
			respLn, err := listen(port(opts.BasePort, i))
			if err != nil {
				return err
			}
			httpBase := 0 // free ports when the RESP ones are
			if opts.BasePort > 0 {
				httpBase = opts.BasePort + 1000
			}
			hLn, err := listen(port(httpBase, i))
			if err != nil {
				return err
			}
			p := transport.Peer{ID: id, Region: r, Addr: ln.Addr().String()}
			members = append(members, member{peer: p, ln: ln, respLn: respLn, hLn: hLn})
			peers = append(peers, p)
			netw.AddNode(id, r)
			id++
		}
	}
	var sec *security
	if !opts.Insecure {
		if sec, err = newSecurity(dir, peers, opts.Logger); err != nil {
			return err
		}
	}
	nodes := make([]*node.Node, len(members))
	errs := make(chan error, len(members))
	for i, m := range members {
		go func() {
			n, err := node.Start(node.Config{
				ID: m.peer.ID, Region: m.peer.Region, DataDir: filepath.Join(dir, fmt.Sprintf("node%d", m.peer.ID)),
				Listener: m.ln, ListenAddr: m.peer.Addr, Peers: peers, Net: netw, Logger: opts.Logger,
				RESPAddr: m.respLn.Addr().String(), HTTPAddr: m.hLn.Addr().String(),
				Certs: sec.certsOf(m.peer.ID), RequireAuth: sec != nil,
			})
			nodes[i] = n
			errs <- err
		}()
	}
	var startErr error
	for range members {
		if err := <-errs; err != nil && startErr == nil {
			startErr = err
		}
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
	}()
	if startErr != nil {
		return startErr
	}
	fmt.Fprintf(out, "Meridian demo: %d regions x %d node(s), latency %s, data in %s\n", len(opts.Regions), opts.NodesPerRegion, opts.Latency, dir)
	// Wait until every node is ready (joined, caught up with the
	// metadata), then create the keyspaces.
	setup, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitReady(setup); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if nodes[0].Metadata().Keyspaces["default"] == nil {
		spec := metadata.KeyspaceSpec{Name: "default", Strategy: metadata.Sync, HomeRegion: opts.Regions[0]}
		if len(opts.Regions) < 3 {
			spec.Replicas = len(opts.Regions)
		}
		if _, err := nodes[0].CreateKeyspace(setup, spec); err != nil {
			return err
		}
	}
	// An async keyspace too: the primary in the first region, streams to
	// the others, eventual reads served in every region.
	if nodes[0].Metadata().Keyspaces["async"] == nil {
		spec := metadata.KeyspaceSpec{Name: "async", Strategy: metadata.Async, HomeRegion: opts.Regions[0]}
		if _, err := nodes[0].CreateKeyspace(setup, spec); err != nil {
			return err
		}
	}
	// And an active one: every region writes, conflicts are merged.
	if nodes[0].Metadata().Keyspaces["active"] == nil {
		spec := metadata.KeyspaceSpec{Name: "active", Strategy: metadata.Active, HomeRegion: opts.Regions[0]}
		if _, err := nodes[0].CreateKeyspace(setup, spec); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		for _, ks := range []string{"default", "async", "active"} {
			if err := n.WaitKeyspaceReady(setup, ks); err != nil {
				return err
			}
		}
	}
	if sec != nil {
		if err := sec.adminUser(setup, nodes[0]); err != nil {
			return err
		}
	}
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	if sec != nil {
		sec.printHeader(out)
	}
	for i, n := range nodes {
		reg := metrics.ForNode(n)
		certs := sec.certsOf(n.ID())
		rs := resp.Serve(members[i].respLn, n, resp.Config{DefaultKeyspace: "default", Metrics: reg, Certs: certs})
		so := httpapi.ServeOptions{}
		if certs != nil {
			so.TLS = certs.ClientsConfig(n.Cluster(), []string{"http/1.1"})
		}
		hs := httpapi.ServeWith(members[i].hLn, httpapi.New(n, httpapi.Config{Metrics: reg, Certs: certs}), so)
		closers = append(closers, rs.Close, hs.Close)
		_, rport, _ := net.SplitHostPort(rs.Addr())
		if sec == nil {
			fmt.Fprintf(out, "  %-14s node %d  redis-cli -p %-5s  http://%s\n", n.Region(), n.ID(), rport, members[i].hLn.Addr())
		} else {
			fmt.Fprintf(out, "  %-14s node %d  %s -p %-5s  https://%s\n", n.Region(), n.ID(), sec.redisCLI(), rport, members[i].hLn.Addr())
		}
	}
	if sec != nil {
		sec.printFooter(out)
	}
	fmt.Fprintf(out, "Keyspaces 'default' (sync, home %s), 'async' (primary %s) and 'active' (every region writes) are ready. Try: SET greeting hello in one region, GET greeting in another, then MERIDIAN.LAST.\nPress Ctrl-C to stop.\n", opts.Regions[0], opts.Regions[0])
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}
