package backup

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// Object names (docs/backup-format.md). Numbers are zero-padded to 20
// digits, so that names sort as the numbers do.
//
//	meridian-backup.json                                  the format record (plain JSON)
//	backups/<id>.manifest                                 a backup's manifest
//	groups/<group>/base/<index>-<writer>/<part>.base      a part of a group's base
//	groups/<group>/log/<first>-<last>-<writer>.seg        a segment of a group's log
//
// <writer> is a random tag of the process that wrote the object, so that
// two writers (an archiver and a backup, or an old leader's archiver and
// a new one's) never write the same name: overlapping segments are
// allowed and identical where they overlap (a committed log is the same
// on every replica).
const (
	FormatName     = "meridian-backup.json"
	manifestPrefix = "backups/"
	manifestSuffix = ".manifest"
	groupsPrefix   = "groups/"
)

// NewWriterTag returns a random tag for the names a writer gives objects.
func NewWriterTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func pad(n uint64) string { return fmt.Sprintf("%020d", n) }

// GroupPrefix is the prefix of every object of a group.
func GroupPrefix(group uint64) string { return groupsPrefix + pad(group) + "/" }

// SegmentPrefix is the prefix of a group's log segments.
func SegmentPrefix(group uint64) string { return GroupPrefix(group) + "log/" }

// SegmentName names a segment of entries first..last of a group's log.
func SegmentName(group, first, last uint64, writer string) string {
	return SegmentPrefix(group) + pad(first) + "-" + pad(last) + "-" + writer + ".seg"
}

// BasePartName names part n of a group's base at index.
func BasePartName(group, index uint64, writer string, part int) string {
	return GroupPrefix(group) + "base/" + pad(index) + "-" + writer + "/" + fmt.Sprintf("%06d", part) + ".base"
}

// ManifestName names a backup's manifest.
func ManifestName(id string) string { return manifestPrefix + id + manifestSuffix }

// ParseSegmentName returns the group and index range a segment name
// gives; ok is false for a name that is not a segment's.
func ParseSegmentName(name string) (group, first, last uint64, ok bool) {
	rest, found := strings.CutPrefix(name, groupsPrefix)
	if !found {
		return 0, 0, 0, false
	}
	g, rest, found := strings.Cut(rest, "/log/")
	if !found || !strings.HasSuffix(rest, ".seg") {
		return 0, 0, 0, false
	}
	parts := strings.Split(strings.TrimSuffix(rest, ".seg"), "-")
	if len(parts) != 3 {
		return 0, 0, 0, false
	}
	var err error
	if group, err = strconv.ParseUint(g, 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if first, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if last, err = strconv.ParseUint(parts[1], 10, 64); err != nil || last < first {
		return 0, 0, 0, false
	}
	return group, first, last, true
}

// Entry is one entry of a group's committed log, as a segment keeps it.
type Entry struct {
	Index uint64
	// Stamp is the entry's commit stamp (zero: none, see raftgroup).
	Stamp hlc.Timestamp
	// Command is the state machine's command; nil for an entry that
	// carries none (a leader's empty entry, a membership change, a mark).
	Command []byte
}

// Segment is a run of consecutive entries of a group's log.
type Segment struct {
	Group   uint64
	Entries []Entry
}

// segmentVersion is the version of log segments.
const segmentVersion = 1

// encodeSegment returns a segment's payload:
//
//	version 1 | group uvarint | first index uvarint | count uvarint |
//	per entry: stamp (16, hlc encoding) | flags (bit 0: has a command) | [uvarint length | command]
func encodeSegment(s Segment) []byte {
	n := 32
	for _, e := range s.Entries {
		n += hlc.EncodedLen + 1 + binary.MaxVarintLen32 + len(e.Command)
	}
	b := make([]byte, 0, n)
	b = append(b, segmentVersion)
	b = binary.AppendUvarint(b, s.Group)
	var first uint64
	if len(s.Entries) > 0 {
		first = s.Entries[0].Index
	}
	b = binary.AppendUvarint(b, first)
	b = binary.AppendUvarint(b, uint64(len(s.Entries)))
	for _, e := range s.Entries {
		b = e.Stamp.AppendEncode(b)
		if e.Command == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendUvarint(b, uint64(len(e.Command)))
		b = append(b, e.Command...)
	}
	return b
}

// decoder reads the records of this file; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s", what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, w := binary.Uvarint(d.b)
	if w <= 0 || w > 1 && d.b[w-1] == 0 { // a longer form than needed: one encoding only
		d.fail(what)
		return 0
	}
	d.b = d.b[w:]
	return v
}

func (d *decoder) bytes(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) stamp() hlc.Timestamp {
	p := d.bytes(hlc.EncodedLen, "stamp")
	if d.err != nil {
		return hlc.Timestamp{}
	}
	t, _ := hlc.Decode(p)
	return t
}

func (d *decoder) lengthPrefixed(what string) []byte {
	return d.bytes(d.uvarint(what), what)
}

// decodeSegment parses a segment's payload; the commands alias b.
func decodeSegment(name string, b []byte) (Segment, error) {
	d := &decoder{b: b}
	if v := d.bytes(1, "version"); d.err == nil && v[0] != segmentVersion {
		return Segment{}, fmt.Errorf("%w: %s: segment version %d", ErrFormat, name, v[0])
	}
	s := Segment{Group: d.uvarint("group")}
	first := d.uvarint("first index")
	count := d.uvarint("count")
	if d.err == nil && count > uint64(len(d.b)) {
		d.fail("count")
	}
	if d.err == nil && count == 0 && first != 0 {
		d.fail("first index of an empty segment") // written as 0
	}
	for i := uint64(0); i < count && d.err == nil; i++ {
		e := Entry{Index: first + i, Stamp: d.stamp()}
		switch f := d.bytes(1, "flags"); {
		case d.err != nil:
		case f[0] == 1:
			e.Command = d.lengthPrefixed("command")
			if e.Command == nil && d.err == nil {
				e.Command = []byte{}
			}
		case f[0] != 0:
			d.fail("flags")
		}
		s.Entries = append(s.Entries, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Segment{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, d.err)
	}
	return s, nil
}

// BasePart is one part of a group's base: its data span (a range of its
// keys, in key order), then its element span (the elements of its lists
// and sorted sets, and its next collection id: storage.ElemKey), and, in
// part 0, its cursor and ledger spans, as a consistent view showed them at
// Index.
type BasePart struct {
	Group uint64
	// Index is the group's applied index in the view; Stamp bounds the
	// stamps of every entry at or below it.
	Index uint64
	Stamp hlc.Timestamp
	Part  int
	Final bool
	// Pairs alternates keys and stored values.
	Pairs [][]byte
	// Cursors and Ledger: the group's cursor span and ledger span (part 0).
	Cursors []storage.SourceCursor
	Ledger  [][]byte
	// Elements alternates element suffixes and values, in suffix order,
	// after every part's Pairs (a part may hold both).
	Elements [][]byte
}

// baseVersion is the version of base parts: 2 adds the element span
// (version 1, without it, still reads).
const baseVersion = 2

// encodeBasePart returns a base part's payload:
//
//	version 2 | group uvarint | index uvarint | stamp (16) | part uvarint | final (1 byte) |
//	pairs: count uvarint, (uvarint length, key, uvarint length, value)... |
//	cursors: count uvarint, (source, index, closed ms, epoch: 8 bytes each)... |
//	ledger: count uvarint, (uvarint length, suffix, uvarint length, value)... |
//	elements: count uvarint, (uvarint length, suffix, uvarint length, value)...
//
// (Version 1 ends after the ledger.)
func encodeBasePart(p BasePart) []byte {
	n := 64 + len(p.Cursors)*32
	for _, xs := range [][][]byte{p.Pairs, p.Ledger, p.Elements} {
		for _, x := range xs {
			n += len(x) + binary.MaxVarintLen32
		}
	}
	b := make([]byte, 0, n)
	b = append(b, baseVersion)
	b = binary.AppendUvarint(b, p.Group)
	b = binary.AppendUvarint(b, p.Index)
	b = p.Stamp.AppendEncode(b)
	b = binary.AppendUvarint(b, uint64(p.Part))
	final := byte(0)
	if p.Final {
		final = 1
	}
	b = append(b, final)
	pairs := func(xs [][]byte) {
		b = binary.AppendUvarint(b, uint64(len(xs)/2))
		for _, x := range xs {
			b = binary.AppendUvarint(b, uint64(len(x)))
			b = append(b, x...)
		}
	}
	pairs(p.Pairs)
	b = binary.AppendUvarint(b, uint64(len(p.Cursors)))
	for _, c := range p.Cursors {
		b = binary.BigEndian.AppendUint64(b, c.Source)
		b = binary.BigEndian.AppendUint64(b, c.Index)
		b = binary.BigEndian.AppendUint64(b, uint64(c.ClosedMS))
		b = binary.BigEndian.AppendUint64(b, c.Epoch)
	}
	pairs(p.Ledger)
	pairs(p.Elements)
	return b
}

// decodeBasePart parses a base part's payload; keys and values alias b.
func decodeBasePart(name string, b []byte) (BasePart, error) {
	d := &decoder{b: b}
	version := byte(0)
	if v := d.bytes(1, "version"); d.err == nil {
		if version = v[0]; version != 1 && version != baseVersion {
			return BasePart{}, fmt.Errorf("%w: %s: base version %d", ErrFormat, name, version)
		}
	}
	p := BasePart{Group: d.uvarint("group"), Index: d.uvarint("index"), Stamp: d.stamp(), Part: int(d.uvarint("part"))}
	if f := d.bytes(1, "final"); d.err == nil {
		switch f[0] {
		case 0:
		case 1:
			p.Final = true
		default:
			d.fail("final")
		}
	}
	pairs := func(what string) [][]byte {
		n := d.uvarint(what)
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail(what)
		}
		var out [][]byte
		for i := uint64(0); i < 2*n && d.err == nil; i++ {
			out = append(out, d.lengthPrefixed(what))
		}
		return out
	}
	p.Pairs = pairs("pairs")
	nc := d.uvarint("cursor count")
	if d.err == nil && nc > uint64(len(d.b))/32 {
		d.fail("cursor count")
	}
	for i := uint64(0); i < nc && d.err == nil; i++ {
		c := d.bytes(32, "cursor")
		if d.err == nil {
			p.Cursors = append(p.Cursors, storage.SourceCursor{Source: binary.BigEndian.Uint64(c), Cursor: storage.Cursor{
				Index: binary.BigEndian.Uint64(c[8:]), ClosedMS: int64(binary.BigEndian.Uint64(c[16:])), Epoch: binary.BigEndian.Uint64(c[24:])}})
		}
	}
	p.Ledger = pairs("ledger")
	if version >= 2 {
		p.Elements = pairs("elements")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return BasePart{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, d.err)
	}
	return p, nil
}
