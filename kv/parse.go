package kv

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
)

// Argument parsing, as Redis parses. These functions are pure (the clock
// is a parameter), so that they can be fuzzed, and the front end uses
// them to check a command before it proposes it.

// ErrSyntax is Redis's "ERR syntax error".
var ErrSyntax = RedisError("ERR syntax error")

// ArityError is Redis's error for a command with the wrong number of
// arguments.
func ArityError(name string) error {
	return RedisError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name)))
}

func errInvalidExpire(cmd string) error {
	return RedisError(fmt.Sprintf("ERR invalid expire time in '%s' command", cmd))
}

// intArg parses an integer argument as Redis does.
func intArg(b []byte) (int64, bool) { return ParseInt(b) }

// ToAbsoluteMS turns a time argument into an absolute time in ms: v in
// units of unitMS (1000 for seconds, 1 for ms), relative to nowMS unless
// absolute. ok is false on overflow.
func ToAbsoluteMS(v, unitMS, nowMS int64, absolute bool) (int64, bool) {
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

// ParseSet parses "key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]"
// (the arguments after SET) into an OpSet command stamped with nowMS.
func ParseSet(args [][]byte, nowMS int64) (Command, error) {
	if len(args) < 2 {
		return Command{}, ArityError("set")
	}
	cmd := Command{Op: OpSet, NowMS: nowMS, Args: [][]byte{args[0], args[1]}}
	expiry := false
	for i := 2; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		switch opt {
		case "NX", "XX":
			if cmd.Flags&(FlagNX|FlagXX) != 0 {
				return Command{}, ErrSyntax
			}
			if opt == "NX" {
				cmd.Flags |= FlagNX
			} else {
				cmd.Flags |= FlagXX
			}
		case "GET":
			cmd.Flags |= FlagGet
		case "KEEPTTL":
			if expiry {
				return Command{}, ErrSyntax
			}
			cmd.Flags |= FlagKeepTTL
			expiry = true
		case "EX", "PX", "EXAT", "PXAT":
			if expiry || i+1 == len(args) {
				return Command{}, ErrSyntax
			}
			i++
			v, ok := intArg(args[i])
			if !ok {
				return Command{}, ErrNotInteger
			}
			unit := int64(1)
			if opt == "EX" || opt == "EXAT" {
				unit = 1000
			}
			at, ok := ToAbsoluteMS(v, unit, nowMS, opt == "EXAT" || opt == "PXAT")
			if v <= 0 || !ok || at <= 0 {
				return Command{}, errInvalidExpire("set")
			}
			cmd.Int = at
			expiry = true
		default:
			return Command{}, ErrSyntax
		}
	}
	return cmd, nil
}

// ParseExpire parses "key time [NX|XX|GT|LT]..." (the arguments after
// EXPIRE, PEXPIRE, EXPIREAT or PEXPIREAT) into an OpExpire command.
func ParseExpire(name string, args [][]byte, nowMS, unitMS int64, absolute bool) (Command, error) {
	if len(args) < 2 {
		return Command{}, ArityError(name)
	}
	cmd := Command{Op: OpExpire, NowMS: nowMS, Args: [][]byte{args[0]}}
	for _, a := range args[2:] {
		switch opt := strings.ToUpper(string(a)); opt {
		case "NX":
			cmd.Flags |= FlagNX
		case "XX":
			cmd.Flags |= FlagXX
		case "GT":
			cmd.Flags |= FlagGT
		case "LT":
			cmd.Flags |= FlagLT
		default:
			return Command{}, RedisError("ERR Unsupported option " + oneLine(string(a)))
		}
	}
	if cmd.Flags&FlagNX != 0 && cmd.Flags&(FlagXX|FlagGT|FlagLT) != 0 {
		return Command{}, RedisError("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if cmd.Flags&FlagGT != 0 && cmd.Flags&FlagLT != 0 {
		return Command{}, RedisError("ERR GT and LT options at the same time are not compatible")
	}
	v, ok := intArg(args[1]) // after the options, as Redis
	if !ok {
		return Command{}, ErrNotInteger
	}
	at, ok := ToAbsoluteMS(v, unitMS, nowMS, absolute)
	if !ok {
		return Command{}, errInvalidExpire(name)
	}
	// A time at or before now deletes the key (any non-positive time is
	// in the past).
	cmd.Int = max(at, 0)
	return cmd, nil
}

// oneLine makes s fit an error line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// ParseDouble parses a floating-point argument as Redis's strtod-based
// parsing does: no surrounding spaces, no NaN, "inf" and "-inf" allowed,
// an out-of-range value refused.
func ParseDouble(b []byte) (float64, bool) {
	if len(b) == 0 || unicode.IsSpace(rune(b[0])) || unicode.IsSpace(rune(b[len(b)-1])) {
		return 0, false
	}
	s := string(b)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	if math.IsNaN(f) {
		return 0, false
	}
	if math.IsInf(f, 0) && !isInfWord(s) {
		return 0, false // an overflow, not an infinity written as one
	}
	return f, true
}

// isInfWord reports whether s spells an infinity ("inf", "+Infinity", ...).
func isInfWord(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity")
}

// Long doubles. INCRBYFLOAT and HINCRBYFLOAT compute in the C long double
// of Redis's platform, the x87 80-bit format (a 64-bit mantissa), and
// print the result with 17 decimals, trailing zeros removed. big.Float
// with a 64-bit precision rounds exactly as that format does.

// longDoublePrec is the mantissa of an x87 long double.
const longDoublePrec = 64

// longDoubleMaxExp bounds the binary exponent of a finite long double.
const longDoubleMaxExp = 16384

// parseLongDouble parses a long double argument as Redis's string2ld.
func parseLongDouble(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) >= 5*1024 || unicode.IsSpace(rune(b[0])) {
		return nil, false
	}
	s := string(b)
	if isInfWord(s) {
		return new(big.Float).SetInf(strings.HasPrefix(s, "-")), true
	}
	f, _, err := big.ParseFloat(s, 10, longDoublePrec, big.ToNearestEven)
	if err != nil || f.IsInf() || f.MantExp(nil) > longDoubleMaxExp {
		return nil, false
	}
	return f, true
}

// addLongDouble returns a+b rounded to a long double, false if it is not
// finite.
func addLongDouble(a, b *big.Float) (*big.Float, bool) {
	if a.IsInf() || b.IsInf() {
		return nil, false
	}
	sum := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(a, b)
	if sum.IsInf() || sum.MantExp(nil) > longDoubleMaxExp {
		return nil, false
	}
	return sum, true
}

// formatLongDouble prints a long double as Redis does ("%.17Lf", trailing
// zeros and a trailing dot removed, "-0" as "0").
func formatLongDouble(f *big.Float) string {
	s := f.Text('f', 17)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
