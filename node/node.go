package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/strategy/activeks"
	"github.com/meridian-db/meridian/strategy/asyncks"
	"github.com/meridian-db/meridian/strategy/streaming"
	"github.com/meridian-db/meridian/strategy/syncks"
	"github.com/meridian-db/meridian/stream"
	"github.com/meridian-db/meridian/transport"
)

// Config configures a node.
type Config struct {
	// ID is the node's id, unique in the cluster and non-zero.
	ID uint64
	// Region and Zone place the node.
	Region, Zone string
	// DataDir holds the node's storage.
	DataDir string
	// FS, if set, is the filesystem storage runs on (tests: in memory).
	FS vfs.FS
	// ListenAddr is the node-to-node address, e.g. "127.0.0.1:7400".
	// Ignored if Listener is set.
	ListenAddr string
	// Listener is an already-open listener for node-to-node traffic.
	Listener net.Listener
	// RESPAddr and HTTPAddr are the client addresses this node advertises
	// (recorded in the metadata so that status can show them). Optional.
	RESPAddr, HTTPAddr string
	// Peers is the initial cluster, this node included. The initial
	// members form the system group.
	Peers []transport.Peer
	// Join is set for a node added to a running cluster (see Node.AddNode):
	// it does not bootstrap the system group but receives it from the
	// leader. Peers then lists the cluster's nodes.
	Join bool
	// Net is the emulated network (nil: none).
	Net *netsim.Network
	// TickInterval is the raft tick. Default 10ms.
	TickInterval time.Duration
	// MinHeartbeatInterval is the raft heartbeat interval on a LAN; on a
	// WAN the interval follows the slowest measured round trip between a
	// group's voters. The election timeout is ten heartbeats. Default 100ms.
	MinHeartbeatInterval time.Duration
	// CompactAfterEntries: see raftgroup.Config. Default 10000.
	CompactAfterEntries uint64
	// MaxInflightMsgs, MaxSizePerMsgBytes and MaxUncommittedBytes are the
	// raft windows of every group: see raftgroup.Config. Defaults 256,
	// 1 MiB and 64 MiB.
	MaxInflightMsgs     int
	MaxSizePerMsgBytes  uint64
	MaxUncommittedBytes uint64
	// StreamBatchInterval, StreamMaxBatchBytes, StreamMaxInFlight,
	// StreamHeartbeatInterval and StreamRetryBackoff shape the streams of
	// async and active keyspaces: see stream.Config. Defaults 2ms, 1 MiB
	// (at most stream.MaxEncodedBytes/2), 4, 200ms and 50ms.
	StreamBatchInterval     time.Duration
	StreamMaxBatchBytes     int
	StreamMaxInFlight       int
	StreamHeartbeatInterval time.Duration
	StreamRetryBackoff      time.Duration
	// CacheBytes is the size of the storage's block cache. Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size the storage's memtables grow to, 1 MiB to
	// 4 GiB. Default 32 MiB (storage.DefaultMemTableBytes).
	MemTableBytes int64
	// RowCacheBytes bounds the storage's row cache: the values of recently
	// read keys, kept in memory in front of the engine. Default 16 MiB
	// (storage.DefaultRowCacheBytes); -1 means no row cache.
	RowCacheBytes int64
	// RequestTimeout bounds a request whose context has no deadline. Default 10s.
	RequestTimeout time.Duration
	// MaxKeyBytes and MaxValueBytes bound what a client may write.
	// Defaults 16 KiB and 4 MiB.
	MaxKeyBytes, MaxValueBytes int
	// LeaderCheckInterval is how often leaders check that they are in their
	// group's preferred region. Default 1s.
	LeaderCheckInterval time.Duration
	// LeaderHysteresis is how long a better-placed replica must stay healthy
	// and caught up before leadership moves to it. Default 3s.
	LeaderHysteresis time.Duration
	// MaxClockOffset bounds how far ahead of this node's clock a remote
	// timestamp may be. Default 500ms.
	MaxClockOffset time.Duration
	// ClockOffset moves this node's wall clock by that much (positive:
	// ahead): for emulating clock skew between processes on one machine
	// (meridian start --clock-offset), never for production. Everything
	// that reads the time of day goes through it: hybrid timestamps,
	// closed timestamps and leases, expiry, bounded-staleness checks and
	// the streams' clock check. Zero means the system's clock.
	ClockOffset time.Duration
	// Cluster names the cluster (1 to 64 letters, digits, '.', '_', '-').
	// Default "meridian". The cluster's id, which every node-to-node
	// request, stream and session token carries and checks, is derived
	// from it and the initial Peers when the cluster forms, and recorded
	// in the node's storage: a node whose data was formed under another
	// name refuses to start (ErrClusterMismatch). See cluster.go.
	Cluster string
	// ClusterID is the id of the cluster a Join node is admitted to (the
	// join answer gives it); empty for the initial members, which derive
	// it. Once recorded in storage, the recorded id is used, and a
	// different ClusterID is refused.
	ClusterID string
	// PlacementWait bounds how long creating a keyspace (or adding a
	// region to one) waits for a live node in every region it needs
	// before failing with ErrRegionUnavailable. Default 30s.
	PlacementWait time.Duration
	// HealthCheckInterval is how often the node checks whether keyspaces
	// are below their replication goal (and logs a warning, at most every
	// six checks, while one is). Default 5s.
	HealthCheckInterval time.Duration
	// Logger receives the node's logs. Nil discards.
	Logger *slog.Logger
	// BackupKey, if set, is the key (32 bytes, AES-256-GCM) that encrypts
	// the backups this node writes and decrypts those it reads, when a
	// request gives none (backup.go). Never logged.
	BackupKey []byte
	// BackupArchiveInterval is how often the archiver ships each group's
	// new log entries to the backup schedule's target; an idle group is
	// sealed (a mark) every BackupSealInterval, so that the restorable
	// window keeps up with time. Defaults 1s and 2s (archive.go).
	BackupArchiveInterval time.Duration
	BackupSealInterval    time.Duration
	// Certs, if set, secures node-to-node traffic with mutual TLS; its
	// node certificate must name this node and cluster (security.go,
	// package pki). Nil: plaintext, for loopback and trusted networks.
	Certs *pki.Store
	// RequireAuth makes every client of the front ends authenticate
	// (Guard; package auth). False: every client is allowed everything.
	RequireAuth bool
	// PasswordHash are the argon2id costs of the password hashes this
	// node makes. Zero: auth.DefaultHashParams.
	PasswordHash auth.HashParams
	// AuditRetention is how many audit records the node keeps (audit.go).
	// Default DefaultAuditRetention.
	AuditRetention int
	// QuiesceAfter is how long a group stays idle (nothing written, read
	// or streamed, every replica caught up) before it stops ticking and
	// heartbeating until it is used again (raftgroup's quiesce.go).
	// Default DefaultQuiesceAfter; negative: groups never quiesce.
	QuiesceAfter time.Duration
	// NoCombine proposes every SET on its own instead of combining the
	// plain SETs that reach a sync group together into one MSET
	// (combine.go); for side-by-side measurements.
	NoCombine bool
}

// Defaults of Config (and of the configuration file, see package config).
const (
	DefaultTickInterval            = 10 * time.Millisecond
	DefaultMinHeartbeatInterval    = 100 * time.Millisecond
	DefaultRequestTimeout          = 10 * time.Second
	DefaultMaxKeyBytes             = 16 << 10
	DefaultMaxValueBytes           = 4 << 20
	DefaultLeaderCheckInterval     = time.Second
	DefaultLeaderHysteresis        = 3 * time.Second
	DefaultCluster                 = "meridian"
	DefaultPlacementWait           = 30 * time.Second
	DefaultHealthCheckInterval     = 5 * time.Second
	DefaultCompactAfterEntries     = 10000
	DefaultMaxInflightMsgs         = 256
	DefaultMaxSizePerMsgBytes      = 1 << 20
	DefaultMaxUncommittedBytes     = 64 << 20
	DefaultStreamBatchInterval     = 2 * time.Millisecond
	DefaultStreamMaxBatchBytes     = 1 << 20
	DefaultStreamMaxInFlight       = 4
	DefaultStreamHeartbeatInterval = streaming.DefaultHeartbeat
	DefaultStreamRetryBackoff      = 50 * time.Millisecond
	DefaultCacheBytes              = 64 << 20
	DefaultMemTableBytes           = storage.DefaultMemTableBytes
	DefaultRowCacheBytes           = storage.DefaultRowCacheBytes
	DefaultBackupArchiveInterval   = time.Second
	DefaultBackupSealInterval      = 2 * time.Second
	DefaultQuiesceAfter            = 2 * time.Second
)

// ErrInvalidConfig is wrapped by every error of Config.Validate; the
// message names the field.
var ErrInvalidConfig = errors.New("node: invalid configuration")

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.TickInterval, DefaultTickInterval)
	def(&c.MinHeartbeatInterval, DefaultMinHeartbeatInterval)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.LeaderCheckInterval, DefaultLeaderCheckInterval)
	def(&c.LeaderHysteresis, DefaultLeaderHysteresis)
	def(&c.MaxClockOffset, hlc.DefaultMaxOffset)
	def(&c.PlacementWait, DefaultPlacementWait)
	def(&c.HealthCheckInterval, DefaultHealthCheckInterval)
	def(&c.StreamBatchInterval, DefaultStreamBatchInterval)
	def(&c.StreamHeartbeatInterval, DefaultStreamHeartbeatInterval)
	def(&c.QuiesceAfter, DefaultQuiesceAfter)
	def(&c.StreamRetryBackoff, DefaultStreamRetryBackoff)
	def(&c.BackupArchiveInterval, DefaultBackupArchiveInterval)
	def(&c.BackupSealInterval, DefaultBackupSealInterval)
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.CompactAfterEntries == 0 {
		c.CompactAfterEntries = DefaultCompactAfterEntries
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.MaxSizePerMsgBytes == 0 {
		c.MaxSizePerMsgBytes = DefaultMaxSizePerMsgBytes
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = DefaultMaxUncommittedBytes
	}
	if c.StreamMaxBatchBytes == 0 {
		c.StreamMaxBatchBytes = DefaultStreamMaxBatchBytes
	}
	if c.StreamMaxInFlight == 0 {
		c.StreamMaxInFlight = DefaultStreamMaxInFlight
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = DefaultMemTableBytes
	}
	if c.RowCacheBytes == 0 {
		c.RowCacheBytes = DefaultRowCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate checks the configuration; zero values stand for the defaults.
// Each error wraps ErrInvalidConfig and names the field.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.ID == 0:
		return bad("ID must be non-zero")
	case c.Region == "":
		return bad("Region is required")
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.ListenAddr == "" && c.Listener == nil:
		return bad("ListenAddr is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TickInterval", c.TickInterval}, {"MinHeartbeatInterval", c.MinHeartbeatInterval},
		{"RequestTimeout", c.RequestTimeout}, {"LeaderCheckInterval", c.LeaderCheckInterval},
		{"LeaderHysteresis", c.LeaderHysteresis}, {"MaxClockOffset", c.MaxClockOffset},
		{"PlacementWait", c.PlacementWait}, {"HealthCheckInterval", c.HealthCheckInterval},
		{"StreamBatchInterval", c.StreamBatchInterval}, {"StreamHeartbeatInterval", c.StreamHeartbeatInterval},
		{"StreamRetryBackoff", c.StreamRetryBackoff},
		{"BackupArchiveInterval", c.BackupArchiveInterval}, {"BackupSealInterval", c.BackupSealInterval},
	} {
		if d.v < 0 {
			return bad("%s must not be negative (got %v)", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"MaxKeyBytes", int64(c.MaxKeyBytes)}, {"MaxValueBytes", int64(c.MaxValueBytes)},
		{"MaxInflightMsgs", int64(c.MaxInflightMsgs)}, {"StreamMaxBatchBytes", int64(c.StreamMaxBatchBytes)},
		{"StreamMaxInFlight", int64(c.StreamMaxInFlight)}, {"CacheBytes", c.CacheBytes},
		{"MemTableBytes", c.MemTableBytes},
	} {
		if n.v < 0 {
			return bad("%s must not be negative (got %d)", n.name, n.v)
		}
	}
	if m := c.MemTableBytes; m != 0 && (m < 1<<20 || m >= 4<<30) {
		return bad("MemTableBytes must be between 1 MiB and 4 GiB (got %d)", m)
	}
	if c.RowCacheBytes < -1 {
		return bad("RowCacheBytes must be positive, 0 (the default) or -1 (no row cache) (got %d)", c.RowCacheBytes)
	}
	// Contradictions, between values as they will be used (defaults
	// applied to a copy).
	d := *c
	d.setDefaults()
	switch {
	case d.MinHeartbeatInterval < d.TickInterval:
		// A heartbeat is a whole number of ticks: the election timeout
		// derived from it would not be the one configured.
		return bad("MinHeartbeatInterval (%v) is shorter than TickInterval (%v): a heartbeat is at least one tick", d.MinHeartbeatInterval, d.TickInterval)
	case d.LeaderHysteresis < d.LeaderCheckInterval:
		return bad("LeaderHysteresis (%v) is shorter than LeaderCheckInterval (%v): leaders are checked less often than they may move", d.LeaderHysteresis, d.LeaderCheckInterval)
	case d.StreamMaxBatchBytes > stream.MaxEncodedBytes/2:
		return bad("StreamMaxBatchBytes (%d) is above the stream limit of %d", d.StreamMaxBatchBytes, stream.MaxEncodedBytes/2)
	case d.MaxKeyBytes+d.MaxValueBytes > stream.MaxEncodedBytes/2:
		return bad("MaxKeyBytes + MaxValueBytes (%d) is above %d: such a write could never be shipped between regions", d.MaxKeyBytes+d.MaxValueBytes, stream.MaxEncodedBytes/2)
	case d.StreamHeartbeatInterval < d.StreamBatchInterval:
		return bad("StreamHeartbeatInterval (%v) is shorter than StreamBatchInterval (%v)", d.StreamHeartbeatInterval, d.StreamBatchInterval)
	case d.MaxSizePerMsgBytes > d.MaxUncommittedBytes:
		return bad("MaxSizePerMsgBytes (%d) is above MaxUncommittedBytes (%d)", d.MaxSizePerMsgBytes, d.MaxUncommittedBytes)
	case len(c.BackupKey) != 0 && len(c.BackupKey) != 32:
		return bad("BackupKey has %d bytes, want 32 (AES-256)", len(c.BackupKey))
	}
	if err := checkClusterName(d.Cluster); err != nil {
		return err
	}
	if c.ClusterID != "" {
		if err := checkClusterID(d.Cluster, c.ClusterID); err != nil {
			return err
		}
	}
	self := false
	for _, p := range c.Peers {
		if p.ID == 0 || p.Region == "" || p.Addr == "" {
			return bad("peer %+v needs an id, a region and an address", p)
		}
		self = self || p.ID == c.ID
	}
	if !self {
		return bad("Peers must include this node (%d)", c.ID)
	}
	return nil
}

// minElectionTimeout is the shortest election timeout any group of this
// node uses: ten heartbeats of at least MinHeartbeatInterval, rounded up
// to whole ticks (see timing). Leases are sized from it (raftgroup).
func (c *Config) minElectionTimeout() time.Duration {
	return 10 * time.Duration((c.MinHeartbeatInterval+c.TickInterval-1)/c.TickInterval) * c.TickInterval
}

// Node is one Meridian process's database: storage, raft groups, transport
// and metadata, with the request router on top.
type Node struct {
	cfg   Config
	log   *slog.Logger
	db    *storage.DB
	host  *raftgroup.Host
	tr    *transport.Transport
	meta  *metadata.Store
	clock *hlc.Clock

	cluster string // the cluster's id (cluster.go)

	deadlines coarseDeadlines // shared deadlines of writes (deadline.go)

	guard *auth.Guard // clients' authentication and authorization (security.go)
	audit auditLog    // this node's audit log (audit.go)

	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
	haltMu  sync.Once
	failMu  sync.Once
	fatal   chan error
	failed  chan struct{} // closed when the host stops on a fatal error

	sync   *syncks.Strategy   // sync keyspaces
	async  *asyncks.Strategy  // async keyspaces
	active *activeks.Strategy // active keyspaces
	inbox  *streaming.Inbox   // every stream into this node's replicas
	closed closedTimes        // leaders' closed timestamps (reads.go)
	// closedSkewLogged is when closed timestamps from a clock running
	// ahead were last said to be dropped (Unix ns; rpc.go).
	closedSkewLogged atomic.Int64
	groups           strategy.GroupIndex // what each data group is
	leaders          leaders             // leaders of groups hosted elsewhere, as answers said (rpc.go)
	archive          archives            // continuous log archiving, scheduled backups (archive.go)
	restores         restoreJobs         // restores this node runs (restore.go)
	jobs             backupJobs          // backups this node runs (backup.go)
	blocked          blockers            // clients waiting in blocking pops (blocking.go)
	pubsub           pubsub              // pub/sub deliveries between nodes (pubsub.go)

	reconcileCh chan struct{}
	combine     combiner // plain SETs to the sync groups this node leads (combine.go)
}

// Start opens storage, starts the raft host and the transport, and joins
// the system group. It returns once the node serves requests; keyspaces
// and leaders may still be settling.
func Start(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.ID, "region", cfg.Region),
		clock:       hlc.NewWithWall(uint32(cfg.ID), cfg.MaxClockOffset, wallMS(cfg.ClockOffset)),
		stop:        make(chan struct{}),
		fatal:       make(chan error, 1),
		failed:      make(chan struct{}),
		reconcileCh: make(chan struct{}, 1),
	}
	env := nodeEnv{n}
	n.inbox = streaming.NewInbox(env)
	n.sync = syncks.New(env)
	n.async = asyncks.New(env, n.inbox)
	n.active = activeks.New(env, n.inbox)
	// Step 1: storage and the metadata it holds.
	db, err := storage.Open(cfg.DataDir, storage.Options{FS: cfg.FS, CacheBytes: cfg.CacheBytes, MemTableBytes: cfg.MemTableBytes, RowCacheBytes: cfg.RowCacheBytes, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.db = db
	if n.cluster, err = resolveCluster(db, &n.cfg); err != nil {
		_ = db.Close()
		return nil, err
	}
	if n.meta, err = metadata.Open(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := n.checkTimings(n.meta.State()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("node %d refused to start: %w", cfg.ID, err)
	}
	// Step 2: the raft host.
	n.host, err = raftgroup.New(raftgroup.Config{
		NodeID: cfg.ID, DB: db, Sender: sender{n}, TickInterval: cfg.TickInterval,
		CompactAfterEntries: cfg.CompactAfterEntries, Logger: cfg.Logger,
		// Every group's election timeout is at least ten minimum heartbeats
		// (see timing); all nodes of a cluster share these settings.
		MinElectionTimeout: cfg.minElectionTimeout(),
		MaxInflightMsgs:    cfg.MaxInflightMsgs, MaxSizePerMsgBytes: cfg.MaxSizePerMsgBytes,
		MaxUncommittedBytes: cfg.MaxUncommittedBytes,
		QuiesceAfter:        max(cfg.QuiesceAfter, 0), BeatInterval: cfg.MinHeartbeatInterval,
		// Every entry this node's leaders append carries its commit stamp
		// (backups cut the logs by it: backup.go).
		Stamps: n.clock,
		// The host calls it once, when storage fails or a committed command
		// cannot be applied here: the node stops (stopOnFatal) rather than
		// serve from a replica that may have diverged.
		OnFatal: n.fail,
		Clock:   hostClock(cfg.ClockOffset),
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	// Step 3: the transport, with every peer we know of.
	sec, err := n.initSecurity()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	n.tr, err = transport.New(transport.Config{
		NodeID: cfg.ID, Cluster: n.cluster, Region: cfg.Region, ListenAddr: cfg.ListenAddr, Listener: cfg.Listener,
		Net: cfg.Net, Logger: cfg.Logger, Security: sec,
		Services: []transport.Service{{Desc: &nodepb.Node_ServiceDesc, Impl: rpcServer{n: n}}},
	}, handler{n})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	for _, p := range n.knownPeers() {
		if p.ID != cfg.ID {
			n.tr.SetPeer(p)
		}
	}
	n.host.Start()
	// Step 4: measure round trips briefly, so raft timing fits the network.
	ids := n.peerIDs()
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_ = n.tr.WaitRTT(wctx, ids)
	cancel()
	// Step 5: the system group.
	initial := make([]uint64, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		initial = append(initial, p.ID)
	}
	slices.Sort(initial)
	hb, el := n.timing(initial)
	gc := raftgroup.GroupConfig{
		ID: metadata.SystemGroup, SM: n.meta, Bootstrap: initial,
		HeartbeatTicks: hb, ElectionTicks: el, Campaign: initial[0] == cfg.ID,
	}
	if cfg.Join {
		gc.Bootstrap, gc.Campaign = nil, false
	}
	if err := n.host.AddGroup(context.Background(), gc); err != nil {
		n.Close()
		return nil, err
	}
	if regions := regionsOf(cfg.Peers); len(regions) < 3 {
		n.log.Warn("the cluster spans fewer than 3 regions: its metadata cannot survive the loss of a region", "regions", regions)
	}
	// Step 6: background work: record the initial members and register
	// this node, create the groups the metadata places here, keep leaders
	// in their home regions, watch the keyspaces' replication goals.
	n.wg.Add(6)
	go n.registerLoop()
	go n.healthLoop()
	go n.reconcileLoop()
	go n.runStrategies()
	go n.closedLoop()
	go n.archiveLoop()
	go n.stopOnFatal()
	return n, nil
}

// stopOnFatal halts the node once its host has stopped on a fatal error:
// no more background work and no peer traffic either way, as if its
// process had exited (which `meridian start` then does). Its storage stays
// open, unchanged since the fault, until Close.
func (n *Node) stopOnFatal() {
	select {
	case <-n.stop:
	case <-n.failed:
		n.halt()
	}
}

// fail stops the node for good: its host failed (storage, or a command
// it cannot apply), or its timings are not the cluster's. Fatal receives
// err; stopOnFatal halts the node. Only the first call counts.
func (n *Node) fail(err error) {
	n.failMu.Do(func() {
		n.log.Error("node stopping after a fatal error", "err", err)
		select {
		case n.fatal <- err:
		default:
		}
		close(n.failed)
	})
}

// Close stops the node. It is safe to call more than once.
func (n *Node) Close() {
	n.halt()
	n.closeMu.Do(func() { _ = n.db.Close() })
}

// halt stops everything but storage: the background loops, the transport
// and the raft host.
func (n *Node) halt() {
	n.haltMu.Do(func() {
		close(n.stop)
		n.wg.Wait()
		_ = n.tr.Close()
		n.host.Stop()
	})
}

// ID returns the node's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Region returns the node's region.
func (n *Node) Region() string { return n.cfg.Region }

// Addr returns the node-to-node address.
func (n *Node) Addr() string { return n.tr.Addr() }

// Metadata returns the committed cluster metadata as this node knows it.
func (n *Node) Metadata() *metadata.State { return n.meta.State() }

// Network returns the node's emulated network (nil when it has none).
func (n *Node) Network() *netsim.Network { return n.cfg.Net }

// Host exposes the raft host (status, tests).
func (n *Node) Host() *raftgroup.Host { return n.host }

// Transport exposes the transport (round-trip times, tests).
func (n *Node) Transport() *transport.Transport { return n.tr }

// Fatal returns a channel that receives the error that stopped the node:
// its storage failed, it could not apply a committed command (see
// package raftgroup), or the cluster records lease-critical timings
// other than its own (metadata.ErrTimingsDiffer, see timings.go). The node then halts: its raft host, background work
// and transport stop (writes and linearizable reads fail with
// raftgroup.ErrStopped); only Close remains to be called.
func (n *Node) Fatal() <-chan error { return n.fatal }

// Storage returns the node's storage, for tools and tests that read it
// directly (and for Flush). It is closed when the node is.
func (n *Node) Storage() *storage.DB { return n.db }

// knownPeers is the initial peers plus every node in the metadata.
func (n *Node) knownPeers() []transport.Peer {
	peers := slices.Clone(n.cfg.Peers)
	for _, ni := range n.meta.State().Nodes {
		if !slices.ContainsFunc(peers, func(p transport.Peer) bool { return p.ID == ni.ID }) {
			peers = append(peers, transport.Peer{ID: ni.ID, Region: ni.Region, Addr: ni.Addr})
		}
	}
	return peers
}

func (n *Node) peerIDs() []uint64 {
	var ids []uint64
	for _, p := range n.knownPeers() {
		if p.ID != n.cfg.ID {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

func regionsOf(peers []transport.Peer) []string {
	var out []string
	for _, p := range peers {
		if !slices.Contains(out, p.Region) {
			out = append(out, p.Region)
		}
	}
	return out
}

// timing derives a group's heartbeat and election ticks from the slowest
// measured round trip between this node and the group's other voters:
// heartbeat about one round trip (at least MinHeartbeatInterval), election
// timeout ten heartbeats, so a 240 ms link does not cause election storms
// while a LAN group still fails over within about a second.
func (n *Node) timing(voters []uint64) (heartbeatTicks, electionTicks int) {
	hb := n.cfg.MinHeartbeatInterval
	for _, id := range voters {
		if id == n.cfg.ID {
			continue
		}
		if rtt, ok := n.tr.RTT(id); ok && rtt > hb {
			hb = rtt
		}
	}
	ticks := int((hb + n.cfg.TickInterval - 1) / n.cfg.TickInterval)
	return ticks, 10 * ticks
}

// sender adapts the transport to raftgroup.Sender.
type sender struct{ n *Node }

func (s sender) Send(group uint64, msgs []*pb.Message) {
	envs := make([]transport.Envelope, len(msgs))
	for i, m := range msgs {
		envs[i] = transport.Envelope{Group: group, Msg: m}
	}
	s.n.tr.Send(envs)
}

// handler adapts the node to transport.Handler.
type handler struct{ n *Node }

func (h handler) HandleRaft(from uint64, batch []transport.Envelope) {
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].Group == batch[i].Group {
			j++
		}
		msgs := make([]*pb.Message, 0, j-i)
		for _, e := range batch[i:j] {
			msgs = append(msgs, e.Msg)
		}
		h.n.host.Deliver(batch[i].Group, msgs)
		i = j
	}
}

func (h handler) ReportUnreachable(group, to uint64) { h.n.host.ReportUnreachable(group, to) }

func (h handler) ReportSnapshot(group, to uint64, ok bool) { h.n.host.ReportSnapshot(group, to, ok) }

// registerLoop records the cluster's initial members (a node started
// with the initial --peers; the first such record wins, and a node whose
// list differs says so), then makes sure every known node, this one
// first-hand, is recorded in the metadata.
func (n *Node) registerLoop() {
	defer n.wg.Done()
	formed := n.cfg.Join // a joining node's peers are not the initial members
	for {
		missing := false
		st := n.meta.State()
		if err := n.checkTimings(st); err != nil {
			n.fail(err)
			return
		}
		if !formed {
			if err := n.recordInitialMembers(st); errors.Is(err, metadata.ErrTimingsDiffer) {
				n.fail(err)
				return
			} else if err != nil {
				missing = true
			} else {
				formed = true
			}
		}
		for _, p := range n.knownPeers() {
			if missing {
				break
			}
			info := metadata.NodeInfo{ID: p.ID, Region: p.Region, Addr: p.Addr}
			ni, ok := st.Nodes[p.ID]
			if p.ID == n.cfg.ID {
				// This node registers itself, with its client addresses.
				info.Zone, info.RESPAddr, info.HTTPAddr, info.Joined = n.cfg.Zone, n.cfg.RESPAddr, n.cfg.HTTPAddr, true
				if ok && ni == info {
					continue
				}
			} else if ok {
				continue // others register themselves; only fill in the missing
			}
			cmd := metadata.Command{Op: "add_node", Node: &info, IfAbsent: p.ID != n.cfg.ID}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := n.propose(ctx, metadata.SystemGroup, cmd.Encode())
			cancel()
			if err != nil {
				missing = true
			}
		}
		if !missing {
			if err := n.checkTimings(n.meta.State()); err != nil {
				n.fail(err)
			}
			return
		}
		select {
		case <-n.stop:
			return
		case <-n.meta.Changed():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recordInitialMembers proposes this node's initial members unless the
// metadata records them already. It returns an error only when it should
// be tried again; members that differ from the recorded ones are logged.
func (n *Node) recordInitialMembers(st *metadata.State) error {
	mine := n.initialMembers(&metadata.State{}) // from this node's --peers
	if len(st.InitialMembers) > 0 && st.Timings != nil {
		if !slices.Equal(st.InitialMembers, mine) {
			n.log.Error("this node's --peers differ from the cluster's initial members; the cluster keeps its own",
				"cluster", st.InitialMembers, "peers", mine)
		}
		return n.checkTimings(st)
	}
	// Not formed yet, or formed before timings were recorded: propose.
	timings := n.cfg.timings()
	init := &metadata.InitCluster{Timings: &timings}
	for _, p := range n.cfg.Peers {
		init.Members = append(init.Members, metadata.NodeInfo{ID: p.ID, Region: p.Region, Addr: p.Addr})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "init_cluster", Init: init}.Encode())
	if err == nil {
		res, _ := p.Value.(metadata.ApplyResult)
		err = res.Err
	}
	if errors.Is(err, metadata.ErrMembersDiffer) {
		n.log.Error("this node's --peers differ from the cluster's initial members; the cluster keeps its own", "err", err)
		return n.checkTimings(n.meta.State())
	}
	return err
}

// reconcileLoop creates the replicas the metadata places on this node.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	for {
		changed := n.meta.Changed()
		n.reconcile()
		select {
		case <-n.stop:
			return
		case <-changed:
		case <-n.reconcileCh:
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) reconcile() {
	st := n.meta.State()
	for _, p := range n.knownPeers() {
		if p.ID != n.cfg.ID {
			n.tr.SetPeer(p)
		}
	}
	hosted := map[uint64]bool{}
	for _, g := range n.host.Groups() {
		hosted[g] = true
		if slices.Contains(st.Retired, g) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := n.host.RemoveGroup(ctx, g); err != nil {
				n.log.Warn("cannot remove a retired group", "group", g, "err", err)
			}
			cancel()
		}
	}
	for _, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			groups := []metadata.RegionalGroup{{Group: sh.Group, Replicas: sh.Replicas, Initial: sh.Initial}}
			if len(sh.Regional) > 0 {
				groups = sh.Regional
			}
			for _, rg := range groups {
				if hosted[rg.Group] || !slices.Contains(rg.Replicas, n.cfg.ID) {
					continue
				}
				var boot []uint64
				if slices.Contains(rg.Initial, n.cfg.ID) {
					boot = rg.Initial
				}
				hb, el := n.timing(rg.Replicas)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := n.host.AddGroup(ctx, raftgroup.GroupConfig{
					ID: rg.Group, SM: n.machine(ks, rg), Bootstrap: boot,
					HeartbeatTicks: hb, ElectionTicks: el, Campaign: rg.Replicas[0] == n.cfg.ID,
				})
				cancel()
				if err != nil && !errors.Is(err, raftgroup.ErrGroupExists) {
					n.log.Error("cannot create replica", "keyspace", ks.Name, "shard", sh.Index, "group", rg.Group, "err", err)
				}
			}
		}
	}
}

// wallMS is the wall clock of a node whose clock is off by offset (nil:
// the system's, for the hybrid clock).
func wallMS(offset time.Duration) func() int64 {
	if offset == 0 {
		return nil
	}
	return func() int64 { return time.Now().Add(offset).UnixMilli() }
}

// hostClock is the raft host's clock for a node whose clock is off by
// offset (nil: the system's).
func hostClock(offset time.Duration) raftgroup.Clock {
	if offset == 0 {
		return nil
	}
	return raftgroup.OffsetClock{Offset: offset}
}

// Now is the time of day on this node's clock: the system's, moved by
// Config.ClockOffset. Wall-clock figures (expiry, closed timestamps,
// staleness) are read from it; durations are measured with time.Now and
// time.Since as usual, which Now does not disturb.
func (n *Node) Now() time.Time { return time.Now().Add(n.cfg.ClockOffset) }

// NowMS is Now in milliseconds since the Unix epoch: the time front ends
// stamp commands with (expiry, TTLs).
func (n *Node) NowMS() int64 { return n.Now().UnixMilli() }
