package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/storage"
)

// kvSM is a test state machine: a command "k=v" sets k to v.
type kvSM struct {
	group   uint64
	mu      sync.Mutex
	applied uint64
	// failKey, when set, is a key whose writes this replica cannot apply
	// (Apply returns errApplyFault, as on a storage failure).
	failKey string
}

var errApplyFault = errors.New("injected apply fault")

func (s *kvSM) Apply(b *storage.Batch, index uint64, cmd []byte) (any, error) {
	k, v, ok := bytes.Cut(cmd, []byte("="))
	if !ok {
		return errors.New("bad command"), nil
	}
	s.mu.Lock()
	fail := s.failKey != "" && s.failKey == string(k)
	s.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("key %s: %w", k, errApplyFault)
	}
	b.SetData(s.group, k, v)
	return string(v), nil
}

func (s *kvSM) Applied(index uint64, restored bool) error {
	s.mu.Lock()
	s.applied = index
	s.mu.Unlock()
	return nil
}

func (s *kvSM) failOn(key string) {
	s.mu.Lock()
	s.failKey = key
	s.mu.Unlock()
}

// localNet connects hosts in one process; links can be cut. Its hosts
// run on one manual clock: raft time moves only when a test ticks.
type localNet struct {
	mu    sync.Mutex
	hosts map[uint64]*Host
	cut   map[uint64]bool

	clock    *ManualClock
	inflight atomic.Int64 // messages handed to Deliver, not yet queued

	// stamps: hosts started on this network stamp their entries (an HLC
	// reading the manual clock, shifted by skewMS[id]).
	stamps bool
	skewMS map[uint64]int64
	// quiesceAfter is the hosts' Config.QuiesceAfter (0: never).
	quiesceAfter time.Duration
}

// testTick is the tick of the test hosts.
const testTick = 2 * time.Millisecond

// tick advances the clock by k ticks, letting the messages each tick
// causes settle before the next.
func (n *localNet) tick(k int) {
	for range k {
		n.clock.Advance(testTick)
		n.settle()
	}
}

// settle waits (boundedly) until no message is on its way and no host has
// queued work: what the last tick set in motion has been taken up.
func (n *localNet) settle() {
	for quiet, polls := 0, 0; quiet < 3 && polls < 10000; polls++ {
		if n.inflight.Load() == 0 && n.queuesEmpty() {
			quiet++
		} else {
			quiet = 0
		}
		runtime.Gosched()
	}
}

// whileTicking runs fn (which waits for raft: a read, an apply) and ticks
// until it returns. Time moves only while the test waits for progress
// that needs it, such as the heartbeats that revive replication to a
// follower that was down.
func (n *localNet) whileTicking(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for {
		select {
		case <-done:
			return
		default:
			n.tick(1)
		}
	}
}

// readIndex is tn.host.ReadIndex, ticking while it waits.
func readIndex(ctx context.Context, tn *testNode) (idx uint64, err error) {
	tn.net.whileTicking(func() { idx, err = tn.host.ReadIndex(ctx, 7) })
	return idx, err
}

// waitApplied is tn.host.WaitApplied, ticking while it waits.
func waitApplied(ctx context.Context, tn *testNode, idx uint64) (err error) {
	tn.net.whileTicking(func() { err = tn.host.WaitApplied(ctx, 7, idx) })
	return err
}

func (n *localNet) queuesEmpty() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		if len(h.inbox) > 0 || len(h.work) > 0 {
			return false
		}
	}
	return true
}

type localSender struct {
	net  *localNet
	from uint64
}

func (s localSender) Send(group uint64, msgs []*pb.Message) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if s.net.cut[s.from] {
		return
	}
	for _, m := range msgs {
		to := m.GetTo()
		if s.net.cut[to] {
			continue
		}
		if h := s.net.hosts[to]; h != nil {
			s.net.inflight.Add(1)
			go func() {
				defer s.net.inflight.Add(-1)
				h.Deliver(group, []*pb.Message{m})
			}()
		}
	}
}

type testNode struct {
	net   *localNet
	id    uint64
	fs    vfs.FS
	db    *storage.DB
	host  *Host
	sm    *kvSM
	fatal chan error // receives what the host reports through OnFatal
}

func startNode(t *testing.T, n *localNet, id uint64, fs vfs.FS, compact uint64) *testNode {
	t.Helper()
	return startNodeWith(t, n, id, fs, compact, []uint64{1, 2, 3})
}

func startNodeWith(t *testing.T, n *localNet, id uint64, fs vfs.FS, compact uint64, bootstrap []uint64) *testNode {
	t.Helper()
	return startNodeFull(t, n, id, fs, compact, bootstrap, nil)
}

// startNodeLogged is startNode with the host logging to logger.
func startNodeLogged(t *testing.T, n *localNet, id uint64, fs vfs.FS, compact uint64, logger *slog.Logger) *testNode {
	t.Helper()
	return startNodeFull(t, n, id, fs, compact, []uint64{1, 2, 3}, logger)
}

func startNodeFull(t *testing.T, n *localNet, id uint64, fs vfs.FS, compact uint64, bootstrap []uint64, logger *slog.Logger) *testNode {
	t.Helper()
	db, err := storage.Open("/data", storage.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	fatal := make(chan error, 1)
	var stamps *hlc.Clock
	if n.stamps {
		skew := n.skewMS[id]
		stamps = hlc.NewWithWall(uint32(id), 0, func() int64 { return n.clock.Now().UnixMilli() + skew })
	}
	h, err := New(Config{NodeID: id, DB: db, Sender: localSender{net: n, from: id}, TickInterval: testTick, CompactAfterEntries: compact, MinElectionTimeout: 40 * time.Millisecond,
		Clock: n.clock, Stamps: stamps, QuiesceAfter: n.quiesceAfter, Logger: logger, OnFatal: func(err error) { fatal <- err }})
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.hosts[id] = h
	n.mu.Unlock()
	h.Start()
	sm := &kvSM{group: 7}
	if err := h.AddGroup(context.Background(), GroupConfig{ID: 7, SM: sm, Bootstrap: bootstrap, HeartbeatTicks: 2, ElectionTicks: 20}); err != nil {
		t.Fatal(err)
	}
	return &testNode{net: n, id: id, fs: fs, db: db, host: h, sm: sm, fatal: fatal}
}

func (tn *testNode) stop(n *localNet) {
	n.mu.Lock()
	delete(n.hosts, tn.id)
	n.mu.Unlock()
	tn.host.Stop()
	_ = tn.db.Close()
}

// startCluster starts nodes 1-3 of group 7 on in-memory filesystems.
func startCluster(t *testing.T, compact uint64) (*localNet, []*testNode) {
	t.Helper()
	n := newLocalNet()
	var nodes []*testNode
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, startNode(t, n, id, vfs.NewMem(), compact))
	}
	return n, nodes
}

// stopAll stops every node that is running.
func stopAll(n *localNet, nodes []*testNode) {
	for _, tn := range nodes {
		if tn != nil {
			tn.stop(n)
		}
	}
}

func newLocalNet() *localNet {
	return &localNet{hosts: map[uint64]*Host{}, cut: map[uint64]bool{}, clock: NewManualClock(time.Unix(1e9, 0))}
}

// maxElectionTicks bounds the ticks a test drives while it waits for a
// leader: a hundred election timeouts of 20 ticks.
const maxElectionTicks = 2000

// leaderOf returns the node among nodes that leads group 7 (0: none).
func leaderOf(nodes []*testNode) uint64 {
	for _, tn := range nodes {
		if tn == nil {
			continue
		}
		if st, ok := tn.host.Status(7); ok && st.Lead == tn.id {
			return tn.id
		}
	}
	return 0
}

// netOf is the network of the first node of nodes.
func netOf(nodes []*testNode) *localNet {
	for _, tn := range nodes {
		if tn != nil {
			return tn.net
		}
	}
	panic("no node")
}

// waitLeader ticks until one of nodes leads group 7 and returns it.
func waitLeader(t *testing.T, nodes []*testNode) uint64 {
	t.Helper()
	return waitLeaderIs(t, nodes, 0)
}

// waitLeaderIs ticks until one of nodes (want, unless 0) leads group 7.
func waitLeaderIs(t *testing.T, nodes []*testNode, want uint64) uint64 {
	t.Helper()
	n := netOf(nodes)
	for range maxElectionTicks {
		if id := leaderOf(nodes); id != 0 && (want == 0 || id == want) {
			return id
		}
		n.tick(1)
	}
	t.Fatalf("no leader (want %d) after %d ticks", want, maxElectionTicks)
	return 0
}

// propose sends cmd to the group's leader, retrying while leadership
// moves; while no leader is known, it ticks.
func propose(ctx context.Context, t *testing.T, nodes []*testNode, cmd []byte) (Result, error) {
	for {
		for _, tn := range nodes {
			if tn == nil {
				continue
			}
			if st, ok := tn.host.Status(7); ok && st.Lead == tn.id {
				r, err := tn.host.Propose(ctx, 7, cmd)
				if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrDropped) {
					continue
				}
				return r, err
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		netOf(nodes).tick(1)
	}
}

func TestProposeReadAndRestart(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		r, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v%d", i%5, i))
		if err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
		if got, want := r.Value, fmt.Sprintf("v%d", i); got != want {
			t.Fatalf("result %v, want %v", got, want)
		}
	}
	// A linearizable read on every node sees the last write.
	for _, tn := range nodes {
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatal(err)
		}
		v, ok, err := tn.db.Get(7, []byte("k4"))
		if err != nil || !ok || string(v) != "v49" {
			t.Fatalf("node %d: k4=%q %v %v, want v49", tn.id, v, ok, err)
		}
	}
	// Restart node 2 from its data and check it keeps its data and rejoins.
	fs := nodes[1].fs
	nodes[1].stop(n)
	nodes[1] = startNode(t, n, 2, fs, 0)
	if v, ok, _ := nodes[1].db.Get(7, []byte("k4")); !ok || string(v) != "v49" {
		t.Fatalf("after restart k4=%q, want v49", v)
	}
	if _, err := propose(ctx, t, nodes, []byte("after=restart")); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotCatchUp(t *testing.T) {
	n, nodes := startCluster(t, 100)
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	// Take node 3 down while many writes happen and the log is truncated.
	fs3 := nodes[2].fs
	nodes[2].stop(n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 1000 {
		if _, err := propose(ctx, t, nodes[:2], fmt.Appendf(nil, "key%03d=%d", i%300, i)); err != nil {
			t.Fatalf("propose %d: %v", i, err)
		}
	}
	if st, _ := nodes[0].host.Status(7); st.FirstIndex < 500 {
		t.Fatalf("log not truncated: first index %d", st.FirstIndex)
	}
	nodes[2] = startNode(t, n, 3, fs3, 100)
	idx, err := readIndex(ctx, nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := waitApplied(ctx, nodes[2], idx); err != nil {
		t.Fatal(err)
	}
	for i := 700; i < 1000; i++ {
		k := fmt.Sprintf("key%03d", i%300)
		v, ok, _ := nodes[2].db.Get(7, []byte(k))
		if !ok || string(v) != fmt.Sprint(i) {
			t.Fatalf("%s=%q on the caught-up node, want %d", k, v, i)
		}
	}
}

func TestNoQuorumFailsInBoundedTime(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	leader := waitLeader(t, nodes)
	n.mu.Lock()
	for id := uint64(1); id <= 3; id++ {
		n.cut[id] = id != leader
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := nodes[leader-1].host.Propose(ctx, 7, []byte("x=y"))
	if errors.Is(err, ErrNotLeader) {
		return // it already stepped down (check quorum): refused at once
	}
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("propose without quorum: %v, want ErrTimeout or ErrNotLeader", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap the context's", err)
	}
	if _, err := nodes[0].host.Propose(context.Background(), 99, []byte("x=y")); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("unknown group: %v", err)
	}
}

func TestMembershipChanges(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	confChange := func(typ pb.ConfChangeType, id uint64) {
		t.Helper()
		cc := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: &typ, NodeId: &id}}}
		for {
			leader := waitLeader(t, nodes)
			err := nodes[leader-1].host.ProposeConfChange(ctx, 7, cc)
			if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrDropped) {
				continue
			}
			if err != nil {
				t.Fatalf("conf change %v %d: %v", typ, id, err)
			}
			return
		}
	}
	// Two membership changes at once: raft accepts one and refuses the
	// other, which must fail at once with ErrDropped (retryable), not hang.
	{
		leader := waitLeader(t, nodes)
		errs := make(chan error, 2)
		for _, id := range []uint64{5, 6} {
			go func() {
				typ := pb.ConfChangeAddLearnerNode
				errs <- nodes[leader-1].host.ProposeConfChange(ctx, 7, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: &typ, NodeId: &id}}})
			}()
		}
		dropped := 0
		for range 2 {
			err := <-errs
			if errors.Is(err, ErrDropped) {
				dropped++
			} else if err != nil && !errors.Is(err, ErrNotLeader) {
				t.Fatalf("concurrent membership change: %v", err)
			}
		}
		t.Logf("%d of 2 concurrent membership changes refused at once", dropped)
	}
	// A new, empty replica joins as a learner and is caught up by snapshot
	// (its log is empty and the leader's starts after the bootstrap index).
	nodes = append(nodes, startNodeWith(t, n, 4, vfs.NewMem(), 0, nil))
	confChange(pb.ConfChangeAddLearnerNode, 4)
	testutil.Eventually(t, 10*time.Second, "node 1 sees 4 as a learner", func() bool {
		st, _ := nodes[0].host.Status(7)
		return slices.Contains(st.Learners, 4)
	})
	idx, err := readIndex(ctx, nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := waitApplied(ctx, nodes[3], idx); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := nodes[3].db.Get(7, []byte("k19")); !ok || string(v) != "v19" {
		t.Fatalf("learner has k19=%q", v)
	}
	// Promote it, then remove node 1: the group keeps working with 2, 3, 4.
	confChange(pb.ConfChangeAddNode, 4)
	confChange(pb.ConfChangeRemoveNode, 1)
	testutil.Eventually(t, 10*time.Second, "node 4 sees voters 2, 3, 4", func() bool {
		st, _ := nodes[3].host.Status(7)
		return slices.Equal(sortedCopy(st.Voters), []uint64{2, 3, 4})
	})
	if _, err := propose(ctx, t, nodes[1:], []byte("after=removal")); err != nil {
		t.Fatal(err)
	}
	// Leadership can be handed over explicitly.
	leader := waitLeader(t, nodes[1:])
	target := uint64(2)
	if leader == 2 {
		target = 3
	}
	if err := nodes[leader-1].host.TransferLeader(ctx, 7, target); err != nil {
		t.Fatal(err)
	}
	waitLeaderIs(t, nodes[1:], target)
}

func sortedCopy(s []uint64) []uint64 {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestLeaderKnownWhileLoopBusy: where to propose and whether an index is
// applied are answered from what the loop published, even while the loop
// is busy (as it is during a round's fsync); the change channel still
// closes when the leader changes.
func TestLeaderKnownWhileLoopBusy(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	lead := waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := propose(ctx, t, nodes, []byte("k=v"))
	if err != nil {
		t.Fatal(err)
	}
	var follower *testNode
	for _, tn := range nodes {
		if tn.id != lead {
			follower = tn
			break
		}
	}
	testutil.Eventually(t, 10*time.Second, "the follower applied the write", func() bool {
		n.tick(1)
		st, _ := follower.host.Status(7)
		return st.Applied >= r.Index && st.Lead == lead
	})

	// Hold the follower's loop.
	release := holdLoop(follower.host)
	type answer struct {
		changed <-chan struct{}
		lead    uint64
		err     error
		waitErr error
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		a.changed, a.lead, a.err = follower.host.LeaderChanged(ctx, 7)
		a.waitErr = follower.host.WaitApplied(ctx, 7, r.Index)
		answered <- a
	}()
	var changed <-chan struct{}
	select {
	case a := <-answered:
		if a.err != nil || a.lead != lead || a.waitErr != nil {
			t.Fatalf("while the loop is busy: LeaderChanged gave leader %d, err %v (want %d); WaitApplied of an applied index: %v", a.lead, a.err, lead, a.waitErr)
		}
		changed = a.changed
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("LeaderChanged or WaitApplied waited for the busy loop")
	}
	if _, _, err := follower.host.LeaderChanged(context.Background(), 99); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("LeaderChanged of an unknown group: %v, want ErrUnknownGroup", err)
	}
	close(release)

	// A new leader closes the channel, and the new answer names it.
	var other uint64
	for _, tn := range nodes {
		if tn.id != lead {
			other = tn.id
			break
		}
	}
	for _, tn := range nodes {
		if tn.id == lead {
			if err := tn.host.TransferLeader(ctx, 7, other); err != nil {
				t.Fatal(err)
			}
		}
	}
	testutil.Eventually(t, 10*time.Second, "the change channel closed", func() bool {
		n.tick(1)
		select {
		case <-changed:
			return true
		default:
			return false
		}
	})
	testutil.Eventually(t, 10*time.Second, "the new leader published", func() bool {
		n.tick(1)
		_, got, err := follower.host.LeaderChanged(ctx, 7)
		return err == nil && got == other
	})
}

// TestProposalWithdrawnBeforeTheLoopTookIt: a proposal whose context ends
// while it waits for a busy loop is withdrawn: the caller hears that
// nothing happened (ErrDropped, not an unknown outcome), and the command
// is never applied.
func TestProposalWithdrawnBeforeTheLoopTookIt(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	lead := waitLeader(t, nodes)
	leader := nodes[lead-1]
	release := holdLoop(leader.host)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	proposed := make(chan error, 1)
	go func() {
		_, err := leader.host.Propose(short, 7, []byte("withdrawn=1"))
		proposed <- err
	}()
	var err error
	select {
	case err = <-proposed:
		close(release)
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Propose waited for the busy loop past its context")
	}
	if !errors.Is(err, ErrDropped) || errors.Is(err, ErrTimeout) {
		t.Fatalf("a proposal the loop never took: %v, want ErrDropped", err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := propose(ctx, t, nodes, []byte("after=1")); err != nil {
		t.Fatal(err)
	}
	if _, err := readIndex(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := leader.db.Get(7, []byte("withdrawn")); ok {
		t.Fatalf("the withdrawn proposal was applied: withdrawn=%q", v)
	}
}

// holdLoop keeps h's loop busy (running one piece of work) until the
// returned channel is closed.
func holdLoop(h *Host) chan struct{} {
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = h.do(context.Background(), func() {
			close(held)
			<-release
		})
	}()
	<-held
	return release
}

// TestProposeBuiltAsync: a proposal nobody waits for hears its outcome
// once, whichever way it ends: applied, refused (not the leader, no such
// group), not taken in time (withdrawn, never applied), or taken and
// without an outcome in time (no quorum).
func TestProposeBuiltAsync(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	lead := waitLeader(t, nodes)
	leader := nodes[lead-1]
	follower := nodes[lead%3]

	// outcome proposes cmd on tn without waiting and returns a channel
	// that gets its outcome; a second outcome fails the test.
	outcome := func(tn *testNode, group uint64, timeout time.Duration, cmd string) chan Result {
		ch := make(chan Result, 2)
		tn.host.ProposeBuiltAsync(group, timeout, func() []byte { return []byte(cmd) }, func(r Result) { ch <- r })
		return ch
	}
	wait := func(ch chan Result) Result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("no outcome")
			return Result{}
		}
	}
	once := func(ch chan Result) {
		t.Helper()
		select {
		case r := <-ch:
			t.Fatalf("a second outcome: %+v", r)
		default:
		}
	}

	applied := outcome(leader, 7, 10*time.Second, "async=1")
	r := wait(applied)
	if r.Err != nil || r.Index == 0 {
		t.Fatalf("applied: %+v", r)
	}
	if v, ok, _ := leader.db.Get(7, []byte("async")); !ok || string(v) != "1" {
		t.Fatalf("async = %q %v after the outcome, want 1", v, ok)
	}

	if r := wait(outcome(follower, 7, 10*time.Second, "x=1")); !errors.Is(r.Err, ErrNotLeader) {
		t.Fatalf("on a follower: %v, want ErrNotLeader", r.Err)
	}
	if r := wait(outcome(leader, 99, 10*time.Second, "x=1")); !errors.Is(r.Err, ErrUnknownGroup) {
		t.Fatalf("an unknown group: %v, want ErrUnknownGroup", r.Err)
	}

	// Not taken in time: withdrawn, and never applied.
	release := holdLoop(leader.host)
	withdrawn := outcome(leader, 7, 50*time.Millisecond, "withdrawn=1")
	r = wait(withdrawn)
	close(release)
	if !errors.Is(r.Err, ErrDropped) || errors.Is(r.Err, ErrTimeout) {
		t.Fatalf("a proposal the loop never took: %v, want ErrDropped", r.Err)
	}
	r = wait(outcome(leader, 7, 10*time.Second, "after=1"))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if v, ok, _ := leader.db.Get(7, []byte("withdrawn")); ok {
		t.Fatalf("the withdrawn proposal was applied: withdrawn=%q", v)
	}

	// Taken, but no quorum to commit it: a timeout.
	n.mu.Lock()
	for id := uint64(1); id <= 3; id++ {
		n.cut[id] = id != lead
	}
	n.mu.Unlock()
	r = wait(outcome(leader, 7, 200*time.Millisecond, "cut=1"))
	if !errors.Is(r.Err, ErrTimeout) && !errors.Is(r.Err, ErrNotLeader) {
		t.Fatalf("without a quorum: %v, want ErrTimeout (or ErrNotLeader, had it stepped down)", r.Err)
	}
	n.mu.Lock()
	clear(n.cut)
	n.mu.Unlock()
	for _, ch := range []chan Result{applied, withdrawn} {
		once(ch)
	}
}
