package node

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/transport"
)

// nodeEnv is what the strategies see of the node (strategy.Env).
type nodeEnv struct{ n *Node }

var _ strategy.Env = nodeEnv{}

func (e nodeEnv) ID() uint64                      { return e.n.cfg.ID }
func (e nodeEnv) Region() string                  { return e.n.cfg.Region }
func (e nodeEnv) Cluster() string                 { return e.n.cluster }
func (e nodeEnv) Logger() *slog.Logger            { return e.n.log }
func (e nodeEnv) Host() *raftgroup.Host           { return e.n.host }
func (e nodeEnv) DB() *storage.DB                 { return e.n.db }
func (e nodeEnv) Meta() *metadata.Store           { return e.n.meta }
func (e nodeEnv) Clock() *hlc.Clock               { return e.n.clock }
func (e nodeEnv) Now() time.Time                  { return e.n.Now() }
func (e nodeEnv) Transport() *transport.Transport { return e.n.tr }

func (e nodeEnv) Settings() strategy.Settings {
	c := &e.n.cfg
	return strategy.Settings{
		RequestTimeout: c.RequestTimeout, MaxClockOffset: c.MaxClockOffset,
		LeaderCheckInterval: c.LeaderCheckInterval, LeaderHysteresis: c.LeaderHysteresis,
		StreamBatchInterval: c.StreamBatchInterval, StreamMaxBatchBytes: c.StreamMaxBatchBytes,
		StreamMaxInFlight: c.StreamMaxInFlight, StreamHeartbeatInterval: c.StreamHeartbeatInterval,
		StreamRetryBackoff: c.StreamRetryBackoff,
	}
}

func (e nodeEnv) Propose(ctx context.Context, group uint64, cmd []byte) (strategy.Proposal, error) {
	return e.n.propose(ctx, group, cmd)
}

func (e nodeEnv) ProposeIn(ctx context.Context, rg metadata.RegionalGroup, cmd []byte) (strategy.Proposal, error) {
	return e.n.proposeIn(ctx, rg, cmd)
}

// ProposeVia asks replica to route cmd to group's leader (a stream's
// sink: one hop to a replica of the destination, which knows its leader).
func (e nodeEnv) ProposeVia(ctx context.Context, replica, group uint64, cmd []byte) (strategy.Proposal, error) {
	resp, err := e.n.client(replica).Propose(ctx, &nodepb.ProposeRequest{Group: group, Command: cmd, Route: true})
	if err != nil {
		return strategy.Proposal{}, err
	}
	return proposalFromPB(group, resp)
}

// Cursor returns how far a group has applied a source's stream, as one
// of its replicas (the nearest) has it.
func (e nodeEnv) Cursor(ctx context.Context, rg metadata.RegionalGroup, source uint64) (uint64, error) {
	n := e.n
	if slices.Contains(rg.Replicas, n.cfg.ID) {
		c, _, err := n.db.Cursor(rg.Group, source)
		return c.Index, err
	}
	id := n.nearestReplica(metadata.Shard{Group: rg.Group, Replicas: rg.Replicas})
	if id == 0 {
		return 0, ErrNoReplica
	}
	resp, err := n.client(id).Cursor(ctx, &nodepb.CursorRequest{Group: rg.Group, Source: source})
	if err != nil {
		return 0, err
	}
	return resp.GetIndex(), fromPB(resp.GetError())
}

func (e nodeEnv) NearestReplica(sh metadata.Shard) uint64 { return e.n.nearestReplica(sh) }

func (e nodeEnv) Group(id uint64) (strategy.GroupInfo, bool) { return e.n.group(id) }

func (e nodeEnv) Closed(group uint64) (uint64, int64, uint64) {
	e.n.host.Touch(group) // a stream reads it: the group must keep its lease
	return e.n.closedFor(group)
}

func (e nodeEnv) ClosedAt(group, applied uint64) int64 { return e.n.closed.at(group, applied) }

func (e nodeEnv) WaitMeta(ctx context.Context, ok func(*metadata.State) bool) error {
	return e.n.waitMeta(ctx, ok)
}

// group returns what a data group is, as of the current metadata.
func (n *Node) group(id uint64) (strategy.GroupInfo, bool) {
	return n.groups.Lookup(n.meta.State(), id)
}

func (e nodeEnv) ErrorCode(err error) string { return ErrorCode(err) }
