package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/transport"
)

// ErrOutcomeUnknown is returned when a write was sent towards its leader
// but no answer came back: it may or may not have taken effect.
var ErrOutcomeUnknown = errors.New("node: outcome unknown (the leader did not answer)")

const methodPropose = "propose"

type proposeRequest struct {
	Group uint64 `json:"g"`
	Cmd   []byte `json:"c"`
	// Route asks the receiver to find the group's leader itself (the
	// sender holds no replica and does not know it).
	Route bool `json:"r,omitempty"`
}

// proposeResponse carries an applied proposal's result between nodes.
type proposeResponse struct {
	Index   uint64             `json:"i"`
	Node    uint64             `json:"n"`
	Region  string             `json:"r"`
	KV      *rpcResponse       `json:"kv,omitempty"`
	Meta    *metadata.Keyspace `json:"ks,omitempty"`
	ErrCode string             `json:"ec,omitempty"`
	ErrMsg  string             `json:"em,omitempty"`
}

// proposal is the outcome of propose.
type proposal struct {
	index  uint64
	value  any // kv.Result or metadata.ApplyResult
	node   uint64
	region string
}

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
				return proposal{index: r.Index, value: r.Value, node: n.cfg.ID, region: n.cfg.Region}, nil
			}
		default:
			var p proposal
			p, perr = n.proposeRemote(ctx, lead, group, cmd)
			if perr == nil {
				return p, nil
			}
		}
		if !errors.Is(perr, raftgroup.ErrNotLeader) && !errors.Is(perr, raftgroup.ErrDropped) {
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

func (n *Node) proposeRemote(ctx context.Context, lead, group uint64, cmd []byte) (proposal, error) {
	body, _ := json.Marshal(proposeRequest{Group: group, Cmd: cmd})
	out, err := n.tr.Call(ctx, lead, methodPropose, body)
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
	var resp proposeResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return proposal{}, fmt.Errorf("%w: bad answer from leader %d: %w", ErrOutcomeUnknown, lead, err)
	}
	return resp.proposal(group)
}

// proposal rebuilds the outcome of a proposal another node made.
func (resp proposeResponse) proposal(group uint64) (proposal, error) {
	if resp.ErrCode != "" {
		return proposal{}, DecodeError(resp.ErrCode, resp.ErrMsg)
	}
	p := proposal{index: resp.Index, node: resp.Node, region: resp.Region}
	if group == metadata.SystemGroup {
		p.value = metadata.ApplyResult{Keyspace: resp.Meta}
	} else if resp.KV != nil {
		r := kv.Result{Value: resp.KV.Value, Found: resp.KV.Found, N: resp.KV.N}
		if resp.KV.ErrCode != "" {
			r.Err = DecodeError(resp.KV.ErrCode, resp.KV.ErrMsg)
		}
		p.value = r
	}
	return p, nil
}

// proposeIn runs cmd through a region-local group from anywhere: through
// its leader if this node holds a replica, otherwise through the nearest
// replica, which finds the leader itself.
func (n *Node) proposeIn(ctx context.Context, rg metadata.RegionalGroup, cmd []byte) (proposal, error) {
	if slices.Contains(rg.Replicas, n.cfg.ID) {
		return n.propose(ctx, rg.Group, cmd)
	}
	body, _ := json.Marshal(proposeRequest{Group: rg.Group, Cmd: cmd, Route: true})
	var resp proposeResponse
	if err := n.callReplica(ctx, metadata.Shard{Group: rg.Group, Replicas: rg.Replicas}, methodPropose, body, &resp); err != nil {
		return proposal{}, err
	}
	return resp.proposal(rg.Group)
}

// handlePropose serves a proposal forwarded by another node: only here,
// never forwarded again.
func (n *Node) handlePropose(ctx context.Context, body []byte) ([]byte, error) {
	var req proposeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("node: bad proposal: %w", err)
	}
	resp := proposeResponse{Node: n.cfg.ID, Region: n.cfg.Region}
	var r raftgroup.Result
	var err error
	if b, ok := streamBatchOf(req.Cmd); ok {
		if err = n.checkStreamClock(b); err == nil {
			if at, ok := n.quietHeartbeat(req.Group, b); ok {
				resp.KV = &rpcResponse{N: int64(at)}
				return json.Marshal(resp)
			}
			defer n.orderStreamBatch(ctx, req.Group, b)() // after the batch it follows (streams.go)
		}
	}
	switch {
	case err != nil:
	case req.Route:
		var p proposal
		p, err = n.propose(ctx, req.Group, req.Cmd)
		r, resp.Node, resp.Region = raftgroup.Result{Index: p.index, Value: p.value}, p.node, p.region
	default:
		r, err = n.hostPropose(ctx, req.Group, req.Cmd)
	}
	if err != nil {
		resp.ErrCode, resp.ErrMsg = ErrorCode(err), err.Error()
		return json.Marshal(resp)
	}
	resp.Index = r.Index
	switch v := r.Value.(type) {
	case kv.Result:
		kr := &rpcResponse{Value: v.Value, Found: v.Found, N: v.N}
		if v.Err != nil {
			kr.ErrCode, kr.ErrMsg = ErrorCode(v.Err), v.Err.Error()
		}
		resp.KV = kr
	case metadata.ApplyResult:
		if v.Err != nil {
			resp.ErrCode, resp.ErrMsg = ErrorCode(v.Err), v.Err.Error()
		}
		resp.Meta = v.Keyspace
	}
	return json.Marshal(resp)
}

const methodConfChange = "confchange"

type confChangeRequest struct {
	Group uint64 `json:"g"`
	CC    []byte `json:"cc"` // a marshalled raftpb.ConfChangeV2
}

// proposeConfChange runs a membership change through the group's leader.
func (n *Node) proposeConfChange(ctx context.Context, group uint64, cc *pb.ConfChangeV2) error {
	body, err := proto.Marshal(cc)
	if err != nil {
		return err
	}
	req, _ := json.Marshal(confChangeRequest{Group: group, CC: body})
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
			_, perr = n.tr.Call(ctx, lead, methodConfChange, req)
			var re *transport.RemoteError
			if errors.As(perr, &re) {
				perr = DecodeError(re.Message, re.Message)
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

func (n *Node) handleConfChange(ctx context.Context, body []byte) ([]byte, error) {
	var req confChangeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("node: bad conf change: %w", err)
	}
	cc := &pb.ConfChangeV2{}
	if err := proto.Unmarshal(req.CC, cc); err != nil {
		return nil, fmt.Errorf("node: bad conf change: %w", err)
	}
	if err := n.host.ProposeConfChange(ctx, req.Group, cc); err != nil {
		// The code travels as the message so the caller can tell "not the
		// leader" (retry) from a real failure.
		return nil, errors.New(ErrorCode(err))
	}
	return nil, nil
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
