package raftgroup

import (
	"bytes"
	"math/rand/v2"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Quiescence (docs/DESIGN.md 5.2). A raft group costs its node work even
// when nothing happens: every tick, every heartbeat to every follower,
// every lease renewal. A node hosting thousands of groups, most of them
// idle, would spend its cores on that. So a leader whose group has been
// idle for Config.QuiesceAfter (nothing proposed, read, applied or
// touched; every replica has everything, and has answered recently)
// quiesces it: it stops ticking the group, and tells each follower so
// with a quiesce notice naming its term and last index. A follower that
// is caught up to exactly that index, still follows that leader and has
// not been read from lately stops ticking the group too; otherwise it
// answers with a wake notice, which makes the leader take the group back.
//
// Anything that concerns a quiesced group wakes it: a message from any
// replica (except a late answer to what its leader sent before it went
// quiet, which raft takes without waking it unless that gives raft
// something to do), a proposal, a read that goes through the loop, a
// leadership transfer, a wait for an index not applied yet, and Touch (a
// reader of the group's closed timestamp or of a follower's state). A
// lease read that needs no loop only counts as use: a quiesced leader
// answers those until its lease, which it no longer renews, runs out. A
// follower woken by a reader, or by a message not from its leader, sends
// its leader a wake notice, so that the leader resumes heartbeats before
// the follower's election timeout runs out.
//
// Safety does not rest on any of this. A quiesced group's lease is not
// renewed, so it simply runs out (and with it the closed timestamps that
// rest on it); the next linearizable read wakes the group and confirms
// leadership with a heartbeat round, as after any lapse. A quiesced
// follower does not tick, so its election clock stands still: it counts
// less time since it last heard from the leader than has passed, which
// only lengthens the time it refuses other candidates.
//
// Liveness does: a follower that does not tick never notices that its
// leader died. So a host that leads quiesced groups sends each node that
// follows one of them a beat, one message per node every
// Config.BeatInterval whatever the number of groups, carrying the host's
// incarnation (a random number drawn when it starts). A node that hears
// no beat from a leader's host for quiesceBeatMisses intervals (and at
// least the cluster's minimum election timeout, the silence raft itself
// tolerates before it elects; time this node's own loop was held up does
// not count), or hears
// one from a new incarnation (the host restarted, its groups are no
// longer quiesced), wakes every group quiesced under that leader; they
// tick again and elect a new leader if the old one is gone.
//
// The leader quiesces only with every voter recently active in raft's
// own bookkeeping, so that the first check-quorum after it wakes does not
// make it step down for want of answers it could not have had while
// quiet.

// beatGroup is the group id beats travel under: no group has id 0.
const beatGroup = 0

// quiesceBeatMisses beat intervals without a beat wake the groups
// quiesced under that node.
const quiesceBeatMisses = 5

// The contexts that mark the quiesce and wake notices: raft never sends a
// heartbeat (or its answer) with a context of this length, and neither
// notice is ever stepped into raft.
var (
	quiesceCtx = []byte("meridian/quiesce")
	wakeCtx    = []byte("meridian/wake.1")
)

type quiescence struct {
	// active holds the groups that tick (every group that is not quiesced).
	active map[uint64]*group
	// followers: for each leader node, the groups quiesced here under it.
	followers map[uint64]map[uint64]*group
	// beatTo: for each node, how many groups this node leads quiesced
	// have a replica there.
	beatTo map[uint64]int
	// heard: the last beat (or quiesce notice) heard from each node.
	heard map[uint64]heardBeat
	// leaders: the awake groups led here (Leading); leadersChanged: since
	// Leading's list was last published.
	leaders        map[uint64]struct{}
	leadersChanged bool
	// lastBeat is when this node last sent its beats; lastTick when the
	// loop last ticked.
	lastBeat, lastTick time.Time
	incarnation        uint64
}

type heardBeat struct {
	at          time.Time
	incarnation uint64
}

func newQuiescence() quiescence {
	return quiescence{active: map[uint64]*group{}, followers: map[uint64]map[uint64]*group{},
		beatTo: map[uint64]int{}, heard: map[uint64]heardBeat{}, leaders: map[uint64]struct{}{}, incarnation: rand.Uint64() | 1}
}

// Touch tells the host that a reader uses the group (a bounded or
// eventual read of this replica, a stream reading its closed timestamp):
// the group does not quiesce while it is used, and a quiesced one wakes.
func (h *Host) Touch(groupID uint64) {
	g := h.group(groupID)
	if g == nil {
		return
	}
	g.touchedAt.Store(h.now().UnixNano())
	if g.qflag.Load() {
		select {
		case h.work <- func() { h.wakeGroup(g, true) }:
		case <-h.stopped:
		}
	}
}

// IsQuiesced reports whether the group is quiesced on this node now.
func (h *Host) IsQuiesced(groupID uint64) bool {
	g := h.group(groupID)
	return g != nil && g.qflag.Load()
}

// Quiesced returns how many of the host's groups are quiesced now.
func (h *Host) Quiesced() int { return int(h.stats.quiesced.Load()) }

// wakeGroup makes a quiesced group tick again. A follower woken by
// anything but its leader tells the leader (notify). Loop only.
func (h *Host) wakeGroup(g *group, notify bool) {
	if !g.quiesced {
		return
	}
	g.quiesced = false
	g.qflag.Store(false)
	g.busyAt = h.now()
	h.q.active[g.id] = g
	h.stats.quiesced.Add(-1)
	h.noteLeader(g)
	if g.isLeader {
		for _, id := range h.replicas(g) {
			if h.q.beatTo[id]--; h.q.beatTo[id] <= 0 {
				delete(h.q.beatTo, id)
			}
		}
		return
	}
	if fs := h.q.followers[g.qlead]; fs != nil {
		delete(fs, g.id)
		if len(fs) == 0 {
			delete(h.q.followers, g.qlead)
		}
	}
	if notify {
		h.sendNotice(g, g.qlead, pb.MsgHeartbeatResp, wakeCtx, 0)
	}
}

// replicas returns the group's other voters and learners.
func (h *Host) replicas(g *group) []uint64 {
	var out []uint64
	for _, ids := range [][]uint64{g.cs.GetVoters(), g.cs.GetLearners()} {
		for _, id := range ids {
			if id != h.cfg.NodeID {
				out = append(out, id)
			}
		}
	}
	return out
}

func (h *Host) sendNotice(g *group, to uint64, t pb.MessageType, ctx []byte, commit uint64) {
	m := &pb.Message{Type: t.Enum(), To: proto.Uint64(to), From: proto.Uint64(h.cfg.NodeID),
		Term: proto.Uint64(g.rn.BasicStatus().GetTerm()), Commit: proto.Uint64(commit), Context: ctx,
		Index: proto.Uint64(h.q.incarnation)}
	h.stats.messagesSent.Add(1)
	h.cfg.Sender.Send(g.id, []*pb.Message{m})
}

// quiesceMessage handles a message for g before raft sees it: it wakes a
// quiesced g, and takes the quiesce and wake notices (reporting true:
// raft must not see them).
func (h *Host) quiesceMessage(g *group, m *pb.Message, now time.Time) bool {
	switch {
	case m.GetType() == pb.MsgHeartbeat && bytes.Equal(m.GetContext(), quiesceCtx):
		h.quiesceFollower(g, m, now)
		return true
	case m.GetType() == pb.MsgHeartbeatResp && bytes.Equal(m.GetContext(), wakeCtx):
		h.wakeGroup(g, false)
		g.busyAt = now
		return true
	}
	if m.GetType() == pb.MsgReadIndex {
		g.touchedAt.Store(now.UnixNano()) // a follower's strong read: the group is in use
	}
	if g.quiesced && !(g.isLeader && lateReply(g, m)) {
		h.wakeGroup(g, m.GetFrom() != g.qlead)
	}
	return false
}

// lateReply reports whether m answers what a leader sent before it
// quiesced (a heartbeat, an append): raft takes it without waking the
// group, which wakes only if raft then has something to do (step).
// Round trips longer than a tick would otherwise wake every group that
// quiesces across regions right after it does.
func lateReply(g *group, m *pb.Message) bool {
	t := m.GetType()
	return (t == pb.MsgHeartbeatResp || t == pb.MsgAppResp) && m.GetTerm() == g.rn.BasicStatus().GetTerm()
}

// quiesceFollower takes a leader's quiesce notice: g stops ticking if it
// has exactly what the leader has and nobody reads from it; otherwise
// the leader is told to take the group back.
func (h *Host) quiesceFollower(g *group, m *pb.Message, now time.Time) {
	if g.quiesced || g.isLeader {
		return
	}
	from := m.GetFrom()
	if hb := h.q.heard[from]; hb.incarnation != 0 && hb.incarnation != m.GetIndex() {
		h.wakeUnder(from) // quiesced under an earlier life of that node
	}
	bs := g.rn.BasicStatus()
	_, last := g.store.Bounds()
	ok := bs.Lead == from && bs.GetTerm() == m.GetTerm() && bs.GetCommit() == m.GetCommit() && last == m.GetCommit() &&
		g.applied == m.GetCommit() && len(g.reads) == 0 && len(g.applyWaiters) == 0 && !g.rn.HasReady() &&
		now.Sub(time.Unix(0, g.touchedAt.Load())) >= h.cfg.QuiesceAfter
	if !ok {
		// Take the group back (a leader that is not ours any more learns
		// so from our answers once it is awake).
		h.sendNotice(g, from, pb.MsgHeartbeatResp, wakeCtx, 0)
		return
	}
	g.qlead = from
	if !h.quiesceUntouched(g, true) {
		return
	}
	fs := h.q.followers[from]
	if fs == nil {
		fs = map[uint64]*group{}
		h.q.followers[from] = fs
	}
	fs[g.id] = g
	// The notice shows the leader's host alive now.
	h.q.heard[from] = heardBeat{at: now, incarnation: m.GetIndex()}
}

// quiesceUntouched quiesces g and reports whether it stayed quiesced: a
// reader that touched it meanwhile saw it awake (Touch wakes only a
// quiesced group), so it is woken again at once.
func (h *Host) quiesceUntouched(g *group, notify bool) bool {
	touched := g.touchedAt.Load()
	h.markQuiesced(g)
	if g.touchedAt.Load() != touched {
		h.wakeGroup(g, notify)
		return false
	}
	return true
}

func (h *Host) markQuiesced(g *group) {
	g.quiesced = true
	g.qflag.Store(true)
	delete(h.q.active, g.id)
	h.stats.quiesced.Add(1)
	h.noteLeader(g)
}

// quiesceTick runs on every tick: leaders of idle groups quiesce them,
// beats go out every BeatInterval, and groups whose leader's host fell
// silent wake. Loop only.
func (h *Host) quiesceTick(now time.Time) {
	if h.cfg.QuiesceAfter > 0 {
		for _, g := range h.q.active {
			if g.isLeader && now.Sub(g.busyAt) >= h.cfg.QuiesceAfter &&
				now.Sub(time.Unix(0, g.touchedAt.Load())) >= h.cfg.QuiesceAfter {
				h.maybeQuiesce(g, now)
			}
		}
	}
	if gap := now.Sub(h.q.lastTick); !h.q.lastTick.IsZero() && gap > 2*h.cfg.TickInterval {
		// This loop was held up (a slow fsync, a swamped machine): what
		// it did not hear meanwhile says nothing of the other nodes.
		for id, hb := range h.q.heard {
			hb.at = hb.at.Add(gap - h.cfg.TickInterval)
			h.q.heard[id] = hb
		}
	}
	h.q.lastTick = now
	if now.Sub(h.q.lastBeat) < h.cfg.BeatInterval {
		return
	}
	h.q.lastBeat = now
	if len(h.q.beatTo) > 0 {
		msgs := make([]*pb.Message, 0, len(h.q.beatTo))
		for id := range h.q.beatTo {
			msgs = append(msgs, &pb.Message{Type: pb.MsgHeartbeat.Enum(), To: proto.Uint64(id),
				From: proto.Uint64(h.cfg.NodeID), Index: proto.Uint64(h.q.incarnation)})
		}
		h.stats.messagesSent.Add(uint64(len(msgs)))
		h.cfg.Sender.Send(beatGroup, msgs)
	}
	silent := max(quiesceBeatMisses*h.cfg.BeatInterval, h.cfg.MinElectionTimeout)
	for lead := range h.q.followers {
		if now.Sub(h.q.heard[lead].at) > silent {
			h.log.Warn("no beat from a leader's node: waking the groups quiesced under it", "leader", lead,
				"groups", len(h.q.followers[lead]))
			h.wakeUnder(lead)
		}
	}
}

// wakeUnder wakes every group quiesced here under leader lead.
func (h *Host) wakeUnder(lead uint64) {
	for _, g := range h.q.followers[lead] {
		h.wakeGroup(g, true)
	}
	delete(h.q.followers, lead)
}

// maybeQuiesce quiesces g, which this node leads and which has been idle,
// if nothing is under way in it and every replica has all of its log.
func (h *Host) maybeQuiesce(g *group, now time.Time) {
	if len(g.proposals) > 0 || len(g.reads) > 0 || len(g.applyWaiters) > 0 || len(g.ccWaiting) > 0 ||
		g.lease.renewID != 0 || g.rn.HasReady() {
		return
	}
	st := g.rn.Status()
	_, last := g.store.Bounds()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != raft.None || st.GetCommit() != last || g.applied != last ||
		len(st.Config.Voters[1]) > 0 {
		g.busyAt = now // look again in QuiesceAfter
		return
	}
	for id, pr := range st.Progress {
		if id == h.cfg.NodeID {
			continue
		}
		if pr.Match != last || pr.State != tracker.StateReplicate || !pr.RecentActive {
			g.busyAt = now
			return
		}
	}
	g.qlead = h.cfg.NodeID
	replicas := h.replicas(g)
	for _, id := range replicas {
		h.q.beatTo[id]++ // before a wake-up may count them down again
	}
	if !h.quiesceUntouched(g, false) {
		return
	}
	for _, id := range replicas {
		h.sendNotice(g, id, pb.MsgHeartbeat, quiesceCtx, last)
	}
}

// beatsIn takes beats from other nodes.
func (h *Host) beatsIn(msgs []*pb.Message) {
	now := h.now()
	for _, m := range msgs {
		if m.GetType() != pb.MsgHeartbeat {
			continue
		}
		from, inc := m.GetFrom(), m.GetIndex()
		prev := h.q.heard[from]
		h.q.heard[from] = heardBeat{at: now, incarnation: inc}
		if prev.incarnation != 0 && prev.incarnation != inc {
			// The node restarted: nothing of it is quiesced any more.
			h.wakeUnder(from)
		}
	}
}
