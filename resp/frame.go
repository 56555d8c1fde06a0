package resp

import (
	"bytes"
	"math"
)

// Framing for the event loop (loop_linux.go). The loop reads what a
// socket has without blocking, so it may run readCommand only when the
// reader's buffer already holds a whole command: readCommand would
// otherwise ask its source for more, which in the loop fails with
// errWouldBlock half-way through a command. frame tells, from the
// buffered bytes alone, whether readCommand will return without reading
// (a command, or the error that ends the stream or rejects a command).
// It follows readCommand step by step, so the two cannot disagree on
// where a command ends (TestFrameAgreesWithReader).

// frameState says what the buffered bytes hold.
type frameState int

const (
	// frameReady: readCommand returns (a command or an error) from the
	// buffered bytes alone.
	frameReady frameState = iota
	// frameMore: the command is not complete yet; need is a lower bound
	// of the bytes from the start of the buffer it takes.
	frameMore
)

// frame reports whether a command is buffered whole, and if not, at least
// how many buffered bytes it needs.
func (r *reader) frame() (frameState, int) {
	b, _ := r.br.Peek(r.br.Buffered())
	return scanFrame(b, r.lim)
}

// scanFrame is frame over b (the buffered bytes).
func scanFrame(b []byte, lim limits) (frameState, int) {
	pos := 0
	for { // empty commands are skipped, as readCommand does
		if pos >= len(b) {
			return frameMore, pos + 1
		}
		if b[pos] != '*' {
			end := bytes.IndexByte(b[pos:], '\n')
			if end < 0 {
				if len(b)-pos > lim.maxInline {
					return frameReady, 0 // too long already: readInline fails
				}
				return frameMore, len(b) + 1
			}
			line := b[pos : pos+end+1]
			if len(line) > lim.maxInline || !allBlank(line) {
				return frameReady, 0 // a command, or too long a line
			}
			pos += end + 1 // a blank line: skipped
			continue
		}
		line, next, st := frameLine(b, pos, lim)
		if st != frameReady {
			return frameMore, next
		}
		if line == nil {
			return frameReady, 0 // readLine fails here
		}
		count, ok := parseLength(line[1:])
		if !ok || count > math.MaxInt32 {
			return frameReady, 0
		}
		pos = next
		if count <= 0 {
			continue
		}
		if count > int64(lim.maxArgs) && lim.strict {
			return frameReady, 0
		}
		total := int64(0)
		for range count {
			line, next, st := frameLine(b, pos, lim)
			if st != frameReady {
				return frameMore, next
			}
			if line == nil || len(line) == 0 || line[0] != '$' {
				return frameReady, 0
			}
			size, ok := parseLength(line[1:])
			if !ok || size < 0 || size > math.MaxInt64-2 {
				return frameReady, 0
			}
			if lim.strict && (size > int64(lim.maxBulk) || total+size > int64(lim.maxCommand)) {
				return frameReady, 0
			}
			total += size
			// The argument and its CRLF (whose absence readCommand reports
			// once it has them: two bytes either way).
			if int64(len(b)-next) < size+2 {
				return frameMore, next + int(min(size+2, math.MaxInt32))
			}
			pos = next + int(size) + 2
		}
		return frameReady, 0
	}
}

// frameLine finds the header line at pos as readLine reads it: its text
// without "\r\n" (nil: readLine fails on it) and where the next begins,
// or frameMore and the bytes it needs if no '\n' is buffered yet.
func frameLine(b []byte, pos int, lim limits) ([]byte, int, frameState) {
	end := bytes.IndexByte(b[pos:], '\n')
	if end < 0 {
		if len(b)-pos > lim.maxHeaderLen {
			return nil, 0, frameReady // too long already: readLine fails
		}
		return nil, len(b) + 1, frameMore
	}
	line := b[pos : pos+end+1]
	if len(line) > lim.maxHeaderLen || len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, 0, frameReady
	}
	return line[:len(line)-2], pos + end + 1, frameReady
}

func allBlank(b []byte) bool {
	for _, c := range b {
		if !isBlank(c) {
			return false
		}
	}
	return true
}
