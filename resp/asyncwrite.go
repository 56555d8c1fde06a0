package resp

import (
	"errors"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node"
)

// Writes in the event loop. A plain SET that its node can propose itself
// (node.Node.WriteAsync: a sync keyspace's group this node leads), with
// nothing read behind it (not a pipeline's), is started without waiting:
// it joins the group's open batch of writes, and the loop goes on serving
// other connections. When the batch is applied, its outcome comes back to
// the loop (eventLoop.complete), which writes the reply, then runs what
// the connection sent meanwhile. The connection runs nothing else while
// its write is out, so its replies keep their order. Any other write, and
// a SET the node cannot start that way, hands the connection over as
// before (node.ErrWouldWait).

// errPending: the command started a write whose reply the loop writes
// once it is applied (exec records nothing yet).
var errPending = errors.New("resp: the write's reply comes later")

// pendingWrite is a write the loop started and has not answered yet.
type pendingWrite struct {
	c     *client
	name  string        // the command, for the metrics
	start time.Duration // when it started (mono), for the metrics
	// The outcome, set by the node's goroutine before the loop hears of
	// it (through the loop's mutex).
	res kv.Result
	a   node.Answer
	err error
}

// writeAsync starts cmd, a SET stamped with the time already (parseSet),
// without waiting: errPending once started (its reply is written when it
// is applied), node.ErrWouldWait if it cannot be (nothing was done: the
// connection is handed over and the command run again there). Only the
// loop calls it (c.noWait). A write with more input waiting behind it is
// a pipeline's, which its goroutine writes better: a run of SETs as one
// MSET (pipeline.go), where the loop would write them one proposal, and
// one fsync, after another.
func (c *client) writeAsync(cmd kv.Command) error {
	if c.r.buffered() {
		return node.ErrWouldWait
	}
	p := &pendingWrite{c: c}
	done := c.loopDone
	if !c.node().WriteAsync(c.keyspace, cmd, func(res kv.Result, a node.Answer, err error) {
		p.res, p.a, p.err = res, a, err
		done(p)
	}) {
		return node.ErrWouldWait
	}
	c.pending = p
	c.s.loopWrites.Add(1)
	return errPending
}

// answerPending writes the reply of the connection's pending write, whose
// outcome has come, and records it. The caller holds wmu.
func (c *client) answerPending(p *pendingWrite) {
	c.pending = nil
	if p.err != nil {
		c.fail(p.err)
	} else {
		c.setLast(p.a)
		replySet(c, false, p.res) // (a SET without GET: node.WriteAsync)
	}
	c.observe(p.name, p.start, p.err)
}
