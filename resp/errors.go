package resp

import (
	"errors"
	"strings"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// redisTextErrors are errors whose message is already a Redis error line.
// They are recognised by identity and, because an error that crossed the
// network between nodes may arrive as bare text, by their text as well.
var redisTextErrors = []error{kv.ErrWrongType, kv.ErrNotInteger, kv.ErrOverflow}

// errorReply maps any error a command meets to the RESP error line sent to
// the client. It is the one place where errors become replies:
//
//   - errors made here for the client (syntax, arity, limits) and kv's
//     Redis-text errors (WRONGTYPE, not an integer, overflow) go as they are;
//   - node errors with a stable code go as "CODE message", e.g.
//     "UNKNOWN_KEYSPACE metadata: unknown keyspace: \"x\"" or
//     "NO_LEADER raftgroup: no leader ...", so that clients can tell them
//     apart by the first word, as with Redis's own codes;
//   - anything else goes as "ERR message".
func errorReply(err error) string {
	var re replyError
	var kre kv.RedisError
	var rej *rejectedError
	var pe *protocolError
	switch {
	case errors.As(err, &re):
		return string(re)
	case errors.As(err, &kre):
		return oneLine(string(kre))
	case errors.Is(err, node.ErrCrossShard):
		return oneLine(err.Error()) // "CROSSSLOT ...", Redis Cluster's code
	case errors.As(err, &rej):
		return rej.Error()
	case errors.As(err, &pe):
		return pe.Error()
	case errors.Is(err, node.ErrBadCursor):
		return string(errInvalidCursor)
	}
	msg := oneLine(err.Error())
	for _, e := range redisTextErrors {
		if errors.Is(err, e) || strings.Contains(msg, e.Error()) {
			return e.Error()
		}
	}
	code := node.ErrorCode(err)
	if code == "internal" {
		return "ERR " + msg
	}
	return strings.ToUpper(code) + " " + msg
}

// errorCode is the outcome of a command as a metrics label, from a fixed
// set: "ok", a node error code, or one of the codes of this package.
func errorCode(err error) string {
	if err == nil {
		return metrics.CodeOK
	}
	if code := node.ErrorCode(err); code != "internal" {
		return code
	}
	var re replyError
	var rej *rejectedError
	switch msg := err.Error(); {
	case strings.Contains(msg, kv.ErrWrongType.Error()):
		return "wrong_type"
	case strings.Contains(msg, kv.ErrNotInteger.Error()):
		return "not_integer"
	case strings.Contains(msg, kv.ErrOverflow.Error()):
		return "overflow"
	case errors.Is(err, node.ErrBadCursor):
		return "bad_cursor"
	case strings.Contains(msg, kv.ErrTooLarge.Error()), errors.As(err, &rej):
		return "too_large"
	case errors.As(err, &re):
		for _, code := range []string{"NOAUTH", "NOPERM", "WRONGPASS"} {
			if strings.HasPrefix(string(re), code) {
				return strings.ToLower(code)
			}
		}
		return "bad_request"
	case errors.Is(err, node.ErrCrossShard):
		return "cross_shard"
	case errors.As(err, new(kv.RedisError)):
		return "bad_request"
	}
	return "internal"
}
