package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/stream"
)

// Streams of async keyspaces.
//
// The leader of a shard's primary (home-region) group runs one stream
// sender per other region of the keyspace. A sender reads the group's
// applied log (raftgroup.ReadCommitted) from the destination's
// acknowledged position and proposes each batch, as one OpStreamApply
// command, to the destination region's group, whose state machine applies
// it exactly once (stream.Apply keeps the cursor in the same batch as the
// data). The source keeps its log from the slowest destination's
// acknowledged position on (RetainFrom): a lagging region's backlog stays
// on disk at the source. Senders stop when this node loses leadership.
//
// Not done yet (issue 4): epochs, switchover and failover, the RPO budget,
// shipping a snapshot to a destination whose backlog was truncated, and
// closed timestamps (heartbeats carry none yet).

// streamPollInterval is how often the node looks for streams to start or
// stop, and how often a sender looks for new entries when idle.
const streamPollInterval = 20 * time.Millisecond

type streamKey struct{ src, dst uint64 }

type runningStream struct {
	sender *stream.Sender
	cancel context.CancelFunc
	done   chan struct{}
}

// StreamStatus describes one stream this node sends.
type StreamStatus struct {
	Keyspace   string `json:"keyspace"`
	Shard      int    `json:"shard"`
	FromRegion string `json:"from_region"`
	ToRegion   string `json:"to_region"`
	Acked      uint64 `json:"acked"`
	Applied    uint64 `json:"applied"`
	LagEntries uint64 `json:"lag_entries"`
	LagMS      int64  `json:"lag_ms"`
}

type streamSet struct {
	mu      sync.Mutex
	running map[streamKey]*runningStream
	info    map[streamKey]StreamStatus
}

func (n *Node) streamLoop() {
	defer n.wg.Done()
	set := n.streams
	t := time.NewTicker(streamPollInterval * 5)
	defer t.Stop()
	defer set.stopAll()
	for {
		n.reconcileStreams(set)
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

func (s *streamSet) stopAll() {
	s.mu.Lock()
	running := s.running
	s.running = map[streamKey]*runningStream{}
	s.mu.Unlock()
	for _, r := range running {
		r.cancel()
		<-r.done
	}
}

// reconcileStreams starts the senders this node should run and stops the
// others, and keeps each source's log from the slowest stream on.
func (n *Node) reconcileStreams(set *streamSet) {
	want := map[streamKey]StreamStatus{}
	dests := map[streamKey]metadata.RegionalGroup{}
	for _, ks := range n.meta.State().Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			if gs, ok := n.host.Status(sh.Group); !ok || gs.Lead != n.cfg.ID || gs.RaftState.String() != "StateLeader" {
				continue
			}
			for _, rg := range sh.Regional {
				if rg.Group == sh.Group {
					continue
				}
				k := streamKey{src: sh.Group, dst: rg.Group}
				want[k] = StreamStatus{Keyspace: ks.Name, Shard: sh.Index, FromRegion: ks.HomeRegion, ToRegion: rg.Region}
				dests[k] = rg
			}
		}
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	for k, r := range set.running {
		if _, ok := want[k]; !ok {
			r.cancel()
			<-r.done
			delete(set.running, k)
			delete(set.info, k)
		}
	}
	minAcked := map[uint64]uint64{}
	for k, info := range want {
		r := set.running[k]
		if r == nil {
			var err error
			if r, err = n.startStream(k, dests[k]); err != nil {
				n.log.Error("cannot start stream", "from", k.src, "to", k.dst, "err", err)
				continue
			}
			set.running[k] = r
		}
		st := r.sender.Stats()
		info.Acked, info.Applied, info.LagEntries, info.LagMS = st.Acked, st.Applied, st.LagEntries, st.LagMS
		set.info[k] = info
		if cur, ok := minAcked[k.src]; !ok || st.Acked < cur {
			minAcked[k.src] = st.Acked
		}
	}
	for src, acked := range minAcked {
		_ = n.host.RetainFrom(src, max(acked, 1))
	}
}

func (n *Node) startStream(k streamKey, dst metadata.RegionalGroup) (*runningStream, error) {
	s, err := stream.NewSender(stream.Config{
		Stream: k.src, BatchInterval: 2 * time.Millisecond, MaxBatchBytes: 1 << 20, MaxInFlight: 4,
		HeartbeatInterval: 500 * time.Millisecond, RetryBackoff: 50 * time.Millisecond, Logger: n.log,
	}, &groupLog{n: n, group: k.src}, &regionSink{n: n, dst: dst})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningStream{sender: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("stream stopped", "from", k.src, "to", k.dst, "err", err)
		}
	}()
	return r, nil
}

// Streams reports the streams this node is sending.
func (n *Node) Streams() []StreamStatus {
	set := n.streams
	set.mu.Lock()
	defer set.mu.Unlock()
	out := make([]StreamStatus, 0, len(set.info))
	for _, s := range set.info {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b StreamStatus) int {
		return cmp.Or(strings.Compare(a.Keyspace, b.Keyspace), cmp.Compare(a.Shard, b.Shard), strings.Compare(a.ToRegion, b.ToRegion))
	})
	return out
}

// groupLog is a source group's applied log, as a stream reads it.
type groupLog struct {
	n     *Node
	group uint64
}

func (l *groupLog) Applied() (uint64, int64) {
	st, _ := l.n.host.Status(l.group)
	return st.Applied, 0
}

func (l *groupLog) Read(from, to uint64, maxBytes int) ([]stream.Change, error) {
	ents, err := l.n.host.ReadCommitted(l.group, from, to, maxBytes)
	if errors.Is(err, raftgroup.ErrCompacted) {
		return nil, fmt.Errorf("%w: %w", stream.ErrCompacted, err)
	}
	if err != nil {
		return nil, err
	}
	out := make([]stream.Change, len(ents))
	for i, e := range ents {
		out[i] = stream.Change{Index: e.Index, Data: e.Command}
		if c, err := kv.DecodeCommand(e.Command); err == nil && len(e.Command) > 0 {
			out[i].TimeMS = c.NowMS
		}
	}
	return out, nil
}

// Notify ticks while the sender runs: the host has no applied-index
// notification, and a short poll keeps the added lag to a few ms.
func (l *groupLog) Notify() <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		t := time.NewTicker(streamPollInterval / 4)
		defer t.Stop()
		for {
			select {
			case <-l.n.stop:
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// regionSink proposes stream batches to the destination region's group.
type regionSink struct {
	n   *Node
	dst metadata.RegionalGroup
}

func (s *regionSink) Send(ctx context.Context, b stream.Batch) (stream.Ack, error) {
	enc, err := b.Encode()
	if err != nil {
		return stream.Ack{}, err
	}
	cmd := kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}.Encode()
	var res kv.Result
	if slices.Contains(s.dst.Replicas, s.n.cfg.ID) {
		p, err := s.n.propose(ctx, s.dst.Group, cmd)
		if err != nil {
			return stream.Ack{}, err
		}
		res, _ = p.value.(kv.Result)
	} else {
		body, _ := json.Marshal(proposeRequest{Group: s.dst.Group, Cmd: cmd, Route: true})
		var resp proposeResponse
		if err := s.n.callReplica(ctx, metadata.Shard{Group: s.dst.Group, Replicas: s.dst.Replicas}, methodPropose, body, &resp); err != nil {
			return stream.Ack{}, err
		}
		if resp.ErrCode != "" {
			return stream.Ack{}, DecodeError(resp.ErrCode, resp.ErrMsg)
		}
		if resp.KV != nil {
			res = kv.Result{N: resp.KV.N}
			if resp.KV.ErrCode != "" {
				res.Err = DecodeError(resp.KV.ErrCode, resp.KV.ErrMsg)
			}
		}
	}
	if res.Err != nil {
		return stream.Ack{Applied: uint64(res.N)}, res.Err
	}
	return stream.Ack{Applied: uint64(res.N)}, nil
}
