package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
)

// Formation and placement: which nodes the cluster has (its initial
// members from the first moment, joined or not), which of them are live,
// and waiting for a live node where a keyspace needs replicas rather than
// placing it on fewer regions than asked.

// ErrRegionUnavailable is returned when a keyspace change would place
// replicas in a region with no live node and none became live within the
// placement wait. Nothing was changed; the message names the regions and
// their nodes.
var ErrRegionUnavailable = errors.New("node: no live node where the keyspace needs replicas")

// clusterNodes returns every member this node knows of, sorted by id: the
// metadata's nodes, joined or not, and the configuration's peers the
// metadata does not record yet (the initial members before init_cluster
// is applied here).
func (n *Node) clusterNodes(st *metadata.State) []metadata.NodeInfo {
	out := make([]metadata.NodeInfo, 0, len(st.Nodes)+len(n.cfg.Peers))
	for _, ni := range st.Nodes {
		out = append(out, ni)
	}
	for _, p := range n.cfg.Peers {
		if _, ok := st.Nodes[p.ID]; !ok {
			out = append(out, metadata.NodeInfo{ID: p.ID, Region: p.Region, Addr: p.Addr})
		}
	}
	slices.SortFunc(out, func(a, b metadata.NodeInfo) int { return cmpID(a.ID, b.ID) })
	return out
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// clusterRegions returns the sorted regions of every member, joined or not.
func (n *Node) clusterRegions(st *metadata.State) []string {
	return metadata.RegionsOf(n.clusterNodes(st))
}

// initialMembers returns the cluster's initial members: as recorded in the
// metadata, or, before that is applied here, this node's own list (a node
// that joined a running cluster has none of its own).
func (n *Node) initialMembers(st *metadata.State) []uint64 {
	if len(st.InitialMembers) > 0 || n.cfg.Join {
		return slices.Clone(st.InitialMembers)
	}
	ids := make([]uint64, 0, len(n.cfg.Peers))
	for _, p := range n.cfg.Peers {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

// live reports whether a node can take replicas now: it has joined and
// this node reaches it (a recent ping answered).
func (n *Node) live(st *metadata.State, id uint64) bool {
	ni, ok := st.Nodes[id]
	if !ok || !ni.Joined {
		return false
	}
	return id == n.cfg.ID || n.tr.Healthy(id)
}

// liveNodes returns the live nodes, sorted by id.
func (n *Node) liveNodes(st *metadata.State) []metadata.NodeInfo {
	var out []metadata.NodeInfo
	for _, ni := range n.clusterNodes(st) {
		if n.live(st, ni.ID) {
			out = append(out, ni)
		}
	}
	return out
}

// nodeState says why a node is not live.
func (n *Node) nodeState(st *metadata.State, id uint64) string {
	ni, ok := st.Nodes[id]
	switch {
	case !ok || !ni.Joined:
		return "has not joined"
	case n.live(st, id):
		return "live"
	}
	return "unreachable"
}

// describeDown names, region by region, the nodes of regions that are not
// live: "ap-southeast: node 5 unreachable, node 6 has not joined".
func (n *Node) describeDown(st *metadata.State, regions []string) string {
	var parts []string
	for _, r := range regions {
		var ns []string
		for _, ni := range n.clusterNodes(st) {
			if ni.Region == r && !n.live(st, ni.ID) {
				ns = append(ns, fmt.Sprintf("node %d %s", ni.ID, n.nodeState(st, ni.ID)))
			}
		}
		if len(ns) > 0 {
			parts = append(parts, r+": "+strings.Join(ns, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// awaitPlacement calls place with the live nodes until it succeeds, for
// at most wait: while a region of regions has no live node, or place
// fails with metadata.ErrPlacement (too few live nodes), it waits for
// nodes to join or become reachable. Any other error of place is returned
// at once. When the wait ends it returns ErrRegionUnavailable naming the
// regions without a live node and their nodes.
func (n *Node) awaitPlacement(ctx context.Context, wait time.Duration, what string, regions []string, place func(live []metadata.NodeInfo) error) error {
	deadline := time.Now().Add(wait)
	logged := false
	for {
		changed := n.meta.Changed()
		st := n.meta.State()
		live := n.liveNodes(st)
		missing := metadata.RegionsWithout(regions, live)
		var perr error
		if len(missing) == 0 {
			perr = place(live)
			if perr == nil {
				return nil
			}
			if !errors.Is(perr, metadata.ErrPlacement) {
				return perr
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			if len(missing) > 0 {
				return fmt.Errorf("%w: %s: waited %v for a live node in region(s) %s (%s)", ErrRegionUnavailable, what, wait,
					strings.Join(missing, ", "), n.describeDown(st, missing))
			}
			return fmt.Errorf("%w: %s: waited %v: %w (not live: %s)", ErrRegionUnavailable, what, wait, perr, n.describeDown(st, regions))
		}
		if !logged {
			logged = true
			n.log.Info("waiting for live nodes to place replicas", "what", what, "regions_without_live_node", missing,
				"not_live", n.describeDown(st, regions), "wait", wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w (not live: %s)", ErrRegionUnavailable, what, ctx.Err(), n.describeDown(st, regions))
		case <-n.stop:
			return raftgroup.ErrStopped
		case <-changed:
		case <-time.After(min(remaining, 100*time.Millisecond)):
		}
	}
}

// --- readiness ---

// readyTimeout bounds how long a readiness check waits for the metadata
// group's leader.
const readyTimeout = 2 * time.Second

// Readiness says whether a node is ready to serve: it has joined, it has
// caught up with the metadata, and every replica the metadata places on it
// exists. Reasons says what is missing otherwise.
type Readiness struct {
	Node    uint64   `json:"node"`
	Region  string   `json:"region"`
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
	// MetadataApplied is the metadata log index this node has applied.
	MetadataApplied uint64 `json:"metadata_applied"`
	// Replicas counts the groups the metadata places on this node, Hosted
	// those of them that exist here.
	Replicas int `json:"replicas"`
	Hosted   int `json:"hosted"`
}

// Ready checks whether this node is ready. Catching up with the metadata
// is confirmed with the metadata group's leader (a read index: the
// latest committed change, applied here); it waits at most about two
// seconds for it.
func (n *Node) Ready(ctx context.Context) Readiness {
	r := Readiness{Node: n.cfg.ID, Region: n.cfg.Region}
	if err := n.host.Err(); err != nil {
		r.Reasons = append(r.Reasons, fmt.Sprintf("storage failed: %v", err))
	}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	_, err := n.host.ReadIndex(rctx, metadata.SystemGroup)
	cancel()
	if err != nil {
		r.Reasons = append(r.Reasons, fmt.Sprintf("not caught up with the metadata (its leader did not confirm the latest change: %v)", err))
	}
	if gs, ok := n.host.Status(metadata.SystemGroup); ok {
		r.MetadataApplied = gs.Applied
	}
	st := n.meta.State()
	if ni, ok := st.Nodes[n.cfg.ID]; !ok || !ni.Joined {
		r.Reasons = append(r.Reasons, "not registered in the metadata yet")
	}
	var missing []uint64
	for _, g := range n.placedGroups(st) {
		r.Replicas++
		if _, ok := n.host.Status(g); ok {
			r.Hosted++
		} else {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		r.Reasons = append(r.Reasons, fmt.Sprintf("%d of %d replicas placed here not created yet (groups %v)", len(missing), r.Replicas, missing))
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// placedGroups returns the groups the metadata places on this node,
// sorted.
func (n *Node) placedGroups(st *metadata.State) []uint64 {
	var out []uint64
	for _, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			groups := []metadata.RegionalGroup{{Group: sh.Group, Replicas: sh.Replicas}}
			if len(sh.Regional) > 0 {
				groups = sh.Regional
			}
			for _, rg := range groups {
				if slices.Contains(rg.Replicas, n.cfg.ID) && !slices.Contains(st.Retired, rg.Group) && !slices.Contains(out, rg.Group) {
					out = append(out, rg.Group)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// WaitReady waits until this node is ready (see Ready) or ctx ends; then
// it returns the last readiness seen with ctx's error.
func (n *Node) WaitReady(ctx context.Context) error {
	for {
		changed := n.meta.Changed()
		r := n.Ready(ctx)
		if r.Ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d not ready: %s: %w", n.cfg.ID, strings.Join(r.Reasons, "; "), ctx.Err())
		case <-n.stop:
			return raftgroup.ErrStopped
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// MemberReadiness is one member's readiness as the answering node found
// it.
type MemberReadiness struct {
	ID       uint64   `json:"id"`
	Region   string   `json:"region"`
	HTTPAddr string   `json:"http_addr,omitempty"`
	Initial  bool     `json:"initial"`
	Joined   bool     `json:"joined"`
	Ready    bool     `json:"ready"`
	Reasons  []string `json:"reasons,omitempty"`
}

// ClusterReadiness is every member's readiness: the initial members and
// every node recorded in the metadata.
type ClusterReadiness struct {
	// Node is the answering node.
	Node    uint64            `json:"node"`
	Ready   bool              `json:"ready"`
	Members []MemberReadiness `json:"members"`
}

// ClusterReadiness asks every member whether it is ready (this node
// checks itself), concurrently, waiting a few seconds at most.
func (n *Node) ClusterReadiness(ctx context.Context) ClusterReadiness {
	st := n.meta.State()
	initial := n.initialMembers(st)
	nodes := n.clusterNodes(st)
	out := ClusterReadiness{Node: n.cfg.ID, Members: make([]MemberReadiness, len(nodes))}
	cctx, cancel := context.WithTimeout(ctx, readyTimeout+time.Second)
	defer cancel()
	done := make(chan struct{}, len(nodes))
	for i, ni := range nodes {
		m := &out.Members[i]
		*m = MemberReadiness{ID: ni.ID, Region: ni.Region, HTTPAddr: ni.HTTPAddr, Initial: slices.Contains(initial, ni.ID), Joined: ni.Joined}
		go func() {
			defer func() { done <- struct{}{} }()
			var r Readiness
			if ni.ID == n.cfg.ID {
				r = n.Ready(cctx)
			} else {
				resp, err := n.client(ni.ID).Ready(cctx, &nodepb.ReadyRequest{})
				if err == nil {
					r = Readiness{Node: resp.GetNode(), Region: resp.GetRegion(), Ready: resp.GetReady(), Reasons: resp.GetReasons(),
						MetadataApplied: resp.GetMetadataApplied(), Replicas: int(resp.GetReplicas()), Hosted: int(resp.GetHosted())}
				}
				if err != nil {
					if !ni.Joined {
						m.Reasons = []string{"has not joined (not started yet?)"}
					} else {
						m.Reasons = []string{fmt.Sprintf("unreachable from node %d: %v", n.cfg.ID, err)}
					}
					return
				}
			}
			m.Ready, m.Reasons = r.Ready, r.Reasons
		}()
	}
	for range nodes {
		<-done
	}
	out.Ready = len(out.Members) > 0
	for _, m := range out.Members {
		out.Ready = out.Ready && m.Ready
	}
	return out
}

// --- membership and replication goal ---

// KeyspaceHealth says whether a keyspace's replicas are all live (as seen
// from the answering node). A keyspace is under-replicated while any
// replica placed for it is not live; RegionsDown are its regions where
// none of its replicas is.
type KeyspaceHealth struct {
	Keyspace        string   `json:"keyspace"`
	UnderReplicated bool     `json:"under_replicated"`
	ReplicasPlaced  int      `json:"replicas_placed"`
	ReplicasDown    int      `json:"replicas_down"`
	RegionsDown     []string `json:"regions_without_live_replica,omitempty"`
	// Problems describe the groups below their goal, a few at most.
	Problems []string `json:"problems,omitempty"`
}

// maxProblems bounds KeyspaceHealth.Problems.
const maxProblems = 8

// Membership is the cluster's membership as the answering node sees it.
type Membership struct {
	InitialMembers []uint64 `json:"initial_members,omitempty"`
	// NotJoined are recorded nodes that never registered themselves.
	NotJoined []uint64 `json:"not_joined,omitempty"`
	// Unreachable are joined nodes this node does not reach.
	Unreachable []uint64         `json:"unreachable,omitempty"`
	Keyspaces   []KeyspaceHealth `json:"keyspaces,omitempty"`
}

// Membership reports who has not joined, who is unreachable and which
// keyspaces are below their replication goal, without asking any other
// node.
func (n *Node) Membership() Membership {
	st := n.meta.State()
	m := Membership{InitialMembers: n.initialMembers(st)}
	for _, ni := range n.clusterNodes(st) {
		switch n.nodeState(st, ni.ID) {
		case "has not joined":
			m.NotJoined = append(m.NotJoined, ni.ID)
		case "unreachable":
			m.Unreachable = append(m.Unreachable, ni.ID)
		}
	}
	names := make([]string, 0, len(st.Keyspaces))
	for name := range st.Keyspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		m.Keyspaces = append(m.Keyspaces, n.keyspaceHealth(st, st.Keyspaces[name]))
	}
	return m
}

func (n *Node) keyspaceHealth(st *metadata.State, ks *metadata.Keyspace) KeyspaceHealth {
	h := KeyspaceHealth{Keyspace: ks.Name}
	placedIn := map[string]int{} // region -> replicas placed there
	liveIn := map[string]int{}
	more := 0
	for _, sh := range ks.Shards {
		groups := []metadata.RegionalGroup{{Group: sh.Group, Replicas: sh.Replicas}}
		if len(sh.Regional) > 0 {
			groups = sh.Regional
		}
		for _, rg := range groups {
			var down []uint64
			for _, id := range rg.Replicas {
				r := st.Nodes[id].Region
				placedIn[r]++
				h.ReplicasPlaced++
				if n.live(st, id) {
					liveIn[r]++
				} else {
					down = append(down, id)
				}
			}
			if len(down) == 0 {
				continue
			}
			h.ReplicasDown += len(down)
			where := ""
			if rg.Region != "" {
				where = " in " + rg.Region
			}
			if len(h.Problems) < maxProblems {
				h.Problems = append(h.Problems, fmt.Sprintf("shard %d%s (group %d): %d of %d replicas live, not live: nodes %v",
					sh.Index, where, rg.Group, len(rg.Replicas)-len(down), len(rg.Replicas), down))
			} else {
				more++
			}
		}
	}
	if more > 0 {
		h.Problems = append(h.Problems, fmt.Sprintf("and %d more groups", more))
	}
	for _, r := range ks.Regions {
		if placedIn[r] > 0 && liveIn[r] == 0 {
			h.RegionsDown = append(h.RegionsDown, r)
		}
	}
	h.UnderReplicated = h.ReplicasDown > 0
	return h
}

// healthLoop logs a warning, every warnEvery at most, for each keyspace
// below its replication goal, and a notice when it is back at it. A
// keyspace counts as below its goal after two checks in a row, so that a
// node restarting quickly does not raise one.
func (n *Node) healthLoop() {
	defer n.wg.Done()
	every := n.cfg.HealthCheckInterval
	warnEvery := 6 * every
	t := time.NewTicker(every)
	defer t.Stop()
	seen := map[string]int{}
	warned := map[string]time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		m := n.Membership()
		for _, h := range m.Keyspaces {
			if !h.UnderReplicated {
				if _, ok := warned[h.Keyspace]; ok {
					n.log.Info("keyspace back at its replication goal", "keyspace", h.Keyspace, "replicas", h.ReplicasPlaced)
				}
				delete(seen, h.Keyspace)
				delete(warned, h.Keyspace)
				continue
			}
			seen[h.Keyspace]++
			if seen[h.Keyspace] < 2 || time.Since(warned[h.Keyspace]) < warnEvery {
				continue
			}
			warned[h.Keyspace] = time.Now()
			n.log.Warn("keyspace under-replicated", "keyspace", h.Keyspace, "replicas_down", h.ReplicasDown,
				"replicas_placed", h.ReplicasPlaced, "regions_without_live_replica", h.RegionsDown, "problems", strings.Join(h.Problems, "; "))
		}
	}
}
