package resp

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRedisTools drives a live node with the real redis-cli and
// redis-benchmark, when they are installed (CI installs Debian's
// redis-tools); otherwise it is skipped.
func TestRedisTools(t *testing.T) {
	cli, err1 := exec.LookPath("redis-cli")
	bench, err2 := exec.LookPath("redis-benchmark")
	if err1 != nil || err2 != nil {
		t.Skip("redis-cli or redis-benchmark is not on PATH")
	}
	e := newEnv(t)
	port := func(s *Server) string {
		_, p, _ := net.SplitHostPort(s.Addr())
		return p
	}
	east, asia := port(e.servers[0]), port(e.servers[2])
	run := func(name string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run(cli, "-p", east, "SET", "smoke", "hello"); out != "OK" {
		t.Fatalf("redis-cli SET: %q", out)
	}
	if out := run(cli, "-p", east, "GET", "smoke"); out != "hello" {
		t.Fatalf("redis-cli GET: %q", out)
	}
	if out := run(cli, "-p", asia, "GET", "smoke"); out != "hello" {
		t.Fatalf("redis-cli GET in another region: %q", out)
	}
	if out := run(cli, "-p", east, "INCR", "smoke"); !strings.Contains(out, "ERR value is not an integer or out of range") {
		t.Fatalf("redis-cli INCR of a string: %q", out)
	}
	if out := run(cli, "-p", east, "COMMAND", "DOCS", "GET"); !strings.Contains(out, "summary") || !strings.Contains(out, "string value") {
		t.Fatalf("redis-cli COMMAND DOCS GET: %q", out)
	}
	if out := run(cli, "-p", east, "HELLO", "3"); !strings.Contains(out, "meridian") {
		t.Fatalf("redis-cli HELLO 3: %q", out)
	}

	// -q still draws progress lines, ended by carriage returns.
	out := strings.ReplaceAll(run(bench, "-p", east, "-t", "set,get", "-n", "2000", "-q"), "\r", "\n")
	for _, cmd := range []string{"SET", "GET"} {
		if !regexp.MustCompile(`(?m)^\s*` + cmd + `: [0-9.]+ requests per second`).MatchString(out) {
			t.Fatalf("redis-benchmark did not report %s:\n%s", cmd, out)
		}
	}
	if strings.Contains(out, "ERR") || strings.Contains(out, "WARNING") {
		t.Fatalf("redis-benchmark reported problems:\n%s", out)
	}
	// redis-benchmark's lists and sorted sets (LRANGE's tests push first).
	lists := strings.ReplaceAll(run(bench, "-p", east, "-t", "lpush,rpush,lpop,rpop,zadd,zpopmin,lrange_100", "-n", "1000", "-q"), "\r", "\n")
	for _, cmd := range []string{"LPUSH", "RPUSH", "LPOP", "RPOP", "ZADD", "ZPOPMIN", `LRANGE_100 \(first 100 elements\)`} {
		if !regexp.MustCompile(`(?m)^\s*` + cmd + `: [0-9.]+ requests per second`).MatchString(lists) {
			t.Fatalf("redis-benchmark did not report %s:\n%s", cmd, lists)
		}
	}
	if strings.Contains(lists, "ERR") || strings.Contains(lists, "WARNING") {
		t.Fatalf("redis-benchmark's lists and sorted sets reported problems:\n%s", lists)
	}
	if out := run(cli, "-p", asia, "TYPE", "mylist"); out != "list" {
		t.Fatalf("redis-benchmark's list is a %q", out)
	}
	out += "\n" + lists
	// What the benchmark wrote is there, and redis-cli's SCAN mode finds it.
	if out := run(cli, "-p", asia, "GET", "key:__rand_int__"); len(out) != 3 {
		t.Fatalf("the benchmark's key holds %q, want its 3-byte value", out)
	}
	mset := []string{"-p", east, "MSET"}
	for i := range 30 {
		mset = append(mset, fmt.Sprintf("many:%d", i), "v")
	}
	if out := run(cli, mset...); out != "OK" {
		t.Fatalf("redis-cli MSET: %q", out)
	}
	keys := strings.Fields(run(cli, "-p", asia, "--scan"))
	slices.Sort(keys)
	if len(keys) != 33 || len(slices.Compact(slices.Clone(keys))) != 33 || !slices.Contains(keys, "mylist") ||
		!slices.Contains(keys, "key:__rand_int__") || !slices.Contains(keys, "smoke") || !slices.Contains(keys, "many:29") {
		t.Fatalf("redis-cli --scan: %d keys %q", len(keys), keys)
	}
	if out := run(cli, "-p", asia, "--scan", "--pattern", "many:1*"); len(strings.Fields(out)) != 11 {
		t.Fatalf("redis-cli --scan --pattern many:1*: %q", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "requests per second") {
			t.Logf("redis-benchmark: %s", strings.TrimSpace(line))
		}
	}
}
