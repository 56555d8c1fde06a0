package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/check"
	"github.com/meridian-db/meridian/internal/testutil"
)

// The consistency promises, checked over real processes with faults
// injected from outside. Every history is judged by a checker (package
// internal/check), never by eye, and every test prints a FIGURES line.

var threeRegions = []string{"us-east", "eu-west", "ap-southeast"}

// clusterStatus is the part of GET /v1/cluster the tests read.
type clusterStatus struct {
	Keyspaces []struct {
		Name       string `json:"name"`
		HomeRegion string `json:"home_region"`
		Epoch      uint64 `json:"epoch"`
		Shards     []struct {
			Group  uint64 `json:"group"`
			Leader uint64 `json:"leader"`
		} `json:"shards"`
	} `json:"keyspaces"`
	Streams []struct {
		Keyspace   string `json:"keyspace"`
		Shard      int    `json:"shard"`
		FromRegion string `json:"from_region"`
		ToRegion   string `json:"to_region"`
		Acked      uint64 `json:"acked"`
		LagEntries uint64 `json:"lag_entries"`
		LagMS      int64  `json:"lag_ms"`
		Err        string `json:"error"`
	} `json:"streams"`
}

// leaderOf returns a function giving the leader of one of a keyspace's
// shards as some running node of region knows it (0 if unknown).
func (w *world) leaderOf(keyspace, region string) func() uint64 {
	return func() uint64 {
		for _, n := range w.inRegion(region) {
			if !n.running() {
				continue
			}
			var st clusterStatus
			if n.getJSON("/v1/cluster", &st) != nil {
				continue
			}
			for _, ks := range st.Keyspaces {
				if ks.Name == keyspace && len(ks.Shards) > 0 {
					return ks.Shards[rand.IntN(len(ks.Shards))].Leader
				}
			}
		}
		return 0
	}
}

// registerClients runs, until stop, one client per node doing puts and
// reads (at level) of keys on keyspace ks through RESP, recording every
// operation in h. A client whose node is down fails fast and tries again.
func registerClients(w *world, h *check.History, ks, level string, keys []string, seed uint64, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, n := range w.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			c := redis.NewClient(&redis.Options{Addr: n.resp, Protocol: 2, MaxRetries: -1, PoolSize: 2,
				DialTimeout: 300 * time.Millisecond, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second,
				OnConnect: func(ctx context.Context, cn *redis.Conn) error {
					if err := cn.Do(ctx, "MERIDIAN.KEYSPACE", ks).Err(); err != nil {
						return err
					}
					return cn.Do(ctx, "MERIDIAN.CONSISTENCY", level).Err()
				}})
			defer c.Close()
			seq := 0
			for !stop.Load() {
				if !n.running() {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				key := keys[rng.IntN(len(keys))]
				ctx, cancel := ctxT(3 * time.Second)
				if rng.IntN(2) == 0 {
					seq++
					val := fmt.Sprintf("%d.%d", i, seq)
					call := h.Now()
					err := c.Set(ctx, key, val, 0).Err()
					h.Put(i, key, val, call, err == nil)
					if err != nil {
						time.Sleep(20 * time.Millisecond)
					}
				} else {
					call := h.Now()
					v, err := c.Get(ctx, key).Result()
					switch {
					case err == nil:
						h.Get(i, key, check.RegisterOutput{Value: v, Found: true}, call)
					case errors.Is(err, redis.Nil):
						h.Get(i, key, check.RegisterOutput{}, call)
					default:
						time.Sleep(20 * time.Millisecond)
					}
				}
				cancel()
			}
		}()
	}
	return &wg
}

// finalReads reads every key at strong through a running node, until it
// answers, and records the reads.
func finalReads(t *testing.T, w *world, h *check.History, ks string, keys []string, client int) map[string]check.RegisterOutput {
	t.Helper()
	final := map[string]check.RegisterOutput{}
	for _, key := range keys {
		testutil.Eventually(w.t, 60*time.Second, "a final strong read of "+key, func() bool {
			n := w.anyUp("")
			ctx, cancel := ctxT(3 * time.Second)
			defer cancel()
			cn := n.redis().Conn()
			defer cn.Close()
			if err := cn.Do(ctx, "MERIDIAN.KEYSPACE", ks).Err(); err != nil {
				return false
			}
			call := h.Now()
			s, err := cn.Do(ctx, "MERIDIAN.WITH", "strong", "GET", key).Text()
			out := check.RegisterOutput{Value: s, Found: true}
			if errors.Is(err, redis.Nil) {
				out, err = check.RegisterOutput{}, nil
			}
			if err != nil {
				return false
			}
			h.Get(client, key, out, call)
			final[key] = out
			return true
		})
	}
	return final
}

// judgeLinearizable checks h, logs the figures and fails the test on a
// violation, a lost write or no progress.
func judgeLinearizable(t *testing.T, name string, h *check.History, final map[string]check.RegisterOutput, faults string, nfaults int) {
	t.Helper()
	lost := h.LostAcknowledged(final)
	v := h.Linearizable(3*time.Minute, t.TempDir(), name)
	if v.Timeline != "" {
		keep := os.TempDir() + "/meridian-" + name + "-" + strconv.FormatInt(time.Now().Unix(), 10) + ".html"
		if data, err := os.ReadFile(v.Timeline); err == nil && os.WriteFile(keep, data, 0o644) == nil {
			v.Timeline = keep
		}
	}
	acks, unk, gets := h.Counts()
	t.Logf("FIGURES: %s: %d operations (%d acknowledged puts, %d unknown-outcome puts, %d reads), %d faults (%s); linearizability: %v (checked in %v), violations: %d, acknowledged writes lost: %d",
		name, len(h.Ops()), acks, unk, gets, nfaults, faults, v.Result, v.Took.Round(time.Millisecond), v.Violations(), lost)
	switch v.Result {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Errorf("history is not linearizable; timeline of the violation: %s", v.Timeline)
		if keys, ops := h.IllegalKeys(time.Minute); len(keys) > 0 {
			path := filepath.Join(os.TempDir(), "meridian-"+name+"-ops.txt")
			_ = os.WriteFile(path, []byte(strings.Join(ops, "\n")+"\n"), 0o644)
			t.Logf("keys with illegal histories: %v; operations on %s: %s", keys, keys[0], path)
		}
		for _, s := range h.StaleReads(10) {
			t.Logf("stale read by client %d (node %d): %s=%q missed %q, acknowledged %v before the read began", s.Client, s.Client+1, s.Key, s.Got, s.Missed, s.MissedBy)
		}
	default:
		t.Error("linearizability check timed out: a timeout is a failure, not a pass")
	}
	if lost != 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	if acks == 0 || gets == 0 {
		t.Errorf("the workload made no progress: %d acknowledged puts, %d reads", acks, gets)
	}
}

// TestSyncLinearizableUnderFaults: clients in every region put and read
// strong on a sync keyspace of 5 voters while the nemesis partitions the
// processes in every shape (the bridge included), kills and pauses
// leaders and restarts nodes; porcupine judges the history.
func TestSyncLinearizableUnderFaults(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": "lin", "strategy": "sync", "shards": 2, "replicas": 5, "home_region": "us-east"})
	keys := []string{"a", "b", "c", "d"}
	h := check.NewHistory()
	var stop atomic.Bool
	wg := registerClients(w, h, "lin", "strong", keys, seed, &stop)
	nm := newNemesis(w, seed, nil, w.leaderOf("lin", "us-east"))
	nm.run(faultSeconds(25))
	stop.Store(true)
	wg.Wait()
	w.heal()
	final := finalReads(t, w, h, "lin", keys, len(w.nodes))
	faults, n := nm.summary()
	judgeLinearizable(t, "sync", h, final, faults, n)
}

// switchover moves an async keyspace's primary to region through any
// running node and returns the reported pause, retrying while the cluster
// settles from the last one.
func (w *world) switchover(ks, to string) (float64, error) {
	var res struct {
		FencedMS float64 `json:"fenced_ms"`
		Epoch    uint64  `json:"epoch"`
	}
	err := w.anyUp(to).postJSON("/v1/keyspaces/"+ks+"/switchover", map[string]any{"to": to}, &res)
	return res.FencedMS, err
}

// TestAsyncStrongAcrossSwitchovers: clients in every region put and read
// strong on an async keyspace while its primary moves between us-east and
// eu-west again and again; porcupine judges the history.
func TestAsyncStrongAcrossSwitchovers(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": "asw", "strategy": "async", "shards": 2, "home_region": "us-east"})
	keys := []string{"a", "b", "c", "d"}
	h := check.NewHistory()
	var stop atomic.Bool
	wg := registerClients(w, h, "asw", "strong", keys, seed, &stop)
	deadline := time.Now().Add(faultSeconds(25))
	switches, failed := 0, 0
	var pauses []float64
	to := "eu-west"
	for time.Now().Before(deadline) {
		time.Sleep(1500 * time.Millisecond)
		ms, err := w.switchover("asw", to)
		if err != nil {
			failed++
			t.Logf("switchover to %s: %v", to, err)
			continue
		}
		switches++
		pauses = append(pauses, ms)
		t.Logf("switchover to %s: writes paused %.0f ms", to, ms)
		if to == "eu-west" {
			to = "us-east"
		} else {
			to = "eu-west"
		}
	}
	stop.Store(true)
	wg.Wait()
	final := finalReads(t, w, h, "asw", keys, len(w.nodes))
	judgeLinearizable(t, "async-switchover", h, final, fmt.Sprintf("switchovers=%d failed=%d pauses_ms=%v", switches, failed, pauses), switches)
	if switches < 3 {
		t.Errorf("only %d switchovers completed", switches)
	}
}
