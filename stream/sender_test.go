package stream

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/storage"
)

// fakeLog is a source group's committed log held in memory.
type fakeLog struct {
	mu        sync.Mutex
	changes   []Change // index i+1 at position i
	closed    int64
	compacted uint64 // indexes at or below are gone
	notify    chan struct{}
}

func newFakeLog() *fakeLog { return &fakeLog{notify: make(chan struct{}, 1)} }

func (l *fakeLog) commit(cs ...Change) {
	l.mu.Lock()
	l.changes = append(l.changes, cs...)
	l.mu.Unlock()
	l.ping()
}

func (l *fakeLog) setClosed(ms int64) {
	l.mu.Lock()
	l.closed = ms
	l.mu.Unlock()
	l.ping()
}

func (l *fakeLog) ping() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *fakeLog) Applied() (uint64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.changes)), l.closed
}

func (l *fakeLog) Read(from, to uint64, maxBytes int) ([]Change, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if from < l.compacted {
		return nil, ErrCompacted
	}
	var out []Change
	size := 0
	for i := from + 1; i <= to && i <= uint64(len(l.changes)); i++ {
		if len(out) > 0 && size+len(l.changes[i-1].Data) > maxBytes {
			break
		}
		out = append(out, l.changes[i-1])
		size += len(l.changes[i-1].Data)
	}
	return out, nil
}

func (l *fakeLog) Notify() <-chan struct{} { return l.notify }

// flakySink delivers to a destination group through Apply, but sometimes
// fails before applying, loses the ack after applying, applies twice, or
// is slow. It records how many sends ran at once.
type flakySink struct {
	db    *storage.DB
	epoch uint64

	mu         sync.Mutex
	rng        *rand.Rand
	faults     bool
	concurrent int
	peak       int
	appliedSeq []uint64 // indexes passed to apply, in order
	violation  string
}

var errInjected = errors.New("injected network failure")

func (s *flakySink) Send(ctx context.Context, b Batch) (Ack, error) {
	s.mu.Lock()
	s.concurrent++
	s.peak = max(s.peak, s.concurrent)
	roll := 100
	if s.faults {
		roll = s.rng.IntN(100)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.concurrent--
		s.mu.Unlock()
	}()
	if roll < 10 { // slow link
		select {
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	if roll < 15 {
		return Ack{}, errInjected // lost on the way
	}
	ack, err := s.apply(b)
	if roll < 25 {
		ack, err = s.apply(b) // duplicated on the way
	}
	if err == nil && roll < 32 {
		return Ack{}, errInjected // applied, ack lost
	}
	return ack, err
}

func (s *flakySink) apply(batch Batch) (Ack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	ack, err := Apply(b, dstGroup, cluster, batch, s.epoch, func(sb *storage.Batch, c Change) error {
		if n := len(s.appliedSeq); n > 0 && c.Index <= s.appliedSeq[n-1] {
			s.violation = "change applied twice or out of order"
		}
		s.appliedSeq = append(s.appliedSeq, c.Index)
		return kvApply(sb, c)
	})
	if err != nil {
		b.Close()
		return ack, err
	}
	return ack, b.Commit(false)
}

func (s *flakySink) snapshot() (peak int, seq []uint64, violation string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, append([]uint64(nil), s.appliedSeq...), s.violation
}

// await polls cond until it holds or the test has waited too long.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startSender runs a sender until the test ends; wait returns Run's result.
func startSender(t *testing.T, cfg Config, log Log, sink Sink) (s *Sender, wait func() error, cancel context.CancelFunc) {
	t.Helper()
	cfg.Stream, cfg.Cluster = 3, cluster
	if cfg.Epoch == 0 {
		cfg.Epoch = 2
	}
	s, err := NewSender(cfg, log, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = s.Run(ctx); close(done) }()
	wait = func() error { <-done; return runErr }
	t.Cleanup(func() { cancel(); <-done })
	return s, wait, cancel
}

func TestSenderDeliversThroughFaults(t *testing.T) {
	log := newFakeLog()
	dst := openDB(t, "dst")
	sink := &flakySink{db: dst, epoch: 1, rng: rand.New(rand.NewPCG(1, 2)), faults: true}
	const maxInFlight = 3
	cfg := Config{MaxBatchBytes: 64, MaxInFlight: maxInFlight, BatchInterval: time.Millisecond,
		HeartbeatInterval: 5 * time.Millisecond, RetryBackoff: time.Millisecond}
	s, _, _ := startSender(t, cfg, log, sink)

	ref := openDB(t, "ref")
	const total = 400
	for i := uint64(1); i <= total; i += 20 {
		cs := kvChanges(i, i+19)
		for j := range cs {
			cs[j].TimeMS = time.Now().UnixMilli()
		}
		log.commit(cs...)
		b := ref.NewBatch()
		for _, c := range cs {
			_ = kvApply(b, c)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	log.setClosed(time.Now().UnixMilli())
	await(t, "catch-up", func() bool { st := s.Stats(); return st.Acked == total && st.LagEntries == 0 })

	peak, seq, violation := sink.snapshot()
	if violation != "" {
		t.Fatal(violation)
	}
	if len(seq) != total || seq[0] != 1 || seq[total-1] != total {
		t.Fatalf("destination applied %d changes, want %d in order", len(seq), total)
	}
	if peak > maxInFlight {
		t.Fatalf("%d sends at once, limit %d", peak, maxInFlight)
	}
	st := s.Stats()
	if st.PeakInFlight > maxInFlight || st.PeakInFlight < 2 {
		t.Fatalf("peak in flight %d, want 2..%d", st.PeakInFlight, maxInFlight)
	}
	if st.Retries == 0 || st.Batches < total*4/64 || st.LagMS != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Data: the destination's user keys equal the source's applied state.
	var got, want []string
	_ = dst.Scan(dstGroup, nil, nil, func(k, v []byte) bool { got = append(got, string(k)+"="+string(v)); return true })
	_ = ref.Scan(dstGroup, nil, nil, func(k, v []byte) bool { want = append(want, string(k)+"="+string(v)); return true })
	if len(got) != 5 || len(got) != len(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("keys %v, want %v", got, want)
		}
	}
}

func TestSenderHeartbeatsAndLag(t *testing.T) {
	log := newFakeLog()
	dst := openDB(t, "dst")
	sink := &flakySink{db: dst, epoch: 1}
	cfg := Config{MaxBatchBytes: 1 << 10, MaxInFlight: 2, BatchInterval: time.Millisecond,
		HeartbeatInterval: 2 * time.Millisecond, RetryBackoff: time.Millisecond}
	s, _, _ := startSender(t, cfg, log, sink)

	// No writes at all: heartbeats alone move the destination's closed
	// timestamp, twice.
	for _, closed := range []int64{5000, 9000} {
		log.setClosed(closed)
		await(t, "closed timestamp via heartbeat", func() bool {
			c, _, _ := dst.Cursor(dstGroup, 3)
			return c.ClosedMS == closed
		})
	}
	// Writes are reflected in lag until acknowledged, then lag is zero.
	old := time.Now().UnixMilli() - 10_000
	log.commit(Change{Index: 1, TimeMS: old, Data: []byte("a=1")})
	await(t, "catch-up", func() bool {
		st := s.Stats()
		return st.Acked == 1 && st.LagEntries == 0 && st.LagMS == 0
	})
	if st := s.Stats(); st.Heartbeats < 2 || st.Batches != 1 {
		t.Fatalf("stats %+v", st)
	}
	if v, ok, _ := dst.Get(dstGroup, []byte("a")); !ok || string(v) != "1" {
		t.Fatalf("destination has a=%q", v)
	}
}

// stallingSink answers the probe and the first data batch, then never
// answers until the send is cancelled, so later batches stay
// unacknowledged.
type stallingSink struct {
	mu       sync.Mutex
	answered bool
	started  chan uint64
}

func (s *stallingSink) Send(ctx context.Context, b Batch) (Ack, error) {
	if b.Prev == 0 && len(b.Changes) == 0 {
		return Ack{}, nil // the probe: the destination is empty
	}
	s.mu.Lock()
	first := !s.answered
	s.answered = true
	s.mu.Unlock()
	if first {
		return Ack{Applied: b.Last()}, nil
	}
	s.started <- b.Last()
	<-ctx.Done()
	return Ack{}, ctx.Err()
}

func TestSenderLagWhileDestinationStalls(t *testing.T) {
	log := newFakeLog()
	sink := &stallingSink{started: make(chan uint64, 16)}
	cfg := Config{MaxBatchBytes: 8, MaxInFlight: 2, BatchInterval: time.Millisecond, HeartbeatInterval: time.Hour}
	old := time.Now().UnixMilli() - 60_000
	for i := uint64(1); i <= 50; i++ {
		log.commit(Change{Index: i, TimeMS: old + int64(i), Data: []byte("k=12345")})
	}
	s, _, _ := startSender(t, cfg, log, sink)
	<-sink.started
	<-sink.started
	// The first batch is acknowledged, the next two are in flight.
	await(t, "lag stats", func() bool {
		st := s.Stats()
		return st.Applied == 50 && st.Acked > 0 && st.InFlight == 2 && st.LagEntries == 50-st.Acked && st.LagMS >= 60_000
	})
	// The backlog stays in the log: nothing beyond the window was read or
	// sent.
	if st := s.Stats(); st.Batches != 3 || st.Bytes > 3*64 {
		t.Fatalf("stats with a stalled destination %+v", st)
	}
	// LagMS alone says what Stats says (the lag grows with the clock, so
	// it is read between two Stats).
	before := s.Stats().LagMS
	lag := s.LagMS()
	if after := s.Stats().LagMS; lag < before || lag > after || lag < 60_000 {
		t.Fatalf("LagMS %d, Stats said %d then %d", lag, before, after)
	}
}

func TestSenderReportsCompaction(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 10)...)
	log.compacted = 5
	dst := openDB(t, "dst")
	var reported []uint64
	var mu sync.Mutex
	cfg := Config{OnCompacted: func(acked uint64) { mu.Lock(); reported = append(reported, acked); mu.Unlock() }}
	s, done, _ := startSender(t, cfg, log, &flakySink{db: dst, epoch: 1})
	err := done()
	if !errors.Is(err, ErrCompacted) || !errors.Is(s.Stats().Err, ErrCompacted) {
		t.Fatalf("Run: %v, stats err %v", err, s.Stats().Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0] != 0 {
		t.Fatalf("OnCompacted calls %v, want [0]", reported)
	}
}

func TestSenderStopsOnStaleEpoch(t *testing.T) {
	log := newFakeLog()
	log.commit(kvChanges(1, 3)...)
	dst := openDB(t, "dst")
	_, done, _ := startSender(t, Config{Epoch: 2}, log, &flakySink{db: dst, epoch: 3})
	if err := done(); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("Run: %v", err)
	}
	if _, ok, _ := dst.Cursor(dstGroup, 3); ok {
		t.Fatal("a stale stream wrote a cursor")
	}
}
