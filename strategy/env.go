package strategy

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/transport"
)

// Env is what a strategy may use of the node it runs on. The node
// implements it; a strategy keeps no other reference to the node.
type Env interface {
	// ID, Region and Cluster are the node's id and region and the
	// cluster's id.
	ID() uint64
	Region() string
	Cluster() string
	Logger() *slog.Logger
	// Host, DB, Meta, Clock and Transport are the node's raft host,
	// storage, metadata, hybrid clock and transport.
	Host() *raftgroup.Host
	DB() *storage.DB
	Meta() *metadata.Store
	Clock() *hlc.Clock
	// Now is the time of day on the node's clock (moved by its emulated
	// offset, if any): what wall-clock figures and leases are read from.
	Now() time.Time
	Transport() *transport.Transport
	// Settings are the node's configuration values strategies use.
	Settings() Settings

	// Propose runs cmd through a group's leader, wherever it is, and
	// returns the applied result.
	Propose(ctx context.Context, group uint64, cmd []byte) (Proposal, error)
	// ProposeIn runs cmd through a region-local group from anywhere.
	ProposeIn(ctx context.Context, rg metadata.RegionalGroup, cmd []byte) (Proposal, error)
	// ProposeVia asks replica, which holds a replica of group, to run cmd
	// through the group's leader.
	ProposeVia(ctx context.Context, replica, group uint64, cmd []byte) (Proposal, error)
	// Cursor returns how far a group has applied a source's stream, as
	// one of its replicas (this node's, or the nearest) has it.
	Cursor(ctx context.Context, rg metadata.RegionalGroup, source uint64) (uint64, error)
	// NearestReplica returns the best replica of a shard to ask (0: none).
	NearestReplica(sh metadata.Shard) uint64
	// Group says what a data group is, as of the current metadata (a
	// lookup, rebuilt when the metadata changes).
	Group(id uint64) (GroupInfo, bool)
	// Closed returns the closed timestamp (Unix ms) this node may give
	// for a group it leads, with the index it covers and the lease's
	// term; closedMS is 0 if it may give none.
	Closed(group uint64) (index uint64, closedMS int64, term uint64)
	// ClosedAt returns the closed timestamp of a replica that has applied
	// group's log up to applied, from its leader's samples (0: none).
	ClosedAt(group, applied uint64) int64
	// WaitMeta waits until this node's metadata satisfies ok.
	WaitMeta(ctx context.Context, ok func(*metadata.State) bool) error
	// ErrorCode returns the stable code of an error, as the node-to-node
	// service and the front ends name it ("internal" if unknown).
	ErrorCode(err error) string
}

// Settings are the node's configuration values strategies use (see
// node.Config).
type Settings struct {
	RequestTimeout      time.Duration
	MaxClockOffset      time.Duration
	LeaderCheckInterval time.Duration
	LeaderHysteresis    time.Duration

	StreamBatchInterval     time.Duration
	StreamMaxBatchBytes     int
	StreamMaxInFlight       int
	StreamHeartbeatInterval time.Duration
	StreamRetryBackoff      time.Duration
}

// Proposal is the outcome of a proposal.
type Proposal struct {
	Index  uint64
	Value  any // kv.Result or metadata.ApplyResult
	Node   uint64
	Region string
}

// Errors both the node and the strategies return.
var (
	// ErrNoReplica: no replica of the group to ask.
	ErrNoReplica = errors.New("node: no reachable replica for the shard")
)

// WithTimeout bounds ctx by d unless it has a deadline already.
func WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
