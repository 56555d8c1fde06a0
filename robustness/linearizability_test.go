// Package robustness holds Meridian's fault-injection tests: whole clusters
// in one process on an emulated network, clients recording histories, a
// nemesis injecting partitions, crashes and restarts, and checkers that
// judge the histories (porcupine for linearizability, explicit counts of
// lost acknowledged writes).
//
// The default run is short enough for CI. MERIDIAN_ROBUSTNESS_SECONDS makes
// each workload phase longer (for example 300 for a five-minute soak), and
// MERIDIAN_ROBUSTNESS_SEED fixes the random choices.
package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meridian-db/meridian/internal/check"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestLinearizabilityUnderFaults runs concurrent clients doing puts and
// strong gets on a few keys of a sync keyspace spread over three emulated
// regions while a nemesis partitions the network in every shape, kills
// leaders and restarts them, then checks the whole history with porcupine.
func TestLinearizabilityUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("robustness test")
	}
	seconds := envInt("MERIDIAN_ROBUSTNESS_SECONDS", 20)
	seed := uint64(envInt("MERIDIAN_ROBUSTNESS_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("seed %d (MERIDIAN_ROBUSTNESS_SEED), %d s of faults (MERIDIAN_ROBUSTNESS_SECONDS)", seed, seconds)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))

	c := testcluster.New(t, testcluster.Options{
		NodesPerRegion: 2,
		Matrix:         netsim.WorldMatrix().Scaled(0.25),
		Jitter:         2 * time.Millisecond,
		Seed:           int64(seed),
		RequestTimeout: 3 * time.Second,
	})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "lin", Shards: 2, Replicas: 5, HomeRegion: "us-east"})
	keys := []string{"a", "b", "c", "d"}

	h := check.NewHistory()
	var stopClients atomic.Bool
	var wg sync.WaitGroup
	const clients = 6
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crng := rand.New(rand.NewPCG(seed, uint64(cl)))
			seq := 0
			for !stopClients.Load() {
				running := c.Running()
				if len(running) == 0 {
					continue
				}
				n := running[crng.IntN(len(running))]
				key := keys[crng.IntN(len(keys))]
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if crng.IntN(2) == 0 {
					seq++
					val := fmt.Sprintf("%d.%d", cl, seq)
					call := h.Now()
					_, err := n.Put(ctx, "lin", []byte(key), []byte(val))
					h.Put(cl, key, val, call, err == nil)
				} else {
					call := h.Now()
					v, found, _, err := n.Get(ctx, "lin", []byte(key), node.Strong)
					if err == nil { // a failed read has no effect: drop it
						h.Get(cl, key, check.RegisterOutput{Value: string(v), Found: found}, call)
					}
				}
				cancel()
			}
		}()
	}

	// The nemesis: one fault at a time, each held for a while, then healed.
	faults := map[string]int{}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	ids := c.IDs()
	for time.Now().Before(deadline) {
		leader := c.Leader(ks.Shards[rng.IntN(len(ks.Shards))].Group)
		if leader == 0 {
			leader = ids[rng.IntN(len(ids))]
		}
		kind := []string{"isolate-leader", "cut-region", "majority-minority", "bridge", "ring", "kill-leader", "kill-random"}[rng.IntN(7)]
		faults[kind]++
		var killed uint64
		switch kind {
		case "isolate-leader":
			c.Net.Isolate(leader)
		case "cut-region":
			c.Net.CutRegion(c.RegionOf(leader))
		case "majority-minority":
			perm := rng.Perm(len(ids))
			var a, b []uint64
			for i, p := range perm {
				if i < len(ids)/2 {
					a = append(a, ids[p])
				} else {
					b = append(b, ids[p])
				}
			}
			c.Net.Split(a, b)
		case "bridge":
			perm := rng.Perm(len(ids))
			bridge := ids[perm[0]]
			var a, b []uint64
			for i, p := range perm[1:] {
				if i%2 == 0 {
					a = append(a, ids[p])
				} else {
					b = append(b, ids[p])
				}
			}
			c.Net.Bridge(a, b, bridge)
		case "ring":
			perm := rng.Perm(len(ids))
			ring := make([]uint64, len(ids))
			for i, p := range perm {
				ring[i] = ids[p]
			}
			c.Net.Ring(ring)
		case "kill-leader":
			killed = leader
			c.Kill(killed)
		case "kill-random":
			killed = ids[rng.IntN(len(ids))]
			c.Kill(killed)
		}
		time.Sleep(time.Duration(800+rng.IntN(1200)) * time.Millisecond) // the fault's duration
		c.Heal()
		if killed != 0 {
			c.Restart(killed)
		}
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond) // a healthy interval
	}
	stopClients.Store(true)
	wg.Wait()
	c.Heal()

	// Final reads of every key through every node, after the cluster has
	// settled: they must see the last write of each key.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	final := map[string]check.RegisterOutput{}
	for _, key := range keys {
		for _, n := range c.Running() {
			var v []byte
			var found bool
			var err error
			for ctx.Err() == nil {
				call := h.Now()
				v, found, _, err = n.Get(ctx, "lin", []byte(key), node.Strong)
				if err == nil {
					out := check.RegisterOutput{Value: string(v), Found: found}
					h.Get(clients, key, out, call)
					final[key] = out
					break
				}
			}
			if err != nil {
				t.Fatalf("final read of %s on node %d: %v", key, n.ID(), err)
			}
		}
	}

	lost := h.LostAcknowledged(final)
	v := h.Linearizable(120*time.Second, os.TempDir(), strconv.FormatUint(seed, 10))
	acks, unk, gets := h.Counts()
	var parts []string
	for k, v := range faults {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	t.Logf("FIGURES: %d operations (%d acknowledged puts, %d unknown-outcome puts, %d strong gets), faults: %s; "+
		"linearizability: %v (checked in %v), violations: %d, acknowledged writes lost: %d",
		len(h.Ops()), acks, unk, gets, strings.Join(parts, " "), v.Result, v.Took.Round(time.Millisecond), v.Violations(), lost)
	switch v.Result {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Fatalf("history is not linearizable; timeline of the violation: %s", v.Timeline)
	default:
		t.Fatal("linearizability check timed out: a timeout is a failure, not a pass")
	}
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	if acks == 0 || gets == 0 {
		t.Fatalf("the workload made no progress: %d acknowledged puts, %d gets", acks, gets)
	}
}
