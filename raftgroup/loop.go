package raftgroup

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// maxWorkPerRound bounds how many queued requests and inbound batches one
// loop round takes before it persists and sends, so that a flood of
// proposals cannot starve ticks or delay acknowledgements unboundedly; a
// round also stops taking work after a tick's time of it (creating
// hundreds of groups, each bootstrap synced, would otherwise hold ticks,
// heartbeats and beats back for a second).
const maxWorkPerRound = 512

func (h *Host) loop() {
	defer close(h.done)
	ticks, stopTicks := h.clock.NewTicker(h.cfg.TickInterval)
	defer stopTicks()
	defer func() {
		h.groups.Range(func(_, g any) bool {
			// A pending proposal may have been replicated: other replicas
			// can still commit and apply it.
			h.failWaiters(g.(*group), fmt.Errorf("%w: %w", ErrTimeout, ErrStopped), ErrStopped)
			return true
		})
	}()
	for {
		// Once stopped (Stop, or a fatal error in the last round), run
		// nothing more: no queued work, no further round.
		select {
		case <-h.stopped:
			return
		default:
		}
		select {
		case <-h.stopped:
			return
		case t := <-ticks:
			for _, g := range h.q.active {
				g.rn.Tick()
			}
			now := h.tickTime(t)
			h.renewLeases(now)
			h.quiesceTick(now)
		case fn := <-h.work:
			fn()
		case in := <-h.inbox:
			h.step(in)
		case <-h.wake:
		}
		h.takeSnapReports()
		// Take whatever else is queued, then persist and send once.
		start := time.Now()
	drain:
		for n := 0; n < maxWorkPerRound; n++ {
			if n%16 == 15 && time.Since(start) > h.cfg.TickInterval {
				break // slow work (group bootstraps fsync): tick and send first
			}
			select {
			case fn := <-h.work:
				fn()
			case in := <-h.inbox:
				h.step(in)
			default:
				break drain
			}
		}
		select {
		case <-h.stopped:
			return
		default:
		}
		h.processReady()
		h.publishLeading()
	}
}

// tickTime is the time a renewal round started on tick t counts from:
// the time now on the system clock; on a manual clock, which a test may
// have moved on while the loop was busy, the tick's own time. Either is
// no later than the heartbeat the round sends, as the lease needs.
func (h *Host) tickTime(t time.Time) time.Time {
	if _, manual := h.clock.(*ManualClock); manual {
		return t
	}
	return time.Now()
}

func (h *Host) step(in inbound) {
	if in.group == beatGroup {
		h.beatsIn(in.msgs)
		return
	}
	g := h.group(in.group)
	if g == nil {
		return
	}
	now := h.now()
	for _, m := range in.msgs {
		if h.quiesceMessage(g, m, now) {
			continue
		}
		if g.quiet(m, now) || h.answerReadUnderLease(g, m, now) || !fromNetworkOK(g, m) {
			continue
		}
		if err := g.rn.Step(m); err != nil && err != raft.ErrStepPeerNotFound {
			h.log.Debug("step failed", "group", in.group, "type", m.GetType(), "from", m.GetFrom(), "err", err)
		}
	}
	if g.quiesced && g.rn.HasReady() {
		h.wakeGroup(g, false) // a late reply gave raft something to do
	}
}

type readyGroup struct {
	g        *group
	rd       raft.Ready
	results  []pendingResult
	restored bool
	applied  bool
}

type pendingResult struct {
	w *waiter
	r Result
}

// processReady runs a round of the Ready contract for every group that
// has work (see the package documentation). Advance steps the
// acknowledgements of what a round made durable, which can produce more
// work at once: a leader's own acknowledgement commits its entries when
// it completes a quorum (always, with a single voter), and then the
// entries must be applied and the followers told the new commit index.
// That second round runs at once, before any new work is taken: the
// writes the first round made durable are applied and answered now,
// instead of after the fsync of the next round's new entries (which made
// a single voter's write wait for two fsyncs). Anything left after it
// runs in the loop's next round.
func (h *Host) processReady() {
	for pass := 0; h.readyRound(); pass++ {
		select {
		case <-h.stopped:
			return
		default:
		}
		if pass == 1 {
			h.nudge()
			return
		}
	}
}

// readyRound runs one round of the Ready contract for every group that
// has work, and reports whether a group it processed has more.
func (h *Host) readyRound() bool {
	var ready []readyGroup
	for _, g := range h.q.active {
		if g.rn.HasReady() {
			ready = append(ready, readyGroup{g: g})
		}
	}
	if len(ready) == 0 {
		return false
	}
	h.stats.readyRounds.Add(1)
	h.stats.readyGroups.Add(uint64(len(ready)))
	roundStart := h.now()

	b := h.cfg.DB.NewBatch()
	mustSync := false
	for i := range ready {
		rg := &ready[i]
		g := rg.g
		// Truncate the log first: it concerns entries committed in earlier
		// rounds, which are in storage already.
		if first, _ := g.store.Bounds(); g.applied > first && g.applied-first > h.cfg.CompactAfterEntries {
			upTo := g.applied - h.cfg.CompactAfterEntries/2
			if r := g.retain.Load(); r > 0 && r < upTo {
				upTo = r // a stream still needs what follows
			}
			if err := g.store.StageTruncate(b, upTo); err != nil {
				b.Close()
				h.fatal(err)
				return false
			}
		}
		rg.rd = g.rn.Ready()
		rd := &rg.rd
		if len(rd.Entries) > 0 || len(rd.CommittedEntries) > 0 || rd.SoftState != nil || !raft.IsEmptySnap(rd.Snapshot) {
			g.busyAt = roundStart
		}
		if rd.SoftState != nil {
			if !g.isLeader && rd.SoftState.RaftState == raft.StateLeader {
				g.termStart = 0 // found below: the first empty entry of the term
			}
			g.isLeader = rd.SoftState.RaftState == raft.StateLeader
			h.noteLeader(g)
			if !g.isLeader {
				g.ccWaiting = nil
			}
			if rd.SoftState.Lead != g.leader() {
				g.setLeader(rd.SoftState.Lead)
			}
		}
		for _, m := range rd.Messages {
			if m.GetType() == pb.MsgTimeoutNow {
				// The transferee may campaign past any lease until this
				// term ends, even if the transfer is later aborted.
				g.lease = lease{}
				g.noLeaseTerm = m.GetTerm()
			}
		}
		if g.isLeader {
			h.trackProposals(g, rd.Entries)
		}
		if g.isLeader && len(rd.Messages) > 0 {
			h.stats.messagesSent.Add(uint64(len(rd.Messages)))
			h.cfg.Sender.Send(g.id, rd.Messages)
			rd.Messages = nil
		}
		if err := h.stage(b, rg); err != nil {
			b.Close()
			h.fatal(err)
			return false
		}
		mustSync = mustSync || rd.MustSync
	}
	if !b.Empty() {
		if err := b.Commit(mustSync); err != nil {
			h.fatal(err)
			return false
		}
		h.stats.batches.Add(1)
		if mustSync {
			h.stats.fsyncs.Add(1)
		}
	} else {
		b.Close()
	}
	// Before any write of this round is acknowledged, lease reads must
	// see it.
	for i := range ready {
		h.publishFast(ready[i].g)
	}
	for i := range ready {
		rg := &ready[i]
		g := rg.g
		if len(rg.rd.Messages) > 0 {
			h.stats.messagesSent.Add(uint64(len(rg.rd.Messages)))
			h.cfg.Sender.Send(g.id, rg.rd.Messages)
		}
		for _, pr := range rg.results {
			pr.w.deliver(pr.r)
		}
		renewed := false
		for _, rs := range rg.rd.ReadStates {
			if len(rs.RequestCtx) != 8 {
				continue
			}
			id := binary.BigEndian.Uint64(rs.RequestCtx)
			if h.leaseRenewed(g, id) {
				renewed = true
				continue
			}
			if rq := g.reads[id]; rq != nil {
				rq.ch <- rs.Index
				delete(g.reads, id)
			}
		}
		if renewed {
			h.publishFast(g) // the lease was extended
		}
		if rg.applied || rg.restored {
			if err := g.sm.Applied(g.applied, rg.restored); err != nil {
				// Committed, but the state machine cannot take it in: its
				// view of the group is no longer what storage holds.
				h.fatal(fmt.Errorf("raftgroup: group %d: after applying up to %d: %w", g.id, g.applied, err))
				return false
			}
		}
		g.rn.Advance(rg.rd)
		// Publish before waking anyone: a woken reader of Status must see
		// the new applied index.
		h.publishStatus(g)
		if rg.applied || rg.restored {
			h.wakeApplied(g)
		}
	}
	for i := range ready {
		if ready[i].g.rn.HasReady() {
			return true
		}
	}
	return false
}

// nudge makes the loop run a round without waiting for an event.
func (h *Host) nudge() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// stage writes one group's Ready into the batch: snapshot, entries, hard
// state, then the committed entries' effects and the new applied state.
func (h *Host) stage(b *storage.Batch, rg *readyGroup) error {
	g, rd := rg.g, &rg.rd
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := g.store.StageSnapshot(b, rd.Snapshot); err != nil {
			return err
		}
		g.applied = rd.Snapshot.GetMetadata().GetIndex()
		for idx := range g.byIndex {
			if idx <= g.applied {
				delete(g.byIndex, idx) // outcome unknown: it may be in the snapshot
			}
		}
		g.cs = proto.Clone(rd.Snapshot.GetMetadata().GetConfState()).(*pb.ConfState)
		// The stamps of the entries the snapshot covers are not known
		// here: unknown (zero) until a stamped entry is applied after it.
		g.appliedStamp = hlc.Timestamp{}
		rg.restored = true
		h.stats.snapshotsApplied.Add(1)
	}
	if err := g.store.StageEntries(b, rd.Entries); err != nil {
		return err
	}
	noteStamps(g, rd.Entries)
	h.stats.entriesAppended.Add(uint64(len(rd.Entries)))
	g.store.StageHardState(b, rd.HardState)
	if len(rd.CommittedEntries) == 0 {
		return nil
	}
	for _, e := range rd.CommittedEntries {
		idx := e.GetIndex()
		if idx <= g.applied {
			continue // replayed after a restart or covered by a snapshot
		}
		if idx != g.applied+1 {
			return fmt.Errorf("raftgroup: group %d: committed entry %d after applied %d", g.id, idx, g.applied)
		}
		if pid, ok := g.byIndex[idx]; ok {
			delete(g.byIndex, idx)
			if id, ok := entryID(e); !ok || id != pid {
				// Another leader's entry won this position: the proposal
				// can never be applied.
				if w := g.proposals[pid]; w != nil {
					rg.results = append(rg.results, pendingResult{w: w, r: Result{Err: fmt.Errorf("%w: log position %d taken by another leader's entry", ErrDropped, idx)}})
					delete(g.proposals, pid)
				}
			}
		}
		switch e.GetType() {
		case pb.EntryNormal:
			env, ok, err := decodeEnvelope(e.GetData())
			if err != nil {
				// An envelope of a newer binary, or a damaged one: this
				// replica cannot know what the entry does.
				return fmt.Errorf("raftgroup: group %d: entry %d: %w", g.id, idx, err)
			}
			if ok {
				var val any
				if !env.mark {
					if val, err = g.sm.Apply(b, idx, env.cmd); err != nil {
						// Not the command's fault: this replica cannot apply
						// what the others may. Nothing of this round is
						// committed and applied stays where storage has it.
						return fmt.Errorf("raftgroup: group %d: cannot apply entry %d: %w", g.id, idx, err)
					}
				}
				if g.appliedStamp.Less(env.stamp) {
					g.appliedStamp = env.stamp
				}
				if w := g.proposals[env.id]; w != nil {
					rg.results = append(rg.results, pendingResult{w: w, r: Result{Index: idx, Value: val}})
					delete(g.proposals, env.id)
				}
			}
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			var cc pb.ConfChangeI
			var ctx []byte
			if e.GetType() == pb.EntryConfChange {
				var c pb.ConfChange
				if err := proto.Unmarshal(e.GetData(), &c); err != nil {
					return fmt.Errorf("raftgroup: group %d: conf change at %d: %w", g.id, idx, err)
				}
				cc, ctx = &c, c.GetContext()
			} else {
				var c pb.ConfChangeV2
				if err := proto.Unmarshal(e.GetData(), &c); err != nil {
					return fmt.Errorf("raftgroup: group %d: conf change at %d: %w", g.id, idx, err)
				}
				cc, ctx = &c, c.GetContext()
			}
			g.cs = g.rn.ApplyConfChange(cc)
			if len(ctx) == 8 {
				if w := g.proposals[binary.BigEndian.Uint64(ctx)]; w != nil {
					rg.results = append(rg.results, pendingResult{w: w, r: Result{Index: idx}})
					delete(g.proposals, binary.BigEndian.Uint64(ctx))
				}
			}
		}
		g.applied = idx
		rg.applied = true
		h.stats.entriesApplied.Add(1)
	}
	if rg.applied || rg.restored {
		g.store.StageApplied(b, g.applied, g.cs)
	}
	return nil
}

func (h *Host) wakeApplied(g *group) {
	g.subMu.Lock()
	for ch := range g.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	g.subMu.Unlock()
	if len(g.applyWaiters) == 0 {
		return
	}
	g.applyWaiters = slices.DeleteFunc(g.applyWaiters, func(aw applyWaiter) bool {
		if aw.index <= g.applied {
			aw.ch <- nil
			return true
		}
		return false
	})
}

// entryID returns the proposal id an entry carries (in its data for a
// command, in its context for a membership change).
func entryID(e *pb.Entry) (uint64, bool) {
	data := e.GetData()
	switch e.GetType() {
	case pb.EntryNormal:
		if env, ok, err := decodeEnvelope(data); ok && err == nil {
			return env.id, true
		}
	case pb.EntryConfChange:
		var c pb.ConfChange
		if proto.Unmarshal(data, &c) == nil && len(c.GetContext()) == 8 {
			return binary.BigEndian.Uint64(c.GetContext()), true
		}
	case pb.EntryConfChangeV2:
		var c pb.ConfChangeV2
		if proto.Unmarshal(data, &c) == nil && len(c.GetContext()) == 8 {
			return binary.BigEndian.Uint64(c.GetContext()), true
		}
	}
	return 0, false
}

// trackProposals records where this leader's own proposals landed in its
// log (so that a different entry committed there fails them at once), and
// fails conf changes that raft refused: raft appends an empty entry in
// place of a conf change it will not accept while another is pending.
func (h *Host) trackProposals(g *group, ents []*pb.Entry) {
	term := g.rn.BasicStatus().GetTerm()
	for _, e := range ents {
		idx := e.GetIndex()
		if e.GetType() == pb.EntryNormal && len(e.GetData()) == 0 {
			if g.termStart == 0 && e.GetTerm() == term {
				g.termStart = idx // the new leader's own empty entry
			} else if idx > g.termStart && len(g.ccWaiting) > 0 {
				refused := g.ccWaiting[0]
				g.ccWaiting = g.ccWaiting[1:]
				if w := g.proposals[refused]; w != nil {
					delete(g.proposals, refused)
					w.deliver(Result{Err: fmt.Errorf("%w: raft refused the membership change (another is pending)", ErrDropped)})
				}
			}
			continue
		}
		id, ok := entryID(e)
		if !ok {
			continue
		}
		if e.GetType() != pb.EntryNormal {
			g.ccWaiting = slices.DeleteFunc(g.ccWaiting, func(x uint64) bool { return x == id })
		}
		if w := g.proposals[id]; w != nil {
			w.index = idx
			g.byIndex[idx] = id
		}
	}
}

// fromNetworkOK filters messages raft would accept from any peer but that
// only the current leader may send (MsgTimeoutNow makes a follower
// campaign past every lease) or that no peer should send at all.
func fromNetworkOK(g *group, m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgTimeoutNow:
		return m.GetFrom() == g.leader()
	case pb.MsgForgetLeader:
		return false
	}
	return true
}
