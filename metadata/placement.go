package metadata

import (
	"fmt"
	"slices"
	"time"
)

// RTTFunc returns the round-trip time between two regions (0 if unknown).
type RTTFunc func(a, b string) time.Duration

// OrderRegions returns regions ordered by preference: home first, then by
// round-trip time from home (ties by name).
func OrderRegions(regions []string, home string, rtt RTTFunc) []string {
	out := slices.Clone(regions)
	slices.SortStableFunc(out, func(a, b string) int {
		switch {
		case a == home && b != home:
			return -1
		case b == home && a != home:
			return 1
		}
		ra, rb := rtt(home, a), rtt(home, b)
		if ra != rb {
			if ra < rb {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return out
}

// PlaceSync chooses the voters of one shard of a sync keyspace: no region
// holds a majority (so losing any one region leaves a quorum), voters fill
// the preferred regions first (home, then the nearest), so that the home
// region plus its nearest neighbour form a quorum. Within a region the
// shard index rotates over the nodes to spread load. The preferred leader
// (a voter in the home region) comes first.
func PlaceSync(spec KeyspaceSpec, nodes []NodeInfo, rtt RTTFunc, shard int) ([]uint64, error) {
	byRegion := map[string][]uint64{}
	for _, n := range nodes {
		byRegion[n.Region] = append(byRegion[n.Region], n.ID)
	}
	for _, ids := range byRegion {
		slices.Sort(ids)
	}
	perRegion := (spec.Replicas - 1) / 2
	if perRegion == 0 {
		perRegion = 1
	}
	var voters []uint64
	regionsUsed := 0
	for _, r := range OrderRegions(spec.Regions, spec.HomeRegion, rtt) {
		ids := byRegion[r]
		take := min(perRegion, len(ids), spec.Replicas-len(voters))
		for j := range take {
			voters = append(voters, ids[(shard+j)%len(ids)])
		}
		if take > 0 {
			regionsUsed++
		}
	}
	if len(voters) < spec.Replicas {
		return nil, fmt.Errorf("%w: %d voters wanted with at most %d per region, but regions %v only hold %d",
			ErrPlacement, spec.Replicas, perRegion, spec.Regions, len(voters))
	}
	if spec.Replicas >= 3 && regionsUsed < 3 {
		return nil, fmt.Errorf("%w: a sync keyspace needs voters in at least 3 regions to survive the loss of one; %v has %d",
			ErrPlacement, spec.Regions, regionsUsed)
	}
	return voters, nil
}

// PlaceRegional chooses the voters of one shard's region-local group in a
// region (async keyspaces): up to three of the region's nodes, rotating
// with the shard index. The first is the preferred leader.
func PlaceRegional(region string, nodes []NodeInfo, shard int) ([]uint64, error) {
	var ids []uint64
	for _, n := range nodes {
		if n.Region == region {
			ids = append(ids, n.ID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: region %q has no nodes", ErrPlacement, region)
	}
	slices.Sort(ids)
	k := min(3, len(ids))
	out := make([]uint64, 0, k)
	for j := range k {
		out = append(out, ids[(shard+j)%len(ids)])
	}
	return out, nil
}
