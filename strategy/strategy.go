package strategy

import (
	"context"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
)

// Strategy is one replication strategy, as the node uses it for the
// keyspaces that have it. Its methods are safe for concurrent use.
//
// A write: the node routes the key to its shard, asks WriteGroup which of
// the shard's groups takes it, and on a node holding a replica of that
// group Prepare turns it into the command the group applies; the group's
// leader passes it through Gate, then proposes it. A read: Level settles
// the level, Position says how far the local replica is and up to when
// that is complete, and Serves whether a group this node leads may act for
// its shard (strong reads, closed timestamps). Machine builds a group's
// state machine; Run does the strategy's background work.
type Strategy interface {
	// Ops is what the strategy's groups apply: the admission their
	// state machines are built with.
	Ops() *kv.Admission
	// Machine returns the state machine of one of the strategy's groups
	// (rg.Region is empty for a group spanning regions).
	Machine(rg metadata.RegionalGroup) raftgroup.StateMachine

	// WriteGroup returns the group of shard sh that takes the writes this
	// node receives (sh itself when the shard's own group does).
	WriteGroup(sh metadata.Shard) metadata.Shard
	// Prepare turns a client write into the command the group applies
	// (stamps it). It runs on a node holding a replica of the group
	// WriteGroup chose.
	Prepare(ks *metadata.Keyspace, cmd kv.Command) (kv.Command, error)
	// Gate admits a command at the leader of group g before it is
	// proposed: it may refuse it, or delay it (bounded by ctx).
	Gate(ctx context.Context, g GroupInfo, cmd []byte) error

	// Level returns the level a read of ks is served at: r, or the
	// keyspace's default for the zero level; a level the strategy does
	// not serve is refused.
	Level(ks *metadata.Keyspace, r consistency.Requirement) (consistency.Requirement, error)
	// Position returns the position of this node's replica rg of shard
	// sh. With confirm, a leader confirms that it still leads (lease or
	// ReadIndex), and its closed timestamp is then now.
	Position(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, rg metadata.RegionalGroup, confirm bool) (Position, error)
	// Serves reports whether group, of keyspace, led by this node under
	// its raft lease, may act for its shard at `at` (serve strong reads,
	// close timestamps) and until when (zero: as long as the raft lease).
	Serves(keyspace string, group uint64, at time.Time) (time.Time, error)

	// Run does the strategy's background work until stop is closed.
	Run(stop <-chan struct{})
}

// Position is what a local replica has of a shard: how far it has applied
// the log of Group (the shard's writing group, or for active keyspaces
// the local region's), and up to when that is complete.
type Position struct {
	Group    uint64
	Index    uint64
	ClosedMS int64 // 0: unknown
}

// GroupInfo says what a data group is: the keyspace and shard it holds,
// its region (region-local groups), and for async keyspaces whether it is
// the shard's primary group as the metadata says, with the keyspace's RPO
// budget.
type GroupInfo struct {
	Group    uint64
	Keyspace string
	Strategy metadata.Strategy
	Shard    int
	Region   string
	Primary  bool
	// RPOBudgetMS is the keyspace's RPO budget (async primaries only).
	RPOBudgetMS int64
}

// DefaultLevel returns a keyspace's default level: its own if it sets
// one, else fallback.
func DefaultLevel(ks *metadata.Keyspace, fallback consistency.Level) consistency.Requirement {
	if ks.Consistency != "" {
		if r, err := consistency.Parse(ks.Consistency); err == nil {
			return r
		}
	}
	return consistency.Requirement{Level: fallback}
}
