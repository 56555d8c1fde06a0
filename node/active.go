package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/stream"
)

// Active keyspaces: every region's group takes writes (package kv,
// active.go, turns them into CRDT operations stamped with the region and
// the node's hybrid clock), and every region streams what it wrote to
// every other region as merges of the delta-states its writes produced
// (kv.ActiveChange), whole states only when seeding a region.
//
// A write is turned into its active form by the node that proposes it, in
// the region of the group that takes it, so the stamp's region is always
// the group's. Reads are served by the local region's group; strong reads
// are refused (there is no single order to be linearizable in).

// ErrNotOnActive is returned for operations active keyspaces do not offer.
var ErrNotOnActive = errors.New("node: operation not available on active keyspaces")

// activeShard returns the group of the shard that takes this node's
// writes and local reads: this region's, or the nearest region's if the
// keyspace has no group here.
func (n *Node) activeShard(sh metadata.Shard) metadata.Shard {
	if rg, ok := sh.RegionalIn(n.cfg.Region); ok {
		return metadata.Shard{Index: sh.Index, Group: rg.Group, Replicas: rg.Replicas, Regional: sh.Regional}
	}
	best, bestRTT := sh.Regional[0], time.Duration(1<<62)
	for _, rg := range sh.Regional {
		for _, id := range rg.Replicas {
			if d, ok := n.tr.RTT(id); ok && d < bestRTT {
				best, bestRTT = rg, d
			}
		}
	}
	return metadata.Shard{Index: sh.Index, Group: best.Group, Replicas: best.Replicas, Regional: sh.Regional}
}

// activeCommand turns a plain write into its active form, stamped here.
func (n *Node) activeCommand(ks *metadata.Keyspace, c kv.Command) (kv.Command, error) {
	if c.Op.Active() {
		return c, nil // already stamped (by this region's node)
	}
	stamp := kv.ActiveStamp{Region: n.cfg.Region, Time: n.clock.Now()}
	now := c.NowMS
	if now == 0 {
		now = time.Now().UnixMilli()
	}
	var out kv.Command
	switch c.Op {
	case kv.OpSet:
		if c.Int != 0 || c.Flags&kv.FlagKeepTTL != 0 {
			return c, fmt.Errorf("%w: expiry (keys of active keyspaces live until deleted)", ErrNotOnActive)
		}
		out = kv.ActiveCommand(kv.OpActiveSet, stamp, now, c.Args[0], c.Args[1], []byte(ks.Resolver))
		out.Flags = c.Flags
	case kv.OpDelete:
		out = kv.ActiveCommand(kv.OpActiveDel, stamp, now, c.Args...)
	case kv.OpIncrBy:
		out = kv.ActiveCommand(kv.OpActiveIncr, stamp, now, c.Args[0])
		out.Int = c.Int
	case kv.OpSAdd:
		out = kv.ActiveCommand(kv.OpActiveSAdd, stamp, now, c.Args...)
	case kv.OpSRem:
		out = kv.ActiveCommand(kv.OpActiveSRem, stamp, now, c.Args...)
	case kv.OpHSet:
		out = kv.ActiveCommand(kv.OpActiveHSet, stamp, now, c.Args...)
	case kv.OpHDel:
		out = kv.ActiveCommand(kv.OpActiveHDel, stamp, now, c.Args...)
	case kv.OpRedis, kv.OpTxn: // the command engine (kv/active_redis.go)
		var err error
		if out, err = kv.ActiveRedisCommand(c, stamp, ks.Resolver, now); err != nil {
			return c, fmt.Errorf("%w: %w", ErrNotOnActive, err)
		}
	default:
		return c, fmt.Errorf("%w: %s", ErrNotOnActive, c.Op)
	}
	return out, nil
}

// activeRecord presents an active key's state as the plain record the
// front ends know (a tombstone is absent).
func activeRecord(rec kv.Record, found bool) (kv.Record, bool, error) {
	if !found || rec.Type != kv.TypeActive {
		return rec, found, nil
	}
	v, live, err := kv.ActiveValueOf(rec)
	if err != nil || !live {
		return kv.Record{}, false, err
	}
	switch v.Type {
	case kv.TypeSet:
		return kv.Record{Type: kv.TypeSet, Payload: kv.EncodeSet(v.Members)}, true, nil
	case kv.TypeHash:
		return kv.Record{Type: kv.TypeHash, Payload: kv.EncodeHash(v.Fields)}, true, nil
	case kv.TypeZSet:
		return kv.Record{Type: kv.TypeZSet}, true, nil // read through the command engine
	}
	return kv.Record{Type: kv.TypeString, Payload: v.Value}, true, nil
}

// activeSources returns, for an active shard, the groups that stream into
// the local region's group.
func activeSources(sh metadata.Shard, local uint64) []uint64 {
	var out []uint64
	for _, rg := range sh.Regional {
		if rg.Group != local {
			out = append(out, rg.Group)
		}
	}
	return out
}

// activeClosed is the closed timestamp of an active keyspace's local
// group: the oldest of what each other region's stream has brought and of
// the local group's own (its leader's, under its lease; a follower's, from
// its leader's samples).
func (n *Node) activeClosed(sh metadata.Shard, local uint64) int64 {
	own := int64(0)
	if _, t, _ := n.closedFor(local); t != 0 {
		own = t
	} else if st, ok := n.host.Status(local); ok {
		own = n.closed.at(local, st.Applied)
	}
	if own == 0 {
		return 0
	}
	closed := own
	for _, g := range activeSources(sh, local) {
		c, err := n.streamPosition(local, g)
		if err != nil || c.ClosedMS == 0 {
			return 0
		}
		closed = min(closed, c.ClosedMS)
	}
	return closed
}

func isActive(ks *metadata.Keyspace) bool { return ks.Strategy == metadata.Active }

// Conflict is one conflict of an active keyspace, as recorded by the
// group of one region.
type Conflict struct {
	Shard  int    `json:"shard"`
	Group  uint64 `json:"group"`
	Region string `json:"region"`
	kv.LedgerEntry
}

// ConflictQuery selects conflicts. After holds, per group, the Seq of the
// last entry already seen (follow mode: pass back ConflictPage.After).
type ConflictQuery struct {
	Key     []byte            `json:"key,omitempty"`
	SinceMS int64             `json:"since_ms,omitempty"`
	After   map[uint64]uint64 `json:"after,omitempty"`
	Limit   int               `json:"limit,omitempty"`
}

// ConflictPage is an answer to Conflicts.
type ConflictPage struct {
	Conflicts []Conflict `json:"conflicts"`
	// After is where to continue from.
	After map[uint64]uint64 `json:"after"`
	// Recorded counts every conflict ever recorded by the groups read.
	Recorded uint64 `json:"recorded"`
}

// Conflicts reads the conflict ledger of an active keyspace as this
// node's region recorded it (every region records the conflicts it
// detects; entries with the same ID in several regions are one conflict).
func (n *Node) Conflicts(keyspace string, q ConflictQuery) (ConflictPage, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return ConflictPage{}, err
	}
	if !isActive(ks) {
		return ConflictPage{}, fmt.Errorf("%w: keyspace %q is %s; only active keyspaces have conflicts", metadata.ErrInvalidSpec, ks.Name, ks.Strategy)
	}
	page := ConflictPage{Conflicts: []Conflict{}, After: map[uint64]uint64{}}
	held := 0
	for _, sh := range ks.Shards {
		rg, ok := n.localGroup(sh)
		if !ok {
			continue
		}
		held++
		after := q.After[rg.Group]
		entries, err := kv.ReadLedger(n.db, rg.Group, kv.LedgerQuery{AfterSeq: after, SinceMS: q.SinceMS, Key: q.Key, Limit: q.Limit})
		if err != nil {
			return ConflictPage{}, err
		}
		for _, e := range entries {
			page.Conflicts = append(page.Conflicts, Conflict{Shard: sh.Index, Group: rg.Group, Region: rg.Region, LedgerEntry: e})
			after = max(after, e.Seq)
		}
		page.After[rg.Group] = after
		info, err := kv.LedgerInfo(n.db, rg.Group)
		if err != nil {
			return ConflictPage{}, err
		}
		page.Recorded += info.Recorded
	}
	if held == 0 {
		return ConflictPage{}, fmt.Errorf("%w: node %d holds no replica of keyspace %q; ask a node in one of its regions %v", ErrNoReplica, n.cfg.ID, ks.Name, ks.Regions)
	}
	return page, nil
}

// checkStreamClock refuses a stream batch carrying a change stamped
// further in the future than the node's maximum clock offset allows: a
// region whose clock runs ahead would otherwise win every last-writer-wins
// conflict. The batch is refused (nothing applied; the source retries,
// keeping its backlog on disk) and the refusal logged, until the clocks
// agree again.
func (n *Node) checkStreamClock(b stream.Batch) error {
	limit := time.Now().Add(n.cfg.MaxClockOffset).UnixMilli()
	for _, ch := range b.Changes {
		if ch.TimeMS > limit {
			err := fmt.Errorf("%w: stream %d change %d is stamped %d ms ahead of node %d's clock (max offset %v)",
				kv.ErrClockSkew, b.Stream, ch.Index, ch.TimeMS-time.Now().UnixMilli(), n.cfg.ID, n.cfg.MaxClockOffset)
			level := slog.LevelDebug
			if n.refusals.due(b.Stream, time.Now()) {
				level = slog.LevelWarn // the source reports the stall too
			}
			n.log.Log(context.Background(), level, "refused a stream batch from a clock running ahead", "err", err)
			return err
		}
	}
	return nil
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

// How often an active group's leader reports what its region has seen,
// and how often it collects tombstones (kv/gc.go).
const (
	KnowInterval = time.Second
	GCEvery      = 5 // collections run every GCEvery reports
)

// activeGCLoop has the leader of every active group report its region's
// knowledge and, from time to time, collect the tombstones every region
// has seen.
func (n *Node) activeGCLoop() {
	defer n.wg.Done()
	t := time.NewTicker(KnowInterval)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		for _, ks := range n.meta.State().Keyspaces {
			if !isActive(ks) {
				continue
			}
			for _, sh := range ks.Shards {
				rg, ok := sh.RegionalIn(n.cfg.Region)
				if !ok || n.host.Leader(rg.Group) != n.cfg.ID {
					continue
				}
				seen, err := n.regionKnowledge(sh, rg)
				if err != nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				now := time.Now().UnixMilli()
				if _, err := n.propose(ctx, rg.Group, kv.KnowCommand(rg.Region, seen, now).Encode()); err != nil {
					n.log.Debug("cannot report knowledge", "group", rg.Group, "err", err)
				} else if round%GCEvery == 0 {
					p, err := n.propose(ctx, rg.Group, kv.GCCommand(ks.Regions, now).Encode())
					if res, _ := p.value.(kv.Result); err == nil && res.N > 0 {
						n.log.Debug("tombstones collected", "keyspace", ks.Name, "group", rg.Group, "count", res.N)
					}
				}
				cancel()
			}
		}
	}
}

// regionKnowledge is what this region's group has applied of each
// region's writes: its own log up to its applied index, and each other
// region's up to its stream cursor.
func (n *Node) regionKnowledge(sh metadata.Shard, local metadata.RegionalGroup) (crdt.VersionVector, error) {
	st, ok := n.host.Status(local.Group)
	if !ok {
		return nil, fmt.Errorf("group %d not hosted", local.Group)
	}
	seen := crdt.VersionVector{local.Region: st.Applied}
	for _, rg := range sh.Regional {
		if rg.Group == local.Group {
			continue
		}
		c, _, err := n.db.Cursor(local.Group, rg.Group)
		if err != nil {
			return nil, err
		}
		seen[rg.Region] = c.Index
	}
	return seen, nil
}

// Tombstones counts the deleted keys of an active keyspace that this
// node's region still keeps (until every region has seen the delete).
func (n *Node) Tombstones(keyspace string) (int, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return 0, err
	}
	count := 0
	for _, sh := range ks.Shards {
		rg, ok := n.localGroup(sh)
		if !ok {
			continue
		}
		err := n.db.Scan(rg.Group, nil, nil, func(_, v []byte) bool {
			if rec, err := kv.DecodeRecord(v); err == nil && rec.Type == kv.TypeActive {
				if _, live, err := kv.ActiveValueOf(rec); err == nil && !live {
					count++
				}
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}

// resyncActive brings an active destination up to date with a source
// group's data without replacing its own: the source's key states, read
// from one consistent storage view, are shipped as merges (idempotent),
// then the destination's cursor is raised to the view's applied index.
func (n *Node) resyncActive(ctx context.Context, src uint64, sink *regionSink, r *runningStream) (uint64, error) {
	view, at, err := r.beginResync(n, src)
	if err != nil {
		return 0, err
	}
	defer r.endResync(view)
	merge := kv.Command{Op: kv.OpActiveMerge, NowMS: time.Now().UnixMilli()}
	size := 0
	send := func(cmd kv.Command) error {
		res, err := sink.proposeChunk(ctx, cmd.Encode())
		if err == nil {
			err = res.Err
		}
		return err
	}
	flush := func() error {
		if len(merge.Args) == 0 {
			return nil
		}
		if err := send(merge); err != nil {
			return fmt.Errorf("resync by merges: %w", err)
		}
		r.shipped(len(merge.Args)/2, size)
		merge.Args, size = merge.Args[:0], 0
		return nil
	}
	var sendErr error
	err = view.Scan(src, nil, func(k, v []byte) bool {
		rec, derr := kv.DecodeRecord(v)
		if derr != nil || rec.Type != kv.TypeActive {
			return true
		}
		merge.Args = append(merge.Args, slices.Clone(k), slices.Clone(rec.Payload))
		size += len(k) + len(rec.Payload)
		if size >= resyncChunkBytes {
			sendErr = flush()
		}
		return sendErr == nil
	})
	if err == nil {
		err = sendErr
	}
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = send(kv.StreamCursorCommand(src, at))
	}
	if err != nil {
		return 0, err
	}
	n.log.Info("resync by merges done", "from", src, "to", sink.dst.Group, "region", sink.dst.Region, "at", at)
	return at, nil
}
