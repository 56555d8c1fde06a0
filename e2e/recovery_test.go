package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
)

// Crashes in the middle of recovery work, over real processes: a node
// killed while a region is being seeded by a resync, the source's leader
// killed while its streams ship, and a replica killed while it catches up
// by snapshot after its log was compacted away. Each comes back, the
// cluster converges, and no acknowledged write is lost.

// loadKeys writes n keys of size bytes through node w (pipelined), and
// returns them.
func loadKeys(t *testing.T, w *wnode, ks, prefix string, n, size int) map[string]string {
	t.Helper()
	c := respClient(w, ks, "strong")
	defer c.Close()
	want := map[string]string{}
	pad := strings.Repeat("x", size)
	for i := 0; i < n; i += 200 {
		// A batch that times out (a leader just restarted, an election)
		// is sent again: the same values, so a retry is harmless.
		var err error
		for deadline := time.Now().Add(60 * time.Second); ; {
			ctx, cancel := ctxT(30 * time.Second)
			pipe := c.Pipeline()
			for j := i; j < min(i+200, n); j++ {
				k, v := fmt.Sprintf("%s-%d", prefix, j), fmt.Sprintf("%d-%s", j, pad)
				pipe.Set(ctx, k, v, 0)
				want[k] = v
			}
			_, err = pipe.Exec(ctx)
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			t.Logf("loading %s from %d: %v; again", prefix, i, err)
		}
		if err != nil {
			t.Fatalf("loading %s: %v", prefix, err)
		}
	}
	return want
}

// converged polls node n at eventual until it holds every key of want,
// and returns how long that took.
func (w *world) converged(n *wnode, ks string, want map[string]string, timeout time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	c := respClient(n, ks, "eventual")
	defer c.Close()
	var miss string
	testutil.Eventually(w.t, timeout, fmt.Sprintf("node %d (%s) to hold all %d keys", n.id, n.region, len(want)), func() bool {
		for i := 0; i < len(keys); i += 500 {
			part := keys[i:min(i+500, len(keys))]
			ctx, cancel := ctxT(5 * time.Second)
			vs, err := c.MGet(ctx, part...).Result()
			cancel()
			if err != nil {
				miss = err.Error()
				return false
			}
			for j, v := range vs {
				if s, _ := v.(string); s != want[part[j]] {
					miss = part[j]
					return false
				}
			}
		}
		return true
	})
	if miss != "" && w.t.Failed() {
		w.t.Logf("node %d: last key missing or different: %s", n.id, miss)
	}
	return time.Since(start)
}

func (w *world) streamsOf(ks string) []map[string]any {
	var st struct {
		Streams []map[string]any `json:"streams"`
	}
	for _, n := range w.nodes {
		if n.running() && n.getJSON("/v1/cluster", &st) == nil {
			break
		}
	}
	var out []map[string]any
	for _, s := range st.Streams {
		if s["keyspace"] == ks {
			out = append(out, s)
		}
	}
	return out
}

func TestKilledMidRecovery(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "compact.yaml")
	if err := os.WriteFile(conf, []byte("raft:\n  compact_after_entries: 200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, worldConfig{regions: threeRegions, args: []string{"--config", conf}})
	east := w.inRegion("us-east")

	// 1. A region seeded by a resync, its receiving node killed mid-way.
	w.createKeyspace(map[string]any{"name": "mid", "strategy": "async", "shards": 2, "home_region": "us-east", "regions": []string{"us-east", "eu-west"}})
	want := loadKeys(t, east[0], "mid", "seed", 6000, 400)
	if err := east[0].sendJSON("PATCH", "/v1/keyspaces/mid", map[string]string{"add_region": "ap-southeast"}, nil); err != nil {
		t.Fatalf("add ap-southeast: %v", err)
	}
	testutil.Eventually(w.t, 30*time.Second, "a resync into ap-southeast under way", func() bool {
		for _, s := range w.streamsOf("mid") {
			if s["to_region"] == "ap-southeast" && (s["resyncing"] == true || s["resync_keys"] != nil) {
				return true
			}
		}
		return false
	})
	victim := w.inRegion("ap-southeast")[0]
	victim.kill()
	t.Logf("killed node %d while ap-southeast was being seeded", victim.id)
	time.Sleep(500 * time.Millisecond)
	victim.start()
	w.syncFaults(victim)
	for _, n := range w.inRegion("ap-southeast") {
		t.Logf("node %d (ap-southeast) holds every seeded key %v after the restart", n.id, w.converged(n, "mid", want, 90*time.Second).Round(time.Millisecond))
	}

	// 2. The primary's leader killed while its streams ship: a writer
	// goes on, the other us-east node takes over, the killed one returns.
	var acked sync.Map
	var stop atomic.Bool
	wg := uniqueWriters(w, "mid", &acked, &stop)
	time.Sleep(time.Second)
	leader := w.leaderOf("mid", "us-east")()
	if leader == 0 {
		leader = east[0].id
	}
	w.node(leader).kill()
	t.Logf("killed the primary's leader, node %d, while it shipped", leader)
	time.Sleep(time.Second)
	w.node(leader).start()
	w.syncFaults(w.node(leader))
	time.Sleep(time.Second)

	// 3. A replica down while its group's log is compacted away, killed
	// again while it catches up by snapshot, then left to finish.
	follower := w.inRegion("eu-west")[1]
	follower.kill()
	more := loadKeys(t, east[1], "mid", "gap", 3000, 400) // many compactions' worth (every 200 entries)
	follower.start()
	time.Sleep(150 * time.Millisecond)
	follower.kill()
	t.Logf("killed node %d again while it caught up (its log had been compacted past it)", follower.id)
	follower.start()
	w.syncFaults(follower)
	stop.Store(true)
	wg.Wait()
	for k, v := range more {
		want[k] = v
	}
	n := 0
	acked.Range(func(k, v any) bool {
		want[k.(string)] = v.(string)
		n++
		return true
	})
	var worst time.Duration
	for _, node := range w.nodes {
		worst = max(worst, w.converged(node, "mid", want, 120*time.Second))
	}
	t.Logf("FIGURES: killed mid-resync, mid-stream (the primary's leader) and mid-catch-up by snapshot: %d keys (%d acknowledged during the faults) on every node, the last converged %v after the last restart",
		len(want), n, worst.Round(time.Millisecond))
}

// processRSS returns a running process's resident set size in bytes.
func processRSS(n *wnode) (int64, error) {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("node %d is not running", n.id)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for node %d", n.id)
}

// dataBytes sums the sizes of an active keyspace's values as node n serves
// them (counters and set members).
func dataBytes(c *redis.Client, l *activeLedger) int64 {
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for k := range l.incr {
		total += int64(len(k) + 8)
	}
	for k := range l.added {
		members, _ := c.SMembers(ctx, k).Result()
		total += int64(len(k))
		for _, m := range members {
			total += int64(len(m))
		}
	}
	return total
}
