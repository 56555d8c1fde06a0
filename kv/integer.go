package kv

import (
	"errors"
	"strconv"
)

// Errors of the counter operations. Their messages are Redis's own, so
// that a client sees the text it knows.
var (
	// ErrNotInteger: the stored value (or an argument) is not the decimal
	// form of a 64-bit signed integer.
	ErrNotInteger = errors.New("ERR value is not an integer or out of range")
	// ErrOverflow: the result of an increment does not fit in 64 bits.
	ErrOverflow = errors.New("ERR increment or decrement would overflow")
)

// ParseInt parses the canonical decimal form of a 64-bit signed integer,
// as Redis does for counters and integer arguments: an optional minus
// sign and digits, no leading zeros, no plus sign, no spaces, no "-0".
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false
	}
	// Only the canonical form is accepted: this rejects "+1", "01", "-0".
	var buf [20]byte
	if string(strconv.AppendInt(buf[:0], v, 10)) != string(b) {
		return 0, false
	}
	return v, true
}

// addInt returns a+b and whether it overflowed.
func addInt(a, b int64) (int64, bool) {
	s := a + b
	return s, (b > 0 && s < a) || (b < 0 && s > a)
}
