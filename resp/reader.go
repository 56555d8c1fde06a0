package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// The reader parses client commands: RESP multibulk arrays ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
// and, for telnet users, inline lines ("GET k\r\n"). It never trusts a
// declared length: an argument's buffer grows with the bytes that really
// arrive, and every length is checked against the limits before use.
//
// Two kinds of failure:
//   - a rejected command (too many arguments, an argument or a command too
//     large): the reader consumes it whole, discarding the bytes, and the
//     connection goes on (*rejectedError);
//   - a protocol error (a malformed header, a line too long): the stream
//     can no longer be framed, so the connection is answered once and
//     closed (*protocolError), as Redis does.

// limits bounds what one command may hold.
type limits struct {
	maxArgs      int // arguments, the command name included
	maxBulk      int // bytes of one argument
	maxCommand   int // bytes of all arguments of one command
	maxInline    int // bytes of an inline command line
	maxHeaderLen int // bytes of a "*N" or "$N" line
	// strict: a command beyond the limits ends the connection (a
	// protocol error, read no further) instead of being skipped; for
	// connections that have not authenticated (auth.go).
	strict bool
}

// protocolError ends the connection after one error reply.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "ERR Protocol error: " + e.msg }

// rejectedError is one command refused; the connection stays usable.
type rejectedError struct{ msg string }

func (e *rejectedError) Error() string { return "ERR " + e.msg }

// initialChunk is the most a bulk buffer starts with; it grows only as
// the bytes arrive, so a client that declares a large argument and sends
// nothing costs little.
const initialChunk = 64 << 10

type reader struct {
	br  *bufio.Reader
	src *countingSource
	lim limits
}

func newReader(r io.Reader, lim limits) *reader {
	src := &countingSource{r: r}
	return &reader{br: bufio.NewReaderSize(src, 16<<10), src: src, lim: lim}
}

// countingSource counts the reads from the connection (reader.reads).
type countingSource struct {
	r     io.Reader
	reads uint64
}

func (s *countingSource) Read(p []byte) (int, error) {
	s.reads++
	return s.r.Read(p)
}

// reads counts the reads from the connection so far (a read that found
// nothing, or failed, counts too).
func (r *reader) reads() uint64 { return r.src.reads }

// buffered reports whether more input is already waiting (a pipeline).
func (r *reader) buffered() bool { return r.br.Buffered() > 0 }

// fill reads once from the source into the buffer (the event loop's
// read, whose source never blocks: errWouldBlock when it has nothing).
func (r *reader) fill() error {
	_, err := r.br.Peek(r.br.Buffered() + 1)
	return err
}

// readCommand returns the next command's arguments (never empty). Empty
// commands (blank inline lines, "*0") are skipped.
func (r *reader) readCommand() ([][]byte, error) { return r.read(true) }

// read is readCommand; fast tries parseBuffered first (the event loop,
// which has tried it already, and tests comparing the two ways pass
// false).
func (r *reader) read(fast bool) ([][]byte, error) {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		var args [][]byte
		if b[0] == '*' {
			if fast {
				if args, ok := r.parseBuffered(); ok {
					return args, nil
				}
			}
			args, err = r.readMultibulk()
		} else {
			args, err = r.readInline()
		}
		if err != nil || len(args) > 0 {
			return args, err
		}
	}
}

// readLine returns a header line without its "\r\n" (valid until the
// next read).
func (r *reader) readLine(max int) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull) || len(line) > max:
		return nil, &protocolError{"too big header line"}
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, &protocolError{"line not terminated by CRLF"}
	}
	return line[:len(line)-2], nil
}

// parseLength parses the decimal after '*' or '$'.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) <= 18 { // digits only cannot overflow: the common case, inline
		var n int64
		for _, ch := range b {
			if ch < '0' || ch > '9' {
				goto general
			}
			n = n*10 + int64(ch-'0')
		}
		return n, true
	}
general: // signs, and what may overflow: as strconv has it
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func (r *reader) readMultibulk() ([][]byte, error) {
	line, err := r.readLine(r.lim.maxHeaderLen)
	if err != nil {
		return nil, err
	}
	count, ok := parseLength(line[1:])
	if !ok || count > math.MaxInt32 {
		return nil, &protocolError{"invalid multibulk length"}
	}
	if count <= 0 {
		return nil, nil // an empty command: nothing to do
	}
	var reject *rejectedError
	if count > int64(r.lim.maxArgs) {
		if r.lim.strict {
			return nil, &protocolError{"unauthenticated multibulk length"}
		}
		reject = &rejectedError{fmt.Sprintf("too many arguments: %d (limit %d)", count, r.lim.maxArgs)}
	}
	var args [][]byte
	if reject == nil {
		args = make([][]byte, 0, count)
	}
	total := 0
	for range count {
		line, err := r.readLine(r.lim.maxHeaderLen)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 || line[0] != '$' {
			return nil, &protocolError{fmt.Sprintf("expected '$', got %q", line)}
		}
		size, ok := parseLength(line[1:])
		if !ok || size < 0 || size > math.MaxInt64-2 {
			return nil, &protocolError{"invalid bulk length"}
		}
		if r.lim.strict && (size > int64(r.lim.maxBulk) || int64(total)+size > int64(r.lim.maxCommand)) {
			return nil, &protocolError{"unauthenticated bulk length"}
		}
		if reject == nil {
			switch {
			case size > int64(r.lim.maxBulk):
				reject = &rejectedError{fmt.Sprintf("argument of %d bytes exceeds the limit of %d bytes", size, r.lim.maxBulk)}
			case int64(total)+size > int64(r.lim.maxCommand):
				reject = &rejectedError{fmt.Sprintf("command of more than %d bytes exceeds the limit of %d bytes", int64(total)+size, r.lim.maxCommand)}
			}
		}
		if reject != nil {
			// Keep the stream framed: skip the argument, then its CRLF.
			if _, err := io.CopyN(io.Discard, r.br, size); err != nil {
				return nil, err
			}
			if err := r.expectCRLF(); err != nil {
				return nil, err
			}
			args = nil
			continue
		}
		arg, err := r.readBulk(int(size))
		if err != nil {
			return nil, err
		}
		total += len(arg)
		args = append(args, arg)
	}
	if reject != nil {
		return nil, reject
	}
	return args, nil
}

// Commands parsed whole from the buffer: at most fastArgs arguments, and
// those of at most fastShared bytes in all share one allocation.
const (
	fastArgs   = 64
	fastShared = 256
)

// parseBuffered parses a multibulk command the buffer holds whole, in one
// pass over the buffered bytes, when it is well formed and within every
// limit: the common case, which readMultibulk reads line by line and
// argument by argument. Anything else (an incomplete command, an empty
// one, one that fails or is refused, and anything not multibulk) is left
// for readMultibulk or readInline: false, nothing consumed. The event
// loop tries it before framing (frame), so that a whole command is walked
// once, not framed and then parsed. Where it parses, it agrees with
// readMultibulk (TestParseBufferedAgreesWithReader). The arguments of a
// small command share one allocation (a handler that keeps one keeps that
// much).
func (r *reader) parseBuffered() ([][]byte, bool) {
	b, _ := r.br.Peek(r.br.Buffered())
	if len(b) == 0 || b[0] != '*' {
		return nil, false
	}
	line, pos, st := frameLine(b, 0, r.lim)
	if st != frameReady || line == nil {
		return nil, false
	}
	count, ok := parseLength(line[1:])
	if !ok || count <= 0 || count > fastArgs || count > int64(r.lim.maxArgs) {
		return nil, false
	}
	// Check the frame, noting where each argument is and adding up the
	// sizes; then copy the arguments out.
	var at [fastArgs]struct{ start, end int }
	total := 0
	for i := range count {
		line, next, st := frameLine(b, pos, r.lim)
		if st != frameReady || len(line) == 0 || line[0] != '$' {
			return nil, false
		}
		size, ok := parseLength(line[1:])
		if !ok || size < 0 || size > int64(r.lim.maxBulk) || int64(total)+size > int64(r.lim.maxCommand) ||
			int64(len(b)-next) < size+2 {
			return nil, false
		}
		end := next + int(size)
		if b[end] != '\r' || b[end+1] != '\n' {
			return nil, false
		}
		at[i].start, at[i].end = next, end
		total += int(size)
		pos = end + 2
	}
	args := make([][]byte, count)
	var shared []byte
	if total <= fastShared {
		shared = make([]byte, 0, total)
	}
	for i := range args {
		data := b[at[i].start:at[i].end]
		if shared != nil {
			from := len(shared)
			shared = append(shared, data...)
			args[i] = shared[from:len(shared):len(shared)]
		} else {
			args[i] = bytes.Clone(data)
		}
	}
	_, _ = r.br.Discard(pos)
	return args, true
}

// readBulk reads an argument of n bytes and its CRLF. The buffer doubles
// only once the bytes so far have arrived.
func (r *reader) readBulk(n int) ([]byte, error) {
	buf := make([]byte, min(n, initialChunk))
	got := 0
	for got < n {
		if got == len(buf) {
			grown := make([]byte, min(n, 2*len(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := r.br.Read(buf[got:])
		got += m
		if err != nil && got < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, r.expectCRLF()
}

func (r *reader) expectCRLF() error {
	// Peek, not io.ReadFull into a local array: the array would escape to
	// the heap through the io.Reader, an allocation for every argument.
	crlf, err := r.br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return &protocolError{"bulk not terminated by CRLF"}
	}
	_, _ = r.br.Discard(2)
	return nil
}

// readInline reads a command typed as one line, e.g. over telnet.
func (r *reader) readInline() ([][]byte, error) {
	var line []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(line)+len(frag) > r.lim.maxInline {
			return nil, &protocolError{"too big inline request"}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			line = append(line, frag...)
			continue
		}
		if err != nil {
			return nil, err
		}
		if line == nil {
			line = frag
		} else {
			line = append(line, frag...)
		}
		break
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	args, err := splitInline(line)
	if err != nil {
		return nil, err
	}
	if len(args) > r.lim.maxArgs {
		if r.lim.strict {
			return nil, &protocolError{"unauthenticated multibulk length"}
		}
		return nil, &rejectedError{fmt.Sprintf("too many arguments: %d (limit %d)", len(args), r.lim.maxArgs)}
	}
	return args, nil
}

// splitInline splits an inline line into arguments: separated by blanks,
// "double quotes" with \n, \r, \t, \b, \a, \\, \" and \xHH escapes, and
// 'single quotes' with only \' escaped. A closing quote must be followed
// by a blank or the end. The arguments are copies.
func splitInline(line []byte) ([][]byte, error) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		var arg []byte
		switch q := line[i]; q {
		case '"', '\'':
			i++
			closed := false
			for i < len(line) && !closed {
				c := line[i]
				switch {
				case c == q:
					closed = true
					i++
				case c == '\\' && i+1 < len(line) && q == '"':
					e := line[i+1]
					i += 2
					switch e {
					case 'n':
						arg = append(arg, '\n')
					case 'r':
						arg = append(arg, '\r')
					case 't':
						arg = append(arg, '\t')
					case 'b':
						arg = append(arg, '\b')
					case 'a':
						arg = append(arg, '\a')
					case 'x':
						if i+1 < len(line) && isHex(line[i]) && isHex(line[i+1]) {
							v, _ := strconv.ParseUint(string(line[i:i+2]), 16, 8)
							arg = append(arg, byte(v))
							i += 2
						} else {
							arg = append(arg, 'x')
						}
					default:
						arg = append(arg, e)
					}
				case c == '\\' && i+1 < len(line) && q == '\'' && line[i+1] == '\'':
					arg = append(arg, '\'')
					i += 2
				default:
					arg = append(arg, c)
					i++
				}
			}
			if !closed || (i < len(line) && !isBlank(line[i])) {
				return nil, &protocolError{"unbalanced quotes in request"}
			}
			if arg == nil {
				arg = []byte{}
			}
		default:
			start := i
			for i < len(line) && !isBlank(line[i]) {
				i++
			}
			arg = bytes.Clone(line[start:i])
		}
		args = append(args, arg)
	}
}

func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
