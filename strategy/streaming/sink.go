package streaming

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// Sink proposes a stream's batches and resync commands to the
// destination region's group, through one of its replicas: this node's
// if it holds one, else the nearest that answers pings, others after one
// fails.
type Sink struct {
	env   strategy.Env
	inbox *Inbox
	dst   metadata.RegionalGroup

	mu     sync.Mutex
	failed map[uint64]time.Time // replicas whose last call failed, and when
}

// Dst is the destination group.
func (s *Sink) Dst() metadata.RegionalGroup { return s.dst }

// pick returns the replica to ask: healthy before unhealthy, by RTT, and
// those that failed last after the others, the longest ago first.
func (s *Sink) pick() uint64 {
	tr := s.env.Transport()
	s.mu.Lock()
	defer s.mu.Unlock()
	best, bestKey := uint64(0), time.Duration(0)
	for _, id := range s.dst.Replicas {
		key, ok := tr.RTT(id)
		if !ok {
			key = time.Hour
		}
		if !tr.Healthy(id) {
			key += 2 * time.Hour
		}
		if at, ok := s.failed[id]; ok {
			// After every replica that has not failed; of those that
			// have, the one that failed longest ago first.
			key += 24*time.Hour - min(time.Since(at), time.Hour)
		}
		if best == 0 || key < bestKey {
			best, bestKey = id, key
		}
	}
	return best
}

// rtt is the round trip to the replica the sink would ask now (0 if
// unknown).
func (s *Sink) rtt() time.Duration {
	d, _ := s.env.Transport().RTT(s.pick())
	return d
}

// answered records how a replica's call went.
func (s *Sink) answered(id uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.failed, id)
		return
	}
	if s.failed == nil {
		s.failed = map[uint64]time.Time{}
	}
	s.failed[id] = time.Now()
}

// Send implements stream.Sink.
func (s *Sink) Send(ctx context.Context, b stream.Batch) (stream.Ack, error) {
	if slices.Contains(s.dst.Replicas, s.env.ID()) {
		if at, ok := s.inbox.Quiet(s.dst.Group, b); ok {
			return stream.Ack{Applied: at, Epoch: b.Epoch}, nil
		}
		defer s.inbox.Order(ctx, s.dst.Group, b)()
	}
	enc, err := b.Encode()
	if err != nil {
		return stream.Ack{}, err
	}
	res, err := s.propose(ctx, kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}.Encode())
	if err != nil {
		return stream.Ack{}, err
	}
	return stream.Ack{Applied: uint64(res.N), Epoch: b.Epoch}, res.Err
}

// chunkTimeout bounds the proposal of one resync chunk or merge (a stream
// batch is bounded by its Sender, which adapts the bound to how fast the
// destination answers).
const chunkTimeout = 10 * time.Second

// ProposeChunk runs a resync's command through the destination group,
// within chunkTimeout + RTT, and returns its result.
func (s *Sink) ProposeChunk(ctx context.Context, cmd []byte) (kv.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, chunkTimeout+s.rtt())
	defer cancel()
	return s.propose(ctx, cmd)
}

// propose runs a command through the destination group; ctx bounds it. A
// failure of the replica asked (unreachable, no answer, no leader on its
// side) makes the next call ask another.
func (s *Sink) propose(ctx context.Context, cmd []byte) (kv.Result, error) {
	var p strategy.Proposal
	var err error
	if slices.Contains(s.dst.Replicas, s.env.ID()) {
		p, err = s.env.Propose(ctx, s.dst.Group, cmd)
	} else {
		id := s.pick()
		if id == 0 {
			return kv.Result{}, strategy.ErrNoReplica
		}
		p, err = s.env.ProposeVia(ctx, id, s.dst.Group, cmd)
		s.answered(id, err)
	}
	if err != nil {
		return kv.Result{}, err
	}
	res, ok := p.Value.(kv.Result)
	if !ok {
		// Never an acknowledgement of nothing: the sender would take it
		// for the destination's position.
		return kv.Result{}, fmt.Errorf("node: group %d answered a stream command with %T, not its result", s.dst.Group, p.Value)
	}
	return res, nil
}
