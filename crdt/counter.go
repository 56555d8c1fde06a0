package crdt

import (
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
)

// A Counter is a PN-counter: every region keeps its own totals of
// increments and decrements, merged by taking the larger of each, so no
// increment is ever lost or counted twice. Clear cancels the increments it
// has seen by recording each region's totals at that point; increments it
// has not seen survive it.
//
// The zero value is a counter at zero that does not exist yet (not Live),
// ready to use.
type Counter struct {
	ctx VersionVector
	// del is what Clear operations have seen; the counter is Live if it
	// has seen more.
	del  VersionVector
	rows map[string]counterRow
}

// counterRow holds one region's totals and the part of them cleared.
type counterRow struct {
	inc, dec         uint64
	incGone, decGone uint64
}

func (r counterRow) max(o counterRow) counterRow {
	return counterRow{max(r.inc, o.inc), max(r.dec, o.dec), max(r.incGone, o.incGone), max(r.decGone, o.decGone)}
}

// Type returns "counter".
func (*Counter) Type() string { return "counter" }

// Add adds delta (which may be negative or zero) to the counter at s. It
// fails with ErrOverflow, changing nothing, if the counter's value would
// leave the int64 range or a region's total would overflow.
func (c *Counter) Add(s Stamp, delta int64) error {
	row := c.rows[s.Region]
	pos, neg := c.totals()
	var ok bool
	if delta >= 0 {
		row.inc, ok = addUint64(row.inc, uint64(delta))
		pos = pos.add(uint64(delta))
	} else {
		mag := uint64(-(delta + 1)) + 1
		row.dec, ok = addUint64(row.dec, mag)
		neg = neg.add(mag)
	}
	if _, fits := difference(pos, neg); !ok || !fits {
		return fmt.Errorf("%w: adding %d to %d", ErrOverflow, delta, c.Value())
	}
	record(&c.ctx, s)
	if row != (counterRow{}) {
		if c.rows == nil {
			c.rows = make(map[string]counterRow)
		}
		c.rows[s.Region] = row
	}
	return nil
}

// Clear sets the counter to zero and deletes it, at s: it cancels every
// increment and decrement it has seen.
func (c *Counter) Clear(s Stamp) {
	for r, row := range c.rows {
		row.incGone, row.decGone = row.inc, row.dec
		c.rows[r] = row
	}
	record(&c.ctx, s)
	c.del = c.ctx.Clone()
}

// Value returns the sum of all increments and decrements not cancelled by
// Clear. Concurrent additions in several regions can take the sum out of
// the int64 range, which Add cannot prevent; Value then saturates at
// math.MaxInt64 or math.MinInt64.
func (c *Counter) Value() int64 {
	v, _ := difference(c.totals())
	return v
}

// totals returns the sums of the counter's live increments and decrements.
func (c *Counter) totals() (pos, neg uint128) {
	for _, r := range c.rows {
		pos = pos.add(r.inc - min(r.incGone, r.inc))
		neg = neg.add(r.dec - min(r.decGone, r.dec))
	}
	return pos, neg
}

// Live reports whether the counter exists: whether it reflects an
// operation that no Clear has seen.
func (c *Counter) Live() bool { return !c.del.Dominates(c.ctx) }

// Context returns a copy of the counter's causal context.
func (c *Counter) Context() VersionVector { return c.ctx.Clone() }

func (c *Counter) clone() Value {
	return &Counter{ctx: c.ctx.Clone(), del: c.del.Clone(), rows: maps.Clone(c.rows)}
}

func (c *Counter) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Counter)
	out := &Counter{ctx: c.ctx.Merge(o.ctx), del: c.del.Merge(o.del), rows: maps.Clone(c.rows)}
	if out.rows == nil {
		out.rows = make(map[string]counterRow, len(o.rows))
	}
	for r, row := range o.rows {
		out.rows[r] = out.rows[r].max(row)
	}
	return out, nil, nil
}

// Encode returns the canonical binary form of the counter.
func (c *Counter) Encode() []byte {
	refs := map[string]bool{}
	for r := range c.rows {
		refs[r] = true
	}
	for r, n := range c.del {
		if n != 0 {
			refs[r] = true
		}
	}
	e := newEncoder(tagCounter, dotSetOf(c.ctx), refs, false)
	e.vv(c.del)
	rs := slices.Sorted(maps.Keys(c.rows))
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		row := c.rows[r]
		e.region(r)
		e.uvarint(row.inc)
		e.uvarint(row.dec)
		e.uvarint(row.incGone)
		e.uvarint(row.decGone)
	}
	return e.b
}

// DecodeCounter parses the output of Counter.Encode.
func DecodeCounter(b []byte) (*Counter, error) { return decodeAs[*Counter](b) }

func decodeCounter(d *decoder, ctx VersionVector) *Counter {
	c := &Counter{ctx: ctx, del: d.vv()}
	n := d.count()
	c.rows = make(map[string]counterRow, n)
	var prev uint64
	for i := range n {
		r := d.regionIndex()
		row := counterRow{d.uvarint(), d.uvarint(), d.uvarint(), d.uvarint()}
		if d.err != nil {
			return nil
		}
		if i > 0 && r <= prev || row == (counterRow{}) {
			d.fail("counter rows out of order or empty")
			return nil
		}
		prev = r
		c.rows[d.regions[r]] = row
	}
	return c
}

func addUint64(a, b uint64) (uint64, bool) {
	s, carry := bits.Add64(a, b, 0)
	return s, carry == 0
}

// uint128 is an unsigned 128-bit integer, wide enough for any sum of
// per-region totals.
type uint128 struct{ hi, lo uint64 }

func (u uint128) add(x uint64) uint128 {
	lo, carry := bits.Add64(u.lo, x, 0)
	return uint128{u.hi + carry, lo}
}

// difference returns pos-neg and true if it fits an int64, or the
// saturated value and false.
func difference(pos, neg uint128) (int64, bool) {
	if pos.hi > neg.hi || pos.hi == neg.hi && pos.lo >= neg.lo {
		lo, borrow := bits.Sub64(pos.lo, neg.lo, 0)
		if pos.hi-neg.hi-borrow != 0 || lo > math.MaxInt64 {
			return math.MaxInt64, false
		}
		return int64(lo), true
	}
	lo, borrow := bits.Sub64(neg.lo, pos.lo, 0)
	if neg.hi-pos.hi-borrow != 0 || lo > 1<<63 {
		return math.MinInt64, false
	}
	return -int64(lo), true
}
