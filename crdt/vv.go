package crdt

import (
	"slices"
	"strconv"
	"strings"
)

// A Dot names one operation: the region that performed it and that
// region's sequence number for it.
type Dot struct {
	Region string
	Seq    uint64
}

// A VersionVector maps each region to the highest sequence number of that
// region's operations that have been seen. A missing region and a zero
// entry both mean that nothing from the region has been seen. The nil
// VersionVector is empty and may be read, but not written.
type VersionVector map[string]uint64

// Ordering is the result of comparing two version vectors.
type Ordering int

// Orderings of version vectors.
const (
	Equal      Ordering = iota // both have seen exactly the same
	Before                     // the first has seen less than the second
	After                      // the first has seen more than the second
	Concurrent                 // each has seen something the other has not
)

func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(" + strconv.Itoa(int(o)) + ")"
}

// Contains reports whether v has seen the operation d.
func (v VersionVector) Contains(d Dot) bool { return d.Seq != 0 && v[d.Region] >= d.Seq }

// Merge returns a new vector holding, for every region, the larger entry of
// v and o: everything either has seen.
func (v VersionVector) Merge(o VersionVector) VersionVector {
	out := make(VersionVector, max(len(v), len(o)))
	for r, n := range v {
		if n != 0 {
			out[r] = n
		}
	}
	for r, n := range o {
		if n > out[r] {
			out[r] = n
		}
	}
	return out
}

// Compare tells whether v has seen less than (Before), more than (After),
// the same as (Equal) or something different from (Concurrent) o.
func (v VersionVector) Compare(o VersionVector) Ordering {
	less, more := false, false
	for r, n := range v {
		if m := o[r]; n > m {
			more = true
		} else if n < m {
			less = true
		}
	}
	for r, m := range o {
		if _, ok := v[r]; !ok && m > 0 {
			less = true
		}
	}
	switch {
	case less && more:
		return Concurrent
	case less:
		return Before
	case more:
		return After
	}
	return Equal
}

// Dominates reports whether v has seen everything o has (v >= o for every
// region). Equal vectors dominate each other.
func (v VersionVector) Dominates(o VersionVector) bool {
	for r, m := range o {
		if v[r] < m {
			return false
		}
	}
	return true
}

// Clone returns a copy of v without zero entries; it is never nil.
func (v VersionVector) Clone() VersionVector { return v.Merge(nil) }

// String formats v as "{eu:3 us:5}", regions in order.
func (v VersionVector) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range v.regions() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(v[r], 10))
	}
	b.WriteByte('}')
	return b.String()
}

// regions returns the regions with a non-zero entry, in order.
func (v VersionVector) regions() []string {
	rs := make([]string, 0, len(v))
	for r, n := range v {
		if n != 0 {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	return rs
}

// next records a new operation of s.Region in v and returns its dot. The
// sequence number is s.Seq, raised if needed to one more than the highest
// one v has seen from the region, so that the region's dots only grow.
func (v VersionVector) next(s Stamp) Dot {
	seq := v[s.Region]
	if seq < ^uint64(0) {
		seq++
	}
	seq = max(seq, s.Seq)
	v[s.Region] = seq
	return Dot{s.Region, seq}
}

// StableVector returns the pointwise minimum of seen: what every one of
// them has seen. Given, for every region, the vector that region reported
// having seen, the result is the causally stable part of the history (see
// Collectable). It returns an empty vector if seen is empty.
func StableVector(seen ...VersionVector) VersionVector {
	out := VersionVector{}
	if len(seen) == 0 {
		return out
	}
	for r, n := range seen[0] {
		for _, o := range seen[1:] {
			n = min(n, o[r])
		}
		if n != 0 {
			out[r] = n
		}
	}
	return out
}

// Encode returns the canonical binary form of v: the number of non-zero
// entries, then each region (length-prefixed) and its entry, in region
// order, all lengths and numbers as unsigned varints.
func (v VersionVector) Encode() []byte {
	rs := v.regions()
	b := appendUvarint(nil, uint64(len(rs)))
	for _, r := range rs {
		b = appendString(b, r)
		b = appendUvarint(b, v[r])
	}
	return b
}

// DecodeVersionVector parses the output of VersionVector.Encode. It accepts
// only the canonical form and returns an error wrapping ErrBadEncoding for
// anything else.
func DecodeVersionVector(b []byte) (VersionVector, error) {
	d := decoder{b: b}
	n := d.count()
	v := make(VersionVector, n)
	prev := ""
	for i := range n {
		r := d.string()
		seq := d.uvarint()
		if d.err == nil && (i > 0 && r <= prev || seq == 0) {
			d.fail("version vector entries out of order or zero")
		}
		v[r], prev = seq, r
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return v, nil
}

// equalVV reports whether a and b have seen the same.
func equalVV(a, b VersionVector) bool { return a.Dominates(b) && b.Dominates(a) }

// String formats d as "region:seq".
func (d Dot) String() string { return d.Region + ":" + strconv.FormatUint(d.Seq, 10) }
