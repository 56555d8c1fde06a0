package node_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// TestCombinedSets: plain SETs that writers send a sync group's leader at
// once are combined into fewer raft entries than writes; every
// acknowledged one is read back from every replica, including the SETs
// acknowledged while the group's leadership moved to another node half
// way, and SETs with options (never combined) keep their meaning.
func TestCombinedSets(t *testing.T) {
	c, group, ctx := combineCluster(t, "cb")

	const writers, each = 40, 60
	var acked sync.Map
	var writes atomic.Int64
	lead := c.Node(c.Leader(group))
	before := lead.Host().Stats().Proposals
	write := func(prefix string, n *node.Node, moved chan struct{}) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					if i == each/2 && moved != nil {
						<-moved
					}
					k, v := fmt.Sprintf("%s-%d-%d", prefix, w, i), fmt.Sprint(i)
					if _, err := n.Put(ctx, "cb", []byte(k), []byte(v)); err != nil {
						continue // outcome unknown: not counted as acknowledged
					}
					acked.Store(k, v)
					writes.Add(1)
				}
			})
		}
		wg.Wait()
	}
	write("a", lead, nil)
	proposals := lead.Host().Stats().Proposals - before
	t.Logf("%d SETs from %d writers at once took %d proposals", writes.Load(), writers, proposals)
	if writes.Load() != writers*each {
		t.Fatalf("%d of %d SETs acknowledged with a healthy cluster", writes.Load(), writers*each)
	}
	if proposals >= uint64(writes.Load()) {
		t.Fatalf("%d SETs took %d proposals: none were combined", writes.Load(), proposals)
	}

	// Leadership moves half way through the writers' SETs.
	write("b", lead, moveLeader(ctx, t, c, lead, group))

	// SETs with options still mean what they say.
	r, _, err := lead.Write(ctx, "cb", kv.Command{Op: kv.OpSet, Flags: kv.FlagGet, NowMS: lead.NowMS(), Args: [][]byte{[]byte("a-0-0"), []byte("new")}})
	if err != nil || !r.Found || string(r.Value) != "0" {
		t.Fatalf("SET GET: %+v %v, want the old value 0", r, err)
	}
	acked.Store("a-0-0", "new")

	want := map[string]string{}
	acked.Range(func(k, v any) bool {
		want[k.(string)] = v.(string)
		return true
	})
	readBackEverywhere(ctx, t, c, "cb", want)
}

// moveLeader moves the group's leadership from lead to another node, in
// the background; the channel is closed once lead knows the new leader.
func moveLeader(ctx context.Context, t *testing.T, c *testcluster.Cluster, lead *node.Node, group uint64) chan struct{} {
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		to := c.Others(lead.ID())[0]
		if err := lead.Host().TransferLeader(ctx, group, to); err != nil {
			t.Errorf("transfer: %v", err)
		}
		_ = c.WaitFor(ctx, func() bool { return c.Leader(group) == to && lead.Host().Leader(group) == to })
	}()
	return moved
}

// combineCluster starts three nodes with keyspace name of one shard on
// all three, and returns its group and a context for the test.
func combineCluster(t *testing.T, name string) (*testcluster.Cluster, uint64, context.Context) {
	c := testcluster.New(t, testcluster.Options{})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: name, Shards: 1, Replicas: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c, ks.Shards[0].Group, ctx
}

// readBackEverywhere waits until every running node reads every key of
// want in keyspace with its value.
func readBackEverywhere(ctx context.Context, t *testing.T, c *testcluster.Cluster, keyspace string, want map[string]string) {
	t.Helper()
	for _, n := range c.Running() {
		for k, v := range want {
			var got []byte
			var found bool
			err := c.WaitFor(ctx, func() bool {
				var err error
				got, found, _, err = n.Get(ctx, keyspace, []byte(k), node.Eventual)
				return err == nil && found && string(got) == v
			})
			if err != nil {
				t.Fatalf("node %d: %s = %q (found %v), want %q", n.ID(), k, got, found, v)
			}
		}
	}
}

// TestCombinedMSets: plain MSETs (what a pipelined run of SETs becomes)
// from writers at once share proposals too, each stays whole and in order
// (a key it names twice holds its later value), and one larger than a
// batch may hold still applies in full.
func TestCombinedMSets(t *testing.T) {
	c, group, ctx := combineCluster(t, "cm")
	lead := c.Node(c.Leader(group))
	before := lead.Host().Stats().Proposals

	const writers, each = 30, 40
	var wg sync.WaitGroup
	var msets atomic.Int64
	want := map[string]string{}
	var mu sync.Mutex
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Three keys of this writer and i, the last named twice.
				k0, k1, k2 := fmt.Sprintf("m-%d-%d-0", w, i), fmt.Sprintf("m-%d-%d-1", w, i), fmt.Sprintf("m-%d-last", w)
				pairs := [][]byte{[]byte(k0), []byte("a"), []byte(k2), []byte(fmt.Sprint(i, "-early")), []byte(k1), []byte("b"), []byte(k2), []byte(fmt.Sprint(i))}
				if _, err := lead.MSet(ctx, "cm", pairs); err != nil {
					t.Errorf("MSET %d of writer %d: %v", i, w, err)
					return
				}
				msets.Add(1)
				mu.Lock()
				want[k0], want[k1], want[k2] = "a", "b", fmt.Sprint(i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	proposals := lead.Host().Stats().Proposals - before
	t.Logf("%d MSETs from %d writers at once took %d proposals", msets.Load(), writers, proposals)
	if proposals >= uint64(msets.Load()) {
		t.Fatalf("%d MSETs took %d proposals: none were combined", msets.Load(), proposals)
	}

	// Larger than one batch may hold (maxCombined pairs): it goes alone,
	// whole.
	var big [][]byte
	for i := range 300 {
		k := fmt.Sprintf("big-%d", i)
		big = append(big, []byte(k), []byte(fmt.Sprint(i)))
		want[k] = fmt.Sprint(i)
	}
	if _, err := lead.MSet(ctx, "cm", big); err != nil {
		t.Fatalf("MSET of 300 pairs: %v", err)
	}

	readBackEverywhere(ctx, t, c, "cm", want)
}

// TestWriteAsync: writes started without waiting (the RESP event loop's)
// join the batches of writers that wait, each hears its outcome once,
// with its answer's group and index, and every acknowledged one is read
// back everywhere, including those started while the group's leadership
// moved (their node retries them the waiting way). A write the node
// cannot start that way is refused, having done nothing.
func TestWriteAsync(t *testing.T) {
	c, group, ctx := combineCluster(t, "wa")
	lead := c.Node(c.Leader(group))
	set := func(k, v string) kv.Command {
		return kv.Command{Op: kv.OpSet, NowMS: lead.NowMS(), Args: [][]byte{[]byte(k), []byte(v)}}
	}

	type outcome struct {
		key string
		a   node.Answer
		err error
	}
	const writers, each = 20, 40
	start := func(prefix string, n *node.Node, out chan outcome, moved chan struct{}) (started int) {
		for i := range each {
			if i == each/2 && moved != nil {
				<-moved
			}
			for w := range writers {
				k := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				// The arguments are the caller's again at once (as the
				// event loop's reader buffer is).
				cmd := set(k, fmt.Sprint(i))
				if n.WriteAsync("wa", cmd, func(_ kv.Result, a node.Answer, err error) { out <- outcome{k, a, err} }) {
					started++
				}
				copy(cmd.Args[0], "XXXXXXXXXXXX")
			}
		}
		return started
	}
	want := map[string]string{}
	collect := func(out chan outcome, started int) {
		t.Helper()
		for range started {
			select {
			case o := <-out:
				if o.err != nil {
					continue // outcome unknown: not counted as acknowledged
				}
				if o.a.Group != group || o.a.Index == 0 {
					t.Fatalf("%s: answer %+v, want group %d and an index", o.key, o.a, group)
				}
				var w, i int
				if _, err := fmt.Sscanf(o.key[2:], "%d-%d", &w, &i); err != nil {
					t.Fatal(err)
				}
				want[o.key] = fmt.Sprint(i)
			case <-ctx.Done():
				t.Fatal("not every write heard its outcome")
			}
		}
		select {
		case o := <-out:
			t.Fatalf("a second outcome: %+v", o)
		case <-time.After(50 * time.Millisecond):
		}
	}

	out := make(chan outcome, writers*each)
	started := start("a", lead, out, nil)
	if started != writers*each {
		t.Fatalf("the leader started %d of %d plain SETs of a sync keyspace", started, writers*each)
	}
	collect(out, started)
	if len(want) != writers*each {
		t.Fatalf("%d of %d writes acknowledged with a healthy cluster", len(want), writers*each)
	}

	// Leadership moves half way: what the old leader started after the
	// move it refuses (its view may lag: those it starts are retried).
	moved := moveLeader(ctx, t, c, lead, group)
	out = make(chan outcome, writers*each)
	collect(out, start("b", lead, out, moved))

	// Not startable: a follower's, one with options, another strategy's.
	follower := c.Node(c.Others(c.Leader(group))[0])
	if follower.ID() == c.Leader(group) {
		follower = c.Node(c.Others(c.Leader(group))[1])
	}
	never := func(kv.Result, node.Answer, error) { t.Error("a refused write heard an outcome") }
	if follower.WriteAsync("wa", set("f", "1"), never) {
		t.Fatal("a follower started a write")
	}
	newLead := c.Node(c.Leader(group))
	get := set("g", "1")
	get.Flags = kv.FlagGet
	if newLead.WriteAsync("wa", get, never) {
		t.Fatal("SET GET was started without waiting")
	}
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "wa-async", Strategy: metadata.Async, Shards: 1, Replicas: 3})
	for _, n := range c.Running() {
		if n.WriteAsync("wa-async", set("x", "1"), never) {
			t.Fatalf("node %d started a write of an async keyspace", n.ID())
		}
	}
	readBackEverywhere(ctx, t, c, "wa", want)
}
