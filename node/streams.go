package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
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
// Active keyspaces stream all to all (see active.go).
//
// Recovery is package stream's (gap repair, retries paced by the RTT and
// ended by Wake when the transport sees a peer reachable again, stall
// reports); the sink asks the nearest healthy replica of the destination
// group and another after one fails, every call bounded in time.
//
// Every batch carries the keyspace's epoch and the cluster id; a
// destination that has nothing from the stream, or needs changes the
// source no longer keeps, is first brought up to date by a resync: the
// source's data, read from one consistent storage view, shipped in chunks
// through the destination's raft group (see stream.Chunk). Switchover,
// failover and the lost-writes report are in failover.go.

// streamPollInterval is how often the node looks for streams to start or
// stop, and how often a sender looks for new entries when idle.
const streamPollInterval = 20 * time.Millisecond

// streamHeartbeat is how often an idle stream tells its destination the
// source's closed timestamp.
const streamHeartbeat = 200 * time.Millisecond

// Stream recovery. A send that gets no answer within streamSendTimeout +
// the RTT to the destination replica (more for a destination whose
// answers are slow, see stream.Config.SendTimeout) fails; retries pause one RTT,
// doubled after each failure in a row, at most streamMaxBackoff + RTT,
// and end at once when a peer becomes reachable again (the transport's
// Reachable), which also gives up sends that waited much longer than a
// round trip. A stream without progress for StreamStallAfter + RTT is
// stalled: logged at warn level then every streamStallLogEvery, shown in
// StreamStatus and the meridian_stream_stalled metric.
const (
	streamSendTimeout   = 2 * time.Second
	streamMaxBackoff    = 2 * time.Second
	streamStallLogEvery = 30 * time.Second
	// StreamStallAfter is how long a stream may make no progress before
	// it is reported stalled (plus the RTT to its destination).
	StreamStallAfter = 5 * streamHeartbeat
	// streamRestartAfter is how long a sender that stopped (say on a stale
	// epoch, while this node's metadata is behind) waits to start again.
	streamRestartAfter = time.Second
)

type streamKey struct{ src, dst uint64 }

type runningStream struct {
	sender *stream.Sender
	base   StreamStatus // what the stream is; status adds how it is doing
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	stoppedAt   time.Time
	resyncKeys  int64
	resyncBytes int64
	resyncing   bool
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
	Epoch      uint64 `json:"epoch"`
	// Strategy is the keyspace's (async or active).
	Strategy string `json:"strategy,omitempty"`
	// Retries counts failed sends (each makes the stream ask the
	// destination for its position again).
	Retries uint64 `json:"retries,omitempty"`
	// Resyncs counts the times the destination was sent the whole data;
	// while one runs, Resyncing is set and ResyncKeys/ResyncBytes say how
	// much has been shipped.
	Resyncs     uint64 `json:"resyncs,omitempty"`
	Resyncing   bool   `json:"resyncing,omitempty"`
	ResyncKeys  int64  `json:"resync_keys,omitempty"`
	ResyncBytes int64  `json:"resync_bytes,omitempty"`
	// GapRepairs counts batches the destination refused for a gap, after
	// which the stream went on at once from the destination's position.
	GapRepairs uint64 `json:"gap_repairs,omitempty"`
	// Bytes is the encoded size of what the stream sent, BatchBytes the
	// same without heartbeats.
	Bytes      uint64 `json:"bytes,omitempty"`
	BatchBytes uint64 `json:"batch_bytes,omitempty"`
	// Stalled: the stream has made no progress for longer than
	// StreamStallAfter plus the RTT to the destination, for StalledForMS;
	// StallReason says why (peer unreachable, refused batch and the
	// refusal's code, gap, clock check, epoch...). It clears when the
	// stream makes progress again.
	Stalled      bool   `json:"stalled,omitempty"`
	StallReason  string `json:"stall_reason,omitempty"`
	StalledForMS int64  `json:"stalled_for_ms,omitempty"`
	// LastError is the last failure since the stream last made progress.
	LastError string `json:"last_error,omitempty"`
	// Err is why the stream stopped, if it did.
	Err string `json:"error,omitempty"`
}

type streamSet struct {
	mu      sync.Mutex
	running map[streamKey]*runningStream
	// stalls keeps the stall bookkeeping of a stream whose sender was
	// replaced, for the next one (stream.Config.Resume).
	stalls map[streamKey]stream.StallState
}

// wakeAll tells every sender that a peer became reachable again.
func (s *streamSet) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		r.sender.Wake()
	}
}

// status returns the stream's current state.
func (r *runningStream) status() StreamStatus {
	info := r.base
	st := r.sender.Stats()
	info.Acked, info.Applied, info.LagEntries, info.LagMS = st.Acked, st.Applied, st.LagEntries, st.LagMS
	info.Resyncs, info.Retries, info.GapRepairs, info.Bytes, info.BatchBytes = st.Resyncs, st.Retries, st.GapRepairs, st.Bytes, st.BatchBytes
	if st.Stalled {
		info.Stalled, info.StallReason, info.StalledForMS = true, st.StallReason, st.StalledFor.Milliseconds()
	}
	if st.LastError != nil {
		info.LastError = st.LastError.Error()
	}
	r.mu.Lock()
	info.Resyncing, info.ResyncKeys, info.ResyncBytes = r.resyncing, r.resyncKeys, r.resyncBytes
	r.mu.Unlock()
	if st.Err != nil {
		info.Err = st.Err.Error()
	}
	return info
}

// stoppedFor returns how long ago the sender stopped, or 0 if it runs.
func (r *runningStream) stoppedFor() time.Duration {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return time.Since(r.stoppedAt)
	default:
		return 0
	}
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
		case <-n.tr.Reachable():
			set.wakeAll()
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
		if isActive(ks) {
			// All to all: every region's group ships its own writes.
			for _, sh := range ks.Shards {
				for _, src := range sh.Regional {
					if gs, ok := n.host.Status(src.Group); !ok || gs.Lead != n.cfg.ID || gs.RaftState.String() != "StateLeader" {
						continue
					}
					for _, rg := range sh.Regional {
						if rg.Group == src.Group {
							continue
						}
						k := streamKey{src: src.Group, dst: rg.Group}
						want[k] = StreamStatus{Keyspace: ks.Name, Shard: sh.Index, FromRegion: src.Region, ToRegion: rg.Region, Strategy: string(ks.Strategy)}
						dests[k] = rg
					}
				}
			}
			continue
		}
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			if gs, ok := n.host.Status(sh.Group); !ok || gs.Lead != n.cfg.ID || gs.RaftState.String() != "StateLeader" {
				continue
			}
			// Only a group that knows it is this epoch's primary ships.
			if role, err := kv.LoadRole(n.db, sh.Group); err != nil || !role.Primary || role.Epoch != ks.Epoch {
				continue
			}
			for _, rg := range sh.Regional {
				if rg.Group == sh.Group {
					continue
				}
				k := streamKey{src: sh.Group, dst: rg.Group}
				want[k] = StreamStatus{Keyspace: ks.Name, Shard: sh.Index, FromRegion: ks.HomeRegion, ToRegion: rg.Region, Epoch: ks.Epoch}
				dests[k] = rg
			}
		}
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.stalls == nil {
		set.stalls = map[streamKey]stream.StallState{}
	}
	for k, r := range set.running {
		// A sender that stopped (say on a stale epoch, while this node's
		// metadata is behind) is started again a little later; the next
		// one takes over its stall bookkeeping.
		if w, ok := want[k]; !ok || w.Epoch != r.base.Epoch || r.stoppedFor() > streamRestartAfter {
			r.cancel()
			<-r.done
			delete(set.running, k)
			if ok {
				stall := r.sender.StallState()
				if err := r.sender.Stats().Err; err != nil {
					stall.Err = err
				}
				set.stalls[k] = stall
			}
		}
	}
	for k := range set.stalls {
		if _, ok := want[k]; !ok {
			delete(set.stalls, k)
		}
	}
	minAcked := map[uint64]uint64{}
	for k, info := range want {
		r := set.running[k]
		if r == nil {
			var err error
			if r, err = n.startStream(k, dests[k], info, set.stalls[k]); err != nil {
				n.log.Error("cannot start stream", "from", k.src, "to", k.dst, "err", err)
				continue
			}
			set.running[k] = r
			delete(set.stalls, k)
		}
		st := r.sender.Stats()
		if cur, ok := minAcked[k.src]; !ok || st.Acked < cur {
			minAcked[k.src] = st.Acked
		}
	}
	for src, acked := range minAcked {
		if err := n.host.RetainFrom(src, max(acked, 1)); err != nil {
			// The source group is gone from this node: its log cannot be
			// held for the destinations, so stop its senders (they start
			// again if the group and its leadership come back).
			n.log.Warn("cannot retain a stream source's log; stopping its streams", "group", src, "err", err)
			for k, r := range set.running {
				if k.src == src {
					r.cancel()
					<-r.done
					delete(set.running, k)
				}
			}
		}
	}
	n.retainActiveLogs(minAcked)
}

// retainActiveLogs keeps, on the replicas of this region's active groups
// that do not run their streams, the log entries some other region has
// not reported applying yet (the reports every region proposes, gc.go in
// package kv), so that a replica that becomes the leader can ship from
// its log rather than resync every other region.
func (n *Node) retainActiveLogs(sources map[uint64]uint64) {
	for _, ks := range n.meta.State().Keyspaces {
		if !isActive(ks) {
			continue
		}
		for _, sh := range ks.Shards {
			rg, ok := sh.RegionalIn(n.cfg.Region)
			if _, running := sources[rg.Group]; !ok || running || !slices.Contains(rg.Replicas, n.cfg.ID) {
				continue
			}
			floor, ok, err := kv.ReportedApplied(n.db, rg.Group, rg.Region, ks.Regions)
			if err != nil {
				continue
			}
			switch {
			case !ok || floor == 0:
				floor = 1 // a region has not reported (applied): keep everything
			case floor == math.MaxUint64:
				floor = 0 // no other region: no stream
			}
			_ = n.host.RetainFrom(rg.Group, floor)
		}
	}
}

func (n *Node) startStream(k streamKey, dst metadata.RegionalGroup, base StreamStatus, resume stream.StallState) (*runningStream, error) {
	sink := &regionSink{n: n, dst: dst}
	epoch := base.Epoch
	r := &runningStream{base: base, done: make(chan struct{})}
	log, unsubscribe := newGroupLog(n, k.src)
	logger := n.log.With("keyspace", base.Keyspace, "shard", base.Shard, "from_region", base.FromRegion, "to_region", base.ToRegion)
	cfg := stream.Config{
		Stream: k.src, Epoch: epoch, Cluster: n.cluster,
		BatchInterval: n.cfg.StreamBatchInterval, MaxBatchBytes: n.cfg.StreamMaxBatchBytes, MaxInFlight: n.cfg.StreamMaxInFlight,
		HeartbeatInterval: n.cfg.StreamHeartbeatInterval, RetryBackoff: n.cfg.StreamRetryBackoff, MaxRetryBackoff: streamMaxBackoff,
		SendTimeout: streamSendTimeout, StallAfter: StreamStallAfter, StallLogEvery: streamStallLogEvery,
		RTT: sink.rtt, Reason: streamReason, Resume: resume, Logger: logger,
		Resync: func(ctx context.Context) (uint64, error) { return n.resync(ctx, k.src, epoch, sink, r) },
	}
	if base.Strategy == string(metadata.Active) {
		// An active destination holds its own writes too: it is never
		// replaced, only merged into. It gets the source's log turned into
		// merges of the writes' delta-states, after a resync by merges
		// of whole states when it has nothing from the source yet (a new
		// region), needs what the source's log no longer holds, or a
		// change is too large for a batch.
		cfg.Resync = func(ctx context.Context) (uint64, error) { return n.resyncActive(ctx, k.src, sink, r) }
		log.active = true
	}
	s, err := stream.NewSender(cfg, log, sink)
	if err != nil {
		unsubscribe()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.sender, r.cancel = s, cancel
	go func() {
		defer close(r.done)
		defer unsubscribe()
		defer func() {
			r.mu.Lock()
			r.stoppedAt = time.Now()
			r.mu.Unlock()
		}()
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			// Loud if it lasts: the next sender reports the stall.
			logger.Info("stream stopped", "from", k.src, "to", k.dst, "err", err)
		}
	}()
	return r, nil
}

// Streams reports the streams this node is sending.
func (n *Node) Streams() []StreamStatus {
	set := n.streams
	set.mu.Lock()
	defer set.mu.Unlock()
	out := make([]StreamStatus, 0, len(set.running))
	for _, r := range set.running {
		out = append(out, r.status())
	}
	sortStreams(out)
	return out
}

func sortStreams(ss []StreamStatus) {
	slices.SortFunc(ss, func(a, b StreamStatus) int {
		return cmp.Or(strings.Compare(a.Keyspace, b.Keyspace), cmp.Compare(a.Shard, b.Shard), strings.Compare(a.ToRegion, b.ToRegion))
	})
}

// groupLog is a source group's applied log, as a stream reads it.
type groupLog struct {
	n      *Node
	group  uint64
	notify <-chan struct{}
	// active: ship each of this region's own writes as a merge of its
	// delta-states (kv.ActiveChange); everything else is skipped.
	active bool
}

func newGroupLog(n *Node, group uint64) (*groupLog, func()) {
	l := &groupLog{n: n, group: group}
	ch, cancel, err := n.host.SubscribeApplied(group)
	if err != nil {
		// Not hosted (any more): the sender finds nothing to read and is
		// stopped by the next reconcile.
		c := make(chan struct{})
		l.notify = c
		return l, func() {}
	}
	l.notify = ch
	return l, cancel
}

// Applied returns the applied index and the source's closed timestamp:
// the promise of this node's lease on the group (see closedFor: a leader
// that lost its lease, or an async group that no longer acts as the
// primary, promises nothing: 0). The promise covers an index at or below
// the applied one read after it, so it holds for the applied index too.
func (l *groupLog) Applied() (uint64, int64) {
	_, closed, _ := l.n.closedFor(l.group)
	st, _ := l.n.host.Status(l.group)
	return st.Applied, closed
}

func (l *groupLog) Read(from, to uint64, maxBytes int) ([]stream.Change, error) {
	ents, err := l.n.host.ReadCommitted(l.group, from, to, maxBytes)
	if errors.Is(err, raftgroup.ErrCompacted) {
		return nil, fmt.Errorf("%w: %w", stream.ErrCompacted, err)
	}
	if err != nil {
		return nil, err
	}
	// Only what took effect here is shipped: a write the group refused (a
	// fenced or demoted primary's) is an entry of its log all the same.
	history, err := kv.RoleHistory(l.n.db, l.group)
	if err != nil {
		return nil, err
	}
	out := make([]stream.Change, len(ents))
	for i, e := range ents {
		out[i] = stream.Change{Index: e.Index, Data: e.Command}
		if len(e.Command) == 0 {
			continue
		}
		c, err := kv.DecodeCommand(e.Command)
		if err == nil {
			out[i].TimeMS = c.NowMS
			if !kv.Admitted(history, e.Index, c) {
				out[i].Data = nil
				continue
			}
		}
		if l.active {
			merge, err := kv.ActiveChange(l.n.db, l.group, e.Index, e.Command)
			if err != nil {
				return nil, fmt.Errorf("active change at %d: %w", e.Index, err)
			}
			out[i].Data = merge
		}
	}
	return out, nil
}

// Notify is told by the host whenever the group applies entries.
func (l *groupLog) Notify() <-chan struct{} { return l.notify }

// streamReason describes a stream's failure for its stall report.
func streamReason(err error) string {
	if errors.Is(err, stream.ErrChangeTooLarge) {
		return "change too large: " + err.Error()
	}
	code := ErrorCode(err)
	label := code
	switch code {
	case "unreachable":
		label = "peer unreachable"
	case "timeout", "outcome_unknown":
		label = "no answer"
	case "no_leader", "not_leader", "dropped", "stopped":
		label = "destination group unavailable (" + code + ")"
	case "stream_gap":
		label = "gap"
	case "clock_skew":
		label = "refused batch (clock_skew: clock check)"
	case "epoch_ahead":
		label = "epoch ahead"
	case "stream_stale_epoch", "stale_epoch":
		label = "stale epoch"
	case "bad_batch", "wrong_cluster", "is_primary", "too_large", "bad_command":
		label = "refused batch (" + code + ")"
	}
	return label + ": " + err.Error()
}

// regionSink proposes stream batches to the destination region's group,
// through one of its replicas: the nearest that answers pings, others
// after one fails.
type regionSink struct {
	n   *Node
	dst metadata.RegionalGroup

	mu     sync.Mutex
	failed map[uint64]time.Time // replicas whose last call failed, and when
}

// pick returns the replica to ask: healthy before unhealthy, by RTT, and
// those that failed last after the others, the longest ago first.
func (s *regionSink) pick() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, bestKey := uint64(0), time.Duration(0)
	for _, id := range s.dst.Replicas {
		key, ok := s.n.tr.RTT(id)
		if !ok {
			key = time.Hour
		}
		if !s.n.tr.Healthy(id) {
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
func (s *regionSink) rtt() time.Duration {
	d, _ := s.n.tr.RTT(s.pick())
	return d
}

// answered records how a replica's call went.
func (s *regionSink) answered(id uint64, err error) {
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

func (s *regionSink) Send(ctx context.Context, b stream.Batch) (stream.Ack, error) {
	if slices.Contains(s.dst.Replicas, s.n.cfg.ID) {
		if at, ok := s.n.quietHeartbeat(s.dst.Group, b); ok {
			return stream.Ack{Applied: at, Epoch: b.Epoch}, nil
		}
		defer s.n.orderStreamBatch(ctx, s.dst.Group, b)()
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

// streamChunkTimeout bounds the proposal of one resync chunk or merge
// (a stream batch is bounded by its Sender, which adapts the bound to
// how fast the destination answers).
const streamChunkTimeout = 10 * time.Second

// proposeChunk runs a resync's command through the destination group,
// within streamChunkTimeout + RTT.
func (s *regionSink) proposeChunk(ctx context.Context, cmd []byte) (kv.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, streamChunkTimeout+s.rtt())
	defer cancel()
	return s.propose(ctx, cmd)
}

// propose runs a command through the destination group; ctx bounds it. A
// failure of the replica asked (unreachable, no answer, no leader on its
// side) makes the next call ask another.
func (s *regionSink) propose(ctx context.Context, cmd []byte) (kv.Result, error) {
	var p proposal
	var err error
	if slices.Contains(s.dst.Replicas, s.n.cfg.ID) {
		p, err = s.n.propose(ctx, s.dst.Group, cmd)
	} else {
		id := s.pick()
		if id == 0 {
			return kv.Result{}, ErrNoReplica
		}
		var resp *nodepb.ProposeResponse
		resp, err = s.n.client(id).Propose(ctx, &nodepb.ProposeRequest{Group: s.dst.Group, Command: cmd, Route: true})
		if err == nil {
			p, err = proposalFromPB(s.dst.Group, resp)
		}
		s.answered(id, err)
	}
	if err != nil {
		return kv.Result{}, err
	}
	res, ok := p.value.(kv.Result)
	if !ok {
		// Never an acknowledgement of nothing: the sender would take it
		// for the destination's position.
		return kv.Result{}, fmt.Errorf("node: group %d answered a stream command with %T, not its result", s.dst.Group, p.value)
	}
	return res, nil
}

// beginResync opens the consistent view a resync ships from, returns it
// with its applied index, and marks the resync under way.
func (r *runningStream) beginResync(n *Node, src uint64) (*storage.Reader, uint64, error) {
	view := n.db.NewReader()
	at, err := view.Applied(src)
	if err != nil {
		view.Close()
		return nil, 0, err
	}
	r.mu.Lock()
	r.resyncing, r.resyncKeys, r.resyncBytes = true, 0, 0
	r.mu.Unlock()
	return view, at, nil
}

// endResync closes the view and marks the resync over.
func (r *runningStream) endResync(view *storage.Reader) {
	view.Close()
	r.mu.Lock()
	r.resyncing = false
	r.mu.Unlock()
}

// shipped counts what a resync has sent: progress for the stall
// detection.
func (r *runningStream) shipped(keys, bytes int) {
	r.mu.Lock()
	r.resyncKeys += int64(keys)
	r.resyncBytes += int64(bytes)
	r.mu.Unlock()
	r.sender.NoteProgress()
}

// resyncChunkBytes is how much data one resync chunk carries.
const resyncChunkBytes = 512 << 10

// resync ships the source group's data, as of one applied index, to the
// destination through sink, in chunks read from a consistent storage view
// (nothing but one chunk is held in memory), and returns that index.
func (n *Node) resync(ctx context.Context, src, epoch uint64, sink *regionSink, r *runningStream) (uint64, error) {
	view, at, err := r.beginResync(n, src)
	if err != nil {
		return 0, err
	}
	defer r.endResync(view)
	n.log.Info("resync started", "from", src, "to", sink.dst.Group, "region", sink.dst.Region, "at", at)
	chunk := stream.Chunk{Stream: src, Epoch: epoch, Cluster: n.cluster, Index: at}
	size := 0
	send := func() error {
		enc, err := chunk.Encode()
		if err != nil {
			return err
		}
		res, err := sink.proposeChunk(ctx, kv.Command{Op: kv.OpStreamChunk, Args: [][]byte{enc}}.Encode())
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return fmt.Errorf("resync chunk %d: %w", chunk.Seq, err)
		}
		r.shipped(len(chunk.Pairs)/2, size)
		chunk.Seq++
		chunk.Pairs, chunk.Elems, size = chunk.Pairs[:0], chunk.Elems[:0], 0
		return nil
	}
	var sendErr error
	err = view.Scan(src, nil, func(k, v []byte) bool {
		chunk.Pairs = append(chunk.Pairs, slices.Clone(k), slices.Clone(v))
		size += len(k) + len(v)
		if size >= resyncChunkBytes {
			sendErr = send()
		}
		return sendErr == nil
	})
	if err = cmp.Or(err, sendErr); err != nil {
		return 0, err
	}
	// The elements of lists and sorted sets, after the records that own
	// them (storage's element span).
	err = view.ScanElements(src, func(k, v []byte) bool {
		chunk.Elems = append(chunk.Elems, slices.Clone(k), slices.Clone(v))
		size += len(k) + len(v)
		if size >= resyncChunkBytes {
			sendErr = send()
		}
		return sendErr == nil
	})
	if err = cmp.Or(err, sendErr); err != nil {
		return 0, err
	}
	chunk.Last = true
	if err := send(); err != nil {
		return 0, err
	}
	n.log.Info("resync done", "from", src, "to", sink.dst.Group, "region", sink.dst.Region, "at", at, "seq", chunk.Seq)
	return at, nil
}

// Heartbeats without raft. An idle stream's heartbeat only carries the
// source's closed timestamp; proposing it through the destination's raft
// group would cost an fsync per heartbeat per stream. A replica of the
// destination group that has already applied everything the heartbeat
// follows answers it itself and keeps the closed timestamp in memory,
// with the position it holds for (reads use it only while the group's
// cursor is at or past that position; a resync resets the cursor and so
// voids it). A heartbeat that would be refused, or that follows changes
// this replica lacks, goes through raft as any batch.

type heartbeatKey struct{ group, source uint64 }

type heartbeatClosed struct {
	prev     uint64
	closedMS int64
}

type heartbeats struct {
	mu sync.Mutex
	m  map[heartbeatKey]heartbeatClosed
}

// orderStreamBatch waits until a stream batch for group may be proposed
// on this replica (see streamGate) and returns what to call after.
func (n *Node) orderStreamBatch(ctx context.Context, group uint64, b stream.Batch) func() {
	cur, _, err := n.db.Cursor(group, b.Stream)
	if err != nil {
		return func() {}
	}
	return n.streamGate.enter(ctx, group, b, cur.Index)
}

// quietHeartbeat answers a heartbeat for group without raft if it can,
// returning the group's cursor.
func (n *Node) quietHeartbeat(group uint64, b stream.Batch) (uint64, bool) {
	if len(b.Changes) != 0 {
		return 0, false
	}
	role, err := kv.LoadRole(n.db, group)
	if err != nil || kv.CheckStream(role, b.Epoch) != nil {
		return 0, false
	}
	cur, _, err := n.db.Cursor(group, b.Stream)
	if err != nil {
		return 0, false
	}
	ack, err := stream.Check(cur, n.cluster, b, role.Epoch)
	if err != nil || ack.Applied != cur.Index {
		// Refused, or a cursor of an older epoch (which raft must reset):
		// the batch goes through raft.
		return 0, false
	}
	hb := &n.heartbeats
	hb.mu.Lock()
	if hb.m == nil {
		hb.m = map[heartbeatKey]heartbeatClosed{}
	}
	k := heartbeatKey{group, b.Stream}
	if old, ok := hb.m[k]; !ok || b.ClosedMS > old.closedMS {
		hb.m[k] = heartbeatClosed{prev: b.Prev, closedMS: b.ClosedMS}
	}
	hb.mu.Unlock()
	return ack.Applied, true
}

// Ordering at the destination. A sender keeps several batches in flight;
// a replica of the destination group serves each in its own goroutine,
// so two that arrive together can reach raft in the wrong order, and the
// later one is refused with a gap (the sender repairs it, but resends
// what followed). A replica therefore proposes a stream's batch only
// after the batch it follows, if that is being proposed here or arrives
// within streamOrderWait: it orders what the network and the scheduler
// mixed up, and delays nothing that is in order (a batch following the
// group's cursor goes at once).

// streamOrderWait is how long a batch waits for the batch it follows to
// arrive before it is proposed anyway.
const streamOrderWait = 20 * time.Millisecond

type streamGate struct {
	wait     time.Duration // 0: streamOrderWait
	mu       sync.Mutex
	pending  map[heartbeatKey]map[uint64]chan struct{} // batches being proposed, by the index they end at; closed when done
	finished map[heartbeatKey]uint64                   // the furthest index a batch whose proposal is over ended at
	arrived  map[heartbeatKey]chan struct{}            // closed and replaced when a batch starts or ends being proposed
}

// changedLocked wakes the batches of stream k waiting for another.
func (g *streamGate) changedLocked(k heartbeatKey) {
	if ch := g.arrived[k]; ch != nil {
		close(ch)
	}
	g.arrived[k] = make(chan struct{})
}

// enter waits until the batch b of a stream into group may be proposed
// here (see above), and returns the function to call once its proposal
// is over. cursor is the group's cursor of the stream on this replica.
func (g *streamGate) enter(ctx context.Context, group uint64, b stream.Batch, cursor uint64) func() {
	k := heartbeatKey{group, b.Stream}
	last := b.Last()
	mine := make(chan struct{})
	g.mu.Lock()
	if g.pending == nil {
		g.pending, g.finished, g.arrived = map[heartbeatKey]map[uint64]chan struct{}{}, map[heartbeatKey]uint64{}, map[heartbeatKey]chan struct{}{}
	}
	if g.pending[k] == nil {
		g.pending[k] = map[uint64]chan struct{}{}
	}
	if _, dup := g.pending[k][last]; !dup {
		g.pending[k][last] = mine
	}
	g.changedLocked(k)
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if g.pending[k][last] == mine {
			delete(g.pending[k], last)
			if len(g.pending[k]) == 0 {
				delete(g.pending, k)
			}
		}
		g.finished[k] = max(g.finished[k], last)
		g.changedLocked(k)
		g.mu.Unlock()
		close(mine)
	}
	if b.Prev <= cursor || b.Prev == last {
		return done
	}
	wait := g.wait
	if wait == 0 {
		wait = streamOrderWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		g.mu.Lock()
		before, ok := g.pending[k][b.Prev]
		over := g.finished[k] >= b.Prev
		arrived := g.arrived[k]
		g.mu.Unlock()
		if over {
			return done
		}
		if ok {
			select {
			case <-before: // proposed (applied, or failed): go
			case <-ctx.Done():
			}
			return done
		}
		select {
		case <-arrived: // another batch of the stream: maybe the one before
		case <-timer.C:
			return done
		case <-ctx.Done():
			return done
		}
	}
}

// streamBatchOf decodes the batch of an OpStreamApply command; any other
// command (the op is looked at first) or a malformed one is false, and is
// left to the state machine.
func streamBatchOf(cmd []byte) (stream.Batch, bool) {
	if op, ok := kv.PeekOp(cmd); !ok || op != kv.OpStreamApply {
		return stream.Batch{}, false
	}
	c, err := kv.DecodeCommand(cmd)
	if err != nil || len(c.Args) != 1 {
		return stream.Batch{}, false
	}
	b, err := stream.DecodeBatch(c.Args[0])
	return b, err == nil
}

// streamPosition is a destination group's position in a stream on this
// node: the committed cursor, with the closed timestamp of the latest
// heartbeat answered here if it still holds.
func (n *Node) streamPosition(group, source uint64) (storage.Cursor, error) {
	c, _, err := n.db.Cursor(group, source)
	if err != nil {
		return c, err
	}
	hb := &n.heartbeats
	hb.mu.Lock()
	h, ok := hb.m[heartbeatKey{group, source}]
	hb.mu.Unlock()
	if ok && h.prev <= c.Index {
		c.ClosedMS = max(c.ClosedMS, h.closedMS)
	}
	return c, nil
}
