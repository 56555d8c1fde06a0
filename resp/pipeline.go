package resp

import (
	"bytes"
	"sync"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// Pipelined SETs. A client that pipelines (go-redis pipelines, Lettuce,
// ioredis, redis-benchmark -P) sends many commands before it reads a
// reply; run one at a time, each SET would wait for its own proposal and
// fsync. A run of plain "SET key value" commands found waiting in the
// connection's buffer is instead written as one MSET per shard (one
// proposal, one raft entry each), the shards at once, and each SET gets
// its own reply, in order: OK, or its shard's error.
//
// What a client can tell: SETs of one shard apply together and in order;
// SETs of different shards may become visible in any order, as writes
// from different connections would (Redis Cluster gives no more across
// its shards). A key written twice in a run holds the later value. Only
// sync and async keyspaces batch (active keyspaces write each key as its
// own register write anyway); a SET with options, one too large, one the
// client may not run, or anything else ends the run and goes the usual way.

// maxSetRun bounds how many SETs go into one run.
const maxSetRun = 256

// plainSet reports whether args is "SET key value", with nothing else.
func plainSet(args [][]byte) bool {
	return len(args) == 3 && len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("set"))
}

// setRunKeyspace returns the connection's keyspace if it may batch SETs
// now (nil: run them one by one).
func (c *client) setRunKeyspace() *metadata.Keyspace {
	if c.multi != nil || c.quit || c.subscriptions() > 0 {
		return nil
	}
	if ks := c.node().Metadata().Keyspaces[c.keyspace]; ks != nil && ks.Strategy != metadata.Active {
		return ks
	}
	return nil
}

// handleSetRun handles a plain SET (first) read while more input waits:
// it reads the SETs that follow it, runs them as one batch, then handles
// the command that ended the run, if any. It returns false when the
// connection must close. (The reader's arguments are the command's own,
// never its buffer's: reading on keeps them.)
func (c *client) handleSetRun(ks *metadata.Keyspace, first [][]byte) bool {
	run := [][][]byte{first}
	var next [][]byte
	var nextErr error
	pending := false
	for len(run) < maxSetRun && c.r.buffered() {
		next, nextErr = c.r.readCommand()
		if nextErr == nil && plainSet(next) {
			run = append(run, next)
			continue
		}
		pending = true
		break
	}
	if !c.runSets(ks, run) {
		return false
	}
	if pending {
		return c.handle(next, nextErr)
	}
	return true
}

// runSets runs a run of plain SETs of keyspace ks (a sync or async one):
// as MSETs by shard when every one of them may go that way, else one by
// one as usual.
func (c *client) runSets(ks *metadata.Keyspace, run [][][]byte) bool {
	lim := c.node().Limits()
	batch := len(run) > 1
	for _, args := range run {
		if !batch {
			break
		}
		if _, err := c.authorize("set", args); err != nil || len(args[1]) > lim.MaxKeyBytes || len(args[2]) > lim.MaxValueBytes || len(args[1]) == 0 {
			batch = false
		}
	}
	if !batch {
		for _, args := range run {
			if !c.handle(args, nil) {
				return false
			}
		}
		return true
	}
	start := c.commandStart()
	c.setLastCommand("set", start)
	// One MSET per shard, the shards at once.
	type shardRun struct {
		pairs [][]byte
		a     node.Answer
		err   error
	}
	byShard := map[int]*shardRun{}
	shardOf := make([]int, len(run))
	for i, args := range run {
		sh := node.ShardOf(args[1], len(ks.Shards))
		shardOf[i] = sh
		r := byShard[sh]
		if r == nil {
			r = &shardRun{}
			byShard[sh] = r
		}
		r.pairs = append(r.pairs, args[1], args[2])
	}
	var wg sync.WaitGroup
	for _, r := range byShard {
		wg.Go(func() { r.a, r.err = c.node().MSet(c.ctx(), c.keyspace, r.pairs) })
	}
	wg.Wait()

	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, r := range byShard {
		if r.err == nil {
			c.setLast(r.a)
		}
	}
	for i := range run {
		err := byShard[shardOf[i]].err
		if err != nil {
			c.fail(err)
		} else {
			c.w.simple("OK")
		}
		c.observe("set", start, err)
	}
	if err := c.w.failed(); err != nil {
		c.s.log.Debug("closing a connection whose replies cannot be written", "client", c.addr, "err", err)
		return false
	}
	if !c.r.buffered() {
		if err := c.w.flush(); err != nil {
			c.s.log.Debug("closing a connection that does not read its replies", "client", c.addr, "err", err)
			return false
		}
	}
	return true
}
