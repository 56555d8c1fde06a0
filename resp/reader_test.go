package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func smallLimits() limits {
	return limits{maxArgs: 8, maxBulk: 64, maxCommand: 128, maxInline: 256, maxHeaderLen: 64}
}

// readAll reads commands until the input ends or a protocol error; it
// returns each command (arguments joined by "|") or "!ERR..." for a
// rejected command, and the final error.
func readAll(input string, lim limits) ([]string, error) {
	r := newReader(strings.NewReader(input), lim)
	var out []string
	for {
		args, err := r.readCommand()
		var rej *rejectedError
		switch {
		case errors.As(err, &rej):
			out = append(out, "!"+rej.Error())
			continue
		case err != nil:
			return out, err
		}
		s := make([]string, len(args))
		for i, a := range args {
			s[i] = string(a)
		}
		out = append(out, strings.Join(s, "|"))
	}
}

func multibulk(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func TestReaderCommands(t *testing.T) {
	big := strings.Repeat("x", 65)
	cases := []struct {
		name, in string
		want     []string
	}{
		{"multibulk", multibulk("GET", "k"), []string{"GET|k"}},
		{"pipeline", multibulk("SET", "k", "") + multibulk("PING"), []string{"SET|k|", "PING"}},
		{"binary", multibulk("SET", "a\r\nb", "\x00\xff"), []string{"SET|a\r\nb|\x00\xff"}},
		{"empty commands are skipped", "*0\r\n*-1\r\n" + multibulk("PING"), []string{"PING"}},
		{"inline", "PING\r\nGET  k\n", []string{"PING", "GET|k"}},
		{"inline blank lines", "\r\n   \r\nPING\r\n", []string{"PING"}},
		{"inline quotes", `SET k "a b\n\x41\"" 'c \' d' ""` + "\r\n", []string{"SET|k|a b\nA\"|c ' d|"}},
		{"argument too large, then go on", multibulk("SET", "k", big) + multibulk("PING"),
			[]string{"!ERR argument of 65 bytes exceeds the limit of 64 bytes", "PING"}},
		{"too many arguments, then go on", multibulk("A", "1", "2", "3", "4", "5", "6", "7", "8") + multibulk("PING"),
			[]string{"!ERR too many arguments: 9 (limit 8)", "PING"}},
		{"command too large, then go on", multibulk("A", big[:60], big[:60], big[:60]) + multibulk("PING"),
			[]string{"!ERR command of more than 181 bytes exceeds the limit of 128 bytes", "PING"}},
		{"too many inline arguments", "a b c d e f g h i\r\nPING\r\n", []string{"!ERR too many arguments: 9 (limit 8)", "PING"}},
	}
	for _, c := range cases {
		got, err := readAll(c.in, smallLimits())
		if err != io.EOF {
			t.Errorf("%s: ended with %v, want EOF", c.name, err)
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestReaderProtocolErrors(t *testing.T) {
	cases := map[string]string{
		"*abc\r\n":                           "invalid multibulk length",
		"*99999999999\r\n":                   "invalid multibulk length",
		"*1\n":                               "line not terminated by CRLF",
		"*1\r\n+x\r\n":                       "expected '$'",
		"*1\r\n\r\n":                         "expected '$'",
		"*1\r\n$-1\r\n":                      "invalid bulk length",
		"*1\r\n$x\r\n":                       "invalid bulk length",
		"*1\r\n$9223372036854775807\r\n":     "invalid bulk length",
		"*1\r\n$99999999999999999999999\r\n": "invalid bulk length",
		"*1\r\n$3\r\nabcd\r\n":               "bulk not terminated by CRLF",
		"*1\r\n$" + strings.Repeat("1", 100) + "\r\n": "too big header line",
		"\"unbalanced\r\n":                            "unbalanced quotes",
		"'a'b\r\n":                                    "unbalanced quotes",
		strings.Repeat("a", 300) + "\r\n":             "too big inline request",
	}
	for in, want := range cases {
		_, err := readAll(in, smallLimits())
		var pe *protocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a protocol error about %q", in, err, want)
		}
	}
	// A stream that ends inside a command is not a protocol error.
	for _, in := range []string{"*2\r\n$3\r\nGET\r\n", "*1\r\n$10\r\nabc", "*1\r\n$3\r\nabc"} {
		if _, err := readAll(in, smallLimits()); !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
			t.Errorf("%q: %v, want an end of stream", in, err)
		}
	}
}

// TestReaderDoesNotTrustDeclaredLengths: a client that declares a huge
// argument and sends a few bytes costs the server a few bytes, not the
// declared size.
func TestReaderDoesNotTrustDeclaredLengths(t *testing.T) {
	lim := limits{maxArgs: 8, maxBulk: 1 << 30, maxCommand: 1 << 30, maxInline: 256, maxHeaderLen: 64}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readAll("*1\r\n$1000000000\r\nonly a few bytes", lim)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("reading a 1 GB declaration that sent 16 bytes allocated %d bytes", grew)
	}
	// A real argument of several MB arrives whole.
	val := bytes.Repeat([]byte("v"), 3<<20+17)
	got, err := readAll(multibulk("SET", "k", string(val)), lim)
	if err != io.EOF || len(got) != 1 || got[0] != "SET|k|"+string(val) {
		t.Fatalf("a 3 MB argument: %v, %d commands", err, len(got))
	}
}

// FuzzReadCommand: whatever the bytes, the reader neither panics nor
// returns a command beyond the limits, and what it returns survives being
// encoded and read again.
func FuzzReadCommand(f *testing.F) {
	f.Add([]byte(multibulk("SET", "k", "v", "EX", "10")))
	f.Add([]byte("PING\r\n\"a\\x41\" 'b'\r\n"))
	f.Add([]byte("*1\r\n$9223372036854775806\r\nabc\r\n"))
	f.Add([]byte("*3\r\n$1\r\na\r\n$100\r\n"))
	f.Add([]byte("*0\r\n*-5\r\n\r\n" + multibulk("A", strings.Repeat("b", 70))))
	f.Fuzz(func(t *testing.T, in []byte) {
		lim := smallLimits()
		r := newReader(bytes.NewReader(in), lim)
		for range 1000 {
			args, err := r.readCommand()
			var rej *rejectedError
			var pe *protocolError
			switch {
			case errors.As(err, &rej):
				continue
			case errors.As(err, &pe), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, bufio.ErrBufferFull):
				return
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			}
			if len(args) == 0 || len(args) > lim.maxArgs {
				t.Fatalf("%d arguments", len(args))
			}
			var enc strings.Builder
			fmt.Fprintf(&enc, "*%d\r\n", len(args))
			for _, a := range args {
				if len(a) > max(lim.maxBulk, lim.maxInline) {
					t.Fatalf("argument of %d bytes", len(a))
				}
				fmt.Fprintf(&enc, "$%d\r\n%s\r\n", len(a), a)
			}
			again, err := newReader(strings.NewReader(enc.String()), limits{maxArgs: 8, maxBulk: 1 << 20, maxCommand: 1 << 20, maxInline: 256, maxHeaderLen: 64}).readCommand()
			if err != nil || len(again) != len(args) {
				t.Fatalf("re-reading %q: %q, %v", enc.String(), again, err)
			}
			for i := range args {
				if !bytes.Equal(again[i], args[i]) {
					t.Fatalf("argument %d differs after a round trip", i)
				}
			}
		}
	})
}

// TestReadCommandAllocations: reading "GET key" allocates the argument
// slice and the two arguments, nothing per CRLF (a local array read into
// through an io.Reader escaped, one allocation per argument).
func TestReadCommandAllocations(t *testing.T) {
	const cmd = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
	input := strings.NewReader("")
	r := newReader(input, smallLimits())
	allocs := testing.AllocsPerRun(200, func() {
		input.Reset(cmd)
		r.br.Reset(input)
		if args, err := r.readCommand(); err != nil || len(args) != 2 {
			t.Fatalf("%q: %v", args, err)
		}
	})
	if allocs > 3 {
		t.Fatalf("reading GET key allocates %.0f times, want at most 3 (the slice and two arguments)", allocs)
	}
}

// TestParseLengthAgreesWithStrconv: parseLength's digits-only fast path
// answers as strconv.ParseInt does, around its edges and at random.
func TestParseLengthAgreesWithStrconv(t *testing.T) {
	check := func(s string) {
		t.Helper()
		n, ok := parseLength([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		wantOK := err == nil && len(s) > 0 && len(s) <= 20
		if !wantOK {
			want = 0
		}
		if ok != wantOK || (ok && n != want) {
			t.Fatalf("parseLength(%q) = %d, %v; strconv: %d, %v", s, n, ok, want, err)
		}
	}
	for _, s := range []string{"", "0", "7", "-1", "+3", "00012", "1a", "a1", " 1", "1 ", "-", "+",
		"999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"99999999999999999999", "123456789012345678901", "1_000", "0x10", "١"} {
		check(s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789+- x"
	for range 20000 {
		b := make([]byte, rng.IntN(22))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}
