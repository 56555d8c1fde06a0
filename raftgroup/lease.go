package raftgroup

import (
	"encoding/binary"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Leader leases (docs/DESIGN.md 5.2).
//
// A linearizable read normally costs a heartbeat round to a quorum
// (ReadIndex). A leader holding a lease answers at once from its commit
// index. The lease rests on a promise raft already keeps with CheckQuorum:
// a follower that heard from its leader less than an election timeout ago
// grants no vote (pre-vote or vote) to anyone else. So if a quorum
// acknowledged a heartbeat the leader sent at time S, no other leader can
// be elected before S + election timeout, measured in the followers' own
// ticks; ticks are never early (a delayed ticker only slows them), so the
// leader's wall clock bounds that time from below. The leader renews by
// issuing its own ReadIndex (a heartbeat round) and holds the lease until
// S + leaseFraction × (ElectionTicks - 2) × TickInterval.
//
// Ticks and the wall clock both come from Config.Clock: the system's in
// production (time.Ticker, time.Now), a ManualClock in tests, which ticks
// exactly once per interval of the time it moves, so never early either.
//
// Two gaps in that promise are closed here:
//   - a follower that restarts forgets when it last heard from the leader,
//     so a replica loaded from disk ignores vote requests for one election
//     timeout after it starts (quietUntil);
//   - a leadership transfer makes the transferee campaign regardless of
//     leases, so the leader drops its lease when it starts a transfer, and
//     serves no lease read while one is under way; once it has sent
//     MsgTimeoutNow it takes no lease for the rest of its term, even if the
//     transfer is aborted (the transferee may still campaign).
//   - followers size nothing: the lease is computed from the cluster-wide
//     minimum election timeout (Config.MinElectionTimeout), so a follower
//     with shorter timeouts than the leader's cannot outrun it.
//
// Followers' linearizable reads benefit too: a MsgReadIndex forwarded to a
// leader holding a lease is answered at once, without the heartbeat round.

// leaseFraction keeps a margin below the election timeout.
const leaseFraction = 0.8

type lease struct {
	expiry  time.Time // valid until
	term    uint64    // in this term only
	renewID uint64    // id of the renewal read under way (0: none)
	started time.Time // when that renewal began
}

// leaseDuration is sized from the cluster-wide minimum election timeout,
// never from g's own: a follower with a shorter timeout stops honouring
// its promise sooner.
func (h *Host) leaseDuration(g *group) time.Duration {
	d := h.cfg.MinElectionTimeout - 2*h.cfg.TickInterval
	if d <= 0 {
		return 0
	}
	return time.Duration(leaseFraction * float64(d))
}

// leaseValid reports whether g may serve reads from its commit index now.
func (h *Host) leaseValid(g *group, now time.Time) bool {
	if h.cfg.DisableLeaseReads || !g.isLeader || now.After(g.lease.expiry) {
		return false
	}
	bs := g.rn.BasicStatus()
	return bs.LeadTransferee == raft.None && bs.GetTerm() == g.lease.term && bs.GetTerm() != g.noLeaseTerm &&
		bs.RaftState == raft.StateLeader
}

// commitIndex is the leader's commit index.
func (g *group) commitIndex() uint64 {
	return g.rn.BasicStatus().GetCommit()
}

// renewLeases starts a renewal round for every leader whose lease is more
// than half spent. Called on every tick.
func (h *Host) renewLeases(now time.Time) {
	if h.cfg.DisableLeaseReads {
		return
	}
	for _, g := range h.q.active {
		if !g.isLeader {
			continue
		}
		d := h.leaseDuration(g)
		if d <= 0 {
			continue
		}
		if g.lease.renewID != 0 && now.Sub(g.lease.started) < d {
			continue // a renewal is under way
		}
		if g.lease.expiry.Sub(now) > d/2 {
			continue
		}
		id := h.newID()
		g.lease.renewID, g.lease.started = id, now
		g.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, id))
	}
}

// leaseRenewed handles the answer to a renewal round: the quorum heard a
// heartbeat sent after g.lease.started.
func (h *Host) leaseRenewed(g *group, id uint64) bool {
	if id == 0 || id != g.lease.renewID {
		return false
	}
	g.lease.renewID = 0
	bs := g.rn.BasicStatus()
	if bs.RaftState == raft.StateLeader && bs.LeadTransferee == raft.None && bs.GetTerm() != g.noLeaseTerm {
		g.lease.expiry = g.lease.started.Add(h.leaseDuration(g))
		g.lease.term = bs.GetTerm()
	}
	return true
}

// answerReadUnderLease answers a follower's forwarded MsgReadIndex at once
// if this leader holds a lease. It reports whether it did.
func (h *Host) answerReadUnderLease(g *group, m *pb.Message, now time.Time) bool {
	if m.GetType() != pb.MsgReadIndex || m.GetFrom() == h.cfg.NodeID || !h.leaseValid(g, now) {
		return false
	}
	resp := &pb.Message{
		Type:    pb.MsgReadIndexResp.Enum(),
		To:      proto.Uint64(m.GetFrom()),
		From:    proto.Uint64(h.cfg.NodeID),
		Term:    proto.Uint64(g.lease.term),
		Index:   proto.Uint64(g.commitIndex()),
		Entries: m.GetEntries(),
	}
	h.stats.messagesSent.Add(1)
	h.cfg.Sender.Send(g.id, []*pb.Message{resp})
	h.stats.leaseReads.Add(1)
	return true
}

// quiet reports whether g, freshly loaded from disk, must still ignore vote
// requests (it may have promised a leader not to vote, and forgot when).
func (g *group) quiet(m *pb.Message, now time.Time) bool {
	t := m.GetType()
	return (t == pb.MsgVote || t == pb.MsgPreVote) && now.Before(g.quietUntil)
}

// Lease reads without the loop. The loop publishes, for each leader whose
// lease is valid, the lease's expiry with the commit and applied indexes
// (fastRead). Everything that changes a lease goes through a Ready (a
// change of state, a MsgTimeoutNow sent, a renewal answered) or through
// TransferLeader, so the loop publishes after each round's batch is durable
// and before the round's writes are acknowledged, and again when a round
// answered a renewal; a transfer withdraws it at once. ReadIndex then
// answers from it while the wall clock is before the expiry and everything
// committed is applied: every write acknowledged before the read is at or
// below the published commit index, which only grows, and no other leader
// can commit before the expiry (the argument above). Anything else takes
// the loop.
type fastRead struct {
	expiry          time.Time
	term            uint64
	commit, applied uint64
}

// publishFast updates what fastReadIndex may use for g. Loop only.
func (h *Host) publishFast(g *group) {
	if !h.leaseValid(g, h.now()) {
		g.fast.Store(nil)
		return
	}
	g.fast.Store(&fastRead{expiry: g.lease.expiry, term: g.lease.term, commit: g.commitIndex(), applied: g.applied})
}

// LeaseReadIndex returns a linearizable read point at once, without the
// loop, if this node leads the group under a valid lease and has applied
// everything committed; otherwise false (use ReadIndex).
func (h *Host) LeaseReadIndex(groupID uint64) (uint64, bool) {
	idx, _, ok := h.fastReadIndex(groupID)
	return idx, ok
}

// LeaseReadIndexAt is LeaseReadIndex, also returning the time on the
// host's clock at which the lease was found valid (a caller that needs
// the time for the read itself need not read the clock again).
func (h *Host) LeaseReadIndexAt(groupID uint64) (uint64, time.Time, bool) {
	return h.fastReadIndex(groupID)
}

// fastReadIndex returns a linearizable read point without the loop, if the
// published lease allows it, and the time it checked the lease at.
func (h *Host) fastReadIndex(groupID uint64) (uint64, time.Time, bool) {
	g := h.group(groupID)
	if g == nil {
		return 0, time.Time{}, false
	}
	f := g.fast.Load()
	now := h.now()
	if f == nil || f.applied < f.commit || !now.Before(f.expiry) {
		return 0, time.Time{}, false
	}
	g.touchedAt.Store(now.UnixNano())
	h.stats.leaseReads.Add(1)
	return f.commit, now, true
}

// Closed timestamps. A leader under a valid lease can promise followers
// that every write acknowledged at or before some time T is at or below
// an index I of the log: no other leader can commit anything before the
// lease expires, and this leader acknowledges a write only after the loop
// has published a commit index covering it (see fastRead above). Closed
// returns such a promise: T is the wall time read before the published
// lease is (so that a write acknowledged before T was published before
// it), capped at the lease's expiry; I is the published commit index. It
// gives nothing (ok false) unless this node leads the group under a valid
// lease and has applied everything committed, so a deposed leader that
// does not know it yet, or one cut off from its quorum, promises nothing.

// ClosedTimestamp is a leaseholder's promise: every write acknowledged at
// or before TimeMS (Unix ms) is at or below Index in the group's log. Term
// is the term of the lease it was made under.
type ClosedTimestamp struct {
	Index  uint64
	TimeMS int64
	Term   uint64
}

// Closed returns the group's closed timestamp if this node leads it under
// a valid lease (see above); otherwise ok is false.
func (h *Host) Closed(groupID uint64) (ClosedTimestamp, bool) {
	now := h.now() // before the lease is read
	g := h.group(groupID)
	if g == nil || g.qflag.Load() {
		return ClosedTimestamp{}, false // a quiesced group renews no lease
	}
	f := g.fast.Load()
	if f == nil || f.applied < f.commit || !now.Before(f.expiry) {
		return ClosedTimestamp{}, false
	}
	t := min(now.UnixMilli(), f.expiry.UnixMilli()) - 1
	return ClosedTimestamp{Index: f.commit, TimeMS: t, Term: f.term}, true
}
