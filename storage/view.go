package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// What a consistent view (Reader) gives a backup of a group besides its
// data: the cursor span and the ledger span, as of the same instant.

// ScanCursors calls fn for the group's cursors in the view, in source
// order, until fn returns false.
func (r *Reader) ScanCursors(group uint64, fn func(source uint64, c Cursor) bool) error {
	return scanCursors(r.scan, group, fn)
}

// scanCursors decodes the group's cursor span read by scan.
func scanCursors(scan func(lo, hi []byte, fn func(k, v []byte) bool) error, group uint64, fn func(source uint64, c Cursor) bool) error {
	lo, hi := cursorSpan(group)
	var bad error
	err := scan(lo, hi, func(k, v []byte) bool {
		if len(k) != 17 {
			bad = fmt.Errorf("%w: cursor key of %d bytes", ErrCorrupt, len(k))
			return false
		}
		c, err := decodeCursor(v)
		if err != nil {
			bad = err
			return false
		}
		return fn(binary.BigEndian.Uint64(k[9:]), c)
	})
	if err == nil {
		err = bad
	}
	return err
}

// ScanLedger calls fn for the group's ledger records in the view, in
// suffix order, until fn returns false. The slices are only valid during
// the call.
func (r *Reader) ScanLedger(group uint64, fn func(suffix, value []byte) bool) error {
	lo, hi := ledgerSpan(group)
	return r.scan(lo, hi, func(k, v []byte) bool { return fn(k[9:], v) })
}

func (r *Reader) scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return iterate(it, fn)
}
