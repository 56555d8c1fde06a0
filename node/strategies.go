package node

import (
	"context"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/strategy/asyncks"
)

// The replication strategies (package strategy and below): what node's
// public API delegates to them.

// Errors of async keyspaces (package asyncks).
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

// LostWrites returns a keyspace's lost-writes report, as recorded in this
// node's copy of the metadata.
func (n *Node) LostWrites(keyspace string) ([]metadata.LostWrite, error) {
	return n.async.LostWrites(keyspace)
}

// runStrategies runs the strategies' background work until the node stops.
func (n *Node) runStrategies() {
	defer n.wg.Done()
	n.async.Run(n.stop)
}
