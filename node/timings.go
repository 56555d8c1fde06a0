package node

import (
	"context"
	"fmt"

	"github.com/meridian-db/meridian/metadata"
)

// Lease-critical timings (docs/DESIGN.md 4 and 5.2). Leader leases
// (raftgroup/lease.go) are sized from the shortest election timeout any
// replica may use, which every node derives from its TickInterval and
// MinHeartbeatInterval. A node whose timings differ could grant a vote
// while a leader still serves reads under its lease, so the cluster
// records the initial members' timings when it forms (the init_cluster
// metadata command) and refuses a node whose own differ:
//   - at start, when its storage holds metadata that records them (Start
//     fails with metadata.ErrTimingsDiffer);
//   - at join: the member asked to admit a node compares the timings the
//     node sent (Admit), and the joining node compares the cluster's
//     timings in the answer before it starts;
//   - an initial member whose init_cluster is refused, or any node that
//     learns the cluster's timings from its metadata later, stops (Fatal).

// Timings returns the lease-critical timings this node runs with.
func (n *Node) Timings() metadata.Timings { return n.cfg.timings() }

// ClusterTimings returns the timings the cluster recorded when it formed
// (ok false before, or in a cluster formed before they were recorded).
func (n *Node) ClusterTimings() (metadata.Timings, bool) {
	if t := n.meta.State().Timings; t != nil {
		return *t, true
	}
	return metadata.Timings{}, false
}

func (c *Config) timings() metadata.Timings {
	return metadata.Timings{TickInterval: c.TickInterval, MinHeartbeatInterval: c.MinHeartbeatInterval,
		MinElectionTimeout: c.minElectionTimeout()}
}

// Timings returns the lease-critical timings a node started with this
// configuration runs with (defaults applied): what a joining node sends.
func (c Config) Timings() metadata.Timings {
	c.setDefaults()
	return c.timings()
}

// checkTimings refuses this node's timings if the metadata records others.
func (n *Node) checkTimings(st *metadata.State) error {
	if st.Timings == nil {
		return nil
	}
	return n.cfg.timings().Check(*st.Timings)
}

// Admit admits a node to the cluster (AddNode) after checking that its
// lease-critical timings, if it sent them, are the cluster's (or, before
// the cluster recorded any, this node's). A node that differs is refused
// with an error wrapping metadata.ErrTimingsDiffer, naming the setting.
func (n *Node) Admit(ctx context.Context, info metadata.NodeInfo, timings *metadata.Timings) error {
	if timings != nil {
		cluster, ok := n.ClusterTimings()
		if !ok {
			cluster = n.Timings()
		}
		if err := timings.Check(cluster); err != nil {
			return fmt.Errorf("node %d refused: %w", info.ID, err)
		}
	}
	return n.AddNode(ctx, info)
}
