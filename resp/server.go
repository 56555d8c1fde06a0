package resp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tidwall/redcon"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node"
)

// Config configures a RESP server.
type Config struct {
	// DefaultKeyspace is the keyspace of a new connection.
	DefaultKeyspace string
	// Logger receives connection errors. Nil discards.
	Logger *slog.Logger
}

// Server serves RESP for one node.
type Server struct {
	cfg    Config
	node   *node.Node
	srv    *redcon.Server
	ln     net.Listener
	nextID atomic.Int64
}

type connState struct {
	id          int64
	name        string
	keyspace    string
	consistency node.Consistency
	last        node.Answer
}

// Listen starts serving RESP on addr (e.g. "127.0.0.1:6379").
func Listen(addr string, n *node.Node, cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("resp: listen: %w", err)
	}
	s := &Server{cfg: cfg, node: n, ln: ln}
	s.srv = redcon.NewServerNetwork("tcp", addr, s.handle, s.accept, nil)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes its connections.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) accept(c redcon.Conn) bool {
	c.SetContext(&connState{id: s.nextID.Add(1), keyspace: s.cfg.DefaultKeyspace, consistency: node.Strong})
	return true
}

func (s *Server) handle(c redcon.Conn, cmd redcon.Command) {
	st := c.Context().(*connState)
	name := strings.ToUpper(string(cmd.Args[0]))
	args := cmd.Args[1:]
	ctx := context.Background()
	arity := func(min, max int) bool {
		if len(args) < min || (max >= 0 && len(args) > max) {
			c.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(name)))
			return false
		}
		return true
	}
	switch name {
	case "PING":
		if !arity(0, 1) {
			return
		}
		if len(args) == 1 {
			c.WriteBulk(args[0])
			return
		}
		c.WriteString("PONG")
	case "ECHO":
		if arity(1, 1) {
			c.WriteBulk(args[0])
		}
	case "QUIT":
		c.WriteString("OK")
		_ = c.Close()
	case "COMMAND":
		// Enough for redis-cli's start-up probe.
		c.WriteArray(0)
	case "GET":
		if !arity(1, 1) {
			return
		}
		v, ok, a, err := s.node.Get(ctx, st.keyspace, args[0], st.consistency)
		if err != nil {
			c.WriteError(errorReply(err))
			return
		}
		st.last = a
		if !ok {
			c.WriteNull()
			return
		}
		c.WriteBulk(v)
	case "SET":
		if !arity(2, -1) {
			return
		}
		cmd := kv.Command{Op: kv.OpSet, Args: [][]byte{args[0], args[1]}}
		for _, opt := range args[2:] {
			switch strings.ToUpper(string(opt)) {
			case "NX":
				cmd.Flags |= kv.FlagNX
			case "XX":
				cmd.Flags |= kv.FlagXX
			case "GET":
				cmd.Flags |= kv.FlagGet
			default:
				c.WriteError("ERR syntax error")
				return
			}
		}
		if cmd.Flags&kv.FlagNX != 0 && cmd.Flags&kv.FlagXX != 0 {
			c.WriteError("ERR syntax error")
			return
		}
		r, a, err := s.node.Write(ctx, st.keyspace, cmd)
		if err != nil {
			c.WriteError(errorReply(err))
			return
		}
		st.last = a
		switch {
		case cmd.Flags&kv.FlagGet != 0 && r.Found:
			c.WriteBulk(r.Value)
		case cmd.Flags&kv.FlagGet != 0 || r.N == 0:
			c.WriteNull()
		default:
			c.WriteString("OK")
		}
	case "DEL":
		if !arity(1, -1) {
			return
		}
		var total int64
		for _, k := range args {
			ok, a, err := s.node.Delete(ctx, st.keyspace, k)
			if err != nil {
				c.WriteError(errorReply(err))
				return
			}
			st.last = a
			if ok {
				total++
			}
		}
		c.WriteInt64(total)
	case "EXISTS":
		if !arity(1, -1) {
			return
		}
		var total int64
		for _, k := range args {
			_, ok, a, err := s.node.GetRecord(ctx, st.keyspace, k, st.consistency)
			if err != nil {
				c.WriteError(errorReply(err))
				return
			}
			st.last = a
			if ok {
				total++
			}
		}
		c.WriteInt64(total)
	case "MERIDIAN.KEYSPACE":
		if !arity(1, 1) {
			return
		}
		if s.node.Metadata().Keyspaces[string(args[0])] == nil {
			c.WriteError(errorReply(fmt.Errorf("%w: %q", node.ErrUnknownKeyspace, args[0])))
			return
		}
		st.keyspace = string(args[0])
		c.WriteString("OK")
	case "MERIDIAN.CONSISTENCY":
		if !arity(0, 1) {
			return
		}
		if len(args) == 0 {
			c.WriteBulkString(st.consistency.String())
			return
		}
		lvl, err := node.ParseConsistency(string(args[0]))
		if err != nil {
			c.WriteError(errorReply(err))
			return
		}
		st.consistency = lvl
		c.WriteString("OK")
	case "MERIDIAN.LAST":
		a := st.last
		c.WriteArray(10)
		c.WriteBulkString("region")
		c.WriteBulkString(a.Region)
		c.WriteBulkString("node")
		c.WriteInt64(int64(a.Node))
		c.WriteBulkString("consistency")
		c.WriteBulkString(a.Consistency)
		c.WriteBulkString("index")
		c.WriteBulkString(strconv.FormatUint(a.Index, 10))
		c.WriteBulkString("forwarded")
		c.WriteInt(boolInt(a.Forwarded))
	default:
		c.WriteError(fmt.Sprintf("ERR unknown command '%s'", string(cmd.Args[0])))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errorReply maps an internal error to a Redis-style error line: a code
// word, then the message.
func errorReply(err error) string {
	if errors.Is(err, kv.ErrWrongType) {
		return kv.ErrWrongType.Error()
	}
	code := strings.ToUpper(node.ErrorCode(err))
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	return code + " " + msg
}
