// Package testutil holds the helpers that tests of several packages
// share. It is imported by tests only.
package testutil

import (
	"context"
	"testing"
	"time"
)

// PollInterval is the pause between two evaluations of a condition.
const PollInterval = 10 * time.Millisecond

// WaitFor evaluates cond at once and then every PollInterval until it
// holds (nil) or ctx ends (ctx.Err()). The interval only paces the
// polling: the caller waits for the condition, never for a fixed time.
func WaitFor(ctx context.Context, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if cond() {
				return nil
			}
		}
	}
}

// Eventually waits until cond holds, failing the test (naming what it
// waited for) if timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := WaitFor(ctx, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
