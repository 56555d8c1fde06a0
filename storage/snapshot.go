package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Reader is a consistent, read-only view of the whole DB at one instant: a
// group's data and its applied index read through the same Reader always
// agree. Streams use it to ship a region-local group's data to another
// region without holding the data in memory. Close it when done.
type Reader struct {
	s *pebble.Snapshot
}

// NewReader returns a view of the committed state as of now.
func (db *DB) NewReader() *Reader { return &Reader{s: db.pdb.NewSnapshot()} }

// Close releases the view.
func (r *Reader) Close() { _ = r.s.Close() }

// Applied returns the group's applied index in the view.
func (r *Reader) Applied(group uint64) (uint64, error) {
	v, closer, err := r.s.Get(raftKey(group, suffixApplied))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: get applied: %w", ErrIO, err)
	}
	defer func() { _ = closer.Close() }()
	if len(v) < 8 {
		return 0, fmt.Errorf("%w: applied state of group %d", ErrCorrupt, group)
	}
	return binary.BigEndian.Uint64(v), nil
}

// Scan calls fn for the group's keys after `after` (all keys when after is
// nil), in key order, until fn returns false. The slices are only valid
// during the call.
func (r *Reader) Scan(group uint64, after []byte, fn func(key, value []byte) bool) error {
	lo, hi := dataSpan(group)
	if after != nil {
		lo = append(DataKey(group, after), 0)
	}
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return iterate(it, func(k, v []byte) bool { return fn(k[9:], v) })
}

// ClearData stages the removal of every user key of a group and of its
// collections' elements (its cursors stay).
func (b *Batch) ClearData(group uint64) {
	start, end := dataSpan(group)
	b.DeleteRange(start, end)
	start, end = elemSpan(group)
	b.DeleteRange(start, end)
}

// GetLedger reads a group's ledger record as the batch would leave it.
// The returned value is a copy.
func (b *Batch) GetLedger(group uint64, suffix []byte) ([]byte, bool, error) {
	return b.get(LedgerKey(group, suffix))
}

// ScanData calls fn for the group's user keys as the batch would leave
// them, in key order, until fn returns false.
func (b *Batch) ScanData(group uint64, fn func(key, value []byte) bool) error {
	lo, hi := dataSpan(group)
	it, err := b.pb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return iterate(it, func(k, v []byte) bool { return fn(k[9:], v) })
}
