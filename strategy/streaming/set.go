package streaming

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// Stream timing. An idle stream tells its destination the source's
// closed timestamp every DefaultHeartbeat (node.Config's default). A send
// that gets no answer within sendTimeout + the RTT to the destination
// replica (more for a destination whose answers are slow, see
// stream.Config.SendTimeout) fails; retries pause one RTT, doubled after
// each failure in a row, at most maxBackoff + RTT, and end at once when a
// peer becomes reachable again (the transport's Reachable), which also
// gives up sends that waited much longer than a round trip. A stream
// without progress for StallAfter + RTT is stalled: logged at warn level
// then every stallLogEvery, shown in Status and the
// meridian_stream_stalled metric.
const (
	DefaultHeartbeat = 200 * time.Millisecond
	// StallAfter is how long a stream may make no progress before it is
	// reported stalled (plus the RTT to its destination).
	StallAfter = 5 * DefaultHeartbeat
	// pollInterval is how often a Set looks for streams to start or stop.
	pollInterval  = 100 * time.Millisecond
	sendTimeout   = 2 * time.Second
	maxBackoff    = 2 * time.Second
	stallLogEvery = 30 * time.Second
	// restartAfter is how long a sender that stopped (say on a stale
	// epoch, while this node's metadata is behind) waits to start again.
	restartAfter = time.Second
)

// Key names a stream: its source and destination groups.
type Key struct{ Src, Dst uint64 }

// Want is a stream a strategy wants this node to run.
type Want struct {
	// Status says what the stream is: keyspace, shard, regions, epoch,
	// strategy.
	Status Status
	// Dst is the destination group.
	Dst metadata.RegionalGroup
}

// Hooks are what a strategy changes in its streams.
type Hooks struct {
	// Change returns what the stream ships for the command at index of
	// the source group's log (nil: nothing, the entry is skipped). Entries
	// the group's role history refused never reach it. Nil ships every
	// command as it is.
	Change func(db *storage.DB, group, index uint64, cmd []byte) ([]byte, error)
	// Resync brings a destination up to date with the source's data and
	// returns the source index it is then at (see stream.Config.Resync).
	// Nil: Set.Resync, the source's data in chunks that replace the
	// destination's.
	Resync func(ctx context.Context, r *Running, sink *Sink) (uint64, error)
}

// Set runs the stream senders of one strategy on this node.
type Set struct {
	env   strategy.Env
	inbox *Inbox
	hooks Hooks

	mu      sync.Mutex
	running map[Key]*Running
	// stalls keeps the stall bookkeeping of a stream whose sender was
	// replaced, for the next one (stream.Config.Resume).
	stalls map[Key]stream.StallState
	// bySource indexes running by source group for Lag, without mu
	// (which a reconcile holds while senders stop); replaced whenever
	// running changes.
	bySource atomic.Pointer[map[uint64][]*Running]
}

// NewSet returns an empty Set; inbox is the node's (a sink whose
// destination is a group of this node hands it its batches directly).
func NewSet(env strategy.Env, inbox *Inbox, hooks Hooks) *Set {
	return &Set{env: env, inbox: inbox, hooks: hooks, running: map[Key]*Running{}, stalls: map[Key]stream.StallState{}}
}

// Running is one stream this node sends.
type Running struct {
	sender *stream.Sender
	key    Key
	base   Status // what the stream is; status adds how it is doing
	epoch  uint64
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	stoppedAt   time.Time
	resyncKeys  int64
	resyncBytes int64
	resyncing   bool
}

// Source is the stream's source group.
func (r *Running) Source() uint64 { return r.key.Src }

// Status returns the stream's current state.
func (r *Running) Status() Status {
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
func (r *Running) stoppedFor() time.Duration {
	select {
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return time.Since(r.stoppedAt)
	default:
		return 0
	}
}

// Run keeps the Set's streams those want returns, every pollInterval
// and when a peer becomes reachable again (which also wakes every
// sender), until stop is closed; then it stops them all. after, if set,
// is called after each reconcile with the slowest acknowledged position
// of each source's streams.
func (s *Set) Run(stop <-chan struct{}, want func() map[Key]Want, after func(acked map[uint64]uint64)) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	defer s.stopAll()
	tr := s.env.Transport()
	for {
		acked := s.Reconcile(want())
		if after != nil {
			after(acked)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		case <-tr.Reachable():
			s.wakeAll()
		}
	}
}

// wakeAll tells every sender that a peer became reachable again.
func (s *Set) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		r.sender.Wake()
	}
}

func (s *Set) stopAll() {
	s.mu.Lock()
	running := s.running
	s.running = map[Key]*Running{}
	s.publishLocked()
	s.mu.Unlock()
	for _, r := range running {
		r.cancel()
		<-r.done
	}
}

// publishLocked rebuilds the index by source.
func (s *Set) publishLocked() {
	m := make(map[uint64][]*Running, len(s.running))
	for k, r := range s.running {
		m[k.Src] = append(m[k.Src], r)
	}
	s.bySource.Store(&m)
}

// Reconcile starts the senders want lists and stops the others, keeps
// each source's log from its slowest stream on, and returns that
// position per source.
func (s *Set) Reconcile(want map[Key]Want) map[uint64]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishLocked()
	for k, r := range s.running {
		// A sender that stopped (say on a stale epoch, while this node's
		// metadata is behind) is started again a little later; the next
		// one takes over its stall bookkeeping.
		if w, ok := want[k]; !ok || w.Status.Epoch != r.base.Epoch || r.stoppedFor() > restartAfter {
			r.cancel()
			<-r.done
			delete(s.running, k)
			if ok {
				stall := r.sender.StallState()
				if err := r.sender.Stats().Err; err != nil {
					stall.Err = err
				}
				s.stalls[k] = stall
			}
		}
	}
	for k := range s.stalls {
		if _, ok := want[k]; !ok {
			delete(s.stalls, k)
		}
	}
	minAcked := map[uint64]uint64{}
	for k, w := range want {
		r := s.running[k]
		if r == nil {
			var err error
			if r, err = s.start(k, w, s.stalls[k]); err != nil {
				s.env.Logger().Error("cannot start stream", "from", k.Src, "to", k.Dst, "err", err)
				continue
			}
			s.running[k] = r
			delete(s.stalls, k)
		}
		st := r.sender.Stats()
		if cur, ok := minAcked[k.Src]; !ok || st.Acked < cur {
			minAcked[k.Src] = st.Acked
		}
	}
	host := s.env.Host()
	for src, acked := range minAcked {
		if err := host.RetainFrom(src, max(acked, 1)); err != nil {
			// The source group is gone from this node: its log cannot be
			// held for the destinations, so stop its senders (they start
			// again if the group and its leadership come back).
			s.env.Logger().Warn("cannot retain a stream source's log; stopping its streams", "group", src, "err", err)
			for k, r := range s.running {
				if k.Src == src {
					r.cancel()
					<-r.done
					delete(s.running, k)
				}
			}
		}
	}
	return minAcked
}

func (s *Set) start(k Key, w Want, resume stream.StallState) (*Running, error) {
	env := s.env
	set := env.Settings()
	sink := &Sink{env: env, inbox: s.inbox, dst: w.Dst}
	r := &Running{key: k, base: w.Status, epoch: w.Status.Epoch, done: make(chan struct{})}
	log, unsubscribe := newGroupLog(env, k.Src, s.hooks.Change)
	logger := env.Logger().With("keyspace", w.Status.Keyspace, "shard", w.Status.Shard, "from_region", w.Status.FromRegion, "to_region", w.Status.ToRegion)
	resync := s.hooks.Resync
	if resync == nil {
		resync = s.Resync
	}
	cfg := stream.Config{
		Stream: k.Src, Epoch: r.epoch, Cluster: env.Cluster(),
		BatchInterval: set.StreamBatchInterval, MaxBatchBytes: set.StreamMaxBatchBytes, MaxInFlight: set.StreamMaxInFlight,
		HeartbeatInterval: set.StreamHeartbeatInterval, RetryBackoff: set.StreamRetryBackoff, MaxRetryBackoff: maxBackoff,
		SendTimeout: sendTimeout, StallAfter: StallAfter, StallLogEvery: stallLogEvery,
		RTT: sink.rtt, Reason: func(err error) string { return Reason(env.ErrorCode, err) }, Resume: resume, Logger: logger,
		Resync: func(ctx context.Context) (uint64, error) { return resync(ctx, r, sink) },
	}
	sender, err := stream.NewSender(cfg, log, sink)
	if err != nil {
		unsubscribe()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.sender, r.cancel = sender, cancel
	go func() {
		defer close(r.done)
		defer unsubscribe()
		defer func() {
			r.mu.Lock()
			r.stoppedAt = time.Now()
			r.mu.Unlock()
		}()
		if err := sender.Run(ctx); err != nil && ctx.Err() == nil {
			// Loud if it lasts: the next sender reports the stall.
			logger.Info("stream stopped", "from", k.Src, "to", k.Dst, "err", err)
		}
	}()
	return r, nil
}

// Statuses reports the streams of the Set, sorted.
func (s *Set) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.running))
	for _, r := range s.running {
		out = append(out, r.Status())
	}
	Sort(out)
	return out
}

// Lag returns the largest lag (ms) of the streams from source group src,
// and the region it is shipped to (0 and "" without a stream). It looks
// src's streams up; it takes no lock of the Set.
func (s *Set) Lag(src uint64) (int64, string) {
	m := s.bySource.Load()
	if m == nil {
		return 0, ""
	}
	worst, region := int64(0), ""
	for _, r := range (*m)[src] {
		if lag := r.sender.LagMS(); lag > worst {
			worst, region = lag, r.base.ToRegion
		}
	}
	return worst, region
}
