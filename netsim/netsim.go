package netsim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrDropped is returned by Wait (wrapped) when the emulated message was lost,
// its link was cut, or the Network was closed.
var ErrDropped = errors.New("netsim: message dropped")

// ErrInvalidConfig is wrapped by the errors Config.Validate and New return.
var ErrInvalidConfig = errors.New("netsim: invalid config")

// linkIdleTimeout is how long a link goroutine lingers without traffic before
// it exits. A later Send on the link starts a new one.
const linkIdleTimeout = time.Second

// Config describes the emulated network. The zero value is a network without
// delay, loss or duplication in which only partitions have an effect.
type Config struct {
	// Matrix holds the round-trip times between regions. nil means no
	// inter-region delay. The Network keeps its own copy.
	Matrix Matrix
	// IntraRegionRTT is the round-trip time between two nodes of the same
	// region, and between nodes of regions the Matrix does not relate.
	IntraRegionRTT time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) to every
	// message. Messages on one link are still delivered in send order.
	Jitter time.Duration
	// LossRate is the probability, in [0, 1), that a message is dropped.
	LossRate float64
	// DuplicateRate is the probability, in [0, 1], that a delivered message
	// is delivered a second time right after the first.
	DuplicateRate float64
	// Seed seeds the random source used for jitter, loss and duplication.
	// 0 picks a time-based seed.
	Seed int64
}

// Validate reports whether c is usable, with an error wrapping
// ErrInvalidConfig if not.
func (c Config) Validate() error {
	switch {
	case c.IntraRegionRTT < 0:
		return fmt.Errorf("%w: negative IntraRegionRTT %v", ErrInvalidConfig, c.IntraRegionRTT)
	case c.Jitter < 0:
		return fmt.Errorf("%w: negative Jitter %v", ErrInvalidConfig, c.Jitter)
	case !(c.LossRate >= 0 && c.LossRate < 1):
		return fmt.Errorf("%w: LossRate %v not in [0, 1)", ErrInvalidConfig, c.LossRate)
	case !(c.DuplicateRate >= 0 && c.DuplicateRate <= 1):
		return fmt.Errorf("%w: DuplicateRate %v not in [0, 1]", ErrInvalidConfig, c.DuplicateRate)
	}
	for a, row := range c.Matrix {
		for b, d := range row {
			if d < 0 {
				return fmt.Errorf("%w: negative rtt %q->%q in Matrix", ErrInvalidConfig, a, b)
			}
		}
	}
	return nil
}

// Stats are cumulative message counters. Every message passed to Send or
// SendNotify and every hop passed to Wait counts once in Sent and, once it
// has been decided, once in either Delivered or Dropped. A message counts as
// delivered just before its delivery function is called. Duplicated counts the
// extra copies delivered on top of Delivered.
type Stats struct {
	Sent       uint64
	Delivered  uint64
	Dropped    uint64
	Duplicated uint64
}

type linkKey struct{ from, to uint64 }

type message struct {
	due     time.Time
	deliver func()
	dropped func() // may be nil
	dup     bool
}

// link is the FIFO pipe for one direction between two nodes. Its fields are
// guarded by Network.mu.
type link struct {
	key     linkKey
	queue   []message
	lastDue time.Time
	running bool          // a goroutine is serving the link
	wake    chan struct{} // capacity 1; nudges an idle goroutine
}

// Network is an emulated network between nodes identified by uint64 ids. It
// is safe for concurrent use.
type Network struct {
	identity bool
	base     Config // as configured, restored by the "reset" fault

	closed atomic.Bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	sent, delivered, dropped, duplicated atomic.Uint64

	mu         sync.Mutex
	rng        *rand.Rand
	matrix     Matrix
	intraRTT   time.Duration
	jitter     time.Duration
	lossRate   float64
	pairLoss   map[regionPair]float64 // loss between two regions, on top of lossRate
	dupRate    float64
	nodes      map[uint64]string
	cuts       map[linkKey]struct{}
	isolated   map[uint64]struct{}
	cutRegions map[string]struct{}
	links      map[linkKey]*link
}

// New returns a Network configured by cfg.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := uint64(cfg.Seed)
	if cfg.Seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	n := newNetwork(false)
	n.base = cfg
	n.base.Matrix = cfg.Matrix.Clone()
	n.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n.matrix = cfg.Matrix.Clone()
	if n.matrix == nil {
		n.matrix = Matrix{}
	}
	n.intraRTT = cfg.IntraRegionRTT
	n.jitter = cfg.Jitter
	n.lossRate = cfg.LossRate
	n.dupRate = cfg.DuplicateRate
	return n, nil
}

// Identity returns the production Network: no delay, no loss, no
// duplication, never partitioned. Send runs deliver synchronously in the
// caller's goroutine and Wait returns at once. Partition and Set* methods are
// no-ops on it.
func Identity() *Network {
	return newNetwork(true)
}

func newNetwork(identity bool) *Network {
	return &Network{
		identity:   identity,
		done:       make(chan struct{}),
		nodes:      map[uint64]string{},
		cuts:       map[linkKey]struct{}{},
		isolated:   map[uint64]struct{}{},
		cutRegions: map[string]struct{}{},
		pairLoss:   map[regionPair]float64{},
		links:      map[linkKey]*link{},
	}
}

// AddNode records that node id lives in region. Calling it again for the same
// id updates the region.
func (n *Network) AddNode(id uint64, region string) {
	n.mu.Lock()
	n.nodes[id] = region
	n.mu.Unlock()
}

// Region returns the region of node id, and false if the node is unknown.
func (n *Network) Region(id uint64) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.nodes[id]
	return r, ok
}

// OneWay returns the one-way delay from node from to node to, without jitter:
// half the round-trip time of their regions. It is 0 when either node is
// unknown, when from == to, and on the identity Network.
func (n *Network) OneWay(from, to uint64) time.Duration {
	if n.identity {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.oneWayLocked(from, to)
}

func (n *Network) oneWayLocked(from, to uint64) time.Duration {
	if from == to {
		return 0
	}
	ra, ok1 := n.nodes[from]
	rb, ok2 := n.nodes[to]
	if !ok1 || !ok2 {
		return 0
	}
	rtt, ok := n.matrix.RTT(ra, rb)
	if ra == rb || !ok {
		rtt = n.intraRTT
	}
	return rtt / 2
}

func (n *Network) jitterLocked() time.Duration {
	if n.jitter <= 0 {
		return 0
	}
	return time.Duration(n.rng.Int64N(int64(n.jitter)))
}

func (n *Network) lostLocked(from, to uint64) bool {
	if n.lossRate > 0 && n.rng.Float64() < n.lossRate {
		return true
	}
	if len(n.pairLoss) == 0 {
		return false
	}
	p := n.pairLoss[pairOf(n.nodes[from], n.nodes[to])]
	return p > 0 && n.rng.Float64() < p
}

// Send schedules deliver on the FIFO link from->to after the link's one-way
// delay plus jitter and reports whether the message was accepted. It returns
// false, and deliver is never called, if the link is cut, the message is
// lost, or the Network is closed. A message whose link is cut by the time it
// falls due is dropped as well.
//
// deliver runs on the link's goroutine, one message at a time in send order;
// if it blocks, later messages on the link wait, like data behind a slow
// reader on a real connection. On the identity Network deliver runs in the
// caller's goroutine before Send returns. deliver must not call Close.
func (n *Network) Send(from, to uint64, deliver func()) bool {
	return n.send(from, to, deliver, nil)
}

// SendNotify is Send with a notification for late drops: if the message is
// accepted (SendNotify returns true) but later dropped, because its link was
// cut when it fell due or because the Network was closed, dropped is called
// instead of deliver, in the message's place on the link. Exactly one of
// deliver and dropped runs for an accepted message; neither runs when
// SendNotify returns false. dropped may be nil.
func (n *Network) SendNotify(from, to uint64, deliver, dropped func()) bool {
	return n.send(from, to, deliver, dropped)
}

func (n *Network) send(from, to uint64, deliver, dropped func()) bool {
	n.sent.Add(1)
	if n.identity {
		if n.closed.Load() {
			n.dropped.Add(1)
			return false
		}
		n.delivered.Add(1)
		deliver()
		return true
	}

	n.mu.Lock()
	if n.closed.Load() || !n.reachableLocked(from, to) || n.lostLocked(from, to) {
		n.mu.Unlock()
		n.dropped.Add(1)
		return false
	}
	delay := n.oneWayLocked(from, to) + n.jitterLocked()
	dup := n.dupRate > 0 && n.rng.Float64() < n.dupRate

	key := linkKey{from, to}
	l := n.links[key]
	if l == nil {
		l = &link{key: key, wake: make(chan struct{}, 1)}
		n.links[key] = l
	}
	due := time.Now().Add(delay)
	if due.Before(l.lastDue) {
		due = l.lastDue // never overtake the message ahead
	}
	l.lastDue = due
	l.queue = append(l.queue, message{due: due, deliver: deliver, dropped: dropped, dup: dup})
	if !l.running {
		l.running = true
		n.wg.Add(1)
		go n.runLink(l)
	} else if len(l.queue) == 1 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	n.mu.Unlock()
	return true
}

// runLink delivers the messages of one link in order, each when it falls due.
// It exits when the Network closes or after the link has been idle for
// linkIdleTimeout.
func (n *Network) runLink(l *link) {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		n.mu.Lock()
		if n.closed.Load() {
			pending := l.queue
			l.queue = nil
			l.running = false
			n.mu.Unlock()
			for _, m := range pending {
				n.drop(m)
			}
			return
		}
		if len(l.queue) == 0 {
			n.mu.Unlock()
			timer.Reset(linkIdleTimeout)
			select {
			case <-l.wake:
			case <-n.done:
			case <-timer.C:
				n.mu.Lock()
				if len(l.queue) == 0 && !n.closed.Load() {
					l.running = false
					n.mu.Unlock()
					return
				}
				n.mu.Unlock()
			}
			timer.Stop()
			continue
		}
		m := l.queue[0]
		if wait := time.Until(m.due); wait > 0 {
			n.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-n.done:
			}
			timer.Stop()
			continue
		}
		l.queue[0] = message{}
		l.queue = l.queue[1:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
		ok := n.reachableLocked(l.key.from, l.key.to)
		n.mu.Unlock()

		if !ok {
			n.drop(m)
			continue
		}
		n.delivered.Add(1)
		m.deliver()
		if m.dup {
			n.duplicated.Add(1)
			m.deliver()
		}
	}
}

func (n *Network) drop(m message) {
	n.dropped.Add(1)
	if m.dropped != nil {
		m.dropped()
	}
}

// Wait sleeps for one one-way delay from->to plus jitter, emulating a single
// hop of a request or response. It returns an error wrapping ErrDropped if the
// link is cut (at the start or at the end of the hop), the hop is lost, or the
// Network is closed, and ctx's error if ctx ends first. Wait is not ordered
// with the messages of Send.
func (n *Network) Wait(ctx context.Context, from, to uint64) error {
	n.sent.Add(1)
	if err := ctx.Err(); err != nil {
		n.dropped.Add(1)
		return err
	}
	if n.closed.Load() {
		n.dropped.Add(1)
		return fmt.Errorf("%w: network closed", ErrDropped)
	}
	if n.identity {
		n.delivered.Add(1)
		return nil
	}

	n.mu.Lock()
	if !n.reachableLocked(from, to) {
		n.mu.Unlock()
		n.dropped.Add(1)
		return fmt.Errorf("%w: link %d->%d is cut", ErrDropped, from, to)
	}
	if n.lostLocked(from, to) {
		n.mu.Unlock()
		n.dropped.Add(1)
		return fmt.Errorf("%w: lost on link %d->%d", ErrDropped, from, to)
	}
	delay := n.oneWayLocked(from, to) + n.jitterLocked()
	n.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			n.dropped.Add(1)
			return ctx.Err()
		case <-n.done:
			n.dropped.Add(1)
			return fmt.Errorf("%w: network closed", ErrDropped)
		}
	}
	n.mu.Lock()
	ok := n.reachableLocked(from, to)
	n.mu.Unlock()
	if !ok || n.closed.Load() {
		n.dropped.Add(1)
		return fmt.Errorf("%w: link %d->%d cut in flight", ErrDropped, from, to)
	}
	n.delivered.Add(1)
	return nil
}

// Reachable reports whether a message sent now from->to would pass the
// partition rules (loss aside). A node always reaches itself.
func (n *Network) Reachable(from, to uint64) bool {
	if n.identity {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachableLocked(from, to)
}

func (n *Network) reachableLocked(from, to uint64) bool {
	if from == to {
		return true
	}
	if _, cut := n.cuts[linkKey{from, to}]; cut {
		return false
	}
	if _, iso := n.isolated[from]; iso {
		return false
	}
	if _, iso := n.isolated[to]; iso {
		return false
	}
	if len(n.cutRegions) > 0 {
		ra, okA := n.nodes[from]
		rb, okB := n.nodes[to]
		if okA && okB && ra == rb {
			return true
		}
		if _, cut := n.cutRegions[ra]; okA && cut {
			return false
		}
		if _, cut := n.cutRegions[rb]; okB && cut {
			return false
		}
	}
	return true
}

// The partition methods below add to the current set of cuts; Heal removes
// them all. They are no-ops on the identity Network.

// BlockLink cuts the directed link from->to.
func (n *Network) BlockLink(from, to uint64) {
	n.update(func() { n.cutLocked(from, to) })
}

// UnblockLink removes a cut of the directed link from->to made by BlockLink,
// Split, Bridge or Ring. It does not undo Isolate or CutRegion.
func (n *Network) UnblockLink(from, to uint64) {
	n.update(func() { delete(n.cuts, linkKey{from, to}) })
}

// Isolate cuts node id from every other node in both directions, including
// nodes added later.
func (n *Network) Isolate(id uint64) {
	n.update(func() { n.isolated[id] = struct{}{} })
}

// CutRegion cuts every node of region from every node outside it, in both
// directions. Membership is evaluated when a message is sent and when it
// falls due, so nodes added to (or moved into) the region later are cut too.
func (n *Network) CutRegion(region string) {
	n.update(func() { n.cutRegions[region] = struct{}{} })
}

// Split cuts every link between a node of a and a node of b, in both
// directions. Links inside a and inside b are left alone.
func (n *Network) Split(a, b []uint64) {
	n.update(func() { n.splitLocked(a, b) })
}

// Bridge cuts every link between a and b, in both directions, while leaving
// the links of bridge alone, so that bridge is the only node that talks to
// both sides. bridge is ignored if it appears in a or b.
func (n *Network) Bridge(a, b []uint64, bridge uint64) {
	without := func(ids []uint64) []uint64 {
		out := make([]uint64, 0, len(ids))
		for _, id := range ids {
			if id != bridge {
				out = append(out, id)
			}
		}
		return out
	}
	n.update(func() { n.splitLocked(without(a), without(b)) })
}

// Ring arranges ids in a ring: each node keeps its links to its two
// neighbours in the order given (the last neighbours the first) and every
// other link among ids is cut in both directions. With five nodes every node
// sees a majority, yet no two majorities are the same.
func (n *Network) Ring(ids []uint64) {
	n.update(func() {
		k := len(ids)
		for i := 0; i < k; i++ {
			for j := i + 1; j < k; j++ {
				if j == i+1 || (i == 0 && j == k-1) {
					continue
				}
				n.cutLocked(ids[i], ids[j])
				n.cutLocked(ids[j], ids[i])
			}
		}
	})
}

// Heal removes every cut.
func (n *Network) Heal() {
	n.update(func() {
		clear(n.cuts)
		clear(n.isolated)
		clear(n.cutRegions)
	})
}

func (n *Network) update(f func()) {
	if n.identity {
		return
	}
	n.mu.Lock()
	f()
	n.mu.Unlock()
}

func (n *Network) cutLocked(from, to uint64) {
	if from != to {
		n.cuts[linkKey{from, to}] = struct{}{}
	}
}

func (n *Network) splitLocked(a, b []uint64) {
	for _, x := range a {
		for _, y := range b {
			n.cutLocked(x, y)
			n.cutLocked(y, x)
		}
	}
}

// SetLossRate changes the loss probability; p is clamped to [0, 1).
func (n *Network) SetLossRate(p float64) {
	switch {
	case !(p >= 0):
		p = 0
	case p >= 1:
		p = math.Nextafter(1, 0)
	}
	n.update(func() { n.lossRate = p })
}

// SetDuplicateRate changes the duplication probability; p is clamped to
// [0, 1].
func (n *Network) SetDuplicateRate(p float64) {
	switch {
	case !(p >= 0):
		p = 0
	case p > 1:
		p = 1
	}
	n.update(func() { n.dupRate = p })
}

// SetJitter changes the jitter bound; negative values mean no jitter.
func (n *Network) SetJitter(d time.Duration) {
	n.update(func() { n.jitter = max(d, 0) })
}

// SetRTT sets the round-trip time between two different regions, in both
// directions; negative values count as 0. Messages already in flight keep
// their delay, and because links are FIFO a shorter RTT only takes effect on a
// link once the slower messages ahead have been delivered. SetRTT with
// regionA == regionB is a no-op (see Config.IntraRegionRTT).
func (n *Network) SetRTT(regionA, regionB string, rtt time.Duration) {
	if regionA == regionB {
		return
	}
	n.update(func() { n.matrix.set(regionA, regionB, max(rtt, 0)) })
}

// Stats returns a snapshot of the message counters.
func (n *Network) Stats() Stats {
	return Stats{
		Sent:       n.sent.Load(),
		Delivered:  n.delivered.Load(),
		Dropped:    n.dropped.Load(),
		Duplicated: n.duplicated.Load(),
	}
}

// Close stops the link goroutines, dropping every message still in flight
// (calling its dropped function, if any), and waits for them to exit,
// including deliveries in progress. Later sends are dropped and later Waits
// fail. Close is idempotent and must not be called from a delivery function.
func (n *Network) Close() {
	n.mu.Lock()
	if n.closed.Load() {
		n.mu.Unlock()
		return
	}
	n.closed.Store(true)
	close(n.done)
	n.mu.Unlock()
	n.wg.Wait()
}
