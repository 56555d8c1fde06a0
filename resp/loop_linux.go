//go:build linux

package resp

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The event loop (docs/DESIGN.md section 5.7). A goroutine per
// connection costs, for every request, a read that finds nothing after
// the reply (the client has not sent its next command yet), the goroutine
// parked, and the runtime's poller and scheduler to wake it again. So
// plain-TCP connections start in a loop that waits on its sockets with
// epoll, reads each ready socket once, runs the whole commands that
// arrived, and, once every ready socket is served, writes each one's
// replies in one write: per request one read and one write, as Redis
// does.
//
// The loop runs only what never waits (commands marked loop in the
// table, loopCommands; a read at a level the node serves at once, see
// node.Consistency.NoWait), and starts the writes its node can start
// without waiting (asyncwrite.go): their outcome comes back through the
// loop's eventfd, and the connection runs nothing else until its reply is
// written. The first command that may wait (another write, a
// read that needs a quorum or another node, a blocking pop, SUBSCRIBE,
// EXEC...), a command larger than the reader's buffer, a reply the socket
// will not take at once, or a pipeline (Config.PipelineHandOver) hands the
// connection over for good to a goroutine of its own, the way every
// connection was served before: the socket goes to the runtime's poller
// (net.FileConn), with whatever was read and not yet written, and the
// command is run there. TLS connections, connections that must
// authenticate first, and servers with an idle timeout never enter the
// loop (their deadlines belong to the goroutine's way).

// errWouldBlock: the socket has nothing to read now (the loop's reads
// never block).
var errWouldBlock = errors.New("resp: nothing to read yet")

// loopConn is a connection's socket while the loop serves it, and the
// net.Conn it becomes when handed over (detach). Its reads and writes
// never block in the loop: a read of nothing fails with errWouldBlock, a
// write the socket does not take keeps the rest in out for the
// connection's goroutine to send.
type loopConn struct {
	fd           int
	laddr, raddr net.Addr
	out          []byte    // what a write could not send at once
	rdl, wdl     time.Time // deadlines set while in the loop, set on nc when detached

	// nc is the connection once detached; set by the loop before the
	// connection's goroutine starts, so that goroutine reads it freely.
	nc net.Conn

	mu       sync.Mutex // Close from other goroutines (CLIENT KILL, Server.Close)
	shut     bool       // Close was called
	released bool       // the loop closed fd: no one may touch it again

	// muted: out of the epoll set while a write is pending (input that
	// comes meanwhile waits for its reply); only the loop touches it.
	muted bool
}

// newLoopConn takes an accepted TCP connection's socket out of the
// runtime's poller: the loop gets a duplicate of it, and conn is closed.
func newLoopConn(conn net.Conn) (*loopConn, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil, errors.New("resp: not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	lc := &loopConn{fd: fd, laddr: conn.LocalAddr(), raddr: conn.RemoteAddr()}
	// The duplicate shares the socket, non-blocking as the runtime set it;
	// closing conn takes the socket out of the runtime's poller.
	_ = conn.Close()
	return lc, nil
}

func (lc *loopConn) Read(p []byte) (int, error) {
	if lc.nc != nil {
		return lc.nc.Read(p)
	}
	for {
		n, err := unix.Read(lc.fd, p)
		switch {
		case n > 0:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case len(p) == 0:
			return 0, nil
		}
		return 0, io.EOF
	}
}

func (lc *loopConn) Write(p []byte) (int, error) {
	if lc.nc != nil {
		return lc.nc.Write(p)
	}
	if len(lc.out) > 0 { // keep the order: after what is waiting
		lc.out = append(lc.out, p...)
		return len(p), nil
	}
	total := len(p)
	for len(p) > 0 {
		n, err := unix.Write(lc.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			lc.out = append(lc.out, p...)
			return total, nil
		case err != nil:
			return total - len(p), err
		}
		p = p[n:]
	}
	return total, nil
}

// Close may come from any goroutine. In the loop it shuts the socket
// down, which the loop sees and then closes the connection itself: the
// descriptor is closed only by the loop (release), so that no late Close
// shuts down a socket that has reused the number.
func (lc *loopConn) Close() error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.shut {
		return nil
	}
	lc.shut = true
	if lc.nc != nil {
		return lc.nc.Close()
	}
	if !lc.released {
		return unix.Shutdown(lc.fd, unix.SHUT_RDWR)
	}
	return nil
}

// release closes the socket for good (the loop, once the connection is
// finished and out of its epoll set).
func (lc *loopConn) release() {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.nc == nil && !lc.released {
		lc.released, lc.shut = true, true
		_ = unix.Close(lc.fd)
	}
}

// detach hands the socket to the runtime's poller: from then on the
// connection is an ordinary net.Conn, with the deadlines set while in the
// loop. What out holds is sent by sendPending, from the connection's
// goroutine.
func (lc *loopConn) detach() error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.shut {
		return net.ErrClosed
	}
	f := os.NewFile(uintptr(lc.fd), "resp")
	nc, err := net.FileConn(f) // a duplicate of the socket
	_ = f.Close()              // the loop's descriptor
	lc.released = true
	if err != nil {
		return err
	}
	if !lc.rdl.IsZero() {
		_ = nc.SetReadDeadline(lc.rdl)
	}
	if !lc.wdl.IsZero() {
		_ = nc.SetWriteDeadline(lc.wdl)
	}
	lc.nc = nc
	return nil
}

// sendPending writes what the loop could not, within timeout.
func (lc *loopConn) sendPending(timeout time.Duration) error {
	if len(lc.out) == 0 {
		return nil
	}
	_ = lc.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := lc.nc.Write(lc.out)
	lc.out = nil
	if !lc.wdl.IsZero() {
		_ = lc.nc.SetWriteDeadline(lc.wdl)
	}
	return err
}

func (lc *loopConn) LocalAddr() net.Addr  { return lc.laddr }
func (lc *loopConn) RemoteAddr() net.Addr { return lc.raddr }

func (lc *loopConn) SetDeadline(t time.Time) error {
	if lc.nc != nil {
		return lc.nc.SetDeadline(t)
	}
	lc.rdl, lc.wdl = t, t
	return nil
}

func (lc *loopConn) SetReadDeadline(t time.Time) error {
	if lc.nc != nil {
		return lc.nc.SetReadDeadline(t)
	}
	lc.rdl = t
	return nil
}

func (lc *loopConn) SetWriteDeadline(t time.Time) error {
	if lc.nc != nil {
		return lc.nc.SetWriteDeadline(t)
	}
	lc.wdl = t
	return nil
}

// eventLoop waits on the sockets of the connections it serves.
type eventLoop struct {
	s    *Server
	ep   int // the epoll set
	wake int // an eventfd: adopt and stop write to it

	mu       sync.Mutex
	incoming []*client       // adopted, not yet in the epoll set
	done     []*pendingWrite // writes whose outcome came (complete)
	stopping bool
	closed   bool // ep and wake are closed: no one may write to wake

	// Only the loop's goroutine touches these.
	conns   []*client // by socket number
	events  []unix.EpollEvent
	flushes []*client // served in this round, replies not yet written
}

// newEventLoop starts the server's loop (nil if the system refuses one:
// every connection then gets its goroutine).
func newEventLoop(s *Server) *eventLoop {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		s.log.Warn("no event loop: epoll", "err", err)
		return nil
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err == nil {
		if err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
			_ = unix.Close(wake)
		}
	}
	if err != nil {
		_ = unix.Close(ep)
		s.log.Warn("no event loop: eventfd", "err", err)
		return nil
	}
	l := &eventLoop{s: s, ep: ep, wake: wake, events: make([]unix.EpollEvent, 256)}
	s.wg.Add(1)
	go l.run()
	return l
}

// take turns an accepted connection into one the loop may serve (ok
// false: the caller serves it from a goroutine, as it is).
func (l *eventLoop) take(conn net.Conn) (net.Conn, bool) {
	l.mu.Lock()
	stopping := l.stopping
	l.mu.Unlock()
	if stopping { // the server is closing, or epoll failed
		return conn, false
	}
	lc, err := newLoopConn(conn)
	if err != nil {
		return conn, false
	}
	return lc, true
}

// adopt starts serving a connection made on a loopConn (take).
func (l *eventLoop) adopt(c *client) {
	l.mu.Lock()
	if l.stopping { // the server is closing, or epoll failed: no loop
		l.mu.Unlock()
		l.s.handedOver.Add(1)
		l.goServe(c, func() { // never in the loop's set (only the loop touches it)
			if c.start() {
				c.commands()
			}
		})
		return
	}
	l.incoming = append(l.incoming, c)
	l.signal()
	l.mu.Unlock()
}

// stop ends the loop; the connections it still serves are closed.
func (l *eventLoop) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopping = true
	if !l.closed {
		l.signal()
	}
}

// signal wakes the loop (the caller holds l.mu, so that the eventfd is
// still open).
func (l *eventLoop) signal() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.wake, one[:])
}

func (l *eventLoop) run() {
	defer l.s.wg.Done()
	for {
		n, err := unix.EpollWait(l.ep, l.events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.s.log.Error("event loop: epoll_wait failed; its connections are closed", "err", err)
			l.shutdown()
			return
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.wake {
				if !l.woken() {
					l.flushAll()
					l.shutdown()
					return
				}
				continue
			}
			if fd < len(l.conns) && l.conns[fd] != nil {
				l.serve(l.conns[fd])
			}
		}
		l.flushAll()
	}
}

// woken takes the adopted connections in and answers the writes whose
// outcome came; false when the loop must stop.
func (l *eventLoop) woken() bool {
	var buf [8]byte
	_, _ = unix.Read(l.wake, buf[:])
	l.mu.Lock()
	in, done, stopping := l.incoming, l.done, l.stopping
	l.incoming, l.done = nil, nil
	l.mu.Unlock()
	for _, c := range in {
		l.enter(c)
	}
	if stopping {
		return false // (shutdown closes the connections of done)
	}
	for _, p := range done {
		l.answer(p)
	}
	return true
}

// complete hands the loop a pending write whose outcome came (from the
// node's goroutine). Once the loop stops, it is dropped: its connection
// is closed.
func (l *eventLoop) complete(p *pendingWrite) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return
	}
	l.done = append(l.done, p)
	if len(l.done) == 1 { // else the loop has been woken already
		l.signal()
	}
}

// answer writes the reply of a pending write whose outcome came, then
// serves what its connection sent meanwhile. A connection the loop no
// longer serves (it went away) gets nothing.
func (l *eventLoop) answer(p *pendingWrite) {
	c := p.c
	if !l.serving(c) || c.pending != p {
		return
	}
	c.wmu.Lock()
	c.answerPending(p)
	c.wmu.Unlock()
	if lc := c.conn.(*loopConn); lc.muted {
		lc.muted = false
		if err := l.watch(lc); err != nil {
			l.conns[lc.fd] = nil // not in the set: handOver's remove has nothing to take out
			l.handOver(c, nil, false)
			return
		}
	}
	l.commands(c, false)
}

// enter starts serving c: a connection that is not authenticated yet (it
// has a deadline to meet) goes to its goroutine at once.
func (l *eventLoop) enter(c *client) {
	if !c.start() {
		c.finish()
		c.conn.(*loopConn).release()
		return
	}
	if !c.authenticated() {
		l.handOver(c, nil, false)
		return
	}
	lc := c.conn.(*loopConn)
	if err := l.watch(lc); err != nil {
		l.handOver(c, nil, false)
		return
	}
	for lc.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*client, len(l.conns)+64)...)
	}
	l.conns[lc.fd] = c
	c.loopDone = l.complete
	// Input may have arrived before the socket joined the set; the level
	// triggered set reports it anyway.
}

// serve runs what a ready socket brings: one read, the whole commands
// it completes, one write of their replies. A connection whose write is
// pending leaves the set until its reply is written (answer).
func (l *eventLoop) serve(c *client) {
	lc := c.conn.(*loopConn)
	if c.pending != nil {
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, lc.fd, nil); err == nil {
			lc.muted = true
		}
		return
	}
	l.commands(c, true)
}

// commands runs the whole commands c's buffer holds, reading once (mayRead)
// if they are not enough, and writes their replies in one write; it stops
// at a write it started (c.pending), whose reply comes later.
func (l *eventLoop) commands(c *client, mayRead bool) {
	lc := c.conn.(*loopConn)
	read := !mayRead
	ran := 0
	for {
		// A whole well-formed command is parsed at once; anything else is
		// framed first, so that readCommand never waits for input.
		args, whole := c.r.parseBuffered()
		var err error
		if !whole {
			st, need := c.r.frame()
			if st == frameMore {
				if need > c.r.br.Size() {
					l.handOver(c, nil, false) // a command larger than the buffer
					return
				}
				if read {
					break
				}
				read = true
				if err := c.r.fill(); err != nil {
					if err == errWouldBlock {
						break
					}
					l.finish(c) // the client went away (or the socket failed)
					return
				}
				continue
			}
			args, err = c.r.read(false) // (parseBuffered declined it just now)
		}
		c.noWait = true
		ok := c.handle(args, err)
		c.noWait = false
		if c.wouldWait {
			c.wouldWait = false
			l.handOver(c, args, true)
			return
		}
		if !ok {
			l.close(c)
			return
		}
		ran++
		if c.pending != nil {
			break // the rest waits for its reply
		}
		if len(lc.out) > 0 || !c.authenticated() {
			// The client does not read fast enough, or its user was
			// removed: it must authenticate again, within a deadline the
			// goroutine keeps.
			l.handOver(c, nil, false)
			return
		}
	}
	if ran < l.s.cfg.PipelineHandOver || c.pending != nil {
		// Its replies go out with those of the other connections served
		// in this round (flushAll), as Redis writes its replies after
		// reading every ready socket. (A connection served twice in a
		// round, by an answer and its socket, is listed twice: its second
		// flush has nothing to write. A pipeline the loop keeps waits for
		// the round's end too: writing its replies at once, mid-round,
		// made GET at -P 16 0.88 x as fast.)
		l.flushes = append(l.flushes, c)
		return
	}
	if l.flush(c) { // it pipelines
		l.handOver(c, nil, false)
	}
}

// flushAll writes the replies of the connections served in this round.
func (l *eventLoop) flushAll() {
	for i, c := range l.flushes {
		l.flushes[i] = nil
		if l.serving(c) {
			_ = l.flush(c)
		}
	}
	l.flushes = l.flushes[:0]
}

// flush writes c's replies: a connection whose replies the socket does
// not take at once is handed over, one that failed is finished. It
// reports whether c is still in the loop.
func (l *eventLoop) flush(c *client) bool {
	lc := c.conn.(*loopConn)
	c.wmu.Lock()
	err := c.w.flush()
	c.wmu.Unlock()
	switch {
	case err != nil:
		l.finish(c)
		return false
	case c.pending != nil:
		return true // answer hands it over if it must
	case len(lc.out) > 0:
		l.handOver(c, nil, false)
		return false
	}
	return true
}

// close ends a connection after its last replies (QUIT, a protocol
// error): what the socket did not take is sent from a goroutine, within
// the write timeout, before the connection is closed.
func (l *eventLoop) close(c *client) {
	if len(c.conn.(*loopConn).out) == 0 {
		l.finish(c)
		return
	}
	l.remove(c)
	l.goServe(c, nil)
}

// watch adds a socket to the epoll set.
func (l *eventLoop) watch(lc *loopConn) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, lc.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(lc.fd)})
}

// serving reports whether the loop still serves c (it was not finished
// or handed over).
func (l *eventLoop) serving(c *client) bool {
	fd := c.conn.(*loopConn).fd
	return fd < len(l.conns) && l.conns[fd] == c
}

// remove takes c's socket out of the loop.
func (l *eventLoop) remove(c *client) {
	lc := c.conn.(*loopConn)
	if l.serving(c) {
		l.conns[lc.fd] = nil
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, lc.fd, nil)
	}
}

// finish closes a connection the loop serves.
func (l *eventLoop) finish(c *client) {
	l.remove(c)
	c.finish()
	c.conn.(*loopConn).release()
}

// handOver gives c to a goroutine of its own for good, which first runs
// the command the loop read (if has) and sends what the loop could not.
func (l *eventLoop) handOver(c *client, args [][]byte, has bool) {
	l.s.handedOver.Add(1)
	l.remove(c)
	l.goServe(c, func() {
		if has && !c.dispatch(args, nil) {
			return
		}
		c.commands()
	})
}

// goServe starts c's goroutine on its detached socket (c is not in the
// loop's set): it sends what the loop could not, then runs then (if any)
// and closes the connection.
func (l *eventLoop) goServe(c *client, then func()) {
	lc := c.conn.(*loopConn)
	if err := lc.detach(); err != nil {
		c.finish()
		lc.release()
		return
	}
	go func() {
		defer c.finish()
		if err := lc.sendPending(c.s.cfg.WriteTimeout); err != nil || then == nil {
			return
		}
		// Replies the loop had not written yet (it writes a round's at
		// its end) go before anything else.
		c.wmu.Lock()
		err := c.w.flush()
		c.wmu.Unlock()
		if err != nil {
			return
		}
		then()
	}()
}

// shutdown closes every connection the loop serves (the server is
// closing, or epoll failed) and the loop's own descriptors.
func (l *eventLoop) shutdown() {
	l.mu.Lock()
	in := l.incoming
	l.incoming, l.stopping = nil, true
	l.mu.Unlock()
	for _, c := range in {
		c.finish()
		c.conn.(*loopConn).release()
	}
	for _, c := range l.conns {
		if c != nil {
			l.finish(c)
		}
	}
	l.mu.Lock()
	l.closed = true
	_ = unix.Close(l.ep)
	_ = unix.Close(l.wake)
	l.mu.Unlock()
}
