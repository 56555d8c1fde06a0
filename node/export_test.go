package node

import (
	"context"

	"github.com/meridian-db/meridian/backup"
)

// SetBackupTargetWrapper makes every backup of every node in the process
// write through wrap (nil: directly); it returns a function restoring the
// previous one.
func SetBackupTargetWrapper(wrap func(backup.Target) backup.Target) func() {
	var p *func(backup.Target) backup.Target
	if wrap != nil {
		p = &wrap
	}
	old := wrapTarget.Swap(p)
	return func() { wrapTarget.Store(old) }
}

// InterruptRestore stops a restore this node runs, as stopping the node
// would (its hidden keyspace stays, to resume or cancel), and waits.
func InterruptRestore(n *Node, id string) {
	n.restores.mu.Lock()
	j := n.restores.m[id]
	n.restores.mu.Unlock()
	if j != nil {
		j.cancel()
		<-j.done
	}
}

// SetAfterRestoreChunk calls fn after each chunk a restore's group applies
// (nil: nothing); it returns a function restoring the previous one.
func SetAfterRestoreChunk(fn func(ctx context.Context, id string, seq uint64)) func() {
	var p *func(context.Context, string, uint64)
	if fn != nil {
		p = &fn
	}
	old := afterChunk.Swap(p)
	return func() { afterChunk.Store(old) }
}

// BlockWakes returns how many times a blocking pop waiting on this node
// was told of a push by its replica's state machine.
func (n *Node) BlockWakes() uint64 {
	n.blocked.mu.Lock()
	defer n.blocked.mu.Unlock()
	return n.blocked.woken
}
