package crdt

import (
	"maps"
	"slices"
	"strings"
)

// A Map maps fields to byte strings. Each field behaves like a register
// under last writer wins, with a deletion being a tombstone version;
// all fields share the map's causal context.
//
// A field may also have a context of its own, holding dots beyond the
// map's: a delta of a write (see Delta) carries the writer's whole
// context for the fields it wrote, since the write overwrote every
// version of them the writer had seen, and only its own dots for the
// others. What a map has seen of a field is the map's context and the
// field's together; a field's context keeps only what the map's lacks
// and goes once the map has seen it all.
//
// The zero value is an empty map, ready to use.
type Map struct {
	ctx    dotSet
	fields map[string][]Version // each field's current versions, oldest first
	fctx   map[string]dotSet    // per field, what it has seen beyond ctx (never empty, only for fields in fields)
}

// Type returns "map".
func (*Map) Type() string { return "map" }

// Set writes value to field at s.
func (m *Map) Set(s Stamp, field string, value []byte) {
	m.write(s, Version{Value: cloneBytes(value)}, field)
}

// Delete writes a tombstone to each of fields at s, whether or not it has
// seen them, so that the deletion also competes with concurrent writes it
// has not seen.
func (m *Map) Delete(s Stamp, fields ...string) {
	m.write(s, Version{Deleted: true}, fields...)
}

// Clear writes a tombstone at s to every field the map holds versions of.
func (m *Map) Clear(s Stamp) {
	m.Delete(s, slices.Collect(maps.Keys(m.fields))...)
}

func (m *Map) write(s Stamp, v Version, fields ...string) {
	if m.ctx == nil {
		m.ctx = dotSet{}
	}
	d := m.ctx.next(s)
	v.Time, v.Region, v.Seq = s.Time, d.Region, d.Seq
	if m.fields == nil {
		m.fields = make(map[string][]Version, len(fields))
	}
	for _, f := range fields {
		m.fields[f] = []Version{v}
	}
	m.trim()
}

// seen returns whether the map has seen a dot for field f.
func (m *Map) seen(f string) func(Dot) bool {
	fc := m.fctx[f]
	if len(fc) == 0 {
		return m.ctx.contains
	}
	return func(d Dot) bool { return m.ctx.contains(d) || fc.contains(d) }
}

// trim keeps in the field contexts only what the map's lacks.
func (m *Map) trim() {
	for f, fc := range m.fctx {
		if _, ok := m.fields[f]; !ok {
			delete(m.fctx, f)
			continue
		}
		if fc = fc.minus(m.ctx); len(fc) == 0 {
			delete(m.fctx, f)
		} else {
			m.fctx[f] = fc
		}
	}
}

// Get returns the value of field and true, or nil and false if the field
// does not exist. The returned slice must not be modified.
func (m *Map) Get(field string) ([]byte, bool) {
	vs := m.fields[field]
	if len(vs) == 0 || vs[len(vs)-1].Deleted {
		return nil, false
	}
	return vs[len(vs)-1].Value, true
}

// Versions returns the current versions of field, oldest first. There is
// more than one only while concurrent versions have not been overwritten;
// the last one is what Get sees.
func (m *Map) Versions(field string) []Version { return slices.Clone(m.fields[field]) }

// Fields returns the fields that exist, in byte order.
func (m *Map) Fields() []string {
	var fs []string
	for f := range m.fields {
		if _, ok := m.Get(f); ok {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	return fs
}

// Len returns the number of fields that exist.
func (m *Map) Len() int { return len(m.Fields()) }

// Live reports whether a field exists.
func (m *Map) Live() bool {
	for f := range m.fields {
		if _, ok := m.Get(f); ok {
			return true
		}
	}
	return false
}

// Context returns the map's causal context (see Value), its fields'
// included.
func (m *Map) Context() VersionVector {
	all := m.ctx
	for _, fc := range m.fctx {
		all = all.union(fc)
	}
	return all.upper()
}

// Compact removes the deleted fields whose versions are all tombstones
// that stable contains, and whose own context (what the writers of the
// tombstones had seen beyond the map's context) stable dominates, and
// returns how many it removed. stable must be causally stable, as for
// Collectable. The map keeps its causal context, so a removed field's
// older versions stay overwritten.
func (m *Map) Compact(stable VersionVector) int {
	n := 0
	for f, vs := range m.fields {
		if !slices.ContainsFunc(vs, func(v Version) bool { return !v.Deleted || !stable.Contains(v.Dot()) }) &&
			stable.Dominates(m.fctx[f].upper()) {
			delete(m.fields, f)
			delete(m.fctx, f)
			n++
		}
	}
	return n
}

func (m *Map) clone() Value {
	out := &Map{ctx: m.ctx.clone(), fields: make(map[string][]Version, len(m.fields))}
	for f, vs := range m.fields {
		out.fields[f] = slices.Clone(vs)
	}
	for f, fc := range m.fctx {
		if out.fctx == nil {
			out.fctx = make(map[string]dotSet, len(m.fctx))
		}
		out.fctx[f] = fc.clone()
	}
	return out
}

func (m *Map) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Map)
	out := &Map{ctx: m.ctx.union(o.ctx), fields: make(map[string][]Version, max(len(m.fields), len(o.fields)))}
	var cs []Conflict
	for _, f := range slices.Sorted(maps.Keys(m.fields)) {
		cs = out.mergeField(cs, f, m, o)
	}
	for _, f := range slices.Sorted(maps.Keys(o.fields)) {
		if _, done := m.fields[f]; !done {
			cs = out.mergeField(cs, f, m, o)
		}
	}
	out.trim()
	slices.SortFunc(cs, func(a, b Conflict) int { return strings.Compare(a.Field, b.Field) })
	return out, cs, nil
}

// mergeField merges field f of a and b into m.
func (m *Map) mergeField(cs []Conflict, f string, a, b *Map) []Conflict {
	vs, fresh := mergeVersions(a.fields[f], a.seen(f), b.fields[f], b.seen(f))
	if len(vs) == 0 {
		return cs
	}
	m.fields[f] = vs
	if fc := a.fctx[f].union(b.fctx[f]); len(fc) > 0 {
		if m.fctx == nil {
			m.fctx = map[string]dotSet{}
		}
		m.fctx[f] = fc // trimmed by the caller
	}
	if fresh {
		cs = append(cs, Conflict{Field: f, Versions: slices.Clone(vs), Winner: vs[len(vs)-1], Rule: lwwRule})
	}
	return cs
}

// delta returns what the local operations that turned prev into m
// produced (see Delta): the fields they wrote, each with everything m has
// seen of it (the writes overwrote all of it), and as the map's context
// only the dots the operations took.
func (m *Map) delta(prev *Map) *Map {
	d := &Map{ctx: m.ctx.minus(prev.ctx), fields: map[string][]Version{}}
	for f, vs := range m.fields {
		if slices.EqualFunc(vs, prev.fields[f], sameVersion) {
			continue
		}
		d.fields[f] = slices.Clone(vs)
		if fc := m.ctx.union(m.fctx[f]).minus(d.ctx); len(fc) > 0 {
			if d.fctx == nil {
				d.fctx = map[string]dotSet{}
			}
			d.fctx[f] = fc
		}
	}
	return d
}

// sameVersion reports whether a and b are the same write.
func sameVersion(a, b Version) bool { return compareVersions(a, b) == 0 }

// Encode returns the canonical binary form of the map.
func (m *Map) Encode() []byte {
	refs := map[string]bool{}
	for _, vs := range m.fields {
		versionRegions(refs, vs)
	}
	for _, fc := range m.fctx {
		for r := range fc {
			refs[r] = true
		}
	}
	ranges := len(m.fctx) > 0 || !m.ctx.isVV()
	e := newEncoder(tagMap, m.ctx, refs, ranges)
	fs := slices.Sorted(maps.Keys(m.fields))
	e.uvarint(uint64(len(fs)))
	for _, f := range fs {
		e.string(f)
		e.versions(m.fields[f])
		if ranges {
			e.dotSet(m.fctx[f])
		}
	}
	return e.b
}

// DecodeMap parses the output of Map.Encode.
func DecodeMap(b []byte) (*Map, error) { return decodeAs[*Map](b) }

func decodeMap(d *decoder, ctx dotSet, ranges bool) *Map {
	m := &Map{ctx: ctx}
	n := d.count()
	m.fields = make(map[string][]Version, n)
	prev := ""
	for i := range n {
		f := d.string()
		if i > 0 && f <= prev {
			d.fail("map fields out of order")
		}
		prev = f
		vs := d.versions(1, false)
		if d.err != nil {
			return nil
		}
		m.fields[f] = vs
		if !ranges {
			continue
		}
		fc := d.dotSet()
		if d.err != nil {
			return nil
		}
		if len(fc) > 0 {
			if !fc.minus(ctx).equal(fc) {
				d.fail("field context overlaps the map's")
				return nil
			}
			if m.fctx == nil {
				m.fctx = map[string]dotSet{}
			}
			m.fctx[f] = fc
		}
	}
	if ranges && len(m.fctx) == 0 && ctx.isVV() {
		d.fail("needless format version %d", formatRanges)
	}
	return m
}
