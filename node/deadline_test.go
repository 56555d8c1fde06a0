package node

import (
	"context"
	"testing"
	"time"
)

// uncomparableCtx is a context of a type == cannot compare.
type uncomparableCtx struct {
	context.Context
	tags []string
}

// TestCoarseDeadlines: writes of one granule share one context, which ends
// no sooner than the timeout after each of them asked and no later than a
// granule more; another parent gets none while the granule lasts; the
// parent's end ends it; a context of a type that cannot be compared, or a
// timeout too short to share, gets none.
func TestCoarseDeadlines(t *testing.T) {
	const timeout = 200 * time.Millisecond
	gran := granule(timeout)
	var d coarseDeadlines
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()

	before := time.Now()
	a, ok := d.get(parent, timeout)
	b, ok2 := d.get(parent, timeout)
	after := time.Now()
	if !ok || !ok2 {
		t.Fatal("no shared context for a comparable parent")
	}
	if a != b && after.Sub(before) < gran {
		t.Fatal("two requests of one granule got different contexts")
	}
	dl, has := a.Deadline()
	if !has || dl.Before(after.Add(timeout-gran)) || dl.Before(before.Add(timeout)) || dl.After(after.Add(timeout+gran)) {
		t.Fatalf("deadline %v after asking in [%v, %v], timeout %v, granule %v", dl, before, after, timeout, gran)
	}
	if _, ok := d.get(context.Background(), timeout); ok && time.Since(before) < gran {
		t.Fatal("another parent got the granule's context")
	}

	// A later granule: a new context, ending later.
	var c context.Context
	for c == nil || c == a {
		c, _ = d.get(parent, timeout)
	}
	if dc, _ := c.Deadline(); !dc.After(dl) {
		t.Fatalf("a later granule's deadline %v is not after %v", dc, dl)
	}
	cancel()
	for _, x := range []context.Context{a, c} {
		select {
		case <-x.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the parent ended and a shared context did not")
		}
	}

	if _, ok := d.get(uncomparableCtx{Context: context.Background()}, timeout); ok {
		t.Fatal("a context of an uncomparable type was compared")
	}
	if _, ok := d.get(context.Background(), 50*time.Nanosecond); ok {
		t.Fatal("a timeout too short to share was shared")
	}
}
