package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrCompacted is returned by Log.Read when the source no longer holds the
// changes asked for; the stream cannot continue and the destination needs a
// snapshot. Sender.Run returns it (wrapped) and Stats reports it.
var ErrCompacted = errors.New("stream: source log compacted")

// Log is the source side of a stream: the committed log of a region-local
// raft group. Its backlog lives on the source's disk; the Sender holds only
// what is in flight.
type Log interface {
	// Applied returns the source group's applied index and its closed
	// timestamp (Unix ms), read together: every change with TimeMS at or
	// before closedMS that will ever exist has an index at or below index.
	Applied() (index uint64, closedMS int64)
	// Read returns the changes with index in (from, to], in order and
	// without holes: a source index that carries no command is returned as
	// a Change with empty Data. It may stop early once the returned Data
	// add up to maxBytes, but returns at least one change when from < to.
	// It returns ErrCompacted when from+1 is no longer in the log.
	Read(from, to uint64, maxBytes int) ([]Change, error)
	// Notify returns a channel that receives a value (possibly coalesced)
	// after Applied advances. The Sender is its only reader.
	Notify() <-chan struct{}
}

// Sink ships a batch to the destination and returns its answer. Send may
// be called concurrently (up to Config.MaxInFlight calls); it must return
// promptly once ctx is done. An error means the batch may or may not have
// been applied. ErrStaleEpoch and ErrWrongCluster (wrapped or not) stop the
// Sender; any other error makes it rewind to the destination's position.
type Sink interface {
	Send(ctx context.Context, b Batch) (Ack, error)
}

// Config configures a Sender.
type Config struct {
	// Stream is the source group id.
	Stream uint64
	// Epoch is the replication epoch the source is in.
	Epoch uint64
	// Cluster is the cluster id.
	Cluster string
	// BatchInterval is how long changes may wait for more to fill a batch
	// before a batch smaller than MaxBatchBytes is sent. Zero means 2ms.
	BatchInterval time.Duration
	// MaxBatchBytes is the change data a batch is filled up to (one larger
	// change is sent alone). Zero means 256 KiB.
	MaxBatchBytes int
	// MaxInFlight is the number of batches sent and not yet acknowledged.
	// Zero means 4.
	MaxInFlight int
	// HeartbeatInterval is how often an idle stream sends a heartbeat
	// carrying the closed timestamp. Zero means 200ms.
	HeartbeatInterval time.Duration
	// RetryBackoff is the pause after a failed send before the stream
	// resumes from the destination's position. Zero means 100ms.
	RetryBackoff time.Duration
	// OnCompacted, if set, is called with the destination's position when
	// the source no longer has the changes after it.
	OnCompacted func(acked uint64)
	// Resync, if set, brings the destination up to date by shipping the
	// source's data (see Chunk) and returns the source index the
	// destination is then at. The Sender calls it when the destination has
	// nothing from the stream (its position is 0) and when the source no
	// longer holds the changes the destination needs; without it the
	// latter stops the Sender with ErrCompacted.
	Resync func(ctx context.Context) (uint64, error)
	// Logger receives retries at debug level. Nil discards.
	Logger *slog.Logger
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if c.BatchInterval < 0 || c.MaxBatchBytes < 0 || c.MaxInFlight < 0 || c.HeartbeatInterval < 0 || c.RetryBackoff < 0 {
		return errors.New("stream: negative setting in Config")
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = 2 * time.Millisecond
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 256 << 10
	}
	if c.MaxBatchBytes > MaxEncodedBytes/2 {
		return fmt.Errorf("stream: MaxBatchBytes %d above %d", c.MaxBatchBytes, MaxEncodedBytes/2)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 4
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 200 * time.Millisecond
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stats is a snapshot of a Sender's progress.
type Stats struct {
	// Acked is the destination's acknowledged position.
	Acked uint64
	// Applied is the source group's applied index as last seen.
	Applied uint64
	// LagEntries is Applied - Acked.
	LagEntries uint64
	// LagMS is the age of the oldest unacknowledged change the sender has
	// read (now minus its TimeMS); zero when the destination is caught up.
	LagMS int64
	// Batches and Heartbeats count sends (heartbeats are not in Batches).
	Batches, Heartbeats uint64
	// Bytes is the encoded size of what was sent, WireBytes the same after
	// compression.
	Bytes, WireBytes uint64
	// Retries counts failed sends.
	Retries uint64
	// Resyncs counts the times the destination was brought up to date by
	// shipping the source's data.
	Resyncs uint64
	// InFlight is the number of unacknowledged batches; PeakInFlight the
	// most there ever were.
	InFlight, PeakInFlight int
	// Err is why Run stopped (ErrCompacted, ErrStaleEpoch, ...), if it did.
	Err error
}

// Sender ships one stream: it reads the source log from the destination's
// position and sends batches, at most MaxInFlight unacknowledged at a time.
type Sender struct {
	cfg  Config
	log  Log
	sink Sink

	mu       sync.Mutex
	stats    Stats
	oldestMS int64 // TimeMS of the oldest unacknowledged change; 0: caught up
}

// NewSender returns a Sender; cfg is validated and defaulted.
func NewSender(cfg Config, log Log, sink Sink) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, log: log, sink: sink}, nil
}

// Stats returns the sender's current statistics.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	// The lag is the age of the oldest unacknowledged change now: it keeps
	// growing while nothing happens (a destination that stopped answering).
	if s.oldestMS != 0 {
		st.LagMS = max(time.Now().UnixMilli()-s.oldestMS, 0)
	}
	return st
}

// flight is one sent, unacknowledged batch.
type flight struct {
	batch Batch
	probe bool // asks the destination for its position
}

type result struct {
	f   *flight
	ack Ack
	err error
}

// closedSample says: every change with a time at or before closedMS is at
// or below index at.
type closedSample struct {
	at       uint64
	closedMS int64
}

const maxClosedSamples = 64

// run is the state of one Run call; only its goroutine touches it.
type run struct {
	s        *Sender
	results  chan result
	inflight []*flight
	wg       sync.WaitGroup

	parent  context.Context
	attempt context.Context // cancelled when a send of the attempt fails
	cancel  context.CancelFunc

	window  int    // batches allowed in flight now: 1 while probing (after a failure), MaxInFlight once the destination answered
	probing bool   // the destination's position is unknown
	acked   uint64 // destination's position
	sent    uint64 // dispatched through
	applied uint64

	pending      []Change // read, not yet sent: (sent, pending end]
	pendingBytes int
	pendingSince time.Time
	lastSend     time.Time
	oldestMS     int64
	behindMS     int64 // since when (Unix ms) the destination has been behind; 0 if caught up
	samples      []closedSample
}

// Run ships the stream until ctx is done or the stream cannot continue:
// it returns ctx's error, or a wrapped ErrCompacted, ErrStaleEpoch or
// ErrWrongCluster. It starts by asking the destination for its position
// (an empty batch following index 0) and does so again after every failed
// send, so delivery is at least once and every attempt ships in order.
func (s *Sender) Run(ctx context.Context) error {
	r := &run{s: s, parent: ctx, results: make(chan result, s.cfg.MaxInFlight), window: 1, probing: true}
	r.attempt, r.cancel = context.WithCancel(ctx)
	err := r.loop(ctx)
	r.cancel()
	r.drain()
	r.wg.Wait()
	s.mu.Lock()
	s.stats.Err = err
	s.stats.InFlight = 0
	s.mu.Unlock()
	return err
}

func (r *run) loop(ctx context.Context) error {
	cfg := &r.s.cfg
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := r.fill(); err != nil {
			return err
		}
		r.publish()
		// Wake for the next batching or heartbeat deadline, if one applies;
		// otherwise only an answer or a new commit can change anything.
		wait := time.Hour
		switch {
		case r.probing || len(r.inflight) >= r.window:
		case len(r.pending) > 0 && r.pendingBytes == 0:
			// Only changes without commands: they go at heartbeat pace.
			wait = time.Until(r.lastSend.Add(cfg.HeartbeatInterval))
		case len(r.pending) > 0:
			wait = time.Until(r.pendingSince.Add(cfg.BatchInterval))
		case len(r.inflight) == 0:
			wait = time.Until(r.lastSend.Add(cfg.HeartbeatInterval))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.s.log.Notify():
		case <-timer.C:
		case res := <-r.results:
			if err := r.handle(res); err != nil {
				return err
			}
		}
	}
}

// fill reads and dispatches whatever the window and the batching rules
// allow.
func (r *run) fill() error {
	cfg := &r.s.cfg
	if r.probing {
		if len(r.inflight) == 0 {
			return r.dispatch(&flight{probe: true, batch: r.batch(0, nil)})
		}
		return nil
	}
	for len(r.inflight) < r.window {
		applied, closed := r.s.log.Applied()
		r.sample(applied, closed)
		end := r.sent
		if n := len(r.pending); n > 0 {
			end = r.pending[n-1].Index
		}
		if end < applied && r.pendingBytes < cfg.MaxBatchBytes {
			changes, err := r.s.log.Read(end, applied, cfg.MaxBatchBytes-r.pendingBytes)
			if err != nil {
				if errors.Is(err, ErrCompacted) && cfg.OnCompacted != nil {
					cfg.OnCompacted(r.acked)
				}
				if errors.Is(err, ErrCompacted) && cfg.Resync != nil {
					r.cancel()
					r.drain()
					r.attempt, r.cancel = context.WithCancel(r.parent)
					return r.resync()
				}
				return fmt.Errorf("stream %d: read after %d: %w", cfg.Stream, end, err)
			}
			if len(changes) == 0 {
				return fmt.Errorf("stream %d: log returned nothing in (%d, %d]", cfg.Stream, end, applied)
			}
			if len(r.pending) == 0 {
				r.pendingSince = time.Now()
			}
			for _, c := range changes {
				r.pendingBytes += len(c.Data)
			}
			r.pending = append(r.pending, changes...)
			end = changes[len(changes)-1].Index
		}
		full := r.pendingBytes >= cfg.MaxBatchBytes
		due := len(r.pending) > 0 && time.Since(r.pendingSince) >= cfg.BatchInterval
		if due && r.pendingBytes == 0 {
			// Changes that carry no command (a raft leader's empty entry,
			// or, at a region of an active keyspace, the entry of another
			// region's batch, which is not shipped on) only move the
			// destination's cursor: they go at heartbeat pace, as the
			// heartbeat they replace. Sending them at once would make two
			// active regions bounce batches of nothing between them.
			due = time.Since(r.lastSend) >= cfg.HeartbeatInterval
		}
		switch {
		case full || due:
			b := r.batch(r.sent, r.pending)
			r.sent = end
			r.pending, r.pendingBytes = nil, 0
			if err := r.dispatch(&flight{batch: b}); err != nil {
				return err
			}
		case len(r.pending) == 0 && len(r.inflight) == 0 && r.sent >= applied &&
			time.Since(r.lastSend) >= cfg.HeartbeatInterval:
			return r.dispatch(&flight{batch: r.batch(r.sent, nil)})
		default:
			return nil
		}
	}
	return nil
}

// batch builds a batch following prev, with the best closed timestamp
// known to hold for its last index (zero, which claims nothing, for a
// probe).
func (r *run) batch(prev uint64, changes []Change) Batch {
	b := Batch{Stream: r.s.cfg.Stream, Epoch: r.s.cfg.Epoch, Cluster: r.s.cfg.Cluster, Prev: prev, Changes: changes}
	if r.probing {
		return b
	}
	last := b.Last()
	for _, s := range r.samples {
		if s.at <= last {
			b.ClosedMS = max(b.ClosedMS, s.closedMS)
		}
	}
	return b
}

// sample records a (applied, closed) reading, keeping at most
// maxClosedSamples and only the newest of those at or below acked.
func (r *run) sample(applied uint64, closed int64) {
	r.applied = applied
	if n := len(r.samples); n > 0 && r.samples[n-1].at == applied {
		r.samples[n-1].closedMS = max(r.samples[n-1].closedMS, closed)
		return
	}
	r.samples = append(r.samples, closedSample{at: applied, closedMS: closed})
	drop := 0
	for drop+1 < len(r.samples) && r.samples[drop+1].at <= r.acked {
		drop++
	}
	if len(r.samples)-drop > maxClosedSamples {
		drop = len(r.samples) - maxClosedSamples
	}
	r.samples = append(r.samples[:0], r.samples[drop:]...)
}

func (r *run) dispatch(f *flight) error {
	raw, wire, err := f.batch.encode()
	if err != nil {
		return fmt.Errorf("stream %d: %w", r.s.cfg.Stream, err)
	}
	r.inflight = append(r.inflight, f)
	r.lastSend = time.Now()
	r.s.mu.Lock()
	st := &r.s.stats
	if len(f.batch.Changes) == 0 {
		st.Heartbeats++
	} else {
		st.Batches++
	}
	st.Bytes += uint64(raw)
	st.WireBytes += uint64(len(wire))
	st.PeakInFlight = max(st.PeakInFlight, len(r.inflight))
	r.s.mu.Unlock()
	r.wg.Add(1)
	ctx, b := r.attempt, f.batch
	go func() {
		defer r.wg.Done()
		ack, err := r.s.sink.Send(ctx, b)
		r.results <- result{f: f, ack: ack, err: err}
	}()
	return nil
}

// handle processes the answer to one batch.
func (r *run) handle(res result) error {
	cfg := &r.s.cfg
	r.remove(res.f)
	if res.err == nil && res.ack.Epoch > cfg.Epoch {
		res.err = fmt.Errorf("%w: destination at epoch %d, stream at %d", ErrStaleEpoch, res.ack.Epoch, cfg.Epoch)
	}
	if errors.Is(res.err, ErrStaleEpoch) || errors.Is(res.err, ErrWrongCluster) {
		return fmt.Errorf("stream %d: %w", cfg.Stream, res.err)
	}
	if res.err != nil {
		return r.rewind(res.err)
	}
	if res.f.probe {
		r.probing = false
		r.acked, r.sent = res.ack.Applied, res.ack.Applied
		r.window = cfg.MaxInFlight
		if r.acked == 0 && cfg.Resync != nil {
			return r.resync()
		}
		return nil
	}
	r.advance(res.ack.Applied)
	r.window = cfg.MaxInFlight
	return nil
}

// resync ships the source's data through Config.Resync; on failure the
// next attempt starts with a probe, as after any failed send.
func (r *run) resync() error {
	r.s.mu.Lock()
	r.s.stats.Resyncs++
	r.s.mu.Unlock()
	at, err := r.s.cfg.Resync(r.attempt)
	if err != nil {
		if errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrWrongCluster) {
			return fmt.Errorf("stream %d: resync: %w", r.s.cfg.Stream, err)
		}
		return r.rewind(fmt.Errorf("resync: %w", err))
	}
	r.pending, r.pendingBytes = nil, 0
	r.acked, r.sent = at, at
	r.publish()
	return nil
}

// advance moves the acknowledged position forward.
func (r *run) advance(to uint64) {
	if to <= r.acked {
		return
	}
	r.acked = to
	if r.sent < to { // the destination got further than this attempt sent
		r.sent = to
		r.pending, r.pendingBytes = nil, 0
	}
}

// rewind handles a failed send: it stops the attempt, waits out its sends,
// pauses, and has the next attempt start by asking the destination where
// it is.
func (r *run) rewind(cause error) error {
	cfg := &r.s.cfg
	cfg.Logger.Debug("stream send failed", "stream", cfg.Stream, "acked", r.acked, "err", cause)
	r.s.mu.Lock()
	r.s.stats.Retries++
	r.s.mu.Unlock()
	r.cancel()
	r.drain()
	r.pending, r.pendingBytes = nil, 0
	r.probing, r.window = true, 1
	r.publish()
	t := time.NewTimer(cfg.RetryBackoff)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.parent.Done():
		return r.parent.Err()
	}
	r.attempt, r.cancel = context.WithCancel(r.parent)
	return nil
}

// drain waits for the answers to every batch in flight. Successful answers
// still move the acknowledged position: they are true whatever happened to
// the other batches.
func (r *run) drain() {
	for len(r.inflight) > 0 {
		res := <-r.results
		r.remove(res.f)
		if res.err == nil && !res.f.probe && res.ack.Epoch <= r.s.cfg.Epoch {
			r.advance(res.ack.Applied)
		}
	}
}

func (r *run) remove(f *flight) {
	for i, g := range r.inflight {
		if g == f {
			r.inflight = append(r.inflight[:i], r.inflight[i+1:]...)
			return
		}
	}
}

// publish updates the shared statistics.
func (r *run) publish() {
	if r.probing {
		r.applied, _ = r.s.log.Applied()
	}
	if r.acked >= r.applied {
		r.behindMS = 0
	} else if r.behindMS == 0 {
		r.behindMS = time.Now().UnixMilli()
	}
	r.oldestMS = r.oldestUnacked()
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	st := &r.s.stats
	st.Acked, st.Applied = r.acked, r.applied
	st.LagEntries = 0
	if r.applied > r.acked {
		st.LagEntries = r.applied - r.acked
	}
	r.s.oldestMS = r.oldestMS
	st.LagMS = 0 // Stats computes it from oldestMS
	st.InFlight = len(r.inflight)
}

// oldestUnacked returns the TimeMS of the first command after the
// acknowledged position among the changes the sender holds. If it holds
// none while the destination is behind, the previous answer stands: it is
// no younger than the true one.
func (r *run) oldestUnacked() int64 {
	if r.acked >= r.applied {
		return 0
	}
	// A change without a time (TimeMS 0: not a client write, say a role
	// record) says nothing about the lag.
	first := func(cs []Change) (int64, bool) {
		for _, c := range cs {
			if c.Index > r.acked && len(c.Data) > 0 && c.TimeMS != 0 {
				return c.TimeMS, true
			}
		}
		return 0, false
	}
	for _, f := range r.inflight {
		if t, ok := first(f.batch.Changes); ok {
			return t
		}
	}
	if t, ok := first(r.pending); ok {
		return t
	}
	// Nothing held (the destination is unreachable and the sender keeps
	// asking for its position): look the change up in the log, so that
	// the lag keeps growing while the destination is away. Entries without
	// a timed command (a new group's first entries, leader changes, role
	// records) are skipped, a few reads' worth.
	from := r.acked
	for range 8 {
		changes, err := r.s.log.Read(from, r.applied, 64<<10)
		if err != nil || len(changes) == 0 {
			break
		}
		if t, ok := first(changes); ok {
			return t
		}
		if from = changes[len(changes)-1].Index; from >= r.applied {
			return 0 // no timed command is missing
		}
	}
	// Not found (the log no longer holds it, or it lies beyond what was
	// read): the previous answer stands, being no younger than the true
	// one; without one, the change was committed before the destination
	// was first seen behind, so its age is at least the time since then.
	if r.oldestMS != 0 {
		return r.oldestMS
	}
	return r.behindMS
}
