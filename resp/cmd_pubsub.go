package resp

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/meridian-db/meridian/kv"
)

// Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
// PUBSUB CHANNELS|NUMSUB|NUMPAT. Channels are the cluster's, not a
// keyspace's (as Redis's are the server's, not a database's): a message
// published on any node reaches the subscribers of every node, in every
// region, at most once and in its publisher's order (node/pubsub.go).
// PUBLISH counts the subscribers of the node that received it, and PUBSUB
// describes that node's subscriptions, as in Redis Cluster.
//
// Messages reach a connection through its own queue and goroutine, which
// write them between the connection's replies (the writer's lock); a
// connection whose queue fills up (pushQueueLen messages: it does not
// read them) is closed, as Redis closes pub/sub clients over their
// output limit. In RESP2 a subscribed connection may only (un)subscribe,
// PING and QUIT; in RESP3 messages are push replies and every command
// may run meanwhile.

const pushQueueLen = 4096

func addPubSubCommands(add func(name string, arity int, flags string, first, last, step int, group, summary string, fn func(*client, [][]byte) error)) {
	add("subscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub", "Listens for messages published to channels, in every region.", cmdSubscribe(false))
	add("psubscribe", -2, "pubsub noscript loading stale", 0, 0, 0, "pubsub", "Listens for messages published to channels matching patterns, in every region.", cmdSubscribe(true))
	add("unsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub", "Stops listening to channels (all without arguments).", cmdUnsubscribe(false))
	add("punsubscribe", -1, "pubsub noscript loading stale", 0, 0, 0, "pubsub", "Stops listening to patterns (all without arguments).", cmdUnsubscribe(true))
	add("publish", 3, "pubsub loading stale fast", 0, 0, 0, "pubsub", "Posts a message to a channel for the subscribers of every region; returns how many of this node's got it.", cmdPublish)
	add("pubsub", -2, "", 0, 0, 0, "pubsub", "PUBSUB CHANNELS [pattern] | NUMSUB [channel...] | NUMPAT, about this node's subscriptions.", cmdPubSub)
}

// hub holds a server's subscriptions.
type hub struct {
	mu       sync.Mutex
	channels map[string]map[*client]struct{}
	patterns map[string]map[*client]struct{}
}

// pushMsg is a message for a subscriber (pattern nil: a channel's).
type pushMsg struct{ pattern, channel, message []byte }

// deliver hands a published message to the server's subscribers; it
// never blocks (node.PubSubSink).
func (s *Server) deliver(channel, message []byte) int {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for c := range h.channels[string(channel)] {
		if c.push(pushMsg{channel: channel, message: message}) {
			n++
		}
	}
	for p, cs := range h.patterns {
		if !kv.GlobMatch([]byte(p), channel) {
			continue
		}
		for c := range cs {
			if c.push(pushMsg{pattern: []byte(p), channel: channel, message: message}) {
				n++
			}
		}
	}
	return n
}

// push queues a message for the connection; a full queue closes it.
func (c *client) push(m pushMsg) bool {
	select {
	case c.pushq <- m:
		return true
	default:
		c.s.log.Warn("closing a subscriber that does not read its messages", "client", c.addr, "queued", pushQueueLen)
		_ = c.conn.Close()
		return false
	}
}

// pusher writes queued messages to the connection, between its replies.
func (c *client) pusher() {
	defer c.s.wg.Done()
	for {
		select {
		case m := <-c.pushq:
			c.wmu.Lock()
			c.writePush(m)
			for more := true; more; {
				select {
				case m := <-c.pushq:
					c.writePush(m)
				default:
					more = false
				}
			}
			_ = c.w.flush()
			c.wmu.Unlock()
		case <-c.closed:
			return
		}
	}
}

func (c *client) writePush(m pushMsg) {
	if m.pattern != nil {
		c.w.pushHeader(4)
		c.w.bulkString("pmessage")
		c.w.bulk(m.pattern)
	} else {
		c.w.pushHeader(3)
		c.w.bulkString("message")
	}
	c.w.bulk(m.channel)
	c.w.bulk(m.message)
}

// subscriptions returns how many channels and patterns the connection
// listens to.
func (c *client) subscriptions() int { return len(c.subs) + len(c.psubs) }

// startPusher starts the connection's message writer once.
func (c *client) startPusher() {
	if c.pushq != nil {
		return
	}
	c.pushq = make(chan pushMsg, pushQueueLen)
	c.s.wg.Add(1)
	go c.pusher()
}

func cmdSubscribe(pattern bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		if c.multi != nil {
			return replyError("ERR SUBSCRIBE cannot be queued in a transaction")
		}
		c.startPusher()
		kind, mine, all := "subscribe", &c.subs, &c.s.hub.channels
		if pattern {
			kind, mine, all = "psubscribe", &c.psubs, &c.s.hub.patterns
		}
		h := &c.s.hub
		for _, a := range args[1:] {
			name := string(a)
			h.mu.Lock()
			if *mine == nil {
				*mine = map[string]bool{}
			}
			if !(*mine)[name] {
				(*mine)[name] = true
				if *all == nil {
					*all = map[string]map[*client]struct{}{}
				}
				if (*all)[name] == nil {
					(*all)[name] = map[*client]struct{}{}
				}
				(*all)[name][c] = struct{}{}
			}
			h.mu.Unlock()
			c.w.pushHeader(3)
			c.w.bulkString(kind)
			c.w.bulk(a)
			c.w.integer(int64(c.subscriptions()))
		}
		return nil
	}
}

func cmdUnsubscribe(pattern bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		kind, mine := "unsubscribe", &c.subs
		if pattern {
			kind, mine = "punsubscribe", &c.psubs
		}
		names := make([]string, 0, len(args)-1)
		for _, a := range args[1:] {
			names = append(names, string(a))
		}
		if len(names) == 0 {
			for n := range *mine {
				names = append(names, n)
			}
			slices.Sort(names)
		}
		if len(names) == 0 {
			c.w.pushHeader(3)
			c.w.bulkString(kind)
			c.w.null()
			c.w.integer(int64(c.subscriptions()))
			return nil
		}
		for _, n := range names {
			c.s.hub.remove(c, n, pattern)
			delete(*mine, n)
			c.w.pushHeader(3)
			c.w.bulkString(kind)
			c.w.bulkString(n)
			c.w.integer(int64(c.subscriptions()))
		}
		return nil
	}
}

// remove drops a connection's subscription to a channel or pattern.
func (h *hub) remove(c *client, name string, pattern bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	all := h.channels
	if pattern {
		all = h.patterns
	}
	delete(all[name], c)
	if len(all[name]) == 0 {
		delete(all, name)
	}
}

// unsubscribeAll drops every subscription of a connection that closes.
func (c *client) unsubscribeAll() {
	for n := range c.subs {
		c.s.hub.remove(c, n, false)
	}
	for n := range c.psubs {
		c.s.hub.remove(c, n, true)
	}
}

func cmdPublish(c *client, args [][]byte) error {
	c.w.integer(int64(c.node().Publish(args[1], args[2])))
	return nil
}

func cmdPubSub(c *client, args [][]byte) error {
	h := &c.s.hub
	switch sub := commandName(args[1]); sub {
	case "channels":
		if len(args) > 3 {
			return errArity("pubsub|channels")
		}
		h.mu.Lock()
		var out []string
		for ch := range h.channels {
			if len(args) < 3 || kv.GlobMatch(args[2], []byte(ch)) {
				out = append(out, ch)
			}
		}
		h.mu.Unlock()
		slices.Sort(out)
		c.w.array(len(out))
		for _, ch := range out {
			c.w.bulkString(ch)
		}
	case "numsub":
		c.w.array(2 * (len(args) - 2))
		for _, a := range args[2:] {
			h.mu.Lock()
			n := len(h.channels[string(a)])
			h.mu.Unlock()
			c.w.bulk(a)
			c.w.integer(int64(n))
		}
	case "numpat":
		if len(args) != 2 {
			return errArity("pubsub|numpat")
		}
		h.mu.Lock()
		n := len(h.patterns)
		h.mu.Unlock()
		c.w.integer(int64(n))
	default:
		return replyError(fmt.Sprintf("ERR unknown subcommand '%s'. Try PUBSUB HELP.", printable(args[1], 64)))
	}
	return nil
}

// allowedSubscribed lists what a RESP2 connection may run while
// subscribed.
func allowedSubscribed(name string) bool {
	switch name {
	case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset":
		return true
	}
	return false
}

func errSubscribedContext(name string) error {
	return replyError(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", strings.ToLower(name)))
}
