package transport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meridian-db/meridian/transport/transportpb"
)

// Call sends req to peer to, where Handler.HandleCall serves it, and returns
// the response. The request and the response each cross the network once, so
// on an emulated network a Call costs one round trip. Errors:
//
//   - ErrUnreachable (wrapped) if the peer is unknown, cannot be reached, or
//     either hop is dropped by the network; also wrapping ErrNotSent when
//     the request certainly never reached the peer (request hop dropped,
//     no connection);
//   - *RemoteError if the peer's handler returned an error;
//   - ctx's error (wrapped) if ctx ends first;
//   - ErrClosed once the Transport is closed.
func (t *Transport) Call(ctx context.Context, to uint64, method string, req []byte) ([]byte, error) {
	p, err := t.peer(to)
	if err != nil {
		return nil, err
	}
	return p.call(ctx, method, req)
}

func (p *peer) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	t := p.t
	if len(method) > maxMethodLen {
		return nil, fmt.Errorf("transport: call method name longer than %d bytes", maxMethodLen)
	}
	fail := func(err error) error {
		switch {
		case t.ctx.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return fmt.Errorf("transport: call %s to peer %d: %w", method, p.id, ctx.Err())
		case errors.Is(err, ErrUnreachable) || errors.Is(err, ErrClosed):
			return err
		default:
			return fmt.Errorf("%w: call %s to peer %d: %w", ErrUnreachable, method, p.id, err)
		}
	}
	notSent := func(err error) error {
		err = fail(err)
		if errors.Is(err, ErrUnreachable) {
			return fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return err
	}
	// The request hop.
	if err := t.net.Wait(ctx, t.cfg.NodeID, p.id); err != nil {
		return nil, notSent(err)
	}
	conn, err := p.ready(ctx)
	if err != nil {
		return nil, notSent(err)
	}
	out := new(wrapperspb.BytesValue)
	in := &wrapperspb.BytesValue{Value: encodeCallRequest(method, req)}
	// Counted once handed to gRPC on a ready connection, whatever the
	// outcome.
	p.sent.Add(uint64(len(in.Value)))
	if err := conn.Invoke(p.outgoing(ctx), methodCall, in, out); err != nil {
		if werr := wrongCluster(err); werr != err {
			// Refused before its handler ran.
			return nil, fmt.Errorf("%w: %w: call %s to peer %d: %w", ErrNotSent, ErrUnreachable, method, p.id, werr)
		}
		return nil, fail(err)
	}
	resp, remoteMsg, isRemote, err := decodeCallResponse(out.GetValue())
	if err != nil {
		return nil, fmt.Errorf("transport: call %s to peer %d: %w", method, p.id, err)
	}
	if isRemote {
		return nil, &RemoteError{Method: method, Message: remoteMsg}
	}
	return resp, nil
}

// runPinger probes the peer's round-trip time every PingInterval, starting
// at once.
func (p *peer) runPinger() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-timer.C:
		}
		p.ping()
		timer.Reset(p.t.cfg.PingInterval)
	}
}

// ping measures one round trip. Failures are expected while a peer is down
// or cut off and are only logged at debug level.
func (p *peer) ping() {
	t := p.t
	ctx, cancel := context.WithTimeout(p.ctx, t.cfg.PingInterval+t.cfg.DialTimeout)
	defer cancel()
	// Connect first, so that the sample does not include the handshake.
	if _, err := p.ready(ctx); err != nil {
		return
	}
	start := time.Now()
	if err := p.invoke(ctx, transportpb.Transport_Ping_FullMethodName, &transportpb.Done{}, new(transportpb.Done)); err != nil {
		if p.ctx.Err() == nil {
			t.log.Debug("ping failed", "peer", p.id, "err", err)
		}
		return
	}
	p.addRTT(time.Since(start))
}

func (p *peer) addRTT(d time.Duration) {
	p.mu.Lock()
	back := !p.t.healthySince(p.lastPingOK) // it was not Healthy before this answer
	if len(p.rtts) < rttWindow {
		p.rtts = append(p.rtts, d)
	} else {
		p.rtts[p.rttNext] = d
	}
	p.rttNext = (p.rttNext + 1) % rttWindow
	p.lastPingOK = time.Now()
	p.mu.Unlock()

	t := p.t
	t.rttMu.Lock()
	close(t.rttChanged)
	t.rttChanged = make(chan struct{})
	if back {
		close(t.reachable)
		t.reachable = make(chan struct{})
	}
	t.rttMu.Unlock()
}

// Reachable returns a channel that is closed when a peer that was not
// Healthy (never answered, or not for a while) answers a ping again, say
// once a partition heals or a node restarts. Call it again for the next
// such event.
func (t *Transport) Reachable() <-chan struct{} {
	t.rttMu.Lock()
	defer t.rttMu.Unlock()
	return t.reachable
}

// Healthy reports whether a ping to the peer came back within the last
// three ping intervals: the peer is up and the network between us works.
func (t *Transport) Healthy(to uint64) bool {
	p, err := t.peer(to)
	if err != nil {
		return false
	}
	p.mu.Lock()
	last := p.lastPingOK
	p.mu.Unlock()
	return t.healthySince(last)
}

// healthySince says whether a peer whose last ping came back at last is
// Healthy.
func (t *Transport) healthySince(last time.Time) bool {
	return !last.IsZero() && time.Since(last) < 3*t.cfg.PingInterval+t.cfg.DialTimeout/4
}

// rtt returns the median of the recent samples.
func (p *peer) rtt() (time.Duration, bool) {
	p.mu.Lock()
	samples := slices.Clone(p.rtts)
	p.mu.Unlock()
	if len(samples) == 0 {
		return 0, false
	}
	slices.Sort(samples)
	n := len(samples)
	if n%2 == 1 {
		return samples[n/2], true
	}
	return (samples[n/2-1] + samples[n/2]) / 2, true
}

// RTT returns the smoothed round-trip time to peer to: the median of the
// last few pings, which includes any emulated network delay. ok is false
// until a ping to the peer has succeeded.
func (t *Transport) RTT(to uint64) (rtt time.Duration, ok bool) {
	t.mu.RLock()
	p := t.peers[to]
	t.mu.RUnlock()
	if p == nil {
		return 0, false
	}
	return p.rtt()
}

// RTTs returns the smoothed round-trip time of every peer that has one.
func (t *Transport) RTTs() map[uint64]time.Duration {
	t.mu.RLock()
	peers := slices.Collect(maps.Values(t.peers))
	t.mu.RUnlock()
	out := make(map[uint64]time.Duration, len(peers))
	for _, p := range peers {
		if d, ok := p.rtt(); ok {
			out[p.id] = d
		}
	}
	return out
}

// WaitRTT blocks until every listed peer has at least one RTT sample. It
// returns ctx's error if ctx ends first and ErrClosed if the Transport
// closes. With pinging disabled it only returns through ctx.
func (t *Transport) WaitRTT(ctx context.Context, peers []uint64) error {
	for {
		t.rttMu.Lock()
		changed := t.rttChanged
		t.rttMu.Unlock()
		missing := false
		for _, id := range peers {
			if _, ok := t.RTT(id); !ok {
				missing = true
				break
			}
		}
		if !missing {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("transport: wait for rtt: %w", ctx.Err())
		case <-t.ctx.Done():
			return ErrClosed
		}
	}
}
