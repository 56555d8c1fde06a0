package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/netsim"
)

// quietReplicas counts, over the running nodes, the replicas of the
// keyspace's groups that are quiesced (meridian_raft_group_quiesced).
func quietReplicas(w *world, ks string) int {
	total := 0
	for _, n := range w.nodes {
		if !n.running() {
			continue
		}
		resp, err := dataClient.Get("http://" + n.http + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "meridian_raft_group_quiesced{") && strings.Contains(line, `keyspace="`+ks+`"`) &&
				strings.HasSuffix(line, " 1") {
				total++
			}
		}
	}
	return total
}

// writeAll writes every key of kv through nodes outside skip, each until
// it is acknowledged or the deadline passes, and returns how long that
// took.
func writeAll(t *testing.T, w *world, ks string, kv map[string]string, skip uint64, deadline time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	i := 0
	for key, val := range kv {
		testutil.Eventually(t, deadline, "write of "+key, func() bool {
			i++
			n := w.nodes[i%len(w.nodes)]
			if n.id == skip || !n.running() {
				return false
			}
			_, err := n.put(ks, key, val, "")
			return err == nil
		})
	}
	return time.Since(start)
}

// checkAll reads every key of kv strongly through n.
func checkAll(t *testing.T, n *wnode, ks string, kv map[string]string) {
	t.Helper()
	for key, want := range kv {
		var a answer
		testutil.Eventually(t, 30*time.Second, "strong read of "+key, func() bool {
			var err error
			a, err = n.get(ks, key, "strong", "")
			return err == nil
		})
		if !a.found || a.value != want {
			t.Fatalf("node %d: %s = %q (found %v), want %q", n.id, key, a.value, a.found, want)
		}
	}
}

// TestQuiescedGroupsSurviveFaults: the groups of an idle sync keyspace
// quiesce on every replica (they stop ticking and heartbeating); when the
// node leading them is killed, stopped for longer than an election
// timeout, or cut off from the others (while it still believes it leads,
// with no lease it renews), the others notice its silence from the missing beats, wake
// the groups, elect, and take writes; nothing written before is lost,
// and the groups quiesce again once idle.
func TestQuiescedGroupsSurviveFaults(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions, args: []string{"--quiesce-after", "2s"}})
	const ks = "quiet"
	w.createKeyspace(map[string]any{"name": ks, "strategy": "sync", "shards": 4, "replicas": 3, "home_region": "us-east"})
	written := map[string]string{}
	batch := func(prefix string, n int) map[string]string {
		kv := map[string]string{}
		for i := range n {
			kv[fmt.Sprintf("%s-%d", prefix, i)] = fmt.Sprintf("v%d", i)
		}
		return kv
	}
	add := func(kv map[string]string) {
		for k, v := range kv {
			written[k] = v
		}
	}
	first := batch("before", 40)
	writeAll(t, w, ks, first, 0, 60*time.Second)
	add(first)

	// Every replica of the keyspace's 4 groups (12) quiesces.
	waitQuiet := func(what string) time.Duration {
		start := time.Now()
		testutil.Eventually(t, 60*time.Second, what, func() bool { return quietReplicas(w, ks) == 12 })
		return time.Since(start)
	}
	t.Logf("all 12 replicas quiesced %v after the last write", waitQuiet("quiesced groups").Round(time.Millisecond))

	for _, fault := range []string{"kill -9", "SIGSTOP", "isolate"} {
		var lead uint64
		testutil.Eventually(t, 30*time.Second, "a leader of the keyspace known", func() bool {
			lead = w.leaderOf(ks, "us-east")()
			return lead != 0
		})
		victim := w.node(lead)
		start := time.Now()
		switch fault {
		case "kill -9":
			victim.kill()
		case "SIGSTOP":
			victim.pause()
		default: // cut off from every other node; it still believes it leads
			w.fault(netsim.Fault{Op: "isolate", Node: victim.id})
		}
		kv := batch("after-"+fault, 20)
		took := writeAll(t, w, ks, kv, victim.id, 60*time.Second)
		add(kv)
		t.Logf("%s of node %d (leading quiesced groups): writes through the others taken again within %v", fault, victim.id, took.Round(time.Millisecond))
		switch fault {
		case "kill -9":
			victim.start()
			w.syncFaults(victim)
		case "SIGSTOP":
			victim.resume()
		default:
			w.heal()
		}
		t.Logf("%s: node %d back after %v", fault, victim.id, time.Since(start).Round(time.Millisecond))
		for _, n := range w.nodes {
			checkAll(t, n, ks, written)
		}
		t.Logf("%s: quiesced again %v after the checks", fault, waitQuiet("groups quiesced again").Round(time.Millisecond))
	}
}
