package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrBadSnapshot is returned when snapshot data cannot be decoded.
var ErrBadSnapshot = errors.New("storage: malformed snapshot data")

// Get reads a user key of a group. The returned value is a copy.
func (db *DB) Get(group uint64, key []byte) ([]byte, bool, error) {
	c := db.rows
	if c == nil {
		return db.get(DataKey(group, key))
	}
	h := c.hash(group, key)
	v, found, hit, gen, clean := c.get(h, group, key)
	if hit {
		return v, found, nil
	}
	v, found, err := db.get(DataKey(group, key))
	if err != nil {
		return nil, false, err
	}
	if afterRowMiss != nil {
		afterRowMiss()
	}
	if clean {
		c.put(h, group, key, bytes.Clone(v), found, gen)
	}
	return v, found, nil
}

// Scan calls fn for the group's keys in [start, end) (end nil means to the
// end of the group) in key order until fn returns false. The slices are only
// valid during the call.
func (db *DB) Scan(group uint64, start, end []byte, fn func(key, value []byte) bool) error {
	lo := DataKey(group, start)
	var hi []byte
	if end == nil {
		_, hi = dataSpan(group)
	} else {
		hi = DataKey(group, end)
	}
	return db.scan(lo, hi, func(k, v []byte) bool { return fn(k[9:], v) })
}

// afterRowMiss, if set (tests), runs between a read's miss in the row
// cache and its keeping what Pebble returned.
var afterRowMiss func()

// GetData reads a user key of a group as the batch would leave it.
func (b *Batch) GetData(group uint64, key []byte) ([]byte, bool, error) {
	return b.get(DataKey(group, key))
}

// get reads a key as the batch would leave it; the value is a copy.
func (b *Batch) get(key []byte) ([]byte, bool, error) {
	v, closer, err := b.pb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: get: %w", ErrIO, err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// SetData stages a user key of a group.
func (b *Batch) SetData(group uint64, key, value []byte) { b.Set(DataKey(group, key), value) }

// DeleteData stages the removal of a user key of a group.
func (b *Batch) DeleteData(group uint64, key []byte) { b.Delete(DataKey(group, key)) }

// Snapshot payload format. A group's snapshot carries everything the group
// owns outside raft's own state: its data span and its cursor span.
//
//	version    1 byte: 1, 2 or 3
//	data       uvarint length, then (uvarint key length, key, uvarint value length, value)...
//	cursors    uvarint length, then (source 8 bytes BE, index 8, closed ms 8, epoch 8)...
//	ledger     (version 2 and 3) uvarint length, then pairs as in data, of the ledger span
//	elements   (version 3) uvarint length, then pairs as in data, of the element span
//
// Keys and sources appear in ascending order. An empty payload is the
// snapshot of a group that owns nothing (what StageBootstrap installs).
// A group without elements is encoded in version 2, so that its snapshot
// is what it was before the element span existed; versions 1 (no ledger
// section) and 2 (no element section) are still decoded.
const (
	snapshotV1      = 1
	snapshotV2      = 2
	snapshotVersion = 3
)

// cursorRecordLen is the size of one cursor in a snapshot payload.
const cursorRecordLen = 8 + cursorValueLen

// GroupData is a decoded snapshot payload.
type GroupData struct {
	// Pairs alternates user keys and values, in key order.
	Pairs [][]byte
	// Cursors holds the group's stream cursors in ascending source order.
	Cursors []SourceCursor
	// Ledger alternates ledger suffixes and records, in order.
	Ledger [][]byte
	// Elems alternates element suffixes and values, in order.
	Elems [][]byte
}

// SourceCursor is a Cursor together with the stream it belongs to.
type SourceCursor struct {
	Source uint64
	Cursor
}

// EncodeGroupData returns the group's data, cursor, ledger and element
// spans as one snapshot payload (format above). It reads the committed state at the time
// of the call.
func (db *DB) EncodeGroupData(group uint64) ([]byte, error) {
	var data, cursors []byte
	start, end := dataSpan(group)
	err := db.scan(start, end, func(k, v []byte) bool {
		data = binary.AppendUvarint(data, uint64(len(k)-9))
		data = append(data, k[9:]...)
		data = binary.AppendUvarint(data, uint64(len(v)))
		data = append(data, v...)
		return true
	})
	if err != nil {
		return nil, err
	}
	start, end = cursorSpan(group)
	err = db.scan(start, end, func(k, v []byte) bool {
		cursors = append(cursors, k[9:]...)
		cursors = append(cursors, v...)
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(cursors)%cursorRecordLen != 0 {
		return nil, fmt.Errorf("%w: group %d has a malformed cursor", ErrCorrupt, group)
	}
	var ledger []byte
	start, end = ledgerSpan(group)
	err = db.scan(start, end, func(k, v []byte) bool {
		ledger = binary.AppendUvarint(ledger, uint64(len(k)-9))
		ledger = append(ledger, k[9:]...)
		ledger = binary.AppendUvarint(ledger, uint64(len(v)))
		ledger = append(ledger, v...)
		return true
	})
	if err != nil {
		return nil, err
	}
	var elems []byte
	start, end = elemSpan(group)
	err = db.scan(start, end, func(k, v []byte) bool {
		elems = binary.AppendUvarint(elems, uint64(len(k)-9))
		elems = append(elems, k[9:]...)
		elems = binary.AppendUvarint(elems, uint64(len(v)))
		elems = append(elems, v...)
		return true
	})
	if err != nil {
		return nil, err
	}
	version := byte(snapshotV2)
	if len(elems) > 0 {
		version = snapshotVersion
	}
	out := make([]byte, 0, 1+4*binary.MaxVarintLen64+len(data)+len(cursors)+len(ledger)+len(elems))
	out = append(out, version)
	out = binary.AppendUvarint(out, uint64(len(data)))
	out = append(out, data...)
	out = binary.AppendUvarint(out, uint64(len(cursors)))
	out = append(out, cursors...)
	out = binary.AppendUvarint(out, uint64(len(ledger)))
	out = append(out, ledger...)
	if version == snapshotVersion {
		out = binary.AppendUvarint(out, uint64(len(elems)))
		out = append(out, elems...)
	}
	return out, nil
}

// RestoreGroupData stages the replacement of the group's data, cursor,
// ledger and element spans by the contents of a payload made by
// EncodeGroupData. Nothing
// is staged if the payload is malformed.
func (b *Batch) RestoreGroupData(group uint64, data []byte) error {
	gd, err := DecodeGroupData(data)
	if err != nil {
		return err
	}
	b.ClearData(group)
	start, end := cursorSpan(group)
	b.DeleteRange(start, end)
	b.ClearLedger(group)
	for i := 0; i+1 < len(gd.Pairs); i += 2 {
		b.SetData(group, gd.Pairs[i], gd.Pairs[i+1])
	}
	for i := 0; i+1 < len(gd.Elems); i += 2 {
		b.SetElem(group, gd.Elems[i], gd.Elems[i+1])
	}
	for i := 0; i+1 < len(gd.Ledger); i += 2 {
		b.SetLedger(group, gd.Ledger[i], gd.Ledger[i+1])
	}
	for _, c := range gd.Cursors {
		b.SetCursor(group, c.Source, c.Cursor)
	}
	return nil
}

// DecodeGroupData decodes a snapshot payload. The returned keys and values
// alias data. It never panics on malformed input.
func DecodeGroupData(data []byte) (GroupData, error) {
	var gd GroupData
	if len(data) == 0 {
		return gd, nil
	}
	version := data[0]
	if version != snapshotV1 && version != snapshotV2 && version != snapshotVersion {
		return gd, fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, data[0])
	}
	data = data[1:]
	section := func(name string) ([]byte, error) {
		n, w := binary.Uvarint(data)
		if w <= 0 || n > uint64(len(data)-w) {
			return nil, fmt.Errorf("%w: bad %s section length", ErrBadSnapshot, name)
		}
		s := data[w : w+int(n)]
		data = data[w+int(n):]
		return s, nil
	}
	kvs, err := section("data")
	if err != nil {
		return GroupData{}, err
	}
	cursors, err := section("cursor")
	if err != nil {
		return GroupData{}, err
	}
	var ledger, elems []byte
	if version >= snapshotV2 {
		if ledger, err = section("ledger"); err != nil {
			return GroupData{}, err
		}
	}
	if version >= snapshotVersion {
		if elems, err = section("element"); err != nil {
			return GroupData{}, err
		}
	}
	if len(data) != 0 {
		return GroupData{}, fmt.Errorf("%w: %d trailing bytes", ErrBadSnapshot, len(data))
	}
	if gd.Pairs, err = decodePairs(kvs); err != nil {
		return GroupData{}, err
	}
	if gd.Ledger, err = decodePairs(ledger); err != nil {
		return GroupData{}, err
	}
	if gd.Elems, err = decodePairs(elems); err != nil {
		return GroupData{}, err
	}
	if len(cursors)%cursorRecordLen != 0 {
		return GroupData{}, fmt.Errorf("%w: cursor section of %d bytes", ErrBadSnapshot, len(cursors))
	}
	gd.Cursors = make([]SourceCursor, 0, len(cursors)/cursorRecordLen)
	for ; len(cursors) > 0; cursors = cursors[cursorRecordLen:] {
		src := binary.BigEndian.Uint64(cursors)
		if n := len(gd.Cursors); n > 0 && gd.Cursors[n-1].Source >= src {
			return GroupData{}, fmt.Errorf("%w: cursor sources out of order", ErrBadSnapshot)
		}
		c, _ := decodeCursor(cursors[8:cursorRecordLen])
		gd.Cursors = append(gd.Cursors, SourceCursor{Source: src, Cursor: c})
	}
	return gd, nil
}

// decodePairs decodes a section of (key, value) pairs.
func decodePairs(p []byte) ([][]byte, error) {
	var out [][]byte
	for len(p) > 0 {
		for range 2 {
			n, w := binary.Uvarint(p)
			if w <= 0 || n > uint64(len(p)-w) {
				return nil, fmt.Errorf("%w: bad key or value length", ErrBadSnapshot)
			}
			out = append(out, p[w:w+int(n)])
			p = p[w+int(n):]
		}
	}
	return out, nil
}
