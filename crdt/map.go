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
// The zero value is an empty map, ready to use.
type Map struct {
	ctx    VersionVector
	fields map[string][]Version // each field's current versions, oldest first
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
	d := record(&m.ctx, s)
	v.Time, v.Region, v.Seq = s.Time, d.Region, d.Seq
	if m.fields == nil {
		m.fields = make(map[string][]Version, len(fields))
	}
	for _, f := range fields {
		m.fields[f] = []Version{v}
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

// Context returns a copy of the map's causal context.
func (m *Map) Context() VersionVector { return m.ctx.Clone() }

// Compact removes the deleted fields whose versions are all tombstones
// that stable contains, and returns how many it removed. stable must be
// causally stable, as for Collectable. The map keeps its causal context,
// so a removed field's older versions stay overwritten.
func (m *Map) Compact(stable VersionVector) int {
	n := 0
	for f, vs := range m.fields {
		if !slices.ContainsFunc(vs, func(v Version) bool { return !v.Deleted || !stable.Contains(v.Dot()) }) {
			delete(m.fields, f)
			n++
		}
	}
	return n
}

func (m *Map) clone() Value {
	out := &Map{ctx: m.ctx.Clone(), fields: make(map[string][]Version, len(m.fields))}
	for f, vs := range m.fields {
		out.fields[f] = slices.Clone(vs)
	}
	return out
}

func (m *Map) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Map)
	out := &Map{ctx: m.ctx.Merge(o.ctx), fields: make(map[string][]Version, max(len(m.fields), len(o.fields)))}
	var cs []Conflict
	for _, f := range slices.Sorted(maps.Keys(m.fields)) {
		cs = out.mergeField(cs, f, m.fields[f], m.ctx, o.fields[f], o.ctx)
	}
	for _, f := range slices.Sorted(maps.Keys(o.fields)) {
		if _, done := m.fields[f]; !done {
			cs = out.mergeField(cs, f, nil, m.ctx, o.fields[f], o.ctx)
		}
	}
	slices.SortFunc(cs, func(a, b Conflict) int { return strings.Compare(a.Field, b.Field) })
	return out, cs, nil
}

func (m *Map) mergeField(cs []Conflict, f string, as []Version, ac VersionVector, bs []Version, bc VersionVector) []Conflict {
	vs, fresh := mergeVersions(as, ac, bs, bc)
	if len(vs) == 0 {
		return cs
	}
	m.fields[f] = vs
	if fresh {
		cs = append(cs, Conflict{Field: f, Versions: slices.Clone(vs), Winner: vs[len(vs)-1], Rule: lwwRule})
	}
	return cs
}

// Encode returns the canonical binary form of the map.
func (m *Map) Encode() []byte {
	refs := map[string]bool{}
	for _, vs := range m.fields {
		versionRegions(refs, vs)
	}
	e := newEncoder(tagMap, m.ctx, refs)
	fs := slices.Sorted(maps.Keys(m.fields))
	e.uvarint(uint64(len(fs)))
	for _, f := range fs {
		e.string(f)
		e.versions(m.fields[f])
	}
	return e.b
}

// DecodeMap parses the output of Map.Encode.
func DecodeMap(b []byte) (*Map, error) { return decodeAs[*Map](b) }

func decodeMap(d *decoder, ctx VersionVector) *Map {
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
	}
	return m
}
