package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

func TestFollowerKnowsItsStaleness(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", HomeRegion: "us-east", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	if _, err := east.Put(ctx, "s", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Running() {
		var a node.Answer
		if err := c.WaitFor(ctx, func() bool {
			var err error
			_, _, a, err = n.Get(ctx, "s", []byte("k"), node.Eventual)
			return err == nil && a.StalenessMS >= 0 && a.StalenessMS < 1000
		}); err != nil {
			t.Fatalf("node %d in %s never knew its staleness: %+v", n.ID(), n.Region(), a)
		}
	}
}

// writeLog remembers when each version of a key was acknowledged.
type writeLog struct {
	mu    sync.Mutex
	acked []time.Time // acked[i]: version i+1
}

func (w *writeLog) add(at time.Time) {
	w.mu.Lock()
	w.acked = append(w.acked, at)
	w.mu.Unlock()
}

// required returns the newest version acknowledged before t, and when the
// version after v was acknowledged (zero if not before t).
func (w *writeLog) required(t time.Time, v int) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	need := 0
	for i, at := range w.acked {
		if at.Before(t) {
			need = i + 1
		}
	}
	var next time.Time
	if v < len(w.acked) && w.acked[v].Before(t) {
		next = w.acked[v]
	}
	return need, next
}

// TestBoundedStalenessChecker: a writer in the home region stamps a key
// with increasing versions; readers in every region read it at
// bounded(D) while ap-southeast is cut off for a while (its replicas stop
// hearing from the leader and the primary). No read may miss a version
// acknowledged more than D before the read began.
func TestBoundedStalenessChecker(t *testing.T) {
	for _, strategy := range []metadata.Strategy{metadata.Sync, metadata.Async} {
		t.Run(string(strategy), func(t *testing.T) {
			c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.25)})
			c.CreateKeyspace(metadata.KeyspaceSpec{Name: "b", Strategy: strategy, HomeRegion: "us-east", Shards: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			const D = 300 * time.Millisecond
			bounded := node.Level(consistency.BoundedBy(D))
			east := c.Node(c.InRegion("us-east")[0])
			var log writeLog
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v := 1; ; v++ {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					if _, err := east.Put(ctx, "b", []byte("k"), []byte(strconv.Itoa(v))); err != nil {
						t.Errorf("write %d: %v", v, err)
						return
					}
					log.add(time.Now())
				}
			}()
			type result struct {
				reads, local, failed int
				worst                time.Duration
			}
			results := make([]result, len(c.Running()))
			for i, n := range c.Running() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := &results[i]
					for {
						select {
						case <-stop:
							return
						default:
						}
						start := time.Now()
						v, ok, a, err := n.Get(ctx, "b", []byte("k"), bounded)
						if err != nil {
							r.failed++ // e.g. forwarded while cut off; never stale
							continue
						}
						got := 0
						if ok {
							got, _ = strconv.Atoi(string(v))
						}
						need, _ := log.required(start.Add(-D), got)
						if got < need {
							t.Errorf("node %d (%s) read version %d at %v, but version %d was acknowledged more than %v before", n.ID(), n.Region(), got, start, need, D)
						}
						_, next := log.required(start, got)
						if !next.IsZero() {
							r.worst = max(r.worst, start.Sub(next))
						}
						r.reads++
						if a.Consistency != "strong" {
							r.local++
						}
						time.Sleep(time.Millisecond)
					}
				}()
			}
			time.Sleep(time.Second)
			c.Net.CutRegion("ap-southeast")
			time.Sleep(time.Second)
			c.Heal()
			time.Sleep(time.Second)
			close(stop)
			wg.Wait()
			for i, n := range c.Running() {
				r := results[i]
				if r.reads == 0 {
					t.Fatalf("node %d made no successful read", n.ID())
				}
				t.Logf("FIGURES: %s %s: %d bounded(%v) reads, %.0f%% served locally, largest staleness seen %v (bound %v), %d failed",
					strategy, n.Region(), r.reads, D, 100*float64(r.local)/float64(r.reads), r.worst.Round(time.Millisecond), D, r.failed)
			}
		})
	}
}

// TestSessionAcrossRegions: a client writes in one region and reads in
// another with its session token: it always sees its own write, and its
// reads never go back.
func TestSessionAcrossRegions(t *testing.T) {
	for _, strategy := range []metadata.Strategy{metadata.Sync, metadata.Async} {
		t.Run(string(strategy), func(t *testing.T) {
			c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.25)})
			c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Strategy: strategy, HomeRegion: "us-east", Shards: 2})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			east := c.Node(c.InRegion("us-east")[0])
			asia := c.Node(c.InRegion("ap-southeast")[0])
			eu := c.Node(c.InRegion("eu-west")[0])
			session := node.Level(consistency.Requirement{Level: consistency.Session})
			token := ""
			local := 0
			for i := range 40 {
				key := []byte(fmt.Sprintf("k%d", i%5))
				val := strconv.Itoa(i)
				a, err := east.Put(ctx, "s", key, []byte(val))
				if err != nil {
					t.Fatal(err)
				}
				if token, err = east.Session("s", token, a); err != nil {
					t.Fatal(err)
				}
				for _, n := range []*node.Node{asia, eu} {
					s := session
					s.Token = token
					v, ok, a, err := n.Get(ctx, "s", key, s)
					if err != nil || !ok || string(v) != val {
						t.Fatalf("read %d in %s with the session token: %q %v %v, want %q", i, n.Region(), v, ok, err, val)
					}
					if a.Consistency == "session" {
						local++
					}
					if token, err = n.Session("s", token, a); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Logf("FIGURES: %s: 80 session reads in other regions right after the writes, all saw their write; %d served locally (the rest after waiting, by the leader)", strategy, local)
			// Bad tokens are refused.
			if _, _, _, err := asia.Get(ctx, "s", []byte("k0"), node.Consistency{Req: session.Req, Token: token[:len(token)-2]}); !errors.Is(err, node.ErrBadToken) {
				t.Fatalf("truncated token: %v", err)
			}
		})
	}
}

// TestConsistencyCrossesTheNetwork: every level, the default one included,
// survives the JSON that carries forwarded requests.
func TestConsistencyCrossesTheNetwork(t *testing.T) {
	for _, c := range []node.Consistency{
		{}, node.Strong, node.Eventual,
		node.Level(consistency.BoundedBy(1500 * time.Millisecond)),
		{Req: consistency.Requirement{Level: consistency.Session}, Token: "abc"},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %v: %v", c, err)
		}
		var back node.Consistency
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Fatalf("%v -> %s -> %v %v", c, b, back, err)
		}
	}
	var c node.Consistency
	if err := json.Unmarshal([]byte(`{"l":"bounded(-1s)"}`), &c); !errors.Is(err, node.ErrUnknownConsistency) {
		t.Fatalf("a bad level from the network: %v", err)
	}
}

// TestReadsThatMustNotWait: a read asked not to wait (Consistency.NoWait,
// the RESP event loop's) is served at once where the node can serve it
// alone (strong at the leader under its lease, eventual and prefix from
// a local replica) and otherwise fails with ErrWouldWait, while the same
// read without NoWait is served.
func TestReadsThatMustNotWait(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", HomeRegion: "us-east", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	if _, err := east.Put(ctx, "s", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	noWait := func(c node.Consistency) node.Consistency { c.NoWait = true; return c }
	bounded := node.Consistency{Req: consistency.Requirement{Level: consistency.Bounded, MaxStaleness: time.Minute}}
	session := node.Consistency{Req: consistency.Requirement{Level: consistency.Session}}
	prefix := node.Consistency{Req: consistency.Requirement{Level: consistency.Prefix}}
	served := func(n *node.Node, l node.Consistency) bool {
		v, ok, _, err := n.Get(ctx, "s", []byte("k"), l)
		return err == nil && ok && string(v) == "v"
	}
	// The strategy places the leader in the home region; once there it
	// stays (nothing fails in this test).
	var leader uint64
	if err := c.WaitFor(ctx, func() bool {
		leader = c.Leader(ks.Shards[0].Group)
		return leader != 0 && c.RegionOf(leader) == "us-east"
	}); err != nil {
		t.Fatal("the shard's leader never settled in its home region")
	}
	for _, n := range c.Running() {
		// Every node holds a replica: eventual and prefix are served at
		// once (after the write reached it).
		for _, l := range []node.Consistency{node.Eventual, prefix} {
			if err := c.WaitFor(ctx, func() bool { return served(n, noWait(l)) }); err != nil {
				t.Fatalf("node %d: a %v read asked not to wait was never served", n.ID(), l)
			}
		}
		for _, l := range []node.Consistency{bounded, session} {
			if _, _, _, err := n.Get(ctx, "s", []byte("k"), noWait(l)); !errors.Is(err, node.ErrWouldWait) {
				t.Fatalf("node %d: a %v read asked not to wait: %v, want ErrWouldWait", n.ID(), l, err)
			}
			if !served(n, l) {
				t.Fatalf("node %d: a %v read was not served", n.ID(), l)
			}
		}
		if n.ID() == leader {
			if err := c.WaitFor(ctx, func() bool { return served(n, noWait(node.Strong)) }); err != nil {
				t.Fatalf("the leader (node %d) never served a strong read at once", n.ID())
			}
			continue
		}
		if _, _, _, err := n.Get(ctx, "s", []byte("k"), noWait(node.Strong)); !errors.Is(err, node.ErrWouldWait) {
			t.Fatalf("node %d (not the leader %d): a strong read asked not to wait: %v, want ErrWouldWait", n.ID(), leader, err)
		}
		if !served(n, node.Strong) {
			t.Fatalf("node %d: a strong read was not served", n.ID())
		}
	}
}
