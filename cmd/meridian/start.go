package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/config"
	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/resp"
	"github.com/meridian-db/meridian/transport"
)

// startFlags are start's flags; a flag given on the command line
// overrides the configuration file's key named beside it.
type startFlags struct {
	config       string
	id           uint64        // node.id
	region       string        // node.region
	zone         string        // node.zone
	dataDir      string        // node.data_dir
	listen       string        // addresses.listen
	advertise    string        // addresses.advertise
	respAddr     string        // addresses.resp
	httpAddr     string        // addresses.http
	peers        string        // peers
	join         string        // join
	cluster      string        // cluster
	latency      string        // latency
	clockOff     time.Duration // (flag only)
	quiesceAfter time.Duration // raft.quiesce_after
	logLevel     string        // node.log_level
	placement    time.Duration // timings.placement_wait
	backupKey    string        // not in the file: a path to a secret
	certsDir     string        // security.certs_dir
	insecure     bool          // security.insecure
}

func startCmd() *cobra.Command {
	var f startFlags
	def := config.Default()
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Run one node of a cluster",
		Long: `Run one node of a Meridian cluster.

A new cluster starts from a list of initial members, the same on every one:
  meridian start --id 1 --region us-east --data-dir d1 --listen 127.0.0.1:7401 \
    --resp 127.0.0.1:6401 --http 127.0.0.1:8401 \
    --peers 1=us-east@127.0.0.1:7401,2=eu-west@127.0.0.1:7402,3=ap-southeast@127.0.0.1:7403
A node added later asks any member to admit it:
  meridian start --id 4 --region us-west ... --join 127.0.0.1:8401
Restart a node with the same command line; its data directory remembers the rest.

Every setting, timings, limits, cache and raft and stream windows included,
can come from a configuration file (YAML or TOML; "meridian config example"
prints one with every key explained); flags given on the command line
override the file:
  meridian start --config node1.yaml --log-level debug

Every cluster has a name (--cluster, default "meridian") and an id derived
from the name and the initial members; nodes refuse requests, streams and
session tokens of another cluster, and a data directory of another cluster.
The tick and minimum heartbeat are recorded when the cluster forms: a node
whose own differ is refused at join and at start.

A node is secured by its certificates (--certs-dir, made by "meridian cert"):
mutual TLS between nodes, TLS for RESP and HTTP, every client authenticated
(users: "meridian user", the root user's client certificate to begin with).
Without certificates it speaks plaintext, asks no credentials, and listens
only on loopback addresses unless --insecure is given. Certificates are
reloaded on SIGHUP and when their files change. See SECURITY.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := f.apply(cmd.Flags().Changed)
			if err != nil {
				return err
			}
			// The backup key: from its file, else the environment (never
			// from the configuration file, which is not a secret's place).
			var key []byte
			if f.backupKey != "" {
				key, err = backup.KeyFromFile(f.backupKey)
			} else {
				key, err = backup.KeyFromEnv("MERIDIAN_BACKUP_KEY")
			}
			if err != nil {
				return err
			}
			return runStart(cmd.Context(), file, key, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file, YAML (.yaml, .yml) or TOML (.toml); flags override it")
	fl.Uint64Var(&f.id, "id", 0, "node id, unique in the cluster (required)")
	fl.StringVar(&f.region, "region", "", "region of this node (required)")
	fl.StringVar(&f.zone, "zone", "", "zone of this node inside its region")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory, created with mode 0700 (required)")
	fl.StringVar(&f.listen, "listen", def.Addresses.Listen, "node-to-node listen address")
	fl.StringVar(&f.advertise, "advertise", "", "node-to-node address other nodes use (default: --listen)")
	fl.StringVar(&f.respAddr, "resp", def.Addresses.RESP, "Redis protocol listen address")
	fl.StringVar(&f.httpAddr, "http", def.Addresses.HTTP, "HTTP API listen address")
	fl.StringVar(&f.peers, "peers", "", "initial members: ID=REGION@HOST:PORT,... (this node included)")
	fl.StringVar(&f.join, "join", "", "HTTP address of a member of a running cluster to join")
	fl.StringVar(&f.cluster, "cluster", node.DefaultCluster, "cluster name, the same on every node; with --join, taken from the cluster joined")
	fl.StringVar(&f.latency, "latency", "", "emulated latency for local multi-region runs: world, a matrix file (every process must use the same), or zero (no delay); an emulated network can be changed at run time through POST /debug/netsim")
	fl.DurationVar(&f.clockOff, "clock-offset", 0, "emulation only, with --latency: run this node's clock this far ahead (or behind, if negative) of the machine's, to test clock skew between regions")
	fl.DurationVar(&f.quiesceAfter, "quiesce-after", def.Raft.QuiesceAfter, "idle raft groups stop ticking and heartbeating after this long (raft.quiesce_after); 0: never")
	fl.StringVar(&f.logLevel, "log-level", def.Node.LogLevel, "debug, info, warn or error")
	fl.DurationVar(&f.placement, "placement-wait", def.Timings.PlacementWait, "default wait of a keyspace change for a live node in every region it needs (requests may ask for another)")
	fl.StringVar(&f.backupKey, "backup-key-file", "", "key that encrypts the backups this node writes (32 bytes: 64 hex digits or base64; default $MERIDIAN_BACKUP_KEY); S3 credentials come from $MERIDIAN_S3_ENDPOINT, $MERIDIAN_S3_ACCESS_KEY, $MERIDIAN_S3_SECRET_KEY")
	fl.StringVar(&f.certsDir, "certs-dir", "", "the node's certificates (ca.crt, node.crt, node.key): mutual TLS between nodes, TLS and authentication for clients")
	fl.BoolVar(&f.insecure, "insecure", false, "without certificates, listen on addresses other than loopback anyway: plaintext, no authentication (trusted networks only)")
	return cmd
}

// apply reads the configuration file, if any, over the defaults and puts
// the flags given on the command line (changed reports which) over it.
func (f startFlags) apply(changed func(string) bool) (config.File, error) {
	file := config.Default()
	if changed("peers") && changed("join") {
		return file, errors.New("give --peers or --join, not both")
	}
	if f.config != "" {
		var err error
		if file, err = config.Load(f.config); err != nil {
			return file, err
		}
	}
	set := func(flag string, apply func()) {
		if changed(flag) {
			apply()
		}
	}
	set("id", func() { file.Node.ID = f.id })
	set("region", func() { file.Node.Region = f.region })
	set("zone", func() { file.Node.Zone = f.zone })
	set("data-dir", func() { file.Node.DataDir = f.dataDir })
	set("listen", func() { file.Addresses.Listen = f.listen })
	set("advertise", func() { file.Addresses.Advertise = f.advertise })
	set("resp", func() { file.Addresses.RESP = f.respAddr })
	set("http", func() { file.Addresses.HTTP = f.httpAddr })
	set("join", func() { file.Join, file.Peers = f.join, nil })
	set("cluster", func() { file.Cluster = f.cluster })
	set("latency", func() { file.Latency = f.latency })
	set("clock-offset", func() { file.ClockOffset = f.clockOff })
	set("quiesce-after", func() { file.Raft.QuiesceAfter = f.quiesceAfter })
	set("log-level", func() { file.Node.LogLevel = f.logLevel })
	set("placement-wait", func() { file.Timings.PlacementWait = f.placement })
	set("certs-dir", func() { file.Security.CertsDir = f.certsDir })
	set("insecure", func() { file.Security.Insecure = f.insecure })
	if changed("peers") {
		peers, err := parsePeers(f.peers)
		if err != nil {
			return file, err
		}
		file.Peers, file.Join = nil, ""
		for _, p := range peers {
			file.Peers = append(file.Peers, config.Peer{ID: p.ID, Region: p.Region, Addr: p.Addr})
		}
	}
	return file, nil
}

// parsePeers parses ID=REGION@HOST:PORT,...
func parsePeers(s string) ([]transport.Peer, error) {
	var out []transport.Peer
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		idStr, rest, ok1 := strings.Cut(item, "=")
		region, addr, ok2 := strings.Cut(rest, "@")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok1 || !ok2 || err != nil || id == 0 || region == "" || addr == "" {
			return nil, fmt.Errorf("bad peer %q: want ID=REGION@HOST:PORT", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("bad peer %q: %w", item, err)
		}
		for _, p := range out {
			if p.ID == id {
				return nil, fmt.Errorf("peer id %d listed twice", id)
			}
		}
		out = append(out, transport.Peer{ID: id, Region: region, Addr: addr})
	}
	return out, nil
}

func runStart(ctx context.Context, f config.File, backupKey []byte, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx) // ends what runs beside the node (certificate reloads)
	defer cancel()
	// Step 1: check the configuration before touching anything.
	if err := f.Validate(); err != nil {
		return err
	}
	level, err := config.ParseLogLevel(f.Node.LogLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	nc := f.NodeConfig() // ListenAddr is the advertised address
	nc.BackupKey = backupKey
	latency := f.Latency
	if latency == "" {
		latency = "none"
	}
	if f.ClockOffset != 0 {
		if latency == "none" {
			return fmt.Errorf("--clock-offset %v: only for emulated networks (give --latency world, zero or a matrix file)", f.ClockOffset)
		}
		nc.ClockOffset = f.ClockOffset
		logger.Warn("this node's clock is moved on purpose (emulation of clock skew)", "clock_offset", f.ClockOffset)
	}
	matrix, err := netsim.MatrixFor(latency)
	if err != nil {
		return err
	}
	// Step 1b: security (security.go): certificates, or plaintext where
	// that is allowed.
	certs, err := openSecurity(ctx, f, logger)
	if err != nil {
		return err
	}
	// Step 2: open the client listeners first, so the node can advertise them.
	raftLn, err := net.Listen("tcp", f.Addresses.Listen)
	if err != nil {
		return fmt.Errorf("node-to-node listener: %w", err)
	}
	respLn, err := net.Listen("tcp", f.Addresses.RESP)
	if err != nil {
		return fmt.Errorf("RESP listener: %w", err)
	}
	httpLn, err := net.Listen("tcp", f.Addresses.HTTP)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	// Step 3: the initial members, or admission through a member, which
	// also checks that this node's lease-critical timings are the
	// cluster's.
	self := transport.Peer{ID: nc.ID, Region: nc.Region, Addr: nc.ListenAddr}
	if f.Join != "" {
		nc.Join = true
		timings := nc.Timings()
		req := httpapi.JoinRequest{NodeInfo: metadata.NodeInfo{ID: nc.ID, Region: nc.Region, Zone: nc.Zone, Addr: nc.ListenAddr,
			RESPAddr: respLn.Addr().String(), HTTPAddr: httpLn.Addr().String()}, Timings: &timings}
		ans, err := requestJoin(ctx, f.Join, req, certs)
		if err != nil {
			return err
		}
		if f.Cluster != "" && f.Cluster != ans.Cluster {
			return fmt.Errorf("--cluster %s, but the member at %s belongs to cluster %q", f.Cluster, f.Join, ans.Cluster)
		}
		if ans.Timings != nil {
			if err := timings.Check(*ans.Timings); err != nil {
				return fmt.Errorf("join through %s: %w", f.Join, err)
			}
		}
		nc.Peers, nc.Cluster, nc.ClusterID = ans.TransportPeers(), ans.Cluster, ans.ClusterID
	}
	// Step 4: the emulated network, if any: this process delays what it sends.
	if matrix != nil {
		if nc.Net, err = netsim.New(netsim.Config{Matrix: matrix}); err != nil {
			return err
		}
		defer nc.Net.Close()
		for _, p := range append(nc.Peers, self) {
			nc.Net.AddNode(p.ID, p.Region)
		}
	}
	// Step 5: the node.
	nc.Listener, nc.Logger = raftLn, logger
	nc.RESPAddr, nc.HTTPAddr = respLn.Addr().String(), httpLn.Addr().String()
	nc.Certs, nc.RequireAuth = certs, certs != nil
	n, err := node.Start(nc)
	if err != nil {
		return err
	}
	defer n.Close()
	// Step 6: the front ends, sharing one metrics registry.
	reg := metrics.ForNode(n)
	rc := f.RESPConfig()
	rc.Metrics, rc.Certs = reg, certs
	rs := resp.Serve(respLn, n, rc)
	defer rs.Close()
	hc := f.HTTPConfig()
	hc.Metrics, hc.Certs = reg, certs
	so := httpapi.ServeOptions{MaxConns: f.HTTP.MaxConns}
	if certs != nil {
		so.TLS = certs.ClientsConfig(n.Cluster(), []string{"http/1.1"})
	}
	hs := httpapi.ServeWith(httpLn, httpapi.New(n, hc), so)
	defer hs.Close()
	fmt.Fprintf(out, "meridian node %d (%s) running: resp %s, http %s, peers %s\n", nc.ID, nc.Region, respLn.Addr(), httpLn.Addr(), raftLn.Addr())
	// Step 7: run until told to stop, or until storage fails.
	sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-sig.Done():
		fmt.Fprintln(out, "stopping")
		return nil
	case err := <-n.Fatal():
		return fmt.Errorf("node stopped: %w", err)
	}
}

// requestJoin asks a member to admit this node and returns its answer:
// the cluster's peers, name and id.
func requestJoin(ctx context.Context, member string, join httpapi.JoinRequest, certs *pki.Store) (httpapi.JoinResponse, error) {
	body, _ := json.Marshal(join)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out httpapi.JoinResponse
	base, client := baseURL(member), http.DefaultClient
	if certs != nil {
		// The node's certificate is its credential: it may ask to admit
		// itself, nothing more.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = certs.NodeClientConfig()
		client = &http.Client{Transport: tr}
		base = strings.Replace(base, "http://", "https://", 1)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/cluster/nodes", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return out, fmt.Errorf("join through %s: %w", member, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("join through %s: %s: %s", member, resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("join through %s: bad answer: %w", member, err)
	}
	if out.Cluster == "" || out.ClusterID == "" {
		return out, fmt.Errorf("join through %s: the answer names no cluster (a member of an older version?)", member)
	}
	return out, nil
}

func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
