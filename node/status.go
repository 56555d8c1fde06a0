package node

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/strategy/streaming"
)

// NodeStatus is one node as the cluster status shows it.
type NodeStatus struct {
	metadata.NodeInfo
	Reachable bool `json:"reachable"` // from the node answering the status request
	// Initial is set for the cluster's initial members.
	Initial bool `json:"initial"`
}

// ShardStatus is one shard and its group.
type ShardStatus struct {
	Index        int      `json:"index"`
	Group        uint64   `json:"group"`
	Replicas     []uint64 `json:"replicas"`
	Leader       uint64   `json:"leader"` // as known to the answering node (0: unknown)
	LeaderRegion string   `json:"leader_region,omitempty"`
	Term         uint64   `json:"term,omitempty"`
	Commit       uint64   `json:"commit,omitempty"`
	Applied      uint64   `json:"applied,omitempty"` // on the answering node, if it holds a replica
}

// KeyspaceStatus is one keyspace.
type KeyspaceStatus struct {
	metadata.KeyspaceSpec
	Shards []ShardStatus `json:"shards"`
}

// ClusterStatus is what `meridian status` and the HTTP API show.
type ClusterStatus struct {
	Node      uint64           `json:"node"`
	Region    string           `json:"region"`
	Regions   []string         `json:"regions"`
	Nodes     []NodeStatus     `json:"nodes"`
	Keyspaces []KeyspaceStatus `json:"keyspaces"`
	// RTTms is the measured round-trip matrix in milliseconds: RTTms[a][b]
	// as measured by node a (string keys for JSON).
	RTTms map[uint64]map[uint64]float64 `json:"rtt_ms"`
	// SystemLeader is the metadata group's leader.
	SystemLeader uint64 `json:"system_leader"`
	// Streams are the async streams of the whole cluster (every reachable
	// node's senders), with their lag.
	Streams []StreamStatus `json:"streams,omitempty"`
	// InitialMembers, NotJoined and Unreachable: see Membership.
	InitialMembers []uint64 `json:"initial_members,omitempty"`
	NotJoined      []uint64 `json:"not_joined,omitempty"`
	Unreachable    []uint64 `json:"unreachable,omitempty"`
	// UnderReplicated lists the keyspaces below their replication goal.
	UnderReplicated []KeyspaceHealth `json:"under_replicated,omitempty"`
}

// Status gathers the cluster status: metadata, leaders, and the round-trip
// matrix (asking every reachable node for its measurements).
func (n *Node) Status(ctx context.Context) ClusterStatus {
	st := n.meta.State()
	m := n.Membership()
	cs := ClusterStatus{Node: n.cfg.ID, Region: n.cfg.Region, Regions: n.clusterRegions(st), RTTms: map[uint64]map[uint64]float64{},
		SystemLeader:   n.host.Leader(metadata.SystemGroup),
		InitialMembers: m.InitialMembers, NotJoined: m.NotJoined, Unreachable: m.Unreachable}
	for _, h := range m.Keyspaces {
		if h.UnderReplicated {
			cs.UnderReplicated = append(cs.UnderReplicated, h)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, ni := range n.clusterNodes(st) {
		id := ni.ID
		ns := NodeStatus{NodeInfo: ni, Initial: slices.Contains(m.InitialMembers, id)}
		if id == n.cfg.ID {
			ns.Reachable = true
			mu.Lock() // the other nodes' answers land in the same map
			cs.RTTms[id] = toMS(n.tr.RTTs())
			mu.Unlock()
		} else {
			ns.Reachable = n.tr.Healthy(id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if m, err := n.remoteRTTs(cctx, id); err == nil {
					mu.Lock()
					cs.RTTms[id] = toMS(m)
					mu.Unlock()
				}
				if resp, err := n.client(id).Streams(cctx, &nodepb.StreamsRequest{}); err == nil {
					mu.Lock()
					for _, s := range resp.GetStreams() {
						cs.Streams = append(cs.Streams, streamStatusFromPB(s))
					}
					mu.Unlock()
				}
			}()
		}
		cs.Nodes = append(cs.Nodes, ns)
	}
	wg.Wait()
	cs.Streams = append(cs.Streams, n.Streams()...)
	streaming.Sort(cs.Streams)
	names := make([]string, 0, len(st.Keyspaces))
	for name := range st.Keyspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ks := st.Keyspaces[name]
		kst := KeyspaceStatus{KeyspaceSpec: ks.KeyspaceSpec}
		for _, sh := range ks.Shards {
			ss := ShardStatus{Index: sh.Index, Group: sh.Group, Replicas: sh.Replicas}
			if gs, ok := n.host.Status(sh.Group); ok {
				ss.Leader, ss.Term, ss.Commit, ss.Applied = gs.Lead, gs.Term, gs.Commit, gs.Applied
			}
			if ss.Leader != 0 {
				ss.LeaderRegion = st.Nodes[ss.Leader].Region
			}
			kst.Shards = append(kst.Shards, ss)
		}
		cs.Keyspaces = append(cs.Keyspaces, kst)
	}
	return cs
}

func toMS(m map[uint64]time.Duration) map[uint64]float64 {
	out := make(map[uint64]float64, len(m))
	for id, d := range m {
		out[id] = float64(d.Microseconds()) / 1000
	}
	return out
}
