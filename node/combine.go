package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/raftgroup"
)

// Writes from many connections in one proposal. Every plain SET ("SET
// key value", no options) and plain MSET (one shard's part of an MSET, or
// of a pipelined run of SETs: package resp) that this node proposes to a
// group of a sync keyspace it leads joins the group's open batch; the
// first writer of a batch proposes it, and the batch's MSET is built on
// the raft loop when the loop takes the proposal
// (raftgroup.Host.ProposeBuilt), so it holds every write that arrived
// while the loop was busy with the previous round (its fsync, mostly) and
// delays none. One raft entry, one log write and one apply then carry
// what were as many entries; every writer gets the batch's outcome, and
// its answer the batch's log index.
//
// What a client can tell: nothing. The writes of a batch take effect
// together, in the order they joined (an MSET's pairs stay together and
// in order, so it is still atomic); each was answered only after the
// batch was applied, so each still takes effect between its call and its
// answer. Only sync keyspaces combine: an async keyspace's lost-writes
// report names writes by log index, one per entry, and an active
// keyspace's writes are register merges.

const (
	// maxCombined bounds the pairs of one batch, combinedBytes their keys
	// and values (a batch that would pass either is closed; the writer
	// opens the next, which it may fill alone).
	maxCombined   = 256
	combinedBytes = 1 << 20
)

type combiner struct {
	mu   sync.Mutex
	open map[uint64]*setBatch // group -> the batch taking writers
}

type setBatch struct {
	group   uint64
	first   []byte // the first writer's command as proposed: the command of a batch of one
	writers int
	pairs   [][]byte
	bytes   int
	nowMS   int64
	done    chan struct{}
	// callbacks: the writers that do not wait on done (proposeSetAsync).
	callbacks []func(raftgroup.Result, error)
	res       raftgroup.Result
	err       error
}

// combinable returns cmd's command if it is a plain SET or MSET: key and
// value pairs, nothing else.
func combinable(cmd []byte) (kv.Command, bool) {
	if op, ok := kv.PeekOp(cmd); !ok || (op != kv.OpSet && op != kv.OpMSet) {
		return kv.Command{}, false
	}
	c, err := kv.DecodeCommand(cmd)
	if err != nil || c.Flags != 0 || c.Int != 0 || c.Epoch != 0 || len(c.Args) < 2 || len(c.Args)%2 != 0 ||
		(c.Op == kv.OpSet && len(c.Args) != 2) {
		return kv.Command{}, false
	}
	return c, true
}

// proposeSet proposes a plain SET or MSET (cmd, decoded c) to a group
// this node leads, in the group's open batch. Every writer of a batch
// hears the batch's result: a plain SET's and MSET's callers read only its
// error and index.
func (n *Node) proposeSet(ctx context.Context, group uint64, cmd []byte, c kv.Command) (raftgroup.Result, error) {
	b, first := n.combine.join(group, cmd, c, nil)
	if !first {
		select {
		case <-b.done:
			return b.res, b.err
		case <-ctx.Done():
			return raftgroup.Result{}, fmt.Errorf("%w: %w", raftgroup.ErrTimeout, ctx.Err())
		}
	}
	n.runBatch(ctx, b)
	if err := ctx.Err(); err != nil && b.err == nil {
		// Applied, but this writer stopped waiting: as for any proposal
		// whose context ended, the caller hears of a timeout.
		return raftgroup.Result{}, fmt.Errorf("%w: %w", raftgroup.ErrTimeout, err)
	}
	return b.res, b.err
}

// proposeSetAsync is proposeSet for a writer that does not wait: done is
// called with the batch's outcome once it is known (after at most the
// node's request timeout), on the raft loop's goroutine or a timer's, so
// it must not wait. A writer that opens a batch proposes it without
// waiting (raftgroup.Host.ProposeBuiltAsync); the others only join.
func (n *Node) proposeSetAsync(group uint64, cmd []byte, c kv.Command, done func(raftgroup.Result, error)) {
	b, first := n.combine.join(group, cmd, c, done)
	if !first {
		return
	}
	cb := &n.combine
	n.host.ProposeBuiltAsync(group, n.cfg.RequestTimeout, cb.build(b), func(r raftgroup.Result) {
		cb.finish(b, r, r.Err)
	})
}

// join adds a writer (cmd, decoded c) to the group's open batch, or opens
// a new one, which the writer then proposes (first). done, if not nil, is
// called with the batch's outcome.
func (cb *combiner) join(group uint64, cmd []byte, c kv.Command, done func(raftgroup.Result, error)) (b *setBatch, first bool) {
	size := 0
	for _, a := range c.Args {
		size += len(a)
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if cb.open == nil {
		cb.open = map[uint64]*setBatch{}
	}
	b = cb.open[group]
	first = b == nil || len(b.pairs)+len(c.Args) > 2*maxCombined || b.bytes+size > combinedBytes
	if first {
		// (A full batch is left to its proposer, as it is.)
		b = &setBatch{group: group, first: cmd, done: make(chan struct{})}
		cb.open[group] = b
	}
	b.pairs = append(b.pairs, c.Args...)
	b.writers++
	b.bytes += size
	b.nowMS = max(b.nowMS, c.NowMS)
	if done != nil {
		b.callbacks = append(b.callbacks, done)
	}
	return b, first
}

// runBatch proposes batch b (whose first writer this is) and tells its
// writers the outcome. The batch outlives the first writer's context (the
// others wait on it): it has the node's request timeout of its own.
func (n *Node) runBatch(ctx context.Context, b *setBatch) {
	cb := &n.combine
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.RequestTimeout)
	defer cancel()
	res, err := n.host.ProposeBuilt(pctx, b.group, cb.build(b))
	cb.finish(b, res, err)
}

// build is b's proposal's command, built when the raft loop proposes it:
// b is sealed then, holding every writer that joined until that moment.
func (cb *combiner) build(b *setBatch) func() []byte {
	return func() []byte {
		cb.seal(b)
		return b.command()
	}
}

// finish tells batch b's writers its outcome.
func (cb *combiner) finish(b *setBatch, res raftgroup.Result, err error) {
	cb.seal(b) // if the proposal failed before its command was built
	b.res, b.err = res, err
	close(b.done)
	// Sealed: no writer joins any more, so callbacks no longer changes.
	for _, done := range b.callbacks {
		done(b.res, b.err)
	}
}

// seal closes b to writers (its pairs no longer change).
func (cb *combiner) seal(b *setBatch) {
	cb.mu.Lock()
	if cb.open[b.group] == b {
		delete(cb.open, b.group)
	}
	cb.mu.Unlock()
}

// command is a sealed batch's command: its one writer's command as it
// came, or an MSET of them all.
func (b *setBatch) command() []byte {
	if b.writers == 1 {
		return b.first
	}
	return kv.Command{Op: kv.OpMSet, NowMS: b.nowMS, Args: b.pairs}.Encode()
}
