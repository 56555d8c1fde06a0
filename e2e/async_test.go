package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
)

// TestAsyncSwitchoverAndFailover runs an async keyspace on three processes:
// a switchover through the CLI under writes, then kill -9 of the new
// primary's process, a failover to a third region, the old primary's
// return and its lost-writes report, read through the CLI.
func TestAsyncSwitchoverAndFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin, _, _, procs := startThree(t)
	cli := func(args ...string) (string, error) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := cli("keyspace", "create", "a", "--strategy", "async", "--home", "us-east", "--shards", "2", "--addr", procs[0].http); err != nil {
		t.Fatalf("keyspace create: %v\n%s", err, out)
	}
	ctx := context.Background()
	clients := make([]*redis.Client, len(procs))
	for i, p := range procs {
		clients[i] = redis.NewClient(&redis.Options{Addr: p.resp, Protocol: 2, MaxRetries: -1,
			OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.Do(ctx, "MERIDIAN.KEYSPACE", "a").Err() }})
		defer clients[i].Close()
	}
	acked := map[string]string{}
	write := func(c *redis.Client, k, v string) {
		t.Helper()
		testutil.Eventually(t, 30*time.Second, "write "+k, func() bool { return c.Set(ctx, k, v, 0).Err() == nil })
		acked[k] = v
	}
	for i := range 20 {
		write(clients[i%3], fmt.Sprintf("a%d", i), "x")
	}
	// Switchover to eu-west while a client keeps writing through
	// ap-southeast.
	stop := make(chan struct{})
	done := make(chan map[string]string)
	var written atomic.Int64
	go func() {
		mine := map[string]string{}
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- mine
				return
			default:
			}
			k := fmt.Sprintf("b%d", i)
			if clients[2].Set(ctx, k, "y", 0).Err() == nil {
				mine[k] = "y"
				written.Add(1)
			}
		}
	}()
	out, err := cli("switchover", "a", "--to", "eu-west", "--addr", procs[2].http)
	if err != nil || !strings.Contains(out, "us-east -> eu-west") {
		t.Fatalf("switchover: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	after := written.Load()
	testutil.Eventually(t, 30*time.Second, "writes on the new primary", func() bool { return written.Load() >= after+10 })
	close(stop)
	for k, v := range <-done {
		acked[k] = v
	}
	// Bad input: a failover while the primary answers is refused.
	if out, err := cli("failover", "a", "--to", "ap-southeast", "--addr", procs[2].http); err == nil || !strings.Contains(out, "primary_healthy") {
		t.Fatalf("failover with a healthy primary: %v\n%s", err, out)
	}
	// Every write so far is at the new primary.
	for k, v := range acked {
		if got, err := clients[1].Get(ctx, k).Result(); err != nil || got != v {
			t.Fatalf("after the switchover %s = %q %v, want %q", k, got, err, v)
		}
	}
	// kill -9 the new primary, fail over to ap-southeast, write there.
	procs[1].kill()
	testutil.Eventually(t, 60*time.Second, "the failover", func() bool {
		out, err = cli("failover", "a", "--to", "ap-southeast", "--addr", procs[2].http)
		return err == nil
	})
	t.Logf("%s", strings.TrimSpace(out))
	for i := range 10 {
		write(clients[2], fmt.Sprintf("c%d", i), "z")
	}
	// The old primary returns as a replica; its report is readable.
	procs[1].start(t, bin)
	var report struct {
		Forks []struct {
			Reported bool `json:"reported"`
		} `json:"forks"`
		Writes []struct {
			Key []byte `json:"key"`
		} `json:"writes"`
	}
	testutil.Eventually(t, 60*time.Second, "the old primary's report", func() bool {
		out, err := cli("lost-writes", "a", "--json", "--addr", procs[0].http)
		if err != nil || json.Unmarshal([]byte(out), &report) != nil || len(report.Forks) == 0 {
			return false
		}
		for _, f := range report.Forks {
			if !f.Reported {
				return false
			}
		}
		return true
	})
	lost := map[string]bool{}
	for _, w := range report.Writes {
		lost[string(w.Key)] = true
	}
	// Every acknowledged write is at the new primary or in the report, and
	// every region converges (eu-west included) on the new primary's data.
	for k, v := range acked {
		got, err := clients[2].Get(ctx, k).Result()
		if (err != nil || got != v) && !lost[k] {
			t.Fatalf("acknowledged write %s=%s is neither at the new primary (%q %v) nor reported lost", k, v, got, err)
		}
	}
	conn := clients[1].Conn()
	defer conn.Close()
	testutil.Eventually(t, 60*time.Second, "eu-west to converge", func() bool {
		if conn.Do(ctx, "MERIDIAN.CONSISTENCY", "eventual").Err() != nil {
			return false
		}
		for i := range 10 {
			if v, err := conn.Get(ctx, fmt.Sprintf("c%d", i)).Result(); err != nil || v != "z" {
				return false
			}
		}
		return true
	})
	t.Logf("%d acknowledged writes, %d reported lost by the failed-over primary", len(acked), len(lost))
}
