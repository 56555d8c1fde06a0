package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testutil"
)

// cli runs the meridian binary and returns its combined output.
func cli(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// membershipStatus is the part of GET /v1/cluster this test reads.
type membershipStatus struct {
	NotJoined       []uint64 `json:"not_joined"`
	Unreachable     []uint64 `json:"unreachable"`
	UnderReplicated []struct {
		Keyspace    string   `json:"keyspace"`
		RegionsDown []string `json:"regions_without_live_replica"`
	} `json:"under_replicated"`
}

// metric returns the value of one series of a node's /metrics ("" if
// absent).
func metric(addr, series string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// readyz returns a node's /readyz status code (0 if it does not answer)
// and body.
func readyz(addr string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFormationSixProcesses starts six processes (three regions, two
// nodes each) with one of them late, and creates keyspaces of every
// strategy at once: each spans all three regions or is refused naming the
// missing one, never narrower. `status --wait-ready` times out naming the
// late node, then returns once it has started. A region that loses every
// node shows its keyspaces under-replicated in the status and the metrics
// until its nodes return; a node that cannot reach the metadata's quorum
// answers /readyz with 503 until it can.
func TestFormationSixProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin := buildBinary(t)
	root := t.TempDir()
	latency := writeMatrix(t, root)
	procs := newProcs(t, root, latency, "us-east", "us-east", "eu-west", "eu-west", "ap-southeast", "ap-southeast")
	reap(t, procs...)
	late := procs[5] // node 6, ap-southeast
	for _, p := range procs[:5] {
		p.start(t, bin)
	}
	addr := procs[0].http
	testutil.Eventually(t, 60*time.Second, "node 1 to answer /healthz", func() bool {
		var h struct{ Status string }
		return getJSON("http://"+addr+"/healthz", &h) == nil && h.Status == "ok"
	})

	// Keyspaces of all three strategies at once, every region by default,
	// while node 6 has not started.
	type created struct {
		name string
		out  string
		err  error
	}
	creates := [][]string{
		{"s1", "--strategy", "sync", "--home", "us-east"},
		{"lina", "--strategy", "async"},
		{"act", "--strategy", "active"},
	}
	results := make(chan created, len(creates))
	for _, c := range creates {
		go func() {
			out, err := cli(bin, append(append([]string{"keyspace", "create"}, c...), "--shards", "2", "--addr", addr)...)
			results <- created{c[0], out, err}
		}()
	}
	// Not every member is ready: the wait times out, naming node 6.
	start := time.Now()
	out, err := cli(bin, "status", "--wait-ready", "--timeout", "3s", "--addr", addr)
	if err == nil || !strings.Contains(out, "not ready after 3s") || !strings.Contains(out, "node 6 (ap-southeast): has not joined") {
		t.Fatalf("status --wait-ready with node 6 not started: %v\n%s", err, out)
	}
	t.Logf("with node 6 not started, after %v:\n%s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	late.start(t, bin)
	all := []string{"ap-southeast", "eu-west", "us-east"}
	for range creates {
		r := <-results
		if r.err != nil {
			// Refused: then it names the region it could not place.
			if !strings.Contains(r.out, "region_unavailable") || !strings.Contains(r.out, "ap-southeast") {
				t.Fatalf("keyspace %s refused without naming the missing region: %v\n%s", r.name, r.err, r.out)
			}
			t.Logf("keyspace %s refused: %s", r.name, strings.TrimSpace(r.out))
			continue
		}
		var ks struct{ Regions []string }
		if err := getJSON("http://"+addr+"/v1/keyspaces/"+r.name, &ks); err != nil {
			t.Fatal(err)
		}
		slices.Sort(ks.Regions)
		if !slices.Equal(ks.Regions, all) {
			t.Fatalf("keyspace %s spans %v, not every region: %s", r.name, ks.Regions, r.out)
		}
		t.Logf("%s", strings.TrimSpace(r.out))
	}
	out = waitReady(t, bin, addr, 60*time.Second)
	if !strings.Contains(readyLine(out), "6/6 members ready") {
		t.Fatalf("status --wait-ready:\n%s", out)
	}
	t.Logf("%s", readyLine(out))

	// ap-southeast loses every node: its keyspaces are under-replicated,
	// in the status and in the metrics.
	procs[4].kill()
	late.kill()
	var st membershipStatus
	regionDown := func(ks string) bool {
		for _, u := range st.UnderReplicated {
			if u.Keyspace == ks && slices.Equal(u.RegionsDown, []string{"ap-southeast"}) {
				return true
			}
		}
		return false
	}
	testutil.Eventually(t, 30*time.Second, "the keyspaces to show under-replicated", func() bool {
		st = membershipStatus{}
		return getJSON("http://"+addr+"/v1/cluster", &st) == nil && regionDown("act") && regionDown("lina") &&
			metric(addr, `meridian_keyspace_under_replicated{keyspace="act"}`) == "1" &&
			slices.Equal(st.Unreachable, []uint64{5, 6}) // both noticed (pings fail one after the other)
	})
	out, err = cli(bin, "status", "--addr", addr)
	if err != nil || !strings.Contains(out, "under-replicated: keyspace act") || !strings.Contains(out, "no live replica in ap-southeast") {
		t.Fatalf("status with ap-southeast down: %v\n%s", err, out)
	}
	// A keyspace that needs ap-southeast waits, then is refused naming it
	// and its nodes; an unknown region is refused at once.
	out, err = cli(bin, "keyspace", "create", "later", "--strategy", "active", "--placement-wait", "1s", "--addr", addr)
	if err == nil || !strings.Contains(out, "region_unavailable") || !strings.Contains(out, "node 5 unreachable") || !strings.Contains(out, "node 6 unreachable") {
		t.Fatalf("create with ap-southeast down: %v\n%s", err, out)
	}
	out, err = cli(bin, "keyspace", "create", "mars", "--regions", "us-east,mars", "--addr", addr)
	if err == nil || !strings.Contains(out, `unknown region "mars"`) {
		t.Fatalf("create in an unknown region: %v\n%s", err, out)
	}

	// eu-west down too: the metadata has no quorum (2 of 6). Node 5
	// restarts and cannot catch up: not ready.
	procs[2].kill()
	procs[3].kill()
	procs[4].start(t, bin)
	var code int
	var body string
	testutil.Eventually(t, 60*time.Second, "node 5 to answer /readyz", func() bool {
		code, body = readyz(procs[4].http)
		return code != 0
	})
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not caught up with the metadata") {
		t.Fatalf("/readyz of node 5 without a metadata quorum: %d %s", code, body)
	}
	t.Logf("node 5 without a metadata quorum: %d %s", code, strings.TrimSpace(body))
	procs[2].start(t, bin)
	procs[3].start(t, bin)
	testutil.Eventually(t, 60*time.Second, "node 5 to be ready", func() bool {
		code, body = readyz(procs[4].http)
		return code == http.StatusOK
	})
	var rd struct {
		Ready           bool
		MetadataApplied uint64 `json:"metadata_applied"`
	}
	if err := json.Unmarshal([]byte(body), &rd); err != nil || !rd.Ready || rd.MetadataApplied == 0 {
		t.Fatalf("/readyz of node 5: %s (%v)", body, err)
	}
	// ap-southeast has a live node again: no region without a replica.
	testutil.Eventually(t, 30*time.Second, "ap-southeast to count again", func() bool {
		st = membershipStatus{}
		return getJSON("http://"+addr+"/v1/cluster", &st) == nil && !regionDown("act") && !regionDown("lina") && !regionDown("s1")
	})
	late.start(t, bin)
	testutil.Eventually(t, 60*time.Second, "every keyspace back at its goal", func() bool {
		st = membershipStatus{}
		return getJSON("http://"+addr+"/v1/cluster", &st) == nil && len(st.UnderReplicated) == 0 &&
			metric(addr, `meridian_keyspace_under_replicated{keyspace="act"}`) == "0"
	})
	out = waitReady(t, bin, addr, 60*time.Second)
	t.Logf("%s", readyLine(out))
}

// readyLine returns the line of `status --wait-ready` that says all are
// ready.
func readyLine(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "members ready (after") {
			return line
		}
	}
	return ""
}
