package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run, as Progress.Phase names them.
const (
	PhaseLoad = "load"
	PhaseRun  = "run"
)

// Progress is what Run tells its progress callback, once per
// Params.ProgressInterval and once at the end of each phase.
type Progress struct {
	Phase   string        // PhaseLoad or PhaseRun
	Elapsed time.Duration // since the phase started
	Ops     int64         // operations finished in the phase so far, errors included
	Errors  int64         // of which failed
	Rate    float64       // operations per second since the previous report
	Final   bool          // the last report of the phase
}

// Run benchmarks t with p: it opens p.Clients clients, writes every record
// once (unless p.NoLoad), then runs the workload for p.Duration or
// p.Operations and returns the report. progress, if not nil, is called from
// one goroutine at a time. Run closes the clients it opened, not t.
//
// Run checks p before opening anything. If ctx ends, Run stops early and
// returns the partial report with ctx's error; if every operation of a phase
// failed it returns the report with an error quoting the first failure.
func Run(ctx context.Context, t Target, p Params, progress func(Progress)) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("bench: no target")
	}
	clients := make([]Client, 0, p.Clients)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range p.Clients {
		c, err := t.NewClient(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: opening client %d of %d to %s: %w", i+1, p.Clients, t.Name(), err)
		}
		clients = append(clients, c)
	}
	if n := p.pipeline(); n > 1 {
		for _, c := range clients {
			if _, ok := c.(Pipeliner); !ok {
				return nil, fmt.Errorf("%w: %s with a pipeline of %d (use a RESP target, or a pipeline of 1)", ErrNoPipeline, t.Name(), n)
			}
		}
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	r := &runner{p: p, clients: clients, progress: progress, interval: p.ProgressInterval}
	if r.interval <= 0 {
		r.interval = time.Second
	}
	rep := newReport(t.Name(), p)
	if !p.NoLoad {
		stats, elapsed := r.phase(ctx, PhaseLoad, r.loadClient)
		h := stats[OpInsert]
		or := h.report(OpInsert.String(), elapsed)
		rep.Load = &or
		rep.LoadElapsedS = round(elapsed.Seconds(), 3)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if h.hist.Count() == 0 && h.errors > 0 {
			return rep, fmt.Errorf("bench: every insert of the load phase failed; the first: %v", h.firstErr)
		}
	}
	r.inserted.Store(p.Records)
	r.acked.init(p.Records)
	var before Counters
	var meterErr error
	if p.Meter != nil {
		before, meterErr = p.Meter.Read(ctx)
	}
	cpu0 := processCPU()
	stats, elapsed := r.phase(ctx, PhaseRun, r.runClient)
	cpu := processCPU() - cpu0
	rep.fill(stats, elapsed)
	if p.Meter != nil && ctx.Err() == nil {
		var after Counters
		if meterErr == nil {
			after, meterErr = p.Meter.Read(ctx)
		}
		if meterErr == nil {
			rep.Costs = newCostReport(before, after, rep.writes())
			if p.InProcess && cpu > 0 && rep.Total.Count > 0 {
				rep.Costs.CPUMSPerOp = roundSig(float64(cpu.Microseconds())/1000/float64(rep.Total.Count), 4)
			}
		} else {
			rep.Notes = append(rep.Notes, "costs not measured: "+meterErr.Error())
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Total.Count == 0 && rep.Total.Errors > 0 {
		return rep, fmt.Errorf("bench: every operation failed; the first: %s", rep.firstError())
	}
	return rep, nil
}

type runner struct {
	p        Params
	clients  []Client
	progress func(Progress)
	interval time.Duration

	// Per phase.
	done   atomic.Int64 // operations finished
	errs   atomic.Int64 // operations failed
	ticket atomic.Int64 // load: next record; run: operations started

	// Run phase: records inserted (next insert index) and acknowledged.
	inserted atomic.Int64
	acked    ackCounter
}

// opStats accumulates one operation kind for one client (then merged).
type opStats struct {
	hist     Histogram
	errors   int64
	notFound int64
	firstErr error
}

func (s *opStats) merge(o *opStats) {
	s.hist.Merge(&o.hist)
	s.errors += o.errors
	s.notFound += o.notFound
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

type phaseStats [numOps]opStats

// phase runs body on every client concurrently, reporting progress, and
// returns the merged statistics and the phase's wall time.
func (r *runner) phase(ctx context.Context, name string, body func(ctx context.Context, i int, st *phaseStats)) (*phaseStats, time.Duration) {
	r.done.Store(0)
	r.errs.Store(0)
	r.ticket.Store(0)
	per := make([]phaseStats, len(r.clients))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range r.clients {
		wg.Go(func() { body(ctx, i, &per[i]) })
	}
	stopProgress := progressTicker(name, start, r.interval, func() (int64, int64) { return r.done.Load(), r.errs.Load() }, r.progress)
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress(elapsed)
	var total phaseStats
	for i := range per {
		for o := range total {
			total[o].merge(&per[i][o])
		}
	}
	return &total, elapsed
}

// progressTicker reports a phase's progress from counts every interval,
// until the returned function is called with the phase's duration: it
// stops the ticker and reports the final figures.
func progressTicker(phase string, start time.Time, interval time.Duration, counts func() (ops, errs int64), report func(Progress)) func(elapsed time.Duration) {
	finished := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		lastOps, lastT := int64(0), start
		for {
			select {
			case <-finished:
				return
			case now := <-tk.C:
				ops, errs := counts()
				report(Progress{Phase: phase, Elapsed: now.Sub(start), Ops: ops, Errors: errs, Rate: rate(ops-lastOps, now.Sub(lastT))})
				lastOps, lastT = ops, now
			}
		}
	}()
	return func(elapsed time.Duration) {
		close(finished)
		<-tickerDone
		ops, errs := counts()
		report(Progress{Phase: phase, Elapsed: elapsed, Ops: ops, Errors: errs, Rate: rate(ops, elapsed), Final: true})
	}
}

func rate(ops int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(ops) / d.Seconds()
}

// clientSeed derives an independent seed for client i (SplitMix64).
// clientStart returns what client i's run phase draws from: its random
// source, the key prefix, its key chooser, and the end of a timed run
// (zero for a run of a number of operations).
func (r *runner) clientStart(i int) (*rand.Rand, string, KeyChooser, time.Time) {
	seed := clientSeed(r.p.Seed, i)
	keys, err := NewKeyChooser(r.p.distribution(), r.p.Records, r.acked.load, seed)
	if err != nil { // Validate has checked the distribution
		panic(err)
	}
	var deadline time.Time
	if r.p.Duration > 0 {
		deadline = time.Now().Add(r.p.Duration)
	}
	return newRand(seed, 200), r.p.keyPrefix(), keys, deadline
}

func clientSeed(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// valueBuf is a client's value: random printable bytes, with a counter
// stamped at the front of every write so that successive values differ.
type valueBuf struct {
	b []byte
	n uint64
}

func newValueBuf(size int, rng *rand.Rand) *valueBuf {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, size)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return &valueBuf{b: b}
}

func (v *valueBuf) next() []byte {
	v.n++
	x := v.n
	for i := 0; i < len(v.b) && i < 8; i++ {
		v.b[i] = 'a' + byte(x%26)
		x /= 26
	}
	return v.b
}

// do times one operation and books it. It returns false when ctx has ended
// (the operation is then not counted).
func (r *runner) do(ctx context.Context, st *opStats, f func() error) bool {
	t0 := time.Now()
	err := f()
	return r.book(ctx, st, time.Since(t0), err)
}

// book counts one operation that took d and ended with err. It returns
// false when ctx has ended (the operation is then not counted).
func (r *runner) book(ctx context.Context, st *opStats, d time.Duration, err error) bool {
	switch {
	case err == nil:
		st.hist.RecordDuration(d)
	case errors.Is(err, ErrNotFound):
		st.hist.RecordDuration(d)
		st.notFound++
	case ctx.Err() != nil:
		return false
	default:
		st.errors++
		r.errs.Add(1)
		if st.firstErr == nil {
			st.firstErr = err
		}
	}
	r.done.Add(1)
	return true
}

func (r *runner) loadClient(ctx context.Context, i int, st *phaseStats) {
	if r.p.pipeline() > 1 {
		r.loadPipelined(ctx, i, st)
		return
	}
	c := r.clients[i]
	rng := newRand(clientSeed(r.p.Seed, i), 100)
	val := newValueBuf(r.p.ValueSize, rng)
	prefix := r.p.keyPrefix()
	for ctx.Err() == nil {
		rec := r.ticket.Add(1) - 1
		if rec >= r.p.Records {
			return
		}
		key := KeyName(prefix, rec)
		if !r.do(ctx, &st[OpInsert], func() error { return c.Update(ctx, key, val.next()) }) {
			return
		}
	}
}

func (r *runner) runClient(ctx context.Context, i int, st *phaseStats) {
	if r.p.pipeline() > 1 {
		r.runPipelined(ctx, i, st)
		return
	}
	c := r.clients[i]
	rng, prefix, keys, deadline := r.clientStart(i)
	val := newValueBuf(r.p.ValueSize, rng)
	w := r.p.Workload
	for ctx.Err() == nil {
		if r.p.Operations > 0 {
			if r.ticket.Add(1) > r.p.Operations {
				return
			}
		} else if !time.Now().Before(deadline) {
			return
		}
		op := w.choose(rng.Float64())
		var ok bool
		switch op {
		case OpRead:
			key := KeyName(prefix, keys.Next())
			ok = r.do(ctx, &st[OpRead], func() error { _, err := c.Read(ctx, key); return err })
		case OpUpdate:
			key := KeyName(prefix, keys.Next())
			ok = r.do(ctx, &st[OpUpdate], func() error { return c.Update(ctx, key, val.next()) })
		case OpInsert:
			rec := r.inserted.Add(1) - 1
			key := KeyName(prefix, rec)
			ok = r.do(ctx, &st[OpInsert], func() error { return c.Update(ctx, key, val.next()) })
			// Acknowledge even a failed insert so that the latest chooser
			// keeps moving; a read of it is then counted as not found.
			r.acked.ack(rec)
		case OpRMW:
			key := KeyName(prefix, keys.Next())
			ok = r.do(ctx, &st[OpRMW], func() error {
				if _, err := c.Read(ctx, key); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				return c.Update(ctx, key, val.next())
			})
		}
		if !ok {
			return
		}
	}
}

// batch is one pipelined batch of a client: the operations (as the
// workload counts them) and the commands sent for them.
type batch struct {
	ops  []batchEntry
	cmds []BatchOp
	vals []*valueBuf // one per command slot, so that the batch's writes differ
}

// batchEntry is one operation of a batch: its kind, its first command in
// cmds (a read-modify-write has two: the read, then the write) and, for an
// insert, its record.
type batchEntry struct {
	op  Op
	cmd int
	rec int64
}

func newBatch(n, valueSize int, rng *rand.Rand) *batch {
	b := &batch{ops: make([]batchEntry, 0, n), cmds: make([]BatchOp, 0, 2*n)}
	for range 2 * n {
		b.vals = append(b.vals, newValueBuf(valueSize, rng))
	}
	return b
}

func (b *batch) reset() {
	b.ops, b.cmds = b.ops[:0], b.cmds[:0]
}

// add appends operation op on key; a write (update, insert, the second
// half of a read-modify-write) gets a fresh value.
func (b *batch) add(op Op, key string, rec int64) {
	b.ops = append(b.ops, batchEntry{op: op, cmd: len(b.cmds), rec: rec})
	if op == OpRead || op == OpRMW {
		b.cmds = append(b.cmds, BatchOp{Key: key})
	}
	if op != OpRead {
		b.cmds = append(b.cmds, BatchOp{Key: key, Write: true, Value: b.vals[len(b.cmds)].next()})
	}
}

// outcome is the result of entry e once the batch has run.
func (b *batch) outcome(e batchEntry) error {
	if e.op != OpRMW {
		return b.cmds[e.cmd].Err
	}
	if err := b.cmds[e.cmd].Err; err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return b.cmds[e.cmd+1].Err
}

// send runs the batch on c and books every operation with the batch's
// latency: from sending the first command to reading the last reply. It
// returns false when ctx has ended.
func (r *runner) send(ctx context.Context, c Pipeliner, b *batch, st *phaseStats) bool {
	t0 := time.Now()
	_ = c.Pipeline(ctx, b.cmds) // the outcomes are in b.cmds
	d := time.Since(t0)
	for _, e := range b.ops {
		err := b.outcome(e)
		if e.op == OpInsert && e.rec >= 0 {
			// A run-phase insert is acknowledged even when it failed, as
			// in runClient.
			r.acked.ack(e.rec)
		}
		if !r.book(ctx, &st[e.op], d, err) {
			return false
		}
	}
	return ctx.Err() == nil
}

// take reserves up to n tickets out of limit and returns how many it got
// and the first one; 0 when they are all gone.
func (r *runner) take(n int, limit int64) (int, int64) {
	first := r.ticket.Add(int64(n)) - int64(n)
	if first >= limit {
		return 0, first
	}
	return int(min(int64(n), limit-first)), first
}

// loadPipelined is loadClient with Params.Pipeline records in flight.
func (r *runner) loadPipelined(ctx context.Context, i int, st *phaseStats) {
	c := r.clients[i].(Pipeliner)
	n := r.p.pipeline()
	b := newBatch(n, r.p.ValueSize, newRand(clientSeed(r.p.Seed, i), 100))
	prefix := r.p.keyPrefix()
	for ctx.Err() == nil {
		k, first := r.take(n, r.p.Records)
		if k == 0 {
			return
		}
		b.reset()
		for rec := first; rec < first+int64(k); rec++ {
			b.add(OpInsert, KeyName(prefix, rec), -1) // not run-phase inserts: nothing to acknowledge
		}
		if !r.send(ctx, c, b, st) {
			return
		}
	}
}

// runPipelined is runClient with Params.Pipeline operations in flight: it
// draws a batch of operations from the workload, sends them at once and
// books each with the batch's latency.
func (r *runner) runPipelined(ctx context.Context, i int, st *phaseStats) {
	c := r.clients[i].(Pipeliner)
	n := r.p.pipeline()
	rng, prefix, keys, deadline := r.clientStart(i)
	b := newBatch(n, r.p.ValueSize, rng)
	w := r.p.Workload
	for ctx.Err() == nil {
		k := n
		if r.p.Operations > 0 {
			if k, _ = r.take(n, r.p.Operations); k == 0 {
				return
			}
		} else if !time.Now().Before(deadline) {
			return
		}
		b.reset()
		for range k {
			switch op := w.choose(rng.Float64()); op {
			case OpInsert:
				rec := r.inserted.Add(1) - 1
				b.add(op, KeyName(prefix, rec), rec)
			default:
				b.add(op, KeyName(prefix, keys.Next()), -1)
			}
		}
		if !r.send(ctx, c, b, st) {
			return
		}
	}
}

// ackCounter tracks inserts that finished, possibly out of order, and
// exposes the length of the finished prefix: records below it may be read.
type ackCounter struct {
	mu      sync.Mutex
	limit   atomic.Int64
	pending map[int64]struct{}
}

func (a *ackCounter) init(n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limit.Store(n)
	a.pending = map[int64]struct{}{}
}

func (a *ackCounter) ack(i int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.limit.Load()
	if i != l {
		a.pending[i] = struct{}{}
		return
	}
	l++
	for {
		if _, ok := a.pending[l]; !ok {
			break
		}
		delete(a.pending, l)
		l++
	}
	a.limit.Store(l)
}

func (a *ackCounter) load() int64 { return a.limit.Load() }
