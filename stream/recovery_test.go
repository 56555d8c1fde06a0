package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// reorderSink delivers through Apply (flakySink without faults), but
// holds the first data batch following index 0 until a later batch has
// reached the destination, so that one arrives first and is refused with
// ErrGap, as batches in flight reordered by the network would be. It
// counts probes.
type reorderSink struct {
	*flakySink
	mu      sync.Mutex
	held    bool
	release chan struct{}
	probes  int
	gaps    int
}

func (s *reorderSink) Send(ctx context.Context, b Batch) (Ack, error) {
	s.mu.Lock()
	if b.Prev == 0 && len(b.Changes) == 0 {
		s.probes++
	}
	hold := b.Prev == 0 && len(b.Changes) > 0 && !s.held
	if hold {
		s.held = true
	}
	s.mu.Unlock()
	if hold {
		select {
		case <-s.release:
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		}
		return s.flakySink.Send(ctx, b)
	}
	ack, err := s.flakySink.Send(ctx, b)
	if errors.Is(err, ErrGap) {
		s.mu.Lock()
		first := s.gaps == 0
		s.gaps++
		s.mu.Unlock()
		if first {
			close(s.release)
		}
	}
	return ack, err
}

// TestSenderRepairsGapAtOnce: a batch refused with ErrGap makes the sender
// restart from the destination's position at once: no probe, no pause
// (the retry pause is an hour, so a paced retry would never finish), no
// retry counted.
func TestSenderRepairsGapAtOnce(t *testing.T) {
	log := newFakeLog()
	dst := openDB(t, "dst")
	sink := &reorderSink{flakySink: &flakySink{db: dst, epoch: 1}, release: make(chan struct{})}
	cfg := Config{MaxBatchBytes: 16, MaxInFlight: 2, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour,
		RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}
	const total = 40
	log.commit(kvChanges(1, total)...)
	s, _, _ := startSender(t, cfg, log, sink)
	await(t, "catch-up after the gap", func() bool { return s.Stats().Acked == total })
	st := s.Stats()
	sink.mu.Lock()
	probes, gaps := sink.probes, sink.gaps
	sink.mu.Unlock()
	if gaps == 0 || st.GapRepairs == 0 {
		t.Fatalf("no gap happened (gaps %d, stats %+v); the test does not test anything", gaps, st)
	}
	if probes != 1 || st.Retries != 0 {
		t.Fatalf("%d probes and %d retries after %d gaps: the sender asked again instead of repairing", probes, st.Retries, gaps)
	}
	_, seq, violation := sink.snapshot()
	if violation != "" || len(seq) != total {
		t.Fatalf("destination applied %v (%s)", seq, violation)
	}
}

// lyingSink reports a position far ahead of the destination's when asked,
// so that every batch gaps; once honest it answers truly.
type lyingSink struct {
	*flakySink
	mu     sync.Mutex
	honest bool
}

func (s *lyingSink) Send(ctx context.Context, b Batch) (Ack, error) {
	s.mu.Lock()
	honest := s.honest
	s.mu.Unlock()
	if !honest {
		if b.Prev == 0 && len(b.Changes) == 0 {
			return Ack{Applied: 1000}, nil
		}
		if b.Prev >= 1000 {
			return Ack{Applied: 1000}, fmt.Errorf("%w: batch follows %d, destination at 1000", ErrGap, b.Prev)
		}
	}
	return s.flakySink.Send(ctx, b)
}

// TestSenderGapLoopBacksOff: a gap right after a repair is not repaired
// again at once (that could spin): the sender falls back to its paced
// retry, and Wake cuts the pause short.
func TestSenderGapLoopBacksOff(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 1005)...)
	dst := openDB(t, "dst")
	sink := &lyingSink{flakySink: &flakySink{db: dst, epoch: 1}}
	cfg := Config{MaxBatchBytes: 1 << 10, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour,
		RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}
	s, _, _ := startSender(t, cfg, log, sink)
	await(t, "a paced retry", func() bool { return s.Stats().Retries == 1 })
	if st := s.Stats(); st.GapRepairs != 1 {
		t.Fatalf("stats %+v, want one repair then one paced retry", st)
	}
	sink.mu.Lock()
	sink.honest = true
	sink.mu.Unlock()
	s.Wake() // the pause is an hour: only Wake ends it
	await(t, "catch-up after Wake", func() bool { return s.Stats().Acked == 1005 })
}

// bigLog returns more than maxBytes asks for, as a source that turns log
// entries into larger changes (an active keyspace's merges) does.
type bigLog struct{ *fakeLog }

func (l bigLog) Read(from, to uint64, maxBytes int) ([]Change, error) {
	return l.fakeLog.Read(from, to, 1<<30)
}

// sizeSink records the change data of every batch it delivers.
type sizeSink struct {
	*flakySink
	mu    sync.Mutex
	sizes [][]int
}

func (s *sizeSink) Send(ctx context.Context, b Batch) (Ack, error) {
	var sizes []int
	for _, c := range b.Changes {
		sizes = append(sizes, len(c.Data))
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, sizes)
	s.mu.Unlock()
	return s.flakySink.Send(ctx, b)
}

func TestSenderSplitsBatches(t *testing.T) {
	log := newFakeLog()
	var cs []Change
	for i := uint64(1); i <= 60; i++ {
		// Sizes 1..300 bytes, some far above the batch limit.
		cs = append(cs, Change{Index: i, Data: fmt.Appendf(nil, "k%d=%s", i%7, bytes.Repeat([]byte("v"), int(i*i%300)))})
	}
	log.commit(cs...)
	dst := openDB(t, "dst")
	sink := &sizeSink{flakySink: &flakySink{db: dst, epoch: 1}}
	const limit = 100
	s, _, _ := startSender(t, Config{MaxBatchBytes: limit, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour}, bigLog{log}, sink)
	await(t, "catch-up", func() bool { return s.Stats().Acked == 60 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	batches := 0
	for _, sizes := range sink.sizes {
		if len(sizes) == 0 {
			continue
		}
		batches++
		total := 0
		for _, n := range sizes {
			total += n
		}
		if total > limit && len(sizes) > 1 {
			t.Fatalf("a batch of %d changes holds %d bytes of data, limit %d: %v", len(sizes), total, limit, sizes)
		}
	}
	if batches < 20 {
		t.Fatalf("%d batches for 60 changes of up to 300 bytes with a %d-byte limit", batches, limit)
	}
	_, seq, violation := sink.snapshot()
	if violation != "" || len(seq) != 60 {
		t.Fatalf("destination applied %d changes (%s)", len(seq), violation)
	}
}

func TestSenderChangeTooLarge(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 3)...)
	log.commit(Change{Index: 4, Data: append([]byte("big="), bytes.Repeat([]byte("x"), 600)...)})
	log.commit(kvChanges(5, 6)...)
	// Without a resync the stream stops, saying why, once the changes
	// before the large one are delivered.
	dst := openDB(t, "dst")
	s, done, _ := startSender(t, Config{MaxChangeBytes: 500, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour},
		log, &flakySink{db: dst, epoch: 1})
	if err := done(); !errors.Is(err, ErrChangeTooLarge) || !strings.Contains(err.Error(), "change 4 holds 604 bytes, limit 500") {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.Acked != 3 || !errors.Is(st.Err, ErrChangeTooLarge) {
		t.Fatalf("stats %+v", st)
	}
	// With one, the destination is brought up to date by data and the
	// stream goes on after it.
	dst2 := openDB(t, "dst2")
	sink2 := &flakySink{db: dst2, epoch: 1}
	var resyncs int
	var mu sync.Mutex
	cfg := Config{MaxChangeBytes: 500, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour,
		Resync: func(ctx context.Context) (uint64, error) {
			mu.Lock()
			resyncs++
			first := resyncs == 1
			mu.Unlock()
			// The data as of index 3 the first time (the destination is
			// empty), then as of 4, the large value included, and the
			// cursor with it, as a resync would leave the destination.
			cs := kvChanges(1, 3)
			if !first {
				cs = append(cs, Change{Index: 4, Data: []byte("big=shipped by data")})
			}
			ack, err := sink2.apply(Batch{Stream: 3, Epoch: 2, Cluster: cluster, Changes: cs})
			return ack.Applied, err
		}}
	s2, _, _ := startSender(t, cfg, log, sink2)
	await(t, "the stream past the large change", func() bool { return s2.Stats().Acked == 6 })
	mu.Lock()
	defer mu.Unlock()
	// One resync because the destination was empty, one for the change.
	if resyncs != 2 {
		t.Fatalf("%d resyncs", resyncs)
	}
}

// refusingSink refuses every data batch, as a destination refusing a
// batch it cannot take (say too large, or from a clock too far ahead)
// would; heartbeats and probes go through. accept turns it normal.
type refusingSink struct {
	*flakySink
	mu     sync.Mutex
	accept bool
	all    bool // refuse heartbeats (and probes) too
}

var errRefused = errors.New("refused: batch stamped ahead of the destination's clock")

func (s *refusingSink) Send(ctx context.Context, b Batch) (Ack, error) {
	s.mu.Lock()
	accept, all := s.accept, s.all
	s.mu.Unlock()
	if !accept && (len(b.Changes) > 0 || all) {
		return Ack{}, errRefused
	}
	return s.flakySink.Send(ctx, b)
}

// logBuffer collects log records for the tests.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestSenderStallIsLoud: a destination that refuses every batch makes the
// stream stalled after StallAfter: Stats say so and why, a warning is
// logged once (the next one only after StallLogEvery); it clears when
// batches go through again. A later Sender of the same stream that takes
// over the bookkeeping is stalled at once.
func TestSenderStallIsLoud(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 5)...)
	dst := openDB(t, "dst")
	sink := &refusingSink{flakySink: &flakySink{db: dst, epoch: 1}}
	logs := &logBuffer{}
	cfg := Config{BatchInterval: time.Millisecond, HeartbeatInterval: 5 * time.Millisecond, RetryBackoff: time.Millisecond,
		MaxRetryBackoff: 5 * time.Millisecond, StallAfter: 50 * time.Millisecond, StallLogEvery: time.Hour,
		Reason: func(err error) string { return "refused batch: " + err.Error() },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	s, _, cancel := startSender(t, cfg, log, sink)
	await(t, "the stall", func() bool { return s.Stats().Stalled })
	st := s.Stats()
	if st.StalledFor < 50*time.Millisecond || !strings.Contains(st.StallReason, "refused batch: refused: batch stamped ahead") ||
		!errors.Is(st.LastError, errRefused) || st.Acked != 0 {
		t.Fatalf("stats of the stalled stream %+v", st)
	}
	await(t, "the warning", func() bool { return logs.count("level=WARN msg=\"stream stalled\"") == 1 })
	// Many more retries, still a single warning.
	retries := st.Retries
	await(t, "more retries", func() bool { return s.Stats().Retries > retries+20 })
	if n := logs.count("level=WARN"); n != 1 || !strings.Contains(logs.String(), "reason=\"refused batch: refused") {
		t.Fatalf("%d warnings:\n%s", n, logs)
	}
	sink.mu.Lock()
	sink.accept = true
	sink.mu.Unlock()
	await(t, "recovery", func() bool { st := s.Stats(); return st.Acked == 5 && !st.Stalled })
	if st := s.Stats(); st.StallReason != "" || st.LastError != nil {
		t.Fatalf("after recovery %+v", st)
	}
	await(t, "the resumed note", func() bool { return logs.count("msg=\"stream resumed\"") == 1 })
	cancel()

	// Take-over: a Sender that inherits a stall begun long ago is stalled
	// at once, and does not warn again before StallLogEvery. The
	// destination refuses even its first probe, which would otherwise be
	// progress before the test reads the stats.
	sink.mu.Lock()
	sink.accept, sink.all = false, true
	sink.mu.Unlock()
	log.commit(kvChanges(6, 6)...)
	logs2 := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs2, nil))
	cfg.Resume = StallState{ProgressAt: time.Now().Add(-time.Minute), WarnedAt: time.Now().Add(-time.Second), Err: errRefused}
	s2, _, _ := startSender(t, cfg, log, sink)
	if st := s2.Stats(); !st.Stalled || st.StalledFor < time.Minute {
		t.Fatalf("taken-over stall %+v", st)
	}
	await(t, "retries of the new sender", func() bool { return s2.Stats().Retries > 3 })
	if n := logs2.count("level=WARN"); n != 0 {
		t.Fatalf("warned again %d times before StallLogEvery:\n%s", n, logs2)
	}
}

// TestSenderStallsWithoutAnswers: a destination that answers nothing at
// all (sends time out) makes an idle stream stalled too.
func TestSenderStallsWithoutAnswers(t *testing.T) {
	log := newFakeLog()
	sink := &stallingSink{started: make(chan uint64, 1024)}
	sink.answered = true // even the first data batch gets no answer
	cfg := Config{BatchInterval: time.Millisecond, HeartbeatInterval: 5 * time.Millisecond, SendTimeout: 10 * time.Millisecond,
		RetryBackoff: time.Millisecond, MaxRetryBackoff: 2 * time.Millisecond, StallAfter: 40 * time.Millisecond}
	log.commit(kvChanges(1, 2)...)
	s, _, _ := startSender(t, cfg, log, sink)
	await(t, "the stall", func() bool { return s.Stats().Stalled })
	st := s.Stats()
	if !strings.Contains(st.StallReason, "no answer within") || st.Retries == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// hangingSink never answers the first data batch until its send is given
// up; everything else goes through.
type hangingSink struct {
	*flakySink
	mu     sync.Mutex
	hung   bool
	hangAt chan struct{}
}

func (s *hangingSink) Send(ctx context.Context, b Batch) (Ack, error) {
	s.mu.Lock()
	hang := len(b.Changes) > 0 && !s.hung
	if hang {
		s.hung = true
	}
	s.mu.Unlock()
	if hang {
		close(s.hangAt)
		<-ctx.Done()
		return Ack{}, ctx.Err()
	}
	return s.flakySink.Send(ctx, b)
}

// TestSenderWakeGivesUpHungSends: a send made into a partition gets no
// answer; when the destination is reachable again, Wake gives it up and
// the stream goes on (the send timeout is an hour).
func TestSenderWakeGivesUpHungSends(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 4)...)
	dst := openDB(t, "dst")
	sink := &hangingSink{flakySink: &flakySink{db: dst, epoch: 1}, hangAt: make(chan struct{})}
	cfg := Config{BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour, SendTimeout: time.Hour,
		RetryBackoff: time.Hour, MaxRetryBackoff: time.Hour}
	s, _, _ := startSender(t, cfg, log, sink)
	<-sink.hangAt
	// Only sends older than a round trip (here 0) plus 100ms are given up.
	await(t, "a hung send old enough", func() bool {
		s.Wake()
		return s.Stats().Acked == 4
	})
}

func TestBackoffFromRTT(t *testing.T) {
	rtt := 40 * time.Millisecond
	c := Config{RTT: func() time.Duration { return rtt }}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{40, 80, 160, 320, 640, 1280, 2040, 2040}
	for i, w := range want {
		if got := c.backoff(i + 1); got != w*time.Millisecond {
			t.Fatalf("pause after %d failures: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	rtt = 0 // unknown: RetryBackoff
	if got := c.backoff(1); got != 100*time.Millisecond {
		t.Fatalf("first pause with no RTT: %v", got)
	}
}

// slowSink answers every send after a delay, longer than SendTimeout.
type slowSink struct {
	*flakySink
	delay time.Duration
}

func (s *slowSink) Send(ctx context.Context, b Batch) (Ack, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
	return s.flakySink.Send(ctx, b)
}

// TestSenderWaitsForASlowDestination: a destination slower than
// SendTimeout is still heard: after a timeout the sender waits longer,
// and then as long as the destination's recent answers need, instead of
// sending the same batches again and again.
func TestSenderWaitsForASlowDestination(t *testing.T) {
	log := newFakeLog()
	dst := openDB(t, "dst")
	sink := &slowSink{flakySink: &flakySink{db: dst, epoch: 1}, delay: 30 * time.Millisecond}
	cfg := Config{MaxBatchBytes: 16, MaxInFlight: 1, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour,
		SendTimeout: 10 * time.Millisecond, RetryBackoff: time.Millisecond, MaxRetryBackoff: time.Millisecond}
	log.commit(kvChanges(1, 30)...)
	s, _, _ := startSender(t, cfg, log, sink)
	await(t, "catch-up", func() bool { return s.Stats().Acked == 30 })
	if st := s.Stats(); st.Retries > 2 {
		t.Fatalf("%d retries for %d batches: the sender keeps timing out a slow destination", st.Retries, st.Batches)
	}
}
