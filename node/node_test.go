package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
)

func TestWriteReadAcrossRegions(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "users", Shards: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	east, asia := c.Node(c.InRegion("us-east")[0]), c.Node(c.InRegion("ap-southeast")[0])
	for i := range 20 {
		if _, err := east.Put(ctx, "users", fmt.Appendf(nil, "user:%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		v, ok, a, err := asia.Get(ctx, "users", fmt.Appendf(nil, "user:%d", i), node.Strong)
		if err != nil || !ok || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("strong read in ap-southeast: %q %v %v", v, ok, err)
		}
		if a.Region != "ap-southeast" || a.Consistency != "strong" {
			t.Fatalf("answer %+v", a)
		}
	}
	// Eventual reads are served locally and converge.
	if err := c.WaitFor(ctx, func() bool {
		v, ok, _, err := asia.Get(ctx, "users", []byte("user:19"), node.Eventual)
		return err == nil && ok && string(v) == "v19"
	}); err != nil {
		t.Fatal("eventual read never converged")
	}
	if existed, _, err := east.Delete(ctx, "users", []byte("user:0")); err != nil || !existed {
		t.Fatalf("delete: %v %v", existed, err)
	}
	if _, ok, _, err := asia.Get(ctx, "users", []byte("user:0"), node.Strong); err != nil || ok {
		t.Fatalf("deleted key still read: %v %v", ok, err)
	}
}

func TestBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{RequestTimeout: 2 * time.Second})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "k", Shards: 1})
	n := c.Node(1)
	ctx := context.Background()
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"unknown keyspace", metadata.ErrUnknownKeyspace, func() error { _, err := n.Put(ctx, "nope", []byte("a"), []byte("b")); return err }},
		{"empty key", node.ErrEmptyKey, func() error { _, err := n.Put(ctx, "k", nil, []byte("b")); return err }},
		{"key too large", node.ErrKeyTooLarge, func() error { _, err := n.Put(ctx, "k", make([]byte, 17<<10), []byte("b")); return err }},
		{"value too large", node.ErrValueTooLarge, func() error { _, err := n.Put(ctx, "k", []byte("a"), make([]byte, 5<<20)); return err }},
		{"bad level", node.ErrUnknownConsistency, func() error {
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Level(consistency.Requirement{Level: consistency.Bounded}))
			return err
		}},
		{"bad token", node.ErrBadToken, func() error {
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: "garbage"})
			return err
		}},
		{"token of another keyspace", node.ErrBadToken, func() error {
			tok := consistency.NewToken(n.Cluster(), "other").Encode()
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok})
			return err
		}},
		{"token of another cluster", node.ErrBadToken, func() error {
			tok := consistency.NewToken("elsewhere", "k").Encode()
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok})
			return err
		}},
		{"decoded token of another keyspace", node.ErrBadToken, func() error {
			tok := consistency.NewToken(n.Cluster(), "other")
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok.Encode(), Session: &tok})
			return err
		}},
		{"decoded token of another cluster", node.ErrBadToken, func() error {
			tok := consistency.NewToken("elsewhere", "k")
			_, _, _, err := n.Get(ctx, "k", []byte("a"), node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok.Encode(), Session: &tok})
			return err
		}},
		{"keyspace exists", metadata.ErrKeyspaceExists, func() error {
			_, err := n.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: "k"})
			return err
		}},
		{"two regions for sync", metadata.ErrPlacement, func() error {
			_, err := n.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: "k2", Regions: []string{"us-east", "eu-west"}})
			return err
		}},
		{"unknown strategy", metadata.ErrInvalidSpec, func() error {
			_, err := n.CreateKeyspace(ctx, metadata.KeyspaceSpec{Name: "k3", Strategy: "quorum"})
			return err
		}},
	}
	for _, tc := range cases {
		if err := tc.run(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, err := node.ParseConsistency("linearish"); !errors.Is(err, node.ErrUnknownConsistency) {
		t.Errorf("ParseConsistency: %v", err)
	}

	// A group that has lost its quorum answers with a clear error within
	// the request's deadline.
	c.Net.Isolate(1)
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	_, err := n.Put(dctx, "k", []byte("a"), []byte("b"))
	if !errors.Is(err, raftgroup.ErrNoLeader) && !errors.Is(err, raftgroup.ErrTimeout) {
		t.Fatalf("write without quorum: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("write without quorum took %v", el)
	}
}

func TestLeaderReturnsHome(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2), LeaderHysteresis: 500 * time.Millisecond})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "home", Shards: 2, HomeRegion: "eu-west"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inHome := func() bool {
		for _, sh := range ks.Shards {
			l := c.Leader(sh.Group)
			if l == 0 || c.RegionOf(l) != "eu-west" {
				return false
			}
		}
		return true
	}
	if err := c.WaitFor(ctx, inHome); err != nil {
		t.Fatal("leaders never settled in the home region")
	}
	// Cut the home region off: leadership must leave it...
	c.Net.CutRegion("eu-west")
	if err := c.WaitFor(ctx, func() bool {
		for _, sh := range ks.Shards {
			l := c.Leader(sh.Group)
			if l == 0 || c.RegionOf(l) == "eu-west" {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal("no leader elected outside the cut-off home region")
	}
	// ...and come back after the heal, within a bounded time.
	c.Heal()
	healed := time.Now()
	if err := c.WaitFor(ctx, inHome); err != nil {
		t.Fatal("leaders did not return to the home region after the heal")
	}
	t.Logf("FIGURES: leaders back in the home region %v after the heal", time.Since(healed).Round(10*time.Millisecond))
}

func TestCatchUpBySnapshot(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{CompactAfterEntries: 200})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "cu", Shards: 1})
	group := ks.Shards[0].Group
	// Take a follower down (a leader kill is the robustness suite's job).
	down := c.Others(c.Leader(group))[0]
	before, _ := c.Node(down).Host().Status(group)
	c.Kill(down)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	n := c.Node(c.Others(down)[0])
	const writes = 3000
	// Concurrent writers so the run is quick.
	errs := make(chan error, 8)
	for w := range 8 {
		go func() {
			for i := w; i < writes; i += 8 {
				if _, err := n.Put(ctx, "cu", fmt.Appendf(nil, "k%04d", i), []byte(strings.Repeat("x", 100))); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, _ := n.Host().Status(group)
	if st.FirstIndex <= before.Applied+1 {
		t.Fatalf("log not truncated past the down node: first index %d, down node applied %d", st.FirstIndex, before.Applied)
	}
	c.Restart(down)
	// The restarted node re-creates its replicas from the metadata.
	if err := c.WaitFor(ctx, func() bool { _, ok := c.Node(down).Host().Status(group); return ok }); err != nil {
		t.Fatal("the restarted node never re-created its replica")
	}
	idx, err := n.Host().ReadIndex(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(down).Host().WaitApplied(ctx, group, idx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < writes; i += 97 {
		v, ok, _, err := c.Node(down).Get(ctx, "cu", fmt.Appendf(nil, "k%04d", i), node.Eventual)
		if err != nil || !ok || len(v) != 100 {
			t.Fatalf("k%04d on the caught-up node: %v %v", i, ok, err)
		}
	}
}

// TestScanForwardsShardsHeldElsewhere: with two nodes per region each node
// holds only some shards; a scan from any node still sees every key once.
func TestScanForwardsShardsHeldElsewhere(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{NodesPerRegion: 2})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 4})
	partial := false
	for _, id := range c.IDs() {
		for _, sh := range ks.Shards {
			partial = partial || !slices.Contains(sh.Replicas, id)
		}
	}
	if !partial {
		t.Fatal("every node holds every shard: the test would not exercise forwarding")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const keys = 60
	for i := range keys {
		if _, err := c.Node(1).Put(ctx, "s", fmt.Appendf(nil, "key%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Running() {
		seen := map[string]int{}
		cursor := "0"
		forwarded := false
		for {
			page, next, a, err := n.Scan(ctx, "s", cursor, "key*", 7, node.Strong)
			if err != nil {
				t.Fatalf("node %d: scan: %v", n.ID(), err)
			}
			forwarded = forwarded || a.Forwarded
			for _, k := range page {
				seen[string(k)]++
			}
			if next == "0" {
				break
			}
			cursor = next
		}
		if len(seen) != keys {
			t.Fatalf("node %d: scan saw %d distinct keys, want %d", n.ID(), len(seen), keys)
		}
		for k, times := range seen {
			if times != 1 {
				t.Fatalf("node %d: %s returned %d times", n.ID(), k, times)
			}
		}
		size, _, err := n.DBSize(ctx, "s", node.Strong)
		if err != nil || size != keys {
			t.Fatalf("node %d: DBSize %d %v, want %d", n.ID(), size, err, keys)
		}
		holdsAll := true
		for _, sh := range ks.Shards {
			holdsAll = holdsAll && slices.Contains(sh.Replicas, n.ID())
		}
		if !holdsAll && !forwarded {
			t.Fatalf("node %d holds only some shards but its scan was never forwarded", n.ID())
		}
	}
}

// TestAsyncKeyspace: writes commit in the primary region and stream to the
// other regions' own groups, where eventual reads are served locally; a
// write sent to a replica region is forwarded to the primary.
func TestAsyncKeyspace(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	for _, sh := range ks.Shards {
		if len(sh.Regional) != 3 {
			t.Fatalf("shard %d has %d regional groups, want 3", sh.Index, len(sh.Regional))
		}
		for _, rg := range sh.Regional {
			for _, id := range rg.Replicas {
				if c.RegionOf(id) != rg.Region {
					t.Fatalf("group %d of region %s has a replica in %s", rg.Group, rg.Region, c.RegionOf(id))
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	asia := c.Node(c.InRegion("ap-southeast")[0])
	const keys = 40
	for i := range keys {
		w := east
		if i%4 == 3 {
			w = asia // forwarded to the primary
		}
		if _, err := w.Put(ctx, "a", fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("put k%d: %v", i, err)
		}
	}
	start := time.Now()
	for _, n := range c.Running() {
		if err := c.WaitFor(ctx, func() bool {
			for i := range keys {
				v, ok, a, err := n.Get(ctx, "a", fmt.Appendf(nil, "k%d", i), node.Eventual)
				if err != nil || !ok || string(v) != fmt.Sprintf("v%d", i) || a.Region != n.Region() || a.Forwarded {
					return false
				}
			}
			return true
		}); err != nil {
			for _, m := range c.Running() {
				t.Logf("node %d streams %+v", m.ID(), m.Streams())
			}
			t.Fatalf("region %s never converged", n.Region())
		}
	}
	t.Logf("FIGURES: every region converged %v after the last acknowledged write", time.Since(start).Round(time.Millisecond))
	// Strong reads go to the primary region.
	if v, ok, _, err := asia.Get(ctx, "a", []byte("k0"), node.Strong); err != nil || !ok || string(v) != "v0" {
		t.Fatalf("strong read from ap-southeast: %q %v %v", v, ok, err)
	}
	// The leaders of the primary groups report their streams, caught up.
	if err := c.WaitFor(ctx, func() bool {
		var streams []node.StreamStatus
		for _, n := range c.Running() {
			streams = append(streams, n.Streams()...)
		}
		if len(streams) != 4 { // 2 shards x 2 replica regions
			return false
		}
		for _, s := range streams {
			if s.LagEntries != 0 || s.Acked == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal("streams never reported themselves caught up")
	}
}
