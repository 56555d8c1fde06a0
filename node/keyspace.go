package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
)

// remoteRTTs returns the round trips node id measures to its peers.
func (n *Node) remoteRTTs(ctx context.Context, id uint64) (map[uint64]time.Duration, error) {
	resp, err := n.client(id).RTT(ctx, &nodepb.RTTRequest{})
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]time.Duration, len(resp.GetRttUs()))
	for peer, us := range resp.GetRttUs() {
		out[peer] = time.Duration(us) * time.Microsecond
	}
	return out, nil
}

// CreateKeyspace creates a keyspace: it places every shard's replicas,
// records the keyspace in the metadata, and returns once the metadata
// change is committed. The shards' groups then start on their nodes; use
// WaitKeyspaceReady to wait until every shard has a leader. It waits up to
// Config.PlacementWait for live nodes (see CreateKeyspaceWait).
func (n *Node) CreateKeyspace(ctx context.Context, spec metadata.KeyspaceSpec) (*metadata.Keyspace, error) {
	return n.CreateKeyspaceWait(ctx, spec, n.cfg.PlacementWait)
}

// CreateKeyspaceWait is CreateKeyspace waiting up to wait for a live node
// (joined and reachable) in every region of the keyspace. Regions default
// to every region of the cluster's members, joined or not yet, so a
// keyspace never spans fewer regions than asked: if a region still has no
// live node when the wait ends, it fails with ErrRegionUnavailable naming
// the region and its nodes. Replicas are placed on live nodes only. A
// keyspace the cluster's members could never hold (a sync keyspace over
// two regions, an unknown region) is refused at once.
func (n *Node) CreateKeyspaceWait(ctx context.Context, spec metadata.KeyspaceSpec, wait time.Duration) (*metadata.Keyspace, error) {
	return n.createKeyspace(ctx, spec, wait, nil)
}

// createKeyspace is CreateKeyspaceWait; with restore set, the keyspace is
// created hidden, under a name of its own, for a restore (restore.go).
func (n *Node) createKeyspace(ctx context.Context, spec metadata.KeyspaceSpec, wait time.Duration, restore *metadata.RestoreInfo) (*metadata.Keyspace, error) {
	st := n.meta.State()
	spec, err := spec.Normalize(n.clusterRegions(st))
	if err != nil {
		return nil, err
	}
	if restore != nil {
		spec.Name = hiddenName(restore)
	}
	if st.Keyspaces[spec.Name] != nil {
		return nil, fmt.Errorf("%w: %q", metadata.ErrKeyspaceExists, spec.Name)
	}
	// With every member live, could it be placed at all? If not, waiting
	// would not help.
	noRTT := func(a, b string) time.Duration { return 0 }
	if _, err := metadata.PlaceKeyspace(spec, n.clusterNodes(st), noRTT); err != nil {
		return nil, err
	}
	ks := &metadata.Keyspace{KeyspaceSpec: spec, Restore: restore}
	if err := n.awaitPlacement(ctx, wait, fmt.Sprintf("keyspace %q", spec.Name), spec.Regions, func(live []metadata.NodeInfo) error {
		shards, err := metadata.PlaceKeyspace(spec, live, n.regionRTT(ctx, spec.HomeRegion))
		ks.Shards = shards
		return err
	}); err != nil {
		return nil, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	cmd := metadata.Command{Op: "create_keyspace", Keyspace: ks}
	p, err := n.propose(ctx, metadata.SystemGroup, cmd.Encode())
	if err != nil {
		return nil, err
	}
	res, _ := p.Value.(metadata.ApplyResult)
	if res.Err != nil {
		return nil, res.Err
	}
	if res.Keyspace != nil {
		return res.Keyspace, nil
	}
	// Proposed by another node (the metadata group's leader): read it from
	// this node's metadata once applied up to the change.
	if err := n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.Index }); err != nil {
		return nil, err
	}
	if restore != nil {
		if ks := n.meta.State().Keyspaces[spec.Name]; ks != nil {
			return ks, nil
		}
	}
	return n.meta.Keyspace(spec.Name)
}

// WaitKeyspaceReady waits until every shard of the keyspace has a leader
// known to this node or to the shard's first replica.
func (n *Node) WaitKeyspaceReady(ctx context.Context, name string) error {
	for {
		ks, err := n.meta.Keyspace(name)
		if err == nil {
			ready := true
			for _, sh := range ks.Shards {
				if !slices.Contains(sh.Replicas, n.cfg.ID) {
					continue
				}
				if n.host.Leader(sh.Group) == 0 {
					ready = false
					break
				}
			}
			if ready {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node: keyspace %q not ready: %w", name, ctx.Err())
		case <-n.meta.Changed():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// regionRTT returns the round-trip time between regions as seen from the
// home region: this node's own measurements if it is there, otherwise
// those of a node in the home region (asked over the network).
func (n *Node) regionRTT(ctx context.Context, home string) metadata.RTTFunc {
	st := n.meta.State()
	rtts := n.tr.RTTs()
	if n.cfg.Region != home {
		for _, ni := range st.Nodes {
			if ni.Region != home {
				continue
			}
			if remote, err := n.remoteRTTs(ctx, ni.ID); err == nil {
				rtts = remote
				break
			}
		}
	}
	best := map[string]time.Duration{}
	for id, d := range rtts {
		r := st.Nodes[id].Region
		if cur, ok := best[r]; !ok || d < cur {
			best[r] = d
		}
	}
	return func(a, b string) time.Duration {
		switch {
		case a == b:
			return 0
		case a == home:
			return best[b]
		case b == home:
			return best[a]
		}
		return 0
	}
}

// AlterKeyspace adds a region to an async keyspace (its new groups are
// seeded by a resync from the primary, then follow the stream) or removes
// a replica region (its groups are deleted). Exactly one of add and remove
// is set. An added region's replicas go on its live nodes; it waits up to
// Config.PlacementWait for one (see AlterKeyspaceWait).
func (n *Node) AlterKeyspace(ctx context.Context, keyspace, add, remove string) (*metadata.Keyspace, error) {
	return n.AlterKeyspaceWait(ctx, keyspace, add, remove, n.cfg.PlacementWait)
}

// AlterKeyspaceWait is AlterKeyspace waiting up to wait for a live node in
// the region added; then it fails with ErrRegionUnavailable naming the
// region's nodes. A region no member of the cluster is in is refused at
// once.
func (n *Node) AlterKeyspaceWait(ctx context.Context, keyspace, add, remove string, wait time.Duration) (*metadata.Keyspace, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, err
	}
	if (add == "") == (remove == "") {
		return nil, fmt.Errorf("%w: give exactly one region to add or to remove", metadata.ErrInvalidSpec)
	}
	alter := &metadata.AlterRegions{Keyspace: ks.Name, Add: add, Remove: remove}
	if add != "" {
		st := n.meta.State()
		if regions := n.clusterRegions(st); !slices.Contains(regions, add) {
			return nil, fmt.Errorf("%w: unknown region %q: no member of the cluster is in it (the cluster's regions: %v)", metadata.ErrInvalidSpec, add, regions)
		}
		// What the change itself would refuse, refused before any wait.
		if ks.Strategy != metadata.Async && ks.Strategy != metadata.Active {
			return nil, fmt.Errorf("%w: %q is %s; only async and active keyspaces change regions online", metadata.ErrNotAsync, ks.Name, ks.Strategy)
		}
		if slices.Contains(ks.Regions, add) {
			return nil, fmt.Errorf("%w: keyspace %q already has region %q", metadata.ErrInvalidSpec, ks.Name, add)
		}
		if err := n.awaitPlacement(ctx, wait, fmt.Sprintf("region %s of keyspace %q", add, ks.Name), []string{add}, func(live []metadata.NodeInfo) error {
			alter.AddVoters = alter.AddVoters[:0]
			for i := range ks.Shards {
				voters, err := metadata.PlaceRegional(add, live, i)
				if err != nil {
					return err
				}
				alter.AddVoters = append(alter.AddVoters, voters)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "alter_regions", Alter: alter}.Encode())
	if err != nil {
		return nil, err
	}
	if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
		return nil, res.Err
	}
	if err := n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.Index }); err != nil {
		return nil, err
	}
	return n.meta.Keyspace(keyspace)
}

// waitMeta waits until this node's metadata satisfies ok.
func (n *Node) waitMeta(ctx context.Context, ok func(*metadata.State) bool) error {
	for {
		changed := n.meta.Changed()
		if ok(n.meta.State()) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
