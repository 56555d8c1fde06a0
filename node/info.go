package node

import (
	"cmp"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"
)

// Shard roles of this node (see LocalShards).
const (
	RoleLeader   = "leader"   // this node leads the shard's group
	RoleFollower = "follower" // this node holds a replica that does not lead
	RoleNone     = "none"     // this node holds no replica (or has not created it yet)
)

// ShardInfo is one shard as this node sees it, without asking any other
// node (cheap enough for every INFO request).
type ShardInfo struct {
	Keyspace string
	Index    int
	Group    uint64
	Replicas []uint64
	// Leader is the group's leader as known here (0: unknown).
	Leader uint64
	// Role is this node's role in the group: RoleLeader, RoleFollower or RoleNone.
	Role string
	// Applied is the local replica's applied index (0 without one).
	Applied uint64
}

// LocalShards lists every shard of every keyspace, sorted by keyspace and
// index, with this node's role in it.
func (n *Node) LocalShards() []ShardInfo {
	st := n.meta.State()
	var out []ShardInfo
	for name, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			si := ShardInfo{Keyspace: name, Index: sh.Index, Group: sh.Group, Replicas: slices.Clone(sh.Replicas), Role: RoleNone}
			if gs, ok := n.host.Status(sh.Group); ok {
				si.Leader, si.Applied = gs.Lead, gs.Applied
				if gs.RaftState == raft.StateLeader {
					si.Role = RoleLeader
				} else {
					si.Role = RoleFollower
				}
			}
			out = append(out, si)
		}
	}
	slices.SortFunc(out, func(a, b ShardInfo) int {
		return cmp.Or(strings.Compare(a.Keyspace, b.Keyspace), cmp.Compare(a.Index, b.Index))
	})
	return out
}
