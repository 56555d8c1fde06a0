package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The cursor span of a group holds, for every stream feeding the group, how
// far the group has applied that stream's source:
//
//	'c' group source       stream cursor (source index, source closed ts, epoch)
//
// Cursors are written in the same batch as the data a stream brings, so the
// data and the position it reflects can never disagree, and they travel in
// the group's snapshots with the data span.
const prefixCursor = 'c'

// cursorValueLen is the encoded size of a Cursor.
const cursorValueLen = 24

// Cursor is a destination group's position in one source stream.
type Cursor struct {
	// Index is the last source log index whose change has been applied.
	Index uint64
	// ClosedMS is the source's closed timestamp (Unix milliseconds) as last
	// received: every source change with a time at or before it has been
	// applied.
	ClosedMS int64
	// Epoch is the highest epoch of a batch applied from the stream.
	Epoch uint64
}

// CursorKey returns the storage key of a group's cursor for source.
func CursorKey(group, source uint64) []byte { return cursorKey(group, source) }

func cursorKey(group, source uint64) []byte {
	return binary.BigEndian.AppendUint64(groupKey(prefixCursor, group, 8), source)
}

// cursorSpan returns [start, end) of a group's cursors.
func cursorSpan(group uint64) ([]byte, []byte) {
	return groupKey(prefixCursor, group, 0), groupKey(prefixCursor, group+1, 0)
}

func encodeCursor(c Cursor) []byte {
	v := make([]byte, 0, cursorValueLen)
	v = binary.BigEndian.AppendUint64(v, c.Index)
	v = binary.BigEndian.AppendUint64(v, uint64(c.ClosedMS))
	return binary.BigEndian.AppendUint64(v, c.Epoch)
}

func decodeCursor(v []byte) (Cursor, error) {
	if len(v) != cursorValueLen {
		return Cursor{}, fmt.Errorf("%w: cursor value of %d bytes, want %d", ErrCorrupt, len(v), cursorValueLen)
	}
	return Cursor{
		Index:    binary.BigEndian.Uint64(v),
		ClosedMS: int64(binary.BigEndian.Uint64(v[8:])),
		Epoch:    binary.BigEndian.Uint64(v[16:]),
	}, nil
}

// SetCursor stages the group's position in the stream from source.
func (b *Batch) SetCursor(group, source uint64, c Cursor) {
	b.Set(cursorKey(group, source), encodeCursor(c))
}

// GetCursor reads the group's position in the stream from source as the
// batch would leave it. A stream never applied reads as the zero Cursor and
// false.
func (b *Batch) GetCursor(group, source uint64) (Cursor, bool, error) {
	v, closer, err := b.pb.Get(cursorKey(group, source))
	if errors.Is(err, pebble.ErrNotFound) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("%w: get cursor: %w", ErrIO, err)
	}
	c, err := decodeCursor(v)
	_ = closer.Close()
	return c, err == nil, err
}

// Cursor reads the committed position of the group in the stream from
// source.
func (db *DB) Cursor(group, source uint64) (Cursor, bool, error) {
	v, ok, err := db.get(cursorKey(group, source))
	if err != nil || !ok {
		return Cursor{}, false, err
	}
	c, err := decodeCursor(v)
	return c, err == nil, err
}

// Cursors returns the committed cursors of every stream feeding the group,
// by source stream id.
func (db *DB) Cursors(group uint64) (map[uint64]Cursor, error) {
	out := make(map[uint64]Cursor)
	if err := scanCursors(db.scan, group, func(source uint64, c Cursor) bool {
		out[source] = c
		return true
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// CursorRange calls fn, in source order, for the group's committed cursors
// whose source is in [from, to], until fn returns false.
func (db *DB) CursorRange(group, from, to uint64, fn func(source uint64, c Cursor) bool) error {
	lo := cursorKey(group, from)
	hi := groupKey(prefixCursor, group+1, 0)
	if to < ^uint64(0) {
		hi = cursorKey(group, to+1)
	}
	var bad error
	err := db.scan(lo, hi, func(k, v []byte) bool {
		c, err := decodeCursor(v)
		if err != nil || len(k) != 17 {
			bad = fmt.Errorf("storage: cursor of group %d: key of %d bytes: %v", group, len(k), err)
			return false
		}
		return fn(binary.BigEndian.Uint64(k[9:]), c)
	})
	if err == nil {
		err = bad
	}
	return err
}
