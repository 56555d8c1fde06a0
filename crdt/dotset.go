package crdt

import (
	"maps"
	"slices"
	"sort"
)

// A dotSet is a causal context that need not be a version vector: for
// each region, the sequence numbers seen, as sorted ranges (lo, hi] that
// neither overlap nor touch. A version vector is the special case of one
// range (0, n] per region.
//
// Sets and maps keep their context as a dotSet, because a delta (see
// Delta) says exactly which dots it covers: the operation's own ones and
// those it removed, not everything before them. A state that merged a
// delta before the operations before it has gaps until they arrive.
type dotSet map[string][]seqRange

// seqRange is the sequence numbers (lo, hi] of one region, lo < hi.
type seqRange struct{ lo, hi uint64 }

// dotSetOf returns the version vector v as a dotSet.
func dotSetOf(v VersionVector) dotSet {
	out := make(dotSet, len(v))
	for r, n := range v {
		if n != 0 {
			out[r] = []seqRange{{0, n}}
		}
	}
	return out
}

// contains reports whether s holds the dot d.
func (s dotSet) contains(d Dot) bool {
	if d.Seq == 0 {
		return false
	}
	rs := s[d.Region]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].hi >= d.Seq })
	return i < len(rs) && rs[i].lo < d.Seq
}

// top returns the highest sequence number s holds of region r, 0 if none.
func (s dotSet) top(r string) uint64 {
	if rs := s[r]; len(rs) > 0 {
		return rs[len(rs)-1].hi
	}
	return 0
}

// upper returns the smallest version vector that holds s.
func (s dotSet) upper() VersionVector {
	out := make(VersionVector, len(s))
	for r := range s {
		out[r] = s.top(r)
	}
	return out
}

// isVV reports whether s is a version vector.
func (s dotSet) isVV() bool {
	for _, rs := range s {
		if len(rs) != 1 || rs[0].lo != 0 {
			return false
		}
	}
	return true
}

func (s dotSet) clone() dotSet {
	out := make(dotSet, len(s))
	for r, rs := range s {
		out[r] = slices.Clone(rs)
	}
	return out
}

// add adds the range (lo, hi] of region r to s, in place.
func (s dotSet) add(r string, lo, hi uint64) {
	if lo >= hi {
		return
	}
	s[r] = unionRanges(s[r], []seqRange{{lo, hi}})
}

// addDot adds the dot d to s, in place.
func (s dotSet) addDot(d Dot) {
	if d.Seq != 0 {
		s.add(d.Region, d.Seq-1, d.Seq)
	}
}

// next records a new operation of st.Region in s and returns its dot:
// as VersionVector.next, the sequence number is st.Seq raised to one
// more than the highest s holds of the region, and everything between
// that and the new number is taken as seen (no operation of the region
// on this value lies there).
func (s dotSet) next(st Stamp) Dot {
	top := s.top(st.Region)
	seq := top
	if seq < ^uint64(0) {
		seq++
	}
	seq = max(seq, st.Seq)
	s.add(st.Region, top, seq)
	return Dot{st.Region, seq}
}

// union returns the dots of s or o.
func (s dotSet) union(o dotSet) dotSet {
	out := make(dotSet, max(len(s), len(o)))
	for r, rs := range s {
		out[r] = unionRanges(rs, o[r])
	}
	for r, rs := range o {
		if _, done := s[r]; !done {
			out[r] = slices.Clone(rs)
		}
	}
	return out
}

// minus returns the dots of s that o does not hold.
func (s dotSet) minus(o dotSet) dotSet {
	out := dotSet{}
	for r, rs := range s {
		if d := minusRanges(rs, o[r]); len(d) > 0 {
			out[r] = d
		}
	}
	return out
}

// includes reports whether s holds every dot of o.
func (s dotSet) includes(o dotSet) bool {
	for r, rs := range o {
		if len(minusRanges(rs, s[r])) > 0 {
			return false
		}
	}
	return true
}

// equal reports whether s and o hold the same dots.
func (s dotSet) equal(o dotSet) bool {
	return maps.EqualFunc(s, o, slices.Equal[[]seqRange])
}

// unionRanges merges two normalized range lists into a new one.
func unionRanges(a, b []seqRange) []seqRange {
	all := make([]seqRange, 0, len(a)+len(b))
	all = append(append(all, a...), b...)
	slices.SortFunc(all, func(x, y seqRange) int {
		switch {
		case x.lo < y.lo:
			return -1
		case x.lo > y.lo:
			return 1
		}
		return 0
	})
	var out []seqRange
	for _, x := range all {
		if n := len(out); n > 0 && x.lo <= out[n-1].hi {
			out[n-1].hi = max(out[n-1].hi, x.hi)
			continue
		}
		out = append(out, x)
	}
	return out
}

// minusRanges returns the numbers of a that b does not hold.
func minusRanges(a, b []seqRange) []seqRange {
	var out []seqRange
	j := 0
	for _, x := range a {
		lo := x.lo
		for j < len(b) && b[j].hi <= lo {
			j++
		}
		for k := j; k < len(b) && b[k].lo < x.hi; k++ {
			if b[k].lo > lo {
				out = append(out, seqRange{lo, b[k].lo})
			}
			lo = max(lo, b[k].hi)
		}
		if lo < x.hi {
			out = append(out, seqRange{lo, x.hi})
		}
	}
	return out
}
