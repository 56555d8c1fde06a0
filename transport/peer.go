package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/transport/transportpb"
)

const (
	// redialBackoffMin and redialBackoffMax bound the pause before
	// redialling a peer whose connection failed.
	redialBackoffMin = 50 * time.Millisecond
	redialBackoffMax = time.Second
	// keepaliveTime and keepaliveTimeout detect dead connections.
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
	// handshakeTimeout bounds a new connection's handshake (TLS
	// included) on the server side.
	handshakeTimeout = 10 * time.Second
	// maxFramesInFlight bounds the batch frames of one peer that are inside
	// the netsim.Network (delayed or being written). When it is reached the
	// sender stops draining the queue, so the queue bound applies.
	maxFramesInFlight = 64
	// rttWindow is the number of recent ping samples the RTT median uses.
	rttWindow = 5
)

// peer is the sending side of the connection to one peer.
type peer struct {
	t  *Transport
	id uint64

	queue    chan Envelope
	inflight chan struct{}  // semaphore of maxFramesInFlight
	sent     *atomic.Uint64 // bytes sent to the peer, shared with Transport.sent

	// ctx is cancelled when the peer is removed or the Transport closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	info         Peer
	conn         *grpc.ClientConn
	stream       grpc.ClientStream // the raft batch stream, if open
	streamCancel context.CancelFunc
	failures     int       // consecutive failed dials
	retryAt      time.Time // no redial before this
	rtts         []time.Duration
	lastPingOK   time.Time // when a ping last came back
	rttNext      int
}

func newPeer(t *Transport, info Peer) *peer {
	p := &peer{
		t:        t,
		id:       info.ID,
		info:     info,
		queue:    make(chan Envelope, t.cfg.PeerQueueLen),
		inflight: make(chan struct{}, maxFramesInFlight),
		sent:     t.sentCounter(info.ID),
	}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	return p
}

func (p *peer) peerInfo() Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info
}

// update applies a new Peer record. A new address drops the connection and
// the RTT samples and allows an immediate dial.
func (p *peer) update(info Peer) {
	p.mu.Lock()
	var conn *grpc.ClientConn
	if info.Addr != p.info.Addr {
		conn = p.resetConnLocked()
		p.failures = 0
		p.retryAt = time.Time{}
		p.rtts = nil
		p.rttNext = 0
	}
	p.info = info
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// shutdown stops the peer's goroutines and closes its connection.
func (p *peer) shutdown() {
	p.cancel()
	p.mu.Lock()
	conn := p.resetConnLocked()
	p.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// resetConnLocked forgets the connection and its stream and returns the
// connection for the caller to close outside the lock.
func (p *peer) resetConnLocked() *grpc.ClientConn {
	if p.streamCancel != nil {
		p.streamCancel()
	}
	p.stream, p.streamCancel = nil, nil
	conn := p.conn
	p.conn = nil
	return conn
}

// outgoing adds the identity metadata to ctx: this node, the peer it
// means to reach, and their cluster.
func (p *peer) outgoing(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx,
		mdFrom, strconv.FormatUint(p.t.cfg.NodeID, 10),
		mdTo, strconv.FormatUint(p.id, 10),
		mdCluster, p.t.cfg.Cluster,
		mdVersion, WireVersion)
}

// clientConn returns the peer's connection, creating it if needed, unless the
// peer is backing off after failed dials.
func (p *peer) clientConn() (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		if p.t.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: peer %d was removed", ErrUnreachable, p.id)
	}
	if p.conn != nil {
		return p.conn, nil
	}
	if now := time.Now(); now.Before(p.retryAt) {
		return nil, fmt.Errorf("%w: peer %d at %s: redial in %v after %d failures",
			ErrUnreachable, p.id, p.info.Addr, p.retryAt.Sub(now).Round(time.Millisecond), p.failures)
	}
	conn, err := grpc.NewClient("passthrough:///"+p.info.Addr, p.t.dialOptions(p.id)...)
	if err != nil {
		return nil, fmt.Errorf("%w: peer %d at %s: %w", ErrUnreachable, p.id, p.info.Addr, err)
	}
	p.conn = conn
	return conn, nil
}

// ready returns a connection to the peer in the READY state, dialling if
// needed for at most DialTimeout.
func (p *peer) ready(ctx context.Context) (*grpc.ClientConn, error) {
	conn, err := p.clientConn()
	if err != nil {
		return nil, err
	}
	if conn.GetState() == connectivity.Ready {
		return conn, nil
	}
	dctx, cancel := context.WithTimeout(ctx, p.t.cfg.DialTimeout)
	defer cancel()
	conn.Connect()
	for {
		switch s := conn.GetState(); s {
		case connectivity.Ready:
			p.dialSucceeded()
			return conn, nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			err := fmt.Errorf("%w: peer %d: connection %s", ErrUnreachable, p.id, s)
			p.connFailed(conn, err)
			return nil, err
		default:
			if !conn.WaitForStateChange(dctx, s) {
				if err := ctx.Err(); err != nil {
					if p.ctx.Err() != nil && p.t.ctx.Err() != nil {
						return nil, ErrClosed
					}
					return nil, err
				}
				err := fmt.Errorf("%w: peer %d: no connection within %v", ErrUnreachable, p.id, p.t.cfg.DialTimeout)
				p.connFailed(conn, err)
				return nil, err
			}
		}
	}
}

func (p *peer) dialSucceeded() {
	p.mu.Lock()
	failures := p.failures
	p.failures = 0
	p.retryAt = time.Time{}
	addr := p.info.Addr
	p.mu.Unlock()
	if failures > 0 {
		p.t.log.Info("peer reachable again", "peer", p.id, "addr", addr, "failed_dials", failures)
	}
}

// connFailed drops conn (if it is still the peer's connection) and schedules
// the next dial with exponential backoff. Only the first failure of a run is
// logged above debug level.
func (p *peer) connFailed(conn *grpc.ClientConn, cause error) {
	p.mu.Lock()
	if p.conn != conn {
		p.mu.Unlock()
		return
	}
	p.resetConnLocked()
	p.failures++
	d := min(redialBackoffMin<<min(p.failures-1, 16), redialBackoffMax)
	d = d/2 + rand.N(d/2+1) // jitter in [d/2, d]
	p.retryAt = time.Now().Add(d)
	failures := p.failures
	addr := p.info.Addr
	p.mu.Unlock()
	conn.Close()
	if p.ctx.Err() != nil {
		return
	}
	if failures == 1 {
		p.t.log.Warn("peer unreachable", "peer", p.id, "addr", addr, "err", cause)
	} else {
		p.t.log.Debug("peer still unreachable", "peer", p.id, "addr", addr, "failures", failures, "err", cause)
	}
}

// raftStream returns the open raft batch stream, opening one if needed.
func (p *peer) raftStream() (grpc.ClientStream, error) {
	p.mu.Lock()
	s := p.stream
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	conn, err := p.ready(p.ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(p.outgoing(p.ctx))
	s, err = conn.NewStream(ctx, &transportpb.Transport_ServiceDesc.Streams[0], transportpb.Transport_Raft_FullMethodName)
	if err != nil {
		cancel()
		err = fmt.Errorf("%w: peer %d: open raft stream: %w", ErrUnreachable, p.id, err)
		p.connFailed(conn, err)
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != conn || p.ctx.Err() != nil {
		cancel() // the connection was reset meanwhile
		return nil, fmt.Errorf("%w: peer %d: connection reset", ErrUnreachable, p.id)
	}
	p.stream, p.streamCancel = s, cancel
	return s, nil
}

// streamFailed handles a write error on the raft stream s: the stream and its
// connection are dropped and the next frame redials.
func (p *peer) streamFailed(s grpc.ClientStream, err error) {
	if errors.Is(err, io.EOF) {
		// The server ended the stream; its status says why.
		if rerr := s.RecvMsg(new(transportpb.Done)); rerr != nil && !errors.Is(rerr, io.EOF) {
			if refused := refusal(rerr); refused != nil {
				rerr = refused
			}
			err = rerr
		}
	}
	p.mu.Lock()
	conn := p.conn
	ours := p.stream == s
	p.mu.Unlock()
	if ours && conn != nil {
		p.connFailed(conn, fmt.Errorf("raft stream: %w", err))
	}
}

// runSender drains the queue into batch frames and hands each one to the
// network until the peer is shut down.
func (p *peer) runSender() {
	t := p.t
	var carry *Envelope // a message that did not fit into the previous frame
	for {
		var first Envelope
		if carry != nil {
			first, carry = *carry, nil
		} else {
			select {
			case <-p.ctx.Done():
				return
			case first = <-p.queue:
			}
		}
		// Wait for room in the pipe before draining: meanwhile the queue
		// absorbs new messages (and, once full, sheds them), and the frame
		// picks up everything that accumulated.
		select {
		case p.inflight <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		release := sync.OnceFunc(func() { <-p.inflight })

		batch := []Envelope{first}
		size := proto.Size(first.Msg) + envelopeOverhead
	drain:
		for size < t.cfg.MaxBatchBytes {
			select {
			case e := <-p.queue:
				s := proto.Size(e.Msg) + envelopeOverhead
				if size+s > t.cfg.MaxBatchBytes {
					carry = &e
					break drain
				}
				batch = append(batch, e)
				size += s
			default:
				break drain
			}
		}

		groups := distinctGroups(batch)
		frame, err := appendBatch(make([]byte, 0, size+16), batch)
		if err != nil {
			release()
			t.log.Error("cannot encode batch", "peer", p.id, "err", err)
			t.reportUnreachable(groups, p.id)
			continue
		}
		// The network may deliver a frame twice (emulated duplication), but
		// its slot is returned once.
		deliver := func() {
			defer release()
			p.deliverFrame(frame, groups)
		}
		dropped := func() {
			release()
			if !t.net.Reachable(t.cfg.NodeID, p.id) {
				t.reportUnreachable(groups, p.id)
			}
		}
		if !t.net.SendNotify(t.cfg.NodeID, p.id, deliver, dropped) {
			release()
			if !t.net.Reachable(t.cfg.NodeID, p.id) {
				t.reportUnreachable(groups, p.id)
			}
		}
	}
}

// deliverFrame writes one batch frame on the raft stream. It runs on the
// netsim link goroutine (or the sender goroutine on the identity network).
func (p *peer) deliverFrame(frame []byte, groups []uint64) {
	if p.ctx.Err() != nil {
		return
	}
	s, err := p.raftStream()
	if err == nil {
		if err = s.SendMsg(&transportpb.Frame{Data: frame}); err != nil {
			p.streamFailed(s, err)
		} else {
			p.sent.Add(uint64(len(frame)))
		}
	}
	if err != nil && p.ctx.Err() == nil {
		p.t.reportUnreachable(groups, p.id)
	}
}

// distinctGroups lists the groups present in batch, sorted.
func distinctGroups(batch []Envelope) []uint64 {
	groups := make([]uint64, len(batch))
	for i, e := range batch {
		groups[i] = e.Group
	}
	slices.Sort(groups)
	return slices.Compact(groups)
}
