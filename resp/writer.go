package resp

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-db/meridian/kv"
)

// writer encodes replies in RESP2 or RESP3 (chosen per connection with
// HELLO) into a bounded buffer. When the buffer fills it is written to
// the connection, and every write to the connection has a deadline: a
// client that stops reading its replies blocks only its own connection,
// for at most the write timeout, and then loses it. Memory per connection
// stays bounded by the buffer whatever the client does.
type writer struct {
	bw    *bufio.Writer
	dc    *deadlineConn
	proto int // 2 or 3
	// beforeFlush, if set, runs at every flush (the connection adds its
	// commands' figures to the metrics as their replies go out).
	beforeFlush func()
}

// deadlineConn keeps a write deadline between half the write timeout
// and the whole of it ahead of every write (moving a deadline costs a
// timer update, so it moves only once half of it has passed), and
// remembers the first failure. A write therefore blocks for at least half
// the timeout before it fails.
type deadlineConn struct {
	conn     net.Conn
	timeout  time.Duration
	deadline time.Time
	err      error
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if now := time.Now(); d.deadline.Sub(now) < d.timeout/2 {
		d.deadline = now.Add(d.timeout)
		if err := d.conn.SetWriteDeadline(d.deadline); err != nil {
			d.err = err
			return 0, err
		}
	}
	n, err := d.conn.Write(p)
	if err != nil {
		d.err = err
	}
	return n, err
}

func newWriter(c net.Conn, timeout time.Duration, size int) *writer {
	dc := &deadlineConn{conn: c, timeout: timeout}
	return &writer{bw: bufio.NewWriterSize(dc, size), dc: dc, proto: 2}
}

// failed reports whether writing to the connection has failed (the
// client stopped reading for longer than the timeout, or went away).
func (w *writer) failed() error { return w.dc.err }

// The bufio.Writer keeps its first error and reports it on Flush; the
// write methods need not check anything.

func (w *writer) line(prefix byte, s string) {
	_ = w.bw.WriteByte(prefix)
	_, _ = w.bw.WriteString(s)
	_, _ = w.bw.WriteString("\r\n")
}

func (w *writer) header(prefix byte, n int) {
	b := append(w.bw.AvailableBuffer(), prefix)
	b = strconv.AppendInt(b, int64(n), 10)
	_, _ = w.bw.Write(append(b, '\r', '\n'))
}

// simple writes a status reply ("+OK").
func (w *writer) simple(s string) { w.line('+', oneLine(s)) }

// errorLine writes an error reply; s starts with its code ("ERR ...").
func (w *writer) errorLine(s string) { w.line('-', oneLine(s)) }

func (w *writer) integer(n int64) { w.line(':', strconv.FormatInt(n, 10)) }

func (w *writer) bulk(b []byte) {
	w.header('$', len(b))
	_, _ = w.bw.Write(b)
	_, _ = w.bw.WriteString("\r\n")
}

func (w *writer) bulkString(s string) {
	w.header('$', len(s))
	_, _ = w.bw.WriteString(s)
	_, _ = w.bw.WriteString("\r\n")
}

// null writes a missing value.
func (w *writer) null() {
	if w.proto == 3 {
		_, _ = w.bw.WriteString("_\r\n")
		return
	}
	_, _ = w.bw.WriteString("$-1\r\n")
}

func (w *writer) array(n int) { w.header('*', n) }

// mapHeader starts a map of n pairs (RESP2: an array of 2n elements).
func (w *writer) mapHeader(n int) {
	if w.proto == 3 {
		w.header('%', n)
		return
	}
	w.header('*', 2*n)
}

// setHeader starts a set of n members (RESP2: an array).
func (w *writer) setHeader(n int) {
	if w.proto == 3 {
		w.header('~', n)
		return
	}
	w.header('*', n)
}

// nullArray writes a missing array (RESP2 "*-1").
func (w *writer) nullArray() {
	if w.proto == 3 {
		_, _ = w.bw.WriteString("_\r\n")
		return
	}
	_, _ = w.bw.WriteString("*-1\r\n")
}

// double writes a floating-point number (RESP2: as a bulk string).
func (w *writer) double(f float64) {
	if w.proto == 3 {
		w.line(',', kv.FormatDouble(f))
		return
	}
	w.bulkString(kv.FormatDouble(f))
}

// pushHeader starts an out-of-band message of n elements (RESP2: an
// array).
func (w *writer) pushHeader(n int) {
	if w.proto == 3 {
		w.header('>', n)
		return
	}
	w.header('*', n)
}

// reply writes a reply of the command engine.
func (w *writer) reply(r kv.Reply) {
	switch r.Kind {
	case kv.ReplyNil:
		w.null()
	case kv.ReplyNilArray:
		w.nullArray()
	case kv.ReplyInt:
		w.integer(r.Int)
	case kv.ReplyBulk:
		w.bulk(r.Str)
	case kv.ReplyStatus:
		w.simple(string(r.Str))
	case kv.ReplyError:
		w.errorLine(string(r.Str))
	case kv.ReplyDouble:
		w.double(r.Float)
	case kv.ReplyArray:
		w.array(len(r.Elems))
		for _, e := range r.Elems {
			w.reply(e)
		}
	case kv.ReplyMap:
		w.mapHeader(len(r.Elems) / 2)
		for _, e := range r.Elems {
			w.reply(e)
		}
	case kv.ReplySet:
		w.setHeader(len(r.Elems))
		for _, e := range r.Elems {
			w.reply(e)
		}
	case kv.ReplyPairs:
		if w.proto == 3 {
			w.array(len(r.Elems) / 2)
			for i := 0; i+1 < len(r.Elems); i += 2 {
				w.array(2)
				w.reply(r.Elems[i])
				w.reply(r.Elems[i+1])
			}
			return
		}
		w.array(len(r.Elems))
		for _, e := range r.Elems {
			w.reply(e)
		}
	}
}

func (w *writer) flush() error {
	if w.beforeFlush != nil {
		w.beforeFlush()
	}
	return w.bw.Flush()
}

// oneLine makes s fit a status or error line.
func oneLine(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}
