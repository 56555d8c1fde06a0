package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
)

// Commands of the engine (package kv): reads run on a replica's view at a
// consistency level (Query), writes go through the shard's group like any
// write (Write with a kv.RedisCommand or kv.TxnCommand). Every key of one
// command (or transaction) must live in one shard: Shard tells the front
// end where a key lives, and CrossShard builds the error it answers
// otherwise, as Redis Cluster answers CROSSSLOT.

// ErrCrossShard is returned for a command or transaction whose keys live
// in different shards: it could not run as one atomic step. Keys given
// the same hash tag ("{user42}:cart", "{user42}:orders") live in one
// shard.
var ErrCrossShard = errors.New("CROSSSLOT Keys in request don't hash to the same shard")

// Shard returns the index of the shard a key of the keyspace lives in.
func (n *Node) Shard(keyspace string, key []byte) (int, error) {
	_, sh, err := n.route(keyspace, key)
	if err != nil {
		return 0, err
	}
	return sh.Index, nil
}

// SameShard checks that keys all live in one shard and returns it (-1 for
// no keys); otherwise the error (ErrCrossShard) names the keys and their
// shards.
func (n *Node) SameShard(keyspace string, keys [][]byte) (int, error) {
	shard := -1
	var b strings.Builder
	cross := false
	for i, k := range keys {
		s, err := n.Shard(keyspace, k)
		if err != nil {
			return 0, err
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'%s' (shard %d)", printableKey(k), s)
		if shard >= 0 && s != shard {
			cross = true
		}
		if shard < 0 {
			shard = s
		}
	}
	if cross {
		return 0, fmt.Errorf("%w: %s; give them a common hash tag, as in {user42}:cart and {user42}:orders", ErrCrossShard, b.String())
	}
	return shard, nil
}

func printableKey(k []byte) string {
	if len(k) > 64 {
		k = k[:64]
	}
	out := []byte(string(k))
	for i, c := range out {
		if c < ' ' || c == 0x7f || c == '\'' {
			out[i] = '?'
		}
	}
	return string(out)
}

// Query runs a read-only engine command (its keys in one shard, routed by
// key) at consistency c, and returns its encoded kv.Reply. A shard with
// no replica here is read by the nearest node that holds one.
func (n *Node) Query(ctx context.Context, keyspace string, key []byte, args [][]byte, c Consistency) ([]byte, Answer, error) {
	ks, sh, err := n.route(keyspace, key)
	if err != nil {
		return nil, Answer{}, err
	}
	if c, err = n.resolve(ks, c); err != nil {
		return nil, Answer{}, err
	}
	var out []byte
	a, err := n.read(ctx, ks, sh, c, func(group uint64, nowMS int64) error {
		r, err := kv.Query(n.db, group, nowMS, args, ks.Strategy == metadata.Active)
		out = r.Encode()
		return err
	}, func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error) {
		var a Answer
		out, a, err = n.queryRemote(ctx, target, keyspace, key, args, c)
		return a, err
	})
	return out, a, err
}

// queryRemote asks the nearest replica of target to run a query (by its
// own rules at level c).
func (n *Node) queryRemote(ctx context.Context, target metadata.Shard, keyspace string, key []byte, args [][]byte, c Consistency) ([]byte, Answer, error) {
	id := n.nearestReplica(target)
	if id == 0 {
		return nil, Answer{}, ErrNoReplica
	}
	resp, err := n.client(id).Query(ctx, &nodepb.QueryRequest{Keyspace: keyspace, Key: key, Level: levelText(c), Token: c.Token, Args: args})
	if err != nil {
		return nil, Answer{}, err
	}
	if err := fromPB(resp.GetError()); err != nil {
		return nil, Answer{}, err
	}
	a := answerFromPB(resp.GetAnswer())
	a.Forwarded = true
	return resp.GetReply(), a, nil
}

// Query serves a query for another node (nodepb.Node).
func (s rpcServer) Query(ctx context.Context, req *nodepb.QueryRequest) (*nodepb.QueryResponse, error) {
	if len(req.GetArgs()) == 0 {
		return &nodepb.QueryResponse{Error: toPB(fmt.Errorf("%w: a query without a command", kv.ErrBadCommand))}, nil
	}
	c, err := levelFromText(req.GetLevel(), req.GetToken())
	if err != nil {
		return &nodepb.QueryResponse{Error: toPB(err)}, nil
	}
	out, a, err := s.n.Query(ctx, req.GetKeyspace(), req.GetKey(), req.GetArgs(), c)
	if err != nil {
		return &nodepb.QueryResponse{Error: toPB(err)}, nil
	}
	return &nodepb.QueryResponse{Reply: out, Answer: answerToPB(a)}, nil
}

// FlushDB deletes every key of a keyspace, shard by shard (each shard at
// once, in every region that replicates it). Active keyspaces refuse it:
// deleting there takes tombstones, key by key.
func (n *Node) FlushDB(ctx context.Context, keyspace string) (Answer, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return Answer{}, err
	}
	if ks.Strategy == metadata.Active {
		return Answer{}, fmt.Errorf("%w: FLUSHDB: deleting in an active keyspace takes a tombstone per key, so that older writes arriving later stay deleted; delete the keys (SCAN and DEL)", ErrNotOnActive)
	}
	now := n.NowMS()
	var a Answer
	for i := range ks.Shards {
		key := keyOfShard(i, len(ks.Shards))
		if _, a, err = n.Write(ctx, keyspace, kv.RedisCommand(key, now, kv.FlushShardCommand())); err != nil {
			return Answer{}, fmt.Errorf("shard %d: %w", i, err)
		}
	}
	return a, nil
}

// keyOfShard returns a key that lives in shard i of n (a hash tag found by
// counting up).
func keyOfShard(i, n int) []byte {
	for j := 0; ; j++ {
		k := fmt.Appendf(nil, "{%d}", j)
		if ShardOf(k, n) == i {
			return k
		}
	}
}
