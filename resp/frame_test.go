package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestFrameAgreesWithReader: for every prefix of random input (commands
// well and badly formed, inline lines, empty commands, arguments beyond
// the limits, in strict mode and not), frame says a command is ready
// exactly when readCommand returns without needing another byte, and
// while it says more, its need is never more than the bytes that
// complete the command. This is what lets the event loop run
// readCommand on a socket that never blocks.
func TestFrameAgreesWithReader(t *testing.T) {
	pieces := []string{
		multibulk("GET", "k"), multibulk("SET", "key", "value"), multibulk("ECHO", ""),
		multibulk("A", "B", "C", "D", "E", "F"),        // too many arguments (limit 4)
		multibulk("SET", "k", strings.Repeat("x", 12)), // an argument over the limit (8)
		"*0\r\n", "*-1\r\n", "\r\n", "  \t\r\n", "PING\r\n", "SET a 'b c'\r\n", "GET \"unbalanced\r\n",
		strings.Repeat("z", 40) + "\r\n", // an inline line over the limit (32)
		"*x\r\n", "*1\r\n$x\r\n", "*1\r\n+3\r\n", "*1\r\n$-2\r\n", "*1\r\n$3\r\nabcd\r\n",
		"*1\n", "*2\r\n$1\r\na\r\n$1\r\nb\n\n", "*" + strings.Repeat("9", 30) + "\r\n",
		"$3\r\nabc\r\n",
	}
	rapid.Check(t, func(t *rapid.T) {
		b, lim := drawInput(t, pieces, 4)
		complete := -1 // the shortest prefix on which readCommand returns
		for n := 0; n <= len(b); n++ {
			r := &reader{br: bufio.NewReaderSize(bytes.NewReader(b[:n]), 16<<10), lim: lim}
			_, err := r.readCommand()
			needed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			st, need := scanFrame(b[:n], lim)
			if (st == frameReady) == needed {
				t.Fatalf("prefix %q: frame says ready=%v, readCommand says %v", b[:n], st == frameReady, err)
			}
			if !needed && complete < 0 {
				complete = n
			}
			if st == frameMore && need <= n {
				t.Fatalf("prefix %q: frame needs %d bytes, has %d", b[:n], need, n)
			}
		}
		// need is a lower bound: no prefix shorter than it completes.
		for n := 0; n < len(b); n++ {
			if st, need := scanFrame(b[:n], lim); st == frameMore && complete >= 0 && need > complete {
				t.Fatalf("prefix %q: frame needs %d bytes, but %d complete the command", b[:n], need, complete)
			}
		}
	})
}

// TestParseBufferedAgreesWithReader: on every prefix of random input,
// parseBuffered either declines, consuming nothing, or returns what
// readCommand returns from the same bytes without it (readMultibulk or
// readInline: the same arguments, the same bytes consumed); on a whole
// well-formed command within the limits it parses. The arguments it
// returns do not alias the reader's buffer, and one cannot grow into the
// next.
func TestParseBufferedAgreesWithReader(t *testing.T) {
	pieces := []string{
		multibulk("GET", "k"), multibulk("SET", "key", "value"), multibulk("ECHO", ""),
		multibulk("A", "B", "C", "D", "E", "F"),        // too many arguments (limit 4)
		multibulk("SET", "k", strings.Repeat("x", 12)), // an argument over the limit (8)
		multibulk("SET", "k1", "v1", "x"),              // 16 bytes in all: the limit
		multibulk("SET", "k12", "v12", "x"),            // 17 bytes: over it
		"*0\r\n", "*-1\r\n", "*x\r\n", "*1\r\n$x\r\n", "*1\r\n+3\r\n", "*1\r\n$-2\r\n", "*1\r\n$3\r\nabcd\r\n",
		"*1\n", "*2\r\n$1\r\na\r\n$1\r\nb\n\n", "*" + strings.Repeat("9", 30) + "\r\n", "*1\r\n$00001\r\nq\r\n",
		"*1\r\n$+1\r\nq\r\n", "*01\r\n$1\r\nq\r\n", "*1\r\n$1\r\nq\r",
		"$2\r\n$1\r\na\r\n$1\r\nb\r\n", // not multibulk
	}
	rapid.Check(t, func(t *rapid.T) {
		b, lim := drawInput(t, pieces, 3)
		if rapid.Bool().Draw(t, "large") { // first, a command past fastShared: arguments allocated one by one
			b = append([]byte(multibulk("SET", "k", strings.Repeat("v", 300))), b...)
			lim.maxBulk, lim.maxCommand = 1024, 1024
		}
		for n := 1; n <= len(b); n++ {
			garbage := bytes.Repeat([]byte{'#'}, 32<<10) // read after the command, into the same buffer
			fast := &reader{br: bufio.NewReaderSize(io.MultiReader(bytes.NewReader(b[:n]), bytes.NewReader(garbage)), 16<<10), lim: lim}
			if _, err := fast.br.Peek(n); err != nil {
				t.Fatal(err)
			}
			args, ok := fast.parseBuffered()
			if !ok {
				if fast.br.Buffered() != n {
					t.Fatalf("prefix %q: declined, but consumed %d bytes", b[:n], n-fast.br.Buffered())
				}
				if st, _ := scanFrame(b[:n], lim); st == frameReady && b[0] == '*' {
					slow := &reader{br: bufio.NewReaderSize(bytes.NewReader(b[:n]), 16<<10), lim: lim}
					if want, err := slow.readMultibulk(); err == nil && len(want) > 0 {
						t.Fatalf("prefix %q: declined a command readMultibulk reads: %q", b[:n], want)
					}
				}
				continue
			}
			slow := &reader{br: bufio.NewReaderSize(bytes.NewReader(b[:n]), 16<<10), lim: lim}
			want, err := slow.read(false)
			if err != nil {
				t.Fatalf("prefix %q: parsed %q where the slow path fails: %v", b[:n], args, err)
			}
			if len(args) != len(want) {
				t.Fatalf("prefix %q: parsed %q, the slow path %q", b[:n], args, want)
			}
			for i := range args {
				if !bytes.Equal(args[i], want[i]) || args[i] == nil {
					t.Fatalf("prefix %q: parsed %q, the slow path %q", b[:n], args, want)
				}
			}
			if fast.br.Buffered() != slow.br.Buffered() {
				t.Fatalf("prefix %q: parsed leaving %d bytes, the slow path %d", b[:n], fast.br.Buffered(), slow.br.Buffered())
			}
			// Owned: reading on (the reader's buffer refilled), or
			// appending to an argument, changes no argument.
			for p := make([]byte, 100); ; {
				if _, err := fast.br.Read(p); err != nil {
					break
				}
			}
			for i := range args {
				_ = append(args[i], 'Z')
			}
			for i := range args {
				if !bytes.Equal(args[i], want[i]) {
					t.Fatalf("prefix %q: argument %d became %q", b[:n], i, args[i])
				}
			}
		}
	})
}

// drawInput draws up to most pieces, joined, and small limits (strict or
// not) for the reader to meet them with.
func drawInput(t *rapid.T, pieces []string, most int) ([]byte, limits) {
	var in strings.Builder
	for range rapid.IntRange(1, most).Draw(t, "pieces") {
		in.WriteString(rapid.SampledFrom(pieces).Draw(t, "piece"))
	}
	lim := limits{maxArgs: 4, maxBulk: 8, maxCommand: 16, maxInline: 32, maxHeaderLen: 16,
		strict: rapid.Bool().Draw(t, "strict")}
	return []byte(in.String()), lim
}
