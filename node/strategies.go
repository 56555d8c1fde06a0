package node

import (
	"context"
	"sync"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/strategy/activeks"
	"github.com/meridian-db/meridian/strategy/asyncks"
	"github.com/meridian-db/meridian/strategy/streaming"
)

// The replication strategies (package strategy and below). The router,
// the proposer and the read framework reach a keyspace's strategy through
// the strategy.Strategy interface (strategyOf); node's public API
// delegates each strategy's own verbs (switchover, conflicts...) to it.

// strategyOf returns the strategy of a keyspace.
func (n *Node) strategyOf(ks *metadata.Keyspace) strategy.Strategy { return n.strategyFor(ks.Strategy) }

// strategyFor returns the strategy named s (sync for any other name:
// the metadata refuses unknown strategies).
func (n *Node) strategyFor(s metadata.Strategy) strategy.Strategy {
	switch s {
	case metadata.Async:
		return n.async
	case metadata.Active:
		return n.active
	}
	return n.sync
}

// machine returns the state machine of a replica this node creates: its
// strategy's, which also tells the node of the keys a command left a
// non-empty list or sorted set, for the blocking pops waiting here
// (blocking.go).
func (n *Node) machine(ks *metadata.Keyspace, rg metadata.RegionalGroup) raftgroup.StateMachine {
	sm := n.strategyOf(ks).Machine(rg)
	if m, ok := sm.(*kv.StateMachine); ok {
		m.OnPush = n.blocked.wake
	}
	return sm
}

// runStrategies runs the strategies' background work until the node
// stops.
func (n *Node) runStrategies() {
	defer n.wg.Done()
	var wg sync.WaitGroup
	for _, s := range []strategy.Strategy{n.sync, n.async, n.active} {
		wg.Go(func() { s.Run(n.stop) })
	}
	wg.Wait()
}

// --- streams ---

// StreamStatus describes one stream this node sends.
type StreamStatus = streaming.Status

// StreamStallAfter is how long a stream may make no progress before it
// is reported stalled (plus the RTT to its destination).
const StreamStallAfter = streaming.StallAfter

// Streams reports the streams this node is sending (async and active
// keyspaces).
func (n *Node) Streams() []StreamStatus {
	out := append(n.async.Streams(), n.active.Streams()...)
	streaming.Sort(out)
	return out
}

// --- async keyspaces (package asyncks) ---

// Errors of async keyspaces.
var (
	ErrPrimaryHealthy = asyncks.ErrPrimaryHealthy
	ErrNotDrained     = asyncks.ErrNotDrained
	ErrRPOBudget      = asyncks.ErrRPOBudget
	ErrPrimaryLease   = asyncks.ErrPrimaryLease
)

// SwitchoverResult describes a finished switchover.
type SwitchoverResult = asyncks.SwitchoverResult

// FailoverResult describes a finished failover.
type FailoverResult = asyncks.FailoverResult

// Switchover moves an async keyspace's primary to another region without
// losing a write: the old primary is fenced, the target drained, the
// epoch bumped. Writes are refused (and retried by the nodes) meanwhile.
func (n *Node) Switchover(ctx context.Context, keyspace, to string) (SwitchoverResult, error) {
	return n.async.Switchover(ctx, keyspace, to)
}

// Failover makes another region an async keyspace's primary when the
// primary region is unreachable. Writes the old primary acknowledged but
// had not shipped to the new one are reported when it returns (see
// LostWrites). With the primary region reachable it is refused unless
// forced.
func (n *Node) Failover(ctx context.Context, keyspace, to string, force bool) (FailoverResult, error) {
	return n.async.Failover(ctx, keyspace, to, force)
}

// LostWrites returns a keyspace's lost-writes report (its forks and the
// writes reported for them), as recorded in this node's copy of the
// metadata.
func (n *Node) LostWrites(keyspace string) (metadata.LostReport, error) {
	return n.async.LostWrites(keyspace)
}

// --- active keyspaces (package activeks) ---

// Errors of active keyspaces.
var (
	ErrNotOnActive    = activeks.ErrNotOnActive
	ErrStrongOnActive = activeks.ErrStrongOnActive
)

// How often an active group's leader reports what its region has seen,
// and how often it collects tombstones (kv/gc.go).
const (
	KnowInterval = activeks.KnowInterval
	GCEvery      = activeks.GCEvery
)

// Conflict is one conflict of an active keyspace, as recorded by the
// group of one region.
type Conflict = activeks.Conflict

// ConflictQuery selects conflicts (see activeks.ConflictQuery).
type ConflictQuery = activeks.ConflictQuery

// ConflictPage is an answer to Conflicts.
type ConflictPage = activeks.ConflictPage

// Conflicts reads the conflict ledger of an active keyspace as this
// node's region recorded it (every region records the conflicts it
// detects; entries with the same ID in several regions are one conflict).
func (n *Node) Conflicts(keyspace string, q ConflictQuery) (ConflictPage, error) {
	return n.active.Conflicts(keyspace, q)
}

// Tombstones counts the deleted keys of an active keyspace that this
// node's region still keeps (until every region has seen the delete).
func (n *Node) Tombstones(keyspace string) (int, error) {
	return n.active.Tombstones(keyspace)
}
