package node

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy/streaming"
)

// Streams of async and active keyspaces: package strategy/streaming runs
// them (senders, sink, resyncs) and receives them (Inbox).

// StreamStatus describes one stream this node sends.
type StreamStatus = streaming.Status

// StreamStallAfter is how long a stream may make no progress before it
// is reported stalled (plus the RTT to its destination).
const StreamStallAfter = streaming.StallAfter

// Streams reports the streams this node is sending.
func (n *Node) Streams() []StreamStatus {
	out := append(n.async.Streams(), n.activeStreams.Statuses()...)
	streaming.Sort(out)
	return out
}

func (n *Node) streamLoop() {
	defer n.wg.Done()
	n.activeStreams.Run(n.stop, n.activeWants, n.retainActiveLogs)
}

// activeWants: all to all, every region's group ships its own writes.
func (n *Node) activeWants() map[streaming.Key]streaming.Want {
	want := map[streaming.Key]streaming.Want{}
	for _, ks := range n.meta.State().Keyspaces {
		if !isActive(ks) {
			continue
		}
		for _, sh := range ks.Shards {
			for _, src := range sh.Regional {
				if gs, ok := n.host.Status(src.Group); !ok || gs.Lead != n.cfg.ID || gs.RaftState.String() != "StateLeader" {
					continue
				}
				for _, rg := range sh.Regional {
					if rg.Group == src.Group {
						continue
					}
					want[streaming.Key{Src: src.Group, Dst: rg.Group}] = streaming.Want{
						Status: StreamStatus{Keyspace: ks.Name, Shard: sh.Index, FromRegion: src.Region, ToRegion: rg.Region, Strategy: string(ks.Strategy)},
						Dst:    rg,
					}
				}
			}
		}
	}
	return want
}

// retainActiveLogs keeps, on the replicas of this region's active groups
// that do not run their streams, the log entries some other region has
// not reported applying yet (the reports every region proposes, gc.go in
// package kv), so that a replica that becomes the leader can ship from
// its log rather than resync every other region.
func (n *Node) retainActiveLogs(sources map[uint64]uint64) {
	for _, ks := range n.meta.State().Keyspaces {
		if !isActive(ks) {
			continue
		}
		for _, sh := range ks.Shards {
			rg, ok := sh.RegionalIn(n.cfg.Region)
			if _, running := sources[rg.Group]; !ok || running || !slices.Contains(rg.Replicas, n.cfg.ID) {
				continue
			}
			floor, ok, err := kv.ReportedApplied(n.db, rg.Group, rg.Region, ks.Regions)
			if err != nil {
				continue
			}
			switch {
			case !ok || floor == 0:
				floor = 1 // a region has not reported (applied): keep everything
			case floor == math.MaxUint64:
				floor = 0 // no other region: no stream
			}
			_ = n.host.RetainFrom(rg.Group, floor)
		}
	}
}

// activeChange is what an active group's stream ships for an entry: the
// merge of the write's delta-states (kv.ActiveChange).
func activeChange(db *storage.DB, group, index uint64, cmd []byte) ([]byte, error) {
	return kv.ActiveChange(db, group, index, cmd)
}

// resyncActive brings an active destination up to date with a source
// group's data without replacing its own: the source's key states, read
// from one consistent storage view, are shipped as merges (idempotent),
// then the destination's cursor is raised to the view's applied index.
func (n *Node) resyncActive(ctx context.Context, r *streaming.Running, sink *streaming.Sink) (uint64, error) {
	src := r.Source()
	view, at, err := r.BeginResync(n.db)
	if err != nil {
		return 0, err
	}
	defer r.EndResync(view)
	merge := kv.Command{Op: kv.OpActiveMerge, NowMS: time.Now().UnixMilli()}
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
	n.log.Info("resync by merges done", "from", src, "to", sink.Dst().Group, "region", sink.Dst().Region, "at", at)
	return at, nil
}
