package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/transport"
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
	a, err := n.read(ctx, ks, sh, c, func(group uint64) error {
		r, err := kv.Query(n.db, group, time.Now().UnixMilli(), args, isActive(ks))
		out = r.Encode()
		return err
	}, func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error) {
		var a Answer
		out, a, err = n.queryRemote(ctx, target, keyspace, key, args, c)
		return a, err
	})
	return out, a, err
}

const methodQuery = "kvquery"

// A query crossing nodes is binary: the request holds the keyspace, the
// key, the consistency (its text and token) and the arguments, each
// length-prefixed (uvarint), arguments after their count; the answer
// holds the Answer's fields (region, node, consistency, index, group,
// staleness + 1, forwarded) and the encoded reply.

func appendBytes(b, p []byte) []byte { return append(binary.AppendUvarint(b, uint64(len(p))), p...) }

type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) bytes() []byte {
	n, w := binary.Uvarint(r.b)
	if r.err != nil || w <= 0 || n > uint64(len(r.b)-w) {
		r.fail()
		return nil
	}
	out := r.b[w : w+int(n)]
	r.b = r.b[w+int(n):]
	return out
}

func (r *byteReader) uvarint() uint64 {
	v, w := binary.Uvarint(r.b)
	if r.err != nil || w <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[w:]
	return v
}

func (r *byteReader) fail() {
	if r.err == nil {
		r.err = errors.New("node: malformed query message")
	}
}

func (n *Node) queryRemote(ctx context.Context, sh metadata.Shard, keyspace string, key []byte, args [][]byte, c Consistency) ([]byte, Answer, error) {
	best := n.nearestReplica(sh)
	if best == 0 {
		return nil, Answer{}, ErrNoReplica
	}
	level := ""
	if c.Req.Level != 0 {
		level = c.Req.String()
	}
	req := appendBytes(nil, []byte(keyspace))
	req = appendBytes(req, key)
	req = appendBytes(req, []byte(level))
	req = appendBytes(req, []byte(c.Token))
	req = binary.AppendUvarint(req, uint64(len(args)))
	for _, a := range args {
		req = appendBytes(req, a)
	}
	resp, err := n.tr.Call(ctx, best, methodQuery, req)
	if err != nil {
		var re *transport.RemoteError
		if errors.As(err, &re) {
			if code, msg, ok := strings.Cut(re.Message, "|"); ok {
				return nil, Answer{}, DecodeError(code, msg)
			}
			return nil, Answer{}, fmt.Errorf("node %d: %s", best, re.Message)
		}
		return nil, Answer{}, err
	}
	r := &byteReader{b: resp}
	a := Answer{Region: string(r.bytes()), Node: r.uvarint(), Consistency: string(r.bytes()), Index: r.uvarint(), Group: r.uvarint()}
	a.StalenessMS = int64(r.uvarint()) - 1
	a.Forwarded = true
	out := r.bytes()
	if r.err != nil || len(r.b) != 0 {
		return nil, Answer{}, fmt.Errorf("node: bad query answer from node %d", best)
	}
	return out, a, nil
}

// handleQuery serves a query for another node.
func (n *Node) handleQuery(ctx context.Context, body []byte) ([]byte, error) {
	r := &byteReader{b: body}
	keyspace, key, level, token := string(r.bytes()), r.bytes(), string(r.bytes()), string(r.bytes())
	nargs := r.uvarint()
	if nargs > uint64(len(r.b)) {
		r.fail()
	}
	args := make([][]byte, 0, nargs)
	for range nargs {
		args = append(args, r.bytes())
	}
	if r.err != nil || len(r.b) != 0 || len(args) == 0 {
		return nil, fmt.Errorf("node: bad query request")
	}
	c := Consistency{Token: token}
	if level != "" {
		var err error
		if c, err = ParseConsistency(level); err != nil {
			return nil, remoteError(err)
		}
		c.Token = token
	}
	out, a, err := n.Query(ctx, keyspace, key, args, c)
	if err != nil {
		return nil, remoteError(err)
	}
	resp := appendBytes(nil, []byte(a.Region))
	resp = binary.AppendUvarint(resp, a.Node)
	resp = appendBytes(resp, []byte(a.Consistency))
	resp = binary.AppendUvarint(resp, a.Index)
	resp = binary.AppendUvarint(resp, a.Group)
	resp = binary.AppendUvarint(resp, uint64(a.StalenessMS+1))
	return appendBytes(resp, out), nil
}

// FlushDB deletes every key of a keyspace, shard by shard (each shard at
// once, in every region that replicates it). Active keyspaces refuse it:
// deleting there takes tombstones, key by key.
func (n *Node) FlushDB(ctx context.Context, keyspace string) (Answer, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return Answer{}, err
	}
	if isActive(ks) {
		return Answer{}, fmt.Errorf("%w: FLUSHDB: deleting in an active keyspace takes a tombstone per key, so that older writes arriving later stay deleted; delete the keys (SCAN and DEL)", ErrNotOnActive)
	}
	now := time.Now().UnixMilli()
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
