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

// ErrChangeTooLarge is returned (wrapped) when a single change of the
// source's log is larger than Config.MaxChangeBytes: no batch can carry
// it. A Sender with a Resync brings the destination up to date by data
// instead; without one it stops with this error.
var ErrChangeTooLarge = errors.New("stream: change too large to ship")

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
	// MaxBatchBytes bounds the change data of one batch: the Sender splits
	// what it reads into batches of at most this much (a single larger
	// change goes alone). Zero means 256 KiB; at most MaxEncodedBytes/2.
	MaxBatchBytes int
	// MaxChangeBytes is the largest single change the Sender ships (see
	// ErrChangeTooLarge). Zero means MaxEncodedBytes/2, which every
	// destination accepts.
	MaxChangeBytes int
	// MaxInFlight is the number of batches sent and not yet acknowledged.
	// Zero means 4.
	MaxInFlight int
	// HeartbeatInterval is how often an idle stream sends a heartbeat
	// carrying the closed timestamp. Zero means 200ms.
	HeartbeatInterval time.Duration
	// RTT, if set, returns the measured round trip to the destination (0
	// when unknown). Retries back off from it, and it is added to the
	// send timeout and the stall threshold.
	RTT func() time.Duration
	// RetryBackoff is the first pause after a failed send when RTT is
	// unknown; with a known RTT the first pause is one RTT. Each further
	// failure in a row doubles the pause, up to MaxRetryBackoff + RTT. A
	// success resets it, and Wake cuts a pause short. Zero means 100ms.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps the pause between retries (one RTT is added).
	// Zero means 2s.
	MaxRetryBackoff time.Duration
	// SendTimeout bounds each Send; a send that has not answered by then
	// fails like any other. Zero means 2s. One RTT is added, and a
	// destination that answers slowly (a large batch, a busy group) gets
	// four times its recent slowest answer (or timeout) if that is more,
	// at most ten times SendTimeout: the timeout finds destinations that
	// do not answer, not slow ones, whose sends a timeout would only
	// repeat.
	SendTimeout time.Duration
	// StallAfter: a stream that makes no progress for longer than this
	// (plus one RTT) is stalled (see Stats.Stalled). Zero means five
	// heartbeat intervals.
	StallAfter time.Duration
	// StallLogEvery is how often a stall that goes on is logged again
	// (the first time at warn level as soon as it is detected). Zero
	// means 30s.
	StallLogEvery time.Duration
	// Reason, if set, describes why a send failed, for Stats.StallReason
	// and the stall warnings (say "peer unreachable: ..."). Nil uses the
	// error's text.
	Reason func(error) string
	// Resume carries the stall bookkeeping of a previous Sender of the
	// same stream (Sender.StallState), so that a stream that keeps being
	// restarted is still seen stalled, and warned about at the slow pace.
	Resume StallState
	// Now, if set, replaces time.Now for the stall bookkeeping (tests).
	Now func() time.Time
	// OnCompacted, if set, is called with the destination's position when
	// the source no longer has the changes after it.
	OnCompacted func(acked uint64)
	// Resync, if set, brings the destination up to date by shipping the
	// source's data (see Chunk) and returns the source index the
	// destination is then at. The Sender calls it when the destination has
	// nothing from the stream (its position is 0), when the source no
	// longer holds the changes the destination needs, and when a change
	// is too large to ship; without it the latter two stop the Sender
	// (ErrCompacted, ErrChangeTooLarge). A long resync should call
	// Sender.NoteProgress as it goes.
	Resync func(ctx context.Context) (uint64, error)
	// Logger receives retries at debug level, and stalls at warn level.
	// Nil discards.
	Logger *slog.Logger
}

// Validate checks the configuration and fills in defaults.
func (c *Config) Validate() error {
	if c.BatchInterval < 0 || c.MaxBatchBytes < 0 || c.MaxChangeBytes < 0 || c.MaxInFlight < 0 || c.HeartbeatInterval < 0 ||
		c.RetryBackoff < 0 || c.MaxRetryBackoff < 0 || c.SendTimeout < 0 || c.StallAfter < 0 || c.StallLogEvery < 0 {
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
	if c.MaxChangeBytes == 0 {
		c.MaxChangeBytes = MaxEncodedBytes / 2
	}
	if c.MaxChangeBytes > MaxEncodedBytes/2 {
		return fmt.Errorf("stream: MaxChangeBytes %d above %d", c.MaxChangeBytes, MaxEncodedBytes/2)
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
	if c.MaxRetryBackoff == 0 {
		c.MaxRetryBackoff = 2 * time.Second
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 2 * time.Second
	}
	if c.StallAfter == 0 {
		c.StallAfter = 5 * c.HeartbeatInterval
	}
	if c.StallLogEvery == 0 {
		c.StallLogEvery = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Reason == nil {
		c.Reason = func(err error) string { return err.Error() }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// rtt returns the destination's measured round trip, 0 if unknown.
func (c *Config) rtt() time.Duration {
	if c.RTT == nil {
		return 0
	}
	return max(c.RTT(), 0)
}

// backoff returns the pause after the n-th failure in a row (n >= 1):
// one RTT (RetryBackoff if unknown), doubled for each further failure,
// at most MaxRetryBackoff + RTT.
func (c *Config) backoff(n int) time.Duration {
	rtt := c.rtt()
	d := rtt
	if d <= 0 {
		d = c.RetryBackoff
	}
	limit := c.MaxRetryBackoff + rtt
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// StallState is the part of a Sender's stall bookkeeping that a later
// Sender of the same stream takes over (Config.Resume).
type StallState struct {
	// ProgressAt is when the stream last made progress (zero: unknown,
	// taken as the new Sender's start).
	ProgressAt time.Time
	// WarnedAt is when the current stall was last logged (zero: not yet).
	WarnedAt time.Time
	// Err is the last failure since then.
	Err error
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
	// compression; BatchBytes is Bytes without the heartbeats.
	Bytes, WireBytes, BatchBytes uint64
	// Retries counts failed sends.
	Retries uint64
	// GapRepairs counts the times the destination refused a batch with
	// ErrGap and the stream restarted at once from the position the
	// destination gave.
	GapRepairs uint64
	// Resyncs counts the times the destination was brought up to date by
	// shipping the source's data.
	Resyncs uint64
	// InFlight is the number of unacknowledged batches; PeakInFlight the
	// most there ever were.
	InFlight, PeakInFlight int
	// Stalled is set while the stream has made no progress for longer
	// than Config.StallAfter (+ RTT): the destination's acknowledged
	// position has not moved while the source has more, or no answer has
	// succeeded at all. StalledFor is how long it has been without
	// progress, StallReason why (the last failure, or what is missing).
	Stalled     bool
	StalledFor  time.Duration
	StallReason string
	// LastError is the last failure since the stream last made progress.
	LastError error
	// Err is why Run stopped (ErrCompacted, ErrStaleEpoch, ...), if it did.
	Err error
}

// Sender ships one stream: it reads the source log from the destination's
// position and sends batches, at most MaxInFlight unacknowledged at a time.
type Sender struct {
	cfg  Config
	log  Log
	sink Sink
	wake chan struct{}

	mu       sync.Mutex
	stats    Stats
	oldestMS int64 // TimeMS of the oldest unacknowledged change; 0: caught up
	stall    StallState
	waiting  bool // sends are out and none has answered since the last progress
}

// NewSender returns a Sender; cfg is validated and defaulted.
func NewSender(cfg Config, log Log, sink Sink) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sender{cfg: cfg, log: log, sink: sink, wake: make(chan struct{}, 1), stall: cfg.Resume}
	if s.stall.ProgressAt.IsZero() {
		s.stall.ProgressAt = cfg.Now()
	}
	return s, nil
}

// Wake tells the Sender that the destination may have become reachable
// (say a peer's pings came back): a pause between retries ends at once,
// and sends that have been waiting for an answer for much longer than a
// round trip are given up and made again.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NoteProgress records that the stream is making progress by other means
// than batches (a resync shipping chunks).
func (s *Sender) NoteProgress() {
	s.mu.Lock()
	s.progressLocked()
	s.mu.Unlock()
}

// StallState returns the stall bookkeeping, for a later Sender of the
// same stream (Config.Resume).
func (s *Sender) StallState() StallState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stall
}

// LagMS returns Stats().LagMS alone: the age of the oldest change not
// acknowledged yet, in ms.
func (s *Sender) LagMS() int64 {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oldestMS != 0 {
		return max(now.UnixMilli()-s.oldestMS, 0)
	}
	return s.stats.LagMS
}

// Stats returns the sender's current statistics.
func (s *Sender) Stats() Stats {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	// The lag is the age of the oldest unacknowledged change now: it keeps
	// growing while nothing happens (a destination that stopped answering).
	if s.oldestMS != 0 {
		st.LagMS = max(now.UnixMilli()-s.oldestMS, 0)
	}
	st.LastError = s.stall.Err
	if st.Err != nil && st.LastError == nil {
		st.LastError = st.Err
	}
	if d, ok := s.stalledLocked(now); ok {
		st.Stalled, st.StalledFor, st.StallReason = true, d, s.reasonLocked()
	}
	return st
}

// stalledLocked reports whether the stream is stalled at now, and since
// how long it has made no progress.
func (s *Sender) stalledLocked(now time.Time) (time.Duration, bool) {
	d := now.Sub(s.stall.ProgressAt)
	return d, d > s.cfg.StallAfter+s.cfg.rtt()
}

// reasonLocked says why the stream makes no progress.
func (s *Sender) reasonLocked() string {
	st := &s.stats
	switch {
	case st.Err != nil:
		return "stopped: " + s.cfg.Reason(st.Err)
	case s.stall.Err != nil:
		return s.cfg.Reason(s.stall.Err)
	case s.waiting:
		return "no answer from the destination"
	case st.Acked < st.Applied:
		return fmt.Sprintf("destination acknowledges %d, source at %d", st.Acked, st.Applied)
	}
	return "no successful answer from the destination"
}

// progressLocked records progress: the stall, if any, is over.
func (s *Sender) progressLocked() {
	now := s.cfg.Now()
	if !s.stall.WarnedAt.IsZero() {
		s.cfg.Logger.Info("stream resumed", "stream", s.cfg.Stream, "acked", s.stats.Acked,
			"stalled_for", now.Sub(s.stall.ProgressAt).Round(time.Millisecond))
	}
	s.stall = StallState{ProgressAt: now}
	s.waiting = false
}

// checkStall logs a stall when it is first seen and then every
// StallLogEvery, and returns when to look again.
func (s *Sender) checkStall() time.Time {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	d, stalled := s.stalledLocked(now)
	if !stalled {
		return s.stall.ProgressAt.Add(s.cfg.StallAfter + s.cfg.rtt() + time.Millisecond)
	}
	if s.stall.WarnedAt.IsZero() || now.Sub(s.stall.WarnedAt) >= s.cfg.StallLogEvery {
		s.stall.WarnedAt = now
		s.cfg.Logger.Warn("stream stalled", "stream", s.cfg.Stream, "acked", s.stats.Acked, "applied", s.stats.Applied,
			"stalled_for", d.Round(time.Millisecond), "reason", s.reasonLocked())
	}
	return s.stall.WarnedAt.Add(s.cfg.StallLogEvery)
}

// flight is one sent, unacknowledged batch.
type flight struct {
	batch Batch
	probe bool      // asks the destination for its position
	at    time.Time // when it was sent
}

type result struct {
	f   *flight
	ack Ack
	err error
	// timedOut is the timeout the send ran out of, if it did.
	timedOut time.Duration
}

// closedSample says: every change with a time at or before closedMS is at
// or below index at.
type closedSample struct {
	at       uint64
	closedMS int64
}

const maxClosedSamples = 64

// maxBatchChanges bounds the number of changes in one batch, whatever
// their size (changes without data cost a few bytes each on the wire).
const maxBatchChanges = 1 << 16

// errWoken is the cause of an attempt given up by Wake.
var errWoken = errors.New("stream: sends given up after the destination became reachable again")

// run is the state of one Run call; only its goroutine touches it.
type run struct {
	s        *Sender
	results  chan result
	inflight []*flight
	wg       sync.WaitGroup

	parent  context.Context
	attempt context.Context // cancelled when a send of the attempt fails
	cancel  context.CancelFunc

	window   int    // batches allowed in flight now: 1 while probing (after a failure), MaxInFlight once the destination answered
	probing  bool   // the destination's position is unknown
	acked    uint64 // destination's position
	sent     uint64 // dispatched through
	applied  uint64
	failures int           // failed attempts in a row (since the last successful answer)
	repaired bool          // a gap was repaired and no send has succeeded since
	slowest  time.Duration // the recent slowest answer (decays by 1/8 at each answer)

	pending      []Change // read, not yet sent: (sent, pending end]
	pendingBytes int
	pendingSince time.Time
	lastSend     time.Time
	oldestMS     int64
	behindMS     int64 // since when (Unix ms) the destination has been behind; 0 if caught up
	samples      []closedSample
	stallCheck   time.Time // when to look for a stall again
}

// Run ships the stream until ctx is done or the stream cannot continue:
// it returns ctx's error, or a wrapped ErrCompacted, ErrStaleEpoch,
// ErrWrongCluster or ErrChangeTooLarge. It starts by asking the
// destination for its position (an empty batch following index 0) and
// does so again after every failed send, so delivery is at least once and
// every attempt ships in order; a batch refused with ErrGap instead
// restarts the stream at once from the position the destination gave.
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
		if now := cfg.Now(); !now.Before(r.stallCheck) {
			r.stallCheck = r.s.checkStall()
		}
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
		wait = min(wait, r.stallCheck.Sub(cfg.Now()))
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.s.log.Notify():
		case <-timer.C:
		case <-r.s.wake:
			if err := r.woken(); err != nil {
				return err
			}
		case res := <-r.results:
			if err := r.handle(res); err != nil {
				return err
			}
		}
	}
}

// woken handles Wake outside a pause: sends that have waited for an
// answer much longer than a round trip (sent into a partition that has
// since healed) are given up, and the stream asks again at once.
func (r *run) woken() error {
	if len(r.inflight) == 0 {
		return nil
	}
	oldest := r.inflight[0].at
	for _, f := range r.inflight[1:] {
		if f.at.Before(oldest) {
			oldest = f.at
		}
	}
	if time.Since(oldest) < 2*r.s.cfg.rtt()+100*time.Millisecond {
		return nil
	}
	r.s.cfg.Logger.Debug("stream sends given up on wake", "stream", r.s.cfg.Stream, "acked", r.acked)
	r.restart()
	r.probing, r.window = true, 1
	r.publish()
	return nil
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
		if end < applied && r.pendingBytes < cfg.MaxBatchBytes && len(r.pending) < maxBatchChanges {
			changes, err := r.s.log.Read(end, applied, cfg.MaxBatchBytes-r.pendingBytes)
			if err != nil {
				if errors.Is(err, ErrCompacted) && cfg.OnCompacted != nil {
					cfg.OnCompacted(r.acked)
				}
				if errors.Is(err, ErrCompacted) && cfg.Resync != nil {
					r.restart()
					if err := r.resync(); err != nil {
						return err
					}
					return r.fill() // go on from where the resync left the destination
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
		full := r.pendingBytes >= cfg.MaxBatchBytes || len(r.pending) >= maxBatchChanges
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
			n, size := r.cut()
			if c := r.pending[0]; n == 1 && len(c.Data) > cfg.MaxChangeBytes {
				if err := r.tooLarge(c); err != nil {
					return err
				}
				return r.fill()
			}
			b := r.batch(r.sent, r.pending[:n])
			r.sent = r.pending[n-1].Index
			r.pending = append([]Change(nil), r.pending[n:]...)
			r.pendingBytes -= size
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

// cut returns how many of the pending changes the next batch takes, and
// their data size: as many as fit MaxBatchBytes (and maxBatchChanges),
// at least one; a change above MaxChangeBytes is always alone.
func (r *run) cut() (int, int) {
	cfg := &r.s.cfg
	size := len(r.pending[0].Data)
	n := 1
	for n < len(r.pending) && n < maxBatchChanges && size <= cfg.MaxChangeBytes &&
		size+len(r.pending[n].Data) <= cfg.MaxBatchBytes && len(r.pending[n].Data) <= cfg.MaxChangeBytes {
		size += len(r.pending[n].Data)
		n++
	}
	return n, size
}

// tooLarge handles a change no batch can carry: the destination is
// brought up to date by data if the Sender can resync, else the stream
// stops, loudly.
func (r *run) tooLarge(c Change) error {
	cfg := &r.s.cfg
	err := fmt.Errorf("stream %d: change %d holds %d bytes, limit %d: %w", cfg.Stream, c.Index, len(c.Data), cfg.MaxChangeBytes, ErrChangeTooLarge)
	if cfg.Resync == nil {
		return err
	}
	cfg.Logger.Warn("stream change too large for a batch; resyncing the destination instead", "stream", cfg.Stream, "err", err)
	r.restart()
	return r.resync()
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
		// The batch was cut to fit; this is a bug, not the destination's
		// doing.
		return fmt.Errorf("stream %d: %w", r.s.cfg.Stream, err)
	}
	f.at = time.Now()
	r.inflight = append(r.inflight, f)
	r.lastSend = f.at
	r.s.mu.Lock()
	st := &r.s.stats
	if len(f.batch.Changes) == 0 {
		st.Heartbeats++
	} else {
		st.Batches++
		st.BatchBytes += uint64(raw)
	}
	st.Bytes += uint64(raw)
	st.WireBytes += uint64(len(wire))
	st.PeakInFlight = max(st.PeakInFlight, len(r.inflight))
	if len(r.inflight) == 1 {
		r.s.waiting = true
	}
	r.s.mu.Unlock()
	r.wg.Add(1)
	ctx, b := r.attempt, f.batch
	timeout := r.sendTimeout()
	go func() {
		defer r.wg.Done()
		sctx, cancel := context.WithTimeout(ctx, timeout)
		ack, err := r.s.sink.Send(sctx, b)
		var timedOut time.Duration
		if err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("stream: no answer within %v: %w", timeout, err)
			timedOut = timeout
		}
		cancel()
		r.results <- result{f: f, ack: ack, err: err, timedOut: timedOut}
	}()
	return nil
}

// sendTimeout is how long a send may wait for its answer (see
// Config.SendTimeout).
func (r *run) sendTimeout() time.Duration {
	cfg := &r.s.cfg
	return min(max(cfg.SendTimeout, 4*r.slowest), 10*cfg.SendTimeout) + cfg.rtt()
}

// handle processes the answer to one batch.
func (r *run) handle(res result) error {
	cfg := &r.s.cfg
	r.remove(res.f)
	switch {
	case res.err == nil:
		r.slowest = max(time.Since(res.f.at), r.slowest-r.slowest/8)
	case res.timedOut > 0:
		// Slower than allowed: the next sends wait longer (4x), so that a
		// destination slower than SendTimeout is still heard.
		r.slowest = max(r.slowest, res.timedOut)
	}
	if res.err == nil && res.ack.Epoch > cfg.Epoch {
		res.err = fmt.Errorf("%w: destination at epoch %d, stream at %d", ErrStaleEpoch, res.ack.Epoch, cfg.Epoch)
	}
	if errors.Is(res.err, ErrStaleEpoch) || errors.Is(res.err, ErrWrongCluster) {
		r.noteFailure(res.err)
		return fmt.Errorf("stream %d: %w", cfg.Stream, res.err)
	}
	if errors.Is(res.err, ErrGap) && !res.f.probe && !r.repaired {
		return r.repair(res.ack, res.err)
	}
	if res.err != nil {
		return r.rewind(res.err)
	}
	r.failures, r.repaired = 0, false
	if res.f.probe {
		moved := res.ack.Applied > r.acked
		r.probing = false
		r.acked, r.sent = res.ack.Applied, res.ack.Applied
		r.window = cfg.MaxInFlight
		r.answered(moved)
		if r.acked == 0 && cfg.Resync != nil {
			return r.resync()
		}
		return nil
	}
	r.answered(r.advance(res.ack.Applied))
	r.window = cfg.MaxInFlight
	return nil
}

// answered records a successful answer: progress if it moved the
// destination's position or the destination has everything.
func (r *run) answered(moved bool) {
	if !moved {
		applied, _ := r.s.log.Applied()
		moved = r.acked >= applied
	}
	r.s.mu.Lock()
	if moved {
		r.s.stats.Acked = r.acked
		r.s.progressLocked()
	} else {
		r.s.waiting = len(r.inflight) > 0
	}
	r.s.mu.Unlock()
}

// repair handles a batch the destination refused because changes before
// it are missing (ErrGap, say batches in flight that were lost or
// reordered): the answer carries the destination's position, from which
// the stream restarts at once, without asking again and without a pause.
// The first batch after a repair goes alone; if it gaps too the stream
// falls back to the paced retry.
func (r *run) repair(ack Ack, cause error) error {
	cfg := &r.s.cfg
	cfg.Logger.Debug("stream gap repaired", "stream", cfg.Stream, "from", ack.Applied, "err", cause)
	r.s.mu.Lock()
	r.s.stats.GapRepairs++
	r.s.stall.Err = cause
	r.s.mu.Unlock()
	// The batches in flight before the refused one are likely to apply
	// (the network reordered them): their answers are waited for, not
	// given up, and what they say counts too. If the destination's cursor
	// went back instead (a resync reset it), the next batch gaps again,
	// and the paced retry asks.
	r.drain()
	r.restart()
	r.acked = max(r.acked, ack.Applied)
	r.sent = r.acked
	r.probing, r.window, r.repaired = false, 1, true
	r.publish()
	if r.acked == 0 && cfg.Resync != nil {
		return r.resync()
	}
	return nil
}

// restart ends the current attempt (its sends are cancelled and waited
// for) and begins a new one with nothing pending.
func (r *run) restart() {
	r.cancel()
	r.drain()
	r.attempt, r.cancel = context.WithCancel(r.parent)
	r.pending, r.pendingBytes = nil, 0
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
			r.noteFailure(err)
			return fmt.Errorf("stream %d: resync: %w", r.s.cfg.Stream, err)
		}
		if r.parent.Err() != nil {
			return r.parent.Err()
		}
		return r.rewind(fmt.Errorf("resync: %w", err))
	}
	r.pending, r.pendingBytes = nil, 0
	r.acked, r.sent = at, at
	r.probing, r.window, r.failures = false, r.s.cfg.MaxInFlight, 0
	r.answered(true)
	r.publish()
	return nil
}

// advance moves the acknowledged position forward and reports whether it
// moved.
func (r *run) advance(to uint64) bool {
	if to <= r.acked {
		return false
	}
	r.acked = to
	if r.sent < to { // the destination got further than this attempt sent
		r.sent = to
		r.pending, r.pendingBytes = nil, 0
	}
	return true
}

// noteFailure records a failed send for the statistics and the stall
// bookkeeping.
func (r *run) noteFailure(cause error) {
	r.s.mu.Lock()
	r.s.stats.Retries++
	r.s.stall.Err = cause
	r.s.mu.Unlock()
}

// rewind handles a failed send: it stops the attempt, waits out its sends,
// pauses (see Config.RetryBackoff), and has the next attempt start by
// asking the destination where it is.
func (r *run) rewind(cause error) error {
	cfg := &r.s.cfg
	r.failures++
	r.repaired = false
	cfg.Logger.Debug("stream send failed", "stream", cfg.Stream, "acked", r.acked, "failures", r.failures, "err", cause)
	r.noteFailure(cause)
	r.cancel()
	r.drain()
	r.pending, r.pendingBytes = nil, 0
	r.probing, r.window = true, 1
	r.publish()
	if err := r.pause(cfg.backoff(r.failures)); err != nil {
		return err
	}
	r.attempt, r.cancel = context.WithCancel(r.parent)
	return nil
}

// pause waits d, or until Wake or the end of Run.
func (r *run) pause(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.s.wake:
	case <-r.parent.Done():
		return r.parent.Err()
	}
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
			r.answered(r.advance(res.ack.Applied))
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
