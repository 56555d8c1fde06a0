package raftgroup

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/meridian-db/meridian/internal/testutil"
)

// The lease tests run on the manual clock (see localNet): time moves only
// when the test ticks, so "after the lease" is an exact instant.

// leaseState is what the loop knows of a replica's lease.
type leaseState struct {
	leader     bool
	valid      bool // leaseValid now
	expiry     time.Time
	term       uint64
	transferee uint64
}

func leaseOf(t *testing.T, tn *testNode) leaseState {
	t.Helper()
	var ls leaseState
	err := tn.host.onGroup(context.Background(), 7, func(g *group) error {
		bs := g.rn.BasicStatus()
		ls = leaseState{leader: g.isLeader, valid: tn.host.leaseValid(g, tn.host.now()), expiry: g.lease.expiry,
			term: g.lease.term, transferee: bs.LeadTransferee}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// served reports whether the node answers a lease read and gives a closed
// timestamp now; it fails the test if it does one and not the other.
func served(t *testing.T, tn *testNode) bool {
	t.Helper()
	_, read := tn.host.LeaseReadIndex(7)
	_, closed := tn.host.Closed(7)
	if read != closed {
		t.Fatalf("node %d: lease read %v but closed timestamp %v", tn.id, read, closed)
	}
	return read
}

// tickUntil ticks until cond holds, at most max ticks.
func tickUntil(t *testing.T, n *localNet, max int, what string, cond func() bool) {
	t.Helper()
	for range max {
		if cond() {
			return
		}
		n.tick(1)
	}
	if !cond() {
		t.Fatalf("no %s after %d ticks", what, max)
	}
}

// leaseCluster starts three nodes, elects a leader, writes once and ticks
// until the leader holds a lease. It returns the network, the nodes and
// the leader.
func leaseCluster(t *testing.T) (*localNet, []*testNode, *testNode) {
	t.Helper()
	n := newLocalNet()
	nodes, leader := writtenCluster(t, n)
	tickUntil(t, n, 100, "lease", func() bool { return served(t, leader) })
	return n, nodes, leader
}

// writtenCluster starts nodes 1-3 of group 7 on n (in-memory
// filesystems, stopped when the test ends), elects a leader and writes
// once. It returns the nodes and the leader.
func writtenCluster(t *testing.T, n *localNet) ([]*testNode, *testNode) {
	t.Helper()
	var nodes []*testNode
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, startNode(t, n, id, vfs.NewMem(), 0))
	}
	t.Cleanup(func() { stopAll(n, nodes) })
	leader := nodes[waitLeader(t, nodes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := propose(ctx, t, nodes, []byte("k=v")); err != nil {
		t.Fatal(err)
	}
	return nodes, leader
}

func (n *localNet) setCut(id uint64, cut bool) {
	n.mu.Lock()
	n.cut[id] = cut
	n.mu.Unlock()
}

// TestLeaseExpiresWhenCutOff: a leader cut off from its quorum serves
// lease reads (and closed timestamps) until its lease runs out, never at
// or after the lease's end, and the others elect a new leader only after
// it: a lease read never overlaps another leader.
func TestLeaseExpiresWhenCutOff(t *testing.T) {
	n, nodes, leader := leaseCluster(t)
	d := leader.host.leaseDuration(nil)
	if d != time.Duration(leaseFraction*float64(40*time.Millisecond-2*testTick)) {
		t.Fatalf("lease duration %v", d)
	}
	before := leaseOf(t, leader)
	ct, ok := leader.host.Closed(7)
	st, _ := leader.host.Status(7)
	if !ok || ct.Index != st.Commit || ct.Term != st.Term || ct.TimeMS >= before.expiry.UnixMilli() || ct.TimeMS >= n.clock.Now().UnixMilli() {
		t.Fatalf("closed timestamp %+v under a lease until %v, status %+v", ct, before.expiry, st)
	}
	for _, tn := range nodes {
		if tn != leader && served(t, tn) {
			t.Fatalf("follower %d serves lease reads", tn.id)
		}
	}

	cut := n.clock.Now()
	n.setCut(leader.id, true)
	// No renewal sent from now on reaches a quorum: the lease ends at the
	// latest d after the cut (it counts from a renewal sent before it).
	end := cut.Add(d)
	var lastServed time.Time
	reads := 0
	for range 3 * int(d/testTick) {
		now := n.clock.Now()
		if served(t, leader) {
			reads++
			lastServed = now
			if !now.Before(end) {
				t.Fatalf("lease read at %v, %v after the cut: the lease ended by %v", now, now.Sub(cut), d)
			}
		}
		if ls := leaseOf(t, leader); ls.valid && !now.Before(ls.expiry) {
			t.Fatalf("lease valid at %v, at or after its expiry %v", now, ls.expiry)
		}
		n.tick(1)
	}
	if reads == 0 {
		t.Fatal("the cut-off leader served no lease read while its lease lasted")
	}
	if served(t, leader) || leaseOf(t, leader).valid {
		t.Fatal("the cut-off leader still serves lease reads after its lease")
	}
	// Without the lease a linearizable read needs the quorum it cannot reach.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := leader.host.ReadIndex(ctx, 7); err == nil {
		t.Fatal("the cut-off leader answered a linearizable read after its lease")
	}
	cancel()

	var others []*testNode
	for _, tn := range nodes {
		if tn != leader {
			others = append(others, tn)
		}
	}
	next := nodes[waitLeader(t, others)-1]
	elected := n.clock.Now()
	if !elected.After(lastServed) || elected.Before(end) {
		t.Fatalf("a new leader at %v after the cut, the old one served its last lease read at %v, lease end by %v",
			elected.Sub(cut), lastServed.Sub(cut), d)
	}
	t.Logf("cut-off leader: %d lease reads, the last %v after the cut; lease %v; node %d elected %v after the cut",
		reads, lastServed.Sub(cut), d, next.id, elected.Sub(cut))
	tickUntil(t, n, 200, "step-down of the cut-off leader", func() bool { return !leaseOf(t, leader).leader })
	if served(t, leader) {
		t.Fatal("the deposed leader serves lease reads")
	}
}

// TestLeaseDroppedOnTransfer: starting a leadership transfer drops the
// lease at once, no lease read is served while it is under way, a
// transfer that never sent MsgTimeoutNow gives the lease back once
// aborted, and one that did leaves the leader without a lease for the
// rest of its term.
func TestLeaseDroppedOnTransfer(t *testing.T) {
	n, nodes, leader := leaseCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var target *testNode
	for _, tn := range nodes {
		if tn != leader {
			target = tn
			break
		}
	}

	// A transferee that lags (cut off while a write commits without it):
	// the leader must catch it up first, and the transfer stays under way.
	n.setCut(target.id, true)
	if _, err := leader.host.Propose(ctx, 7, []byte("lag=1")); err != nil {
		t.Fatal(err)
	}
	tickUntil(t, n, 100, "lease after the write", func() bool { return served(t, leader) })
	outstanding := leaseOf(t, leader).expiry
	if err := leader.host.TransferLeader(ctx, 7, target.id); err != nil {
		t.Fatal(err)
	}
	if now := n.clock.Now(); !now.Before(outstanding) {
		t.Fatalf("the lease had ended (%v) before the transfer (%v)", outstanding, now)
	}
	if served(t, leader) || leaseOf(t, leader).valid {
		t.Fatal("lease reads served once a transfer started")
	}
	underWay := 0
	for range 100 {
		ls := leaseOf(t, leader)
		if ls.transferee == raft.None {
			break
		}
		underWay++
		if served(t, leader) || ls.valid {
			t.Fatalf("lease read served with a transfer to %d under way", ls.transferee)
		}
		n.tick(1)
	}
	if underWay < 10 {
		t.Fatalf("the transfer was under way for %d ticks only", underWay)
	}
	// Aborted (election timeout) without MsgTimeoutNow: the lease returns.
	tickUntil(t, n, 100, "lease after the aborted transfer", func() bool { return served(t, leader) })
	t.Logf("transfer to a lagging node: under way %d ticks, no lease read; lease back after the abort", underWay)

	// A transferee that is up to date gets MsgTimeoutNow at once (lost
	// here, it is cut off): the leader takes no lease for the rest of
	// its term, transfer aborted or not.
	n.setCut(target.id, false)
	tickUntil(t, n, 100, "transferee caught up", func() bool {
		ls, _ := leader.host.Status(7)
		ts, _ := target.host.Status(7)
		return ts.Applied == ls.Commit
	})
	term := leaseOf(t, leader).term
	n.setCut(target.id, true)
	if err := leader.host.TransferLeader(ctx, 7, target.id); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		ls := leaseOf(t, leader)
		if !ls.leader {
			t.Fatal("the leader lost its leadership to a cut-off transferee")
		}
		if served(t, leader) || ls.valid {
			t.Fatalf("lease read in term %d after MsgTimeoutNow (transferee %d)", term, ls.transferee)
		}
		n.tick(1)
	}
	if st, _ := leader.host.Status(7); st.Term != term {
		t.Fatalf("term moved from %d to %d", term, st.Term)
	}

	// Healed, the transfer completes once the transferee follows the
	// leader again (a cut-off replica forgets its leader, and takes
	// MsgTimeoutNow only from the one it follows); only the new leader
	// serves leases.
	n.setCut(target.id, false)
	tickUntil(t, n, 100, "the transferee following the leader again", func() bool {
		st, _ := target.host.Status(7)
		return st.Lead == leader.id
	})
	if err := leader.host.TransferLeader(ctx, 7, target.id); err != nil {
		t.Fatal(err)
	}
	waitLeaderIs(t, nodes, target.id)
	tickUntil(t, n, 100, "lease at the new leader", func() bool { return served(t, target) })
	if served(t, leader) {
		t.Fatal("the former leader serves lease reads")
	}
}

// TestLeaseStepDown: a leader that steps down (here: told of a higher
// term) while its lease still runs serves no lease read and no closed
// timestamp from the moment it knows.
func TestLeaseStepDown(t *testing.T) {
	n, nodes, leader := leaseCluster(t)
	before := leaseOf(t, leader)
	var other *testNode
	for _, tn := range nodes {
		if tn != leader {
			other = tn
			break
		}
	}
	leader.host.Deliver(7, []*pb.Message{{
		Type: pb.MsgHeartbeat.Enum(), From: proto.Uint64(other.id), To: proto.Uint64(leader.id),
		Term: proto.Uint64(before.term + 1),
	}})
	// Nothing ticks: the lease has not run out.
	testutil.Eventually(t, 10*time.Second, "the leader steps down", func() bool {
		st, _ := leader.host.Status(7)
		return st.RaftState != raft.StateLeader
	})
	if now := n.clock.Now(); !now.Before(before.expiry) {
		t.Fatalf("the lease (until %v) ran out before the step-down (%v)", before.expiry, now)
	}
	if served(t, leader) || leaseOf(t, leader).valid {
		t.Fatal("a leader that stepped down serves lease reads while its old lease runs")
	}
	if _, ok := leader.host.Closed(7); ok {
		t.Fatal("a leader that stepped down gives closed timestamps")
	}
	// The group elects a leader again; only it serves leases.
	next := nodes[waitLeader(t, nodes)-1]
	tickUntil(t, n, 200, "lease at the new leader", func() bool { return served(t, next) })
	for _, tn := range nodes {
		if tn != next && served(t, tn) {
			t.Fatalf("node %d serves lease reads besides leader %d", tn.id, next.id)
		}
	}
}

// TestLeaseHoldsAgainstCampaign: followers that heard from the leader
// within an election timeout refuse another candidate (the promise the
// lease rests on): a follower's campaign deposes no leaseholder.
func TestLeaseHoldsAgainstCampaign(t *testing.T) {
	n, nodes, leader := leaseCluster(t)
	term := leaseOf(t, leader).term
	var other *testNode
	for _, tn := range nodes {
		if tn != leader {
			other = tn
			break
		}
	}
	if err := other.host.Campaign(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		n.tick(1)
		ls := leaseOf(t, leader)
		if !ls.leader || ls.term != term || !served(t, leader) {
			t.Fatalf("tick %d after a follower's campaign: leader %v, term %d (was %d), serving %v", i, ls.leader, ls.term, term, served(t, leader))
		}
	}
	if id := leaderOf(nodes); id != leader.id {
		t.Fatal(fmt.Sprintf("leader %d, want %d", id, leader.id))
	}
}
