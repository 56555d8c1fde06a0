package metadata

import (
	"fmt"
	"slices"
	"time"
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
	// Timings are the proposing member's lease-critical timings; the
	// first recorded are the cluster's. Nil from a binary that predates
	// them.
	Timings *Timings `json:"timings,omitempty"`
}

// Timings are the raft timings leader leases rest on (see
// raftgroup/lease.go): a lease is sized from the shortest election
// timeout any replica may use, counted in ticks. A node that ticks
// faster, or derives a shorter election timeout, could vote for a new
// leader while the old one still serves reads under its lease. So every
// node of a cluster must run with the same timings: the cluster records
// them when it forms, and a node whose own differ is refused at join and
// at start (ErrTimingsDiffer).
type Timings struct {
	// TickInterval is the raft tick.
	TickInterval time.Duration `json:"tick_interval_ns"`
	// MinHeartbeatInterval is the shortest raft heartbeat interval.
	MinHeartbeatInterval time.Duration `json:"min_heartbeat_interval_ns"`
	// MinElectionTimeout is the shortest election timeout of any group,
	// derived from the two above; leases are sized from it.
	MinElectionTimeout time.Duration `json:"min_election_timeout_ns"`
}

// Check compares a node's timings (t) with the cluster's: nil if they are
// equal, otherwise an error wrapping ErrTimingsDiffer that names the first
// setting that differs (by its configuration file name), its value on the
// node and the cluster's.
func (t Timings) Check(cluster Timings) error {
	for _, s := range []struct {
		name          string
		mine, cluster time.Duration
	}{
		{"timings.tick_interval", t.TickInterval, cluster.TickInterval},
		{"timings.min_heartbeat_interval", t.MinHeartbeatInterval, cluster.MinHeartbeatInterval},
		{"min election timeout (derived from the two)", t.MinElectionTimeout, cluster.MinElectionTimeout},
	} {
		if s.mine != s.cluster {
			return fmt.Errorf("%w: %s is %v on this node but %v in the cluster; leader leases assume every node uses the same",
				ErrTimingsDiffer, s.name, s.mine, s.cluster)
		}
	}
	return nil
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
		switch {
		case c.Timings == nil:
		case st.Timings == nil:
			// A cluster formed by a binary that did not record timings:
			// the first member that proposes them records them.
			t := *c.Timings
			st.Timings = &t
		default:
			if err := c.Timings.Check(*st.Timings); err != nil {
				return err
			}
		}
		return nil
	}
	st.InitialMembers = ids
	if c.Timings != nil {
		t := *c.Timings
		st.Timings = &t
	}
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
