package e2e

import (
	"fmt"
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
