package metadata

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/storage"
)

// applyAll applies commands one by one, each committed, and returns each
// one's result.
func applyAll(t *testing.T, s *Store, db *storage.DB, cmds ...Command) []ApplyResult {
	t.Helper()
	var out []ApplyResult
	for _, c := range cmds {
		b := db.NewBatch()
		v, err := s.Apply(b, s.State().Index+1, c.Encode())
		if err != nil {
			t.Fatalf("fatal apply error: %v", err)
		}
		res, _ := v.(ApplyResult)
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := s.Applied(s.State().Index+1, false); err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

func openStore(t *testing.T) (*Store, *storage.DB) {
	t.Helper()
	db, err := storage.Open("meta", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

func TestInitClusterRecordsMembersOnce(t *testing.T) {
	s, db := openStore(t)
	members := []NodeInfo{
		{ID: 3, Region: "ap-southeast", Addr: "h3:1"}, {ID: 1, Region: "us-east", Addr: "h1:1"}, {ID: 2, Region: "eu-west", Addr: "h2:1"},
	}
	self := NodeInfo{ID: 1, Region: "us-east", Addr: "h1:1", HTTPAddr: "h1:2", Joined: true}
	res := applyAll(t, s, db,
		// Node 1 registers itself before anyone records the members.
		Command{Op: "add_node", Node: &self},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members}},
		// Another member proposes the same list: nothing changes.
		Command{Op: "init_cluster", Init: &InitCluster{Members: slices.Clone(members[:3])}},
		// A member started with other --peers is refused.
		Command{Op: "init_cluster", Init: &InitCluster{Members: members[:2]}},
		Command{Op: "init_cluster"},
		Command{Op: "init_cluster", Init: &InitCluster{Members: []NodeInfo{{ID: 5, Region: "x"}}}},
	)
	for i, r := range res[:3] {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	if !errors.Is(res[3].Err, ErrMembersDiffer) || !strings.Contains(res[3].Err.Error(), "[1 2 3]") {
		t.Fatalf("differing members: %v, want ErrMembersDiffer naming the recorded ones", res[3].Err)
	}
	if !errors.Is(res[4].Err, ErrBadCommand) || !errors.Is(res[5].Err, ErrBadCommand) {
		t.Fatalf("malformed init_cluster: %v, %v", res[4].Err, res[5].Err)
	}
	st := s.State()
	if !slices.Equal(st.InitialMembers, []uint64{1, 2, 3}) {
		t.Fatalf("initial members %v", st.InitialMembers)
	}
	// Every member's region counts from the start; only node 1 has joined,
	// and what it said about itself is kept.
	if got := st.Regions(); !slices.Equal(got, []string{"ap-southeast", "eu-west", "us-east"}) {
		t.Fatalf("regions %v", got)
	}
	if st.Nodes[1] != self {
		t.Fatalf("node 1 %+v, want its own registration %+v", st.Nodes[1], self)
	}
	if got := st.NotJoined(); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("not joined %v, want [2 3]", got)
	}
	// Node 3 registers itself: joined.
	n3 := NodeInfo{ID: 3, Region: "ap-southeast", Addr: "h3:1", Joined: true}
	applyAll(t, s, db, Command{Op: "add_node", Node: &n3})
	if got := s.State().NotJoined(); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("not joined %v, want [2]", got)
	}
}

// TestInitClusterRecordsTimings: the first init_cluster records the
// lease-critical timings; a member proposing others is refused naming the
// setting and both values; a cluster formed without timings records the
// first it is told.
func TestInitClusterRecordsTimings(t *testing.T) {
	members := []NodeInfo{{ID: 1, Region: "us-east", Addr: "h1:1"}, {ID: 2, Region: "eu-west", Addr: "h2:1"}}
	ours := Timings{TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond, MinElectionTimeout: time.Second}
	slowTick := ours
	slowTick.TickInterval, slowTick.MinElectionTimeout = 20*time.Millisecond, 1200*time.Millisecond
	shortHB := ours
	shortHB.MinHeartbeatInterval, shortHB.MinElectionTimeout = 50*time.Millisecond, 500*time.Millisecond

	s, db := openStore(t)
	res := applyAll(t, s, db,
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &ours}},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &ours}},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &slowTick}},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &shortHB}},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members}}, // an older member: says nothing
	)
	if res[0].Err != nil || res[1].Err != nil || res[4].Err != nil {
		t.Fatalf("init_cluster with the same timings: %v, %v, %v", res[0].Err, res[1].Err, res[4].Err)
	}
	for i, want := range []string{"timings.tick_interval is 20ms on this node but 10ms in the cluster", "timings.min_heartbeat_interval is 50ms on this node but 100ms in the cluster"} {
		if err := res[2+i].Err; !errors.Is(err, ErrTimingsDiffer) || !strings.Contains(err.Error(), want) {
			t.Fatalf("differing timings: %v, want ErrTimingsDiffer saying %q", err, want)
		}
	}
	if got := s.State().Timings; got == nil || *got != ours {
		t.Fatalf("recorded timings %+v, want %+v", got, ours)
	}

	// A cluster formed before timings were recorded takes the first ones.
	s, db = openStore(t)
	applyAll(t, s, db, Command{Op: "init_cluster", Init: &InitCluster{Members: members}})
	if s.State().Timings != nil {
		t.Fatalf("timings recorded from nothing: %+v", s.State().Timings)
	}
	res = applyAll(t, s, db,
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &ours}},
		Command{Op: "init_cluster", Init: &InitCluster{Members: members, Timings: &slowTick}})
	if res[0].Err != nil || !errors.Is(res[1].Err, ErrTimingsDiffer) {
		t.Fatalf("timings recorded late: %v, then %v", res[0].Err, res[1].Err)
	}
	if got := s.State().Timings; got == nil || *got != ours {
		t.Fatalf("timings recorded late %+v, want %+v", got, ours)
	}
	if err := ours.Check(ours); err != nil {
		t.Fatalf("equal timings: %v", err)
	}
}

func TestRegionsWithoutAndPlaceKeyspace(t *testing.T) {
	all := nodes(2, "us-east", "eu-west", "ap-southeast")
	regions := []string{"ap-southeast", "eu-west", "us-east"}
	if got := RegionsOf(all); !slices.Equal(got, regions) {
		t.Fatalf("RegionsOf %v", got)
	}
	// Live: both us-east nodes, one eu-west node, nothing in ap-southeast.
	live := []NodeInfo{all[0], all[1], all[3]}
	if got := RegionsWithout(regions, live); !slices.Equal(got, []string{"ap-southeast"}) {
		t.Fatalf("RegionsWithout %v", got)
	}
	for _, strategy := range []Strategy{Sync, Async, Active} {
		spec, err := KeyspaceSpec{Name: "k", Strategy: strategy, Shards: 3}.Normalize(regions)
		if err != nil {
			t.Fatal(err)
		}
		_, err = PlaceKeyspace(spec, live, worldRTT)
		if !errors.Is(err, ErrPlacement) {
			t.Fatalf("%s without a node in ap-southeast: %v, want ErrPlacement", strategy, err)
		}
		if strategy != Sync && !strings.Contains(err.Error(), "ap-southeast") {
			t.Fatalf("%s: %v does not name the region", strategy, err)
		}
		shards, err := PlaceKeyspace(spec, all, worldRTT)
		if err != nil {
			t.Fatalf("%s on every node: %v", strategy, err)
		}
		if len(shards) != 3 {
			t.Fatalf("%s: %d shards", strategy, len(shards))
		}
		for _, sh := range shards {
			if strategy == Sync {
				if len(sh.Replicas) != 3 || len(sh.Regional) != 0 {
					t.Fatalf("sync shard %+v", sh)
				}
				continue
			}
			// A group in every region, the home region's being the primary.
			var got []string
			for _, rg := range sh.Regional {
				got = append(got, rg.Region)
				if len(rg.Replicas) != 2 {
					t.Fatalf("%s shard %d in %s: replicas %v", strategy, sh.Index, rg.Region, rg.Replicas)
				}
			}
			home, _ := sh.RegionalIn(spec.HomeRegion)
			if !slices.Equal(got, regions) || !slices.Equal(sh.Replicas, home.Replicas) {
				t.Fatalf("%s shard %+v", strategy, sh)
			}
		}
	}
}

func TestNormalizeNamesUnknownRegion(t *testing.T) {
	_, err := KeyspaceSpec{Name: "k", Regions: []string{"us-east", "mars"}}.Normalize([]string{"eu-west", "us-east"})
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), `unknown region "mars"`) || !strings.Contains(err.Error(), "eu-west") {
		t.Fatalf("unknown region: %v", err)
	}
	// Every region by default, home the first of them.
	spec, err := KeyspaceSpec{Name: "k", Strategy: Async}.Normalize([]string{"ap-southeast", "eu-west", "us-east"})
	if err != nil || len(spec.Regions) != 3 || spec.HomeRegion != "ap-southeast" {
		t.Fatalf("defaults: %+v %v", spec, err)
	}
}
