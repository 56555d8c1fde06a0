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
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
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
	// Cluster names the cluster; streams between regions carry it and a
	// node refuses a stream from another cluster. Default "meridian".
	Cluster string
	// Logger receives the node's logs. Nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 10 * time.Millisecond
	}
	if c.MinHeartbeatInterval == 0 {
		c.MinHeartbeatInterval = 100 * time.Millisecond
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = 16 << 10
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = 4 << 20
	}
	if c.LeaderCheckInterval == 0 {
		c.LeaderCheckInterval = time.Second
	}
	if c.LeaderHysteresis == 0 {
		c.LeaderHysteresis = 3 * time.Second
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = hlc.DefaultMaxOffset
	}
	if c.Cluster == "" {
		c.Cluster = "meridian"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ID == 0:
		return errors.New("node: ID must be non-zero")
	case c.Region == "":
		return errors.New("node: Region is required")
	case c.DataDir == "":
		return errors.New("node: DataDir is required")
	case c.ListenAddr == "" && c.Listener == nil:
		return errors.New("node: ListenAddr is required")
	case c.MaxKeyBytes < 1 || c.MaxValueBytes < 1:
		return errors.New("node: MaxKeyBytes and MaxValueBytes must be positive")
	}
	self := false
	for _, p := range c.Peers {
		if p.ID == 0 || p.Region == "" || p.Addr == "" {
			return fmt.Errorf("node: peer %+v needs an id, a region and an address", p)
		}
		self = self || p.ID == c.ID
	}
	if !self {
		return fmt.Errorf("node: Peers must include this node (%d)", c.ID)
	}
	return nil
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

	stop    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once
	fatal   chan error

	streams    *streamSet  // senders of async streams (streams.go)
	roles      roleState   // role changes seen (failover.go)
	closed     closedTimes // leaders' closed timestamps (reads.go)
	heartbeats heartbeats  // stream heartbeats answered without raft (streams.go)
	refusals   refusals    // when each stream's refusal was last logged (active.go)
	streamGate streamGate  // stream batches proposed here in order (streams.go)

	mu          sync.Mutex
	eligibleAt  map[uint64]time.Time // group -> since when a better leader is ready
	reconcileCh chan struct{}
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
		clock:       hlc.New(uint32(cfg.ID), cfg.MaxClockOffset),
		stop:        make(chan struct{}),
		fatal:       make(chan error, 1),
		eligibleAt:  map[uint64]time.Time{},
		reconcileCh: make(chan struct{}, 1),
		streams:     &streamSet{running: map[streamKey]*runningStream{}},
	}
	// Step 1: storage and the metadata it holds.
	db, err := storage.Open(cfg.DataDir, storage.Options{FS: cfg.FS, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.db = db
	if n.meta, err = metadata.Open(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	// Step 2: the raft host.
	n.host, err = raftgroup.New(raftgroup.Config{
		NodeID: cfg.ID, DB: db, Sender: sender{n}, TickInterval: cfg.TickInterval,
		CompactAfterEntries: cfg.CompactAfterEntries, Logger: cfg.Logger,
		// Every group's election timeout is at least ten minimum heartbeats
		// (see timing); all nodes of a cluster share these settings.
		MinElectionTimeout: 10 * time.Duration((cfg.MinHeartbeatInterval+cfg.TickInterval-1)/cfg.TickInterval) * cfg.TickInterval,
		OnFatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
			n.log.Error("node stopping after a storage failure", "err", err)
		},
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	// Step 3: the transport, with every peer we know of.
	n.tr, err = transport.New(transport.Config{
		NodeID: cfg.ID, Region: cfg.Region, ListenAddr: cfg.ListenAddr, Listener: cfg.Listener,
		Net: cfg.Net, Logger: cfg.Logger,
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
	// Step 6: background work: register nodes, create the groups the
	// metadata places here, keep leaders in their home regions.
	n.wg.Add(7)
	go n.registerLoop()
	go n.reconcileLoop()
	go n.leaderLoop()
	go n.streamLoop()
	go n.roleLoop()
	go n.closedLoop()
	go n.activeGCLoop()
	return n, nil
}

// Close stops the node. It is safe to call more than once.
func (n *Node) Close() {
	n.closeMu.Do(func() {
		close(n.stop)
		n.wg.Wait()
		_ = n.tr.Close()
		n.host.Stop()
		_ = n.db.Close()
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

// Host exposes the raft host (status, tests).
func (n *Node) Host() *raftgroup.Host { return n.host }

// Transport exposes the transport (round-trip times, tests).
func (n *Node) Transport() *transport.Transport { return n.tr }

// Fatal returns a channel that receives the error that stopped the node.
func (n *Node) Fatal() <-chan error { return n.fatal }

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

func (h handler) HandleCall(ctx context.Context, from uint64, method string, req []byte) ([]byte, error) {
	return h.n.handleCall(ctx, from, method, req)
}

func (h handler) ReportUnreachable(group, to uint64) { h.n.host.ReportUnreachable(group, to) }

func (h handler) ReportSnapshot(group, to uint64, ok bool) { h.n.host.ReportSnapshot(group, to, ok) }

// registerLoop makes sure every known node, this one first, is recorded in
// the metadata.
func (n *Node) registerLoop() {
	defer n.wg.Done()
	for {
		missing := false
		st := n.meta.State()
		for _, p := range n.knownPeers() {
			info := metadata.NodeInfo{ID: p.ID, Region: p.Region, Addr: p.Addr}
			ni, ok := st.Nodes[p.ID]
			if p.ID == n.cfg.ID {
				// This node registers itself, with its client addresses.
				info.Zone, info.RESPAddr, info.HTTPAddr = n.cfg.Zone, n.cfg.RESPAddr, n.cfg.HTTPAddr
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
				break
			}
		}
		if !missing {
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
					ID: rg.Group, SM: &kv.StateMachine{Group: rg.Group, Cluster: n.cfg.Cluster, Region: rg.Region}, Bootstrap: boot,
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

// Cluster returns the cluster's name (session tokens and streams carry it).
func (n *Node) Cluster() string { return n.cfg.Cluster }
