package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/netsim"
)

// clusterJSON is a /v1/cluster answer of a 3-region cluster with a sync
// keyspace led from us-east and an async one whose shard 1 leader the
// answering node does not know (it holds no replica of it).
func clusterJSON(self string, knowsAsyncLeader bool, httpAddrs [3]string) string {
	asyncLeader := `"leader": 0`
	if knowsAsyncLeader {
		asyncLeader = `"leader": 1, "leader_region": "us-east"`
	}
	return fmt.Sprintf(`{
  "node": 1, "region": %q, "regions": ["ap-southeast", "eu-west", "us-east"],
  "nodes": [
    {"id": 2, "region": "eu-west", "addr": "x", "resp_addr": "127.0.0.1:2", "http_addr": %q, "reachable": true},
    {"id": 1, "region": "us-east", "addr": "x", "resp_addr": "127.0.0.1:1", "http_addr": %q, "reachable": true},
    {"id": 3, "region": "ap-southeast", "addr": "x", "resp_addr": "127.0.0.1:3", "http_addr": %q, "reachable": true}
  ],
  "keyspaces": [
    {"name": "async", "strategy": "async", "regions": ["us-east", "eu-west", "ap-southeast"], "home_region": "us-east",
     "shards": [{"index": 0, "group": 104, "replicas": [1], "leader": 1, "leader_region": "us-east"},
                {"index": 1, "group": 105, "replicas": [1], %s}]},
    {"name": "default", "strategy": "sync", "regions": ["us-east", "eu-west", "ap-southeast"], "home_region": "us-east",
     "shards": [{"index": 0, "group": 100, "replicas": [1, 2, 3], "leader": 1, "leader_region": "us-east"},
                {"index": 1, "group": 101, "replicas": [1, 2, 3], "leader": 1, "leader_region": "us-east"}]}
  ],
  "rtt_ms": {}
}`, self, httpAddrs[1], httpAddrs[0], httpAddrs[2], asyncLeader)
}

func TestDiscoverMeridianAndFloors(t *testing.T) {
	var addrs [3]string
	var servers [3]*httptest.Server
	for i := range servers {
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/cluster" {
				http.NotFound(w, r)
				return
			}
			// Node 2 (eu-west) does not know the async leader; node 1 does.
			fmt.Fprint(w, clusterJSON("", i == 0, addrs))
		}))
		defer servers[i].Close()
		addrs[i] = strings.TrimPrefix(servers[i].URL, "http://")
	}
	c, err := DiscoverMeridian(context.Background(), addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 || c.Nodes[0].ID != 1 || c.Nodes[2].ID != 3 {
		t.Fatalf("nodes not sorted by id: %+v", c.Nodes)
	}
	if got := c.NodeRegions(); strings.Join(got, ",") != "us-east,eu-west,ap-southeast" {
		t.Fatalf("regions %v", got)
	}
	if n, ok := c.NodeIn("eu-west"); !ok || n.ID != 2 || n.RESPAddr != "127.0.0.1:2" {
		t.Fatalf("NodeIn: %+v %v", n, ok)
	}
	async := c.Keyspace("async")
	if async == nil || async.Shards[1].Leader != 1 || async.Shards[1].LeaderRegion != "us-east" {
		t.Fatalf("the async leader was not filled in from another node: %+v", async)
	}
	if _, err := c.FindKeyspace("nope"); err == nil || !strings.Contains(err.Error(), "async, default") {
		t.Fatalf("unknown keyspace: %v", err)
	}

	rtt := MatrixRTT(netsim.WorldMatrix())
	ks, _ := c.FindKeyspace("default")
	// In the leader's region: the quorum round trip (us-east <-> eu-west)
	// plus fsync; strong reads are local.
	f, err := MeridianFloors(c, ks, rtt, "us-east", 2*time.Millisecond, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.QuorumRTTMS != 81 || f.ForwardRTTMS != 0 || f.FsyncMS != 2 || f.WriteMS != 83 || f.ReadMS != 0 || f.ReadConsistency != "strong" ||
		f.LeaderRegion != "us-east" || len(f.VoterRegions) != 3 || f.SameFloorShards != 2 || f.Shards != 2 {
		t.Fatalf("floors in us-east: %+v", f)
	}
	// From eu-west: forwarding to the leader adds a round trip, to strong
	// reads too; eventual reads stay local.
	f, err = MeridianFloors(c, ks, rtt, "eu-west", 0, "strong")
	if err != nil || f.WriteMS != 162 || f.ReadMS != 81 {
		t.Fatalf("floors in eu-west: %+v %v", f, err)
	}
	if f, err = MeridianFloors(c, ks, rtt, "eu-west", 0, "eventual"); err != nil || f.ReadMS != 0 {
		t.Fatalf("eventual floors in eu-west: %+v %v", f, err)
	}
	// A keyspace whose default level is not strong reads locally.
	ev := *ks
	ev.Consistency = "eventual"
	if f, err = MeridianFloors(c, &ev, rtt, "eu-west", 0, ""); err != nil || f.ReadMS != 0 || f.ReadConsistency != "eventual" || f.WriteMS != 162 {
		t.Fatalf("floors of an eventual keyspace in eu-west: %+v %v", f, err)
	}
	// An active keyspace commits in the client's region.
	act := *ks
	act.Strategy = "active"
	if f, err = MeridianFloors(c, &act, rtt, "eu-west", time.Millisecond, ""); err != nil || f.WriteMS != 1 || f.ReadConsistency != "session" {
		t.Fatalf("floors of an active keyspace: %+v %v", f, err)
	}
	// The async keyspace commits in its home region.
	f, err = MeridianFloors(c, async, rtt, "us-east", time.Millisecond, "")
	if err != nil || f.QuorumRTTMS != 0 || f.WriteMS != 1 {
		t.Fatalf("async floors: %+v %v", f, err)
	}

	// Apply sets writes, read-modify-writes and (non-zero) reads.
	tgt := &memTarget{store: newMemStore()}
	rep, err := Run(context.Background(), tgt, opsParams(WorkloadF, 500), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, _ = MeridianFloors(c, ks, rtt, "eu-west", 0, "")
	f.Apply(rep)
	if rep.Floors != f || rep.Load.FloorMS != 162 || rep.Op("rmw").FloorMS != 243 || rep.Op("read").FloorMS != 81 || rep.Total.FloorMS != 0 {
		t.Fatalf("applied: load %+v rmw %+v read %+v", rep.Load, rep.Op("rmw"), rep.Op("read"))
	}
	var tab strings.Builder
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"floors:    keyspace default (sync)", "quorum round trip 81.0", "read (strong) = round trip to the leader 81.0 ms", "p99/floor", "floor 162 ms"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tab.String())
		}
	}
}

func TestDiscoverMeridianErrors(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer bad.Close()
	if _, err := DiscoverMeridian(context.Background(), strings.TrimPrefix(bad.URL, "http://")); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("a failing API: %v", err)
	}
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"nodes": []}`) }))
	defer empty.Close()
	if _, err := DiscoverMeridian(context.Background(), strings.TrimPrefix(empty.URL, "http://")); err == nil || !strings.Contains(err.Error(), "no nodes") {
		t.Fatalf("no nodes: %v", err)
	}
	if _, err := MeridianFloors(&MeridianCluster{}, &MeridianKeyspace{Name: "x"}, RTTOf(func(a, b string) time.Duration { return 0 }), "a", 0, ""); err == nil {
		t.Fatal("floors without shards")
	}
}
