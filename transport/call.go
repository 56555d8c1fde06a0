package transport

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/meridian-db/meridian/transport/transportpb"
)

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
