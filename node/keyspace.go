package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-db/meridian/metadata"
)

const methodRTT = "rtt"

// CreateKeyspace creates a keyspace: it places every shard's replicas,
// records the keyspace in the metadata, and returns once the metadata
// change is committed. The shards' groups then start on their nodes; use
// WaitKeyspaceReady to wait until every shard has a leader.
func (n *Node) CreateKeyspace(ctx context.Context, spec metadata.KeyspaceSpec) (*metadata.Keyspace, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	st := n.meta.State()
	spec, err := spec.Normalize(st.Regions())
	if err != nil {
		return nil, err
	}
	if st.Keyspaces[spec.Name] != nil {
		return nil, fmt.Errorf("%w: %q", metadata.ErrKeyspaceExists, spec.Name)
	}
	nodes := make([]metadata.NodeInfo, 0, len(st.Nodes))
	for _, ni := range st.Nodes {
		nodes = append(nodes, ni)
	}
	rtt := n.regionRTT(ctx, spec.HomeRegion)
	ks := &metadata.Keyspace{KeyspaceSpec: spec}
	for i := range spec.Shards {
		if spec.Strategy == metadata.Async || spec.Strategy == metadata.Active {
			// A region-local group in every region; the home region's is
			// the primary.
			sh := metadata.Shard{Index: i}
			for _, r := range spec.Regions {
				voters, err := metadata.PlaceRegional(r, nodes, i)
				if err != nil {
					return nil, err
				}
				sh.Regional = append(sh.Regional, metadata.RegionalGroup{Region: r, Replicas: voters})
				if r == spec.HomeRegion {
					sh.Replicas = voters
				}
			}
			ks.Shards = append(ks.Shards, sh)
			continue
		}
		voters, err := metadata.PlaceSync(spec, nodes, rtt, i)
		if err != nil {
			return nil, err
		}
		ks.Shards = append(ks.Shards, metadata.Shard{Index: i, Replicas: voters})
	}
	cmd := metadata.Command{Op: "create_keyspace", Keyspace: ks}
	p, err := n.propose(ctx, metadata.SystemGroup, cmd.Encode())
	if err != nil {
		return nil, err
	}
	res, _ := p.value.(metadata.ApplyResult)
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Keyspace, nil
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
			out, err := n.tr.Call(ctx, ni.ID, methodRTT, nil)
			if err != nil {
				continue
			}
			var remote map[uint64]time.Duration
			if json.Unmarshal(out, &remote) == nil {
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
