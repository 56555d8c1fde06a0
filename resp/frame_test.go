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
		var in strings.Builder
		for range rapid.IntRange(1, 4).Draw(t, "pieces") {
			in.WriteString(rapid.SampledFrom(pieces).Draw(t, "piece"))
		}
		lim := limits{maxArgs: 4, maxBulk: 8, maxCommand: 16, maxInline: 32, maxHeaderLen: 16,
			strict: rapid.Bool().Draw(t, "strict")}
		b := []byte(in.String())
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
