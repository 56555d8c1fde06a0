package strategy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-db/meridian/metadata"
)

// LeaderPosition is the position of this node's replica of group, whose
// own log holds its shard's writes (a sync shard's group, an async
// keyspace's primary group). A leader asked to confirm (confirm) checks
// that it still leads, under its lease or by ReadIndex, and that serves
// (nil: always) lets the group act for its shard from the confirmation's
// start; its closed timestamp is then now, capped by serves' bound. A
// follower's, or an unconfirmed leader's, is what its leader's samples
// give (Env.ClosedAt).
func LeaderPosition(ctx context.Context, env Env, group uint64, confirm bool, serves func(start time.Time) (time.Time, error)) (Position, error) {
	host := env.Host()
	st, ok := host.Status(group)
	if !ok {
		return Position{}, fmt.Errorf("%w: the replica of group %d on node %d is not created yet", ErrNoReplica, group, env.ID())
	}
	if st.Lead == env.ID() && confirm {
		start := env.Now()
		now := start.UnixMilli() - 1
		idx, ok := host.LeaseReadIndex(group)
		if !ok {
			tctx, cancel := WithTimeout(ctx, env.Settings().RequestTimeout)
			var err error
			idx, err = host.ReadIndex(tctx, group)
			cancel()
			ok = err == nil
		}
		if ok && serves != nil {
			until, err := serves(start)
			ok = err == nil
			if !until.IsZero() {
				now = min(now, until.UnixMilli()-1)
			}
		}
		if ok {
			return Position{Group: group, Index: idx, ClosedMS: now}, nil
		}
	}
	return Position{Group: group, Index: st.Applied, ClosedMS: env.ClosedAt(group, st.Applied)}, nil
}

// LocalGroup returns the group of shard sh in region (the shard's own
// group if it has none there), and whether node id holds a replica of it.
func LocalGroup(sh metadata.Shard, region string, id uint64) (metadata.RegionalGroup, bool) {
	rg := metadata.RegionalGroup{Group: sh.Group, Replicas: sh.Replicas}
	if r, ok := sh.RegionalIn(region); ok {
		rg = r
	}
	return rg, slices.Contains(rg.Replicas, id)
}
