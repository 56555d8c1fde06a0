package resp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

const testNow = int64(1_700_000_000_000)

func splitArgs(t testing.TB, s string) [][]byte {
	args, err := splitInline([]byte(s))
	if err != nil {
		t.Fatalf("split %q: %v", s, err)
	}
	return args
}

func TestParseSet(t *testing.T) {
	ok := []struct {
		in     string
		flags  uint64
		expire int64
	}{
		{"k v", 0, 0},
		{"k v nx", kv.FlagNX, 0},
		{"k v XX GET", kv.FlagXX | kv.FlagGet, 0},
		{"k v EX 10", 0, testNow + 10_000},
		{"k v px 5 nx", kv.FlagNX, testNow + 5},
		{"k v EXAT 1800000000", 0, 1_800_000_000_000},
		{"k v PXAT 1", 0, 1},
		{"k v KEEPTTL GET", kv.FlagKeepTTL | kv.FlagGet, 0},
	}
	for _, c := range ok {
		cmd, err := parseSet(splitArgs(t, c.in), testNow)
		if err != nil || cmd.Op != kv.OpSet || cmd.Flags != c.flags || cmd.Int != c.expire || cmd.NowMS != testNow ||
			string(cmd.Args[0]) != "k" || string(cmd.Args[1]) != "v" {
			t.Errorf("SET %s: %+v, %v; want flags %b expiry %d", c.in, cmd, err, c.flags, c.expire)
		}
	}
	bad := map[string]string{
		"k v NX XX":                  "ERR syntax error",
		"k v EX":                     "ERR syntax error",
		"k v EX 1 PX 1":              "ERR syntax error",
		"k v EX 1 KEEPTTL":           "ERR syntax error",
		"k v KEEPTTL EX 1":           "ERR syntax error",
		"k v BOGUS":                  "ERR syntax error",
		"k v EX ten":                 "ERR value is not an integer or out of range",
		"k v EX 0":                   "ERR invalid expire time in 'set' command",
		"k v PX -5":                  "ERR invalid expire time in 'set' command",
		"k v EX 9223372036854775807": "ERR invalid expire time in 'set' command",
		"k v PX 9223372036854775807": "ERR invalid expire time in 'set' command",
		"k":                          "ERR wrong number of arguments for 'set' command",
	}
	for in, want := range bad {
		if _, err := parseSet(splitArgs(t, in), testNow); err == nil || errorReply(err) != want {
			t.Errorf("SET %s: %v, want %q", in, err, want)
		}
	}
}

func TestParseExpire(t *testing.T) {
	cmd, err := parseExpire("expire", splitArgs(t, "k 10 XX GT"), testNow, 1000, false)
	if err != nil || cmd.Op != kv.OpExpire || cmd.Int != testNow+10_000 || cmd.Flags != kv.FlagXX|kv.FlagGT {
		t.Fatalf("EXPIRE k 10 XX GT: %+v %v", cmd, err)
	}
	if cmd, _ := parseExpire("pexpireat", splitArgs(t, "k -5"), testNow, 1, true); cmd.Int != 0 {
		t.Fatalf("a negative absolute time must become 0 (delete): %d", cmd.Int)
	}
	if cmd, _ := parseExpire("expire", splitArgs(t, "k -5"), testNow, 1000, false); cmd.Int != testNow-5000 {
		t.Fatalf("a negative relative time: %d", cmd.Int)
	}
	bad := map[string]string{
		"k ten":                  "ERR value is not an integer or out of range",
		"k 1 NX XX":              "ERR NX and XX, GT or LT options at the same time are not compatible",
		"k 1 GT LT":              "ERR GT and LT options at the same time are not compatible",
		"k 1 SOON":               "ERR Unsupported option SOON",
		"k 9223372036854775807":  "ERR invalid expire time in 'expire' command",
		"k -9223372036854775808": "ERR invalid expire time in 'expire' command",
	}
	for in, want := range bad {
		if _, err := parseExpire("expire", splitArgs(t, in), testNow, 1000, false); err == nil || errorReply(err) != want {
			t.Errorf("EXPIRE %s: %v, want %q", in, err, want)
		}
	}
}

func TestParseScan(t *testing.T) {
	sa, err := parseScan(splitArgs(t, "123 match user:* COUNT 50 type hash"))
	if err != nil || sa.cursor != 123 || sa.match != "user:*" || sa.count != 50 || sa.typ != "hash" {
		t.Fatalf("%+v %v", sa, err)
	}
	if sa, _ := parseScan(splitArgs(t, "0 COUNT 99999999999")); sa.count != maxScanCount {
		t.Fatalf("COUNT is not capped: %d", sa.count)
	}
	bad := map[string]string{
		"x":            "ERR invalid cursor",
		"-1":           "ERR invalid cursor",
		"0 COUNT 0":    "ERR syntax error",
		"0 COUNT x":    "ERR value is not an integer or out of range",
		"0 MATCH":      "ERR syntax error",
		"0 SORTED yes": "ERR syntax error",
	}
	for in, want := range bad {
		if _, err := parseScan(splitArgs(t, in)); err == nil || errorReply(err) != want {
			t.Errorf("SCAN %s: %v, want %q", in, err, want)
		}
	}
}

// FuzzParseCommand feeds command lines to the option parsers: they must
// never panic, and what they accept must make sense.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"SET k v EX 10 NX GET", "SET k v PXAT 1 KEEPTTL", "SET k v px -1", "SET k v EXAT 9223372036854775807",
		"EXPIRE k 10 NX XX", "PEXPIREAT k -9223372036854775808 gt", "EXPIRE k 9223372036854 LT",
		"SCAN 0 MATCH a* COUNT 0", "SCAN 18446744073709551615 TYPE set COUNT 3", `SET "k" 'v' ex "5"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args, err := splitInline([]byte(line))
		if err != nil || len(args) < 1 {
			return
		}
		switch strings.ToLower(string(args[0])) {
		case "set":
			cmd, err := parseSet(args[1:], testNow)
			if err != nil {
				return
			}
			if cmd.Op != kv.OpSet || len(cmd.Args) != 2 || cmd.NowMS != testNow ||
				(cmd.Flags&kv.FlagNX != 0 && cmd.Flags&kv.FlagXX != 0) ||
				(cmd.Flags&kv.FlagKeepTTL != 0 && cmd.Int != 0) || cmd.Int < 0 {
				// An accepted expiry is a positive absolute time.
				t.Fatalf("%q -> %+v", line, cmd)
			}
		case "expire", "pexpire", "expireat", "pexpireat":
			cmd, err := parseExpire("expire", args[1:], testNow, 1000, false)
			if err != nil {
				return
			}
			f := cmd.Flags
			if cmd.Op != kv.OpExpire || len(cmd.Args) != 1 || cmd.Int < 0 ||
				(f&kv.FlagNX != 0 && f&(kv.FlagXX|kv.FlagGT|kv.FlagLT) != 0) || (f&kv.FlagGT != 0 && f&kv.FlagLT != 0) {
				t.Fatalf("%q -> %+v", line, cmd)
			}
		case "scan":
			sa, err := parseScan(args[1:])
			if err != nil {
				return
			}
			if sa.count < 0 || sa.count > maxScanCount {
				t.Fatalf("%q -> %+v", line, sa)
			}
		}
	})
}

func TestErrorReply(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{kv.ErrWrongType, "WRONGTYPE Operation against a key holding the wrong kind of value"},
		{fmt.Errorf("shard 2: %w", kv.ErrWrongType), "WRONGTYPE Operation against a key holding the wrong kind of value"},
		// As a kv error arrives after crossing the network: bare text.
		{errors.New(kv.ErrNotInteger.Error()), "ERR value is not an integer or out of range"},
		{fmt.Errorf("shard 1: %w", errors.New(kv.ErrOverflow.Error())), "ERR increment or decrement would overflow"},
		{fmt.Errorf("%w: %q", node.ErrUnknownKeyspace, "x"), `UNKNOWN_KEYSPACE metadata: unknown keyspace: "x"`},
		{fmt.Errorf("%w: 20000 bytes", node.ErrKeyTooLarge), "KEY_TOO_LARGE node: key too large: 20000 bytes"},
		{fmt.Errorf("%w: %q", node.ErrBadCursor, "zz"), "ERR invalid cursor"},
		{errSyntax, "ERR syntax error"},
		{&rejectedError{"too many arguments"}, "ERR too many arguments"},
		{errors.New("disk on fire\r\nagain"), "ERR disk on fire  again"},
		{metadata.ErrInvalidSpec, "INVALID_SPEC " + metadata.ErrInvalidSpec.Error()},
	}
	for _, c := range cases {
		if got := errorReply(c.err); got != c.want {
			t.Errorf("errorReply(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
