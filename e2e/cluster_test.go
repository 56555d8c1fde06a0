// Package e2e runs real `meridian` processes: it builds the binary, starts
// a three-region cluster on 127.0.0.1 with emulated inter-region latency,
// and drives it the way a user would (redis clients, the CLI, kill -9).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
)

type proc struct {
	id         int
	region     string
	raft, resp string
	http       string
	dir        string
	args       []string
	cmd        *exec.Cmd
	log        *os.File
}

// handedOut holds every address freeAddr has returned in this process: a
// port may be picked again once its probe listener is closed, and two
// processes of a cluster must never be given the same one. The ports lie
// below the kernel's ephemeral range, in the part kept for servers run as
// processes (testutil.ListenLoopback), so that neither an outgoing
// connection nor an in-process test cluster takes one while its process
// is down.
var (
	addrMu    sync.Mutex
	handedOut = map[string]bool{}
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addrMu.Lock()
	defer addrMu.Unlock()
	for range 100 {
		ln, err := testutil.ListenLoopback(testutil.OtherProcesses)
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatal("no free address that was not handed out already")
	return ""
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meridian")
	if err := goBuild(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// goBuild builds the meridian binary at bin. It first reads every Go
// source file of the module (and go.mod, go.sum) itself: go test caches a
// test's result by the files the test opens, and the build's reads are
// another process's, so without this a change to the server would find
// these tests' result of the previous binary in the cache.
func goBuild(bin string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			_, err := os.ReadFile(path)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the module's sources: %w", err)
	}
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meridian-db/meridian/cmd/meridian").CombinedOutput()
	if err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	return nil
}

// start starts the process. The test must reap it (kill it in a cleanup
// or before it ends): the harness fails a test whose processes outlive it.
func (p *proc) start(t *testing.T, bin string) {
	t.Helper()
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watch(t, p)
}

// kill stops the process with SIGKILL and reaps it.
func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// Every process a test starts is watched: when the test is over (after
// its own cleanups, which must reap what it started), any that was not
// reaped fails the test, and is then killed so that it does not outlive
// the test run.
var (
	watchMu sync.Mutex
	watched = map[testing.TB][]*proc{}
)

func watch(t testing.TB, p *proc) {
	watchMu.Lock()
	defer watchMu.Unlock()
	watchLocked(t)
	if !slices.Contains(watched[t], p) {
		watched[t] = append(watched[t], p)
	}
}

// watchLocked registers the check of a test's processes, once. It must be
// registered before the test's own cleanups that reap its processes, so
// that it runs after them: reap and start both call it.
func watchLocked(t testing.TB) {
	if _, ok := watched[t]; !ok {
		watched[t] = nil
		t.Cleanup(func() {
			watchMu.Lock()
			procs := watched[t]
			delete(watched, t)
			watchMu.Unlock()
			for _, p := range unreaped(procs) {
				t.Errorf("the process of node %d (pid %d) outlived the test: a test must reap every process it starts", p.id, p.cmd.Process.Pid)
				p.kill()
			}
		})
	}
}

// unreaped returns the processes started and not reaped.
func unreaped(procs []*proc) []*proc {
	var out []*proc
	for _, p := range procs {
		if p.cmd != nil {
			out = append(out, p)
		}
	}
	return out
}

// reap kills the processes when the test ends, printing their logs if it
// failed.
func reap(t *testing.T, procs ...*proc) {
	watchMu.Lock()
	watchLocked(t)
	watchMu.Unlock()
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.log.Name())
				t.Logf("--- node %d log:\n%s", p.id, b)
			}
		}
	})
}

// waitReady runs `meridian status --wait-ready` against a node: it
// returns once every member of the cluster is ready.
func waitReady(t *testing.T, bin, addr string, timeout time.Duration) string {
	t.Helper()
	out, err := exec.Command(bin, "status", "--wait-ready", "--timeout", timeout.String(), "--addr", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("status --wait-ready: %v\n%s", err, out)
	}
	return string(out)
}

func getJSON(url string, out any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// worldQuarter is a quarter of the world's round trips between the three
// regions the tests use: quick, and still three distinct distances.
const worldQuarter = `{"regions":["us-east","eu-west","ap-southeast"],"rtt_ms":{"us-east":{"eu-west":20,"ap-southeast":54},"eu-west":{"ap-southeast":60}}}`

// newProcs prepares (without starting) one process per entry of regions,
// ids from 1, every one an initial member with the same --peers, on the
// latency matrix file latency.
func newProcs(t *testing.T, root, latency string, regions ...string) []*proc {
	var procs []*proc
	var peers []string
	for i, r := range regions {
		p := &proc{id: i + 1, region: r, raft: freeAddr(t), resp: freeAddr(t), http: freeAddr(t), dir: filepath.Join(root, fmt.Sprintf("n%d", i+1))}
		peers = append(peers, fmt.Sprintf("%d=%s@%s", p.id, r, p.raft))
		procs = append(procs, p)
	}
	for _, p := range procs {
		p.args = []string{"start", "--id", fmt.Sprint(p.id), "--region", p.region, "--data-dir", p.dir,
			"--listen", p.raft, "--resp", p.resp, "--http", p.http, "--peers", strings.Join(peers, ","),
			"--latency", latency, "--log-level", "warn"}
		if p.id == 2 {
			// The second node reads its settings from a configuration
			// file; a flag overrides one of them.
			p.args = []string{"start", "--config", writeConfig(t, root, p, procs, latency), "--log-level", "warn"}
		}
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("n%d.log", p.id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		p.log = f
	}
	return procs
}

// writeConfig writes p's settings as a configuration file (YAML) and
// returns its path; its log level (error) is overridden on the command line.
func writeConfig(t *testing.T, root string, p *proc, procs []*proc, latency string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "latency: %q\nnode: {id: %d, region: %q, data_dir: %q, log_level: error}\n", latency, p.id, p.region, p.dir)
	fmt.Fprintf(&b, "addresses: {listen: %q, resp: %q, http: %q}\npeers:\n", p.raft, p.resp, p.http)
	for _, q := range procs {
		fmt.Fprintf(&b, "  - {id: %d, region: %q, addr: %q}\n", q.id, q.region, q.raft)
	}
	path := filepath.Join(root, fmt.Sprintf("n%d.yaml", p.id))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeMatrix writes the latency matrix the tests use and returns its path.
func writeMatrix(t *testing.T, root string) string {
	latency := filepath.Join(root, "latency.json")
	if err := os.WriteFile(latency, []byte(worldQuarter), 0o600); err != nil {
		t.Fatal(err)
	}
	return latency
}

// startThree starts a three-process cluster (us-east, eu-west,
// ap-southeast) on a quarter of the world's round trips and waits until
// every node is ready (`meridian status --wait-ready`). Processes are
// killed when the test ends (their logs printed if it failed).
func startThree(t *testing.T) (bin, root, latency string, procs []*proc) {
	bin = buildBinary(t)
	root = t.TempDir()
	latency = writeMatrix(t, root)
	procs = newProcs(t, root, latency, "us-east", "eu-west", "ap-southeast")
	for _, p := range procs {
		p.start(t, bin)
	}
	reap(t, procs...)
	waitReady(t, bin, procs[0].http, 60*time.Second)
	return bin, root, latency, procs
}

// TestThreeProcessCluster starts three nodes as separate processes, one per
// emulated region, writes through one region and reads through another,
// kills a node with SIGKILL while writes go on, restarts it and checks that
// it catches up.
func TestThreeProcessCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin, root, latency, procs := startThree(t)
	out, err := exec.Command(bin, "keyspace", "create", "default", "--shards", "2", "--home", "us-east", "--addr", procs[1].http).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "created keyspace default") {
		t.Fatalf("keyspace create: %v\n%s", err, out)
	}
	ctx := context.Background()
	clients := make([]*redis.Client, len(procs))
	for i, p := range procs {
		clients[i] = redis.NewClient(&redis.Options{Addr: p.resp, Protocol: 2, MaxRetries: -1})
		defer clients[i].Close()
	}
	// Writes through us-east, strong reads through ap-southeast.
	testutil.Eventually(t, 30*time.Second, "the first write", func() bool { return clients[0].Set(ctx, "k0", "v0", 0).Err() == nil })
	for i := 1; i < 20; i++ {
		if err := clients[0].Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i), 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if v, err := clients[2].Get(ctx, fmt.Sprintf("k%d", i)).Result(); err != nil || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("read k%d in ap-southeast: %q %v", i, v, err)
		}
	}
	// kill -9 the eu-west node; the others keep serving (after an election
	// if it led a shard: retry like a client would).
	procs[1].kill()
	for i := 20; i < 40; i++ {
		key, val := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		testutil.Eventually(t, 30*time.Second, "a write with eu-west down", func() bool { return clients[2].Set(ctx, key, val, 0).Err() == nil })
	}
	// Restart it with the same command line: it catches up.
	procs[1].start(t, bin)
	// The connection's consistency level is per connection: use one.
	var conn *redis.Conn
	testutil.Eventually(t, 60*time.Second, "the restarted node to catch up", func() bool {
		if conn == nil {
			conn = clients[1].Conn()
			if err := conn.Do(ctx, "MERIDIAN.CONSISTENCY", "eventual").Err(); err != nil {
				conn.Close()
				conn = nil
				return false
			}
		}
		// Every shard catches up on its own: wait for all the keys.
		for i := range 40 {
			v, err := conn.Get(ctx, fmt.Sprintf("k%d", i)).Result()
			if err != nil && err != redis.Nil {
				conn.Close()
				conn = nil
				return false
			}
			if v != fmt.Sprintf("v%d", i) {
				return false
			}
		}
		return true
	})
	defer conn.Close()
	for i := range 40 {
		if v, err := conn.Get(ctx, fmt.Sprintf("k%d", i)).Result(); err != nil || v != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d on the restarted node: %q %v", i, v, err)
		}
	}
	out, err = exec.Command(bin, "status", "--addr", procs[2].http).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ap-southeast") || !strings.Contains(string(out), "keyspace default") {
		t.Fatalf("status: %v\n%s", err, out)
	}

	// A fourth node joins the running cluster through a member's HTTP
	// address; it holds no replica of the keyspace and forwards requests.
	p4 := &proc{id: 4, region: "us-east", raft: freeAddr(t), resp: freeAddr(t), http: freeAddr(t), dir: filepath.Join(root, "n4")}
	p4.args = []string{"start", "--id", "4", "--region", "us-east", "--data-dir", p4.dir, "--listen", p4.raft,
		"--resp", p4.resp, "--http", p4.http, "--join", procs[0].http, "--latency", latency, "--log-level", "warn"}
	if p4.log, err = os.Create(filepath.Join(root, "n4.log")); err != nil {
		t.Fatal(err)
	}
	defer p4.log.Close()
	p4.start(t, bin)
	reap(t, p4)
	// Ready: joined, caught up with the metadata (it learns the keyspace).
	waitReady(t, bin, p4.http, 60*time.Second)
	var st struct {
		Nodes     []struct{ ID int }      `json:"nodes"`
		Keyspaces []struct{ Name string } `json:"keyspaces"`
	}
	if err := getJSON("http://"+p4.http+"/v1/cluster", &st); err != nil || len(st.Nodes) != 4 || len(st.Keyspaces) != 1 {
		t.Fatalf("the joined node, ready, sees %d nodes and keyspaces %v (%v)", len(st.Nodes), st.Keyspaces, err)
	}
	c4 := redis.NewClient(&redis.Options{Addr: p4.resp, Protocol: 2, MaxRetries: -1})
	defer c4.Close()
	if err := c4.Set(ctx, "via-4", "yes", 0).Err(); err != nil {
		t.Fatalf("write through the joined node: %v", err)
	}
	if v, err := clients[2].Get(ctx, "via-4").Result(); err != nil || v != "yes" {
		t.Fatalf("read of the joined node's write: %q %v", v, err)
	}
	if v, err := c4.Get(ctx, "k5").Result(); err != nil || v != "v5" {
		t.Fatalf("read through the joined node: %q %v", v, err)
	}

	// A fifth node whose configuration file sets another tick is refused
	// at join, the setting named: leases assume every node ticks alike.
	cfg5 := filepath.Join(root, "n5.toml")
	if err := os.WriteFile(cfg5, []byte(fmt.Sprintf("join = %q\nlatency = %q\n[node]\nid = 5\nregion = \"eu-west\"\ndata_dir = %q\n"+
		"[addresses]\nlisten = %q\nresp = %q\nhttp = %q\n[timings]\ntick_interval = \"20ms\"\n",
		procs[1].http, latency, filepath.Join(root, "n5"), freeAddr(t), freeAddr(t), freeAddr(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin, "start", "--config", cfg5).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "timings.tick_interval is 20ms on this node but 10ms in the cluster") {
		t.Fatalf("a node with another tick joined: %v\n%s", err, out)
	}
	t.Logf("refused at join: %s", strings.TrimSpace(string(out)))
}
