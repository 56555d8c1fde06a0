package crdt

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/meridian-db/meridian/hlc"
)

// Format versions, the first byte of every encoded Value: formatVersion
// for values whose causal contexts are version vectors, formatRanges for
// a set or map whose context has gaps, or a map with field contexts (see
// dotSet). A value is encoded in formatVersion whenever it can be.
const (
	formatVersion = 1
	formatRanges  = 2
)

// Type tags, the second byte of every encoded Value.
const (
	tagRegister = 1
	tagCounter  = 2
	tagSet      = 3
	tagMap      = 4
	tagZSet     = 5
)

// Version flags.
const (
	flagDeleted  = 1 << 0
	flagResolver = 1 << 1
)

func appendUvarint(b []byte, x uint64) []byte { return binary.AppendUvarint(b, x) }

func appendString(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

// An encoder writes the canonical form of a Value. Every Value starts with
// the format version, the type tag, a table of the regions it mentions
// (sorted, each once) and its causal context; everything after refers to
// regions by their index in the table.
type encoder struct {
	b   []byte
	idx map[string]uint64
}

// newEncoder starts the encoding of a value of type tag whose causal
// context is ctx and which mentions the regions in refs besides those in
// ctx, in formatRanges if ranges is set, else in formatVersion (ctx must
// then be a version vector).
func newEncoder(tag byte, ctx dotSet, refs map[string]bool, ranges bool) *encoder {
	for r := range ctx {
		refs[r] = true
	}
	rs := make([]string, 0, len(refs))
	for r, ok := range refs {
		if ok {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	version := byte(formatVersion)
	if ranges {
		version = formatRanges
	}
	e := &encoder{b: []byte{version, tag}, idx: make(map[string]uint64, len(rs))}
	e.uvarint(uint64(len(rs)))
	for i, r := range rs {
		e.idx[r] = uint64(i)
		e.string(r)
	}
	if ranges {
		e.dotSet(ctx)
	} else {
		e.vv(ctx.upper())
	}
	return e
}

// dotSet writes a dotSet as its number of regions followed, in region
// order, by the region's index, its number of ranges and each range as
// the distance from the end of the previous one (from 0 for the first;
// at least 1 for the others, as ranges never touch) and its length (at
// least 1).
func (e *encoder) dotSet(s dotSet) {
	rs := slices.Sorted(maps.Keys(s))
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.region(r)
		e.uvarint(uint64(len(s[r])))
		var prev uint64
		for _, x := range s[r] {
			e.uvarint(x.lo - prev)
			e.uvarint(x.hi - x.lo)
			prev = x.hi
		}
	}
}

func (e *encoder) uvarint(x uint64) { e.b = appendUvarint(e.b, x) }
func (e *encoder) string(s string)  { e.b = appendString(e.b, s) }
func (e *encoder) bytes(p []byte)   { e.b = append(appendUvarint(e.b, uint64(len(p))), p...) }
func (e *encoder) region(r string)  { e.uvarint(e.idx[r]) }
func (e *encoder) time(t hlc.Timestamp) {
	e.b = binary.AppendVarint(e.b, t.WallMS)
	e.uvarint(uint64(t.Logical))
	e.uvarint(uint64(t.Node))
}

// vv writes a version vector as its number of non-zero entries followed by
// (region index, entry) pairs in region order.
func (e *encoder) vv(v VersionVector) {
	rs := v.regions()
	e.uvarint(uint64(len(rs)))
	for _, r := range rs {
		e.region(r)
		e.uvarint(v[r])
	}
}

func (e *encoder) version(v Version) {
	var flags byte
	if v.Deleted {
		flags |= flagDeleted
	}
	if v.Resolver != "" {
		flags |= flagResolver
	}
	e.b = append(e.b, flags)
	e.time(v.Time)
	e.region(v.Region)
	e.uvarint(v.Seq)
	if !v.Deleted {
		e.bytes(v.Value)
	}
	if v.Resolver != "" {
		e.string(v.Resolver)
	}
}

func (e *encoder) versions(vs []Version) {
	e.uvarint(uint64(len(vs)))
	for _, v := range vs {
		e.version(v)
	}
}

// versionRegions adds the regions of vs to refs.
func versionRegions(refs map[string]bool, vs []Version) {
	for _, v := range vs {
		refs[v.Region] = true
	}
}

// A decoder reads what an encoder wrote. It accepts only the canonical
// form, so that re-encoding a decoded value gives back the same bytes. The
// first error sticks: later reads return zero values and consume nothing.
type decoder struct {
	b       []byte
	err     error
	regions []string
	used    []bool
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadEncoding, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// uvarint reads a minimally encoded unsigned varint.
func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) uint32() uint32 {
	x := d.uvarint()
	if x > math.MaxUint32 {
		d.fail("number out of range")
		return 0
	}
	return uint32(x)
}

// count reads a number of items, each taking at least one byte, so that a
// corrupt count cannot make the caller allocate more than the input holds.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed byte string into a new slice (nil if empty).
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	if n == 0 {
		return nil
	}
	p := slices.Clone(d.b[:n])
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) time() hlc.Timestamp {
	if d.err != nil {
		return hlc.Timestamp{}
	}
	w, n := binary.Varint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail("bad varint")
		return hlc.Timestamp{}
	}
	d.b = d.b[n:]
	return hlc.Timestamp{WallMS: w, Logical: d.uint32(), Node: d.uint32()}
}

// header reads the format version, the type tag, the region table and the
// causal context. It returns the version and the tag.
func (d *decoder) header() (byte, byte, dotSet) {
	version := d.byte()
	if d.err == nil && version != formatVersion && version != formatRanges {
		d.fail("unsupported format version %d", version)
	}
	tag := d.byte()
	n := d.count()
	d.regions = make([]string, n)
	d.used = make([]bool, n)
	for i := range n {
		d.regions[i] = d.string()
		if i > 0 && d.regions[i] <= d.regions[i-1] {
			d.fail("region table out of order")
		}
	}
	if version == formatRanges {
		return version, tag, d.dotSet()
	}
	return version, tag, dotSetOf(d.vv())
}

// dotSet reads what encoder.dotSet wrote.
func (d *decoder) dotSet() dotSet {
	n := d.count()
	s := make(dotSet, n)
	var prevRegion uint64
	for i := range n {
		r := d.regionIndex()
		if i > 0 && r <= prevRegion {
			d.fail("context regions out of order")
		}
		prevRegion = r
		k := d.count()
		if d.err == nil && k == 0 {
			d.fail("context region without ranges")
		}
		rs := make([]seqRange, 0, k)
		var prev uint64
		for j := range k {
			gap, length := d.uvarint(), d.uvarint()
			if d.err != nil {
				return nil
			}
			if j > 0 && gap == 0 || length == 0 || prev+gap < prev || prev+gap+length < prev+gap {
				d.fail("bad context range")
				return nil
			}
			lo := prev + gap
			rs = append(rs, seqRange{lo, lo + length})
			prev = lo + length
		}
		if d.err != nil {
			return nil
		}
		s[d.regions[r]] = rs
	}
	return s
}

func (d *decoder) regionIndex() uint64 {
	i := d.uvarint()
	if d.err == nil && i >= uint64(len(d.regions)) {
		d.fail("region index %d out of range", i)
		return 0
	}
	if d.err == nil {
		d.used[i] = true
	}
	return i
}

func (d *decoder) region() string {
	i := d.regionIndex()
	if d.err != nil {
		return ""
	}
	return d.regions[i]
}

func (d *decoder) seq() uint64 {
	s := d.uvarint()
	if d.err == nil && s == 0 {
		d.fail("zero sequence number")
	}
	return s
}

func (d *decoder) vv() VersionVector {
	n := d.count()
	v := make(VersionVector, n)
	var prev uint64
	for i := range n {
		r := d.regionIndex()
		if i > 0 && r <= prev {
			d.fail("version vector out of order")
		}
		prev = r
		if s := d.seq(); d.err == nil {
			v[d.regions[r]] = s
		}
	}
	return v
}

func (d *decoder) version(resolver bool) Version {
	flags := d.byte()
	if flags&^(flagDeleted|flagResolver) != 0 || !resolver && flags&flagResolver != 0 {
		d.fail("bad version flags %#x", flags)
	}
	v := Version{Deleted: flags&flagDeleted != 0, Time: d.time(), Region: d.region(), Seq: d.seq()}
	if !v.Deleted {
		v.Value = d.bytes()
	}
	if flags&flagResolver != 0 {
		if v.Resolver = d.string(); d.err == nil && v.Resolver == "" {
			d.fail("empty resolver name")
		}
	}
	return v
}

// versions reads at least min versions, which must be in canonical order
// with distinct dots. resolver says whether versions may name a resolver.
func (d *decoder) versions(min int, resolver bool) []Version {
	n := d.count()
	if d.err == nil && n < min {
		d.fail("empty version list")
	}
	var vs []Version
	for i := range n {
		v := d.version(resolver)
		if d.err != nil {
			return nil
		}
		if i > 0 && compareVersions(vs[i-1], v) >= 0 {
			d.fail("versions out of order")
			return nil
		}
		vs = append(vs, v)
	}
	if len(vs) > 1 {
		dots := make(map[Dot]bool, len(vs))
		for _, v := range vs {
			if dots[v.Dot()] {
				d.fail("duplicate dot %s", v.Dot())
				return nil
			}
			dots[v.Dot()] = true
		}
	}
	return vs
}

// finish checks that the input was consumed and every region in the table
// was used, and returns the first error.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err == nil && slices.Contains(d.used, false) {
		d.fail("unused region in table")
	}
	return d.err
}
