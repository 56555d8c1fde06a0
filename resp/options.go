package resp

import (
	"fmt"
	"math"
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

func errInvalidExpire(cmd string) error {
	return replyError(fmt.Sprintf("ERR invalid expire time in '%s' command", cmd))
}

// parseInt parses an integer argument as Redis does.
func parseInt(b []byte) (int64, error) {
	v, ok := kv.ParseInt(b)
	if !ok {
		return 0, kv.ErrNotInteger
	}
	return v, nil
}

// toAbsoluteMS turns a time argument into an absolute time in ms: v in
// units of unitMS (1000 for seconds, 1 for ms), relative to nowMS unless
// absolute. ok is false on overflow.
func toAbsoluteMS(v, unitMS, nowMS int64, absolute bool) (int64, bool) {
	if v > math.MaxInt64/unitMS || v < math.MinInt64/unitMS {
		return 0, false
	}
	ms := v * unitMS
	if absolute {
		return ms, true
	}
	if (ms > 0 && nowMS > math.MaxInt64-ms) || (ms < 0 && nowMS < math.MinInt64-ms) {
		return 0, false
	}
	return ms + nowMS, true
}

// parseSet parses "key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]"
// (the arguments after SET) into an OpSet command stamped with nowMS.
func parseSet(args [][]byte, nowMS int64) (kv.Command, error) {
	if len(args) < 2 {
		return kv.Command{}, errArity("set")
	}
	cmd := kv.Command{Op: kv.OpSet, NowMS: nowMS, Args: [][]byte{args[0], args[1]}}
	expiry := false
	for i := 2; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		switch opt {
		case "NX", "XX":
			if cmd.Flags&(kv.FlagNX|kv.FlagXX) != 0 {
				return kv.Command{}, errSyntax
			}
			if opt == "NX" {
				cmd.Flags |= kv.FlagNX
			} else {
				cmd.Flags |= kv.FlagXX
			}
		case "GET":
			cmd.Flags |= kv.FlagGet
		case "KEEPTTL":
			if expiry {
				return kv.Command{}, errSyntax
			}
			cmd.Flags |= kv.FlagKeepTTL
			expiry = true
		case "EX", "PX", "EXAT", "PXAT":
			if expiry || i+1 == len(args) {
				return kv.Command{}, errSyntax
			}
			i++
			v, err := parseInt(args[i])
			if err != nil {
				return kv.Command{}, err
			}
			unit := int64(1)
			if opt == "EX" || opt == "EXAT" {
				unit = 1000
			}
			at, ok := toAbsoluteMS(v, unit, nowMS, opt == "EXAT" || opt == "PXAT")
			if v <= 0 || !ok || at <= 0 {
				return kv.Command{}, errInvalidExpire("set")
			}
			cmd.Int = at
			expiry = true
		default:
			return kv.Command{}, errSyntax
		}
	}
	return cmd, nil
}

// parseExpire parses "key time [NX|XX|GT|LT]..." (the arguments after
// EXPIRE, PEXPIRE, EXPIREAT or PEXPIREAT) into an OpExpire command.
func parseExpire(name string, args [][]byte, nowMS, unitMS int64, absolute bool) (kv.Command, error) {
	if len(args) < 2 {
		return kv.Command{}, errArity(name)
	}
	v, err := parseInt(args[1])
	if err != nil {
		return kv.Command{}, err
	}
	cmd := kv.Command{Op: kv.OpExpire, NowMS: nowMS, Args: [][]byte{args[0]}}
	for _, a := range args[2:] {
		switch opt := strings.ToUpper(string(a)); opt {
		case "NX":
			cmd.Flags |= kv.FlagNX
		case "XX":
			cmd.Flags |= kv.FlagXX
		case "GT":
			cmd.Flags |= kv.FlagGT
		case "LT":
			cmd.Flags |= kv.FlagLT
		default:
			return kv.Command{}, replyError("ERR Unsupported option " + oneLine(string(a)))
		}
	}
	if cmd.Flags&kv.FlagNX != 0 && cmd.Flags&(kv.FlagXX|kv.FlagGT|kv.FlagLT) != 0 {
		return kv.Command{}, replyError("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if cmd.Flags&kv.FlagGT != 0 && cmd.Flags&kv.FlagLT != 0 {
		return kv.Command{}, replyError("ERR GT and LT options at the same time are not compatible")
	}
	at, ok := toAbsoluteMS(v, unitMS, nowMS, absolute)
	if !ok {
		return kv.Command{}, errInvalidExpire(name)
	}
	// A time at or before now deletes the key (kv does it; any
	// non-positive time is in the past).
	cmd.Int = max(at, 0)
	return cmd, nil
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
