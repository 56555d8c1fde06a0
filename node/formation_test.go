package node_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

var allRegions = []string{"ap-southeast", "eu-west", "us-east"}

// TestFormationWithLateMember: an initial member that has not started yet
// still counts: the cluster's regions include its region from the start,
// keyspaces created meanwhile wait for it instead of leaving its region
// out, and a short placement wait fails naming the region and the node.
func TestFormationWithLateMember(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Held: []uint64{3}}) // ap-southeast's only node
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	east := c.Node(1)
	// Node 2 joins on its own; wait for that (under load it can take a
	// moment) so that node 3 is the only one missing.
	var st node.ClusterStatus
	testutil.Eventually(t, 20*time.Second, "node 2 to join", func() bool {
		st = east.Status(ctx)
		return slices.Equal(st.NotJoined, []uint64{3})
	})
	if !slices.Equal(st.Regions, allRegions) || !slices.Equal(st.InitialMembers, []uint64{1, 2, 3}) || !slices.Equal(st.NotJoined, []uint64{3}) {
		t.Fatalf("status before node 3 starts: regions %v, initial %v, not joined %v", st.Regions, st.InitialMembers, st.NotJoined)
	}
	if r := east.ClusterReadiness(ctx); r.Ready || len(r.Members) != 3 || r.Members[2].Ready || !strings.Contains(strings.Join(r.Members[2].Reasons, ";"), "has not joined") {
		t.Fatalf("readiness before node 3 starts: %+v", r)
	}

	// Keyspaces of every strategy, created at once, all regions by default.
	type result struct {
		ks  *metadata.Keyspace
		err error
	}
	strategies := []metadata.Strategy{metadata.Sync, metadata.Async, metadata.Active}
	results := make([]chan result, len(strategies))
	for i, s := range strategies {
		results[i] = make(chan result, 1)
		go func() {
			ks, err := east.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: string(s), Strategy: s, Shards: 2})
			results[i] <- result{ks, err}
		}()
	}
	// A short wait fails, naming the region and its node; nothing is created.
	start := time.Now()
	_, err := east.CreateKeyspaceWait(ctx, metadata.KeyspaceSpec{Name: "short", Strategy: metadata.Async}, 300*time.Millisecond)
	if !errors.Is(err, node.ErrRegionUnavailable) || !strings.Contains(err.Error(), "ap-southeast") || !strings.Contains(err.Error(), "node 3 has not joined") {
		t.Fatalf("create with a region that has no live node: %v", err)
	}
	t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	// An explicit unknown region is refused at once, named.
	if _, err := east.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: "mars", Regions: []string{"us-east", "mars"}}); !errors.Is(err, metadata.ErrInvalidSpec) || !strings.Contains(err.Error(), `"mars"`) {
		t.Fatalf("unknown region: %v", err)
	}
	// A keyspace that does not need ap-southeast does not wait.
	if ks, err := east.CreateKeyspaceWait(ctx, metadata.KeyspaceSpec{Name: "two", Strategy: metadata.Async, Regions: []string{"us-east", "eu-west"}}, 0); err != nil || len(ks.Regions) != 2 {
		t.Fatalf("keyspace without the late region: %v %v", ks, err)
	}
	for i, s := range strategies {
		select {
		case r := <-results[i]:
			t.Fatalf("%s keyspace created before ap-southeast had a live node: %+v %v", s, r.ks, r.err)
		default:
		}
	}
	for _, s := range strategies {
		if east.Metadata().Keyspaces[string(s)] != nil {
			t.Fatalf("%s keyspace recorded before ap-southeast had a live node", s)
		}
	}
	c.Restart(3)
	for i, s := range strategies {
		r := <-results[i]
		if r.err != nil {
			t.Fatalf("%s: %v", s, r.err)
		}
		got := slices.Clone(r.ks.Regions)
		slices.Sort(got)
		if !slices.Equal(got, allRegions) {
			t.Fatalf("%s keyspace spans %v, want every region", s, r.ks.Regions)
		}
		for _, sh := range r.ks.Shards {
			placed := sh.Replicas
			if s != metadata.Sync {
				rg, ok := sh.RegionalIn("ap-southeast")
				if !ok {
					t.Fatalf("%s shard %d has no group in ap-southeast", s, sh.Index)
				}
				placed = rg.Replicas
			}
			if !slices.Contains(placed, 3) {
				t.Fatalf("%s shard %d: node 3 holds no replica (%+v)", s, sh.Index, sh)
			}
		}
	}
	for _, n := range c.Running() {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r := east.ClusterReadiness(ctx); !r.Ready {
		t.Fatalf("cluster readiness after node 3 started: %+v", r)
	}
	if st := east.Status(ctx); len(st.NotJoined) != 0 || len(st.UnderReplicated) != 0 {
		t.Fatalf("status after node 3 started: not joined %v, under-replicated %+v", st.NotJoined, st.UnderReplicated)
	}
}

// TestUnderReplicatedAndReadiness: a keyspace whose region loses its
// nodes is reported under-replicated (status, a warning in the log) and
// recovers when a node returns; placement in that region waits and then
// fails naming the node; a node cut off from the metadata is not ready
// until it has caught up.
func TestUnderReplicatedAndReadiness(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := testcluster.New(t, testcluster.Options{HealthCheckInterval: 50 * time.Millisecond, Logger: logger})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "w", Strategy: metadata.Active, Shards: 2})
	east := c.Node(1)
	health := func() node.KeyspaceHealth {
		for _, h := range east.Membership().Keyspaces {
			if h.Keyspace == "w" {
				return h
			}
		}
		t.Fatal("keyspace w missing from the membership report")
		return node.KeyspaceHealth{}
	}
	if h := health(); h.UnderReplicated || h.ReplicasPlaced != 6 {
		t.Fatalf("healthy keyspace reported %+v", h)
	}

	c.Kill(3) // ap-southeast loses every node
	if err := c.WaitFor(ctx, func() bool { return health().UnderReplicated }); err != nil {
		t.Fatal("the keyspace never showed as under-replicated")
	}
	h := health()
	if !slices.Equal(h.RegionsDown, []string{"ap-southeast"}) || h.ReplicasDown != 2 || len(h.Problems) != 2 {
		t.Fatalf("under-replicated keyspace reported %+v", h)
	}
	st := east.Status(ctx)
	if !slices.Equal(st.Unreachable, []uint64{3}) || len(st.UnderReplicated) != 1 || st.UnderReplicated[0].Keyspace != "w" {
		t.Fatalf("status: unreachable %v, under-replicated %+v", st.Unreachable, st.UnderReplicated)
	}
	if err := c.WaitFor(ctx, func() bool {
		return strings.Contains(logs.String(), "keyspace under-replicated") && strings.Contains(logs.String(), "keyspace=w")
	}); err != nil {
		t.Fatal("no warning logged for the under-replicated keyspace")
	}
	r := east.ClusterReadiness(ctx)
	if r.Ready || r.Members[2].Ready || !strings.Contains(strings.Join(r.Members[2].Reasons, ";"), "unreachable") {
		t.Fatalf("readiness with node 3 down: %+v", r)
	}
	_, err := east.CreateKeyspaceWait(ctx, metadata.KeyspaceSpec{Name: "x", Strategy: metadata.Sync}, 200*time.Millisecond)
	if !errors.Is(err, node.ErrRegionUnavailable) || !strings.Contains(err.Error(), "node 3 unreachable") {
		t.Fatalf("create with ap-southeast down: %v", err)
	}

	c.Restart(3)
	if err := c.WaitFor(ctx, func() bool { return !health().UnderReplicated }); err != nil {
		t.Fatalf("the keyspace stayed under-replicated after node 3 returned: %+v", health())
	}
	if err := c.WaitFor(ctx, func() bool { return strings.Contains(logs.String(), "keyspace back at its replication goal") }); err != nil {
		t.Fatal("no notice logged when the keyspace was repaired")
	}

	// Node 2 cut off: the metadata moves on without it, and it is not
	// ready (it cannot confirm it has the latest change) until it has
	// caught up.
	eu := c.Node(2)
	if err := eu.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c.Net.Isolate(2)
	if _, err := east.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: "later", Strategy: metadata.Async, Regions: []string{"us-east", "ap-southeast"}}); err != nil {
		t.Fatal(err)
	}
	var rd node.Readiness
	if err := c.WaitFor(ctx, func() bool { rd = eu.Ready(ctx); return !rd.Ready }); err != nil {
		t.Fatal("a node cut off from the metadata stayed ready")
	}
	if !strings.Contains(strings.Join(rd.Reasons, ";"), "not caught up with the metadata") {
		t.Fatalf("readiness of the cut-off node: %+v", rd)
	}
	c.Heal()
	if err := eu.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if eu.Metadata().Keyspaces["later"] == nil {
		t.Fatal("node 2 said it was ready without the metadata change made while it was cut off")
	}
}
