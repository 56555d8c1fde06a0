package asyncks

import (
	"context"
	"errors"
	"fmt"
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

// Errors of async keyspaces.
var (
	ErrPrimaryHealthy = errors.New("node: the primary region is reachable")
	ErrNotDrained     = errors.New("node: the target region did not catch up")
	ErrRPOBudget      = errors.New("node: RPO budget exceeded")
	// ErrPrimaryLease: the group's node does not hold its primary lease
	// (the metadata quorum has not confirmed it lately, or a failover's
	// new primary is waiting out the old primary's lease). Nothing was
	// done; retry.
	ErrPrimaryLease = errors.New("node: the primary region's lease is not held")
)

// ops is what async groups apply: data ops, roles, streams from the
// primary (batches and resync chunks) and restore chunks (loaded into the
// primary's group, shipped to the replicas by its streams: kv/restore.go).
// No CRDT op.
var ops = kv.AdmitData(string(metadata.Async), kv.OpRole, kv.OpStreamApply, kv.OpStreamChunk, kv.OpRestoreChunk)

// Strategy is the async strategy on one node.
type Strategy struct {
	env     strategy.Env
	inbox   *streaming.Inbox
	streams *streaming.Set
	roles   roleState
	leases  primaryLeases
}

var _ strategy.Strategy = (*Strategy)(nil)

// New returns the async strategy of the node env; inbox is the node's.
func New(env strategy.Env, inbox *streaming.Inbox) *Strategy {
	s := &Strategy{env: env, inbox: inbox}
	s.streams = streaming.NewSet(env, inbox, streaming.Hooks{Change: shipped})
	return s
}

// Ops implements strategy.Strategy.
func (s *Strategy) Ops() *kv.Admission { return ops }

// Machine implements strategy.Strategy.
func (s *Strategy) Machine(rg metadata.RegionalGroup) raftgroup.StateMachine {
	return &kv.StateMachine{Group: rg.Group, Cluster: s.env.Cluster(), Region: rg.Region, Admits: ops}
}

// WriteGroup implements strategy.Strategy: the shard's group is its
// primary's (the metadata's; a write sent to another region is forwarded
// there).
func (s *Strategy) WriteGroup(sh metadata.Shard) metadata.Shard { return sh }

// Prepare implements strategy.Strategy: a write carries the keyspace's
// epoch as this node sees it; the group applies it only as the unfenced
// primary of exactly that epoch.
func (s *Strategy) Prepare(ks *metadata.Keyspace, cmd kv.Command) (kv.Command, error) {
	cmd.Epoch = ks.Epoch
	return cmd, nil
}

// Gate implements strategy.Strategy: a client write to a group of an
// async keyspace passes the primary's gate: the group must act as the
// keyspace's primary (its role and this node's primary lease, lease.go),
// and the RPO budget must allow it. A group that is not its keyspace's
// unfenced primary is left to its state machine, which refuses the write
// with the reason. Roles, streams and restore chunks (a restore loading a
// hidden keyspace, whatever its role: kv/restore.go) pass.
func (s *Strategy) Gate(ctx context.Context, g strategy.GroupInfo, cmd []byte) error {
	if op, ok := kv.PeekOp(cmd); !ok || op == kv.OpRole || op == kv.OpStreamApply || op == kv.OpStreamChunk || op == kv.OpRestoreChunk {
		return nil
	}
	if _, err := s.primary(g.Keyspace, g.Group, s.env.Now()); err != nil {
		if errors.Is(err, ErrPrimaryLease) {
			return err
		}
		return nil
	}
	if g.Primary && g.RPOBudgetMS > 0 {
		return s.rpoCheck(ctx, g)
	}
	return nil
}

// rpoCheck throttles or refuses a write at an async primary while one of
// its streams lags beyond the keyspace's RPO budget. It runs where the
// group's streams run: its leader; the lag is a lookup of the group's
// streams (streaming.Set.Lag).
func (s *Strategy) rpoCheck(ctx context.Context, g strategy.GroupInfo) error {
	worst, region := s.streams.Lag(g.Group)
	budget := g.RPOBudgetMS
	switch {
	case worst > budget:
		return fmt.Errorf("%w: region %s lags %d ms behind the primary (keyspace %q allows %d ms)", ErrRPOBudget, region, worst, g.Keyspace, budget)
	case worst > budget/2:
		// Slow writers down, more the closer the lag gets to the budget,
		// while the region catches up.
		select {
		case <-time.After(time.Duration(worst-budget/2) * time.Millisecond / 4):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Level implements strategy.Strategy: every level; strong by default.
func (s *Strategy) Level(ks *metadata.Keyspace, r consistency.Requirement) (consistency.Requirement, error) {
	if r.Level == 0 {
		r = strategy.DefaultLevel(ks, consistency.Strong)
	}
	return r, nil
}

// Position implements strategy.Strategy. A replica region's group is at
// its stream's cursor in the primary's log, complete up to the stream's
// closed timestamp (a heartbeat answered without raft counts); the
// primary's group is where its own log is, and its leader's closed
// timestamp is capped by the primary lease.
func (s *Strategy) Position(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, rg metadata.RegionalGroup, confirm bool) (strategy.Position, error) {
	if rg.Group != sh.Group {
		c, err := s.inbox.Position(rg.Group, sh.Group)
		return strategy.Position{Group: sh.Group, Index: c.Index, ClosedMS: c.ClosedMS}, err
	}
	return strategy.LeaderPosition(ctx, s.env, rg.Group, confirm, func(start time.Time) (time.Time, error) {
		return s.primary(ks.Name, rg.Group, start)
	})
}

// Serves implements strategy.Strategy: a group serves strong reads and
// closes timestamps only while it acts as its keyspace's primary (see
// primary).
func (s *Strategy) Serves(keyspace string, group uint64, at time.Time) (time.Time, error) {
	return s.primary(keyspace, group, at)
}

// Run implements strategy.Strategy: the role loop, the primary leases
// and the streams from the primaries this node leads.
func (s *Strategy) Run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { s.roleLoop(stop) })
	wg.Go(func() { s.leaseLoop(stop) })
	wg.Go(func() { s.streams.Run(stop, s.wants, nil) })
	wg.Wait()
}

// Streams reports the streams this node sends for async keyspaces.
func (s *Strategy) Streams() []streaming.Status { return s.streams.Statuses() }

// wants lists the streams this node should run: from every primary group
// it leads that knows it is this epoch's primary, to every other region.
func (s *Strategy) wants() map[streaming.Key]streaming.Want {
	want := map[streaming.Key]streaming.Want{}
	host, db, me := s.env.Host(), s.env.DB(), s.env.ID()
	for _, ks := range s.env.Meta().State().Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			if gs, ok := host.Status(sh.Group); !ok || gs.Lead != me || gs.RaftState.String() != "StateLeader" {
				continue
			}
			// Only a group that knows it is this epoch's primary ships.
			if role, err := kv.LoadRole(db, sh.Group); err != nil || !role.Primary || role.Epoch != ks.Epoch {
				continue
			}
			for _, rg := range sh.Regional {
				if rg.Group == sh.Group {
					continue
				}
				want[streaming.Key{Src: sh.Group, Dst: rg.Group}] = streaming.Want{
					Status: streaming.Status{Keyspace: ks.Name, Shard: sh.Index, FromRegion: ks.HomeRegion, ToRegion: rg.Region, Epoch: ks.Epoch},
					Dst:    rg,
				}
			}
		}
	}
	return want
}

// shipped is what an async stream ships for an entry of the primary's
// log: the command as it is, unless its group does not apply its op
// (then it took no effect there, and every replica would refuse it).
func shipped(_ *storage.DB, _, _ uint64, cmd []byte) ([]byte, error) {
	if op, ok := kv.PeekOp(cmd); ok && !ops.Admits(op) {
		return nil, nil
	}
	return cmd, nil
}
