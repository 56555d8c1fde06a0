package resp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// client is one connection and its state.
type client struct {
	s       *Server
	conn    net.Conn
	r       *reader
	w       *writer
	id      int64
	addr    string
	laddr   string
	created time.Time

	readDeadline time.Time // the connection's read deadline as last set (setReadDeadline)

	level node.Consistency // the connection's consistency (MERIDIAN.WITH overrides it for one command); zero: the keyspace's default
	last  node.Answer      // how the last answer was served
	// session holds the connection's session token per keyspace: every
	// answer advances it, and session reads honour it (MERIDIAN.SESSION
	// reads it, or sets one brought from another connection).
	session map[string]*consistency.Token
	// enc caches sessionToken's last answer: the token it encoded, at
	// which epoch, and the text; setLast drops it when the token moves.
	enc struct {
		t     *consistency.Token
		epoch uint64
		s     string
		meta  *metadata.State // the metadata the epoch was observed in
	}
	// looked caches lookup's last answer: the name as sent, and the command.
	looked struct {
		name []byte
		cmd  *command
	}
	// perm caches authorize's permission of a command without
	// subcommands (permissionOf).
	perm struct {
		name string
		p    auth.Permission
		ok   bool
	}
	// tok caches token's answer for a keyspace.
	tok struct {
		t        *consistency.Token
		keyspace string
	}
	quit bool // QUIT: close after the reply
	// noWait: the event loop runs the command, whose reads must not wait
	// (node.Consistency.NoWait); wouldWait: the loop may not run it
	// (loopRuns) or a read would have waited, so the command did nothing
	// and is run again from the connection's own goroutine.
	noWait, wouldWait bool
	// pending: a write the loop started without waiting, not answered
	// yet (asyncwrite.go); loopDone tells the connection's loop that a
	// pending write's outcome has come (set when a loop takes the
	// connection in; only the loop starts such writes).
	pending  *pendingWrite
	loopDone func(*pendingWrite)
	// nameBuf is lookup's scratch space for a command's lower-case name.
	nameBuf []byte

	multi   *multiState // MULTI ... EXEC in the making (cmd_txn.go)
	watches []kv.Watch  // WATCHed keys' states

	// Pub/Sub (cmd_pubsub.go): subscriptions, and the queue of messages a
	// goroutine writes between the replies; wmu is held while a reply or
	// messages are written.
	subs, psubs map[string]bool
	pushq       chan pushMsg
	wmu         sync.Mutex
	closed      chan struct{}

	// series and tally (under wmu): the metrics series of the last
	// command recorded, and the commands recorded but not yet added to
	// their series (observe); ended and endedReads (the goroutine that
	// serves the connection only): when the last command recorded ended,
	// and the connection's reads then (commandStart).
	series     observed
	tally      metrics.Tally
	ended      time.Duration
	endedReads uint64

	// Authentication (auth.go): who the connection is, whether it counts
	// among the server's unauthenticated ones, and the last
	// authorization decision.
	principal auth.Principal
	counted   bool
	memo      authzMemo

	// The owner goroutine writes these under mu and reads them freely;
	// other connections read them under mu (CLIENT LIST).
	mu       sync.Mutex
	keyspace string
	name     string
	libName  string
	libVer   string
	lastCmd  string
	lastAt   atomic.Int64 // mono; written by the owner without mu
}

func newClient(s *Server, conn net.Conn) *client {
	c := &client{
		s: s, conn: conn,
		r:        newReader(conn, s.cfg.limits()), // start() tightens them until the client authenticates
		w:        newWriter(conn, s.cfg.WriteTimeout, s.cfg.OutputBufferBytes),
		id:       s.nextID.Add(1),
		addr:     conn.RemoteAddr().String(),
		laddr:    conn.LocalAddr().String(),
		created:  time.Now(),
		keyspace: s.cfg.DefaultKeyspace,
		session:  map[string]*consistency.Token{},
		closed:   make(chan struct{}),
	}
	c.w.beforeFlush = c.tally.Flush // (flushes run under wmu)
	c.lastAt.Store(int64(mono()))
	return c
}

func (c *client) ctx() context.Context { return c.s.ctx }

func (c *client) node() Backend { return c.s.node }

// nowMS is the proposer's clock stamped into write commands.
func (c *client) nowMS() int64 { return c.s.node.NowMS() }

func (c *client) fail(err error) { c.w.errorLine(errorReply(err)) }

func (c *client) setLast(a node.Answer) {
	c.last = a
	for _, m := range a.Marks() {
		t := c.token()
		if have, ok := t.Index(m.Group); ok && have >= m.Index {
			continue // nothing new: the encoded token stays valid
		}
		// Observe fails only past the token's mark limit; the token then
		// keeps what it had (a session read may wait or go strong).
		_ = t.Observe(m.Group, m.Index)
		c.enc.t = nil
	}
}

// token returns the connection's session token for its keyspace.
func (c *client) token() *consistency.Token {
	if t := c.tok.t; t != nil && c.tok.keyspace == c.keyspace {
		return t // (a map lookup per command otherwise)
	}
	t := c.session[c.keyspace]
	if t == nil {
		nt := consistency.NewToken(c.node().Cluster(), c.keyspace)
		t = &nt
		c.session[c.keyspace] = t
	}
	c.tok.t, c.tok.keyspace = t, c.keyspace
	return t
}

// setToken replaces the connection's session token for its keyspace.
func (c *client) setToken(t *consistency.Token) {
	c.session[c.keyspace] = t
	c.tok.t = nil
}

// sessionToken returns the connection's session token, encoded. It
// records the keyspace's epoch as this node knows it, so that a reader
// elsewhere waits until its node knows the same primary.
func (c *client) sessionToken() string {
	t := c.token()
	st := c.node().Metadata()
	if c.enc.t == t && c.enc.meta == st && c.enc.epoch == t.Epoch() {
		return c.enc.s // neither the token nor the metadata moved
	}
	if ks := st.Keyspaces[c.keyspace]; ks != nil {
		t.ObserveEpoch(ks.Epoch)
	}
	if c.enc.t != t || c.enc.epoch != t.Epoch() {
		// Reads alone do not move the token: encode it once.
		c.enc.t, c.enc.epoch, c.enc.s = t, t.Epoch(), t.Encode()
	}
	c.enc.meta = st
	return c.enc.s
}

// consistency is the connection's level with its session token.
func (c *client) consistency() node.Consistency {
	l := c.level
	l.NoWait = c.noWait
	switch l.Req.Level {
	case consistency.Strong, consistency.Bounded, consistency.Prefix, consistency.Eventual:
		// No token to present (encoding one per request costs).
	default:
		// The node takes the token as it is instead of decoding the text
		// again (the text, which sessionToken keeps equal to it, is what a
		// read forwarded to another node carries).
		l.Token = c.sessionToken()
		l.Session = c.token()
	}
	return l
}

func (c *client) setKeyspace(ks string) {
	c.mu.Lock()
	c.keyspace = ks
	c.mu.Unlock()
}

// exec looks a command up, checks its arity and runs it. A handler writes
// its reply only when it succeeds; an error it returns becomes the reply.
func (c *client) exec(args [][]byte) {
	start := c.commandStart()
	cmd := c.lookup(args[0])
	if cmd == nil {
		err := unknownCommand(args)
		if c.multi != nil {
			c.multi.failed = true
		}
		c.fail(err)
		c.observe("unknown", start, err)
		return
	}
	name := cmd.name
	c.setLastCommand(name, start)
	var err error
	perm, authzErr := c.authorize(name, args)
	if c.noWait && !loopRuns(cmd, perm, args) {
		c.wouldWait = true // not in the event loop: nothing written, nothing recorded
		return
	}
	switch {
	case authzErr != nil:
		// Refused before it is queued: EXEC aborts, as in Redis.
		err = authzErr
		if c.multi != nil {
			c.multi.failed = true
		}
	case (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity):
		err = errArity(name)
		if c.multi != nil {
			c.multi.failed = true
		}
	case c.multi != nil && !txnControl(name):
		c.queue(cmd, args) // cmd_txn.go
	case c.subscriptions() > 0 && c.w.proto == 2 && !allowedSubscribed(name):
		err = errSubscribedContext(name)
	case c.subscriptions() > 0 && c.w.proto == 2 && name == "ping":
		// A subscribed RESP2 connection gets its pong as a message.
		c.w.array(2)
		c.w.bulkString("pong")
		if len(args) > 1 {
			c.w.bulk(args[1])
		} else {
			c.w.bulkString("")
		}
	default:
		err = cmd.fn(c, args)
		if err != nil && c.noWait {
			if errors.Is(err, node.ErrWouldWait) {
				c.wouldWait = true // a read that would wait: nothing written, nothing recorded
				return
			}
			if err == errPending { // answered and recorded when it is applied
				c.pending.name, c.pending.start = name, start
				return
			}
		}
	}
	if perm.Class == auth.Admin {
		c.auditCommand(name, args, err)
	}
	if err != nil {
		c.fail(err)
	}
	if name != "meridian.with" { // the command it runs is recorded itself
		c.observe(name, start, err)
	}
}

// lookup finds a command by its name in any case, without allocating:
// the name is lower-cased into the connection's scratch buffer.
func (c *client) lookup(name []byte) *command {
	if c.looked.cmd != nil && bytes.Equal(name, c.looked.name) {
		return c.looked.cmd // a connection mostly repeats itself
	}
	if len(name) > maxCommandName {
		return nil
	}
	b := c.nameBuf[:0]
	for _, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b = append(b, ch)
	}
	c.nameBuf = b
	cmd := commandTable[string(b)] // the conversion in a map index does not allocate
	if cmd != nil {
		c.looked.name, c.looked.cmd = append(c.looked.name[:0], name...), cmd
	}
	return cmd
}

// observe records a command in the metrics, if the server has them.
// Command names come from the command table (or are fixed words), never
// from the client's text.
// It runs under wmu, and keeps the series of the last command and outcome
// it recorded: a connection mostly repeats itself. The figures wait in the
// connection's tally until its replies are written (writer.flush), the
// connection ends, or the command or outcome changes.
func (c *client) observe(command string, start time.Duration, err error) {
	m := c.s.cfg.Metrics
	if m == nil {
		return
	}
	code := errorCode(err)
	if s := &c.series; s.command != command || s.code != code { // no command is named ""
		*s = observed{command: command, code: code, series: m.RequestSeries(metrics.FrontendRESP, command, code)}
	}
	end := mono()
	c.tally.Add(c.series.series, end-start)
	c.ended, c.endedReads = end, c.r.reads()
}

// commandStart is the time a command is timed from: the end of the
// connection's last command if nothing was read from the connection since
// (the command was waiting in the buffer behind it, as the commands of a
// pipeline do: that wait is part of its time, and one clock read serves
// both), otherwise now.
func (c *client) commandStart() time.Duration {
	if c.ended != 0 && c.r.reads() == c.endedReads {
		return c.ended
	}
	return mono()
}

// setLastCommand records the command a connection runs and its start,
// for CLIENT LIST; the name is written under mu only when it changes.
func (c *client) setLastCommand(name string, start time.Duration) {
	if c.lastCmd != name {
		c.mu.Lock()
		c.lastCmd = name
		c.mu.Unlock()
	}
	c.lastAt.Store(int64(start))
}

// monoBase anchors mono.
var monoBase = time.Now()

// mono is the process's monotonic clock: a command's start and the
// connection's last command are stamped with it (time.Now reads the wall
// clock too, which costs as much again, several times per command).
func mono() time.Duration { return time.Since(monoBase) }

// observed is the series a connection last recorded a command into.
type observed struct {
	command, code string
	series        metrics.RequestSeries
}

// unknownCommand builds Redis's reply for an unknown command, with the
// beginning of its arguments (bounded, quoted).
func unknownCommand(args [][]byte) error {
	var b strings.Builder
	for _, a := range args[1:] {
		if b.Len() > 128 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", printable(a, 128))
	}
	return replyError(fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", printable(args[0], 128), b.String()))
}

// printable shortens b and replaces bytes that could break a reply line.
func printable(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	out := bytes.Clone(b)
	for i, ch := range out {
		if ch < ' ' || ch == 0x7f {
			out[i] = ' '
		}
	}
	return string(out)
}

// --- data access on behalf of the connection ---

// read returns a key's live record at the connection's consistency.
func (c *client) read(key []byte) (kv.Record, bool, error) {
	rec, ok, a, err := c.node().GetRecord(c.ctx(), c.keyspace, key, c.consistency())
	if err != nil {
		return kv.Record{}, false, err
	}
	c.setLast(a)
	return rec, ok, nil
}

// readTyped is read, failing with WRONGTYPE if the key holds another type.
func (c *client) readTyped(key []byte, t kv.Type) (kv.Record, bool, error) {
	rec, ok, err := c.read(key)
	if err == nil && ok && rec.Type != t {
		return kv.Record{}, false, kv.ErrWrongType
	}
	return rec, ok, err
}

// write runs a kv command; NowMS is stamped here if the caller did not.
func (c *client) write(cmd kv.Command) (kv.Result, error) {
	if cmd.NowMS == 0 {
		cmd.NowMS = c.nowMS()
	}
	r, a, err := c.node().Write(c.ctx(), c.keyspace, cmd)
	if err != nil {
		return kv.Result{}, err
	}
	c.setLast(a)
	return r, nil
}
