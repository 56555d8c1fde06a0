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
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// registerInput is one operation on a key.
type registerInput struct {
	Key   string
	Put   bool
	Value string
}

// registerOutput is what a get returned. Puts have no output.
type registerOutput struct {
	Value string
	Found bool
}

// registerModel is a map of independent registers, partitioned by key.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(registerInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return registerOutput{} },
	Step: func(state, input, output any) (bool, any) {
		in := input.(registerInput)
		st := state.(registerOutput)
		if in.Put {
			return true, registerOutput{Value: in.Value, Found: true}
		}
		out := output.(registerOutput)
		return out == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		out := output.(registerOutput)
		if !out.Found {
			return fmt.Sprintf("get(%s) -> none", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type history struct {
	mu   sync.Mutex
	ops  []porcupine.Operation
	acks int
	unk  int
	gets int
}

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
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

	var h history
	start := time.Now()
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
					call := time.Since(start).Nanoseconds()
					_, err := n.Put(ctx, "lin", []byte(key), []byte(val))
					ret := time.Since(start).Nanoseconds()
					h.mu.Lock()
					if err != nil {
						// Unknown outcome: it may take effect at any time after
						// the call, so it returns after every other event.
						ret = math.MaxInt64
						h.unk++
					} else {
						h.acks++
					}
					h.mu.Unlock()
					h.add(porcupine.Operation{ClientId: cl, Input: registerInput{Key: key, Put: true, Value: val}, Call: call, Return: ret})
				} else {
					call := time.Since(start).Nanoseconds()
					v, found, _, err := n.Get(ctx, "lin", []byte(key), node.Strong)
					ret := time.Since(start).Nanoseconds()
					if err == nil { // a failed read has no effect: drop it
						h.mu.Lock()
						h.gets++
						h.mu.Unlock()
						h.add(porcupine.Operation{ClientId: cl, Input: registerInput{Key: key}, Output: registerOutput{Value: string(v), Found: found}, Call: call, Return: ret})
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
	final := map[string]registerOutput{}
	for _, key := range keys {
		for _, n := range c.Running() {
			var v []byte
			var found bool
			var err error
			for ctx.Err() == nil {
				call := time.Since(start).Nanoseconds()
				v, found, _, err = n.Get(ctx, "lin", []byte(key), node.Strong)
				if err == nil {
					out := registerOutput{Value: string(v), Found: found}
					h.add(porcupine.Operation{ClientId: clients, Input: registerInput{Key: key}, Output: out, Call: call, Return: time.Since(start).Nanoseconds()})
					final[key] = out
					break
				}
			}
			if err != nil {
				t.Fatalf("final read of %s on node %d: %v", key, n.ID(), err)
			}
		}
	}

	lost := lostAcknowledged(h.ops, final)
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 120*time.Second)
	var parts []string
	for k, v := range faults {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	violations := 0
	if res == porcupine.Illegal {
		violations = 1
	}
	t.Logf("FIGURES: %d operations (%d acknowledged puts, %d unknown-outcome puts, %d strong gets), faults: %s; "+
		"linearizability: %v (checked in %v), violations: %d, acknowledged writes lost: %d",
		len(h.ops), h.acks, h.unk, h.gets, strings.Join(parts, " "), res, time.Since(checkStart).Round(time.Millisecond), violations, lost)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("meridian-linearizability-%d.html", seed))
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			t.Logf("timeline of the violation: %s", path)
		}
		t.Fatal("history is not linearizable")
	default:
		t.Fatal("linearizability check timed out: a timeout is a failure, not a pass")
	}
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	if h.acks == 0 || h.gets == 0 {
		t.Fatalf("the workload made no progress: %d acknowledged puts, %d gets", h.acks, h.gets)
	}
}

// lostAcknowledged counts keys whose final value shows that an
// acknowledged write was lost: the final value is a write that was
// superseded by an acknowledged write which began after it ended, or the
// key is missing although a write to it was acknowledged.
func lostAcknowledged(ops []porcupine.Operation, final map[string]registerOutput) int {
	lost := 0
	for key, out := range final {
		var finalOp *porcupine.Operation
		var acked []porcupine.Operation
		for i := range ops {
			in := ops[i].Input.(registerInput)
			if !in.Put || in.Key != key {
				continue
			}
			if out.Found && in.Value == out.Value {
				finalOp = &ops[i]
			}
			if ops[i].Return != math.MaxInt64 {
				acked = append(acked, ops[i])
			}
		}
		switch {
		case !out.Found && len(acked) > 0:
			lost++
		case out.Found && finalOp == nil:
			lost++ // a value nobody wrote
		case finalOp != nil:
			for _, a := range acked {
				if a.Call > finalOp.Return {
					lost++
					break
				}
			}
		}
	}
	return lost
}
