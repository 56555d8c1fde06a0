package resp

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//
// After MULTI, commands are checked (known, right number of arguments, a
// form in the command engine, keys in the transaction's one shard) and
// queued; a command refused there makes EXEC fail with EXECABORT, as in
// Redis. EXEC sends the queue as one kv.OpTxn to the shard's group: the
// commands apply at once, in order, in one raft entry; a command's own
// failure is its reply in EXEC's array and the others still run (Redis's
// rule).
//
// Keys of one transaction must live in one shard: give them a common hash
// tag ({user42}:cart, {user42}:orders). A key in another shard is
// refused when queued (or watched) with a CROSSSLOT error naming the
// keys and their shards, as Redis Cluster does.
//
// WATCH reads each key's state (exists, version: kv/txn.go) with a strong
// read; EXEC hands the states to the state machine, which runs nothing
// and answers a nil array if one changed. Active keyspaces have no WATCH
// (no single order in which to compare), and run a transaction atomically
// in the writing region only.

// multiState is a connection's transaction in the making.
type multiState struct {
	cmds   [][][]byte
	failed bool     // a command was refused: EXEC aborts
	keys   [][]byte // every key seen, queued or watched
}

func addTxnCommands(add func(name string, arity int, flags string, first, last, step int, group, summary string, fn func(*client, [][]byte) error)) {
	add("multi", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "transactions", "Starts a transaction: the commands that follow are queued until EXEC.", cmdMulti)
	add("exec", 1, "noscript loading stale skip_slowlog", 0, 0, 0, "transactions", "Runs the queued commands at once, as one raft entry of their shard (nil if a watched key changed).", cmdExec)
	add("discard", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "transactions", "Discards the queued commands and the watched keys.", cmdDiscard)
	add("watch", -2, "noscript loading stale fast allow_busy", 1, -1, 1, "transactions", "Watches keys (of one shard): EXEC runs nothing if one changes (not in active keyspaces).", cmdWatch)
	add("unwatch", 1, "noscript loading stale fast allow_busy", 0, 0, 0, "transactions", "Forgets the watched keys.", cmdUnwatch)
}

// txnControl lists the commands that run at once inside MULTI.
func txnControl(name string) bool {
	switch name {
	case "exec", "discard", "multi", "watch", "quit":
		return true
	}
	return false
}

func cmdMulti(c *client, args [][]byte) error {
	if c.multi != nil {
		return replyError("ERR MULTI calls can not be nested")
	}
	c.multi = &multiState{keys: slices.Clone(c.watchKeys())}
	c.w.simple("OK")
	return nil
}

func (c *client) watchKeys() [][]byte {
	keys := make([][]byte, len(c.watches))
	for i, w := range c.watches {
		keys[i] = w.Key
	}
	return keys
}

// queue queues a command of a transaction, or refuses it (and dooms the
// transaction).
func (c *client) queue(cmd *command, args [][]byte) {
	err := c.queueErr(cmd, args)
	if err != nil {
		c.multi.failed = true
		c.fail(err)
		return
	}
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = bytes.Clone(a)
	}
	c.multi.cmds = append(c.multi.cmds, cp)
	c.w.simple("QUEUED")
}

func (c *client) queueErr(cmd *command, args [][]byte) error {
	if cmd.spec == nil || cmd.spec.Internal {
		return replyError(fmt.Sprintf("ERR %s cannot be queued in a transaction: Meridian transactions hold commands on keys (see docs/commands.md)", strings.ToUpper(cmd.name)))
	}
	keys := cmd.spec.Keys(args)
	all := append(slices.Clone(c.multi.keys), keys...)
	if _, err := c.node().SameShard(c.keyspace, all); err != nil {
		return err
	}
	c.multi.keys = all
	return nil
}

func cmdExec(c *client, args [][]byte) error {
	m := c.multi
	if m == nil {
		return replyError("ERR EXEC without MULTI")
	}
	watches := c.watches
	c.multi, c.watches = nil, nil
	if m.failed {
		return replyError("EXECABORT Transaction discarded because of previous errors.")
	}
	// The queued commands were authorized when queued; the user's
	// permissions may have changed since (Redis checks again too). A
	// command no longer allowed refuses the whole transaction: nothing
	// runs.
	for _, cmd := range m.cmds {
		if _, err := c.authorize(commandName(cmd[0]), cmd); err != nil {
			return err
		}
	}
	if len(m.keys) == 0 {
		// Nothing on keys (PING, ECHO): nothing to apply atomically.
		c.w.array(len(m.cmds))
		for _, cmd := range m.cmds {
			switch name := commandName(cmd[0]); {
			case name == "unwatch":
				c.w.simple("OK")
			case name == "echo" || len(cmd) == 2: // ECHO, PING message
				c.w.bulk(cmd[1])
			default:
				c.w.simple("PONG")
			}
		}
		return nil
	}
	r, a, err := c.node().Write(c.ctx(), c.keyspace, kv.TxnCommand(m.keys[0], c.nowMS(), watches, m.cmds))
	if err != nil {
		return err
	}
	c.setLast(a)
	rep, err := kv.DecodeReply(r.Value)
	if err != nil {
		return err
	}
	if rep.Kind == kv.ReplyArray {
		for i, cmd := range m.cmds {
			if i < len(rep.Elems) && strings.EqualFold(string(cmd[0]), "zscan") {
				rep.Elems[i] = c.numberCursor(rep.Elems[i])
			}
		}
	}
	c.w.reply(rep)
	return nil
}

func cmdDiscard(c *client, args [][]byte) error {
	if c.multi == nil {
		return replyError("ERR DISCARD without MULTI")
	}
	c.multi, c.watches = nil, nil
	c.w.simple("OK")
	return nil
}

func cmdWatch(c *client, args [][]byte) error {
	if c.multi != nil {
		return replyError("ERR WATCH inside MULTI is not allowed")
	}
	if ks := c.node().Metadata().Keyspaces[c.keyspace]; ks != nil && ks.Strategy == metadata.Active {
		return replyError(fmt.Sprintf("ERR WATCH is not available in active keyspace %q: every region writes concurrently, so there is no single order in which to check a watched key; use a sync keyspace for optimistic transactions", c.keyspace))
	}
	keys := args[1:]
	if _, err := c.node().SameShard(c.keyspace, append(c.watchKeys(), keys...)); err != nil {
		return err
	}
	for _, k := range keys {
		if slices.ContainsFunc(c.watches, func(w kv.Watch) bool { return bytes.Equal(w.Key, k) }) {
			continue // watched already: the first state counts
		}
		out, a, err := c.node().Query(c.ctx(), c.keyspace, k, kv.WatchStateCommand(k), node.Strong)
		if err != nil {
			return err
		}
		c.setLast(a)
		r, err := kv.DecodeReply(out)
		if err != nil {
			return err
		}
		w, err := kv.ParseWatchState(bytes.Clone(k), r)
		if err != nil {
			return err
		}
		c.watches = append(c.watches, w)
	}
	c.w.simple("OK")
	return nil
}

func cmdUnwatch(c *client, args [][]byte) error {
	c.watches = nil
	c.w.simple("OK")
	return nil
}
