package hlc

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxOffset is the recommended maximum clock offset between any two
// nodes of a multi-region Meridian cluster.
const DefaultMaxOffset = 500 * time.Millisecond

// ErrClockOffset is returned (wrapped) by Clock.Update when a remote
// timestamp is further ahead of the local wall clock than the maximum offset
// allows.
var ErrClockOffset = errors.New("hlc: remote timestamp is beyond the maximum clock offset")

// ErrClockExhausted is returned (wrapped) by Clock.Update when accepting a
// remote timestamp would leave no larger timestamp to issue, i.e. the remote
// is at the very end of the representable range. It can only be seen when the
// offset check is disabled or the wall clock itself reports such times.
var ErrClockExhausted = errors.New("hlc: no timestamp left after the maximum representable one")

// Clock is a hybrid logical clock owned by a single node. Every reading it
// returns, from Now or Update, is strictly greater than all readings returned
// before it and all remote timestamps merged into it.
//
// A Clock is safe for concurrent use by multiple goroutines.
type Clock struct {
	node        uint32
	maxOffset   time.Duration
	maxOffsetMS int64 // maxOffset rounded up to whole ms; 0 = no limit
	wall        func() int64

	offenders atomic.Uint64

	mu struct {
		sync.Mutex
		// last is the most recent reading issued by Now or Update.
		last Timestamp
		// started records whether last holds a reading; it lets the first
		// reading use a negative wall time instead of bumping the zero value.
		started bool
	}
}

// New returns a Clock for the given node that reads the system wall clock.
// maxOffset bounds how far ahead of the local wall clock an accepted remote
// timestamp may be; DefaultMaxOffset (500ms) is recommended. A maxOffset of
// zero or less disables the check.
func New(node uint32, maxOffset time.Duration) *Clock {
	return NewWithWall(node, maxOffset, nil)
}

// NewWithWall is like New but reads the wall clock through wallMS, which must
// return milliseconds since the Unix epoch and be safe for concurrent use. It
// exists so that tests can simulate skewed, stalled or backwards-moving
// clocks. A nil wallMS selects the system wall clock.
func NewWithWall(node uint32, maxOffset time.Duration, wallMS func() int64) *Clock {
	if wallMS == nil {
		wallMS = systemWallMS
	}
	if maxOffset < 0 {
		maxOffset = 0
	}
	c := &Clock{
		node:      node,
		maxOffset: maxOffset,
		wall:      wallMS,
	}
	if maxOffset > 0 {
		// Round up so that a sub-millisecond offset is never stricter than
		// what the caller asked for.
		c.maxOffsetMS = int64((maxOffset + time.Millisecond - 1) / time.Millisecond)
	}
	return c
}

func systemWallMS() int64 {
	return time.Now().UnixMilli()
}

// Now returns a new reading of the clock. It is the local wall time if that is
// ahead of every previous reading; otherwise it keeps the previous wall time
// and increments the logical counter, so a stalled or backwards-moving wall
// clock never produces a smaller or repeated timestamp. When the logical
// counter is exhausted the wall component is advanced by one millisecond.
//
// Now panics if the clock has already issued the largest representable
// timestamp, which requires a wall clock reporting times close to the limit
// of int64 milliseconds.
func (c *Clock) Now() Timestamp {
	w := c.wall()
	c.mu.Lock()
	defer c.mu.Unlock()
	next, ok := c.advanceLocked(c.mu.last, c.mu.started, w)
	if !ok {
		panic(fmt.Sprintf("%v: last reading %s", ErrClockExhausted, c.mu.last))
	}
	c.mu.last, c.mu.started = next, true
	return next
}

// Update merges a timestamp received from another node into the clock and
// returns the resulting reading, which is strictly greater than both the
// previous reading and remote.
//
// If a maximum offset is configured and remote.WallMS is more than that
// offset ahead of the local wall clock, Update returns an error wrapping
// ErrClockOffset, counts the refusal (see Offenders), and leaves the clock
// unchanged. A remote timestamp that is behind the local clock is always
// accepted.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	w := c.wall()
	if c.maxOffsetMS > 0 && remote.WallMS > satAdd(w, c.maxOffsetMS) {
		c.offenders.Add(1)
		// remote.WallMS > w here, so the difference fits in a uint64.
		ahead := uint64(remote.WallMS) - uint64(w)
		return Timestamp{}, fmt.Errorf("%w: %s from node %d is %dms ahead of local wall time %d (max offset %v)",
			ErrClockOffset, remote, remote.Node, ahead, w, c.maxOffset)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	base, started := c.mu.last, c.mu.started
	if !started || base.Less(remote) {
		base, started = remote, true
	}
	next, ok := c.advanceLocked(base, started, w)
	if !ok {
		return Timestamp{}, fmt.Errorf("%w: cannot advance past %s from node %d",
			ErrClockExhausted, remote, remote.Node)
	}
	c.mu.last = next
	c.mu.started = true
	return next, nil
}

// advanceLocked returns the smallest reading this clock may issue that is
// strictly greater than base (when started) and reflects the wall time w. It
// reports false if no such reading exists.
func (c *Clock) advanceLocked(base Timestamp, started bool, w int64) (Timestamp, bool) {
	if !started || w > base.WallMS {
		return Timestamp{WallMS: w, Node: c.node}, true
	}
	if base.Logical < math.MaxUint32 {
		return Timestamp{WallMS: base.WallMS, Logical: base.Logical + 1, Node: c.node}, true
	}
	if base.WallMS < math.MaxInt64 {
		return Timestamp{WallMS: base.WallMS + 1, Node: c.node}, true
	}
	return Timestamp{}, false
}

// Last returns the most recent reading issued by Now or Update without
// advancing the clock. It returns the zero Timestamp if there has been none.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.last
}

// MaxOffset returns the configured maximum clock offset. Zero means that
// remote timestamps are never refused for being too far ahead.
func (c *Clock) MaxOffset() time.Duration {
	return c.maxOffset
}

// Node returns the id of the node that owns the clock.
func (c *Clock) Node() uint32 {
	return c.node
}

// Offenders returns the number of remote timestamps that Update has refused
// for exceeding the maximum offset since the clock was created.
func (c *Clock) Offenders() uint64 {
	return c.offenders.Load()
}

// satAdd returns a+b for b >= 0, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
