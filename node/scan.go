package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
)

// ErrBadCursor is returned by Scan for a cursor it did not make, or one
// made before the keyspace's shards changed.
var ErrBadCursor = errors.New("node: invalid scan cursor")

// DefaultScanCount is the number of keys Scan examines when count <= 0.
const DefaultScanCount = 10

// scanPageBytes ends a Scan page early once its keys take this much, so
// that a large count over large keys stays bounded.
const scanPageBytes = 4 << 20

// Scan iterates over a keyspace's keys: shard after shard, each in key
// order. Start with cursor "0" and pass each returned cursor back until it
// is "0" again. Every key that exists for the whole iteration is returned
// exactly once; keys written or deleted meanwhile may or may not be.
//
// A call examines about count keys (expired ones included, so that a
// sparse MATCH still makes progress) and returns the live ones that match
// the glob pattern match ("" matches everything; see kv.GlobMatch); it stops
// early once the page holds 4 MiB of keys. A page may be empty while the
// cursor is not "0".
//
// A cursor is "<shard>:<last key, base64url>": it holds no server state,
// so any node may continue an iteration another node started.
//
// Each shard is read from the local replica if there is one (strong scans
// confirm a read point with the shard's leader first, eventual scans read
// at once); a shard with no replica here is read by the nearest node that
// holds one.
func (n *Node) Scan(ctx context.Context, keyspace, cursor, match string, count int, c Consistency) ([][]byte, string, Answer, error) {
	c, err := n.scanLevel(keyspace, c)
	if err != nil {
		return nil, "", Answer{}, err
	}
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, "", Answer{}, err
	}
	shard, after, err := parseCursor(cursor, len(ks.Shards), n.cfg.MaxKeyBytes)
	if err != nil {
		return nil, "", Answer{}, err
	}
	if count <= 0 {
		count = DefaultScanCount
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	now := n.NowMS()
	var keys [][]byte
	examined, read, size := 0, 0, 0
	a := n.answer(c, 0)
	for ; shard < len(ks.Shards); shard, after = shard+1, nil {
		if examined >= count || size >= scanPageBytes {
			return keys, formatCursor(shard, nil), a, nil
		}
		sh := ks.Shards[shard]
		page, err := n.scanShard(ctx, ks, sh, after, match, count-examined, scanPageBytes-size, now, c)
		if err != nil {
			return nil, "", Answer{}, err
		}
		if read++; read == 1 {
			a.Index = page.Index
		} else {
			a.Index = 0 // indexes of different groups do not compare
		}
		a.Forwarded = a.Forwarded || page.Forwarded
		keys = append(keys, page.Keys...)
		examined += page.Examined
		for _, k := range page.Keys {
			size += len(k)
		}
		if page.Full {
			return keys, formatCursor(shard, page.Last), a, nil
		}
	}
	return keys, "0", a, nil
}

// DBSize counts the live keys of a keyspace (a full scan of every shard,
// under the same rules as Scan).
func (n *Node) DBSize(ctx context.Context, keyspace string, c Consistency) (int64, Answer, error) {
	c, err := n.scanLevel(keyspace, c)
	if err != nil {
		return 0, Answer{}, err
	}
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return 0, Answer{}, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	now := n.NowMS()
	a := n.answer(c, 0)
	var total int64
	for i, sh := range ks.Shards {
		// A count is a scan that keeps no keys: page through the shard.
		var after []byte
		for {
			page, err := n.scanShard(ctx, ks, sh, after, "", 1<<20, 0, now, c)
			if err != nil {
				return 0, Answer{}, err
			}
			if i == 0 && after == nil {
				a.Index = page.Index
			} else if after == nil {
				a.Index = 0
			}
			total += page.Live
			if !page.Full {
				break
			}
			after = page.Last
		}
	}
	return total, a, nil
}

// shardPage is one shard's part of a scan page.
type shardPage struct {
	Keys     [][]byte `json:"k,omitempty"`
	Live     int64    `json:"l,omitempty"` // live keys examined (all counted, even when not kept)
	Examined int      `json:"e"`
	Last     []byte   `json:"last,omitempty"`
	Full     bool     `json:"full,omitempty"`
	Index    uint64   `json:"i,omitempty"`
	// Forwarded is true when another node read the shard.
	Forwarded bool `json:"-"`
}

// scanShard examines up to count keys of one shard after `after`, keeping
// the live ones that match (at most maxBytes of them; 0 keeps none, for
// counting). A shard with no replica here is read by the nearest node
// that holds one.
func (n *Node) scanShard(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, after []byte, match string, count, maxBytes int, now int64, c Consistency) (shardPage, error) {
	if !slices.Contains(sh.Replicas, n.cfg.ID) {
		id := n.nearestReplica(sh)
		if id == 0 {
			return shardPage{}, ErrNoReplica
		}
		resp, err := n.client(id).Scan(ctx, &nodepb.ScanRequest{Keyspace: ks.Name, Shard: int32(sh.Index), After: after, Match: match,
			Count: int32(count), MaxBytes: int64(maxBytes), NowMs: now, Level: levelText(c), Token: c.Token})
		if err == nil {
			err = fromPB(resp.GetError())
		}
		if err != nil {
			return shardPage{}, err
		}
		return shardPage{Keys: resp.GetKeys(), Live: resp.GetLive(), Examined: int(resp.GetExamined()), Last: resp.GetLast(),
			Full: resp.GetFull(), Index: resp.GetIndex(), Forwarded: true}, nil
	}
	idx, err := n.readPoint(ctx, ks, sh, c)
	if err != nil {
		return shardPage{}, err
	}
	page := shardPage{Index: idx}
	var start []byte
	if after != nil {
		start = append(slices.Clip(after), 0) // the first key after it
	}
	pattern := []byte(match)
	size := 0
	var recErr error
	err = n.db.Scan(sh.Group, start, nil, func(k, v []byte) bool {
		if page.Examined >= count || (maxBytes > 0 && size >= maxBytes) {
			page.Full = true
			return false
		}
		page.Examined++
		page.Last = append(page.Last[:0], k...)
		rec, err := kv.DecodeRecord(v)
		if err != nil {
			recErr = fmt.Errorf("group %d key %q: %w", sh.Group, k, err)
			return false
		}
		if rec.Expired(now) {
			return true
		}
		if rec.Type == kv.TypeActive {
			if _, live, _ := kv.ActiveValueOf(rec); !live {
				return true // a tombstone
			}
		}
		page.Live++
		if maxBytes > 0 && (match == "" || kv.GlobMatch(pattern, k)) {
			page.Keys = append(page.Keys, bytes.Clone(k))
			size += len(k)
		}
		return true
	})
	if err == nil {
		err = recErr
	}
	return page, err
}

// serveScan serves a shard scan for another node (never forwarded again).
func (n *Node) serveScan(ctx context.Context, req *nodepb.ScanRequest) (shardPage, error) {
	ks, err := n.meta.Keyspace(req.GetKeyspace())
	if err != nil {
		return shardPage{}, err
	}
	shard := int(req.GetShard())
	if shard < 0 || shard >= len(ks.Shards) || !slices.Contains(ks.Shards[shard].Replicas, n.cfg.ID) {
		return shardPage{}, fmt.Errorf("%w: node %d holds no replica of shard %d of %q", ErrNoReplica, n.cfg.ID, shard, req.GetKeyspace())
	}
	c, err := levelFromText(req.GetLevel(), req.GetToken())
	if err != nil {
		return shardPage{}, err
	}
	return n.scanShard(ctx, ks, ks.Shards[shard], req.GetAfter(), req.GetMatch(), int(req.GetCount()), int(req.GetMaxBytes()), req.GetNowMs(), c)
}

// scanLevel is the level a scan is served at: scans read one replica of
// each shard, either the writing group under ReadIndex (strong; also what
// bounded and session scans get, a stronger level than asked) or any
// replica as it is (eventual, prefix).
func (n *Node) scanLevel(keyspace string, c Consistency) (Consistency, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return c, err
	}
	if c, err = n.resolve(ks, c); err != nil {
		return c, err
	}
	switch c.Req.Level {
	case consistency.Eventual, consistency.Prefix:
		return Level(c.Req), nil
	}
	return Strong, nil
}

// readPoint makes the local replica of a shard ready for a read at the
// given consistency and returns the read index (0 for eventual reads).
func (n *Node) readPoint(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, c Consistency) (uint64, error) {
	if c.Req.Level != consistency.Strong {
		// An eventual read of a replica that does not exist yet here would
		// silently miss the shard's keys.
		if _, ok := n.host.Status(sh.Group); !ok {
			return 0, fmt.Errorf("%w: the replica of shard %d of %q on node %d is not created yet", ErrNoReplica, sh.Index, ks.Name, n.cfg.ID)
		}
		return 0, nil
	}
	return n.host.ReadIndex(ctx, sh.Group)
}

func formatCursor(shard int, last []byte) string {
	return strconv.Itoa(shard) + ":" + base64.RawURLEncoding.EncodeToString(last)
}

// parseCursor returns the shard to continue in and the last key returned
// from it (nil: from its start).
func parseCursor(cursor string, shards, maxKey int) (int, []byte, error) {
	if cursor == "0" {
		return 0, nil, nil
	}
	s, k, ok := strings.Cut(cursor, ":")
	shard, err := strconv.Atoi(s)
	if !ok || err != nil || shard < 0 || shard >= shards || strconv.Itoa(shard) != s ||
		base64.RawURLEncoding.DecodedLen(len(k)) > maxKey {
		return 0, nil, fmt.Errorf("%w: %q", ErrBadCursor, cursor)
	}
	key, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %q", ErrBadCursor, cursor)
	}
	if len(key) == 0 {
		key = nil
	}
	return shard, key, nil
}
