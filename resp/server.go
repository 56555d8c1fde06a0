package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/pki"
)

// Config configures a RESP server. Fields that are zero or negative take
// their defaults.
type Config struct {
	// DefaultKeyspace is the keyspace of a new connection.
	DefaultKeyspace string
	// Logger receives connection errors. Nil discards.
	Logger *slog.Logger
	// Metrics, if set, records every command (frontend "resp"). Nil
	// records nothing.
	Metrics *metrics.Registry
	// MaxClients bounds open connections; a connection beyond it is
	// answered "ERR max number of clients reached" and closed. Default 10000.
	MaxClients int
	// MaxArgs bounds the arguments of one command, its name included.
	// Default 1048576 (as Redis).
	MaxArgs int
	// MaxBulkBytes bounds one argument. Default 16 MiB, or the node's
	// MaxValueBytes if larger (the node refuses values above its own limit
	// with a clearer error; this limit guards the server's memory).
	MaxBulkBytes int
	// MaxCommandBytes bounds all arguments of one command together.
	// Default 64 MiB.
	MaxCommandBytes int
	// MaxInlineBytes bounds a command sent as a text line. Default 64 KiB.
	MaxInlineBytes int
	// OutputBufferBytes is the reply buffer of a connection: replies to a
	// pipeline are gathered up to this size before being written. Default 64 KiB.
	OutputBufferBytes int
	// WriteTimeout bounds how long writing replies may wait for a client
	// that does not read them; the connection is then closed. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long (or
	// up to half as long again), once authenticated and unless subscribed.
	// Default: never.
	IdleTimeout time.Duration
	// MaxReplyBytes bounds a reply that is built whole before it is sent
	// (KEYS). Default 64 MiB.
	MaxReplyBytes int
	// ScanCursors and ScanCursorTTL bound the SCAN cursors the server
	// remembers (see cursor.go): at most ScanCursors, each valid for
	// ScanCursorTTL after it was issued. Defaults 10000 and 10 minutes.
	ScanCursors   int
	ScanCursorTTL time.Duration
	// Certs, if set, serves RESP over TLS with the node's certificate
	// (as redis-cli --tls and client libraries expect); a client
	// certificate is optional, and one of the cluster's CA authenticates
	// its user (see auth.go).
	Certs *pki.Store
	// AuthTimeout closes a connection that has not authenticated this
	// long after it was accepted (its TLS handshake included), when the
	// node requires authentication. Default 10s.
	AuthTimeout time.Duration
	// NoEventLoop serves every connection from a goroutine of its own,
	// never from the event loops (loop_linux.go); for comparison. Default:
	// plain-TCP connections start in a loop.
	NoEventLoop bool
	// EventLoops is how many event loops share the connections. Default:
	// one per four processors the Go runtime uses (GOMAXPROCS), at least
	// one: a loop runs on one processor, and the node's own work (raft,
	// storage) and the connections handed over need the others.
	EventLoops int
	// PipelineHandOver: a connection in an event loop that sends this
	// many commands in one go (a pipeline) is handed over to a goroutine
	// of its own once they are answered, where it runs on any processor;
	// math.MaxInt: never. Default: 8, or never where the loops leave at
	// most one processor per loop (defaultPipelineHandOver). The
	// configuration file's resp.pipeline_hand_over (-1: never).
	PipelineHandOver int
	// MaxUnauthenticated bounds the connections not authenticated yet
	// (within MaxClients). Default 1000, at most MaxClients.
	MaxUnauthenticated int
}

// Validate checks the configuration: zero values stand for the defaults,
// negative ones are refused, naming the field.
func (c *Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxClients", int64(c.MaxClients)}, {"MaxArgs", int64(c.MaxArgs)}, {"MaxBulkBytes", int64(c.MaxBulkBytes)},
		{"MaxCommandBytes", int64(c.MaxCommandBytes)}, {"MaxInlineBytes", int64(c.MaxInlineBytes)},
		{"OutputBufferBytes", int64(c.OutputBufferBytes)}, {"WriteTimeout", int64(c.WriteTimeout)},
		{"IdleTimeout", int64(c.IdleTimeout)}, {"MaxReplyBytes", int64(c.MaxReplyBytes)},
		{"ScanCursors", int64(c.ScanCursors)}, {"ScanCursorTTL", int64(c.ScanCursorTTL)},
		{"AuthTimeout", int64(c.AuthTimeout)}, {"MaxUnauthenticated", int64(c.MaxUnauthenticated)},
		{"EventLoops", int64(c.EventLoops)}, {"PipelineHandOver", int64(c.PipelineHandOver)},
	} {
		if f.v < 0 {
			return fmt.Errorf("resp: %s must not be negative (got %d)", f.name, f.v)
		}
	}
	if c.MaxBulkBytes > 0 && c.MaxCommandBytes > 0 && c.MaxBulkBytes > c.MaxCommandBytes {
		return fmt.Errorf("resp: MaxBulkBytes (%d) is above MaxCommandBytes (%d): no command could carry such an argument", c.MaxBulkBytes, c.MaxCommandBytes)
	}
	return nil
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxClients, 10000)
	def(&c.MaxArgs, 1<<20)
	def(&c.MaxBulkBytes, 16<<20)
	def(&c.MaxCommandBytes, 64<<20)
	def(&c.MaxInlineBytes, 64<<10)
	def(&c.OutputBufferBytes, 64<<10)
	def(&c.MaxReplyBytes, 64<<20)
	def(&c.ScanCursors, 10000)
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	}
	if c.ScanCursorTTL <= 0 {
		c.ScanCursorTTL = 10 * time.Minute
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	def(&c.MaxUnauthenticated, 1000)
	def(&c.EventLoops, max(1, runtime.GOMAXPROCS(0)/4))
	def(&c.PipelineHandOver, defaultPipelineHandOver(runtime.GOMAXPROCS(0), c.EventLoops))
	c.MaxUnauthenticated = min(c.MaxUnauthenticated, c.MaxClients)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// pipelineRun: a connection in an event loop that sends this many
// commands in one go pipelines (defaultPipelineHandOver).
const pipelineRun = 8

// defaultPipelineHandOver is Config.PipelineHandOver's default for a
// runtime of procs processors and loops event loops. A pipelining
// connection handed over runs on the processors the loops leave, and its
// goroutine pays for every round a read that finds nothing and a wake-up
// by the runtime's poller, which the loop does not. Where the loops leave
// at most one processor per loop (the raft loop, storage and everything
// else share it), pipelines stay in the loop: on the 2-core machine (one
// loop), GET at redis-benchmark -c 50 -P 16 against the one-region demo
// made more requests per second with the loop keeping its pipelines than
// with them handed over at 8, for about 0.9 x the node's CPU per request
// (README, Performance: bench/before-after.sh). (Two loops, tried, made
// pipelined GETs faster still but one-at-a-time GETs at -c 50 0.8 x as
// fast.) Elsewhere a connection that sends pipelineRun commands in one
// go is handed over once they are answered.
func defaultPipelineHandOver(procs, loops int) int {
	if procs <= 2*loops {
		return math.MaxInt
	}
	return pipelineRun
}

func (c *Config) limits() limits {
	return limits{maxArgs: c.MaxArgs, maxBulk: c.MaxBulkBytes, maxCommand: c.MaxCommandBytes,
		maxInline: c.MaxInlineBytes, maxHeaderLen: 64}
}

// Server serves RESP for one node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	node    Backend
	ln      net.Listener
	ctx     context.Context // cancelled by Close; requests run under it
	cancel  context.CancelFunc
	started time.Time
	cursors *cursorTable
	nextID  atomic.Int64
	// tlsConfig is set when the server speaks TLS (Config.Certs).
	tlsConfig *tls.Config

	mu      sync.Mutex
	clients map[*client]struct{}
	unauth  int // connections not authenticated yet
	closed  bool
	wg      sync.WaitGroup

	loops []*eventLoop  // none: every connection has its goroutine (loop_linux.go)
	next  atomic.Uint64 // the loop of the next connection, round robin
	// handedOver counts the connections the loop gave to a goroutine of
	// their own (INFO's loop_handovers).
	handedOver atomic.Int64
	// loopWrites counts the writes the loops started without waiting
	// (INFO's loop_writes).
	loopWrites atomic.Int64

	hub    hub    // subscriptions (cmd_pubsub.go)
	unsink func() // stops the node's deliveries to hub
}

// Listen starts serving RESP on addr (e.g. "127.0.0.1:6379").
func Listen(addr string, n Backend, cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("resp: listen: %w", err)
	}
	return Serve(ln, n, cfg), nil
}

// Serve starts serving RESP on an open listener (so that the node can
// advertise the address before the server starts). The server owns ln
// from then on and closes it on Close.
func Serve(ln net.Listener, n Backend, cfg Config) *Server {
	if lim := n.Limits(); cfg.MaxBulkBytes <= 0 {
		cfg.MaxBulkBytes = max(16<<20, lim.MaxValueBytes, lim.MaxKeyBytes)
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "resp"), node: n, ln: ln,
		ctx: ctx, cancel: cancel, started: time.Now(),
		cursors: newCursorTable(cfg.ScanCursors, cfg.ScanCursorTTL),
		clients: map[*client]struct{}{},
	}
	if cfg.Certs != nil {
		s.tlsConfig = cfg.Certs.ClientsConfig(n.Cluster(), nil)
	}
	s.unsink = n.AddPubSubSink(s.deliver)
	if !cfg.NoEventLoop && cfg.Certs == nil && cfg.IdleTimeout == 0 { // else no connection would enter one
		for range cfg.EventLoops {
			if l := newEventLoop(s); l != nil {
				s.loops = append(s.loops, l)
			}
		}
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: it closes the listener and every connection and
// waits for their goroutines (requests in flight are cancelled).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.clients {
		_ = c.conn.Close()
	}
	s.mu.Unlock()
	s.unsink()
	s.cancel()
	for _, l := range s.loops {
		l.stop()
	}
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, then go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			_ = conn.Close()
			return
		case len(s.clients) >= s.cfg.MaxClients:
			s.mu.Unlock()
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(conn, "-ERR max number of clients reached\r\n")
			_ = conn.Close()
			continue
		case s.node.Guard().Required() && s.unauth >= s.cfg.MaxUnauthenticated:
			s.mu.Unlock()
			s.refuseUnauthenticated(conn)
			continue
		}
		var loop *eventLoop
		if len(s.loops) > 0 { // only without TLS and an idle timeout (Serve)
			l := s.loops[s.next.Add(1)%uint64(len(s.loops))]
			var ok bool
			if conn, ok = l.take(conn); ok {
				loop = l
			}
		}
		c := newClient(s, s.secure(conn))
		s.clients[c] = struct{}{}
		if s.node.Guard().Required() {
			s.unauth++
			c.counted = true
		}
		s.wg.Add(1)
		s.mu.Unlock()
		if loop != nil {
			loop.adopt(c)
		} else {
			go c.serve()
		}
	}
}

// clientsSnapshot returns the open connections.
func (s *Server) clientsSnapshot() []*client {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}

// serve runs one connection from its own goroutine (a connection the
// event loop does not serve, see loop_linux.go).
func (c *client) serve() {
	defer c.finish()
	if !c.start() {
		return
	}
	c.commands()
}

// finish closes the connection and forgets it.
func (c *client) finish() {
	s := c.s
	_ = c.conn.Close()
	c.unsubscribeAll()
	c.wmu.Lock()
	c.tally.Flush()
	c.wmu.Unlock()
	close(c.closed)
	s.mu.Lock()
	delete(s.clients, c)
	if c.counted {
		s.unauth--
	}
	s.mu.Unlock()
	s.wg.Done()
}

// commands reads a command, runs it, and writes the replies once no more
// input is waiting (so a pipeline gets its replies in one write), until
// the connection ends.
func (c *client) commands() {
	for {
		if t := c.s.cfg.IdleTimeout; t > 0 && c.authenticated() {
			c.idle(t)
		}
		args, err := c.r.readCommand()
		if !c.dispatch(args, err) {
			return
		}
	}
}

// dispatch handles one command read (or the error reading it): a plain
// SET with more input waiting starts a run of them (pipeline.go). It
// returns false when the connection must close.
func (c *client) dispatch(args [][]byte, err error) bool {
	if err == nil && plainSet(args) && c.r.buffered() {
		if ks := c.setRunKeyspace(); ks != nil {
			return c.handleSetRun(ks, args)
		}
	}
	return c.handle(args, err)
}

// idle keeps the idle timeout's read deadline ahead of a connection about
// to wait for its next command: between t and 1.5 t away (moving it costs
// a timer update, so it moves only once less than t is left). A
// subscribed connection has none, as in Redis.
func (c *client) idle(t time.Duration) {
	if c.subscriptions() > 0 {
		if !c.readDeadline.IsZero() {
			c.setReadDeadline(time.Time{})
		}
		return
	}
	now := time.Now()
	if c.readDeadline.Sub(now) >= t {
		return
	}
	c.setReadDeadline(now.Add(t + t/2))
}

// setReadDeadline sets the connection's read deadline (zero: none) and
// remembers it (idle). Only the connection's own goroutine calls it.
func (c *client) setReadDeadline(d time.Time) {
	c.readDeadline = d
	_ = c.conn.SetReadDeadline(d)
}

// handle runs one command read from the connection (or answers the
// error reading it), under the writer's lock, and flushes the replies
// once no more input is waiting. It returns false when the connection
// must close.
func (c *client) handle(args [][]byte, err error) bool {
	s := c.s
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case err == nil:
		if !c.run(args) {
			_ = c.w.flush()
			return false
		}
	case isRejected(err):
		c.fail(err)
		c.observe("rejected", mono(), err)
	case isProtocolError(err):
		c.fail(err)
		_ = c.w.flush()
		s.log.Debug("protocol error, closing the connection", "client", c.addr, "err", err)
		return false
	default: // the connection ended or failed
		_ = c.w.flush()
		return false
	}
	if err := c.w.failed(); err != nil {
		s.log.Debug("closing a connection whose replies cannot be written", "client", c.addr, "err", err)
		return false
	}
	if c.quit {
		_ = c.w.flush()
		return false
	}
	if !c.r.buffered() && !c.noWait { // (the event loop writes its replies itself)
		if err := c.w.flush(); err != nil {
			s.log.Debug("closing a connection that does not read its replies", "client", c.addr, "err", err)
			return false
		}
	}
	return true
}

// isRejected and isProtocolError tell handle's errors apart (apart from
// handle: errors.As's target would be allocated for every command).
func isRejected(err error) bool {
	var rej *rejectedError
	return errors.As(err, &rej)
}

func isProtocolError(err error) bool {
	var pe *protocolError
	return errors.As(err, &pe)
}

// run executes one command. A panic in a command is a bug: it is logged,
// answered, and ends the connection (not the node).
func (c *client) run(args [][]byte) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("command panicked", "panic", p, "stack", string(debug.Stack()))
			c.w.errorLine("ERR internal error")
			ok = false
		}
	}()
	c.exec(args)
	return true
}
