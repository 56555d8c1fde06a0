package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/check"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/netsim"
)

// lostReport is GET /v1/keyspaces/{ks}/lost-writes.
type lostReport struct {
	Forks []struct {
		Epoch      uint64 `json:"epoch"`
		Shard      int    `json:"shard"`
		Region     string `json:"region"`
		Index      uint64 `json:"index"`
		Reported   bool   `json:"reported"`
		LostWrites int    `json:"lost_writes"`
	} `json:"forks"`
	Writes []struct {
		Epoch uint64   `json:"epoch"`
		Op    string   `json:"op"`
		Key   []byte   `json:"key"`
		Args  [][]byte `json:"args"`
	} `json:"writes"`
}

// uniqueWriters writes, until stop, keys never written twice through the
// nodes of every region, and records the acknowledged ones (key -> value).
func uniqueWriters(w *world, ks string, acked *sync.Map, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, region := range w.cfg.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				ns := w.inRegion(region)
				n := ns[i%len(ns)]
				if !n.running() {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				key, val := fmt.Sprintf("u-%s-%d", region, i), strconv.Itoa(i)
				if _, err := n.put(ks, key, val, ""); err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				acked.Store(key, val)
			}
		}()
	}
	return &wg
}

// TestAsyncFailoverAfterSwitchovers: an async keyspace is switched over
// twice under writes (epoch 3), then its primary region is cut off and the
// keyspace failed over while clients in every region keep writing and
// reading strong. After the heal, the old primary reports what it lost and
// rejoins as a replica. Every acknowledged write is at the new primary or
// in the report, never both, never neither; with the reported writes taken
// out, the strong history is linearizable; every region converges.
func TestAsyncFailoverAfterSwitchovers(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": "fo", "strategy": "async", "shards": 2, "home_region": "us-east"})
	keys := []string{"a", "b", "c", "d"}
	h := check.NewHistory()
	var stop atomic.Bool
	regs := registerClients(w, h, "fo", "strong", keys, seed, &stop)
	var acked sync.Map
	uniq := uniqueWriters(w, "fo", &acked, &stop)

	time.Sleep(time.Second)
	for _, to := range []string{"eu-west", "us-east"} {
		ms, err := w.switchover("fo", to)
		if err != nil {
			t.Fatalf("switchover to %s: %v", to, err)
		}
		t.Logf("switchover to %s: writes paused %.0f ms", to, ms)
		time.Sleep(1500 * time.Millisecond)
	}
	// The primary region is cut off; eu-west takes over.
	cut := time.Now()
	w.fault(netsim.Fault{Op: "cut_region", Region: "us-east"})
	var res struct {
		Epoch     uint64  `json:"epoch"`
		TookMS    float64 `json:"took_ms"`
		ServingMS float64 `json:"serving_ms"`
	}
	testutil.Eventually(w.t, 60*time.Second, "the failover", func() bool {
		err := w.inRegion("eu-west")[0].postJSON("/v1/keyspaces/fo/failover", map[string]any{"to": "eu-west"}, &res)
		if err != nil && !strings.Contains(err.Error(), "primary_healthy") {
			t.Logf("failover: %v", err)
		}
		return err == nil
	})
	failedOver := time.Now()
	t.Logf("failover to eu-west at epoch %d: %.0f ms from the command to the new epoch, %.0f ms until writes resumed, %v from the cut",
		res.Epoch, res.TookMS, res.ServingMS, failedOver.Sub(cut).Round(time.Millisecond))
	time.Sleep(faultSeconds(4))
	w.heal()
	healed := time.Now()

	// The old primary reports what it lost and becomes a replica.
	var report lostReport
	testutil.Eventually(w.t, 60*time.Second, "the old primary's report", func() bool {
		if w.inRegion("eu-west")[1].getJSON("/v1/keyspaces/fo/lost-writes", &report) != nil {
			return false
		}
		done := 0
		for _, f := range report.Forks {
			if f.Epoch == res.Epoch && f.Reported {
				done++
			}
		}
		return done == 2
	})
	reported := time.Since(healed)
	stop.Store(true)
	regs.Wait()
	uniq.Wait()

	lost := map[string]string{}     // unique keys reported lost -> value
	lostValues := map[string]bool{} // register values reported lost
	for _, lw := range report.Writes {
		if lw.Epoch > res.Epoch || lw.Op != "set" || len(lw.Args) != 1 {
			continue
		}
		if strings.HasPrefix(string(lw.Key), "u-") {
			lost[string(lw.Key)] = string(lw.Args[0])
		} else {
			lostValues[string(lw.Args[0])] = true
		}
	}
	// Every acknowledged unique write is at the new primary or reported
	// lost: never both, never neither. Then every region converges on the
	// new primary's data.
	primary := w.inRegion("eu-west")[0]
	var atPrimary, inReport, both, neither int
	var examples []string
	want := map[string]string{}
	acked.Range(func(k, v any) bool {
		key, val := k.(string), v.(string)
		var a answer
		testutil.Eventually(w.t, 30*time.Second, "a strong read of "+key, func() bool {
			var err error
			a, err = primary.get("fo", key, "strong", "")
			return err == nil
		})
		there := a.found && a.value == val
		_, rep := lost[key]
		switch {
		case there && rep:
			both++
			examples = append(examples, key+" is at the new primary and in the report")
		case there:
			atPrimary++
			want[key] = val
		case rep:
			inReport++
		default:
			neither++
			examples = append(examples, fmt.Sprintf("%s=%s is neither at the new primary (%+v) nor in the report", key, val, a))
		}
		return true
	})
	// Convergence: every region's replicas have every key the new primary
	// has.
	for _, region := range w.cfg.regions {
		for _, n := range w.inRegion(region) {
			var miss string
			deadline := time.Now().Add(60 * time.Second)
			for {
				miss = ""
				for k, v := range want {
					a, err := n.get("fo", k, "eventual", "")
					if err != nil || !a.found || a.value != v {
						miss = fmt.Sprintf("%s: %+v %v, want %s", k, a, err, v)
						break
					}
				}
				if miss == "" || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if miss != "" {
				t.Fatalf("node %d (%s) did not converge in 60s: %s", n.id, region, miss)
			}
		}
	}
	converged := time.Since(healed)
	removed := h.Remove(lostValues)
	final := finalReads(t, w, h, "fo", keys, len(w.nodes))
	t.Logf("FIGURES: async failover after 2 switchovers (epoch %d): %d acknowledged unique writes: %d at the new primary, %d reported lost, %d in both, %d in neither; report complete %v and every region converged %v after the heal; %d register operations on lost values taken out",
		res.Epoch, atPrimary+inReport+both+neither, atPrimary, inReport, both, neither, reported.Round(time.Millisecond), converged.Round(time.Millisecond), removed)
	for _, e := range examples {
		t.Error(e)
	}
	if res.Epoch < 4 {
		t.Errorf("the failover's epoch is %d, want at least 4 (after two switchovers)", res.Epoch)
	}
	judgeLinearizable(t, "async-failover", h, final, "switchovers=2 cut-region=1 failover=1", 4)
	// Bad input: a failover to the current primary is refused.
	err := primary.postJSON("/v1/keyspaces/fo/failover", map[string]any{"to": "eu-west"}, nil)
	if err == nil || !strings.Contains(err.Error(), "invalid_spec") {
		t.Errorf("a failover to the primary itself: %v", err)
	}
}
