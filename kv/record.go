package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Type is the type of a stored value.
type Type byte

// Value types.
const (
	TypeNone   Type = 0
	TypeString Type = 1
	// TypeSet is a set of byte strings; the payload is a set encoding
	// (see EncodeSet).
	TypeSet Type = 2
	// TypeHash maps fields to values; the payload is a hash encoding (see
	// EncodeHash).
	TypeHash Type = 3
	// TypeList is a list; the payload is its head (list.go), the
	// elements are in the group's element span.
	TypeList Type = 4
	// TypeZSet is a sorted set; the payload is its head (zset.go), the
	// members are in the group's element span.
	TypeZSet Type = 5
)

// String returns the type's name as Redis's TYPE command reports it.
func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeSet:
		return "set"
	case TypeHash:
		return "hash"
	case TypeList:
		return "list"
	case TypeZSet:
		return "zset"
	default:
		return "none"
	}
}

// ErrWrongType is returned by an operation on a key holding another type.
var ErrWrongType = errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")

// ErrBadRecord is returned when a stored record cannot be decoded.
var ErrBadRecord = errors.New("kv: malformed stored record")

// Record is a stored value.
type Record struct {
	Type       Type
	ExpireAtMS int64 // 0: never
	Payload    []byte
	// Version is the log index of the command that last wrote the record
	// (0 for records written before versions were kept, and for active
	// keyspaces' records). WATCH compares it (txn.go).
	Version uint64
}

// Expired reports whether the record has expired at nowMS.
func (r Record) Expired(nowMS int64) bool { return r.ExpireAtMS != 0 && nowMS >= r.ExpireAtMS }

// TTL returns the time left before the record expires at nowMS, in ms,
// and false if it has no expiry. An expired record has 0 left.
func (r Record) TTL(nowMS int64) (int64, bool) {
	if r.ExpireAtMS == 0 {
		return 0, false
	}
	return max(r.ExpireAtMS-nowMS, 0), true
}

// recordVersioned, set in a stored record's type byte, says that a
// version (uvarint) follows the expiry.
const recordVersioned = 0x80

// Encode returns the stored form: type, expiry (8 bytes), the version
// (uvarint, only if not 0, flagged in the type byte), payload.
func (r Record) Encode() []byte {
	b := make([]byte, 9, 9+binary.MaxVarintLen64+len(r.Payload))
	b[0] = byte(r.Type)
	binary.BigEndian.PutUint64(b[1:], uint64(r.ExpireAtMS))
	if r.Version != 0 {
		b[0] |= recordVersioned
		b = binary.AppendUvarint(b, r.Version)
	}
	return append(b, r.Payload...)
}

// DecodeRecord parses a stored record; the payload aliases b.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) < 9 || b[0]&^recordVersioned == 0 {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrBadRecord, len(b))
	}
	r := Record{Type: Type(b[0] &^ recordVersioned), ExpireAtMS: int64(binary.BigEndian.Uint64(b[1:])), Payload: b[9:]}
	if b[0]&recordVersioned != 0 {
		v, w := uvarint(r.Payload)
		if w <= 0 || v == 0 {
			return Record{}, fmt.Errorf("%w: record version", ErrBadRecord)
		}
		r.Version, r.Payload = v, r.Payload[w:]
	}
	return r, nil
}
