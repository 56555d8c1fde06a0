// Package syncks is the sync replication strategy (docs/DESIGN.md 2.1):
// each shard is one raft group whose voters span regions, so that losing
// any one region leaves a quorum. A write is acknowledged once a quorum
// has it durable; strong reads are served by the leader under its lease.
// The one background job is leader placement (leader.go): leaders are
// kept in the keyspace's home region.
package syncks

import (
	"context"
	"sync"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/strategy"
)

// ops is what sync groups apply: data ops and restore chunks (a restore
// loads a hidden keyspace's groups through their logs, kv/restore.go); no
// role, stream or CRDT op (a sync group has one log, shared by its
// regions).
var ops = kv.AdmitData(string(metadata.Sync), kv.OpRestoreChunk)

// Strategy is the sync strategy on one node.
type Strategy struct {
	env strategy.Env

	mu         sync.Mutex
	eligibleAt map[uint64]time.Time // group -> since when a better leader is ready
}

var _ strategy.Strategy = (*Strategy)(nil)

// New returns the sync strategy of the node env.
func New(env strategy.Env) *Strategy {
	return &Strategy{env: env, eligibleAt: map[uint64]time.Time{}}
}

// Ops implements strategy.Strategy.
func (s *Strategy) Ops() *kv.Admission { return ops }

// Machine implements strategy.Strategy.
func (s *Strategy) Machine(rg metadata.RegionalGroup) raftgroup.StateMachine {
	return &kv.StateMachine{Group: rg.Group, Cluster: s.env.Cluster(), Region: rg.Region, Admits: ops}
}

// WriteGroup implements strategy.Strategy: the shard's one group.
func (s *Strategy) WriteGroup(sh metadata.Shard) metadata.Shard { return sh }

// Prepare implements strategy.Strategy: a write goes as it is, without
// an epoch (sync groups have no role).
func (s *Strategy) Prepare(_ *metadata.Keyspace, cmd kv.Command) (kv.Command, error) {
	cmd.Epoch = 0
	return cmd, nil
}

// Gate implements strategy.Strategy: nothing to check at the leader.
func (s *Strategy) Gate(context.Context, strategy.GroupInfo, []byte) error { return nil }

// Level implements strategy.Strategy: every level; strong by default.
func (s *Strategy) Level(ks *metadata.Keyspace, r consistency.Requirement) (consistency.Requirement, error) {
	if r.Level == 0 {
		r = strategy.DefaultLevel(ks, consistency.Strong)
	}
	return r, nil
}

// Position implements strategy.Strategy: the group's own log; a leader
// that confirms it leads is complete up to now.
func (s *Strategy) Position(ctx context.Context, _ *metadata.Keyspace, _ metadata.Shard, rg metadata.RegionalGroup, confirm bool) (strategy.Position, error) {
	return strategy.LeaderPosition(ctx, s.env, rg.Group, confirm, nil)
}

// Serves implements strategy.Strategy: the leader under its raft lease
// serves strong reads and closes timestamps; nothing more to check.
func (s *Strategy) Serves(string, uint64, time.Time) (time.Time, error) { return time.Time{}, nil }

// Run implements strategy.Strategy: leader placement.
func (s *Strategy) Run(stop <-chan struct{}) { s.leaderLoop(stop) }
