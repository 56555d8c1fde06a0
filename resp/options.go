package resp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/kv"
)

// Argument parsing of the commands with options. These functions are
// pure (the clock is a parameter), so that they can be fuzzed.

// replyError is an error whose text is the reply line itself, code first
// ("ERR syntax error"). errorReply passes it through unchanged.
type replyError string

func (e replyError) Error() string { return string(e) }

var (
	errSyntax        = replyError("ERR syntax error")
	errInvalidCursor = replyError("ERR invalid cursor")
)

func errArity(name string) error {
	return replyError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
}

// parseInt parses an integer argument as Redis does.
func parseInt(b []byte) (int64, error) {
	v, ok := kv.ParseInt(b)
	if !ok {
		return 0, kv.ErrNotInteger
	}
	return v, nil
}

// parseSet parses "key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]"
// (the arguments after SET) into an OpSet command stamped with nowMS. The
// command engine parses the same way (kv.ParseSet): SET in a transaction
// is the same command.
func parseSet(args [][]byte, nowMS int64) (kv.Command, error) { return kv.ParseSet(args, nowMS) }

// parseExpire parses "key time [NX|XX|GT|LT]..." (the arguments after
// EXPIRE, PEXPIRE, EXPIREAT or PEXPIREAT) into an OpExpire command (see
// kv.ParseExpire).
func parseExpire(name string, args [][]byte, nowMS, unitMS int64, absolute bool) (kv.Command, error) {
	return kv.ParseExpire(name, args, nowMS, unitMS, absolute)
}

// maxScanCount caps SCAN's COUNT hint, which bounds the work and memory
// of one call.
const maxScanCount = 100_000

// scanArgs are SCAN's arguments.
type scanArgs struct {
	cursor uint64
	match  string
	count  int
	typ    string // "" or a type name (TYPE option)
}

// parseScan parses "cursor [MATCH pattern] [COUNT n] [TYPE type]".
func parseScan(args [][]byte) (scanArgs, error) {
	if len(args) < 1 {
		return scanArgs{}, errArity("scan")
	}
	var sa scanArgs
	var err error
	if sa.cursor, err = strconv.ParseUint(string(args[0]), 10, 64); err != nil {
		return scanArgs{}, errInvalidCursor
	}
	for i := 1; i < len(args); i += 2 {
		if i+1 == len(args) {
			return scanArgs{}, errSyntax
		}
		v := args[i+1]
		switch strings.ToUpper(string(args[i])) {
		case "MATCH":
			sa.match = string(v)
		case "COUNT":
			n, err := parseInt(v)
			if err != nil {
				return scanArgs{}, err
			}
			if n < 1 {
				return scanArgs{}, errSyntax
			}
			sa.count = int(min(n, maxScanCount))
		case "TYPE":
			sa.typ = strings.ToLower(string(v))
		default:
			return scanArgs{}, errSyntax
		}
	}
	return sa, nil
}
