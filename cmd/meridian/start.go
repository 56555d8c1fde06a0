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

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/resp"
	"github.com/meridian-db/meridian/transport"
)

type startFlags struct {
	id        uint64
	region    string
	zone      string
	dataDir   string
	listen    string
	advertise string
	respAddr  string
	httpAddr  string
	peers     string
	join      string
	cluster   string
	latency   string
	logLevel  string
	placement time.Duration
}

func startCmd() *cobra.Command {
	var f startFlags
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

Every cluster has a name (--cluster, default "meridian") and an id derived
from the name and the initial members; nodes refuse requests, streams and
session tokens of another cluster, and a data directory of another cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.join != "" && !cmd.Flags().Changed("cluster") {
				f.cluster = "" // learnt from the join answer
			}
			return runStart(cmd.Context(), f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&f.id, "id", 0, "node id, unique in the cluster (required)")
	fl.StringVar(&f.region, "region", "", "region of this node (required)")
	fl.StringVar(&f.zone, "zone", "", "zone of this node inside its region")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory, created with mode 0700 (required)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7400", "node-to-node listen address")
	fl.StringVar(&f.advertise, "advertise", "", "node-to-node address other nodes use (default: --listen)")
	fl.StringVar(&f.respAddr, "resp", "127.0.0.1:6379", "Redis protocol listen address")
	fl.StringVar(&f.httpAddr, "http", "127.0.0.1:8080", "HTTP API listen address")
	fl.StringVar(&f.peers, "peers", "", "initial members: ID=REGION@HOST:PORT,... (this node included)")
	fl.StringVar(&f.join, "join", "", "HTTP address of a member of a running cluster to join")
	fl.StringVar(&f.cluster, "cluster", "meridian", "cluster name, the same on every node; with --join, taken from the cluster joined")
	fl.StringVar(&f.latency, "latency", "", "emulated latency for local multi-region runs: world, a matrix file (every process must use the same), or zero (no delay); an emulated network can be changed at run time through POST /debug/netsim")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.DurationVar(&f.placement, "placement-wait", 30*time.Second, "default wait of a keyspace change for a live node in every region it needs (requests may ask for another)")
	return cmd
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

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("bad --log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func runStart(ctx context.Context, f startFlags, out io.Writer) error {
	// Step 1: check the flags before touching anything.
	switch {
	case f.id == 0:
		return errors.New("--id is required (a positive number unique in the cluster)")
	case f.region == "":
		return errors.New("--region is required")
	case f.dataDir == "":
		return errors.New("--data-dir is required")
	case f.peers == "" && f.join == "":
		return errors.New("give --peers (the initial members) or --join (a member's HTTP address)")
	case f.peers != "" && f.join != "":
		return errors.New("give --peers or --join, not both")
	case f.placement <= 0 || f.placement > httpapi.MaxPlacementWait:
		return fmt.Errorf("--placement-wait must be positive and at most %v", httpapi.MaxPlacementWait)
	}
	level, err := parseLevel(f.logLevel)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if f.advertise == "" {
		f.advertise = f.listen
	}
	if f.latency == "" {
		f.latency = "none"
	}
	matrix, err := netsim.MatrixFor(f.latency)
	if err != nil {
		return err
	}
	// Step 2: open the client listeners first, so the node can advertise them.
	raftLn, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("node-to-node listener: %w", err)
	}
	respLn, err := net.Listen("tcp", f.respAddr)
	if err != nil {
		return fmt.Errorf("RESP listener: %w", err)
	}
	httpLn, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	// Step 3: the initial members, or admission through a member.
	self := transport.Peer{ID: f.id, Region: f.region, Addr: f.advertise}
	var peers []transport.Peer
	join := false
	clusterID := ""
	if f.peers != "" {
		if peers, err = parsePeers(f.peers); err != nil {
			return err
		}
		found := false
		for _, p := range peers {
			if p.ID == f.id {
				found = p.Region == f.region && p.Addr == f.advertise
			}
		}
		if !found {
			return fmt.Errorf("--peers must list this node as %d=%s@%s", f.id, f.region, f.advertise)
		}
	} else {
		join = true
		info := metadata.NodeInfo{ID: f.id, Region: f.region, Zone: f.zone, Addr: f.advertise,
			RESPAddr: respLn.Addr().String(), HTTPAddr: httpLn.Addr().String()}
		ans, err := requestJoin(ctx, f.join, info)
		if err != nil {
			return err
		}
		if f.cluster != "" && f.cluster != ans.Cluster {
			return fmt.Errorf("--cluster %s, but the member at %s belongs to cluster %q", f.cluster, f.join, ans.Cluster)
		}
		peers, f.cluster, clusterID = ans.TransportPeers(), ans.Cluster, ans.ClusterID
	}
	// Step 4: the emulated network, if any: this process delays what it sends.
	var netw *netsim.Network
	if matrix != nil {
		if netw, err = netsim.New(netsim.Config{Matrix: matrix}); err != nil {
			return err
		}
		defer netw.Close()
		for _, p := range append(peers, self) {
			netw.AddNode(p.ID, p.Region)
		}
	}
	// Step 5: the node.
	n, err := node.Start(node.Config{
		ID: f.id, Region: f.region, Zone: f.zone, DataDir: f.dataDir,
		Listener: raftLn, ListenAddr: f.advertise, Peers: peers, Join: join, Net: netw,
		Cluster: f.cluster, ClusterID: clusterID,
		RESPAddr: respLn.Addr().String(), HTTPAddr: httpLn.Addr().String(), Logger: logger,
		PlacementWait: f.placement,
	})
	if err != nil {
		return err
	}
	defer n.Close()
	// Step 6: the front ends, sharing one metrics registry.
	reg := metrics.ForNode(n)
	rs := resp.Serve(respLn, n, resp.Config{DefaultKeyspace: "default", Metrics: reg})
	defer rs.Close()
	hs := httpapi.Serve(httpLn, httpapi.New(n, httpapi.Config{Metrics: reg}))
	defer hs.Close()
	fmt.Fprintf(out, "meridian node %d (%s) running: resp %s, http %s, peers %s\n", f.id, f.region, respLn.Addr(), httpLn.Addr(), raftLn.Addr())
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
func requestJoin(ctx context.Context, member string, info metadata.NodeInfo) (httpapi.JoinResponse, error) {
	body, _ := json.Marshal(info)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out httpapi.JoinResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL(member)+"/v1/cluster/nodes", bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
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
