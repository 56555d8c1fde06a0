// Package testcluster runs a whole Meridian cluster inside one test
// process: N regions × M nodes on an emulated network (netsim), each node
// with its own data directory, and helpers to partition the network, kill
// nodes and restart them from their data.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/transport"
)

// Options configures a test cluster.
type Options struct {
	// Regions of the cluster. Default us-east, eu-west, ap-southeast.
	Regions []string
	// NodesPerRegion. Default 1.
	NodesPerRegion int
	// Matrix of round trips between regions; nil means no emulated delay.
	Matrix netsim.Matrix
	// Jitter, LossRate of the emulated network.
	Jitter   time.Duration
	LossRate float64
	// Seed of the network's random source (0: time based).
	Seed int64
	// TickInterval, MinHeartbeatInterval, CompactAfterEntries, LeaderHysteresis,
	// RequestTimeout: see node.Config. Tests default to a fast tick (5ms),
	// a 50ms LAN heartbeat and a 1s hysteresis.
	TickInterval         time.Duration
	MinHeartbeatInterval time.Duration
	CompactAfterEntries  uint64
	LeaderHysteresis     time.Duration
	RequestTimeout       time.Duration
	// PlacementWait, HealthCheckInterval: see node.Config (defaults there).
	PlacementWait       time.Duration
	HealthCheckInterval time.Duration
	// Logger, if set, receives every node's logs (Verbose is then ignored).
	Logger *slog.Logger
	// Held lists members New does not start (Restart starts them): initial
	// members that are late.
	Held []uint64
	// Verbose sends node logs to the test log at info level.
	Verbose bool
	// FS, if set, returns the filesystem of a node's storage (say an
	// in-memory one wrapped by Pebble's errorfs, to inject faults); it is
	// called once per node and kept across restarts. Nil: the operating
	// system's, under the test's temporary directory.
	FS func(id uint64) vfs.FS
	// Tune, if set, adjusts a node's configuration before it starts (at
	// every start, restarts included).
	Tune func(id uint64, cfg *node.Config)
	// Logs, if set, receives every node's logs at info level and above
	// (text, one record a line), besides the test log if Verbose.
	Logs io.Writer
	// Secure gives every node a certificate of a CA made for the cluster
	// (mutual TLS between nodes) and makes clients authenticate
	// (node.Config.RequireAuth). Cluster.CA holds the CA, its bundle and
	// a client certificate of the root user.
	Secure bool
}

// Member is one node of the cluster, running or not.
type Member struct {
	ID     uint64
	Region string
	Addr   string
	Dir    string
	FS     vfs.FS     // nil: the operating system's
	Node   *node.Node // nil while killed
	// held keeps the address of a member not started yet (Options.Held)
	// until Restart starts it: another test's listener cannot take it.
	held *heldListener
}

// heldListener keeps a port taken while its node is not running: it
// accepts connections and closes them at once, as a stopped process's
// port refuses them, until release hands the listener to the node.
type heldListener struct {
	ln   *net.TCPListener
	stop atomic.Bool
	done chan struct{}
}

func hold(ln net.Listener) *heldListener {
	h := &heldListener{ln: ln.(*net.TCPListener), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			conn, err := h.ln.Accept()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() && !h.stop.Load() {
					continue
				}
				return
			}
			_ = conn.Close()
		}
	}()
	return h
}

// release stops accepting and returns the listener, still open.
func (h *heldListener) release() net.Listener {
	h.stop.Store(true)
	_ = h.ln.SetDeadline(time.Now())
	<-h.done
	_ = h.ln.SetDeadline(time.Time{})
	return h.ln
}

// Cluster is a running test cluster.
type Cluster struct {
	mu      sync.RWMutex // guards Member.Node
	t       testing.TB
	opts    Options
	Net     *netsim.Network
	Members []*Member
	peers   []transport.Peer
	// CA is the certificates directory of a Secure cluster: ca.crt,
	// ca.key and the root user's client.root.crt and .key.
	CA string
}

// TestPasswordHash are argon2id costs cheap enough for tests (every
// node of a test cluster hashes with them).
var TestPasswordHash = auth.HashParams{MemoryKiB: 64, Time: 1, Threads: 1}

// New starts a cluster and waits until every node is ready (joined and
// caught up with the metadata; see node.Ready), or, with held members,
// until every started node has joined. The cluster is closed when the test
// ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"us-east", "eu-west", "ap-southeast"}
	}
	if opts.NodesPerRegion == 0 {
		opts.NodesPerRegion = 1
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = 5 * time.Millisecond
	}
	if opts.MinHeartbeatInterval == 0 {
		opts.MinHeartbeatInterval = 50 * time.Millisecond
	}
	if opts.LeaderHysteresis == 0 {
		opts.LeaderHysteresis = time.Second
	}
	netw, err := netsim.New(netsim.Config{Matrix: opts.Matrix, Jitter: opts.Jitter, LossRate: opts.LossRate, Seed: opts.Seed})
	if err != nil {
		t.Fatal(err)
	}
	// The data directory first: cleanups run last-in first-out, so the
	// nodes stop before their directories are removed.
	root := t.TempDir()
	c := &Cluster{t: t, opts: opts, Net: netw}
	t.Cleanup(c.Close)
	if opts.Secure {
		c.CA = filepath.Join(root, "ca")
		if _, err := pki.CreateCA(pki.CAOptions{Dir: c.CA}); err != nil {
			t.Fatal(err)
		}
		if _, err := pki.CreateClient(pki.CertOptions{Dir: c.CA}, auth.RootUser); err != nil {
			t.Fatal(err)
		}
	}
	var listeners []net.Listener
	id := uint64(1)
	for _, r := range opts.Regions {
		for range opts.NodesPerRegion {
			ln, err := testutil.ListenLoopback(testutil.InProcess)
			if err != nil {
				t.Fatal(err)
			}
			listeners = append(listeners, ln)
			m := &Member{ID: id, Region: r, Addr: ln.Addr().String(), Dir: filepath.Join(root, fmt.Sprintf("n%d", id))}
			if opts.FS != nil {
				m.FS = opts.FS(id)
			}
			c.Members = append(c.Members, m)
			c.peers = append(c.peers, transport.Peer{ID: id, Region: r, Addr: m.Addr})
			netw.AddNode(id, r)
			id++
		}
	}
	// Start all nodes concurrently: each waits briefly for round trips to
	// its peers before it sizes its raft timeouts.
	errs := make(chan error, len(c.Members))
	started := 0
	for i, m := range c.Members {
		if slices.Contains(opts.Held, m.ID) {
			m.held = hold(listeners[i]) // Restart takes it
			continue
		}
		started++
		go func() { errs <- c.start(m, listeners[i]) }()
	}
	for range started {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if len(opts.Held) > 0 {
		// The others cannot all be ready without the held members (the
		// metadata may have no quorum): wait until they have joined.
		if err := c.WaitFor(ctx, func() bool {
			for _, n := range c.Running() {
				if ni := n.Metadata().Nodes[n.ID()]; !ni.Joined {
					return false
				}
			}
			return true
		}); err != nil {
			t.Fatalf("nodes did not join: %v", err)
		}
		return c
	}
	for _, n := range c.Running() {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatalf("nodes not ready: %v", err)
		}
	}
	return c
}

func (c *Cluster) start(m *Member, ln net.Listener) error {
	logger := c.opts.Logger
	var sinks []io.Writer
	if c.opts.Verbose {
		sinks = append(sinks, testWriter{c.t})
	}
	if c.opts.Logs != nil {
		sinks = append(sinks, c.opts.Logs)
	}
	if logger == nil && len(sinks) > 0 {
		logger = slog.New(slog.NewTextHandler(io.MultiWriter(sinks...), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := node.Config{
		ID: m.ID, Region: m.Region, DataDir: m.Dir, FS: m.FS, Listener: ln, ListenAddr: m.Addr,
		Peers: c.peers, Net: c.Net, TickInterval: c.opts.TickInterval,
		MinHeartbeatInterval: c.opts.MinHeartbeatInterval, CompactAfterEntries: c.opts.CompactAfterEntries,
		LeaderHysteresis: c.opts.LeaderHysteresis, LeaderCheckInterval: c.opts.LeaderHysteresis / 4,
		RequestTimeout: c.opts.RequestTimeout, Logger: logger,
		PlacementWait: c.opts.PlacementWait, HealthCheckInterval: c.opts.HealthCheckInterval,
		PasswordHash: TestPasswordHash,
	}
	if c.opts.Secure {
		dir := filepath.Join(filepath.Dir(m.Dir), fmt.Sprintf("certs%d", m.ID))
		if _, err := os.Stat(filepath.Join(dir, pki.NodeCertFile)); err != nil {
			if _, err := pki.CreateNode(pki.CertOptions{Dir: c.CA, OutDir: dir, Hosts: []string{"127.0.0.1", "localhost"}}, m.ID); err != nil {
				return err
			}
		}
		certs, err := pki.OpenNode(dir, logger)
		if err != nil {
			return err
		}
		cfg.Certs, cfg.RequireAuth = certs, true
	}
	if c.opts.Tune != nil {
		c.opts.Tune(m.ID, &cfg)
	}
	n, err := node.Start(cfg)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("start node %d: %w", m.ID, err)
	}
	c.mu.Lock()
	m.Node = n
	c.mu.Unlock()
	return nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Member returns the member with the given id.
func (c *Cluster) Member(id uint64) *Member {
	for _, m := range c.Members {
		if m.ID == id {
			return m
		}
	}
	c.t.Fatalf("no node %d", id)
	return nil
}

// Node returns a running node (fails the test if it is down).
func (c *Cluster) Node(id uint64) *node.Node {
	m := c.Member(id)
	c.mu.RLock()
	n := m.Node
	c.mu.RUnlock()
	if n == nil {
		c.t.Fatalf("node %d is down", id)
	}
	return n
}

// Running returns the running nodes.
func (c *Cluster) Running() []*node.Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*node.Node
	for _, m := range c.Members {
		if m.Node != nil {
			out = append(out, m.Node)
		}
	}
	return out
}

// IDs returns every member's id.
func (c *Cluster) IDs() []uint64 {
	var out []uint64
	for _, m := range c.Members {
		out = append(out, m.ID)
	}
	return out
}

// InRegion returns the ids of the members of a region.
func (c *Cluster) InRegion(region string) []uint64 {
	var out []uint64
	for _, m := range c.Members {
		if m.Region == region {
			out = append(out, m.ID)
		}
	}
	return out
}

// Kill stops a node (its data stays on disk).
func (c *Cluster) Kill(id uint64) {
	m := c.Member(id)
	c.mu.Lock()
	n := m.Node
	m.Node = nil
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Restart starts a killed node again from its data directory.
func (c *Cluster) Restart(id uint64) {
	c.t.Helper()
	if err := c.TryRestart(id); err != nil {
		c.t.Fatal(err)
	}
}

// TryRestart is Restart returning the node's start error instead of
// failing the test (say, for a node refused at start).
func (c *Cluster) TryRestart(id uint64) error {
	m := c.Member(id)
	c.mu.RLock()
	up := m.Node != nil
	c.mu.RUnlock()
	if up {
		return nil
	}
	var ln net.Listener
	var err error
	c.mu.Lock()
	held := m.held
	m.held = nil
	c.mu.Unlock()
	if held != nil {
		return c.start(m, held.release())
	}
	// The port was just released; the kernel may hold it for a moment.
	for range 100 {
		if ln, err = net.Listen("tcp", m.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("restart node %d: %w", id, err)
	}
	return c.start(m, ln)
}

// Heal removes every partition.
func (c *Cluster) Heal() { c.Net.Heal() }

// Close stops every node.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		c.Kill(m.ID)
		c.mu.Lock()
		if m.held != nil {
			_ = m.held.release().Close()
			m.held = nil
		}
		c.mu.Unlock()
	}
	c.Net.Close()
}

// WaitFor polls cond until it holds or ctx ends (see testutil.WaitFor).
func (c *Cluster) WaitFor(ctx context.Context, cond func() bool) error {
	return testutil.WaitFor(ctx, cond)
}

// CreateKeyspace creates a keyspace through the first running node and
// waits until every running node knows it and every group of every shard
// (each region's, for async keyspaces) has a leader.
func (c *Cluster) CreateKeyspace(spec metadata.KeyspaceSpec) *metadata.Keyspace {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := c.Running()[0]
	ks, err := n.CreateKeyspace(ctx, spec)
	if err != nil {
		c.t.Fatalf("create keyspace: %v", err)
	}
	if err := c.WaitFor(ctx, func() bool {
		for _, n := range c.Running() {
			if n.Metadata().Keyspaces[spec.Name] == nil {
				return false
			}
		}
		for _, sh := range ks.Shards {
			if c.Leader(sh.Group) == 0 {
				return false
			}
			for _, rg := range sh.Regional { // async: every region's group
				if c.Leader(rg.Group) == 0 {
					return false
				}
			}
		}
		return true
	}); err != nil {
		c.t.Fatalf("keyspace %s has shards without a leader: %v", spec.Name, err)
	}
	return ks
}

// Leader returns the node that leads a group, as that node itself reports
// (0 if no running node claims it).
func (c *Cluster) Leader(group uint64) uint64 {
	for _, n := range c.Running() {
		if st, ok := n.Host().Status(group); ok && st.Lead == n.ID() && st.RaftState.String() == "StateLeader" {
			return n.ID()
		}
	}
	return 0
}

// RegionOf returns a member's region.
func (c *Cluster) RegionOf(id uint64) string { return c.Member(id).Region }

// Others returns every member id except the given ones.
func (c *Cluster) Others(except ...uint64) []uint64 {
	var out []uint64
	for _, id := range c.IDs() {
		if !slices.Contains(except, id) {
			out = append(out, id)
		}
	}
	return out
}
