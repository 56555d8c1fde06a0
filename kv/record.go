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
)

func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
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
