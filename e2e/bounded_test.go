package e2e

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/check"
	"github.com/meridian-db/meridian/netsim"
)

// boundedWorkload runs, until stop, one writer setting key to increasing
// integers through the writer region's nodes, and readers at level in the
// reader region's nodes, judged by judge.
func boundedWorkload(w *world, ks, key, level, writerRegion, readerRegion string, judge *check.Staleness, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := int64(1)
		for i := 0; !stop.Load(); i++ {
			ns := w.inRegion(writerRegion)
			n := ns[i%len(ns)]
			if !n.running() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if _, err := n.put(ks, key, strconv.FormatInt(next, 10), ""); err != nil {
				next++ // it may still have happened
				continue
			}
			judge.Acked(next, time.Now())
			next++
		}
	}()
	for _, n := range w.inRegion(readerRegion) {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					if !n.running() {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					start := time.Now()
					a, err := n.get(ks, key, level, "")
					if err != nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					v := int64(0)
					if a.found {
						v, _ = strconv.ParseInt(a.value, 10, 64)
					}
					judge.Read(v, start, "node "+a.node+" ("+a.region+")")
				}
			}()
		}
	}
	return &wg
}

// TestBoundedBehindBridgedLeader: on the full world matrix, a writer in
// us-east and bounded(50ms) readers in eu-west (one-way delay 40.5 ms),
// while again and again the sync group's leader is cut off from every node
// but one eu-west follower: the old leader still reaches that follower,
// which must never serve a read staler than the bound.
func TestBoundedBehindBridgedLeader(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions, scale: 1})
	w.createKeyspace(map[string]any{"name": "bnd", "strategy": "sync", "shards": 1, "replicas": 5, "home_region": "us-east"})
	const bound = 50 * time.Millisecond
	judge := check.NewStaleness(bound)
	var stop atomic.Bool
	wg := boundedWorkload(w, "bnd", "k", "bounded(50ms)", "us-east", "eu-west", judge, &stop)
	leader := w.leaderOf("bnd", "us-east")
	deadline := time.Now().Add(faultSeconds(30))
	bridges := 0
	for time.Now().Before(deadline) {
		time.Sleep(2 * time.Second)
		l := leader()
		if l == 0 {
			continue
		}
		// The leader keeps its link to one eu-west follower only: either
		// that follower still reaches the others (a bridge), or it is cut
		// off with the leader (the two form a minority).
		var follower uint64
		for _, n := range w.inRegion("eu-west") {
			if n.id != l && (follower == 0 || bridges%2 == 1) {
				follower = n.id
			}
		}
		var others []uint64
		for _, n := range w.nodes {
			if n.id != l && n.id != follower {
				others = append(others, n.id)
			}
		}
		if bridges%2 == 0 {
			w.fault(netsim.Fault{Op: "bridge", A: []uint64{l, follower}, B: append(slices.Clone(others), follower), Bridge: follower})
			t.Logf("leader %d bridged through %d", l, follower)
		} else {
			w.fault(netsim.Fault{Op: "split", A: []uint64{l, follower}, B: others})
			t.Logf("leader %d cut off with %d", l, follower)
		}
		bridges++
		// Longer than an election timeout (ten of the slowest round
		// trips): the others elect a new leader meanwhile.
		time.Sleep(4500 * time.Millisecond)
		w.heal()
	}
	stop.Store(true)
	wg.Wait()
	reads, violations, worst, over, examples := judge.Result()
	t.Logf("FIGURES: bounded(%v) behind a bridged leader: %d reads in eu-west, %d bridges, largest staleness %v, %d reads older than the bound (worst by %v)",
		bound, reads, bridges, worst.Round(time.Millisecond), violations, over.Round(time.Millisecond))
	for _, e := range examples {
		t.Error(e)
	}
	if reads < 100 || bridges < 3 {
		t.Errorf("too little happened: %d reads, %d bridges", reads, bridges)
	}
}
