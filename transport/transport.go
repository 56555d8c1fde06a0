package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/keepalive"

	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/transport/transportpb"
)

var (
	// ErrUnreachable is wrapped by errors about a peer that is unknown,
	// cannot be dialled, or is cut off by the network.
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrNotSent is wrapped (together with ErrUnreachable) by Call errors
	// that happened before the request left this node, or that the peer
	// refused before handling it (ErrWrongCluster): the peer certainly did
	// not run it.
	ErrNotSent = errors.New("transport: request not sent")
	// ErrClosed is returned by operations on a closed Transport.
	ErrClosed = errors.New("transport: closed")
	// ErrInvalidConfig is wrapped by the errors New returns for a bad Config.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrWrongCluster is wrapped by errors about a peer that belongs to
	// another cluster and refused the request (Call errors also wrap
	// ErrUnreachable and ErrNotSent: the peer ran nothing).
	ErrWrongCluster = errors.New("transport: peer belongs to another cluster")
)

// Envelope is a raft message for one raft group.
type Envelope struct {
	Group uint64
	Msg   *raftpb.Message
}

// Handler receives what peers send. Its methods may be called concurrently
// and must not block for long: HandleRaft and the Report methods run on
// network goroutines, and ReportUnreachable and ReportSnapshot may also be
// called from inside Send. Handler methods must not call Transport.Close.
type Handler interface {
	// HandleRaft receives the messages of one batch frame from peer from, in
	// the order they were sent. Batches from one peer arrive in order, except
	// around a reconnection; snapshots arrive on their own, as a batch of one.
	HandleRaft(from uint64, batch []Envelope)
	// ReportUnreachable says that a message for group could not be sent to
	// peer to (unknown peer, queue full, connection broken, link cut).
	ReportUnreachable(group, to uint64)
	// ReportSnapshot gives the outcome of sending a MsgSnap for group to peer
	// to: ok is true once the peer has received the whole snapshot and handed
	// it to its Handler.
	ReportSnapshot(group, to uint64, ok bool)
}

// Peer identifies another node.
type Peer struct {
	ID     uint64
	Region string // region name, as known to the netsim matrix
	Addr   string // host:port of its transport
}

// Defaults for the zero fields of Config.
const (
	DefaultMaxBatchBytes      = 4 << 20
	DefaultSnapshotChunkBytes = 1 << 20
	DefaultMaxSnapshotBytes   = 1 << 30
	DefaultMaxMessageBytes    = 64 << 20
	DefaultPeerQueueLen       = 8192
	DefaultPingInterval       = 500 * time.Millisecond
	DefaultDialTimeout        = 2 * time.Second
)

// frameSlackBytes is the room left in a gRPC message for framing around a
// batch frame or snapshot chunk.
const frameSlackBytes = 64 << 10

// Config configures a Transport.
type Config struct {
	// NodeID is this node's id; it must not be 0.
	NodeID uint64
	// Cluster is the identity of the node's cluster (required). Every
	// request and stream carries it, and a node refuses those of another
	// cluster, so that nodes of two clusters never exchange anything even
	// when one is given the other's address.
	Cluster string
	// Region is this node's region, registered in Net.
	Region string
	// ListenAddr is the address to listen on, e.g. "127.0.0.1:0". It is
	// ignored if Listener is set.
	ListenAddr string
	// Listener is an optional pre-opened listener. The Transport owns it
	// from New on and closes it in Close (or when New fails).
	Listener net.Listener
	// Net shapes all traffic this node sends. nil means netsim.Identity().
	// The Transport does not close it.
	Net *netsim.Network
	// Logger receives the transport's logs; nil discards them.
	Logger *slog.Logger
	// MaxBatchBytes bounds one batch frame (default 4 MiB). A single message
	// larger than this still goes, alone in its frame.
	MaxBatchBytes int
	// SnapshotChunkBytes is the chunk size of snapshot streams (default
	// 1 MiB).
	SnapshotChunkBytes int
	// MaxSnapshotBytes is the largest marshalled snapshot message this node
	// accepts (default 1 GiB).
	MaxSnapshotBytes int64
	// MaxMessageBytes is the largest gRPC message this node accepts: a batch
	// frame, a snapshot chunk, a call request or a call response. The
	// default is the larger of 64 MiB and what MaxBatchBytes and
	// SnapshotChunkBytes need.
	MaxMessageBytes int
	// PeerQueueLen is the number of messages queued per peer (default
	// 8192). When the queue is full, Send drops the message and reports the
	// peer unreachable.
	PeerQueueLen int
	// PingInterval is the time between two RTT probes of a peer (default
	// 500ms). A negative value disables pinging.
	PingInterval time.Duration
	// DialTimeout bounds the establishment of a connection to a peer
	// (default 2s).
	DialTimeout time.Duration
	// Services are the node's own gRPC services, served to its peers (see
	// Conn and FromContext).
	Services []Service
	// Security, if set, secures every connection with mutual TLS, and
	// the sender of a request is the node its certificate names (see
	// security.go). Nil: plaintext, and the sender is the id its
	// metadata claims (loopback and trusted networks only).
	Security Security
}

func (c *Config) setDefaults() error {
	if c.NodeID == 0 {
		return fmt.Errorf("%w: NodeID must not be 0", ErrInvalidConfig)
	}
	if c.Cluster == "" {
		return fmt.Errorf("%w: Cluster is required", ErrInvalidConfig)
	}
	if c.Listener == nil && c.ListenAddr == "" {
		return fmt.Errorf("%w: neither ListenAddr nor Listener is set", ErrInvalidConfig)
	}
	if c.MaxBatchBytes < 0 || c.SnapshotChunkBytes < 0 || c.MaxSnapshotBytes < 0 ||
		c.MaxMessageBytes < 0 || c.PeerQueueLen < 0 || c.DialTimeout < 0 {
		return fmt.Errorf("%w: negative size, length or timeout", ErrInvalidConfig)
	}
	if c.Net == nil {
		c.Net = netsim.Identity()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.SnapshotChunkBytes == 0 {
		c.SnapshotChunkBytes = DefaultSnapshotChunkBytes
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	need := max(c.MaxBatchBytes, c.SnapshotChunkBytes) + frameSlackBytes
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = max(DefaultMaxMessageBytes, need)
	} else if c.MaxMessageBytes < need {
		return fmt.Errorf("%w: MaxMessageBytes %d is below the %d that MaxBatchBytes and SnapshotChunkBytes need",
			ErrInvalidConfig, c.MaxMessageBytes, need)
	}
	if c.PeerQueueLen == 0 {
		c.PeerQueueLen = DefaultPeerQueueLen
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return nil
}

// Transport connects one node to its peers. It is safe for concurrent use.
type Transport struct {
	cfg      Config
	h        Handler
	net      *netsim.Network
	log      *slog.Logger
	lis      net.Listener
	srv      *grpc.Server
	dialOpts []grpc.DialOption

	// ctx is cancelled by Close; every stream, dial and wait hangs off it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex
	closed bool
	peers  map[uint64]*peer
	wg     sync.WaitGroup // goroutines started by the Transport

	// cbMu lets Close wait for handler callbacks that run on goroutines the
	// Transport does not own (netsim link goroutines).
	cbMu     sync.RWMutex
	cbClosed bool

	rttMu      sync.Mutex
	rttChanged chan struct{} // closed and replaced whenever an RTT sample lands
	reachable  chan struct{} // closed and replaced whenever a peer becomes Healthy again

	// sent counts the bytes sent per peer id (see BytesSent); entries are
	// added, never removed.
	sentMu sync.RWMutex
	sent   map[uint64]*atomic.Uint64

	// refused rate-limits the warnings about requests from other clusters.
	refused refusals

	closeOnce sync.Once
}

// New starts a Transport for cfg.NodeID: it listens, serves peers over gRPC
// (mutual TLS with cfg.Security, plaintext without) and registers the
// node in cfg.Net.
func New(cfg Config, h Handler) (*Transport, error) {
	if err := cfg.setDefaults(); err != nil {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, err
	}
	if h == nil {
		if cfg.Listener != nil {
			cfg.Listener.Close()
		}
		return nil, fmt.Errorf("%w: nil Handler", ErrInvalidConfig)
	}
	lis := cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("transport: listen on %s: %w", cfg.ListenAddr, err)
		}
	}

	t := &Transport{
		cfg:        cfg,
		h:          h,
		net:        cfg.Net,
		log:        cfg.Logger.With("component", "transport", "node", cfg.NodeID),
		lis:        lis,
		peers:      map[uint64]*peer{},
		rttChanged: make(chan struct{}),
		reachable:  make(chan struct{}),
		sent:       map[uint64]*atomic.Uint64{},
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.dialOpts = []grpc.DialOption{ // credentials per peer: dialOptions
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  redialBackoffMin,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   redialBackoffMax,
			},
			MinConnectTimeout: cfg.DialTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
	}
	svc := &service{t: t}
	t.srv = grpc.NewServer(
		t.serverCreds(),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.UnaryInterceptor(svc.interceptor),
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveTime / 2,
			PermitWithoutStream: true,
		}),
		grpc.WaitForHandlers(true),
	)
	transportpb.RegisterTransportServer(t.srv, svc)
	for _, sv := range cfg.Services {
		t.srv.RegisterService(sv.Desc, sv.Impl)
	}
	t.net.AddNode(cfg.NodeID, cfg.Region)

	if cfg.Security != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.watchSecurity()
		}()
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		if err := t.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.log.Error("gRPC server stopped", "err", err)
		}
	}()
	t.log.Info("transport started", "addr", lis.Addr().String(), "region", cfg.Region)
	return t, nil
}

// Addr returns the address the Transport listens on.
func (t *Transport) Addr() string {
	return t.lis.Addr().String()
}

// SetPeer adds peer p or updates it, and records its region in the network.
// Connections are made lazily. Changing a peer's address drops its current
// connection. SetPeer ignores p.ID 0 and this node's own id.
func (t *Transport) SetPeer(p Peer) {
	if p.ID == 0 || p.ID == t.cfg.NodeID {
		t.log.Warn("ignoring peer with reserved id", "peer", p.ID)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.net.AddNode(p.ID, p.Region)
	if old := t.peers[p.ID]; old != nil {
		old.update(p)
		return
	}
	pr := newPeer(t, p)
	t.peers[p.ID] = pr
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		pr.runSender()
	}()
	if t.cfg.PingInterval > 0 {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			pr.runPinger()
		}()
	}
	t.log.Debug("peer added", "peer", p.ID, "addr", p.Addr, "region", p.Region)
}

// RemovePeer forgets a peer: its queued messages are dropped, its connection
// closed and its RTT forgotten.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.shutdown()
		t.log.Debug("peer removed", "peer", id)
	}
}

// Peers returns the known peers ordered by id.
func (t *Transport) Peers() []Peer {
	t.mu.RLock()
	out := make([]Peer, 0, len(t.peers))
	for _, id := range slices.Sorted(maps.Keys(t.peers)) {
		out = append(out, t.peers[id].peerInfo())
	}
	t.mu.RUnlock()
	return out
}

func (t *Transport) peer(id uint64) (*peer, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return nil, ErrClosed
	}
	p := t.peers[id]
	if p == nil {
		return nil, fmt.Errorf("%w: unknown peer %d", ErrUnreachable, id)
	}
	return p, nil
}

type groupTo struct{ group, to uint64 }

// Send queues raft messages for their peers, routing each by Msg.GetTo(). It
// never blocks. A message for an unknown peer, or for a peer whose queue is
// full, is dropped and reported through Handler.ReportUnreachable (from
// inside Send). MsgSnap messages are streamed separately and their outcome
// reported through Handler.ReportSnapshot. The messages must not be modified
// after Send.
func (t *Transport) Send(envs []Envelope) {
	var unreachable []groupTo
	var snaps []Envelope
	var snapPeers []*peer
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return
	}
	for _, e := range envs {
		if e.Msg == nil {
			continue
		}
		to := e.Msg.GetTo()
		p := t.peers[to]
		switch {
		case p == nil:
			unreachable = append(unreachable, groupTo{e.Group, to})
			if e.Msg.GetType() == raftpb.MessageType_MsgSnap {
				snaps = append(snaps, e)
				snapPeers = append(snapPeers, nil)
			}
		case e.Msg.GetType() == raftpb.MessageType_MsgSnap:
			snaps = append(snaps, e)
			snapPeers = append(snapPeers, p)
		default:
			select {
			case p.queue <- e:
			default:
				unreachable = append(unreachable, groupTo{e.Group, to})
			}
		}
	}
	// Start the snapshot goroutines while still holding the read lock, so
	// that Close (which takes the write lock first) waits for them.
	for i, e := range snaps {
		if p := snapPeers[i]; p != nil {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				p.sendSnapshot(e)
			}()
		}
	}
	t.mu.RUnlock()

	for _, u := range unreachable {
		t.h.ReportUnreachable(u.group, u.to)
	}
	for i, e := range snaps {
		if snapPeers[i] == nil {
			t.h.ReportSnapshot(e.Group, e.Msg.GetTo(), false)
		}
	}
}

// callback runs a handler callback unless the Transport is closing. Close
// waits for callbacks in progress. It must only be used on goroutines that
// are not the caller's (a handler may call back into Send).
func (t *Transport) callback(f func()) bool {
	t.cbMu.RLock()
	defer t.cbMu.RUnlock()
	if t.cbClosed || t.ctx.Err() != nil {
		return false
	}
	f()
	return true
}

func (t *Transport) reportUnreachable(groups []uint64, to uint64) {
	t.callback(func() {
		for _, g := range groups {
			t.h.ReportUnreachable(g, to)
		}
	})
}

// Close stops the server, closes every connection, stops every goroutine the
// Transport started and waits for handler callbacks in progress. Queued
// messages are dropped without being reported. Close is idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		peers := t.peers
		t.peers = map[uint64]*peer{}
		t.mu.Unlock()

		t.cancel()
		for _, p := range peers {
			p.shutdown()
		}
		t.srv.Stop() // also closes the listener; waits for handlers
		t.wg.Wait()

		t.cbMu.Lock()
		t.cbClosed = true
		t.cbMu.Unlock()
		t.log.Info("transport closed")
	})
	return nil
}
