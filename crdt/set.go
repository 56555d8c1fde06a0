package crdt

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// A Set is an observed-remove set of strings (any bytes). Every Add tags
// its members with the operation's dot; Remove and Clear drop the tags
// they have seen. A member is present while it has a tag, so an add that
// a remove has not seen survives it: add wins over a concurrent remove.
//
// The zero value is an empty set, ready to use.
type Set struct {
	ctx     VersionVector
	members map[string][]Dot // each member's tags, sorted
}

// Type returns "set".
func (*Set) Type() string { return "set" }

// Add adds members at s.
func (t *Set) Add(s Stamp, members ...string) {
	d := record(&t.ctx, s)
	if t.members == nil {
		t.members = make(map[string][]Dot, len(members))
	}
	for _, m := range members {
		t.members[m] = []Dot{d}
	}
}

// Remove removes members at s. Adds that s has not seen survive it.
func (t *Set) Remove(s Stamp, members ...string) {
	record(&t.ctx, s)
	for _, m := range members {
		delete(t.members, m)
	}
}

// Clear removes every member at s. Adds that s has not seen survive it.
func (t *Set) Clear(s Stamp) {
	record(&t.ctx, s)
	t.members = nil
}

// Contains reports whether m is a member.
func (t *Set) Contains(m string) bool { return len(t.members[m]) > 0 }

// Members returns the members in byte order.
func (t *Set) Members() []string { return slices.Sorted(maps.Keys(t.members)) }

// Len returns the number of members.
func (t *Set) Len() int { return len(t.members) }

// Live reports whether the set has a member; an empty set is a tombstone.
func (t *Set) Live() bool { return len(t.members) > 0 }

// Context returns a copy of the set's causal context.
func (t *Set) Context() VersionVector { return t.ctx.Clone() }

func (t *Set) clone() Value {
	out := &Set{ctx: t.ctx.Clone(), members: make(map[string][]Dot, len(t.members))}
	for m, ds := range t.members {
		out.members[m] = slices.Clone(ds)
	}
	return out
}

func (t *Set) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Set)
	out := &Set{ctx: t.ctx.Merge(o.ctx), members: make(map[string][]Dot, max(len(t.members), len(o.members)))}
	for m, ds := range t.members {
		if ds = mergeDots(ds, t.ctx, o.members[m], o.ctx); len(ds) > 0 {
			out.members[m] = ds
		}
	}
	for m, ds := range o.members {
		if _, done := t.members[m]; !done {
			if ds = mergeDots(nil, t.ctx, ds, o.ctx); len(ds) > 0 {
				out.members[m] = ds
			}
		}
	}
	return out, nil, nil
}

// mergeDots merges the tags of one member: as, seen with context ac, and
// bs, seen with context bc. A tag survives if both sides hold it or the
// other side has not seen it.
func mergeDots(as []Dot, ac VersionVector, bs []Dot, bc VersionVector) []Dot {
	var out []Dot
	for _, d := range as {
		if slices.Contains(bs, d) || !bc.Contains(d) {
			out = append(out, d)
		}
	}
	for _, d := range bs {
		if !slices.Contains(as, d) && !ac.Contains(d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, compareDots)
	return out
}

func compareDots(a, b Dot) int {
	if c := strings.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// Encode returns the canonical binary form of the set.
func (t *Set) Encode() []byte {
	refs := map[string]bool{}
	for _, ds := range t.members {
		for _, d := range ds {
			refs[d.Region] = true
		}
	}
	e := newEncoder(tagSet, t.ctx, refs)
	ms := t.Members()
	e.uvarint(uint64(len(ms)))
	for _, m := range ms {
		e.string(m)
		ds := t.members[m]
		e.uvarint(uint64(len(ds)))
		for _, d := range ds {
			e.region(d.Region)
			e.uvarint(d.Seq)
		}
	}
	return e.b
}

// DecodeSet parses the output of Set.Encode.
func DecodeSet(b []byte) (*Set, error) { return decodeAs[*Set](b) }

func decodeSet(d *decoder, ctx VersionVector) *Set {
	t := &Set{ctx: ctx}
	n := d.count()
	t.members = make(map[string][]Dot, n)
	prev := ""
	for i := range n {
		m := d.string()
		if i > 0 && m <= prev {
			d.fail("set members out of order")
		}
		prev = m
		k := d.count()
		if d.err == nil && k == 0 {
			d.fail("set member without tags")
		}
		ds := make([]Dot, 0, k)
		for j := range k {
			dot := Dot{d.region(), d.seq()}
			if d.err != nil {
				return nil
			}
			if j > 0 && compareDots(ds[j-1], dot) >= 0 {
				d.fail("set tags out of order")
				return nil
			}
			ds = append(ds, dot)
		}
		if d.err != nil {
			return nil
		}
		t.members[m] = ds
	}
	return t
}
