package resp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node"
)

// Commands of the command engine (package kv) reach the node as they
// came: the server checks their arity and that their keys live in one
// shard, then sends reads to the node's Query at the connection's
// consistency and writes through the shard's group; the engine's reply
// is written as it is. Commands this package serves itself (GET, SET,
// MGET, DEL, ...) have an engine form too, which transactions use.

// registerEngineCommands adds every engine command that the table does
// not have yet (called at the end of the table's init).
func registerEngineCommands(add func(name string, arity int, flags string, first, last, step int, group, summary string, fn func(*client, [][]byte) error)) {
	for _, s := range kv.Specs() {
		if cmd := commandTable[s.Name]; cmd != nil {
			cmd.spec = s
			continue
		}
		flags := "readonly"
		if s.Write {
			flags = "write"
		}
		flags += " " + strings.Join(s.Flags, " ")
		add(s.Name, s.Arity, flags, s.First, s.Last, s.Step, s.Group, s.Summary, cmdEngine)
		commandTable[s.Name].spec = s
	}
}

// engineKeys returns the keys of an engine command and checks that they
// live in one shard.
func (c *client) engineKeys(spec *kv.Spec, args [][]byte) ([][]byte, error) {
	keys := spec.Keys(args)
	if len(keys) > 1 {
		if _, err := c.node().SameShard(c.keyspace, keys); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// cmdEngine runs a command of the engine.
func cmdEngine(c *client, args [][]byte) error {
	spec, ok := kv.Lookup(args[0])
	if !ok {
		return unknownCommand(args)
	}
	keys, err := c.engineKeys(spec, args)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return replyError(fmt.Sprintf("ERR %s needs a key", strings.ToUpper(spec.Name)))
	}
	if spec.Name == "zscan" {
		return c.zscan(args)
	}
	if slicesContains(spec.Flags, "blocking") {
		return c.blocking(spec, keys, args)
	}
	var out []byte
	var a node.Answer
	if spec.Write {
		var r kv.Result
		r, a, err = c.node().Write(c.ctx(), c.keyspace, kv.RedisCommand(keys[0], c.nowMS(), args))
		out = r.Value
	} else {
		out, a, err = c.node().Query(c.ctx(), c.keyspace, keys[0], args, c.consistency())
	}
	if err != nil {
		return err
	}
	c.setLast(a)
	return c.writeEncoded(out)
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// writeEncoded writes an encoded engine reply.
func (c *client) writeEncoded(b []byte) error {
	r, err := kv.DecodeReply(b)
	if err != nil {
		return err
	}
	c.w.reply(r)
	return nil
}

// zscan runs ZSCAN: the engine's cursor (the last member returned) is
// exchanged for a number, as for SCAN (cursor.go).
func (c *client) zscan(args [][]byte) error {
	cursor := "0"
	if string(args[2]) != "0" {
		id, err := strconv.ParseUint(string(args[2]), 10, 64)
		if err != nil {
			return errInvalidCursor
		}
		var ok bool
		if cursor, ok = c.s.cursors.get(c.keyspace, id); !ok || !strings.HasPrefix(cursor, "\x00") {
			return errInvalidCursor
		}
	}
	q := append([][]byte{args[0], args[1], []byte(cursor)}, args[3:]...)
	out, a, err := c.node().Query(c.ctx(), c.keyspace, args[1], q, c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	r, err := kv.DecodeReply(out)
	if err != nil {
		return err
	}
	c.w.reply(c.numberCursor(r))
	return nil
}

// numberCursor replaces the engine's cursor in a ZSCAN reply by a number.
func (c *client) numberCursor(r kv.Reply) kv.Reply {
	if r.Kind != kv.ReplyArray || len(r.Elems) != 2 || r.Elems[0].Kind != kv.ReplyBulk || string(r.Elems[0].Str) == "0" {
		return r
	}
	id := c.s.cursors.put(c.keyspace, string(r.Elems[0].Str))
	r.Elems[0] = kv.BulkString(strconv.FormatUint(id, 10))
	return r
}

// blocking runs a blocking pop: it waits (see node.BlockingWrite) while
// the connection stays open.
func (c *client) blocking(spec *kv.Spec, keys [][]byte, args [][]byte) error {
	lists := keys // BLPOP, BRPOP, BZPOPMIN, BZPOPMAX: every key (the timeout is not one)
	if spec.Name == "blmove" || spec.Name == "brpoplpush" {
		lists = keys[:1] // they wait on the source
	}
	timeout, err := kv.ParseTimeout(args[len(args)-1])
	if err != nil {
		return err
	}
	ctx, done := c.untilClosed()
	defer done()
	r, a, err := c.node().BlockingWrite(ctx, c.keyspace, lists, args, timeout)
	if err != nil {
		if errors.Is(err, context.Canceled) && c.s.ctx.Err() == nil {
			c.quit = true // the client went away
			return nil
		}
		return err
	}
	c.setLast(a)
	return c.writeEncoded(r.Value)
}

// untilClosed returns a context that ends when the client closes its
// connection (or the server stops), for commands that wait: the
// connection's reader is idle meanwhile, so a goroutine watches it. done
// stops the watch and leaves the reader as it was (input that arrived
// meanwhile stays buffered).
func (c *client) untilClosed() (context.Context, func()) {
	ctx, cancel := context.WithCancel(c.ctx())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if _, err := c.r.br.Peek(1); err != nil && !isTimeout(err) {
			cancel()
		}
	}()
	return ctx, func() {
		c.setReadDeadline(time.Now())
		<-stopped
		c.setReadDeadline(time.Time{})
		cancel()
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
