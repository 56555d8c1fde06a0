package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrBadSnapshot is returned when snapshot data cannot be decoded.
var ErrBadSnapshot = errors.New("storage: malformed snapshot data")

// Get reads a user key of a group. The returned value is a copy.
func (db *DB) Get(group uint64, key []byte) ([]byte, bool, error) {
	return db.get(DataKey(group, key))
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

// GetData reads a user key of a group as the batch would leave it.
func (b *Batch) GetData(group uint64, key []byte) ([]byte, bool, error) {
	v, closer, err := b.pb.Get(DataKey(group, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: get: %w", err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// SetData stages a user key of a group.
func (b *Batch) SetData(group uint64, key, value []byte) { b.Set(DataKey(group, key), value) }

// DeleteData stages the removal of a user key of a group.
func (b *Batch) DeleteData(group uint64, key []byte) { b.Delete(DataKey(group, key)) }

// EncodeGroupData returns every key and value of the group's data span as
// one snapshot payload: a sequence of (uvarint key length, key, uvarint value
// length, value). It reads the committed state at the time of the call.
func (db *DB) EncodeGroupData(group uint64) ([]byte, error) {
	start, end := dataSpan(group)
	var out []byte
	err := db.scan(start, end, func(k, v []byte) bool {
		out = binary.AppendUvarint(out, uint64(len(k)-9))
		out = append(out, k[9:]...)
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
		return true
	})
	return out, err
}

// RestoreGroupData stages the replacement of the group's data span by the
// contents of a payload made by EncodeGroupData.
func (b *Batch) RestoreGroupData(group uint64, data []byte) error {
	pairs, err := DecodeGroupData(data)
	if err != nil {
		return err
	}
	start, end := dataSpan(group)
	b.DeleteRange(start, end)
	for i := 0; i+1 < len(pairs); i += 2 {
		b.SetData(group, pairs[i], pairs[i+1])
	}
	return nil
}

// DecodeGroupData splits a snapshot payload into alternating keys and
// values. It never panics on malformed input.
func DecodeGroupData(data []byte) ([][]byte, error) {
	var pairs [][]byte
	for len(data) > 0 {
		for range 2 {
			n, w := binary.Uvarint(data)
			if w <= 0 || n > uint64(len(data)-w) {
				return nil, fmt.Errorf("%w: bad length at offset", ErrBadSnapshot)
			}
			pairs = append(pairs, data[w:w+int(n)])
			data = data[w+int(n):]
		}
	}
	return pairs, nil
}
