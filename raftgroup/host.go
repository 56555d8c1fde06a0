package raftgroup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// Sender ships raft messages of one group to their destinations. It must
// never block (the transport queues per peer and drops when full).
type Sender interface {
	Send(group uint64, msgs []*pb.Message)
}

// StateMachine applies a group's committed commands. It is called only from
// the host's loop.
type StateMachine interface {
	// Apply stages the effects of the committed command at index in b and
	// returns the result handed to the proposer. It must be deterministic:
	// every replica applies the same commands in the same order, so a
	// command that fails (a wrong type, a stale epoch, a malformed
	// argument) fails the same way everywhere and its failure belongs in
	// the result, with nothing staged.
	//
	// A non-nil error says that this replica could not apply the command
	// for a reason that is not the command's: a storage read failed, stored
	// state does not decode, an encoding this binary does not know. Other
	// replicas may well apply it; making the failure a result would let
	// this one diverge from them. The host treats the error as fatal (see
	// the package documentation): nothing of the round is committed, the
	// applied index does not move, and the host stops.
	Apply(b *storage.Batch, index uint64, cmd []byte) (any, error)
	// Applied is called after the batch holding applied commands (or an
	// installed snapshot, restored=true) has been committed. An error (the
	// state machine cannot load what was just committed) is fatal too.
	Applied(index uint64, restored bool) error
}

// Config configures a Host.
type Config struct {
	// NodeID is this node's raft id (non-zero, unique in the cluster).
	NodeID uint64
	// DB is the node's storage.
	DB *storage.DB
	// Sender ships messages.
	Sender Sender
	// TickInterval is the length of one raft tick. Default 10ms.
	TickInterval time.Duration
	// MaxSizePerMsgBytes bounds the entries in one append message. Default 1 MiB.
	MaxSizePerMsgBytes uint64
	// MaxInflightMsgs is the number of append messages in flight per
	// follower (the pipelining depth that keeps a WAN link busy). Default 256.
	MaxInflightMsgs int
	// MaxUncommittedBytes bounds the proposals a leader accepts beyond its
	// commit index (memory while a quorum is unreachable). Default 64 MiB.
	MaxUncommittedBytes uint64
	// CompactAfterEntries is how many applied entries the log keeps before
	// it is truncated; a follower that falls further behind is caught up by
	// snapshot. Default 10000.
	CompactAfterEntries uint64
	// ReadRetryInterval is how long a read waits for raft's answer to a
	// ReadIndex request before asking again (messages can be lost). Default 500ms.
	ReadRetryInterval time.Duration
	// DisableLeaseReads makes every linearizable read confirm leadership
	// with a heartbeat round, instead of being served under the leader's
	// lease (see lease.go).
	DisableLeaseReads bool
	// MinElectionTimeout is the shortest election timeout any replica of
	// any group in the cluster may use (in wall time: the smallest
	// ElectionTicks x TickInterval configured anywhere). Leases are sized
	// from it, never from this node's own timeouts, which can be longer
	// than a follower's. Zero disables lease reads.
	MinElectionTimeout time.Duration
	// Logger receives the host's and raft's logs. Nil discards.
	Logger *slog.Logger
	// Clock is the time the host runs on: raft's ticks and the wall clock
	// of leases. Nil: the system's (production). Tests pass a ManualClock
	// to drive ticks and time by hand.
	Clock Clock
	// Stamps, if set, is the node's hybrid logical clock: every proposal
	// this node's leaders append carries a commit stamp from it, never
	// below the stamps before it in the group's log (envelope.go). Nil:
	// entries carry no stamp (envelope version 1), and Mark is refused.
	Stamps *hlc.Clock
	// QuiesceAfter is how long a group must be idle (nothing proposed,
	// read, applied or touched, every replica caught up) before its
	// leader quiesces it: the group stops ticking and heartbeating until
	// something wakes it (quiesce.go). Zero: groups never quiesce.
	QuiesceAfter time.Duration
	// BeatInterval is how often a host whose quiesced groups have
	// followers elsewhere tells those nodes it is alive (one message per
	// node, not per group). Default 10 ticks.
	BeatInterval time.Duration
	// OnFatal is called once, on a goroutine of its own, when the host
	// stops on a fatal error: persisting raft state failed, or a state
	// machine could not apply a committed command (StateMachine.Apply).
	// The host has stopped when it is called; the node should stop too.
	OnFatal func(error)
}

func (c *Config) setDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 10 * time.Millisecond
	}
	if c.MaxSizePerMsgBytes == 0 {
		c.MaxSizePerMsgBytes = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = 64 << 20
	}
	if c.CompactAfterEntries == 0 {
		c.CompactAfterEntries = 10000
	}
	if c.ReadRetryInterval == 0 {
		c.ReadRetryInterval = 500 * time.Millisecond
	}
	if c.BeatInterval == 0 {
		c.BeatInterval = 10 * c.TickInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("raftgroup: NodeID must be non-zero")
	case c.DB == nil:
		return errors.New("raftgroup: DB is required")
	case c.Sender == nil:
		return errors.New("raftgroup: Sender is required")
	case c.TickInterval < 0:
		return fmt.Errorf("raftgroup: TickInterval must be positive (got %v)", c.TickInterval)
	case c.MaxInflightMsgs < 0:
		return fmt.Errorf("raftgroup: MaxInflightMsgs must not be negative (got %d)", c.MaxInflightMsgs)
	case c.QuiesceAfter < 0:
		return fmt.Errorf("raftgroup: QuiesceAfter must not be negative (got %v)", c.QuiesceAfter)
	case c.BeatInterval < c.TickInterval:
		return fmt.Errorf("raftgroup: BeatInterval (%v) is shorter than TickInterval (%v)", c.BeatInterval, c.TickInterval)
	case c.ReadRetryInterval < 0:
		return fmt.Errorf("raftgroup: ReadRetryInterval must not be negative (got %v)", c.ReadRetryInterval)
	case c.MinElectionTimeout < 0:
		return fmt.Errorf("raftgroup: MinElectionTimeout must not be negative (got %v)", c.MinElectionTimeout)
	case c.MinElectionTimeout > 0 && c.MinElectionTimeout <= 2*c.TickInterval && !c.DisableLeaseReads:
		// The lease is sized from MinElectionTimeout less two ticks.
		return fmt.Errorf("raftgroup: MinElectionTimeout (%v) leaves no lease: it must exceed two ticks of TickInterval (%v)", c.MinElectionTimeout, c.TickInterval)
	case c.MaxSizePerMsgBytes > c.MaxUncommittedBytes:
		return fmt.Errorf("raftgroup: MaxSizePerMsgBytes (%d) is above MaxUncommittedBytes (%d)", c.MaxSizePerMsgBytes, c.MaxUncommittedBytes)
	}
	return nil
}

// GroupConfig describes one group hosted by the node.
type GroupConfig struct {
	// ID is the group's id (non-zero, unique in the cluster).
	ID uint64
	// SM applies the group's commands.
	SM StateMachine
	// Bootstrap lists the initial voters of a brand-new group. If the group
	// has no state on this node and Bootstrap is non-empty, the node is one
	// of the initial members and writes the initial state; if Bootstrap is
	// empty the replica starts empty and waits for a snapshot from the leader.
	Bootstrap []uint64
	// HeartbeatTicks and ElectionTicks are the raft timing in ticks.
	// Defaults 10 and 100.
	HeartbeatTicks, ElectionTicks int
	// Campaign makes this replica start an election at once if it has just
	// bootstrapped the group (the preferred replica of a new group, so the
	// group does not wait a whole election timeout for its first leader).
	Campaign bool
}

// bootstrapIndex and bootstrapTerm are the index and term of the empty
// snapshot every initial member of a new group starts from.
const (
	bootstrapIndex = 10
	bootstrapTerm  = 5
)

// Result is the outcome of an applied proposal.
type Result struct {
	Index uint64
	Value any
	// Err is set when the proposal failed as a whole (ErrDropped,
	// ErrStopped, ErrRemoved); Value is then nil.
	Err error
}

type waiter struct {
	ch chan Result
	// fn, instead of ch, hears the outcome of a proposal nobody waits for
	// (ProposeBuiltAsync): once, whichever comes first of the loop's
	// answer and the proposal's timeout (answered).
	fn       func(Result)
	answered atomic.Bool
	timer    *time.Timer // fn's timeout; set before the loop sees the waiter
	index    uint64      // log index of the proposal once the leader appended it
	// taken is set by whichever comes first: the loop taking the proposal
	// or its caller withdrawing it (submit).
	taken atomic.Bool
}

// deliver gives the waiter its outcome: on its channel, or to fn if fn
// has not heard one yet (fn runs on the caller's goroutine, the loop's
// mostly).
func (w *waiter) deliver(r Result) {
	if w.fn == nil {
		w.ch <- r
		return
	}
	if w.answered.CompareAndSwap(false, true) {
		if w.timer != nil {
			w.timer.Stop()
		}
		w.fn(r)
	}
}

type readReq struct {
	ch chan uint64 // receives the read index
}

type applyWaiter struct {
	index uint64
	ch    chan error
}

type group struct {
	id      uint64
	rn      *raft.RawNode
	store   *storage.LogStore
	sm      StateMachine
	applied uint64
	cs      *pb.ConfState

	isLeader bool
	// lead is the leader the loop last saw, with the channel it closes
	// when that changes; set by the loop only, read by anyone
	// (LeaderChanged answers without a loop round).
	lead atomic.Pointer[leadView]

	proposals map[uint64]*waiter
	// byIndex maps the log index of a pending local proposal to its id, so
	// that a different entry committed there fails it at once (ErrDropped).
	byIndex      map[uint64]uint64
	reads        map[uint64]*readReq
	applyWaiters []applyWaiter
	// subs are told (without blocking) whenever applied advances.
	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	status atomic.Pointer[Status]

	electionTicks int
	// retain: log entries after this index are kept (see RetainFor): the
	// lowest of retainBy, the holders' wishes.
	retain   atomic.Uint64
	retainMu sync.Mutex
	retainBy map[string]uint64
	// lastStamp is the highest commit stamp seen in the group's log here
	// (appended or proposed); appliedStamp the stamp of the last stamped
	// entry applied (see envelope.go).
	lastStamp    hlc.Timestamp
	appliedStamp hlc.Timestamp
	lease        lease
	// fast is what reads may use without going through the loop while
	// the lease holds (see lease.go); nil when no lease read is allowed.
	fast atomic.Pointer[fastRead]
	// noLeaseTerm: a term in which this leader sent MsgTimeoutNow and so
	// must not hold a lease any more.
	noLeaseTerm uint64
	// termStart is the index of the empty entry this leader appended when
	// it took office; ccWaiting the ids of this leader's conf changes not
	// yet seen in its log (raft replaces a refused one by an empty entry).
	termStart uint64
	ccWaiting []uint64
	// quietUntil: a replica loaded from disk ignores vote requests until
	// then (see lease.go).
	quietUntil time.Time

	// Quiescence (quiesce.go). quiesced: the group does not tick (loop
	// only; qflag mirrors it for other goroutines); qlead: the leader a
	// quiesced follower waits on; busyAt: when the loop last saw the
	// group do anything; touchedAt (Unix ns): when a reader last used it.
	quiesced  bool
	qflag     atomic.Bool
	qlead     uint64
	busyAt    time.Time
	touchedAt atomic.Int64
}

// Status is a snapshot of a group's state on this node.
type Status struct {
	Group     uint64
	ID        uint64
	Lead      uint64
	Term      uint64
	RaftState raft.StateType
	Commit    uint64
	Applied   uint64
	Voters    []uint64
	Learners  []uint64
	// Progress of each replica as seen by the leader (only on the leader):
	// the highest index known to be replicated there.
	Match map[uint64]uint64
	// RecentActive is, on the leader, whether each replica was heard from
	// within the last election timeout.
	RecentActive map[uint64]bool
	// FirstIndex and LastIndex bound this replica's log: entries before
	// FirstIndex have been truncated (a replica further behind needs a snapshot).
	FirstIndex, LastIndex uint64
	// AppliedStamp is the commit stamp of the last stamped entry applied
	// here (zero if none since the host started and none in the log's
	// tail it read back): every entry at or below Applied is stamped at
	// or before it.
	AppliedStamp hlc.Timestamp
}

// Host runs many groups on one node.
type Host struct {
	cfg Config
	log *slog.Logger

	// groups holds the hosted groups by id (uint64 -> *group), changed by
	// the loop only and read by anyone through group(): every request
	// looks its group up, and a sync.Map read of a key that is not
	// changing takes no lock word shared between cores.
	groups sync.Map

	work    chan func()
	inbox   chan inbound
	stopped chan struct{}
	done    chan struct{}
	stopOne sync.Once
	err     atomic.Pointer[error]

	nextID atomic.Uint64
	stats  hostStats // counters for Stats (metrics.go)

	clock Clock
	now   func() time.Time // clock.Now, or time.Now itself on the system clock

	wake        chan struct{} // nudges the loop (snapshot reports, more Ready)
	reportMu    sync.Mutex
	snapReports []snapReport

	q quiescence // loop only (quiesce.go)
	// leading: the groups led here (Leading).
	leading atomic.Pointer[[]uint64]
}

type inbound struct {
	group uint64
	msgs  []*pb.Message
}

// New creates a host; Start runs it.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeID),
		work:    make(chan func(), 4096),
		inbox:   make(chan inbound, 8192),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		clock:   cfg.Clock,
		now:     time.Now,
	}
	if h.clock == nil {
		h.clock = systemClock{}
	} else {
		h.now = h.clock.Now
	}
	h.nextID.Store(rand.Uint64())
	h.q = newQuiescence()
	return h, nil
}

// Start runs the loop.
func (h *Host) Start() { go h.loop() }

// Stop stops the loop and waits for it to end. Waiters fail with ErrStopped.
func (h *Host) Stop() {
	h.stopOne.Do(func() { close(h.stopped) })
	<-h.done
}

// Err returns the fatal error that stopped the host, if any.
func (h *Host) Err() error {
	if p := h.err.Load(); p != nil {
		return *p
	}
	return nil
}

// do runs fn on the loop and waits for it to return.
func (h *Host) do(ctx context.Context, fn func()) error {
	ran := make(chan struct{})
	select {
	case h.work <- func() { fn(); close(ran) }:
	case <-h.stopped:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ran:
		return nil
	case <-h.done:
		select {
		case <-ran:
			return nil
		default:
		}
		return ErrStopped
	}
}

// onGroup runs fn with the group on the loop and waits for it; it fails
// with ErrUnknownGroup if the group is not hosted here.
func (h *Host) onGroup(ctx context.Context, id uint64, fn func(g *group) error) error {
	var ferr error
	if err := h.do(ctx, func() {
		g := h.group(id)
		if g == nil {
			ferr = fmt.Errorf("%w: %d", ErrUnknownGroup, id)
			return
		}
		ferr = fn(g)
	}); err != nil {
		return err
	}
	return ferr
}

// Deliver hands messages received from the network to a group. Messages for
// groups not hosted here are dropped (raft retries).
func (h *Host) Deliver(group uint64, msgs []*pb.Message) {
	select {
	case h.inbox <- inbound{group: group, msgs: msgs}:
	case <-h.stopped:
	}
}

// ReportUnreachable tells a group's raft that a message to `to` was not sent.
// It never blocks (the transport may call it from inside Send, on the
// loop): the report is advisory and is dropped if the loop is swamped.
func (h *Host) ReportUnreachable(group, to uint64) {
	select {
	case h.work <- func() {
		if g := h.group(group); g != nil && !g.quiesced {
			g.rn.ReportUnreachable(to)
		}
	}:
	default:
	}
}

// ReportSnapshot tells a group's raft whether a snapshot reached `to`.
// It never blocks, and the report is never lost (a follower would stay
// waiting for a snapshot forever): it is queued for the loop's next round.
func (h *Host) ReportSnapshot(group, to uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	h.reportMu.Lock()
	h.snapReports = append(h.snapReports, snapReport{group: group, to: to, status: st})
	h.reportMu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

type snapReport struct {
	group, to uint64
	status    raft.SnapshotStatus
}

// takeSnapReports hands queued snapshot reports to raft (on the loop).
func (h *Host) takeSnapReports() {
	h.reportMu.Lock()
	reports := h.snapReports
	h.snapReports = nil
	h.reportMu.Unlock()
	for _, r := range reports {
		if g := h.group(r.group); g != nil {
			h.wakeGroup(g, true)
			g.rn.ReportSnapshot(r.to, r.status)
		}
	}
}

// async queues fn on the loop without waiting; dropped if the host stopped.
func (h *Host) async(fn func()) {
	select {
	case h.work <- fn:
	case <-h.stopped:
	}
}

// AddGroup starts hosting a group, loading its state from storage or
// bootstrapping it.
func (h *Host) AddGroup(ctx context.Context, gc GroupConfig) error {
	if gc.ID == 0 || gc.SM == nil {
		return errors.New("raftgroup: group needs an ID and a state machine")
	}
	if gc.HeartbeatTicks <= 0 {
		gc.HeartbeatTicks = 10
	}
	if gc.ElectionTicks <= gc.HeartbeatTicks {
		gc.ElectionTicks = 10 * gc.HeartbeatTicks
	}
	var err error
	if derr := h.do(ctx, func() { err = h.addGroupLocked(gc) }); derr != nil {
		return derr
	}
	return err
}

func (h *Host) addGroupLocked(gc GroupConfig) error {
	if h.group(gc.ID) != nil {
		return fmt.Errorf("%w: %d", ErrGroupExists, gc.ID)
	}
	store, err := h.cfg.DB.LoadLogStore(gc.ID)
	if err != nil {
		return err
	}
	bootstrapped := false
	if !store.HasState() && len(gc.Bootstrap) > 0 {
		bootstrapped = true
		b := h.cfg.DB.NewBatch()
		if err := store.StageBootstrap(b, bootstrapIndex, bootstrapTerm, gc.Bootstrap); err != nil {
			b.Close()
			return err
		}
		if err := b.Commit(true); err != nil {
			h.fatal(err)
			return err
		}
		h.stats.fsyncs.Add(1)
	}
	ap := store.Applied()
	rc := &raft.Config{
		ID:                        h.cfg.NodeID,
		ElectionTick:              gc.ElectionTicks,
		HeartbeatTick:             gc.HeartbeatTicks,
		Storage:                   store,
		Applied:                   ap.Index,
		MaxSizePerMsg:             h.cfg.MaxSizePerMsgBytes,
		MaxCommittedSizePerReady:  4 * h.cfg.MaxSizePerMsgBytes,
		MaxUncommittedEntriesSize: h.cfg.MaxUncommittedBytes,
		MaxInflightMsgs:           h.cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		StepDownOnRemoval:         true,
		// Proposals are made at the leader only (the node forwards requests
		// there), so a follower's proposal is refused at once rather than
		// forwarded into a message that may be lost without a trace.
		DisableProposalForwarding: true,
		Logger:                    raftLogger{h.log.With("group", gc.ID)},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("raftgroup: group %d: %w", gc.ID, err)
	}
	g := &group{
		id: gc.ID, rn: rn, store: store, sm: gc.SM,
		applied: ap.Index, cs: ap.ConfState,
		proposals: make(map[uint64]*waiter),
		byIndex:   make(map[uint64]uint64),
		reads:     make(map[uint64]*readReq),
	}
	g.lead.Store(&leadView{changed: make(chan struct{})})
	g.electionTicks = gc.ElectionTicks
	if !bootstrapped && store.HasState() {
		g.quietUntil = h.now().Add(time.Duration(gc.ElectionTicks) * h.cfg.TickInterval)
	}
	if first, last := store.Bounds(); last >= first {
		// The stamps this replica's log holds: a leader it becomes stamps
		// after them (stampFor).
		lo := max(first, last-min(last, tailStampEntries-1))
		if ents, err := store.Entries(lo, last+1, math.MaxUint64); err == nil {
			noteStamps(g, ents)
			for _, e := range ents {
				if s := EntryStamp(e); e.GetIndex() <= ap.Index && g.appliedStamp.Less(s) {
					g.appliedStamp = s
				}
			}
		}
	}
	store.SnapshotFunc = func() (*pb.Snapshot, error) { return h.snapshot(g) }
	h.publishStatus(g) // before other goroutines can see the group
	h.groups.Store(gc.ID, g)
	g.busyAt = h.now()
	h.q.active[gc.ID] = g
	if gc.Campaign && bootstrapped {
		if err := rn.Campaign(); err != nil {
			h.log.Warn("campaign failed", "group", gc.ID, "err", err)
		}
	}
	return nil
}

// RemoveGroup stops hosting a group and deletes its data from this node.
func (h *Host) RemoveGroup(ctx context.Context, id uint64) error {
	return h.onGroup(ctx, id, func(g *group) error {
		b := h.cfg.DB.NewBatch()
		g.store.StageDestroy(b)
		if err := b.Commit(true); err != nil {
			h.fatal(err)
			return err
		}
		h.stats.fsyncs.Add(1)
		h.failWaiters(g, ErrRemoved, ErrRemoved)
		h.wakeGroup(g, false)
		delete(h.q.active, id)
		h.groups.Delete(id)
		h.noteLeader(g)
		return nil
	})
}

// snapshot builds a snapshot of g's applied state. Called by raft from the
// loop, when the last batch has been committed, so data and applied state
// agree.
func (h *Host) snapshot(g *group) (*pb.Snapshot, error) {
	ap := g.store.Applied()
	term, err := g.store.Term(ap.Index)
	if err != nil {
		return nil, err
	}
	data, err := h.cfg.DB.EncodeGroupData(g.id)
	if err != nil {
		return nil, err
	}
	return &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{
		Index: proto.Uint64(ap.Index), Term: proto.Uint64(term), ConfState: ap.ConfState,
	}}, nil
}

func (h *Host) group(id uint64) *group {
	if g, ok := h.groups.Load(id); ok {
		return g.(*group)
	}
	return nil
}

// Groups lists the hosted group ids.
func (h *Host) Groups() []uint64 {
	var out []uint64
	h.groups.Range(func(id, _ any) bool {
		out = append(out, id.(uint64))
		return true
	})
	return out
}

// Leading returns the groups this node leads and that are not quiesced
// (a quiesced group renews no lease, so it has no closed timestamp to
// give), as the loop last saw. It takes no lock; the list is rebuilt
// only when it changes.
func (h *Host) Leading() []uint64 {
	if p := h.leading.Load(); p != nil {
		return *p
	}
	return nil
}

// noteLeader records whether g is an awake leader here. Loop only.
func (h *Host) noteLeader(g *group) {
	_, was := h.q.leaders[g.id]
	if now := g.isLeader && !g.quiesced && h.group(g.id) == g; now != was {
		if now {
			h.q.leaders[g.id] = struct{}{}
		} else {
			delete(h.q.leaders, g.id)
		}
		h.q.leadersChanged = true
	}
}

// publishLeading publishes the list Leading returns, if it changed.
func (h *Host) publishLeading() {
	if !h.q.leadersChanged {
		return
	}
	h.q.leadersChanged = false
	out := make([]uint64, 0, len(h.q.leaders))
	for id := range h.q.leaders {
		out = append(out, id)
	}
	h.leading.Store(&out)
}

// Status returns the latest published status of a group.
func (h *Host) Status(id uint64) (Status, bool) {
	g := h.group(id)
	if g == nil {
		return Status{}, false
	}
	return *g.status.Load(), true
}

// FreshStatus computes the group's status on the loop, reflecting every
// message processed so far (Status returns the one published after the
// group's last Ready, which can lag on an idle group).
func (h *Host) FreshStatus(ctx context.Context, id uint64) (Status, error) {
	var st Status
	err := h.onGroup(ctx, id, func(g *group) error {
		h.publishStatus(g)
		st = *g.status.Load()
		return nil
	})
	return st, err
}

// Leader returns the group's leader as known to this node (0 if none).
func (h *Host) Leader(id uint64) uint64 {
	st, _ := h.Status(id)
	return st.Lead
}

func (h *Host) publishStatus(g *group) {
	bs := g.rn.BasicStatus()
	st := &Status{
		Group: g.id, ID: h.cfg.NodeID, Lead: bs.Lead, Term: bs.GetTerm(), RaftState: bs.RaftState,
		Commit: bs.GetCommit(), Applied: g.applied, AppliedStamp: g.appliedStamp,
		Voters: append([]uint64(nil), g.cs.GetVoters()...), Learners: append([]uint64(nil), g.cs.GetLearners()...),
	}
	st.FirstIndex, st.LastIndex = g.store.Bounds()
	if bs.RaftState == raft.StateLeader {
		// Runs after every Ready of a leader: visit the progress in place
		// rather than copying raft's whole status.
		st.Match = make(map[uint64]uint64, len(g.cs.GetVoters())+len(g.cs.GetLearners()))
		st.RecentActive = make(map[uint64]bool, len(st.Match))
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			st.Match[id] = pr.Match
			st.RecentActive[id] = pr.RecentActive
		})
	}
	g.status.Store(st)
}

// newID returns a proposal or read id, unique with overwhelming probability
// across nodes and restarts.
// No id starts with the envelope's magic (envelope.go), so that an entry
// of version 1 is never read as a later version.
func (h *Host) newID() uint64 {
	for {
		id := h.nextID.Add(0x9e3779b97f4a7c15) ^ rand.Uint64()>>32
		if !bytes.Equal(binary.BigEndian.AppendUint64(nil, id)[:len(envelopeMagic)], envelopeMagic) {
			return id
		}
	}
}

// leadView is a group's leader as the loop last saw it (0: none known)
// and the channel the loop closes when that changes.
type leadView struct {
	id      uint64
	changed chan struct{}
}

// leader is the group's leader as the loop last saw it.
func (g *group) leader() uint64 { return g.lead.Load().id }

// setLeader records a new leader: the new view first, so that a waiter
// woken by the old channel reads it. Loop only.
func (g *group) setLeader(id uint64) {
	old := g.lead.Load()
	g.lead.Store(&leadView{id: id, changed: make(chan struct{})})
	close(old.changed)
}

// Propose replicates cmd through the group, which this replica must lead,
// and waits until it is applied here, returning the state machine's result.
//
// Errors say what is known about the outcome:
//   - ErrNotLeader, ErrDropped, ErrUnknownGroup: nothing happened (retry
//     at the leader);
//   - ErrTimeout: ctx ended after raft accepted the proposal, or the host
//     stopped meanwhile (then wrapping ErrStopped); it may or may not take
//     effect.
func (h *Host) Propose(ctx context.Context, groupID uint64, cmd []byte) (Result, error) {
	return h.ProposeBuilt(ctx, groupID, func() []byte { return cmd })
}

// ProposeBuilt is Propose with the command built on the host's loop, at
// the moment it is proposed: build is called at most once, and not at all
// if the proposal fails first (the group is unknown or led elsewhere, or
// ctx ended before the loop took it). A caller gathering commands from
// many writers into one (node's combiner) thus takes in every writer that
// arrived while the proposal waited for the loop, and delays none.
func (h *Host) ProposeBuilt(ctx context.Context, groupID uint64, build func() []byte) (Result, error) {
	id := h.newID()
	return h.submit(ctx, groupID, id, h.proposeCommand(id, build))
}

// proposeCommand is the loop's proposal of the command build returns,
// under id.
func (h *Host) proposeCommand(id uint64, build func() []byte) func(*group) error {
	return func(g *group) error {
		return g.rn.Propose(encodeEnvelope(id, h.stampFor(g, hlc.Timestamp{}), false, build()))
	}
}

// ErrNoStamps is returned by Mark on a host without Config.Stamps.
var ErrNoStamps = errors.New("raftgroup: the host stamps no entries (Config.Stamps is nil)")

// Mark appends an entry that carries no command, only a commit stamp
// after `after` (and after every stamp before it in the log), at the
// group's leader, which this replica must be, and waits until it is
// applied here. Once it returns, the group's log holds, below the mark's
// index, every entry it will ever hold that is stamped at or before
// `after`: its state at that time is sealed (package backup). Errors as
// for Propose.
func (h *Host) Mark(ctx context.Context, groupID uint64, after hlc.Timestamp) (uint64, hlc.Timestamp, error) {
	if h.cfg.Stamps == nil {
		return 0, hlc.Timestamp{}, ErrNoStamps
	}
	id := h.newID()
	var stamp hlc.Timestamp
	res, err := h.submit(ctx, groupID, id, func(g *group) error {
		stamp = h.stampFor(g, after)
		return g.rn.Propose(encodeEnvelope(id, stamp, true, nil))
	})
	if err != nil {
		// stamp is only known once the answer came (see submit).
		return 0, hlc.Timestamp{}, err
	}
	return res.Index, stamp, nil
}

// ProposeConfChange proposes a membership change at the leader and waits
// until it is applied here. Errors as for Propose.
func (h *Host) ProposeConfChange(ctx context.Context, groupID uint64, cc *pb.ConfChangeV2) error {
	id := h.newID()
	cc = proto.Clone(cc).(*pb.ConfChangeV2)
	cc.Context = binary.BigEndian.AppendUint64(nil, id)
	_, err := h.submit(ctx, groupID, id, func(g *group) error {
		if err := g.rn.ProposeConfChange(cc); err != nil {
			return err
		}
		g.ccWaiting = append(g.ccWaiting, id)
		return nil
	})
	return err
}

// submit hands a proposal to the loop and waits for its outcome. The
// caller sleeps once: the loop answers a proposal it refuses (unknown
// group, not the leader, dropped by raft) on the waiter's channel, as it
// answers one that was applied, so no wake-up only says "the loop took
// it". A caller whose ctx ends before the loop took the proposal
// withdraws it (taken is claimed by one side only): nothing was proposed,
// and the error says so (ErrDropped); once taken, the outcome is unknown
// (ErrTimeout). The caller does not wait for the loop to finish propose
// then: whatever propose sets for the caller may be read only after a
// nil error (the answer on the channel orders it).
func (h *Host) submit(ctx context.Context, groupID, id uint64, propose func(*group) error) (Result, error) {
	w := &waiter{ch: make(chan Result, 1)}
	fn := h.proposeOnLoop(groupID, id, w, propose)
	select {
	case h.work <- fn:
	case <-h.stopped:
		return Result{}, ErrStopped
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %w", ErrDropped, ctx.Err())
	}
	select {
	case r := <-w.ch:
		if r.Err != nil {
			return Result{}, r.Err
		}
		return r, nil
	case <-ctx.Done():
		if h.abandon(w, groupID, id) {
			return Result{}, fmt.Errorf("%w: %w", ErrDropped, ctx.Err())
		}
		return Result{}, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-h.done:
		if w.taken.CompareAndSwap(false, true) {
			return Result{}, ErrStopped // the loop never took it
		}
		// The host stopped, perhaps after staging this proposal's result
		// in a batch that failed to commit: the outcome is unknown.
		select {
		case r := <-w.ch:
			if r.Err != nil {
				return Result{}, r.Err
			}
			return r, nil
		default:
		}
		return Result{}, fmt.Errorf("%w: %w", ErrTimeout, ErrStopped)
	}
}

// abandon gives up waiting for proposal id (waiter w): true if the loop
// had not taken it (withdrawn: nothing was proposed); else the loop
// forgets it, and its outcome is unknown.
func (h *Host) abandon(w *waiter, groupID, id uint64) bool {
	if w.taken.CompareAndSwap(false, true) {
		return true
	}
	h.async(func() {
		if g := h.group(groupID); g != nil {
			delete(g.proposals, id)
		}
	})
	return false
}

// proposeOnLoop returns the loop's part of a proposal: unless withdrawn
// (w.taken), propose on the group if this replica leads it, and remember
// w for the outcome; a proposal refused here is answered at once.
func (h *Host) proposeOnLoop(groupID, id uint64, w *waiter, propose func(*group) error) func() {
	return func() {
		if !w.taken.CompareAndSwap(false, true) {
			return // withdrawn
		}
		g := h.group(groupID)
		var perr error
		switch {
		case g == nil:
			perr = fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
		case !g.isLeader:
			perr = fmt.Errorf("%w: group %d is led by %d", ErrNotLeader, groupID, g.leader())
		default:
			h.wakeGroup(g, true)
			if perr = propose(g); perr == nil {
				g.proposals[id] = w
				h.stats.proposals.Add(1)
				return
			}
			if errors.Is(perr, raft.ErrProposalDropped) {
				h.stats.proposalsDropped.Add(1)
				perr = fmt.Errorf("%w: %w", ErrDropped, perr)
			}
		}
		w.deliver(Result{Err: perr})
	}
}

// ProposeBuiltAsync is ProposeBuilt for a caller that does not wait:
// done hears the outcome, once, with the errors ProposeBuilt returns in
// Result.Err. It runs on the loop's goroutine (it must not wait, and must
// not call the host back and wait for the answer) or, once timeout has
// passed without an outcome, on a timer's: ErrDropped if the loop never
// took the proposal, else ErrTimeout (the outcome is unknown). The loop's
// queue is not waited for either: when it is full, a goroutine waits for
// room.
func (h *Host) ProposeBuiltAsync(groupID uint64, timeout time.Duration, build func() []byte, done func(Result)) {
	id := h.newID()
	w := &waiter{fn: done}
	fn := h.proposeOnLoop(groupID, id, w, h.proposeCommand(id, build))
	// The timer answers without deliver (which reads w.timer).
	w.timer = time.AfterFunc(timeout, func() {
		if !w.answered.CompareAndSwap(false, true) {
			return // the loop answered first
		}
		if h.abandon(w, groupID, id) {
			done(Result{Err: fmt.Errorf("%w: not taken within %v", ErrDropped, timeout)})
		} else {
			done(Result{Err: fmt.Errorf("%w: no outcome within %v", ErrTimeout, timeout)})
		}
	})
	select {
	case h.work <- fn:
		return
	default:
	}
	go func() {
		select {
		case h.work <- fn:
		case <-h.stopped:
			if w.taken.CompareAndSwap(false, true) {
				w.deliver(Result{Err: ErrStopped})
			}
		}
	}()
}

// LeaderChanged returns a channel closed when the group's leader, as known
// to this replica, changes; and the current leader (0: none known). It
// reads what the loop last published, without waiting for the loop: a
// writer learns where to propose without a loop round of its own (which
// could wait for a whole fsync). The answer is as current as the loop's
// own view was; a proposal to a leader that has just lost its place fails
// with ErrNotLeader, and the channel tells when to try again.
func (h *Host) LeaderChanged(ctx context.Context, groupID uint64) (<-chan struct{}, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	select {
	case <-h.stopped:
		return nil, 0, ErrStopped
	default:
	}
	g := h.group(groupID)
	if g == nil {
		return nil, 0, fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
	}
	v := g.lead.Load()
	return v.changed, v.id, nil
}

func (h *Host) ctxErr(err, kind error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", kind, err)
	}
	return err
}

// ReadIndex waits until this replica has applied every write committed
// before the call (a linearizable read point, confirmed with the leader by
// a heartbeat round to a quorum); the caller then reads local storage.
// It returns the read index.
func (h *Host) ReadIndex(ctx context.Context, groupID uint64) (uint64, error) {
	if idx, _, ok := h.fastReadIndex(groupID); ok {
		return idx, nil
	}
	for {
		id := h.newID()
		rq := &readReq{ch: make(chan uint64, 1)}
		var gerr error
		if err := h.do(ctx, func() {
			g := h.group(groupID)
			if g == nil {
				gerr = fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
				return
			}
			h.wakeGroup(g, true)
			g.touchedAt.Store(h.now().UnixNano())
			if h.leaseValid(g, h.now()) {
				// Under the lease: the commit index is a linearizable read point.
				h.stats.leaseReads.Add(1)
				rq.ch <- g.commitIndex()
				return
			}
			g.reads[id] = rq
			g.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, id))
			h.stats.readIndex.Add(1)
		}); err != nil {
			return 0, h.ctxErr(err, ErrNoLeader)
		}
		if gerr != nil {
			return 0, gerr
		}
		t := time.NewTimer(h.cfg.ReadRetryInterval)
		select {
		case idx := <-rq.ch:
			t.Stop()
			if err := h.WaitApplied(ctx, groupID, idx); err != nil {
				return 0, err
			}
			return idx, nil
		case <-t.C:
			// The request or its answer was lost, or there is no leader;
			// reads are idempotent, so ask again.
			h.async(func() {
				if g := h.group(groupID); g != nil {
					delete(g.reads, id)
				}
			})
		case <-ctx.Done():
			t.Stop()
			h.async(func() {
				if g := h.group(groupID); g != nil {
					delete(g.reads, id)
				}
			})
			return 0, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-h.done:
			t.Stop()
			return 0, ErrStopped
		}
	}
}

// WaitApplied waits until the group has applied index on this node.
func (h *Host) WaitApplied(ctx context.Context, groupID, index uint64) error {
	// Already applied, by what the loop published after its last round (a
	// round publishes only once its batch is committed): no loop round.
	if g := h.group(groupID); g != nil {
		if st := g.status.Load(); st != nil && st.Applied >= index {
			return nil
		}
	}
	ch := make(chan error, 1)
	if err := h.onGroup(ctx, groupID, func(g *group) error {
		if g.applied >= index {
			ch <- nil
		} else {
			h.wakeGroup(g, true)
			g.applyWaiters = append(g.applyWaiters, applyWaiter{index: index, ch: ch})
		}
		return nil
	}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		h.async(func() {
			if g := h.group(groupID); g != nil {
				g.applyWaiters = slices.DeleteFunc(g.applyWaiters, func(aw applyWaiter) bool { return aw.ch == ch })
			}
		})
		return fmt.Errorf("raftgroup: waiting for index %d: %w", index, ctx.Err())
	case <-h.done:
		return ErrStopped
	}
}

// TransferLeader asks the group's leader (which must be this node) to hand
// leadership to `to`.
func (h *Host) TransferLeader(ctx context.Context, groupID, to uint64) error {
	return h.onGroup(ctx, groupID, func(g *group) error {
		// The transferee will campaign regardless of leases: stop serving
		// reads under ours now.
		g.lease = lease{}
		g.fast.Store(nil)
		h.wakeGroup(g, true)
		g.rn.TransferLeader(to)
		return nil
	})
}

// Campaign makes this replica start an election.
func (h *Host) Campaign(ctx context.Context, groupID uint64) error {
	return h.onGroup(ctx, groupID, func(g *group) error {
		h.wakeGroup(g, false)
		return g.rn.Campaign()
	})
}

// failWaiters fails g's pending proposals with proposalErr and its apply
// waiters with err.
func (h *Host) failWaiters(g *group, proposalErr, err error) {
	for id, w := range g.proposals {
		w.deliver(Result{Err: proposalErr})
		delete(g.proposals, id)
	}
	clear(g.byIndex)
	for _, aw := range g.applyWaiters {
		aw.ch <- err
	}
	g.applyWaiters = nil
}

// fatal stops the host for good: err is a storage failure or a command a
// state machine could not apply. The loop stops at once (no later round
// persists anything), every waiter fails (proposals with an unknown
// outcome: other replicas may apply them), and OnFatal is told.
func (h *Host) fatal(err error) {
	if h.err.CompareAndSwap(nil, &err) {
		h.log.Error("fatal error; stopping the node", "err", err)
		h.stopOne.Do(func() { close(h.stopped) })
		if h.cfg.OnFatal != nil {
			go h.cfg.OnFatal(err)
		}
	}
}
