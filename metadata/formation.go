package metadata

import (
	"fmt"
	"slices"
)

// Cluster formation: a cluster started from a list of initial members
// (every member gets the same list) records that list once, in the first
// init_cluster command any member proposes. From then on every member's
// region is one of the cluster's regions, whether the member has started
// yet or not, so that "every region" never means fewer regions than the
// cluster was started with.

// InitCluster records the initial members of a cluster.
type InitCluster struct {
	// Members are the initial members as a member's configuration lists
	// them (id, region, node-to-node address).
	Members []NodeInfo `json:"members"`
}

func (s *Store) applyInit(st *State, c *InitCluster) error {
	ids := make([]uint64, 0, len(c.Members))
	for _, m := range c.Members {
		if m.ID == 0 || m.Region == "" || m.Addr == "" {
			return fmt.Errorf("%w: initial member %+v needs an id, a region and an address", ErrBadCommand, m)
		}
		if slices.Contains(ids, m.ID) {
			return fmt.Errorf("%w: initial member %d listed twice", ErrBadCommand, m.ID)
		}
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: init_cluster without members", ErrBadCommand)
	}
	slices.Sort(ids)
	if len(st.InitialMembers) > 0 {
		if !slices.Equal(st.InitialMembers, ids) {
			return fmt.Errorf("%w: the cluster was formed by members %v; this list names %v (every initial member must start with the same --peers)",
				ErrMembersDiffer, st.InitialMembers, ids)
		}
		return nil
	}
	st.InitialMembers = ids
	for _, m := range c.Members {
		if _, ok := st.Nodes[m.ID]; ok {
			continue // registered already: keep what it said about itself
		}
		st.Nodes[m.ID] = NodeInfo{ID: m.ID, Region: m.Region, Zone: m.Zone, Addr: m.Addr}
	}
	return nil
}

// RegionsOf returns the sorted distinct regions of nodes.
func RegionsOf(nodes []NodeInfo) []string {
	var out []string
	for _, n := range nodes {
		if !slices.Contains(out, n.Region) {
			out = append(out, n.Region)
		}
	}
	slices.Sort(out)
	return out
}

// RegionsWithout returns the regions (in their order) where none of nodes
// is.
func RegionsWithout(regions []string, nodes []NodeInfo) []string {
	var out []string
	for _, r := range regions {
		if !slices.ContainsFunc(nodes, func(n NodeInfo) bool { return n.Region == r }) {
			out = append(out, r)
		}
	}
	return out
}

// NotJoined returns the ids, sorted, of the recorded nodes that have never
// registered themselves: initial members that have not started yet, or
// admitted nodes that never came.
func (s *State) NotJoined() []uint64 {
	var out []uint64
	for id, n := range s.Nodes {
		if !n.Joined {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// PlaceKeyspace places every shard of a normalized spec on nodes: for sync
// keyspaces one group per shard (PlaceSync), for async and active ones a
// region-local group per shard in every region (PlaceRegional), the home
// region's being the primary. The shards' group ids are left to the
// create_keyspace command.
func PlaceKeyspace(spec KeyspaceSpec, nodes []NodeInfo, rtt RTTFunc) ([]Shard, error) {
	shards := make([]Shard, 0, spec.Shards)
	for i := range spec.Shards {
		if spec.Strategy == Async || spec.Strategy == Active {
			sh := Shard{Index: i}
			for _, r := range spec.Regions {
				voters, err := PlaceRegional(r, nodes, i)
				if err != nil {
					return nil, err
				}
				sh.Regional = append(sh.Regional, RegionalGroup{Region: r, Replicas: voters})
				if r == spec.HomeRegion {
					sh.Replicas = voters
				}
			}
			shards = append(shards, sh)
			continue
		}
		voters, err := PlaceSync(spec, nodes, rtt, i)
		if err != nil {
			return nil, err
		}
		shards = append(shards, Shard{Index: i, Replicas: voters})
	}
	return shards, nil
}
