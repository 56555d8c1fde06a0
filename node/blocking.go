package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
)

// Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX).
// The pop is an ordinary write: proposed, it pops at once if a list or
// sorted set has an item, and answers a nil array otherwise. The node
// then waits until its replica of the group that takes the shard's writes
// applies a push (or a ZADD) to one of the keys (the state machine tells it, kv.StateMachine.OnPush), and
// proposes the pop again; several clients waiting on one key all try, and
// the first whose pop is applied gets the item (no FIFO order among
// them, unlike Redis). Without a replica of that group here, the node
// looks at the keys every 100 ms instead. A timeout of 0 waits until the
// client goes away.
//
// Async keyspaces serve blocking pops in the primary region only (where
// pushes are applied first); active keyspaces have no lists and refuse
// pops of sorted sets (ZPOPMIN removes by rank).

// ErrBlockingNotHere is returned for a blocking pop sent to a node that
// cannot serve it: outside an async keyspace's primary region.
var ErrBlockingNotHere = errors.New("node: blocking pops of an async keyspace are served in its primary region")

// blockPoll is how often a waiter without a local replica looks again,
// and how often one with a replica checks anyway (a snapshot installed
// meanwhile tells nobody).
const (
	blockPoll     = 100 * time.Millisecond
	blockRecheck  = time.Second
	blockWakeSize = 1
)

type blockKey struct {
	group uint64
	key   string
}

// blockers holds the waiters of blocking pops, by group and key.
type blockers struct {
	mu    sync.Mutex
	waits map[blockKey]map[chan struct{}]struct{}
	woken uint64 // waiters told of a push, for tests
}

// register adds a waiter on keys of group; the channel is signalled
// (never blocking the signaller) when one of them gets a push.
func (b *blockers) register(group uint64, keys [][]byte) (chan struct{}, func()) {
	ch := make(chan struct{}, blockWakeSize)
	b.mu.Lock()
	if b.waits == nil {
		b.waits = map[blockKey]map[chan struct{}]struct{}{}
	}
	for _, k := range keys {
		bk := blockKey{group, string(k)}
		if b.waits[bk] == nil {
			b.waits[bk] = map[chan struct{}]struct{}{}
		}
		b.waits[bk][ch] = struct{}{}
	}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		for _, k := range keys {
			bk := blockKey{group, string(k)}
			delete(b.waits[bk], ch)
			if len(b.waits[bk]) == 0 {
				delete(b.waits, bk)
			}
		}
		b.mu.Unlock()
	}
}

// wake signals the waiters on a key of group. The state machine calls it
// while applying; it must not block.
func (b *blockers) wake(group uint64, key []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.waits[blockKey{group, string(key)}] {
		b.woken++
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// BlockedClients returns how many blocking pops wait on this node.
func (n *Node) BlockedClients() int { return n.blocked.waiting() }

// waiting returns how many waiters there are.
func (b *blockers) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, ws := range b.waits {
		n += len(ws)
	}
	return n
}

// BlockingWrite runs a blocking engine write whose keys are keys (all in
// one shard; the lists or sorted sets it pops from first) until its reply is not a nil
// array, or until timeout (0: none) or ctx ends: then it returns the nil
// array. The reply is the result's Value, as Write returns it.
func (n *Node) BlockingWrite(ctx context.Context, keyspace string, keys [][]byte, args [][]byte, timeout time.Duration) (kv.Result, Answer, error) {
	ks, sh, err := n.route(keyspace, keys[0])
	if err != nil {
		return kv.Result{}, Answer{}, err
	}
	switch {
	case ks.Strategy == metadata.Active:
		why := kv.ActiveLists
		if spec, ok := kv.Lookup(args[0]); ok && spec.Active != kv.ActiveRead && spec.Active != kv.ActiveWrite {
			why = spec.Active // the sorted sets' reason for BZPOPMIN, BZPOPMAX
		}
		return kv.Result{}, Answer{}, fmt.Errorf("%w: %s", ErrNotOnActive, why)
	case ks.Strategy == metadata.Async && n.cfg.Region != ks.HomeRegion:
		return kv.Result{}, Answer{}, fmt.Errorf("%w (%s for %q; this node is in %s): connect there, or use the non-blocking pop", ErrBlockingNotHere, ks.HomeRegion, ks.Name, n.cfg.Region)
	}
	local := slices.Contains(sh.Replicas, n.cfg.ID)
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	wake, unregister := n.blocked.register(sh.Group, keys)
	defer unregister()
	for attempt := 0; ; attempt++ {
		if attempt == 0 || n.listsReady(ctx, keyspace, keys) {
			res, a, err := n.Write(ctx, keyspace, kv.RedisCommand(keys[0], n.NowMS(), args))
			if err != nil || res.Err != nil {
				return res, a, err
			}
			if r, derr := kv.DecodeReply(res.Value); derr != nil || r.Kind != kv.ReplyNilArray {
				return res, a, derr
			}
		}
		poll := blockRecheck
		if !local {
			poll = blockPoll
		}
		select {
		case <-wake:
		case <-time.After(poll):
		case <-deadline:
			return kv.Result{Value: kv.NilArray().Encode(), Found: true}, n.answer(Strong, 0), nil
		case <-ctx.Done():
			return kv.Result{}, Answer{}, ctx.Err()
		case <-n.stop:
			return kv.Result{}, Answer{}, ErrOutcomeUnknown
		}
	}
}

// listsReady reports whether one of the keys exists (an empty list or
// sorted set does not): a local read when this node has a replica, the
// nearest replica's otherwise; errors read as "maybe": the pop is
// proposed.
func (n *Node) listsReady(ctx context.Context, keyspace string, keys [][]byte) bool {
	args := append([][]byte{[]byte("exists")}, keys...)
	out, _, err := n.Query(ctx, keyspace, keys[0], args, Eventual)
	if err != nil {
		return true
	}
	r, err := kv.DecodeReply(out)
	return err != nil || r.Kind != kv.ReplyInt || r.Int > 0
}
