// Package e2e runs real `meridian` processes: it builds the binary, starts
// a three-region cluster on 127.0.0.1 with emulated inter-region latency,
// and drives it the way a user would (redis clients, the CLI, kill -9).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meridian")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meridian-db/meridian/cmd/meridian").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func (p *proc) start(t *testing.T, bin string) {
	t.Helper()
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// startThree starts a three-process cluster (us-east, eu-west,
// ap-southeast) on a quarter of the world's round trips and waits until
// every node is registered. Processes are killed when the test ends (their
// logs printed if it failed).
func startThree(t *testing.T) (bin, root, latency string, procs []*proc) {
	bin = buildBinary(t)
	root = t.TempDir()
	// A quarter of the world's round trips keeps the test quick.
	matrix := `{"regions":["us-east","eu-west","ap-southeast"],"rtt_ms":{"us-east":{"eu-west":20,"ap-southeast":54},"eu-west":{"ap-southeast":60}}}`
	latency = filepath.Join(root, "latency.json")
	if err := os.WriteFile(latency, []byte(matrix), 0o600); err != nil {
		t.Fatal(err)
	}
	regions := []string{"us-east", "eu-west", "ap-southeast"}
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
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("n%d.log", p.id)))
		if err != nil {
			t.Fatal(err)
		}
		p.log = f
		p.start(t, bin)
	}
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
	waitFor(t, "three nodes registered", 60*time.Second, func() bool {
		var st struct {
			Nodes []struct{ ID int } `json:"nodes"`
		}
		return getJSON("http://"+procs[0].http+"/v1/cluster", &st) == nil && len(st.Nodes) == 3
	})
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
	waitFor(t, "the first write", 30*time.Second, func() bool { return clients[0].Set(ctx, "k0", "v0", 0).Err() == nil })
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
		waitFor(t, "a write with eu-west down", 30*time.Second, func() bool { return clients[2].Set(ctx, key, val, 0).Err() == nil })
	}
	// Restart it with the same command line: it catches up.
	procs[1].start(t, bin)
	// The connection's consistency level is per connection: use one.
	var conn *redis.Conn
	waitFor(t, "the restarted node to catch up", 60*time.Second, func() bool {
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
	procs = append(procs, p4)
	p4.start(t, bin)
	waitFor(t, "the joined node to see the keyspace", 60*time.Second, func() bool {
		var st struct {
			Nodes     []struct{ ID int }      `json:"nodes"`
			Keyspaces []struct{ Name string } `json:"keyspaces"`
		}
		return getJSON("http://"+p4.http+"/v1/cluster", &st) == nil && len(st.Nodes) == 4 && len(st.Keyspaces) == 1
	})
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
}
