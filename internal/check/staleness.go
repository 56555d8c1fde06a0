package check

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Staleness judges bounded-staleness reads of one key that a single writer
// sets to increasing integers. A read at bounded(D) that began at time s
// must return at least the newest value acknowledged before s - D.
type Staleness struct {
	bound time.Duration

	mu         sync.Mutex
	acks       []ack // in acknowledgement order (values increase)
	reads      int
	violations int
	worst      time.Duration // largest staleness seen
	worstOver  time.Duration // largest excess over the bound
	examples   []string
}

type ack struct {
	at    time.Time
	value int64
}

// NewStaleness returns a judge for reads bounded by bound.
func NewStaleness(bound time.Duration) *Staleness { return &Staleness{bound: bound} }

// Acked records that value was acknowledged at at (values must increase).
func (s *Staleness) Acked(value int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks = append(s.acks, ack{at: at, value: value})
}

// Read judges a read that began at start and returned value (0: nothing).
func (s *Staleness) Read(value int64, start time.Time, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	// The first acknowledged write newer than what was read: the read is
	// at least as stale as the time since it was acknowledged.
	i := sort.Search(len(s.acks), func(i int) bool { return s.acks[i].value > value })
	if i == len(s.acks) || !s.acks[i].at.Before(start) {
		return
	}
	stale := start.Sub(s.acks[i].at)
	s.worst = max(s.worst, stale)
	if stale > s.bound {
		s.violations++
		s.worstOver = max(s.worstOver, stale-s.bound)
		if len(s.examples) < 10 {
			s.examples = append(s.examples, fmt.Sprintf("read %d at %s: %d was acknowledged %v before the read began (bound %v)",
				value, where, s.acks[i].value, stale.Round(time.Millisecond), s.bound))
		}
	}
}

// Result returns the reads judged, the violations, the largest staleness
// seen, the largest excess over the bound and a few examples.
func (s *Staleness) Result() (reads, violations int, worst, worstOver time.Duration, examples []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.violations, s.worst, s.worstOver, append([]string(nil), s.examples...)
}
