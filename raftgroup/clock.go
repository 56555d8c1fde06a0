package raftgroup

import (
	"sync"
	"time"
)

// Clock is the host's time: the ticks that drive raft and the wall clock
// leases are measured on (see lease.go). Config.Clock nil means the
// system's: a time.Ticker and time.Now. Tests pass a ManualClock to drive
// time by hand.
//
// The lease argument needs one property of a clock: ticks are never
// early. A tick delivered at Now() = t means at least one TickInterval
// has passed since the previous tick; a late tick only makes raft slower.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTicker returns a channel that delivers a tick every interval,
	// and a function that stops it.
	NewTicker(interval time.Duration) (ticks <-chan time.Time, stop func())
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// OffsetClock is the system's time moved by Offset: a process whose clock
// is wrong by that much, for emulating clock skew between nodes (the
// node's --clock-offset). Durations measured on it are the system's; only
// the wall time it reads is moved. Its tickers are the system's.
type OffsetClock struct{ Offset time.Duration }

// Now implements Clock.
func (c OffsetClock) Now() time.Time { return time.Now().Add(c.Offset) }

// NewTicker implements Clock.
func (OffsetClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	return systemClock{}.NewTicker(d)
}

// ManualClock is a Clock that moves only when told (Advance). Every
// ticker created from it fires once per interval of the time it is
// advanced by, in time order, each tick handed to its host's loop before
// Advance goes on. Many hosts may share one ManualClock, as the nodes of
// a test cluster share the wall clock.
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers map[*manualTicker]struct{}
}

type manualTicker struct {
	interval time.Duration
	next     time.Time
	ch       chan time.Time
	stopped  chan struct{}
	once     sync.Once
}

// NewManualClock returns a clock that reads start until advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, tickers: map[*manualTicker]struct{}{}}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTicker implements Clock.
func (c *ManualClock) NewTicker(interval time.Duration) (<-chan time.Time, func()) {
	t := &manualTicker{interval: interval, ch: make(chan time.Time), stopped: make(chan struct{})}
	c.mu.Lock()
	t.next = c.now.Add(interval)
	c.tickers[t] = struct{}{}
	c.mu.Unlock()
	return t.ch, func() {
		t.once.Do(func() {
			c.mu.Lock()
			delete(c.tickers, t)
			c.mu.Unlock()
			close(t.stopped)
		})
	}
}

// Advance moves the clock forward by d. Each tick that falls due on the
// way is delivered, in time order, with the clock reading the tick's
// time; Advance returns once every such tick has been taken by its
// host's loop (or the ticker was stopped).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due *manualTicker
		for t := range c.tickers {
			if !t.next.After(target) && (due == nil || t.next.Before(due.next)) {
				due = t
			}
		}
		if due == nil {
			if target.After(c.now) {
				c.now = target
			}
			c.mu.Unlock()
			return
		}
		at := due.next
		due.next = at.Add(due.interval)
		if at.After(c.now) {
			c.now = at
		}
		c.mu.Unlock()
		select {
		case due.ch <- at:
		case <-due.stopped:
		}
	}
}

// Tick advances the clock by n intervals of d: n ticks of every ticker
// whose interval is d.
func (c *ManualClock) Tick(n int, d time.Duration) { c.Advance(time.Duration(n) * d) }
