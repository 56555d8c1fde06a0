package storage

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The element span of a group holds the elements of its large collections
// (lists and sorted sets, see package kv), one storage key per element, so
// that reading a range of a collection or writing one element does not
// load the whole collection:
//
//	'e' group suffix       an element; the layout of suffix is the state machine's
//
// The span is part of the group's replicated data: it is written in the
// same batch as the records that own the elements, travels in the group's
// snapshots (EncodeGroupData, format version 3) and resyncs
// (Reader.ScanElements), is cleared with the data (ClearData) and goes
// with the group (StageDestroy). User keys never collide with elements,
// and scans of the data span (SCAN, DBSIZE) never see them.
const prefixElem = 'e'

// ElemKey returns the storage key of a group's element.
func ElemKey(group uint64, suffix []byte) []byte {
	return append(groupKey(prefixElem, group, len(suffix)), suffix...)
}

// elemSpan returns [start, end) of a group's elements.
func elemSpan(group uint64) ([]byte, []byte) {
	return groupKey(prefixElem, group, 0), groupKey(prefixElem, group+1, 0)
}

// elemBounds returns the storage keys bounding the suffixes [lo, hi) of a
// group's elements; a nil hi means the end of the span.
func elemBounds(group uint64, lo, hi []byte) ([]byte, []byte) {
	start := ElemKey(group, lo)
	if hi == nil {
		_, end := elemSpan(group)
		return start, end
	}
	return start, ElemKey(group, hi)
}

// GetElem reads a group's element as the batch would leave it. The value
// is a copy.
func (b *Batch) GetElem(group uint64, suffix []byte) ([]byte, bool, error) {
	return b.get(ElemKey(group, suffix))
}

// SetElem stages an element of a group.
func (b *Batch) SetElem(group uint64, suffix, value []byte) { b.Set(ElemKey(group, suffix), value) }

// DeleteElem stages the removal of an element of a group.
func (b *Batch) DeleteElem(group uint64, suffix []byte) { b.Delete(ElemKey(group, suffix)) }

// DeleteElems stages the removal of the group's elements whose suffixes
// are in [lo, hi) (hi nil: to the end of the span).
func (b *Batch) DeleteElems(group uint64, lo, hi []byte) {
	start, end := elemBounds(group, lo, hi)
	b.DeleteRange(start, end)
}

// Elems returns an iterator over the group's elements whose suffixes are
// in [lo, hi) (hi nil: to the end of the span), as the batch leaves them
// when the iterator is made: writes staged later are not seen. Close it.
func (b *Batch) Elems(group uint64, lo, hi []byte) (*ElemIter, error) {
	start, end := elemBounds(group, lo, hi)
	it, err := b.pb.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return &ElemIter{it: it}, nil
}

// Get reads a user key of a group in the view. The value is a copy.
func (r *Reader) Get(group uint64, key []byte) ([]byte, bool, error) {
	return r.get(DataKey(group, key))
}

// GetElem reads a group's element in the view. The value is a copy.
func (r *Reader) GetElem(group uint64, suffix []byte) ([]byte, bool, error) {
	return r.get(ElemKey(group, suffix))
}

func (r *Reader) get(key []byte) ([]byte, bool, error) {
	v, closer, err := r.s.Get(key)
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

// Elems returns an iterator over the group's elements whose suffixes are
// in [lo, hi) (hi nil: to the end of the span) in the view. Close it.
func (r *Reader) Elems(group uint64, lo, hi []byte) (*ElemIter, error) {
	start, end := elemBounds(group, lo, hi)
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return &ElemIter{it: it}, nil
}

// ScanElements calls fn for every element of the group in the view, in
// order, until fn returns false (a resync ships them with the data). The
// slices are only valid during the call.
func (r *Reader) ScanElements(group uint64, fn func(suffix, value []byte) bool) error {
	lo, hi := elemSpan(group)
	it, err := r.s.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return iterate(it, func(k, v []byte) bool { return fn(k[9:], v) })
}

// ScanElems calls fn for the committed elements of a group whose suffixes
// are in [start, end) (end nil: to the end of the span), in order, until
// fn returns false (a restore pages through them). The slices are only
// valid during the call.
func (db *DB) ScanElems(group uint64, start, end []byte, fn func(suffix, value []byte) bool) error {
	lo, hi := elemBounds(group, start, end)
	return db.scan(lo, hi, func(k, v []byte) bool { return fn(k[9:], v) })
}

// ElemIter iterates over a range of a group's elements, forwards or
// backwards. Its keys are element suffixes, valid until the next move.
type ElemIter struct {
	it *pebble.Iterator
}

// First moves to the first element of the range.
func (e *ElemIter) First() bool { return e.it.First() }

// Last moves to the last element of the range.
func (e *ElemIter) Last() bool { return e.it.Last() }

// Next moves to the next element.
func (e *ElemIter) Next() bool { return e.it.Next() }

// Prev moves to the previous element.
func (e *ElemIter) Prev() bool { return e.it.Prev() }

// SeekGE moves to the first element whose suffix is at or after suffix.
func (e *ElemIter) SeekGE(group uint64, suffix []byte) bool {
	return e.it.SeekGE(ElemKey(group, suffix))
}

// SeekLT moves to the last element whose suffix is before suffix.
func (e *ElemIter) SeekLT(group uint64, suffix []byte) bool {
	return e.it.SeekLT(ElemKey(group, suffix))
}

// Valid reports whether the iterator is at an element.
func (e *ElemIter) Valid() bool { return e.it.Valid() }

// Key returns the current element's suffix.
func (e *ElemIter) Key() []byte { return e.it.Key()[9:] }

// Value returns the current element's value, valid until the next move.
func (e *ElemIter) Value() ([]byte, error) {
	v, err := e.it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("%w: element value: %w", ErrIO, err)
	}
	return v, nil
}

// Close releases the iterator; it reports any error the iteration met.
func (e *ElemIter) Close() error {
	if err := e.it.Close(); err != nil {
		return fmt.Errorf("%w: element iterator: %w", ErrIO, err)
	}
	return nil
}
