package node

import (
	"context"
	"reflect"
	"sync/atomic"
	"time"
)

// Request deadlines. Every request whose context has no deadline gets one
// (Config.RequestTimeout), and a context.WithTimeout per request costs a
// timer, an allocation and the parent's lock twice (register, cancel): 5%
// of the CPU of a durable SET. A front end passes the same long-lived
// context (its server's) with every request, so requests asked for within
// one granule of each other share one context derived from it, which ends
// one timeout after the granule ends: a request gets at least its timeout
// and at most a granule more (1% of the timeout, at most 10 ms).

// coarseDeadlines holds the context handed out in the current granule.
type coarseDeadlines struct {
	cur atomic.Pointer[coarseWindow]
}

type coarseWindow struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc // never called: the context ends at its deadline or with its parent
	until  int64              // handed out until then (Unix ns)
}

// granule returns how long one shared context is handed out for a
// timeout (0: too short to share).
func granule(timeout time.Duration) time.Duration {
	return min(timeout/100, 10*time.Millisecond)
}

// get returns a context that ends no sooner than timeout from now, derived
// from parent (which has no deadline), shared with the other requests of
// the granule, or ok false if none can be shared: parent is not the one
// this granule's context derives from, or is of a type that cannot be
// compared.
func (d *coarseDeadlines) get(parent context.Context, timeout time.Duration) (context.Context, bool) {
	gran := granule(timeout)
	if gran <= 0 || !reflect.TypeOf(parent).Comparable() {
		return nil, false
	}
	now := time.Now()
	w := d.cur.Load()
	if w != nil && now.UnixNano() < w.until {
		if w.parent == parent {
			return w.ctx, true
		}
		return nil, false // another parent's granule: not for long
	}
	ctx, cancel := context.WithDeadline(parent, now.Add(timeout+gran))
	nw := &coarseWindow{parent: parent, ctx: ctx, cancel: cancel, until: now.Add(gran).UnixNano()}
	d.cur.CompareAndSwap(w, nw) // one that lost the race still uses its own
	return ctx, true
}

func noCancel() {}
