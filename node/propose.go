package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/strategy/streaming"
	"github.com/meridian-db/meridian/transport"
)

// ErrOutcomeUnknown is returned when a write was sent towards its leader
// but no answer came back: it may or may not have taken effect.
var ErrOutcomeUnknown = errors.New("node: outcome unknown (the leader did not answer)")

// proposal is the outcome of propose.
type proposal = strategy.Proposal

// propose runs cmd through a group's leader, wherever it is, and returns
// the applied result. While leadership is moving it waits (bounded by ctx)
// and retries: a proposal is only retried when it certainly had no effect.
func (n *Node) propose(ctx context.Context, group uint64, cmd []byte) (proposal, error) {
	for {
		changed, lead, err := n.host.LeaderChanged(ctx, group)
		if err != nil {
			return proposal{}, err
		}
		var perr error
		switch lead {
		case 0:
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return proposal{}, fmt.Errorf("%w: %w", raftgroup.ErrNoLeader, ctx.Err())
			case <-n.stop:
				return proposal{}, raftgroup.ErrStopped
			}
		case n.cfg.ID:
			var r raftgroup.Result
			r, perr = n.hostPropose(ctx, group, cmd)
			if perr == nil {
				return proposal{Index: r.Index, Value: r.Value, Node: n.cfg.ID, Region: n.cfg.Region}, nil
			}
		default:
			var p proposal
			p, perr = n.proposeRemote(ctx, lead, group, cmd)
			if perr == nil {
				return p, nil
			}
		}
		if !noEffect(perr) {
			return proposal{}, perr
		}
		// Nothing happened; try again once leadership has moved on (or
		// shortly, if this node's view is what is stale).
		select {
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return proposal{}, fmt.Errorf("%w: %w", raftgroup.ErrNoLeader, ctx.Err())
		case <-n.stop:
			return proposal{}, raftgroup.ErrStopped
		}
	}
}

// noEffect reports whether a proposal failed having certainly done
// nothing (this node does not lead the group, or raft dropped it): it may
// be sent again.
func noEffect(err error) bool {
	return errors.Is(err, raftgroup.ErrNotLeader) || errors.Is(err, raftgroup.ErrDropped)
}

// hostPropose proposes a command to a group this node leads, once the
// strategy of the group's keyspace has let it through (Strategy.Gate: an
// async primary's lease and RPO budget). The group is a lookup in the
// index of data groups (strategy.GroupIndex), rebuilt when the metadata
// changes.
func (n *Node) hostPropose(ctx context.Context, group uint64, cmd []byte) (raftgroup.Result, error) {
	if info, ok := n.group(group); ok {
		if err := n.strategyFor(info.Strategy).Gate(ctx, info, cmd); err != nil {
			return raftgroup.Result{}, err
		}
		if info.Strategy == metadata.Sync && !n.cfg.NoCombine {
			if c, ok := combinable(cmd); ok {
				return n.proposeSet(ctx, group, cmd, c) // combine.go
			}
		}
	}
	return n.host.Propose(ctx, group, cmd)
}

func (n *Node) proposeRemote(ctx context.Context, lead, group uint64, cmd []byte) (proposal, error) {
	resp, err := n.client(lead).Propose(ctx, &nodepb.ProposeRequest{Group: group, Command: cmd})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return proposal{}, fmt.Errorf("%w: %w", raftgroup.ErrTimeout, ctx.Err())
		case errors.Is(err, transport.ErrNotSent):
			// The leader never saw it: as good as refused; wait for the
			// leadership to move and retry.
			return proposal{}, fmt.Errorf("%w: %w", raftgroup.ErrDropped, err)
		}
		return proposal{}, fmt.Errorf("%w: leader %d: %w", ErrOutcomeUnknown, lead, err)
	}
	return proposalFromPB(group, resp)
}

// proposalFromPB rebuilds the outcome of a proposal another node made. A
// metadata change's result carries only its error: the caller reads what
// it changed from its own metadata, once applied up to the index.
func proposalFromPB(group uint64, resp *nodepb.ProposeResponse) (proposal, error) {
	if err := fromPB(resp.GetError()); err != nil {
		return proposal{}, err
	}
	p := proposal{Index: resp.GetIndex(), Node: resp.GetNode(), Region: resp.GetRegion()}
	switch {
	case group == metadata.SystemGroup:
		p.Value = metadata.ApplyResult{Err: fromPB(resp.GetResult().GetErr())}
	case resp.GetResult() != nil:
		p.Value = resultFromPB(resp.GetResult())
	}
	return p, nil
}

// proposeIn runs cmd through a region-local group from anywhere: through
// its leader if this node holds a replica, otherwise straight to the
// group's leader as last known (a replica asked redirects to it).
func (n *Node) proposeIn(ctx context.Context, rg metadata.RegionalGroup, cmd []byte) (proposal, error) {
	if slices.Contains(rg.Replicas, n.cfg.ID) {
		return n.propose(ctx, rg.Group, cmd)
	}
	req := &nodepb.ProposeRequest{Group: rg.Group, Command: cmd}
	var resp *nodepb.ProposeResponse
	err := n.toLeader(ctx, rg.Group, rg.Replicas, func(id uint64) (uint64, *nodepb.Error, error) {
		var err error
		if resp, err = n.client(id).Propose(ctx, req); err != nil {
			return 0, nil, err
		}
		return resp.GetNode(), resp.GetError(), nil
	})
	if err != nil {
		return proposal{}, err
	}
	return proposalFromPB(rg.Group, resp)
}

// servePropose serves a proposal sent by another node: proposed here if
// this node leads the group (NOT_LEADER naming the leader otherwise), or,
// with Route, through the leader this node knows. Never forwarded further.
func (n *Node) servePropose(ctx context.Context, req *nodepb.ProposeRequest) *nodepb.ProposeResponse {
	resp := &nodepb.ProposeResponse{Node: n.cfg.ID, Region: n.cfg.Region}
	group, cmd := req.GetGroup(), req.GetCommand()
	var r raftgroup.Result
	var err error
	if b, ok := streaming.BatchOf(cmd); ok {
		if err = n.inbox.CheckClock(b); err == nil {
			if at, ok := n.inbox.Quiet(group, b); ok {
				resp.Result = &nodepb.Result{N: int64(at)}
				return resp
			}
			defer n.inbox.Order(ctx, group, b)() // after the batch it follows
		}
	} else {
		err = n.inbox.CheckResyncClock(group, cmd)
	}
	switch {
	case err != nil:
	case req.GetRoute():
		var p proposal
		p, err = n.propose(ctx, group, cmd)
		r, resp.Node, resp.Region = raftgroup.Result{Index: p.Index, Value: p.Value}, p.Node, p.Region
	default:
		r, err = n.hostPropose(ctx, group, cmd)
		if errors.Is(err, raftgroup.ErrNotLeader) {
			resp.Error = notLeader(group, n.host.Leader(group))
			return resp
		}
	}
	if err != nil {
		resp.Error = toPB(err)
		return resp
	}
	resp.Index = r.Index
	switch v := r.Value.(type) {
	case kv.Result:
		resp.Result = resultToPB(v)
	case metadata.ApplyResult:
		resp.Result = &nodepb.Result{Err: toPB(v.Err)}
	}
	return resp
}

// proposeConfChange runs a membership change through the group's leader.
func (n *Node) proposeConfChange(ctx context.Context, group uint64, cc *pb.ConfChangeV2) error {
	body, err := proto.Marshal(cc)
	if err != nil {
		return err
	}
	for {
		changed, lead, err := n.host.LeaderChanged(ctx, group)
		if err != nil {
			return err
		}
		var perr error
		switch lead {
		case 0:
			perr = raftgroup.ErrNotLeader
		case n.cfg.ID:
			perr = n.host.ProposeConfChange(ctx, group, cc)
		default:
			var resp *nodepb.ConfChangeResponse
			if resp, perr = n.client(lead).ConfChange(ctx, &nodepb.ConfChangeRequest{Group: group, Change: body}); perr == nil {
				perr = fromPB(resp.GetError())
			}
		}
		if perr == nil {
			return nil
		}
		if !errors.Is(perr, raftgroup.ErrNotLeader) && !errors.Is(perr, raftgroup.ErrDropped) && !errors.Is(perr, transport.ErrNotSent) {
			return perr
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", raftgroup.ErrNoLeader, ctx.Err())
		}
	}
}

// AddNode admits a new node to the cluster: it is recorded in the metadata
// and added to the system group as a learner, so that it receives the
// metadata. The new node must then be started with Join set and the peers
// of the cluster (see Peers).
func (n *Node) AddNode(ctx context.Context, info metadata.NodeInfo) error {
	if info.ID == 0 || info.Region == "" || info.Addr == "" {
		return fmt.Errorf("%w: a node needs an id, a region and an address", metadata.ErrInvalidSpec)
	}
	info.Joined = false // until the node registers itself
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if cur, ok := n.meta.State().Nodes[info.ID]; ok && (cur.Addr != info.Addr || cur.Region != info.Region) {
		return fmt.Errorf("%w: node %d is already registered at %s in %s", metadata.ErrInvalidSpec, info.ID, cur.Addr, cur.Region)
	}
	n.tr.SetPeer(transport.Peer{ID: info.ID, Region: info.Region, Addr: info.Addr})
	if _, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "add_node", Node: &info}.Encode()); err != nil {
		return err
	}
	if gs, ok := n.host.Status(metadata.SystemGroup); ok && (slices.Contains(gs.Voters, info.ID) || slices.Contains(gs.Learners, info.ID)) {
		return nil
	}
	typ := pb.ConfChangeAddLearnerNode
	return n.proposeConfChange(ctx, metadata.SystemGroup, &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: &typ, NodeId: &info.ID}}})
}

// Peers returns every node of the cluster as a transport peer list.
func (n *Node) Peers() []transport.Peer {
	var out []transport.Peer
	for _, ni := range n.meta.State().Nodes {
		out = append(out, transport.Peer{ID: ni.ID, Region: ni.Region, Addr: ni.Addr})
	}
	slices.SortFunc(out, func(a, b transport.Peer) int { return int(a.ID) - int(b.ID) })
	return out
}
