package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
)

// Requests on several keys. Keys are grouped by shard; each shard is
// served as one unit (one read point, one command), shards concurrently.
//
// Atomicity: a multi-key write is atomic within a shard (one raft command,
// applied all at once) but not across shards. If one shard fails, the
// others may have applied their part; the error says which shard failed.
//
// Answers: a request served by one shard reports that shard's index; one
// spanning shards reports index 0 (indexes of different groups do not
// compare), and Forwarded if any part was forwarded.

// shardBatch is the keys (with their positions in the request) of one shard.
type shardBatch struct {
	shard metadata.Shard
	pos   []int
}

// byShard routes every key; it fails if any key is invalid.
func (n *Node) byShard(keyspace string, keys [][]byte, stride int) ([]*shardBatch, error) {
	var out []*shardBatch
	idx := map[int]*shardBatch{}
	for i := 0; i < len(keys); i += stride {
		_, sh, err := n.route(keyspace, keys[i])
		if err != nil {
			return nil, err
		}
		b := idx[sh.Index]
		if b == nil {
			b = &shardBatch{shard: sh}
			idx[sh.Index] = b
			out = append(out, b)
		}
		b.pos = append(b.pos, i)
	}
	return out, nil
}

// merge combines the answers of the shards of one request.
func mergeAnswers(as []Answer) Answer {
	if len(as) == 1 {
		return as[0]
	}
	var a Answer
	var written []consistency.Mark
	for _, x := range as {
		if a.Region == "" {
			a = x
			a.Index = 0
		}
		a.Forwarded = a.Forwarded || x.Forwarded
		written = append(written, x.Marks()...)
	}
	a.Written = written
	return a
}

// eachShard runs fn for every batch concurrently and returns the answers
// and the first error (by shard order).
func eachShard(batches []*shardBatch, fn func(i int, b *shardBatch) (Answer, error)) (Answer, error) {
	answers := make([]Answer, len(batches))
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, b := range batches {
		wg.Go(func() { answers[i], errs[i] = fn(i, b) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return Answer{}, fmt.Errorf("shard %d: %w", batches[i].shard.Index, err)
		}
	}
	return mergeAnswers(answers), nil
}

// MGet reads several keys at one consistency level. It returns each key's
// live record (any type; found[i] false if absent), in request order; a
// key may appear more than once.
func (n *Node) MGet(ctx context.Context, keyspace string, keys [][]byte, c Consistency) ([]kv.Record, []bool, Answer, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, nil, Answer{}, err
	}
	if c, err = n.resolve(ks, c); err != nil {
		return nil, nil, Answer{}, err
	}
	batches, err := n.byShard(keyspace, keys, 1)
	if err != nil {
		return nil, nil, Answer{}, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	recs, found := make([]kv.Record, len(keys)), make([]bool, len(keys))
	a, err := eachShard(batches, func(_ int, b *shardBatch) (Answer, error) {
		return n.read(ctx, ks, b.shard, c, func(group uint64, now int64) error {
			for _, i := range b.pos {
				var err error
				if recs[i], found[i], err = kv.Get(n.db, group, keys[i], now); err != nil {
					return err
				}
				if recs[i], found[i], err = kv.PlainRecord(recs[i], found[i]); err != nil {
					return err
				}
			}
			return nil
		}, func(ctx context.Context, _ metadata.Shard, c Consistency) (Answer, error) {
			// No local replica: each key is forwarded on its own.
			var a Answer
			for _, i := range b.pos {
				var err error
				if recs[i], found[i], a, err = n.GetRecord(ctx, keyspace, keys[i], c); err != nil {
					return Answer{}, err
				}
			}
			return a, nil
		})
	})
	if err != nil {
		return nil, nil, Answer{}, err
	}
	return recs, found, a, nil
}

// MSet sets key/value pairs (pairs holds k1, v1, k2, v2, ...) to strings
// without expiry: one OpMSet per shard, atomic within each shard only.
func (n *Node) MSet(ctx context.Context, keyspace string, pairs [][]byte) (Answer, error) {
	if len(pairs) == 0 || len(pairs)%2 != 0 {
		return Answer{}, fmt.Errorf("%w: mset needs key/value pairs", kv.ErrBadCommand)
	}
	batches, err := n.byShard(keyspace, pairs, 2)
	if err != nil {
		return Answer{}, err
	}
	now := n.NowMS()
	if ks, err := n.meta.Keyspace(keyspace); err == nil && !n.strategyOf(ks).Ops().Admits(kv.OpMSet) {
		// One write per key where the groups take no multi-key write
		// (active keyspaces: each becomes a register write).
		var a Answer
		for i := 0; i < len(pairs); i += 2 {
			if _, a, err = n.Write(ctx, keyspace, kv.Command{Op: kv.OpSet, NowMS: now, Args: [][]byte{pairs[i], pairs[i+1]}}); err != nil {
				return a, err
			}
		}
		return a, nil
	}
	return eachShard(batches, func(_ int, b *shardBatch) (Answer, error) {
		cmd := kv.Command{Op: kv.OpMSet, NowMS: now, Args: make([][]byte, 0, 2*len(b.pos))}
		for _, i := range b.pos {
			cmd.Args = append(cmd.Args, pairs[i], pairs[i+1])
		}
		_, a, err := n.Write(ctx, keyspace, cmd)
		return a, err
	})
}

// DeleteKeys deletes keys (one OpDelete per shard) and returns how many
// of them existed.
func (n *Node) DeleteKeys(ctx context.Context, keyspace string, keys [][]byte) (int64, Answer, error) {
	batches, err := n.byShard(keyspace, keys, 1)
	if err != nil {
		return 0, Answer{}, err
	}
	now := n.NowMS()
	counts := make([]int64, len(batches))
	a, err := eachShard(batches, func(i int, b *shardBatch) (Answer, error) {
		cmd := kv.Command{Op: kv.OpDelete, NowMS: now, Args: make([][]byte, 0, len(b.pos))}
		for _, i := range b.pos {
			cmd.Args = append(cmd.Args, keys[i])
		}
		r, a, err := n.Write(ctx, keyspace, cmd)
		counts[i] = r.N
		return a, err
	})
	if err != nil {
		return 0, Answer{}, err
	}
	var total int64
	for _, c := range counts {
		total += c
	}
	return total, a, nil
}
