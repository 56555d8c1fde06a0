package e2e

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
)

// Clock skew between processes (meridian start --clock-offset, emulation
// only): within the maximum offset (500 ms) an active keyspace converges
// through faults with every acknowledged write; a region whose clock runs
// ten minutes ahead is refused by the others, loudly, and loses nothing.

// skewArgs runs each region's nodes with its clock offset.
func skewArgs(offsets map[string]time.Duration) func(n *wnode) []string {
	return func(n *wnode) []string {
		if d := offsets[n.region]; d != 0 {
			return []string{"--clock-offset", d.String()}
		}
		return nil
	}
}

// TestActiveConvergesUnderClockSkew: us-east's clocks run 100 ms ahead,
// eu-west's 100 ms behind. Writers of counters and sets in every region
// under faults; after each heal every node converges, and in the end
// every acknowledged increment and add is on every node. Then every node
// writes the same registers at once: last writer wins must give one
// value everywhere.
func TestActiveConvergesUnderClockSkew(t *testing.T) {
	offsets := map[string]time.Duration{"us-east": 100 * time.Millisecond, "eu-west": -100 * time.Millisecond}
	w := newWorld(t, worldConfig{regions: threeRegions, nodeArgs: skewArgs(offsets)})
	r := activeFaultRounds(t, w, "sk", []string{"isolate", "cut-region", "kill", "pause"}, 4)
	clients, times, nm, incr, adds := r.clients, r.times, r.nm, r.incr, r.adds

	// Concurrent writes of the same registers from every node.
	const registers = 8
	var wg sync.WaitGroup
	var acked atomic.Int64
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				ctx, cancel := ctxT(2 * time.Second)
				if c.Set(ctx, fmt.Sprintf("reg-%d", j%registers), fmt.Sprintf("n%d-%d", i+1, j), 0).Err() == nil {
					acked.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if acked.Load() == 0 {
		t.Fatal("no register write was acknowledged")
	}
	regs := waitConverged(t, w, clients, func(c *redis.Client) (string, error) {
		ctx, cancel := ctxT(2 * time.Second)
		defer cancel()
		out := ""
		for k := range registers {
			v, err := c.Get(ctx, fmt.Sprintf("reg-%d", k)).Result()
			if err != nil {
				return "", err
			}
			out += v + ";"
		}
		return out, nil
	})
	p50, worst := durationStats(times)
	faults, n := nm.summary()
	t.Logf("FIGURES: clocks skewed %v; active convergence after heal over %d rounds (%s): p50 %v, max %v (target 2 s + largest round trip %v = %v); %d acknowledged increments summed, %d acknowledged adds, all on every node; %d concurrent register writes converged %v after the last",
		offsets, n, faults, p50.Round(time.Millisecond), worst.Round(time.Millisecond), w.maxRTT(), 2*time.Second+w.maxRTT(),
		incr, adds, acked.Load(), regs.Round(time.Millisecond))
}

// TestClockFarAheadIsRefused: ap-southeast's clocks run ten minutes
// ahead. Its writes are acknowledged there (active: the region's own
// group) but the other regions refuse its streams, which report the
// clock check as the reason they are stalled, and the destinations log
// it at warn level; nothing of it is applied elsewhere. The other
// direction still flows, and the refused write is still held in
// ap-southeast (nothing was dropped).
func TestClockFarAheadIsRefused(t *testing.T) {
	offsets := map[string]time.Duration{"ap-southeast": 10 * time.Minute}
	w := newWorld(t, worldConfig{regions: threeRegions, nodeArgs: skewArgs(offsets)})
	w.createKeyspace(map[string]any{"name": "far", "strategy": "active", "shards": 1})
	ap, east := w.inRegion("ap-southeast")[0], w.inRegion("us-east")[0]
	apc, eastc := respClient(ap, "far", "eventual"), respClient(east, "far", "eventual")
	defer apc.Close()
	defer eastc.Close()
	ctx, cancel := ctxT(60 * time.Second)
	defer cancel()
	// Both wait until their node has the keyspace (a retry is harmless:
	// the same value).
	var apErr, eastErr error
	testutil.Eventually(t, 30*time.Second, "a write in each region acknowledged", func() bool {
		if apErr = apc.Set(ctx, "from-ap", "ahead", 0).Err(); apErr != nil {
			return false
		}
		eastErr = eastc.Set(ctx, "from-east", "on time", 0).Err()
		return eastErr == nil
	})
	// us-east's write reaches ap-southeast: a clock behind is no danger.
	testutil.Eventually(t, 30*time.Second, "us-east's write in ap-southeast", func() bool {
		v, err := apc.Get(ctx, "from-east").Result()
		return err == nil && v == "on time"
	})
	// ap-southeast's streams stall on the clock check, and say so.
	var reason string
	testutil.Eventually(t, 60*time.Second, "ap-southeast's streams reported stalled on the clock check", func() bool {
		var st struct {
			Streams []struct {
				Keyspace    string `json:"keyspace"`
				FromRegion  string `json:"from_region"`
				ToRegion    string `json:"to_region"`
				Stalled     bool   `json:"stalled"`
				StallReason string `json:"stall_reason"`
			} `json:"streams"`
		}
		if err := ap.getJSON("/v1/cluster", &st); err != nil {
			return false
		}
		stalled := 0
		for _, s := range st.Streams {
			if s.Keyspace == "far" && s.FromRegion == "ap-southeast" && s.Stalled && strings.Contains(strings.ToLower(s.StallReason), "clock") {
				stalled++
				reason = s.StallReason
			}
		}
		return stalled == 2 // to us-east and to eu-west
	})
	if v, err := eastc.Get(ctx, "from-ap").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("us-east applied a write stamped ten minutes ahead: %q %v", v, err)
	}
	warned := false
	for _, n := range w.inRegion("us-east") {
		b, err := os.ReadFile(n.logf.Name())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "clock running ahead") && strings.Contains(string(b), "level=WARN") {
			warned = true
		}
	}
	if !warned {
		t.Fatal("no us-east node logged the refusal at warn level")
	}
	// The write is held in ap-southeast, not dropped.
	if v, err := apc.Get(ctx, "from-ap").Result(); err != nil || v != "ahead" {
		t.Fatalf("ap-southeast lost its own write: %q %v", v, err)
	}
	t.Logf("FIGURES: a region ten minutes ahead: its streams stalled with %q; refused at warn level in us-east; its write held at home", reason)
}
