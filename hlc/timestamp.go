package hlc

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// EncodedLen is the length in bytes of an encoded Timestamp.
const EncodedLen = 16

// ErrBadEncoding is returned by Decode when its input cannot hold an encoded
// Timestamp.
var ErrBadEncoding = errors.New("hlc: malformed timestamp encoding")

// signBit is XORed into the wall time when encoding so that negative wall
// times sort before positive ones under an unsigned byte comparison.
const signBit = 1 << 63

// Timestamp is a point in hybrid logical time. Timestamps are totally ordered
// by WallMS, then Logical, then Node. The zero value is the smallest
// timestamp with a non-negative wall time and is used to mean "unset".
type Timestamp struct {
	// WallMS is the physical component, in milliseconds since the Unix epoch.
	WallMS int64
	// Logical orders timestamps that share the same WallMS.
	Logical uint32
	// Node is the id of the node that produced the timestamp. It only breaks
	// ties between otherwise equal timestamps issued by different nodes.
	Node uint32
}

// Compare returns -1 if t orders before u, +1 if t orders after u, and 0 if
// the two timestamps are identical.
func (t Timestamp) Compare(u Timestamp) int {
	if c := cmp.Compare(t.WallMS, u.WallMS); c != 0 {
		return c
	}
	if c := cmp.Compare(t.Logical, u.Logical); c != 0 {
		return c
	}
	return cmp.Compare(t.Node, u.Node)
}

// Less reports whether t orders strictly before u.
func (t Timestamp) Less(u Timestamp) bool {
	return t.Compare(u) < 0
}

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool {
	return t == Timestamp{}
}

// String formats t as "<wall>.<logical>@<node>", for example
// "1700000000123.4@7".
func (t Timestamp) String() string {
	b := make([]byte, 0, 32)
	b = strconv.AppendInt(b, t.WallMS, 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(t.Logical), 10)
	b = append(b, '@')
	b = strconv.AppendUint(b, uint64(t.Node), 10)
	return string(b)
}

// Time returns the wall component of t as a time.Time in UTC. The logical
// counter and node id are not represented.
func (t Timestamp) Time() time.Time {
	return time.UnixMilli(t.WallMS).UTC()
}

// AppendEncode appends the EncodedLen-byte binary form of t to dst and returns
// the extended slice. The layout is WallMS (with its sign bit inverted),
// Logical and Node, each big-endian, so that comparing two encodings with
// bytes.Compare gives the same result as Timestamp.Compare.
func (t Timestamp) AppendEncode(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.WallMS)^signBit)
	dst = binary.BigEndian.AppendUint32(dst, t.Logical)
	return binary.BigEndian.AppendUint32(dst, t.Node)
}

// Decode parses a Timestamp from the first EncodedLen bytes of b, as written
// by AppendEncode. Bytes after the first EncodedLen are ignored, which lets
// callers decode a timestamp that prefixes a longer key. It returns an error
// wrapping ErrBadEncoding if b is shorter than EncodedLen.
func Decode(b []byte) (Timestamp, error) {
	if len(b) < EncodedLen {
		return Timestamp{}, fmt.Errorf("%w: got %d bytes, need %d", ErrBadEncoding, len(b), EncodedLen)
	}
	return Timestamp{
		WallMS:  int64(binary.BigEndian.Uint64(b[0:8]) ^ signBit),
		Logical: binary.BigEndian.Uint32(b[8:12]),
		Node:    binary.BigEndian.Uint32(b[12:16]),
	}, nil
}
