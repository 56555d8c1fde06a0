package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// recordingTB stands in for a test: it keeps its cleanups and errors.
type recordingTB struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingTB) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestHarnessFailsOnUnreapedProcess: a process a test started and did not
// reap fails the test when it ends (and is killed then); a reaped one does
// not.
func TestHarnessFailsOnUnreapedProcess(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	for _, reaped := range []bool{false, true} {
		tb := &recordingTB{TB: t}
		p := &proc{id: 7, cmd: exec.Command(sleep, "60")}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.kill) // whatever happens below
		watch(tb, p)
		if reaped {
			p.kill()
		}
		tb.finish()
		switch {
		case reaped && len(tb.errors) != 0:
			t.Fatalf("a reaped process failed the test: %v", tb.errors)
		case !reaped && (len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "node 7") || !strings.Contains(tb.errors[0], "outlived the test")):
			t.Fatalf("an unreaped process: errors %v, want one naming node 7", tb.errors)
		case p.cmd != nil:
			t.Fatal("the unreaped process was left running")
		}
	}
}

// TestNetnsAvoidsStaleBridges: a bridge left by a killed run (its
// namespaces gone, its address and route still there) is removed, and a
// new world never takes a subnet another interface holds. Before this,
// a world on a stale bridge's subnet could not be reached from the test
// ("connect: no route to host") and its registration wait timed out.
func TestNetnsAvoidsStaleBridges(t *testing.T) {
	if netnsAvailable() != nil {
		t.Skip("network namespaces are not available")
	}
	stale := fmt.Sprintf("mbrstale%d", os.Getpid()%10000)
	if err := ipRun("link", "add", stale, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", stale).Run() })
	if err := ipRun("addr", "add", "10.213.99.1/24", "dev", stale); err != nil {
		t.Fatal(err)
	}
	if err := ipRun("link", "set", stale, "up"); err != nil {
		t.Fatal(err)
	}
	ns, err := newNetns(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.close)
	if _, err := net.InterfaceByName(stale); err == nil {
		t.Fatalf("the stale bridge %s (no ports) is still there", stale)
	}
	// The new world's addresses route through its own bridge.
	for i := 1; i <= 2; i++ {
		out, err := exec.Command("ip", "route", "get", ns.ip(i)).CombinedOutput()
		if err != nil {
			t.Fatalf("ip route get %s: %v: %s", ns.ip(i), err, out)
		}
		if !strings.Contains(string(out), "dev "+ns.bridge+" ") {
			t.Fatalf("%s routes %q, want through %s", ns.ip(i), out, ns.bridge)
		}
	}
	// A subnet held by a live interface is never chosen.
	live := fmt.Sprintf("mlive%d", os.Getpid()%10000)
	if err := ipRun("link", "add", live, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", live).Run() })
	for s := 100; s < 250; s++ {
		if s != ns.subnet {
			if err := ipRun("addr", "add", fmt.Sprintf("10.213.%d.1/24", s), "dev", live); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s, err := freeSubnet(); err == nil {
		t.Fatalf("freeSubnet chose %d with every subnet held", s)
	}
}
