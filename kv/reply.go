package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ReplyKind is the kind of a Reply: the shapes of Redis's replies, which
// the front end writes in RESP2 or RESP3.
type ReplyKind byte

// Reply kinds.
const (
	// ReplyNil is a missing value: RESP2 "$-1", RESP3 "_".
	ReplyNil ReplyKind = iota
	// ReplyNilArray is a missing array (EXEC of a transaction whose
	// watched keys changed, a blocking pop that timed out, LPOP with a
	// count of a missing key): RESP2 "*-1", RESP3 "_".
	ReplyNilArray
	// ReplyInt is an integer.
	ReplyInt
	// ReplyBulk is a byte string.
	ReplyBulk
	// ReplyStatus is a status line ("OK").
	ReplyStatus
	// ReplyError is an error line; Str starts with its code ("ERR ...").
	ReplyError
	// ReplyDouble is a floating-point number: RESP3 ",1.5", RESP2 the bulk
	// string "1.5" (FormatDouble).
	ReplyDouble
	// ReplyArray is an array of replies.
	ReplyArray
	// ReplyMap is a map whose Elems alternate keys and values: RESP3 "%",
	// RESP2 a flat array.
	ReplyMap
	// ReplySet is a set: RESP3 "~", RESP2 an array.
	ReplySet
	// ReplyPairs is a list of pairs whose Elems alternate firsts and
	// seconds (a member and its score): RESP3 an array of two-element
	// arrays, RESP2 a flat array.
	ReplyPairs
	replyKinds
)

// Reply is a command's answer, built by the engine (engine.go) and
// written by the front end. It crosses the network encoded (Encode).
type Reply struct {
	Kind  ReplyKind
	Int   int64
	Float float64
	Str   []byte
	Elems []Reply
}

// Reply constructors.

// Nil returns a missing value.
func Nil() Reply { return Reply{Kind: ReplyNil} }

// NilArray returns a missing array.
func NilArray() Reply { return Reply{Kind: ReplyNilArray} }

// Int returns an integer reply.
func Int(n int64) Reply { return Reply{Kind: ReplyInt, Int: n} }

// Bulk returns a byte-string reply.
func Bulk(b []byte) Reply { return Reply{Kind: ReplyBulk, Str: b} }

// BulkString returns a byte-string reply.
func BulkString(s string) Reply { return Reply{Kind: ReplyBulk, Str: []byte(s)} }

// Status returns a status reply.
func Status(s string) Reply { return Reply{Kind: ReplyStatus, Str: []byte(s)} }

// OK is the status reply "OK".
func OK() Reply { return Status("OK") }

// Double returns a floating-point reply.
func Double(f float64) Reply { return Reply{Kind: ReplyDouble, Float: f} }

// Array returns an array reply.
func Array(elems ...Reply) Reply { return Reply{Kind: ReplyArray, Elems: elems} }

// Errorf returns an error reply; the text starts with its code.
func Errorf(format string, args ...any) Reply {
	return Reply{Kind: ReplyError, Str: []byte(fmt.Sprintf(format, args...))}
}

// ErrReply returns the error reply of err: its text, which for the
// errors of this package is already a Redis error line ("WRONGTYPE ...",
// "ERR ..."); other texts get the code "ERR".
func ErrReply(err error) Reply {
	msg := err.Error()
	var re RedisError
	switch {
	case errors.As(err, &re):
		msg = string(re)
	case errors.Is(err, ErrWrongType):
		msg = ErrWrongType.Error()
	case errors.Is(err, ErrNotInteger):
		msg = ErrNotInteger.Error()
	case errors.Is(err, ErrOverflow):
		msg = ErrOverflow.Error()
	case !hasErrorCode(msg):
		msg = "ERR " + msg
	}
	return Reply{Kind: ReplyError, Str: []byte(msg)}
}

// hasErrorCode reports whether msg starts with an upper-case code word.
func hasErrorCode(msg string) bool {
	n := 0
	for n < len(msg) && msg[n] >= 'A' && msg[n] <= 'Z' {
		n++
	}
	return n >= 2 && n < len(msg) && msg[n] == ' '
}

// RedisError is an error whose text is a Redis error line, code first
// ("ERR syntax error"). The front end sends it as it is.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// IsError reports whether the reply is an error.
func (r Reply) IsError() bool { return r.Kind == ReplyError }

// Err returns the reply's error (a RedisError), or nil.
func (r Reply) Err() error {
	if r.Kind != ReplyError {
		return nil
	}
	return RedisError(r.Str)
}

// FormatDouble writes f as Redis writes a double reply: "%.17g", with
// "inf" and "-inf" for the infinities.
func FormatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// Encoding: a kind byte, then for an integer its varint, for a double its
// 8 bytes (big-endian IEEE 754), for a string kind its uvarint length and
// bytes, for an aggregate its uvarint count and elements.

// maxReplyDepth bounds the nesting of a decoded reply (a transaction's
// replies hold pairs of arrays at most).
const maxReplyDepth = 8

// Encode returns the reply's binary form.
func (r Reply) Encode() []byte { return r.appendTo(nil) }

func (r Reply) appendTo(b []byte) []byte {
	b = append(b, byte(r.Kind))
	switch r.Kind {
	case ReplyInt:
		b = binary.AppendVarint(b, r.Int)
	case ReplyDouble:
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Float))
	case ReplyBulk, ReplyStatus, ReplyError:
		b = binary.AppendUvarint(b, uint64(len(r.Str)))
		b = append(b, r.Str...)
	case ReplyArray, ReplyMap, ReplySet, ReplyPairs:
		b = binary.AppendUvarint(b, uint64(len(r.Elems)))
		for _, e := range r.Elems {
			b = e.appendTo(b)
		}
	}
	return b
}

// ErrBadReply is returned for an encoded reply that does not decode.
var ErrBadReply = errors.New("kv: malformed reply")

// DecodeReply parses the output of Encode. Strings alias b.
func DecodeReply(b []byte) (Reply, error) {
	r, rest, err := decodeReply(b, 0)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: %d trailing bytes", ErrBadReply, len(rest))
	}
	return r, err
}

func decodeReply(b []byte, depth int) (Reply, []byte, error) {
	if len(b) == 0 || b[0] >= byte(replyKinds) || depth > maxReplyDepth {
		return Reply{}, nil, fmt.Errorf("%w: bad kind or depth", ErrBadReply)
	}
	r := Reply{Kind: ReplyKind(b[0])}
	b = b[1:]
	switch r.Kind {
	case ReplyInt:
		v, w := binary.Varint(b)
		if w <= 0 {
			return Reply{}, nil, fmt.Errorf("%w: integer", ErrBadReply)
		}
		r.Int, b = v, b[w:]
	case ReplyDouble:
		if len(b) < 8 {
			return Reply{}, nil, fmt.Errorf("%w: double", ErrBadReply)
		}
		r.Float, b = math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:]
	case ReplyBulk, ReplyStatus, ReplyError:
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return Reply{}, nil, fmt.Errorf("%w: string length", ErrBadReply)
		}
		r.Str, b = b[w:w+int(n):w+int(n)], b[w+int(n):]
	case ReplyArray, ReplyMap, ReplySet, ReplyPairs:
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return Reply{}, nil, fmt.Errorf("%w: element count", ErrBadReply)
		}
		b = b[w:]
		r.Elems = make([]Reply, 0, n)
		for range n {
			var e Reply
			var err error
			if e, b, err = decodeReply(b, depth+1); err != nil {
				return Reply{}, nil, err
			}
			r.Elems = append(r.Elems, e)
		}
		if (r.Kind == ReplyMap || r.Kind == ReplyPairs) && n%2 != 0 {
			return Reply{}, nil, fmt.Errorf("%w: odd number of map or pair elements", ErrBadReply)
		}
	}
	return r, b, nil
}
