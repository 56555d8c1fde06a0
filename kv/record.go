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

// Encode returns the stored form: type, expiry (8 bytes), payload.
func (r Record) Encode() []byte {
	b := make([]byte, 9, 9+len(r.Payload))
	b[0] = byte(r.Type)
	binary.BigEndian.PutUint64(b[1:], uint64(r.ExpireAtMS))
	return append(b, r.Payload...)
}

// DecodeRecord parses a stored record; the payload aliases b.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) < 9 || b[0] == 0 {
		return Record{}, fmt.Errorf("%w: %d bytes", ErrBadRecord, len(b))
	}
	return Record{Type: Type(b[0]), ExpireAtMS: int64(binary.BigEndian.Uint64(b[1:])), Payload: b[9:]}, nil
}
