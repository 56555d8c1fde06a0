package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/transport"
)

// Pub/Sub across regions (docs/DESIGN.md 5.5). PUBLISH on any node
// reaches the subscribers of every node, in every region, at most once,
// in the order each publisher published (as Redis delivers a
// connection's messages in order):
//
//   - Publish hands the message to this node's subscribers (the front
//     ends' sinks, AddPubSubSink) at once, and queues it for every other
//     node of the cluster. No raft, no storage: messages are not durable,
//     as in Redis.
//   - One sender per destination node sends the queue in batches (up to
//     pubMaxBatchBytes), several in flight, each numbered in the sender's
//     sequence (a random incarnation per process, then 0, 1, 2, ...), and
//     carrying the number below which every batch of the sender is done
//     (delivered or failed). A failed batch is not sent again: delivery
//     is at most once.
//   - The destination delivers batches to its subscribers in their order:
//     one that arrives early waits for those before it until they arrive,
//     the sender says they are done (lost), or pubGapWait passes.
//   - A destination that cannot keep up (its queue beyond pubMaxQueue
//     bytes) loses the oldest messages of its queue, counted.
//
// Publish returns the number of this node's subscribers that got the
// message, as Redis Cluster's PUBLISH counts its own node's.
//
// The batches travel in the node service's Publish (node/nodepb).

const (
	pubMaxBatchBytes = 256 << 10
	pubMaxInFlight   = 128
	pubMaxQueue      = 64 << 20
	pubGapWait       = time.Second
	pubCallTimeout   = 10 * time.Second
)

// PubSubSink delivers a message to a front end's subscribers and returns
// how many got it. It must not block.
type PubSubSink func(channel, message []byte) int

type pubMessage struct{ channel, message []byte }

// pubsub is a node's pub/sub state.
type pubsub struct {
	mu          sync.Mutex
	sinks       map[int]PubSubSink
	nextSink    int
	incarnation uint64
	out         map[uint64]*pubPeer    // by destination node
	in          map[uint64]*pubInbound // by source node
	dropped     uint64                 // messages lost to full queues
}

// AddPubSubSink registers a front end's delivery to its subscribers; the
// returned function removes it.
func (n *Node) AddPubSubSink(s PubSubSink) func() {
	p := &n.pubsub
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sinks == nil {
		p.sinks = map[int]PubSubSink{}
	}
	id := p.nextSink
	p.nextSink++
	p.sinks[id] = s
	return func() {
		p.mu.Lock()
		delete(p.sinks, id)
		p.mu.Unlock()
	}
}

// deliverLocal hands a message to this node's sinks.
func (n *Node) deliverLocal(channel, message []byte) int {
	n.pubsub.mu.Lock()
	defer n.pubsub.mu.Unlock()
	return n.pubsub.deliverLocked(channel, message)
}

// deliverLocked hands a message to the sinks; p.mu is held, so that the
// batches of one source are delivered in their order. Sinks do not block.
func (p *pubsub) deliverLocked(channel, message []byte) int {
	total := 0
	for _, s := range p.sinks {
		total += s(channel, message)
	}
	return total
}

func (p *pubsub) deliverBatches(bs []pubBatch) {
	for _, b := range bs {
		for _, m := range b.msgs {
			p.deliverLocked(m.channel, m.message)
		}
	}
}

// Publish delivers a message to the subscribers of this node and queues
// it for every other node of the cluster; it returns the number of this
// node's subscribers that got it.
func (n *Node) Publish(channel, message []byte) int {
	count := n.deliverLocal(channel, message)
	m := pubMessage{channel: slices.Clone(channel), message: slices.Clone(message)}
	for _, p := range n.knownPeers() {
		if p.ID != n.cfg.ID {
			n.pubPeer(p.ID).enqueue(m)
		}
	}
	return count
}

// PubSubDropped returns how many messages were lost to full queues.
func (n *Node) PubSubDropped() uint64 {
	n.pubsub.mu.Lock()
	defer n.pubsub.mu.Unlock()
	return n.pubsub.dropped
}

// pubPeer sends the messages for one destination node.
type pubPeer struct {
	n      *Node
	to     uint64
	mu     sync.Mutex
	queue  []pubMessage
	bytes  int
	signal chan struct{}
	// Batches: the next number, and those in flight.
	next     uint64
	inFlight map[uint64]bool
}

func (n *Node) pubPeer(to uint64) *pubPeer {
	p := &n.pubsub
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.incarnation == 0 {
		p.incarnation = rand.Uint64() | 1
	}
	if p.out == nil {
		p.out = map[uint64]*pubPeer{}
	}
	pp := p.out[to]
	if pp == nil {
		pp = &pubPeer{n: n, to: to, signal: make(chan struct{}, 1), inFlight: map[uint64]bool{}}
		p.out[to] = pp
		n.wg.Add(1)
		go pp.run()
	}
	return pp
}

func (pp *pubPeer) enqueue(m pubMessage) {
	pp.mu.Lock()
	pp.queue = append(pp.queue, m)
	pp.bytes += len(m.channel) + len(m.message)
	dropped := 0
	for pp.bytes > pubMaxQueue && len(pp.queue) > 1 {
		pp.bytes -= len(pp.queue[0].channel) + len(pp.queue[0].message)
		pp.queue = pp.queue[1:]
		dropped++
	}
	pp.mu.Unlock()
	if dropped > 0 {
		pp.n.pubsub.mu.Lock()
		pp.n.pubsub.dropped += uint64(dropped)
		pp.n.pubsub.mu.Unlock()
	}
	select {
	case pp.signal <- struct{}{}:
	default:
	}
}

// run sends batches while there are messages and room in flight.
func (pp *pubPeer) run() {
	defer pp.n.wg.Done()
	slots := make(chan struct{}, pubMaxInFlight)
	for {
		select {
		case <-pp.signal:
		case <-pp.n.stop:
			return
		}
		for {
			pp.mu.Lock()
			if len(pp.queue) == 0 {
				pp.mu.Unlock()
				break
			}
			select {
			case slots <- struct{}{}:
			default:
				// Every slot is busy: a finishing call signals again.
				pp.mu.Unlock()
				goto wait
			}
			var batch []pubMessage
			size := 0
			for len(pp.queue) > 0 && (len(batch) == 0 || size+len(pp.queue[0].message)+len(pp.queue[0].channel) <= pubMaxBatchBytes) {
				m := pp.queue[0]
				pp.queue = pp.queue[1:]
				size += len(m.channel) + len(m.message)
				batch = append(batch, m)
			}
			pp.bytes -= size
			seq := pp.next
			pp.next++
			pp.inFlight[seq] = true
			req := &nodepb.PublishRequest{Incarnation: pp.n.pubsubIncarnation(), Seq: seq, DoneBelow: pp.doneBelowLocked(),
				Messages: make([]*nodepb.PubMessage, len(batch))}
			for i, m := range batch {
				req.Messages[i] = &nodepb.PubMessage{Channel: m.channel, Message: m.message}
			}
			pp.mu.Unlock()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), pubCallTimeout)
				// At most once: a batch that fails (the call, or its
				// answer's error) is lost, not sent again.
				_, _ = pp.n.client(pp.to).Publish(ctx, req)
				cancel()
				pp.mu.Lock()
				delete(pp.inFlight, seq)
				pp.mu.Unlock()
				<-slots
				select {
				case pp.signal <- struct{}{}:
				default:
				}
			}()
		}
	wait:
	}
}

// doneBelowLocked returns the number below which every batch is done.
func (pp *pubPeer) doneBelowLocked() uint64 {
	low := pp.next
	for s := range pp.inFlight {
		low = min(low, s)
	}
	return low
}

func (n *Node) pubsubIncarnation() uint64 {
	n.pubsub.mu.Lock()
	defer n.pubsub.mu.Unlock()
	return n.pubsub.incarnation
}

type pubBatch struct {
	inc, seq, doneBelow uint64
	msgs                []pubMessage
}

// errBadPubBatch is answered for a batch that claims more done than sent.
var errBadPubBatch = errors.New("node: malformed pub/sub batch")

func pubBatchFromPB(req *nodepb.PublishRequest) (pubBatch, error) {
	if req.GetDoneBelow() > req.GetSeq() {
		return pubBatch{}, fmt.Errorf("%w: batch %d with every batch below %d done", errBadPubBatch, req.GetSeq(), req.GetDoneBelow())
	}
	pb := pubBatch{inc: req.GetIncarnation(), seq: req.GetSeq(), doneBelow: req.GetDoneBelow(), msgs: make([]pubMessage, len(req.GetMessages()))}
	for i, m := range req.GetMessages() {
		pb.msgs[i] = pubMessage{channel: m.GetChannel(), message: m.GetMessage()}
	}
	return pb, nil
}

// pubInbound orders one source node's batches.
type pubInbound struct {
	inc   uint64
	next  uint64
	held  map[uint64]pubBatch
	timer *time.Timer
}

// Publish receives a batch from another node (nodepb.Node).
func (s rpcServer) Publish(ctx context.Context, req *nodepb.PublishRequest) (*nodepb.PublishResponse, error) {
	from, ok := transport.FromContext(ctx)
	if !ok {
		return &nodepb.PublishResponse{Error: toPB(fmt.Errorf("%w: a batch from an unknown node", errBadPubBatch))}, nil
	}
	pb, err := pubBatchFromPB(req)
	if err != nil {
		return &nodepb.PublishResponse{Error: toPB(err)}, nil
	}
	s.n.receivePubBatch(from, pb)
	return &nodepb.PublishResponse{}, nil
}

// receivePubBatch delivers a batch from node from, or holds it until the
// batches before it arrive or are given up.
func (n *Node) receivePubBatch(from uint64, pb pubBatch) {
	p := &n.pubsub
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.in == nil {
		p.in = map[uint64]*pubInbound{}
	}
	in := p.in[from]
	if in == nil || in.inc != pb.inc {
		// A sender seen for the first time (or restarted): what it calls
		// done came before this node heard from it.
		if in != nil && in.timer != nil {
			in.timer.Stop()
		}
		in = &pubInbound{inc: pb.inc, next: pb.doneBelow, held: map[uint64]pubBatch{}}
		p.in[from] = in
	}
	if pb.seq >= in.next {
		in.held[pb.seq] = pb
		// Batches below what the sender calls done will not come.
		in.next = max(in.next, min(pb.doneBelow, pb.seq))
		p.deliverBatches(in.take())
		if len(in.held) > 0 && in.timer == nil {
			in.timer = time.AfterFunc(pubGapWait, func() { n.skipGap(from, pb.inc) })
		}
	}
}

// take removes the batches that can be delivered now, in order.
func (in *pubInbound) take() []pubBatch {
	var out []pubBatch
	for {
		b, ok := in.held[in.next]
		if !ok {
			break
		}
		delete(in.held, in.next)
		out = append(out, b)
		in.next++
	}
	if len(in.held) == 0 && in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	return out
}

// skipGap gives up on the batches missing before those held: they were
// lost (at most once).
func (n *Node) skipGap(from, inc uint64) {
	p := &n.pubsub
	p.mu.Lock()
	defer p.mu.Unlock()
	in := p.in[from]
	if in == nil || in.inc != inc {
		return
	}
	in.timer = nil
	if len(in.held) == 0 {
		return
	}
	low := ^uint64(0)
	for s := range in.held {
		low = min(low, s)
	}
	in.next = low
	p.deliverBatches(in.take())
	if len(in.held) > 0 {
		in.timer = time.AfterFunc(pubGapWait, func() { n.skipGap(from, inc) })
	}
}
