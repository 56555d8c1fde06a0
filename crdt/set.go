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
// As a map's fields, a member may have a context of its own beyond the
// set's: a delta of an add or remove (see Delta) carries everything its
// writer had seen for the members it wrote, and only the operation's own
// dots for the others. A member's context is kept, even once it has no
// tag left, until the set's context holds it.
//
// The zero value is an empty set, ready to use.
type Set struct {
	ctx     dotSet
	members map[string][]Dot  // each member's tags, sorted
	mctx    map[string]dotSet // per member, what it has seen beyond ctx (never empty)
}

// Type returns "set".
func (*Set) Type() string { return "set" }

// record records an operation at s in the set's context and returns its
// dot.
func (t *Set) record(s Stamp) Dot {
	if t.ctx == nil {
		t.ctx = dotSet{}
	}
	d := t.ctx.next(s)
	t.trim()
	return d
}

// Add adds members at s.
func (t *Set) Add(s Stamp, members ...string) {
	d := t.record(s)
	if t.members == nil {
		t.members = make(map[string][]Dot, len(members))
	}
	for _, m := range members {
		t.members[m] = []Dot{d}
	}
}

// Remove removes members at s. Adds that s has not seen survive it.
func (t *Set) Remove(s Stamp, members ...string) {
	t.record(s)
	for _, m := range members {
		delete(t.members, m)
	}
}

// Clear removes every member at s. Adds that s has not seen survive it.
func (t *Set) Clear(s Stamp) {
	t.record(s)
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

// Context returns the set's causal context (see Value), its members'
// included.
func (t *Set) Context() VersionVector {
	all := t.ctx
	for _, mc := range t.mctx {
		all = all.union(mc)
	}
	return all.upper()
}

// seen returns whether the set has seen a dot for member m.
func (t *Set) seen(m string) dotSet {
	mc := t.mctx[m]
	if len(mc) == 0 {
		return t.ctx
	}
	return t.ctx.union(mc)
}

// trim keeps in the member contexts only what the set's lacks.
func (t *Set) trim() {
	for m, mc := range t.mctx {
		if mc = mc.minus(t.ctx); len(mc) == 0 {
			delete(t.mctx, m)
		} else {
			t.mctx[m] = mc
		}
	}
}

func (t *Set) clone() Value {
	out := &Set{ctx: t.ctx.clone(), members: make(map[string][]Dot, len(t.members))}
	for m, ds := range t.members {
		out.members[m] = slices.Clone(ds)
	}
	for m, mc := range t.mctx {
		if out.mctx == nil {
			out.mctx = make(map[string]dotSet, len(t.mctx))
		}
		out.mctx[m] = mc.clone()
	}
	return out
}

func (t *Set) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Set)
	out := &Set{ctx: t.ctx.union(o.ctx), members: make(map[string][]Dot, max(len(t.members), len(o.members)))}
	names := map[string]bool{}
	for _, s := range []*Set{t, o} {
		for m := range s.members {
			names[m] = true
		}
		for m := range s.mctx {
			names[m] = true
		}
	}
	for m := range names {
		if ds := mergeDots(t.members[m], t.seen(m), o.members[m], o.seen(m)); len(ds) > 0 {
			out.members[m] = ds
		}
		if mc := t.mctx[m].union(o.mctx[m]); len(mc) > 0 {
			if out.mctx == nil {
				out.mctx = map[string]dotSet{}
			}
			out.mctx[m] = mc
		}
	}
	out.trim()
	return out, nil, nil
}

// mergeDots merges the tags of one member: as, seen with context ac, and
// bs, seen with context bc. A tag survives if both sides hold it or the
// other side has not seen it.
func mergeDots(as []Dot, ac dotSet, bs []Dot, bc dotSet) []Dot {
	var out []Dot
	for _, d := range as {
		if slices.Contains(bs, d) || !bc.contains(d) {
			out = append(out, d)
		}
	}
	for _, d := range bs {
		if !slices.Contains(as, d) && !ac.contains(d) {
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

// delta returns what the local operations that turned prev into t
// produced (see Delta): the members they wrote (added or removed), each
// with its tags and everything t has seen of it, and as the set's
// context only the dots the operations took.
func (t *Set) delta(prev *Set) *Set {
	d := &Set{ctx: t.ctx.minus(prev.ctx), members: map[string][]Dot{}}
	var changed []string
	for m, ds := range prev.members {
		if !slices.Equal(t.members[m], ds) {
			changed = append(changed, m)
		}
	}
	for m := range t.members {
		if _, ok := prev.members[m]; !ok {
			changed = append(changed, m)
		}
	}
	for _, m := range changed {
		if ds := t.members[m]; len(ds) > 0 {
			d.members[m] = slices.Clone(ds)
		}
		if mc := t.seen(m).minus(d.ctx); len(mc) > 0 {
			if d.mctx == nil {
				d.mctx = map[string]dotSet{}
			}
			d.mctx[m] = mc
		}
	}
	return d
}

// Encode returns the canonical binary form of the set: in formatVersion
// its members and their tags; in formatRanges, needed when the context
// has gaps or a member has a context of its own, each member with tags
// or a context of its own, its tags (possibly none) and its context.
func (t *Set) Encode() []byte {
	refs := map[string]bool{}
	for _, ds := range t.members {
		for _, d := range ds {
			refs[d.Region] = true
		}
	}
	for _, mc := range t.mctx {
		for r := range mc {
			refs[r] = true
		}
	}
	ranges := len(t.mctx) > 0 || !t.ctx.isVV()
	e := newEncoder(tagSet, t.ctx, refs, ranges)
	names := t.Members()
	if ranges {
		for m := range t.mctx {
			if len(t.members[m]) == 0 {
				names = append(names, m)
			}
		}
		slices.Sort(names)
	}
	e.uvarint(uint64(len(names)))
	for _, m := range names {
		e.string(m)
		ds := t.members[m]
		e.uvarint(uint64(len(ds)))
		for _, d := range ds {
			e.region(d.Region)
			e.uvarint(d.Seq)
		}
		if ranges {
			e.dotSet(t.mctx[m])
		}
	}
	return e.b
}

// DecodeSet parses the output of Set.Encode.
func DecodeSet(b []byte) (*Set, error) { return decodeAs[*Set](b) }

func decodeSet(d *decoder, ctx dotSet, ranges bool) *Set {
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
		if d.err == nil && k == 0 && !ranges {
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
		if k > 0 {
			t.members[m] = ds
		}
		if !ranges {
			continue
		}
		mc := d.dotSet()
		if d.err != nil {
			return nil
		}
		switch {
		case len(mc) == 0 && k == 0:
			d.fail("set member without tags or context")
			return nil
		case len(mc) > 0 && !mc.minus(ctx).equal(mc):
			d.fail("member context overlaps the set's")
			return nil
		case len(mc) > 0:
			if t.mctx == nil {
				t.mctx = map[string]dotSet{}
			}
			t.mctx[m] = mc
		}
	}
	if ranges && len(t.mctx) == 0 && ctx.isVV() {
		d.fail("needless format version %d", formatRanges)
	}
	return t
}
