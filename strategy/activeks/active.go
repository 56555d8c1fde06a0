package activeks

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/strategy/streaming"
)

// Errors of active keyspaces.
var (
	// ErrNotOnActive is returned for operations active keyspaces do not
	// offer.
	ErrNotOnActive = errors.New("node: operation not available on active keyspaces")
	// ErrStrongOnActive: strong reads of an active keyspace.
	ErrStrongOnActive = errors.New("node: strong reads are not available on active keyspaces")
)

// ops is what active groups apply: the ops of active keyspaces (local
// CRDT ops, merges, knowledge reports, tombstone collection, the cursor
// raised after a resync by merges), stream batches (of merges) and
// restore chunks (every region's group of a restored keyspace loads the
// merged state itself; its stream ships nothing of them: kv.ActiveChange).
// No plain data op, no role, no resync chunk (which would replace the
// group's own writes).
var ops = kv.Admit(string(metadata.Active), append(kv.ActiveOps(), kv.OpStreamApply, kv.OpRestoreChunk)...)

// Strategy is the active strategy on one node.
type Strategy struct {
	env     strategy.Env
	inbox   *streaming.Inbox
	streams *streaming.Set
}

var _ strategy.Strategy = (*Strategy)(nil)

// New returns the active strategy of the node env; inbox is the node's.
func New(env strategy.Env, inbox *streaming.Inbox) *Strategy {
	s := &Strategy{env: env, inbox: inbox}
	s.streams = streaming.NewSet(env, inbox, streaming.Hooks{Change: change, Resync: s.resync})
	return s
}

// Ops implements strategy.Strategy.
func (s *Strategy) Ops() *kv.Admission { return ops }

// Machine implements strategy.Strategy. The group's region is part of
// it: an op stamped by another region is refused.
func (s *Strategy) Machine(rg metadata.RegionalGroup) raftgroup.StateMachine {
	return &kv.StateMachine{Group: rg.Group, Cluster: s.env.Cluster(), Region: rg.Region, Admits: ops}
}

// WriteGroup implements strategy.Strategy: this region's group of the
// shard, or the nearest region's if the keyspace has none here.
func (s *Strategy) WriteGroup(sh metadata.Shard) metadata.Shard {
	if rg, ok := sh.RegionalIn(s.env.Region()); ok {
		return metadata.Shard{Index: sh.Index, Group: rg.Group, Replicas: rg.Replicas, Regional: sh.Regional}
	}
	tr := s.env.Transport()
	best, bestRTT := sh.Regional[0], time.Duration(1<<62)
	for _, rg := range sh.Regional {
		for _, id := range rg.Replicas {
			if d, ok := tr.RTT(id); ok && d < bestRTT {
				best, bestRTT = rg, d
			}
		}
	}
	return metadata.Shard{Index: sh.Index, Group: best.Group, Replicas: best.Replicas, Regional: sh.Regional}
}

// Prepare implements strategy.Strategy: a plain write becomes its CRDT
// op, stamped here (this node is in the group's region).
func (s *Strategy) Prepare(ks *metadata.Keyspace, c kv.Command) (kv.Command, error) {
	if c.Op.Active() {
		return c, nil // already stamped (by this region's node)
	}
	stamp := kv.ActiveStamp{Region: s.env.Region(), Time: s.env.Clock().Now()}
	now := c.NowMS
	if now == 0 {
		now = s.env.Now().UnixMilli()
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

// Gate implements strategy.Strategy: nothing to check at the leader.
func (s *Strategy) Gate(context.Context, strategy.GroupInfo, []byte) error { return nil }

// Level implements strategy.Strategy: session by default; strong reads
// are refused.
func (s *Strategy) Level(ks *metadata.Keyspace, r consistency.Requirement) (consistency.Requirement, error) {
	if r.Level == 0 {
		r = strategy.DefaultLevel(ks, consistency.Session)
	}
	if r.Level == consistency.Strong {
		return r, fmt.Errorf("%w: keyspace %q accepts writes in every region, so no single order exists to be linearizable in; use session for read-your-writes, or bounded(D)", ErrStrongOnActive, ks.Name)
	}
	return r, nil
}

// Position implements strategy.Strategy: the local group's own log (a
// position of an active keyspace is per region), complete up to the
// oldest closed timestamp of its own and of the other regions' streams.
func (s *Strategy) Position(_ context.Context, _ *metadata.Keyspace, sh metadata.Shard, rg metadata.RegionalGroup, _ bool) (strategy.Position, error) {
	st, _ := s.env.Host().Status(rg.Group)
	return strategy.Position{Group: rg.Group, Index: st.Applied, ClosedMS: s.closed(sh, rg.Group)}, nil
}

// closed is the closed timestamp of an active keyspace's local group:
// the oldest of what each other region's stream has brought and of the
// local group's own (its leader's, under its lease; a follower's, from
// its leader's samples).
func (s *Strategy) closed(sh metadata.Shard, local uint64) int64 {
	own := int64(0)
	if _, t, _ := s.env.Closed(local); t != 0 {
		own = t
	} else if st, ok := s.env.Host().Status(local); ok {
		own = s.env.ClosedAt(local, st.Applied)
	}
	if own == 0 {
		return 0
	}
	closed := own
	for _, rg := range sh.Regional {
		if rg.Group == local {
			continue
		}
		c, err := s.inbox.Position(local, rg.Group)
		if err != nil || c.ClosedMS == 0 {
			return 0
		}
		closed = min(closed, c.ClosedMS)
	}
	return closed
}

// Serves implements strategy.Strategy: no bound beyond the raft lease
// (strong reads are refused by Level; a leader's closed timestamps hold
// for its own region's writes).
func (s *Strategy) Serves(string, uint64, time.Time) (time.Time, error) { return time.Time{}, nil }

// Run implements strategy.Strategy: the streams, all to all, and the
// knowledge reports and tombstone collection (gc.go).
func (s *Strategy) Run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { s.streams.Run(stop, s.wants, s.retainLogs) })
	wg.Go(func() { s.gcLoop(stop) })
	wg.Wait()
}

// Streams reports the streams this node sends for active keyspaces.
func (s *Strategy) Streams() []streaming.Status { return s.streams.Statuses() }

// wants lists the streams this node should run: all to all, every
// region's group this node leads ships its own writes to every other.
func (s *Strategy) wants() map[streaming.Key]streaming.Want {
	want := map[streaming.Key]streaming.Want{}
	host, me := s.env.Host(), s.env.ID()
	for _, ks := range s.env.Meta().State().Keyspaces {
		if ks.Strategy != metadata.Active {
			continue
		}
		for _, sh := range ks.Shards {
			for _, src := range sh.Regional {
				if gs, ok := host.Status(src.Group); !ok || gs.Lead != me || gs.RaftState.String() != "StateLeader" {
					continue
				}
				for _, rg := range sh.Regional {
					if rg.Group == src.Group {
						continue
					}
					want[streaming.Key{Src: src.Group, Dst: rg.Group}] = streaming.Want{
						Status: streaming.Status{Keyspace: ks.Name, Shard: sh.Index, FromRegion: src.Region, ToRegion: rg.Region, Strategy: string(ks.Strategy)},
						Dst:    rg,
					}
				}
			}
		}
	}
	return want
}

// retainLogs keeps, on the replicas of this region's active groups that
// do not run their streams, the log entries some other region has not
// reported applying yet (the reports every region proposes, gc.go in
// package kv), so that a replica that becomes the leader can ship from
// its log rather than resync every other region.
func (s *Strategy) retainLogs(sources map[uint64]uint64) {
	host, db, region, me := s.env.Host(), s.env.DB(), s.env.Region(), s.env.ID()
	for _, ks := range s.env.Meta().State().Keyspaces {
		if ks.Strategy != metadata.Active {
			continue
		}
		for _, sh := range ks.Shards {
			rg, ok := sh.RegionalIn(region)
			if _, running := sources[rg.Group]; !ok || running || !slices.Contains(rg.Replicas, me) {
				continue
			}
			floor, ok, err := kv.ReportedApplied(db, rg.Group, rg.Region, ks.Regions)
			if err != nil {
				continue
			}
			switch {
			case !ok || floor == 0:
				floor = 1 // a region has not reported (applied): keep everything
			case floor == math.MaxUint64:
				floor = 0 // no other region: no stream
			}
			_ = host.RetainFrom(rg.Group, floor)
		}
	}
}

// change is what an active group's stream ships for an entry of its log:
// the merge of a local write's delta-states (kv.ActiveChange); nothing
// for an op its groups do not apply (it took no effect here).
func change(db *storage.DB, group, index uint64, cmd []byte) ([]byte, error) {
	if op, ok := kv.PeekOp(cmd); ok && !ops.Admits(op) {
		return nil, nil
	}
	return kv.ActiveChange(db, group, index, cmd)
}

// resync brings an active destination up to date with a source group's
// data without replacing its own: the source's key states, read from one
// consistent storage view, are shipped as merges (idempotent), then the
// destination's cursor is raised to the view's applied index.
func (s *Strategy) resync(ctx context.Context, r *streaming.Running, sink *streaming.Sink) (uint64, error) {
	src := r.Source()
	view, at, err := r.BeginResync(s.env.DB())
	if err != nil {
		return 0, err
	}
	defer r.EndResync(view)
	merge := kv.Command{Op: kv.OpActiveMerge, NowMS: s.env.Now().UnixMilli()}
	size := 0
	send := func(cmd kv.Command) error {
		res, err := sink.ProposeChunk(ctx, cmd.Encode())
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
		r.Shipped(len(merge.Args)/2, size)
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
		if size >= streaming.ResyncChunkBytes {
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
	s.env.Logger().Info("resync by merges done", "from", src, "to", sink.Dst().Group, "region", sink.Dst().Region, "at", at)
	return at, nil
}
