package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// TestActiveConvergence: writers in every region on overlapping keys of
// every type, with a region cut off and healed in the middle; then every
// region holds the same values, counters equal the sum of the acknowledged
// increments, and every acknowledged set add is there.
func TestActiveConvergence(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := c.Running()

	// Bad input first.
	if _, _, _, err := nodes[0].Get(ctx, "a", []byte("x"), node.Strong); !errors.Is(err, node.ErrStrongOnActive) {
		t.Fatalf("strong read on an active keyspace: %v", err)
	}
	if _, _, err := nodes[0].Write(ctx, "a", kv.Command{Op: kv.OpSAdd, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("typed"), []byte("m")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nodes[0].Write(ctx, "a", kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("typed")}}); !errors.Is(err, kv.ErrWrongType) {
		t.Fatalf("INCR on a set: %v", err)
	}

	var mu sync.Mutex
	incr := map[string]int64{}   // acknowledged increments per counter
	members := map[string]bool{} // acknowledged set adds
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				now := time.Now().UnixMilli()
				wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
				var cmd kv.Command
				switch i % 4 {
				case 0:
					cmd = kv.Command{Op: kv.OpSet, NowMS: now, Args: [][]byte{fmt.Appendf(nil, "r%d", i%5), fmt.Appendf(nil, "%s-%d", n.Region(), i)}}
				case 1:
					cmd = kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: now, Args: [][]byte{fmt.Appendf(nil, "c%d", i%3)}}
				case 2:
					cmd = kv.Command{Op: kv.OpSAdd, NowMS: now, Args: [][]byte{[]byte("s"), fmt.Appendf(nil, "%s-%d", n.Region(), i)}}
				case 3:
					cmd = kv.Command{Op: kv.OpHSet, NowMS: now, Args: [][]byte{[]byte("h"), fmt.Appendf(nil, "f%d", i%4), []byte(n.Region())}}
				}
				_, _, err := n.Write(wctx, "a", cmd)
				wcancel()
				if err != nil {
					t.Errorf("write in %s: %v", n.Region(), err) // local writes never need another region
					return
				}
				mu.Lock()
				switch cmd.Op {
				case kv.OpIncrBy:
					incr[string(cmd.Args[0])]++
				case kv.OpSAdd:
					members[string(cmd.Args[1])] = true
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	c.Net.CutRegion("ap-southeast")
	time.Sleep(700 * time.Millisecond)
	c.Heal()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	quiet := time.Now()

	keys := []string{"r0", "r1", "r2", "r3", "r4", "c0", "c1", "c2", "s", "h"}
	read := func(n *node.Node) map[string]string {
		out := map[string]string{}
		for _, k := range keys {
			rec, ok, _, err := n.GetRecord(ctx, "a", []byte(k), node.Eventual)
			if err != nil || !ok {
				out[k] = fmt.Sprintf("<%v %v>", ok, err)
				continue
			}
			switch rec.Type {
			case kv.TypeSet:
				m, _ := kv.DecodeSet(rec.Payload)
				out[k] = fmt.Sprint(len(m))
			case kv.TypeHash:
				f, _ := kv.DecodeHash(rec.Payload)
				out[k] = fmt.Sprint(f)
			default:
				out[k] = string(rec.Payload)
			}
		}
		return out
	}
	var views []map[string]string
	if err := c.WaitFor(ctx, func() bool {
		views = views[:0]
		for _, n := range nodes {
			views = append(views, read(n))
		}
		for _, v := range views[1:] {
			for _, k := range keys {
				if v[k] != views[0][k] {
					return false
				}
			}
		}
		return true
	}); err != nil {
		t.Fatalf("regions never converged: %v", views)
	}
	took := time.Since(quiet)
	for k, want := range incr {
		if got := views[0][k]; got != strconv.FormatInt(want, 10) {
			t.Fatalf("counter %s = %s, want the %d acknowledged increments", k, got, want)
		}
	}
	rec, _, _, err := nodes[2].GetRecord(ctx, "a", []byte("s"), node.Eventual)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := kv.DecodeSet(rec.Payload)
	for m := range members {
		if !slices.ContainsFunc(set, func(b []byte) bool { return string(b) == m }) {
			t.Fatalf("acknowledged add %s missing from the set", m)
		}
	}
	conflicts := uint64(0)
	for _, n := range nodes {
		page, err := n.Conflicts("a", node.ConflictQuery{})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range page.Conflicts {
			if ids[e.ID] {
				t.Fatalf("region %s recorded conflict %s twice", n.Region(), e.ID)
			}
			ids[e.ID] = true
		}
		conflicts += page.Recorded
	}
	if conflicts == 0 {
		t.Fatal("concurrent writes to the same registers from three regions, yet no conflict recorded")
	}
	t.Logf("FIGURES: 3 regions converged %v after the last write (world matrix x0.2, ap-southeast cut for 700 ms); %d acknowledged adds, counters %v, %d conflicts recorded over the regions",
		took.Round(time.Millisecond), len(members), incr, conflicts)
	// Deletes leave tombstones until every region has seen them, then
	// every region collects them.
	for _, k := range []string{"r0", "r1", "s", "h", "c0"} {
		if _, _, err := nodes[1].Write(ctx, "a", kv.Command{Op: kv.OpDelete, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte(k)}}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	if err := c.WaitFor(ctx, func() bool {
		for _, n := range nodes {
			if _, ok, _, err := n.GetRecord(ctx, "a", []byte("r0"), node.Eventual); err != nil || ok {
				return false
			}
			if tomb, err := n.Tombstones("a"); err != nil || tomb != 0 {
				return false
			}
		}
		return true
	}); err != nil {
		for _, n := range nodes {
			tomb, err := n.Tombstones("a")
			t.Logf("%s: %d tombstones %v", n.Region(), tomb, err)
		}
		t.Fatal("tombstones were never collected")
	}
	t.Logf("FIGURES: 5 deleted keys' tombstones collected in every region %v after the deletes (reports every %v, collection every %d reports)",
		time.Since(deleted).Round(time.Millisecond), node.KnowInterval, node.GCEvery)
	if got := read(nodes[0]); got["r2"] != views[0]["r2"] || got["c1"] != views[0]["c1"] {
		t.Fatalf("collection touched live keys: %v vs %v", got, views[0])
	}
	// Session reads see their own writes in other regions.
	_, a, err := nodes[0].Write(ctx, "a", kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("mine"), []byte("1")}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := nodes[0].Session("a", "", a)
	if err != nil {
		t.Fatal(err)
	}
	v, ok, _, err := nodes[2].Get(ctx, "a", []byte("mine"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok})
	if err != nil || !ok || string(v) != "1" {
		t.Fatalf("session read of my write in another region: %q %v %v", v, ok, err)
	}
}

// TestActiveAddRegion: a region added to an active keyspace holding data,
// while both regions keep writing, is seeded by merges (its own writes
// are never replaced) and converges.
func TestActiveAddRegion(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Regions: []string{"us-east", "eu-west"}, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	east, eu, asia := c.Node(c.InRegion("us-east")[0]), c.Node(c.InRegion("eu-west")[0]), c.Node(c.InRegion("ap-southeast")[0])
	incr := func(n *node.Node, k string) {
		t.Helper()
		if _, _, err := n.Write(ctx, "a", kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte(k)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		incr(east, fmt.Sprintf("k%d", i%10))
		incr(eu, fmt.Sprintf("k%d", i%10))
	}
	if _, err := asia.AlterKeyspace(ctx, "a", "ap-southeast", ""); err != nil {
		t.Fatal(err)
	}
	// The new region writes at once, before it has anything from the others.
	if err := c.WaitFor(ctx, func() bool {
		_, _, err := asia.Write(ctx, "a", kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("k0")}})
		return err == nil
	}); err != nil {
		t.Fatal("the new region never took a write")
	}
	for i := range 50 {
		incr(east, fmt.Sprintf("k%d", i%10))
		incr(eu, fmt.Sprintf("k%d", i%10))
	}
	want := map[string]string{}
	for i := range 10 {
		want[fmt.Sprintf("k%d", i)] = "30"
	}
	want["k0"] = "31" // the new region's own increment survives the seeding
	took := converged(t, c, ctx, "a", want)
	t.Logf("FIGURES: ap-southeast added to an active keyspace under writes; all 3 regions converged %v after the last write", took.Round(time.Millisecond))
}
