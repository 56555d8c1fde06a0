package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// ConvergeWorkloadName is the workload name of an active-convergence
// report, and PhaseConverge the phase of its progress.
const (
	ConvergeWorkloadName = "converge"
	PhaseConverge        = "converge"
)

// ConvergeTarget is what the converge workload needs of an active
// (multi-writer) keyspace: a writer and an eventual reader in every region.
type ConvergeTarget struct {
	// Label names the target in the report.
	Label string
	// Regions that write and read, two or more.
	Regions []string
	// NewWriter opens a connection writing in region.
	NewWriter func(ctx context.Context, region string) (Conn, error)
	// NewReader opens a connection reading in region from the local
	// replica without waiting (eventual).
	NewReader func(ctx context.Context, region string) (Conn, error)
}

// ConvergeParams describes a convergence run: rounds of conflicting
// writes, one per region at the same moment, each followed by polling
// every region until they agree.
type ConvergeParams struct {
	// Rounds to run, or Duration of the run: exactly one is set.
	Rounds   int64
	Duration time.Duration
	// WarmupRounds are run first and left out of the figures (their
	// increments are counted): the first writes of a cluster set up its
	// streams between regions.
	WarmupRounds int
	// KeyPrefix is put in front of the keys; empty means "converge".
	KeyPrefix string
	// Poll is the pause between two sweeps of reads; 0 means 1 ms.
	Poll time.Duration
	// Timeout bounds the convergence of one round and the final counter
	// check; 0 means 10 s.
	Timeout time.Duration
	// ProgressInterval is how often progress is reported; 0 means every
	// second.
	ProgressInterval time.Duration
}

func (p *ConvergeParams) defaults() {
	if p.KeyPrefix == "" {
		p.KeyPrefix = "converge"
	}
	if p.Poll == 0 {
		p.Poll = DefaultLagPoll
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultLagTimeout
	}
	if p.ProgressInterval == 0 {
		p.ProgressInterval = time.Second
	}
}

// Validate returns an error describing the first problem with p, if any.
func (p ConvergeParams) Validate() error {
	p.defaults()
	switch {
	case p.Rounds < 0:
		return fmt.Errorf("bench: negative round count %d", p.Rounds)
	case p.Duration < 0:
		return fmt.Errorf("bench: negative duration %v", p.Duration)
	case p.Rounds > 0 && p.Duration > 0:
		return errors.New("bench: give a duration or a number of rounds (--ops), not both")
	case p.Rounds == 0 && p.Duration == 0:
		return errors.New("bench: give a duration or a number of rounds (--ops) (both are zero)")
	case p.Duration > 0 && p.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %v is shorter than a millisecond (a unit mistake?)", p.Duration)
	case p.WarmupRounds < 0:
		return fmt.Errorf("bench: negative warm-up round count %d", p.WarmupRounds)
	case p.Poll < 0:
		return fmt.Errorf("bench: negative poll interval %v", p.Poll)
	case p.Timeout < 0:
		return fmt.Errorf("bench: negative convergence timeout %v", p.Timeout)
	case p.ProgressInterval < 0:
		return fmt.Errorf("bench: negative progress interval %v", p.ProgressInterval)
	case strings.ContainsAny(p.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("bench: key prefix %q contains white space", p.KeyPrefix)
	}
	return nil
}

// ConvergeReport is the convergence of an active keyspace under
// conflicting writes. Times are in milliseconds, from the last write of a
// round acknowledged to the end of the first sweep of eventual reads in
// which every region returned the same value for the key and the counter
// the number of increments made so far (resolution: a sweep, about the
// poll interval).
type ConvergeReport struct {
	Regions    []string `json:"regions"`
	Key        string   `json:"key"`
	CounterKey string   `json:"counter_key"`
	// Rounds is the number of rounds written; Converged + Timeouts of
	// them were measured (an interrupted round is neither).
	Rounds    int64 `json:"rounds"`
	Converged int64 `json:"converged"`
	Timeouts  int64 `json:"timeouts"`
	// WarmupRounds ran before, out of the figures; WarmupMaxMS is the
	// longest convergence among them.
	WarmupRounds int64   `json:"warmup_rounds"`
	WarmupMaxMS  float64 `json:"warmup_max_ms"`
	// ReadErrors counts failed reads while polling (the polling goes on).
	ReadErrors int64   `json:"read_errors"`
	MeanMS     float64 `json:"mean_ms"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	// WriteSpreadP50MS and WriteSpreadMaxMS measure how far apart the
	// first and the last acknowledgement of a round were.
	WriteSpreadP50MS float64 `json:"write_spread_p50_ms"`
	WriteSpreadMaxMS float64 `json:"write_spread_max_ms"`
	// The floor (SetFloor): the largest one-way delay between two of the
	// regions (OneWayMS, between FloorFrom and FloorTo) plus fsync.
	OneWayMS        float64 `json:"one_way_ms"`
	FloorFrom       string  `json:"floor_from"`
	FloorTo         string  `json:"floor_to"`
	FsyncMS         float64 `json:"fsync_ms"`
	FloorMS         float64 `json:"floor_ms"`
	P50OverFloor    float64 `json:"p50_over_floor"`
	P99OverFloor    float64 `json:"p99_over_floor"`
	P99MinusFloorMS float64 `json:"p99_minus_floor_ms"`
	// Increments is the number of INCRs acknowledged (warm-up included);
	// FinalCounter the
	// counter each region read at the end, and CounterOK whether every
	// one equals Increments.
	Increments   int64            `json:"increments"`
	FinalCounter map[string]int64 `json:"final_counter"`
	CounterOK    bool             `json:"counter_ok"`
	// Wins counts, per region, the rounds whose value every region agreed
	// on was that region's write.
	Wins       map[string]int64 `json:"wins"`
	FirstError string           `json:"first_error,omitempty"`
}

// SetFloor records the floor, oneWay (between from and to) plus fsync,
// and the ratios to it.
func (c *ConvergeReport) SetFloor(oneWay, fsync time.Duration, from, to string) {
	c.OneWayMS, c.FloorFrom, c.FloorTo, c.FsyncMS = durMS(oneWay), from, to, durMS(fsync)
	c.FloorMS = durMS(oneWay + fsync)
	c.P50OverFloor, c.P99OverFloor = 0, 0
	if c.FloorMS > 0 {
		c.P50OverFloor = roundSig(c.P50MS/c.FloorMS, 4)
		c.P99OverFloor = roundSig(c.P99MS/c.FloorMS, 4)
	}
	c.P99MinusFloorMS = round(c.P99MS-c.FloorMS, 4)
}

// regionValue is the value region writes in round r.
func regionValue(region string, r int64) string { return region + "-" + strconv.FormatInt(r, 10) }

// RunConverge measures how fast an active keyspace converges: in every
// round one writer per region, released at the same moment, sets the same
// key to its own value (region-round) and increments a shared counter;
// then every region's eventual reader is read in sweeps, every p.Poll,
// until all return the same value, one of the round's, and the counter
// equals the increments acknowledged so far. The time from the round's
// last acknowledgement to the end of that sweep is its convergence time.
// After the last round every region's counter must equal the increments
// made: otherwise RunConverge fails. Write errors end the run with an
// error (the counter's expected value would be unknown).
func RunConverge(ctx context.Context, t ConvergeTarget, p ConvergeParams, progress func(Progress)) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p.defaults()
	switch {
	case t.NewWriter == nil || t.NewReader == nil:
		return nil, errors.New("bench: converge target without writers or readers")
	case len(t.Regions) < 2:
		return nil, fmt.Errorf("bench: the converge workload needs two regions or more, not %v", t.Regions)
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	n := len(t.Regions)
	var conns []Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	writers, readers := make([]Conn, n), make([]Conn, n)
	for i, region := range t.Regions {
		var err error
		if writers[i], err = t.NewWriter(ctx, region); err != nil {
			return nil, fmt.Errorf("bench: opening a writer in %s: %w", region, err)
		}
		conns = append(conns, writers[i])
		if readers[i], err = t.NewReader(ctx, region); err != nil {
			return nil, fmt.Errorf("bench: opening a reader in %s: %w", region, err)
		}
		conns = append(conns, readers[i])
	}
	// Keys of their own: a run starts from nothing.
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	key, counter := p.KeyPrefix+":"+id+":key", p.KeyPrefix+":"+id+":counter"

	cr := &ConvergeReport{Regions: slices.Clone(t.Regions), Key: key, CounterKey: counter,
		FinalCounter: map[string]int64{}, Wins: map[string]int64{}}
	var set, incr opStats
	var conv, spread Histogram
	var firstReadErr error
	var rounds, timeouts atomic.Int64
	var runErr error
	// runRound writes round r and times its convergence; it returns false
	// when the run must stop. A warm-up round counts its increments only.
	runRound := func(r int64, warm bool) bool {
		// The writes: every region at once.
		type write struct {
			ack         time.Time
			setD, incrD time.Duration
			err         error
			op          *opStats // the operation that failed
		}
		ws := make([]write, n)
		release := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				w := &ws[i]
				<-release
				t0 := time.Now()
				if _, w.err = writers[i].Do(ctx, "SET", key, regionValue(t.Regions[i], r)); w.err != nil {
					w.err, w.op = fmt.Errorf("SET in %s: %w", t.Regions[i], w.err), &set
					return
				}
				t1 := time.Now()
				w.setD = t1.Sub(t0)
				if _, w.err = writers[i].Do(ctx, "INCR", counter); w.err != nil {
					w.err, w.op = fmt.Errorf("INCR in %s: %w", t.Regions[i], w.err), &incr
					return
				}
				w.ack = time.Now()
				w.incrD = w.ack.Sub(t1)
			})
		}
		close(release)
		wg.Wait()
		var first, last time.Time
		for i := range ws {
			w := &ws[i]
			if w.err != nil {
				w.op.errors++
				if w.op.firstErr == nil {
					w.op.firstErr = w.err
				}
				if ctx.Err() == nil && runErr == nil {
					runErr = fmt.Errorf("bench: round %d: %w (the counter's value is unknown now: stopping)", r, w.err)
				}
				continue
			}
			if !warm {
				set.hist.RecordDuration(w.setD)
				incr.hist.RecordDuration(w.incrD)
			}
			cr.Increments++
			if first.IsZero() || w.ack.Before(first) {
				first = w.ack
			}
			if w.ack.After(last) {
				last = w.ack
			}
		}
		if runErr != nil || ctx.Err() != nil {
			return false // a failed write leaves the counter's value unknown
		}
		if warm {
			cr.WarmupRounds++
		} else {
			cr.Rounds++
			rounds.Add(1)
			spread.RecordDuration(last.Sub(first))
		}

		// The reads: sweeps until every region agrees.
		winner, at, state, readErrs, rerr := convergeSweeps(ctx, readers, t.Regions, key, counter, r, cr.Increments, p)
		cr.ReadErrors += readErrs
		if firstReadErr == nil {
			firstReadErr = rerr
		}
		switch {
		case ctx.Err() != nil:
		case winner == "":
			if !warm {
				cr.Timeouts++
				timeouts.Add(1)
			}
			if cr.FirstError == "" {
				cr.FirstError = fmt.Sprintf("round %d did not converge within %v: %s", r, p.Timeout, state)
			}
		case warm:
			cr.WarmupMaxMS = max(cr.WarmupMaxMS, durMS(at.Sub(last)))
		default:
			cr.Converged++
			cr.Wins[winner]++
			conv.RecordDuration(at.Sub(last))
		}
		return true
	}
	r := int64(0)
	for range p.WarmupRounds {
		r++
		if !runRound(r, true) {
			break
		}
	}

	start := time.Now()
	var deadline time.Time
	if p.Duration > 0 {
		deadline = start.Add(p.Duration)
	}
	stopProgress := progressTicker(PhaseConverge, start, p.ProgressInterval, func() (int64, int64) { return rounds.Load(), timeouts.Load() }, progress)
	for runErr == nil && ctx.Err() == nil {
		if (p.Rounds > 0 && cr.Rounds >= p.Rounds) || (p.Duration > 0 && !time.Now().Before(deadline)) {
			break
		}
		r++
		if !runRound(r, false) {
			break
		}
	}
	elapsed := time.Since(start)
	stopProgress(elapsed)

	// The final check: every region counts every increment.
	if runErr == nil && ctx.Err() == nil {
		cr.FinalCounter, cr.CounterOK = finalCounters(ctx, readers, t.Regions, counter, cr.Increments, p.Timeout)
		if !cr.CounterOK && ctx.Err() == nil {
			var got []string
			for _, region := range t.Regions {
				got = append(got, fmt.Sprintf("%s %d", region, cr.FinalCounter[region]))
			}
			runErr = fmt.Errorf("bench: the counter %s does not equal the %d increments acknowledged after %v: %s",
				counter, cr.Increments, p.Timeout, strings.Join(got, ", "))
		}
	}
	if cr.FirstError == "" && firstReadErr != nil {
		cr.FirstError = "read: " + firstReadErr.Error()
	}
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 4) }
	cr.MeanMS, cr.P50MS, cr.P95MS = round(conv.Mean()/1e6, 4), ms(conv.Quantile(0.5)), ms(conv.Quantile(0.95))
	cr.P99MS, cr.MaxMS = ms(conv.Quantile(0.99)), ms(conv.Max())
	cr.WriteSpreadP50MS, cr.WriteSpreadMaxMS = ms(spread.Quantile(0.5)), ms(spread.Max())

	rep := &Report{
		Target:   t.Label,
		Workload: ConvergeWorkloadName,
		Description: fmt.Sprintf("active convergence: each round every region (%s) writes the same key and increments a counter at once; eventual reads every %v until all agree",
			strings.Join(t.Regions, ", "), p.Poll),
		Clients:    n,
		DurationS:  p.Duration.Seconds(),
		Operations: p.Rounds,
		Started:    start.UTC().Truncate(time.Millisecond),
		ElapsedS:   round(elapsed.Seconds(), 3),
		Histograms: map[string]*Histogram{},
		Converge:   cr,
	}
	var total opStats
	total.merge(&set)
	total.merge(&incr)
	rep.Ops = []OpReport{set.report(OpUpdate.String(), elapsed), incr.report(OpIncr, elapsed)}
	rep.Total = total.report("total", elapsed)
	rep.Histograms[OpUpdate.String()] = set.hist.Clone()
	rep.Histograms[OpIncr] = incr.hist.Clone()
	rep.Histograms["total"] = total.hist.Clone()
	rep.Histograms["converge"] = conv.Clone()
	if runErr != nil {
		return rep, runErr
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if cr.Rounds > 0 && cr.Converged == 0 {
		return rep, fmt.Errorf("bench: no round converged within %v; %s", p.Timeout, cr.FirstError)
	}
	return rep, nil
}

// OpIncr names the INCR operations of the converge workload.
const OpIncr = "incr"

// regionRead is one region's answer in a sweep.
type regionRead struct {
	val string
	cnt int64
	ok  bool // both keys read
	err error
}

// convergeSweeps reads every region (concurrently) in sweeps until they
// all return the same value, one written in round r, and the counter
// want. It returns the region whose value won and the end of that sweep,
// or "" on timeout with the last sweep's state.
func convergeSweeps(ctx context.Context, readers []Conn, regions []string, key, counter string, r, want int64, p ConvergeParams) (winner string, at time.Time, state string, readErrs int64, firstErr error) {
	sctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	valueOf := map[string]string{}
	for _, region := range regions {
		valueOf[regionValue(region, r)] = region
	}
	reads := make([]regionRead, len(readers))
	for {
		var wg sync.WaitGroup
		for i, c := range readers {
			wg.Go(func() { reads[i] = readRegion(sctx, c, key, counter) })
		}
		wg.Wait()
		end := time.Now()
		agree := true
		for i := range reads {
			rd := &reads[i]
			if rd.err != nil && sctx.Err() == nil {
				readErrs++
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", regions[i], rd.err)
				}
			}
			agree = agree && rd.ok && rd.val == reads[0].val && rd.cnt == want
		}
		if agree && valueOf[reads[0].val] != "" {
			return valueOf[reads[0].val], end, "", readErrs, firstErr
		}
		select {
		case <-sctx.Done():
			var parts []string
			for i, rd := range reads {
				switch {
				case rd.ok:
					parts = append(parts, fmt.Sprintf("%s has %q and counter %d", regions[i], rd.val, rd.cnt))
				case rd.err != nil:
					parts = append(parts, fmt.Sprintf("%s: %v", regions[i], rd.err))
				default:
					parts = append(parts, regions[i]+" has nothing")
				}
			}
			return "", time.Time{}, fmt.Sprintf("%s (want one value of round %d and counter %d)", strings.Join(parts, "; "), r, want), readErrs, firstErr
		case <-time.After(p.Poll):
		}
	}
}

// readRegion reads the key and the counter at one region. Missing keys
// are not errors (not replicated yet), but not ok either.
func readRegion(ctx context.Context, c Conn, key, counter string) regionRead {
	var rd regionRead
	v, err := c.Do(ctx, "GET", key)
	if err == nil {
		rd.val, err = replyString(v)
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			rd.err = err
		}
		return rd
	}
	v, err = c.Do(ctx, "GET", counter)
	if err == nil {
		rd.cnt, err = replyInt(v)
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			rd.err = err
		}
		return rd
	}
	rd.ok = true
	return rd
}

// finalCounters reads the counter in every region until each equals want
// or timeout passes, and returns the last values read (-1: never read).
func finalCounters(ctx context.Context, readers []Conn, regions []string, counter string, want int64, timeout time.Duration) (map[string]int64, bool) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	got := map[string]int64{}
	for _, region := range regions {
		got[region] = -1
	}
	for {
		all := true
		for i, c := range readers {
			if got[regions[i]] == want {
				continue
			}
			v, err := c.Do(sctx, "GET", counter)
			if err == nil {
				if n, err := replyInt(v); err == nil {
					got[regions[i]] = n
				}
			} else if errors.Is(err, ErrNotFound) {
				got[regions[i]] = 0
			}
			all = all && got[regions[i]] == want
		}
		if all {
			return got, true
		}
		select {
		case <-sctx.Done():
			return got, false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeConvergeTable writes a convergence report.
func writeConvergeTable(w io.Writer, c *ConvergeReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "convergence\trounds\tconverged\ttimeouts\tmean ms\tp50 ms\tp95 ms\tp99 ms\tmax ms\tfloor ms\tp50/floor\tp99/floor\tp99-floor ms\t")
	ratio := func(x float64) string {
		if c.FloorMS <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.3g", x)
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", strings.Join(c.Regions, ","), c.Rounds, c.Converged, c.Timeouts,
		fmtMS(c.MeanMS), fmtMS(c.P50MS), fmtMS(c.P95MS), fmtMS(c.P99MS), fmtMS(c.MaxMS), fmtMS(c.FloorMS),
		ratio(c.P50OverFloor), ratio(c.P99OverFloor), fmt.Sprintf("%+.1f", c.P99MinusFloorMS))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "floor:     one-way %s -> %s %s ms + fsync %s ms = %s ms\n", c.FloorFrom, c.FloorTo, fmtMS(c.OneWayMS), fmtMS(c.FsyncMS), fmtMS(c.FloorMS))
	if c.WarmupRounds > 0 {
		fmt.Fprintf(w, "warm-up:   %d round(s) before, not counted above (convergence up to %s ms)\n", c.WarmupRounds, fmtMS(c.WarmupMaxMS))
	}
	fmt.Fprintf(w, "writes:    acknowledgements of a round within %s ms of each other (p50; max %s ms)\n", fmtMS(c.WriteSpreadP50MS), fmtMS(c.WriteSpreadMaxMS))
	var wins []string
	for _, r := range c.Regions {
		wins = append(wins, fmt.Sprintf("%s %d", r, c.Wins[r]))
	}
	fmt.Fprintf(w, "winners:   %s\n", strings.Join(wins, ", "))
	check := "OK"
	if !c.CounterOK {
		check = "MISMATCH"
	}
	var fc []string
	for _, r := range c.Regions {
		fc = append(fc, fmt.Sprintf("%s %d", r, c.FinalCounter[r]))
	}
	fmt.Fprintf(w, "counter:   %d increments; final counter %s: %s\n", c.Increments, strings.Join(fc, ", "), check)
	if c.ReadErrors > 0 {
		fmt.Fprintf(w, "read errors: %d\n", c.ReadErrors)
	}
	if c.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", c.FirstError)
	}
	return nil
}
