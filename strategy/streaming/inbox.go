package streaming

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// Inbox is the destination side of every stream into this node's
// replicas: heartbeats answered without raft, batches proposed in order,
// batches from a clock running ahead refused. The node keeps one, and
// hands it every stream batch it is asked to propose.
type Inbox struct {
	env        strategy.Env
	maxOffset  time.Duration
	heartbeats heartbeats
	gate       gate
	refusals   refusals
}

// NewInbox returns the node's Inbox.
func NewInbox(env strategy.Env) *Inbox {
	return &Inbox{env: env, maxOffset: env.Settings().MaxClockOffset}
}

// BatchOf decodes the batch of an OpStreamApply command; any other
// command (the op is looked at first) or a malformed one is false, and is
// left to the state machine.
func BatchOf(cmd []byte) (stream.Batch, bool) {
	if op, ok := kv.PeekOp(cmd); !ok || op != kv.OpStreamApply {
		return stream.Batch{}, false
	}
	c, err := kv.DecodeCommand(cmd)
	if err != nil || len(c.Args) != 1 {
		return stream.Batch{}, false
	}
	b, err := stream.DecodeBatch(c.Args[0])
	return b, err == nil
}

// CheckClock refuses a stream batch carrying a change stamped further in
// the future than the node's maximum clock offset allows: a region whose
// clock runs ahead would otherwise win every last-writer-wins conflict.
// The batch is refused (nothing applied; the source retries, keeping its
// backlog on disk) and the refusal logged, at warn level once per
// refusalLogEvery per stream, until the clocks agree again.
func (i *Inbox) CheckClock(b stream.Batch) error {
	// Every change's time, and the closed timestamp: a source closing
	// times in this node's future would let reads here serve as fresh
	// what it has not sent yet.
	for n := 0; n <= len(b.Changes); n++ {
		at, what := b.ClosedMS, "closed timestamp is"
		if n < len(b.Changes) {
			at, what = b.Changes[n].TimeMS, fmt.Sprintf("change %d is stamped", b.Changes[n].Index)
		}
		if err := i.ahead(b.Stream, fmt.Sprintf("stream %d %s", b.Stream, what), at); err != nil {
			return err
		}
	}
	return nil
}

// CheckResyncClock applies the same check to what a resync of an active
// keyspace proposes here (merges of the source's states, OpActiveMerge,
// stamped with the source's clock); other commands pass.
func (i *Inbox) CheckResyncClock(group uint64, cmd []byte) error {
	if op, ok := kv.PeekOp(cmd); !ok || op != kv.OpActiveMerge {
		return nil
	}
	c, err := kv.DecodeCommand(cmd)
	if err != nil {
		return nil // the state machine says what is wrong with it
	}
	return i.ahead(1<<63|group, fmt.Sprintf("a resync's merge into group %d is stamped", group), c.NowMS)
}

// ahead refuses a time further in the future than the maximum offset,
// and logs the refusal (loudly at most every refusalLogEvery per key).
func (i *Inbox) ahead(key uint64, what string, at int64) error {
	now := i.env.Now().UnixMilli()
	if at <= now+i.maxOffset.Milliseconds() {
		return nil
	}
	err := fmt.Errorf("%w: %s %d ms ahead of node %d's clock (max offset %v)", kv.ErrClockSkew, what, at-now, i.env.ID(), i.maxOffset)
	level := slog.LevelDebug
	if i.refusals.due(key, time.Now()) {
		level = slog.LevelWarn // the source reports the stall too
	}
	i.env.Logger().Log(context.Background(), level, "refused a stream batch from a clock running ahead", "err", err)
	return err
}

// refusalLogEvery is how often a destination logs, at warn level, that it
// keeps refusing a stream's batches (the retries in between at debug).
const refusalLogEvery = 30 * time.Second

// refusals remembers when each stream's refusal was last logged.
type refusals struct {
	mu   sync.Mutex
	last map[uint64]time.Time
}

// due reports whether a refusal of stream's batch should be logged loudly
// now, and if so records it.
func (r *refusals) due(stream uint64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.last[stream]; ok && now.Sub(at) < refusalLogEvery {
		return false
	}
	if r.last == nil {
		r.last = map[uint64]time.Time{}
	}
	r.last[stream] = now
	return true
}

// Heartbeats without raft. An idle stream's heartbeat only carries the
// source's closed timestamp; proposing it through the destination's raft
// group would cost an fsync per heartbeat per stream. A replica of the
// destination group that has already applied everything the heartbeat
// follows answers it itself and keeps the closed timestamp in memory,
// with the position it holds for (reads use it only while the group's
// cursor is at or past that position; a resync resets the cursor and so
// voids it). A heartbeat that would be refused, or that follows changes
// this replica lacks, goes through raft as any batch.

type streamKey struct{ group, source uint64 }

type heartbeatClosed struct {
	prev     uint64
	closedMS int64
}

type heartbeats struct {
	mu sync.Mutex
	m  map[streamKey]heartbeatClosed
}

// Quiet answers a heartbeat for group without raft if it can, returning
// the group's cursor.
func (i *Inbox) Quiet(group uint64, b stream.Batch) (uint64, bool) {
	if len(b.Changes) != 0 {
		return 0, false
	}
	db := i.env.DB()
	role, err := kv.LoadRole(db, group)
	if err != nil || kv.CheckStream(role, b.Epoch) != nil {
		return 0, false
	}
	cur, _, err := db.Cursor(group, b.Stream)
	if err != nil {
		return 0, false
	}
	ack, err := stream.Check(cur, i.env.Cluster(), b, role.Epoch)
	if err != nil || ack.Applied != cur.Index {
		// Refused, or a cursor of an older epoch (which raft must reset):
		// the batch goes through raft.
		return 0, false
	}
	hb := &i.heartbeats
	hb.mu.Lock()
	if hb.m == nil {
		hb.m = map[streamKey]heartbeatClosed{}
	}
	k := streamKey{group, b.Stream}
	if old, ok := hb.m[k]; !ok || b.ClosedMS > old.closedMS {
		hb.m[k] = heartbeatClosed{prev: b.Prev, closedMS: b.ClosedMS}
	}
	hb.mu.Unlock()
	return ack.Applied, true
}

// Position is a destination group's position in a stream on this node:
// the committed cursor, with the closed timestamp of the latest heartbeat
// answered here if it still holds.
func (i *Inbox) Position(group, source uint64) (storage.Cursor, error) {
	c, _, err := i.env.DB().Cursor(group, source)
	if err != nil {
		return c, err
	}
	hb := &i.heartbeats
	hb.mu.Lock()
	h, ok := hb.m[streamKey{group, source}]
	hb.mu.Unlock()
	if ok && h.prev <= c.Index {
		c.ClosedMS = max(c.ClosedMS, h.closedMS)
	}
	return c, nil
}

// Order waits until a stream batch for group may be proposed on this
// replica (see gate) and returns what to call once its proposal is over.
func (i *Inbox) Order(ctx context.Context, group uint64, b stream.Batch) func() {
	cur, _, err := i.env.DB().Cursor(group, b.Stream)
	if err != nil {
		return func() {}
	}
	return i.gate.enter(ctx, group, b, cur.Index)
}

// Ordering at the destination. A sender keeps several batches in flight;
// a replica of the destination group serves each in its own goroutine,
// so two that arrive together can reach raft in the wrong order, and the
// later one is refused with a gap (the sender repairs it, but resends
// what followed). A replica therefore proposes a stream's batch only
// after the batch it follows, if that is being proposed here or arrives
// within orderWait: it orders what the network and the scheduler mixed
// up, and delays nothing that is in order (a batch following the group's
// cursor goes at once).

// orderWait is how long a batch waits for the batch it follows to arrive
// before it is proposed anyway.
const orderWait = 20 * time.Millisecond

type gate struct {
	wait     time.Duration // 0: orderWait
	mu       sync.Mutex
	pending  map[streamKey]map[uint64]chan struct{} // batches being proposed, by the index they end at; closed when done
	finished map[streamKey]uint64                   // the furthest index a batch whose proposal is over ended at
	arrived  map[streamKey]chan struct{}            // closed and replaced when a batch starts or ends being proposed
}

// changedLocked wakes the batches of stream k waiting for another.
func (g *gate) changedLocked(k streamKey) {
	if ch := g.arrived[k]; ch != nil {
		close(ch)
	}
	g.arrived[k] = make(chan struct{})
}

// enter waits until the batch b of a stream into group may be proposed
// here (see above), and returns the function to call once its proposal
// is over. cursor is the group's cursor of the stream on this replica.
func (g *gate) enter(ctx context.Context, group uint64, b stream.Batch, cursor uint64) func() {
	k := streamKey{group, b.Stream}
	last := b.Last()
	mine := make(chan struct{})
	g.mu.Lock()
	if g.pending == nil {
		g.pending, g.finished, g.arrived = map[streamKey]map[uint64]chan struct{}{}, map[streamKey]uint64{}, map[streamKey]chan struct{}{}
	}
	if g.pending[k] == nil {
		g.pending[k] = map[uint64]chan struct{}{}
	}
	if _, dup := g.pending[k][last]; !dup {
		g.pending[k][last] = mine
	}
	g.changedLocked(k)
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if g.pending[k][last] == mine {
			delete(g.pending[k], last)
			if len(g.pending[k]) == 0 {
				delete(g.pending, k)
			}
		}
		g.finished[k] = max(g.finished[k], last)
		g.changedLocked(k)
		g.mu.Unlock()
		close(mine)
	}
	if b.Prev <= cursor || b.Prev == last {
		return done
	}
	wait := g.wait
	if wait == 0 {
		wait = orderWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		g.mu.Lock()
		before, ok := g.pending[k][b.Prev]
		over := g.finished[k] >= b.Prev
		arrived := g.arrived[k]
		g.mu.Unlock()
		if over {
			return done
		}
		if ok {
			select {
			case <-before: // proposed (applied, or failed): go
			case <-ctx.Done():
			}
			return done
		}
		select {
		case <-arrived: // another batch of the stream: maybe the one before
		case <-timer.C:
			return done
		case <-ctx.Done():
			return done
		}
	}
}
