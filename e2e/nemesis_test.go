package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/netsim"
)

// The nemesis of the real-process suite: one fault at a time, held for a
// while, then healed (a killed process restarted, a paused one resumed),
// then a healthy interval. Every fault is counted and logged.

// faultSeconds is how long a test's faults run: short by default (CI),
// longer with MERIDIAN_E2E_SECONDS.
func faultSeconds(def int) time.Duration {
	if v, err := strconv.Atoi(os.Getenv("MERIDIAN_E2E_SECONDS")); err == nil && v > 0 {
		return time.Duration(v) * time.Second
	}
	return time.Duration(def) * time.Second
}

// seedFor returns the test's random seed (MERIDIAN_E2E_SEED fixes it).
func seedFor(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano() % 1e9)
	if v, err := strconv.ParseUint(os.Getenv("MERIDIAN_E2E_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (MERIDIAN_E2E_SEED)", seed)
	return seed
}

type nemesis struct {
	w    *world
	rng  *rand.Rand
	kind []string
	// leaderOf returns a node to aim at (a leader or a primary); 0: any.
	leaderOf func() uint64

	mu     sync.Mutex
	counts map[string]int
	// lastHeal is when the last fault was lifted.
	lastHeal time.Time
}

// faultKinds are every fault the nemesis knows.
var faultKinds = []string{"isolate", "cut-region", "majority-minority", "bridge", "ring", "kill", "pause", "restart"}

func newNemesis(w *world, seed uint64, kinds []string, leaderOf func() uint64) *nemesis {
	if len(kinds) == 0 {
		kinds = faultKinds
	}
	return &nemesis{w: w, rng: rand.New(rand.NewPCG(seed, seed^0x6e656d)), kind: kinds, leaderOf: leaderOf, counts: map[string]int{}}
}

// target picks a node to fault: the leader half of the time, when known.
func (nm *nemesis) target() *wnode {
	if nm.leaderOf != nil && nm.rng.IntN(2) == 0 {
		if id := nm.leaderOf(); id != 0 {
			return nm.w.node(id)
		}
	}
	return nm.w.nodes[nm.rng.IntN(len(nm.w.nodes))]
}

// one injects one fault, holds it for hold, and heals it.
func (nm *nemesis) one(hold time.Duration) string {
	w := nm.w
	kind := nm.kind[nm.rng.IntN(len(nm.kind))]
	all := ids(w.nodes)
	perm := func() []uint64 {
		p := slices.Clone(all)
		nm.rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		return p
	}
	target := nm.target()
	desc := kind
	var undo func()
	switch kind {
	case "isolate":
		w.fault(netsim.Fault{Op: "isolate", Node: target.id})
		desc = fmt.Sprintf("isolate %d", target.id)
	case "cut-region":
		w.fault(netsim.Fault{Op: "cut_region", Region: target.region})
		desc = "cut-region " + target.region
	case "majority-minority":
		p := perm()
		half := len(p) / 2
		w.fault(netsim.Fault{Op: "split", A: p[:half], B: p[half:]})
		desc = fmt.Sprintf("split %v | %v", p[:half], p[half:])
	case "bridge":
		p := perm()
		var a, b []uint64
		for i, id := range p {
			if id == target.id {
				continue
			}
			if i%2 == 0 {
				a = append(a, id)
			} else {
				b = append(b, id)
			}
		}
		w.fault(netsim.Fault{Op: "bridge", A: append(a, target.id), B: append(b, target.id), Bridge: target.id})
		desc = fmt.Sprintf("bridge %v <%d> %v", a, target.id, b)
	case "ring":
		w.fault(netsim.Fault{Op: "ring", IDs: perm()})
	case "kill":
		target.kill()
		undo = target.start
		desc = fmt.Sprintf("kill -9 %d", target.id)
	case "pause":
		target.pause()
		undo = target.resume
		desc = fmt.Sprintf("SIGSTOP %d", target.id)
	case "restart":
		target.restart()
		desc = fmt.Sprintf("restart %d", target.id)
	}
	time.Sleep(hold)
	w.heal()
	if undo != nil {
		undo()
		if kind == "kill" {
			w.syncFaults(target)
		}
	}
	nm.mu.Lock()
	nm.counts[kind]++
	nm.lastHeal = time.Now()
	nm.mu.Unlock()
	return desc
}

// run injects faults until d has passed: each held 0.8-2 s, then 0.3-1 s
// of health.
func (nm *nemesis) run(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		hold := time.Duration(800+nm.rng.IntN(1200)) * time.Millisecond
		desc := nm.one(hold)
		nm.w.t.Logf("nemesis: %s for %v, healed", desc, hold)
		time.Sleep(time.Duration(300+nm.rng.IntN(700)) * time.Millisecond)
	}
}

// summary returns "kind=count ..." and the total.
func (nm *nemesis) summary() (string, int) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	var parts []string
	total := 0
	for k, v := range nm.counts {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		total += v
	}
	sort.Strings(parts)
	return strings.Join(parts, " "), total
}
