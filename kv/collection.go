package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// MaxCollectionBytes bounds the encoded payload of one set or hash. A
// write that would make a collection larger fails with ErrTooLarge and
// changes nothing. It is a constant, not a node setting, because every
// replica must make the same decision.
const MaxCollectionBytes = 8 << 20

// ErrTooLarge is returned by a write that would grow a set or hash beyond
// MaxCollectionBytes.
var ErrTooLarge = errors.New("kv: collection too large")

// collectionFormat is the first byte of a set or hash payload, so that
// the layout can change later without a new record type.
const collectionFormat = 1

// Set and hash payloads:
//
//	set:  format(1) uvarint(count) { uvarint(len) member }*count
//	hash: format(1) uvarint(count) { uvarint(len) field uvarint(len) value }*count
//
// Members (fields) are in strictly increasing byte order, so an encoding
// is canonical: one set has exactly one payload, SMEMBERS and HGETALL
// answer in a stable order and lookups are binary searches.

// Field is one entry of a hash.
type Field struct {
	Name, Value []byte
}

// EncodeSet returns the payload of a set. members must be sorted and
// distinct (as DecodeSet returns them).
func EncodeSet(members [][]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, m := range members {
		n += binary.MaxVarintLen32 + len(m)
	}
	b := make([]byte, 0, n)
	b = append(b, collectionFormat)
	b = binary.AppendUvarint(b, uint64(len(members)))
	for _, m := range members {
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b
}

// DecodeSet parses a set payload. The members alias p. It fails on
// anything but a canonical encoding.
func DecodeSet(p []byte) ([][]byte, error) {
	n, rest, err := collectionHeader(p, 1)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, n)
	for range n {
		var m []byte
		if m, rest, err = lengthPrefixed(rest); err != nil {
			return nil, err
		}
		if len(out) > 0 && bytes.Compare(out[len(out)-1], m) >= 0 {
			return nil, fmt.Errorf("%w: set members out of order", ErrBadRecord)
		}
		out = append(out, m)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after a set", ErrBadRecord, len(rest))
	}
	return out, nil
}

// EncodeHash returns the payload of a hash. fields must be sorted by name
// and distinct (as DecodeHash returns them).
func EncodeHash(fields []Field) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, f := range fields {
		n += 2*binary.MaxVarintLen32 + len(f.Name) + len(f.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, collectionFormat)
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f.Name)))
		b = append(b, f.Name...)
		b = binary.AppendUvarint(b, uint64(len(f.Value)))
		b = append(b, f.Value...)
	}
	return b
}

// DecodeHash parses a hash payload. The fields alias p. It fails on
// anything but a canonical encoding.
func DecodeHash(p []byte) ([]Field, error) {
	n, rest, err := collectionHeader(p, 2)
	if err != nil {
		return nil, err
	}
	out := make([]Field, 0, n)
	for range n {
		var f Field
		if f.Name, rest, err = lengthPrefixed(rest); err != nil {
			return nil, err
		}
		if f.Value, rest, err = lengthPrefixed(rest); err != nil {
			return nil, err
		}
		if len(out) > 0 && bytes.Compare(out[len(out)-1].Name, f.Name) >= 0 {
			return nil, fmt.Errorf("%w: hash fields out of order", ErrBadRecord)
		}
		out = append(out, f)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after a hash", ErrBadRecord, len(rest))
	}
	return out, nil
}

// collectionHeader reads the format byte and the entry count; every entry
// takes at least minBytes, which bounds the count by the payload's size
// before anything is allocated.
func collectionHeader(p []byte, minBytes int) (int, []byte, error) {
	if len(p) == 0 || p[0] != collectionFormat {
		return 0, nil, fmt.Errorf("%w: unknown collection format", ErrBadRecord)
	}
	n, w := uvarint(p[1:])
	if w <= 0 {
		return 0, nil, fmt.Errorf("%w: collection count", ErrBadRecord)
	}
	rest := p[1+w:]
	if n > uint64(len(rest)/minBytes) {
		return 0, nil, fmt.Errorf("%w: collection count %d exceeds its %d bytes", ErrBadRecord, n, len(rest))
	}
	return int(n), rest, nil
}

func lengthPrefixed(b []byte) ([]byte, []byte, error) {
	l, w := uvarint(b)
	if w <= 0 || l > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("%w: collection entry length", ErrBadRecord)
	}
	end := w + int(l)
	return b[w:end:end], b[end:], nil
}

// uvarint reads a uvarint in its shortest form only (so that one
// collection has one encoding); w <= 0 on anything else.
func uvarint(b []byte) (uint64, int) {
	v, w := binary.Uvarint(b)
	if w > 1 && b[w-1] == 0 {
		return 0, -1 // a trailing zero group: a longer form than needed
	}
	return v, w
}

// SetContains reports whether a decoded set holds m.
func SetContains(members [][]byte, m []byte) bool {
	_, ok := slices.BinarySearchFunc(members, m, bytes.Compare)
	return ok
}

// HashGet returns the value of a field of a decoded hash.
func HashGet(fields []Field, name []byte) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(fields, name, func(f Field, n []byte) int { return bytes.Compare(f.Name, n) })
	if !ok {
		return nil, false
	}
	return fields[i].Value, true
}

// setAdd merges add into the sorted, distinct members and returns the
// result and how many members were new.
func setAdd(members, add [][]byte) ([][]byte, int) {
	add = sortedDistinct(add)
	out := make([][]byte, 0, len(members)+len(add))
	i, j := 0, 0
	for i < len(members) || j < len(add) {
		switch {
		case j == len(add):
			out = append(out, members[i])
			i++
		case i == len(members):
			out = append(out, add[j])
			j++
		default:
			switch c := bytes.Compare(members[i], add[j]); {
			case c < 0:
				out = append(out, members[i])
				i++
			case c > 0:
				out = append(out, add[j])
				j++
			default:
				out = append(out, members[i])
				i, j = i+1, j+1
			}
		}
	}
	return out, len(out) - len(members)
}

// setRemove returns the members without those in rem, and how many were
// removed.
func setRemove(members, rem [][]byte) ([][]byte, int) {
	drop := make(map[string]bool, len(rem))
	for _, m := range rem {
		drop[string(m)] = true
	}
	out := make([][]byte, 0, len(members))
	for _, m := range members {
		if !drop[string(m)] {
			out = append(out, m)
		}
	}
	return out, len(members) - len(out)
}

// hashSet applies field/value pairs (a later pair for the same field wins)
// to the sorted fields; it returns the result and how many fields were new.
func hashSet(fields []Field, pairs [][]byte) ([]Field, int) {
	latest := make(map[string][]byte, len(pairs)/2)
	names := make([][]byte, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		if _, seen := latest[string(pairs[i])]; !seen {
			names = append(names, pairs[i])
		}
		latest[string(pairs[i])] = pairs[i+1]
	}
	slices.SortFunc(names, bytes.Compare)
	out := make([]Field, 0, len(fields)+len(names))
	i, j := 0, 0
	for i < len(fields) || j < len(names) {
		var c int
		switch {
		case j == len(names):
			c = -1
		case i == len(fields):
			c = 1
		default:
			c = bytes.Compare(fields[i].Name, names[j])
		}
		switch {
		case c < 0:
			out = append(out, fields[i])
			i++
		case c > 0:
			out = append(out, Field{Name: names[j], Value: latest[string(names[j])]})
			j++
		default:
			out = append(out, Field{Name: fields[i].Name, Value: latest[string(names[j])]})
			i, j = i+1, j+1
		}
	}
	return out, len(out) - len(fields)
}

// hashDelete returns the fields without the named ones, and how many were
// removed.
func hashDelete(fields []Field, names [][]byte) ([]Field, int) {
	drop := make(map[string]bool, len(names))
	for _, n := range names {
		drop[string(n)] = true
	}
	out := make([]Field, 0, len(fields))
	for _, f := range fields {
		if !drop[string(f.Name)] {
			out = append(out, f)
		}
	}
	return out, len(fields) - len(out)
}

func sortedDistinct(in [][]byte) [][]byte {
	out := slices.Clone(in)
	slices.SortFunc(out, bytes.Compare)
	return slices.CompactFunc(out, bytes.Equal)
}
