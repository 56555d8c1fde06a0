package testutil

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitForReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := WaitFor(ctx, func() bool { return calls.Add(1) >= 3 }); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if got := calls.Load(); got != 3 {
		t.Fatalf("condition evaluated %d times, want 3 (it stops once it holds)", got)
	}
}

func TestWaitForEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	err := WaitFor(ctx, func() bool {
		if calls.Add(1) == 2 {
			cancel()
		}
		return false
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor after cancel: %v, want context.Canceled", err)
	}
}

// fakeT records a failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestEventuallyFailsAfterItsTimeout(t *testing.T) {
	f := &fakeT{TB: t}
	Eventually(f, 30*time.Millisecond, "nothing", func() bool { return false })
	if f.failed == "" {
		t.Fatal("Eventually did not fail on a condition that never holds")
	}
	f = &fakeT{TB: t}
	Eventually(f, time.Second, "something", func() bool { return true })
	if f.failed != "" {
		t.Fatalf("Eventually failed on a condition that holds: %s", f.failed)
	}
}
