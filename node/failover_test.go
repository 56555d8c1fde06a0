package node_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// writer writes unique keys through one node until stopped and remembers
// what was acknowledged.
type writer struct {
	n      *node.Node
	ks     string
	prefix string

	mu      sync.Mutex
	acked   map[string]string
	failed  int
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

func startWriter(n *node.Node, ks, prefix string) *writer {
	w := &writer{n: n, ks: ks, prefix: prefix, acked: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			k, v := fmt.Sprintf("%s%d", w.prefix, i), fmt.Sprintf("v%d-%d", i, time.Now().UnixNano())
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := w.n.Put(ctx, w.ks, []byte(k), []byte(v))
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked[k] = v
			} else {
				w.failed++
				w.lastErr = err
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writer) finish() map[string]string {
	close(w.stop)
	<-w.done
	return w.acked
}

// waitWrites waits until a writer has n more acknowledged writes.
func waitWrites(t *testing.T, c *testcluster.Cluster, ctx context.Context, w *writer, more int) {
	t.Helper()
	target := w.count() + more
	if err := c.WaitFor(ctx, func() bool { return w.count() >= target }); err != nil {
		t.Fatalf("writer %s stuck at %d acknowledged writes (%d failed)", w.prefix, w.count(), w.failed)
	}
}

// converged waits until every running node's eventual read of every key
// gives the expected value.
func converged(t *testing.T, c *testcluster.Cluster, ctx context.Context, ks string, want map[string]string) time.Duration {
	t.Helper()
	start := time.Now()
	for _, n := range c.Running() {
		var bad string
		if err := c.WaitFor(ctx, func() bool {
			for k, v := range want {
				got, ok, _, err := n.Get(ctx, ks, []byte(k), node.Eventual)
				if err != nil || !ok || string(got) != v {
					bad = fmt.Sprintf("%s = %q %v %v, want %q", k, got, ok, err, v)
					return false
				}
			}
			return true
		}); err != nil {
			for _, m := range c.Running() {
				t.Logf("node %d streams %+v", m.ID(), m.Streams())
			}
			t.Fatalf("region %s never converged: %s", n.Region(), bad)
		}
	}
	return time.Since(start)
}

func TestSwitchoverUnderWrites(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	eu := c.Node(c.InRegion("eu-west")[0])
	asia := c.Node(c.InRegion("ap-southeast")[0])

	// Bad input first: a region that is not the keyspace's, the primary
	// itself, a failover while the primary answers.
	if _, err := eu.Switchover(ctx, "a", "mars"); !errors.Is(err, metadata.ErrInvalidSpec) {
		t.Fatalf("switchover to an unknown region: %v", err)
	}
	if _, err := eu.Switchover(ctx, "a", "us-east"); !errors.Is(err, metadata.ErrInvalidSpec) {
		t.Fatalf("switchover to the primary itself: %v", err)
	}
	if _, err := eu.Failover(ctx, "a", "eu-west", false); !errors.Is(err, node.ErrPrimaryHealthy) {
		t.Fatalf("failover with a healthy primary: %v", err)
	}

	writers := []*writer{startWriter(east, "a", "e"), startWriter(eu, "a", "u"), startWriter(asia, "a", "s")}
	for _, w := range writers {
		waitWrites(t, c, ctx, w, 20)
	}
	res, err := asia.Switchover(ctx, "a", "eu-west")
	if err != nil {
		t.Fatalf("switchover: %v", err)
	}
	t.Logf("FIGURES: switchover us-east -> eu-west under writes from 3 regions: writes paused %.1f ms (drain %.1f ms), resynced %v", res.FencedMS, res.DrainMS, res.Resynced)
	for _, w := range writers {
		waitWrites(t, c, ctx, w, 20)
	}
	t.Logf("writes resumed after the switchover")
	want := map[string]string{}
	failed := 0
	for _, w := range writers {
		for k, v := range w.finish() {
			want[k] = v
		}
		failed += w.failed
		if w.lastErr != nil {
			t.Logf("writer %s: last error %v", w.prefix, w.lastErr)
		}
	}
	ks := eu.Metadata().Keyspaces["a"]
	if ks.HomeRegion != "eu-west" || ks.Epoch != 2 {
		t.Fatalf("after the switchover: home %s epoch %d", ks.HomeRegion, ks.Epoch)
	}
	// Every acknowledged write is at the new primary (strong reads)...
	for k, v := range want {
		got, ok, _, err := eu.Get(ctx, "a", []byte(k), node.Strong)
		if err != nil || !ok || string(got) != v {
			t.Fatalf("acknowledged write %s=%s lost: got %q %v %v", k, v, got, ok, err)
		}
	}
	// ... and everywhere else.
	took := converged(t, c, ctx, "a", want)
	t.Logf("FIGURES: %d acknowledged writes, %d failed (refused while fenced, or timed out), 0 lost; all regions converged %v after", len(want), failed, took.Round(time.Millisecond))
	// The regions that drained were told where the new primary's stream
	// starts for them: nothing was resynced.
	for _, n := range c.Running() {
		for _, s := range n.Streams() {
			if s.FromRegion == "eu-west" && s.Resyncs != 0 {
				t.Errorf("stream to %s (shard %d) was resynced %d times after a clean switchover", s.ToRegion, s.Shard, s.Resyncs)
			}
		}
	}
	// A write through the old primary's region goes to the new primary.
	if _, err := east.Put(ctx, "a", []byte("after"), []byte("x")); err != nil {
		t.Fatalf("put after the switchover: %v", err)
	}
}

func TestFailoverReportsLostWrites(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	eu := c.Node(c.InRegion("eu-west")[0])

	old := startWriter(east, "a", "e")
	waitWrites(t, c, ctx, old, 30)
	// Wait until the other regions have what was written so far, so that
	// the cut leaves some writes shipped and some not.
	old.mu.Lock()
	shipped := maps.Clone(old.acked)
	old.mu.Unlock()
	converged(t, c, ctx, "a", shipped)
	// The primary region goes dark mid-write; it keeps acknowledging
	// writes that can no longer reach anyone.
	c.Net.CutRegion("us-east")
	waitWrites(t, c, ctx, old, 30)
	start := time.Now()
	var res node.FailoverResult
	if err := c.WaitFor(ctx, func() bool {
		var err error
		res, err = eu.Failover(ctx, "a", "eu-west", false)
		if err != nil && !errors.Is(err, node.ErrPrimaryHealthy) {
			t.Fatalf("failover: %v", err)
		}
		return err == nil
	}); err != nil {
		t.Fatal("failover refused until the end")
	}
	t.Logf("FIGURES: failover took %.1f ms to the new epoch, %.1f ms until the new primary took writes (%v after the region was cut, including noticing it); forks %+v",
		res.TookMS, res.ServingMS, time.Since(start).Round(time.Millisecond), res.Forks)
	fresh := startWriter(eu, "a", "n")
	waitWrites(t, c, ctx, fresh, 30)
	oldAcked := old.finish()
	c.Heal()
	// The old primary comes back, reports, and becomes a replica.
	var lost []metadata.LostWrite
	if err := c.WaitFor(ctx, func() bool {
		rep, err := eu.LostWrites("a")
		if err != nil || len(rep.Forks) == 0 {
			return false
		}
		for _, f := range rep.Forks {
			if !f.Reported {
				return false
			}
		}
		lost = rep.Writes
		return true
	}); err != nil {
		t.Fatal("the old primary never reported its lost writes")
	}
	waitWrites(t, c, ctx, fresh, 20)
	newAcked := fresh.finish()
	inLost := map[string]metadata.LostWrite{}
	for _, l := range lost {
		inLost[string(l.Key)] = l
	}
	kept, reported := 0, 0
	for k, v := range oldAcked {
		got, ok, _, err := eu.Get(ctx, "a", []byte(k), node.Strong)
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		l, isLost := inLost[k]
		switch {
		case ok && string(got) == v && isLost:
			t.Fatalf("%s is both at the new primary and in the lost-writes report", k)
		case ok && string(got) == v:
			kept++
		case isLost && len(l.Args) == 1 && string(l.Args[0]) == v && l.Epoch == 1:
			reported++
		default:
			t.Fatalf("acknowledged write %s=%s is neither at the new primary (%q %v) nor in the report", k, v, got, ok)
		}
	}
	if reported == 0 {
		t.Fatal("writes acknowledged by a cut-off primary, yet none reported lost")
	}
	t.Logf("FIGURES: old primary acknowledged %d writes: %d reached the new primary, %d reported lost, 0 missing", len(oldAcked), kept, reported)
	// Every region, the old primary included, converges on the new
	// primary's data: the old primary's lost writes are gone from it.
	want := map[string]string{}
	for k, v := range newAcked {
		want[k] = v
	}
	for k, v := range oldAcked {
		if _, isLost := inLost[k]; !isLost {
			want[k] = v
		}
	}
	took := converged(t, c, ctx, "a", want)
	for k := range inLost {
		if _, ok, _, _ := east.Get(ctx, "a", []byte(k), node.Eventual); ok {
			t.Fatalf("lost write %s still visible in the old primary", k)
		}
	}
	t.Logf("FIGURES: all regions converged %v after the old primary's report", took.Round(time.Millisecond))
}

func TestAddRegionUnderWrites(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, HomeRegion: "us-east", Regions: []string{"us-east", "eu-west"}, Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	asia := c.Node(c.InRegion("ap-southeast")[0])
	if _, err := east.AlterKeyspace(ctx, "a", "mars", ""); !errors.Is(err, metadata.ErrInvalidSpec) {
		t.Fatalf("adding an unknown region: %v", err)
	}
	if _, err := east.AlterKeyspace(ctx, "a", "", "us-east"); !errors.Is(err, metadata.ErrInvalidSpec) {
		t.Fatalf("removing the primary region: %v", err)
	}
	w := startWriter(east, "a", "k")
	waitWrites(t, c, ctx, w, 300)
	start := time.Now()
	ks, err := asia.AlterKeyspace(ctx, "a", "ap-southeast", "")
	if err != nil {
		t.Fatalf("add region: %v", err)
	}
	if len(ks.Regions) != 3 {
		t.Fatalf("regions after adding: %v", ks.Regions)
	}
	waitWrites(t, c, ctx, w, 30)
	want := w.finish()
	took := converged(t, c, ctx, "a", want)
	resyncs := uint64(0)
	for _, n := range c.Running() {
		for _, s := range n.Streams() {
			if s.ToRegion == "ap-southeast" {
				resyncs += s.Resyncs
			}
		}
	}
	if resyncs == 0 {
		_, ok, a, err := asia.Get(ctx, "a", []byte("k1"), node.Eventual)
		t.Logf("asia k1: %v %+v %v", ok, a, err)
		for _, n := range c.Running() {
			t.Logf("node %d streams %+v", n.ID(), n.Streams())
		}
		t.Fatal("the new region was not seeded by a resync")
	}
	t.Logf("FIGURES: ap-southeast added under writes: %d keys converged %v after the writes stopped (%v after the alter)", len(want), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// It then follows the stream.
	if _, err := east.Put(ctx, "a", []byte("late"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	converged(t, c, ctx, "a", map[string]string{"late": "x"})
	// And can be removed again: its groups are deleted.
	if _, err := east.AlterKeyspace(ctx, "a", "", "ap-southeast"); err != nil {
		t.Fatalf("remove region: %v", err)
	}
	if err := c.WaitFor(ctx, func() bool {
		for _, sh := range ks.Shards {
			if rg, ok := sh.RegionalIn("ap-southeast"); ok {
				if _, hosted := asia.Host().Status(rg.Group); hosted {
					return false
				}
			}
		}
		return true
	}); err != nil {
		t.Fatal("the removed region's groups were never deleted")
	}
}

// TestCutOffRegionCatchesUp cuts a replica region off while writes go on
// (with logs compacted often): the source keeps the backlog in its log on
// disk, holds no more than its in-flight window in memory, and the region
// catches up from the log after the heal, without a resync. With an RPO
// budget, writes are first slowed and then refused, naming the region.
func TestCutOffRegionCatchesUp(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2), CompactAfterEntries: 100})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 1})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "rpo", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 1, RPOBudgetMS: 400})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	w := startWriter(east, "a", "k")
	waitWrites(t, c, ctx, w, 50)
	// Every region was seeded (the streams' first resync is over) before
	// the cut: what follows must come from the log.
	if err := c.WaitFor(ctx, func() bool {
		seeded := 0
		for _, s := range east.Streams() {
			if s.Acked > 0 && !s.Resyncing {
				seeded++
			}
		}
		return seeded == 4
	}); err != nil {
		t.Fatalf("the regions were never seeded: %+v", east.Streams())
	}
	c.Net.CutRegion("ap-southeast")
	waitWrites(t, c, ctx, w, 600) // several compaction rounds' worth
	// The RPO keyspace refuses writes once ap-southeast lags beyond its
	// budget, and says which region is to blame.
	var rpoErr error
	if err := c.WaitFor(ctx, func() bool {
		_, rpoErr = east.Put(ctx, "rpo", []byte("x"), []byte("y"))
		return errors.Is(rpoErr, node.ErrRPOBudget)
	}); err != nil {
		t.Fatalf("writes were never refused for the RPO budget: %v", rpoErr)
	}
	if !strings.Contains(rpoErr.Error(), "ap-southeast") {
		t.Fatalf("the RPO error does not name the lagging region: %v", rpoErr)
	}
	t.Logf("refused: %v", rpoErr)
	var lagging node.StreamStatus
	for _, s := range east.Streams() {
		if s.Keyspace == "a" && s.ToRegion == "ap-southeast" {
			lagging = s
		}
	}
	// The backlog, from the source's applied index (the sender's own view
	// of it is only refreshed when it tries again).
	src, _ := east.Host().Status(east.Metadata().Keyspaces["a"].Shards[0].Group)
	if src.Applied < lagging.Acked+500 {
		t.Fatalf("stream to the cut-off region: source applied %d, %+v", src.Applied, lagging)
	}
	lagging.LagEntries = src.Applied - lagging.Acked
	c.Heal()
	want := w.finish()
	took := converged(t, c, ctx, "a", want)
	for _, s := range east.Streams() {
		if s.Keyspace == "a" && s.ToRegion == "ap-southeast" && s.Resyncs > 1 {
			t.Fatalf("the region was resynced instead of catching up from the log: %+v", s)
		}
	}
	t.Logf("FIGURES: ap-southeast cut off for %d entries caught up %v after the heal, from the source's log", lagging.LagEntries, took.Round(time.Millisecond))
	// Once the region has caught up, writes are accepted again.
	if err := c.WaitFor(ctx, func() bool {
		_, rpoErr = east.Put(ctx, "rpo", []byte("x"), []byte("y"))
		return rpoErr == nil
	}); err != nil {
		t.Fatalf("writes still refused after the heal: %v", rpoErr)
	}
}
