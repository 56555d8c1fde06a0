package crdt

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/hlc"
)

var (
	// ErrTypeMismatch is returned (wrapped) when values of different types
	// are merged, or an encoding holds another type than the one asked for.
	ErrTypeMismatch = errors.New("crdt: type mismatch")
	// ErrBadEncoding is returned (wrapped) by the decoding functions for
	// input that is not the canonical encoding of a value.
	ErrBadEncoding = errors.New("crdt: malformed encoding")
	// ErrUnknownResolver is returned (wrapped) for a resolver name that has
	// not been registered.
	ErrUnknownResolver = errors.New("crdt: unknown resolver")
	// ErrOverflow is returned (wrapped) by Counter.Add when the counter or a
	// region's total would overflow.
	ErrOverflow = errors.New("crdt: counter overflow")
)

// A Stamp says where and when a local operation happens. Every operation
// takes a Stamp and records a new dot (Region, seq) in the value's causal
// context.
type Stamp struct {
	// Region is the region performing the operation.
	Region string
	// Time is the node's HLC reading for the operation. Registers and maps
	// store it in the versions they write; counters and sets ignore it.
	Time hlc.Timestamp
	// Seq optionally numbers the operation within its region, for example
	// the index of the raft entry carrying it in the region's group. The
	// dot's sequence number is the larger of Seq and one more than the
	// highest the value has seen from the region, so zero means "the next
	// one for this value".
	Seq uint64
}

// A Version is one write of a register or a map field.
type Version struct {
	Value   []byte        // nil for a deletion
	Deleted bool          // the write is a tombstone
	Time    hlc.Timestamp // HLC time of the write
	Region  string        // region of the write
	Seq     uint64        // with Region, the write's dot
	// Resolver names the resolver that the writer's policy chose for
	// conflicts, "" for last writer wins. Only registers use it.
	Resolver string
}

// Dot returns the dot of the write.
func (v Version) Dot() Dot { return Dot{v.Region, v.Seq} }

// compareVersions orders versions by (Time, Region): the last-writer-wins
// order. The remaining fields only make the order total.
func compareVersions(a, b Version) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
		return c
	}
	if a.Deleted != b.Deleted {
		if a.Deleted {
			return 1
		}
		return -1
	}
	if c := bytes.Compare(a.Value, b.Value); c != 0 {
		return c
	}
	return strings.Compare(a.Resolver, b.Resolver)
}

// mergeVersions merges the versions of a register or map field: as, from
// a side that has seen the dots aSeen reports, and bs, from one that has
// seen those bSeen reports. A version survives if both sides hold it or
// the other side has not seen it; a version that one side has seen but no
// longer holds was overwritten. conflict reports whether the result holds
// a version that b had not seen and one that a had not seen, i.e. whether
// concurrent writes meet for the first time.
func mergeVersions(as []Version, aSeen func(Dot) bool, bs []Version, bSeen func(Dot) bool) (out []Version, conflict bool) {
	inB := make(map[Dot]int, len(bs))
	for i, v := range bs {
		inB[v.Dot()] = i
	}
	kept := make([]bool, len(bs))
	newA, newB := false, false
	for _, x := range as {
		if i, ok := inB[x.Dot()]; ok {
			kept[i] = true
			out = append(out, maxVersion(x, bs[i]))
		} else if !bSeen(x.Dot()) {
			out = append(out, x)
			newA = true
		}
	}
	for i, y := range bs {
		if !kept[i] && !aSeen(y.Dot()) {
			out = append(out, y)
			newB = true
		}
	}
	slices.SortFunc(out, compareVersions)
	return out, newA && newB
}

func maxVersion(a, b Version) Version {
	if compareVersions(a, b) >= 0 {
		return a
	}
	return b
}

// A Conflict describes concurrent writes of a register or map field, none
// of which saw the others, meeting in a merge.
type Conflict struct {
	// Field is the map field, "" for a register.
	Field string
	// Versions are the concurrent versions, in last-writer-wins order
	// (oldest first).
	Versions []Version
	// Winner is what reads return: for last writer wins the newest of
	// Versions; for a resolver, the newest with the resolver's value.
	Winner Version
	// Rule is "lww" or the name of the resolver that chose the winner.
	Rule string
}

// A Value is the state of one key: *Register, *Counter, *Set, *Map or
// *ZSet.
type Value interface {
	// Type returns "register", "counter", "set", "map" or "zset".
	Type() string
	// Live reports whether the key exists, i.e. whether the value is more
	// than a tombstone.
	Live() bool
	// Context returns the value's causal context as a version vector: for
	// every region, the highest sequence number of the operations it
	// reflects. A set or map that merged deltas out of order (see Delta)
	// holds a context with gaps; Context is then its smallest upper bound.
	Context() VersionVector
	// Clear deletes the whole value as seen at s: it writes a tombstone in
	// a register and every field of a map, removes every member of a set
	// and cancels every increment of a counter. Operations that s has not
	// seen survive it when merged (for registers and map fields, those
	// that win over the tombstone).
	Clear(s Stamp)
	// Encode returns the canonical binary form of the value.
	Encode() []byte

	clone() Value
	merge(o Value) (Value, []Conflict, error) // o has the same type
}

// Merge returns the merge of a and b, and the conflicts it found. Either
// may be nil, or a nil pointer, for no stored value; merging nil with nil
// gives nil. Neither input is modified and the result shares no mutable
// state with them.
//
// Merging values of different types fails with ErrTypeMismatch. Merging
// registers whose newest concurrent version names a resolver that is not
// registered fails with ErrUnknownResolver.
func Merge(a, b Value) (Value, []Conflict, error) {
	a, b = orNil(a), orNil(b)
	switch {
	case a == nil && b == nil:
		return nil, nil, nil
	case a == nil:
		return b.clone(), nil, nil
	case b == nil:
		return a.clone(), nil, nil
	case a.Type() != b.Type():
		return nil, nil, fmt.Errorf("%w: cannot merge %s with %s", ErrTypeMismatch, a.Type(), b.Type())
	}
	return a.merge(b)
}

// Delta returns the delta-state of the local operations that turned prev
// into next: the part of next they produced, merged with Merge like any
// state. Merge(prev, d) is next and Merge(next, d) is next (d is no more
// than next), so merging d anywhere has the operations' effect, and
// deltas, like states, may be merged in any order and more than once.
//
// A map's delta holds the fields written, each with its versions and
// everything the writer had seen of it (a write overwrites all the
// versions of the field it has seen, also ones that are gone already, so
// that a receiver that still holds one does not take the write for a
// concurrent one, and a removal removes what the writer saw), and as the
// map's context only the operations' own dots. A set's delta holds the
// members added or removed in the same way. Their size depends on what
// was written, not on the value's size; after a delete (next not Live)
// the delta is the state, a tombstone. A register or counter is small
// whatever its history: its delta is the whole state. Without prev (nil)
// or across types the delta is next itself.
//
// prev must be a state that next was obtained from by local operations
// alone (no merge in between); neither is modified.
func Delta(prev, next Value) Value {
	prev, next = orNil(prev), orNil(next)
	switch {
	case next == nil:
		return nil
	case prev == nil || prev.Type() != next.Type():
		return next.clone()
	}
	if !next.Live() {
		// A delete touches everything: the state (a tombstone) says it
		// in fewer bytes.
		return next.clone()
	}
	switch n := next.(type) {
	case *Set:
		return n.delta(prev.(*Set))
	case *Map:
		return n.delta(prev.(*Map))
	case *ZSet:
		return n.delta(prev.(*ZSet))
	}
	return next.clone()
}

// Snapshot returns a copy of v as it is now, for Delta's prev: local
// operations on v later leave it unchanged. It shares with v what
// operations replace rather than modify (a member's tags, a field's
// versions), so it costs a copy of the value's index, not of its
// contents. It must not be modified.
func Snapshot(v Value) Value {
	switch t := orNil(v).(type) {
	case nil:
		return nil
	case *Set:
		return &Set{ctx: t.ctx.clone(), members: maps.Clone(t.members), mctx: maps.Clone(t.mctx)}
	case *Map:
		return &Map{ctx: t.ctx.clone(), fields: maps.Clone(t.fields), fctx: maps.Clone(t.fctx)}
	case *ZSet:
		return &ZSet{ctx: t.ctx.clone(), members: maps.Clone(t.members), mctx: maps.Clone(t.mctx)}
	default:
		return t.clone()
	}
}

// orNil turns a nil pointer into a nil Value.
func orNil(v Value) Value {
	switch p := v.(type) {
	case *Register:
		if p == nil {
			return nil
		}
	case *Counter:
		if p == nil {
			return nil
		}
	case *Set:
		if p == nil {
			return nil
		}
	case *Map:
		if p == nil {
			return nil
		}
	case *ZSet:
		if p == nil {
			return nil
		}
	}
	return v
}

// Collectable reports whether the tombstone v can be removed, i.e. the key
// deleted for good: v must not be Live, and stable must dominate its
// causal context.
//
// stable must be causally stable: the pointwise minimum (StableVector),
// over every region, of what that region reported having seen, each report
// having arrived through the same in-order stream as that region's
// changes, after them, so that nothing a region sent before its report is
// still in flight. Then every region has seen everything v reflects and
// any later change is causally after v, and dropping v cannot resurrect an
// older write or let a concurrent one win. The decision never depends on
// elapsed time.
func Collectable(v Value, stable VersionVector) bool {
	v = orNil(v)
	return v != nil && !v.Live() && stable.Dominates(v.Context())
}

// Decode parses an encoded value of any type.
func Decode(b []byte) (Value, error) {
	d := decoder{b: b}
	version, tag, ctx := d.header()
	ranges := version == formatRanges
	var v Value
	switch tag {
	case tagRegister:
		v = decodeRegister(&d, ctx.upper())
	case tagCounter:
		v = decodeCounter(&d, ctx.upper())
	case tagSet:
		v = decodeSet(&d, ctx, ranges)
	case tagMap:
		v = decodeMap(&d, ctx, ranges)
	case tagZSet:
		v = decodeZSet(&d, ctx, ranges)
	default:
		d.fail("unknown type tag %d", tag)
	}
	if d.err == nil && ranges && (tag == tagRegister || tag == tagCounter) {
		d.fail("needless format version %d", version)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeAs decodes b and checks that it holds a T.
func decodeAs[T Value](b []byte) (T, error) {
	var zero T
	v, err := Decode(b)
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("%w: encoding holds a %s, not a %s", ErrTypeMismatch, v.Type(), zero.Type())
	}
	return t, nil
}

// cloneBytes copies p, returning nil for an empty slice.
func cloneBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return bytes.Clone(p)
}

// record records an operation at s in the context *v, allocating it if
// needed, and returns the operation's dot.
func record(v *VersionVector, s Stamp) Dot {
	if *v == nil {
		*v = VersionVector{}
	}
	return v.next(s)
}
