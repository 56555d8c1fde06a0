package node

import (
	"context"
	"math/rand/v2"
)

// RandomKey returns a live key of the keyspace chosen at random, nil if
// it has none: it picks a shard and a random place in its key order, and
// takes the first live key from there (wrapping around, then trying the
// other shards). Keys after long runs of expired or deleted ones come up
// more often than others; Redis's choice is not uniform either.
func (n *Node) RandomKey(ctx context.Context, keyspace string, c Consistency) ([]byte, Answer, error) {
	c, err := n.scanLevel(keyspace, c)
	if err != nil {
		return nil, Answer{}, err
	}
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, Answer{}, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	now := n.NowMS()
	for _, i := range rand.Perm(len(ks.Shards)) {
		sh := ks.Shards[i]
		start := make([]byte, 1+rand.IntN(8))
		for j := range start {
			start[j] = byte(rand.IntN(256))
		}
		for _, after := range [][]byte{start, nil} {
			for {
				page, err := n.scanShard(ctx, ks, sh, after, "", 64, 1<<20, now, c)
				if err != nil {
					return nil, Answer{}, err
				}
				if len(page.Keys) > 0 {
					a := n.answer(c, page.Index)
					a.Forwarded = page.Forwarded
					return page.Keys[0], a, nil
				}
				if !page.Full {
					break
				}
				after = page.Last
			}
		}
	}
	return nil, n.answer(c, 0), nil
}
