package raftgroup

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"
)

// quiesceAfterTicks is the idle time of the quiescence tests, in ticks.
const quiesceAfterTicks = 20

// quietCluster starts three nodes whose groups quiesce after
// quiesceAfterTicks idle ticks, elects a leader and writes once.
func quietCluster(t *testing.T) (*localNet, []*testNode, *testNode) {
	t.Helper()
	n := newLocalNet()
	n.quiesceAfter = quiesceAfterTicks * testTick
	nodes, leader := writtenCluster(t, n)
	return n, nodes, leader
}

func allQuiesced(nodes []*testNode) bool {
	for _, tn := range nodes {
		if tn != nil && tn.host.Quiesced() != 1 {
			return false
		}
	}
	return true
}

// TestIdleGroupQuiesces: an idle group stops ticking on every replica;
// while it is quiet the nodes exchange only beats (one per node per beat
// interval), and a proposal wakes it and commits.
func TestIdleGroupQuiesces(t *testing.T) {
	n, nodes, leader := quietCluster(t)
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced group", func() bool { return allQuiesced(nodes) })

	sent := func() (s uint64) {
		for _, tn := range nodes {
			s += tn.host.Stats().MessagesSent
		}
		return s
	}
	before := sent()
	const quietTicks = 500
	n.tick(quietTicks)
	beatTicks := int(leader.host.cfg.BeatInterval / testTick)
	// Only the leader's node beats, to its two followers' nodes.
	if got, max := sent()-before, uint64(2*(quietTicks/beatTicks+1)); got > max {
		t.Fatalf("%d messages in %d quiet ticks, want at most %d (beats only)", got, quietTicks, max)
	}
	if !allQuiesced(nodes) {
		t.Fatal("a replica woke with nothing to do")
	}
	// A quiet leader's lease runs out: no lease read, no closed timestamp.
	if served(t, leader) {
		t.Fatal("a quiesced leader still serves under a lease it does not renew")
	}
	if l := leader.host.Leading(); len(l) != 0 {
		t.Fatalf("Leading() = %v for a quiesced leader, want none (no closed timestamps to give)", l)
	}
	for _, tn := range nodes {
		want := 1 // one quiesced group replicated there
		if tn == leader {
			want = 0
		}
		if b := beatTo(t, leader); b[tn.id] != want || len(b) != 2 {
			t.Fatalf("beats go to %v, want each follower's node once", b)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := propose(ctx, t, nodes, []byte("k=w")); err != nil || r.Value != "w" {
		t.Fatalf("proposal to a quiesced group: %v %v", r.Value, err)
	}
	for _, tn := range nodes {
		if err := waitApplied(ctx, tn, leader.host.group(7).applied); err != nil {
			t.Fatal(err)
		}
		if v, ok, _ := tn.db.Get(7, []byte("k")); !ok || string(v) != "w" {
			t.Fatalf("node %d: k=%q after the wake-up write", tn.id, v)
		}
	}
	if l := leader.host.Leading(); len(l) != 1 || l[0] != 7 {
		t.Fatalf("Leading() = %v once awake, want [7]", l)
	}
	if b := beatTo(t, leader); len(b) != 0 {
		t.Fatalf("an awake leader still beats to %v", b)
	}
	// And it quiesces again once idle.
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced again", func() bool { return allQuiesced(nodes) })
}

// TestQuiescedReadWakes: a linearizable read of a quiesced group, at the
// leader or a follower, wakes it and sees the last write.
func TestQuiescedReadWakes(t *testing.T) {
	n, nodes, leader := quietCluster(t)
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced group", func() bool { return allQuiesced(nodes) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tn := range nodes {
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatalf("node %d: read of a quiesced group: %v", tn.id, err)
		}
		if v, ok, _ := tn.db.Get(7, []byte("k")); !ok || string(v) != "v" {
			t.Fatalf("node %d: k=%q", tn.id, v)
		}
	}
	if leader.host.Quiesced() != 0 {
		t.Fatal("the leader stayed quiesced through a read")
	}
}

// TestQuiescedFollowersElectWhenLeaderDies: when the leader's node falls
// silent, the followers stop hearing its beats, wake and elect one of
// them; the group takes writes again.
func TestQuiescedFollowersElectWhenLeaderDies(t *testing.T) {
	n, nodes, leader := quietCluster(t)
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced group", func() bool { return allQuiesced(nodes) })
	n.setCut(leader.id, true)
	var rest []*testNode
	for _, tn := range nodes {
		if tn != leader {
			rest = append(rest, tn)
		}
	}
	id := waitLeader(t, rest)
	if id == leader.id {
		t.Fatal("the cut-off leader still leads")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := propose(ctx, t, rest, []byte("k=after")); err != nil {
		t.Fatal(err)
	}
}

// TestQuiescedFollowersWakeOnRestart: a leader's node that restarts (a
// new incarnation) has nothing quiesced; the followers see that from its
// first beat or message and tick again, and the group elects and writes.
func TestQuiescedFollowersWakeOnRestart(t *testing.T) {
	n, nodes, leader := quietCluster(t)
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced group", func() bool { return allQuiesced(nodes) })
	i := leader.id - 1
	fs := leader.fs
	leader.stop(n)
	nodes[i] = startNode(t, n, leader.id, fs, 0)
	waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := propose(ctx, t, nodes, []byte("k=restarted")); err != nil {
		t.Fatal(err)
	}
}

// TestTouchedGroupStaysAwake: a group whose follower is being read from
// (Touch) does not stay quiesced: the follower refuses the leader's
// notice, and a touch of a quiesced follower wakes the leader too.
func TestTouchedGroupStaysAwake(t *testing.T) {
	n, nodes, leader := quietCluster(t)
	var follower *testNode
	for _, tn := range nodes {
		if tn != leader {
			follower = tn
			break
		}
	}
	for range 10 * quiesceAfterTicks {
		follower.host.Touch(7)
		n.tick(1)
		if leader.host.Quiesced() != 0 && follower.host.Quiesced() != 0 {
			t.Fatal("the group quiesced while a reader used a follower")
		}
	}
	tickUntil(t, n, 10*quiesceAfterTicks, "quiesced group", func() bool { return allQuiesced(nodes) })
	follower.host.Touch(7)
	tickUntil(t, n, 10, "leader awake", func() bool { return leader.host.Quiesced() == 0 })
	// Awake, the leader renews its lease again.
	tickUntil(t, n, 100, "lease", func() bool { return served(t, leader) })
}

// TestManyGroupsQuiesce: of many groups on three nodes, the idle ones
// quiesce and the one being written to does not.
func TestManyGroupsQuiesce(t *testing.T) {
	n, nodes, _ := quietCluster(t)
	const extra = 50
	for g := uint64(100); g < 100+extra; g++ {
		for _, tn := range nodes {
			if err := tn.host.AddGroup(context.Background(), GroupConfig{ID: g, SM: &kvSM{group: g}, Bootstrap: []uint64{1, 2, 3},
				HeartbeatTicks: 2, ElectionTicks: 20, Campaign: tn.id == 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 10*quiesceAfterTicks; i++ {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k=%d", i)); err != nil {
			t.Fatal(err)
		}
		n.tick(1)
	}
	for _, tn := range nodes {
		if q := tn.host.Quiesced(); q != extra {
			t.Fatalf("node %d: %d groups quiesced, want the %d idle ones", tn.id, q, extra)
		}
	}
}

// beatTo returns a copy of the nodes tn beats to, with their counts.
func beatTo(t *testing.T, tn *testNode) map[uint64]int {
	t.Helper()
	out := map[uint64]int{}
	if err := tn.host.do(context.Background(), func() { maps.Copy(out, tn.host.q.beatTo) }); err != nil {
		t.Fatal(err)
	}
	return out
}
