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

// StalenessWorkloadName is the workload name of a bounded-staleness
// report, and PhaseStaleness the phase of its progress.
const (
	StalenessWorkloadName = "staleness"
	PhaseStaleness        = "staleness"
)

// StalenessTarget is what the staleness workload needs: a writer in the
// home region and readers in every region reading at bounded(D).
type StalenessTarget struct {
	// Label names the target in the report.
	Label string
	// Home is the region written.
	Home string
	// Regions are the regions read, Home included.
	Regions []string
	// NewWriter opens a connection writing in Home.
	NewWriter func(ctx context.Context) (Conn, error)
	// NewReader opens a connection reading in region at bounded(D), D
	// being StalenessParams.Staleness (e.g. with MERIDIAN.CONSISTENCY as
	// a connect command).
	NewReader func(ctx context.Context, region string) (Conn, error)
}

// StalenessParams describes a bounded-staleness run.
type StalenessParams struct {
	// Staleness is D, the bound the readers ask for.
	Staleness time.Duration
	// Duration of the run.
	Duration time.Duration
	// Readers per region; 0 means 1.
	Readers int
	// Pause between two reads of a reader; 0 means 1 ms.
	Pause time.Duration
	// KeyPrefix is put in front of the key; empty means "staleness".
	KeyPrefix string
	// ProgressInterval is how often progress is reported; 0 means every
	// second.
	ProgressInterval time.Duration
}

// DefaultStaleness is the bound D of the staleness workload by default.
const DefaultStaleness = time.Second

func (p *StalenessParams) defaults() {
	if p.Readers == 0 {
		p.Readers = 1
	}
	if p.Pause == 0 {
		p.Pause = time.Millisecond
	}
	if p.KeyPrefix == "" {
		p.KeyPrefix = "staleness"
	}
	if p.ProgressInterval == 0 {
		p.ProgressInterval = time.Second
	}
}

// Validate returns an error describing the first problem with p, if any.
func (p StalenessParams) Validate() error {
	p.defaults()
	switch {
	case p.Staleness <= 0:
		return fmt.Errorf("bench: the staleness bound must be positive, not %v", p.Staleness)
	case p.Staleness < time.Millisecond:
		return fmt.Errorf("bench: staleness bound %v is shorter than a millisecond, Meridian's resolution (a unit mistake?)", p.Staleness)
	case p.Staleness > 24*time.Hour:
		return fmt.Errorf("bench: staleness bound %v is longer than a day (a unit mistake?)", p.Staleness)
	case p.Duration <= 0:
		return fmt.Errorf("bench: the staleness workload needs a positive duration, not %v (it runs for a time, not a number of operations)", p.Duration)
	case p.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %v is shorter than a millisecond (a unit mistake?)", p.Duration)
	case p.Readers < 0:
		return fmt.Errorf("bench: readers per region must be at least 1, not %d", p.Readers)
	case p.Readers > MaxClients:
		return fmt.Errorf("bench: %d readers per region is more than the limit of %d", p.Readers, MaxClients)
	case p.Pause < 0:
		return fmt.Errorf("bench: negative pause %v", p.Pause)
	case p.ProgressInterval < 0:
		return fmt.Errorf("bench: negative progress interval %v", p.ProgressInterval)
	case strings.ContainsAny(p.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("bench: key prefix %q contains white space", p.KeyPrefix)
	}
	return nil
}

// StalenessReport is what the bounded reads of one region returned.
type StalenessReport struct {
	Region string `json:"region"`
	// BoundMS is D, the staleness bound asked for.
	BoundMS float64 `json:"bound_ms"`
	// Reads counts successful reads: Local ones (answered at bounded
	// consistency by the region's replica), Strong ones (the replica was
	// not fresh enough: the read went to the leader) and Other (any
	// other level, which should not happen).
	Reads      int64   `json:"reads"`
	Local      int64   `json:"local"`
	Strong     int64   `json:"strong"`
	Other      int64   `json:"other"`
	LocalShare float64 `json:"local_share"`
	Errors     int64   `json:"errors"`
	// Staleness as MERIDIAN.LAST's staleness_ms reports it (strong
	// answers at 0); UnknownStaleness counts answers without one (-1),
	// OverBound those above D.
	StalenessMeanMS  float64 `json:"staleness_mean_ms"`
	StalenessP50MS   float64 `json:"staleness_p50_ms"`
	StalenessP99MS   float64 `json:"staleness_p99_ms"`
	StalenessMaxMS   float64 `json:"staleness_max_ms"`
	UnknownStaleness int64   `json:"unknown_staleness"`
	OverBound        int64   `json:"over_bound"`
	// ReadP50MS and ReadP99MS are the latencies of the reads (the GET
	// alone).
	ReadP50MS float64 `json:"read_p50_ms"`
	ReadP99MS float64 `json:"read_p99_ms"`
	// Checked counts reads that started more than D after a write was
	// acknowledged (so could be checked); Violations those that returned
	// a value older than one acknowledged more than D before they
	// started. Violations must be 0.
	Checked    int64  `json:"checked"`
	Violations int64  `json:"violations"`
	FirstError string `json:"first_error,omitempty"`
}

// ackLog records when the writer's values were acknowledged, in the
// order of the acknowledgements (the writer writes one value at a time,
// increasing).
type ackLog struct {
	mu     sync.RWMutex
	values []int64
	acks   []time.Time
}

func (l *ackLog) add(value int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.values = append(l.values, value)
	l.acks = append(l.acks, at)
}

// before returns the newest value acknowledged strictly before t (0:
// none).
func (l *ackLog) before(t time.Time) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(l.acks, t, func(a, t time.Time) int { return a.Compare(t) })
	if i == 0 { // acks[:i] are before t
		return 0
	}
	return l.values[i-1]
}

// stalenessStats accumulates one region's reads.
type stalenessStats struct {
	stale, lat                                       Histogram
	local, strong, other, errors, unknown, overBound int64
	checked, violations                              int64
	firstErr                                         error
}

func (s *stalenessStats) merge(o *stalenessStats) {
	s.stale.Merge(&o.stale)
	s.lat.Merge(&o.lat)
	s.local += o.local
	s.strong += o.strong
	s.other += o.other
	s.errors += o.errors
	s.unknown += o.unknown
	s.overBound += o.overBound
	s.checked += o.checked
	s.violations += o.violations
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

func (s *stalenessStats) fail(err error) {
	s.errors++
	if s.firstErr == nil {
		s.firstErr = err
	}
}

func (s *stalenessStats) report(region string, bound time.Duration) StalenessReport {
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 4) }
	r := StalenessReport{
		Region: region, BoundMS: durMS(bound), Local: s.local, Strong: s.strong, Other: s.other,
		Errors: s.errors, UnknownStaleness: s.unknown, OverBound: s.overBound,
		StalenessMeanMS: round(s.stale.Mean()/1e6, 4), StalenessP50MS: ms(s.stale.Quantile(0.5)),
		StalenessP99MS: ms(s.stale.Quantile(0.99)), StalenessMaxMS: ms(s.stale.Max()),
		ReadP50MS: ms(s.lat.Quantile(0.5)), ReadP99MS: ms(s.lat.Quantile(0.99)),
		Checked: s.checked, Violations: s.violations,
	}
	r.Reads = r.Local + r.Strong + r.Other
	if r.Reads > 0 {
		r.LocalShare = roundSig(float64(r.Local)/float64(r.Reads), 4)
	}
	if s.firstErr != nil {
		r.FirstError = s.firstErr.Error()
	}
	return r
}

// RunStaleness measures bounded-staleness reads: a writer in t.Home sets a
// key to 1, 2, 3... back to back, noting when each value was acknowledged,
// while p.Readers readers per region read the key at bounded(D) (the
// connections' level), each read followed by MERIDIAN.LAST for how it was
// served (bounded: locally, or strong) and its staleness_ms. A read that
// returns a value older than one acknowledged more than D before it
// started is a violation; RunStaleness fails if there is any.
func RunStaleness(ctx context.Context, t StalenessTarget, p StalenessParams, progress func(Progress)) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p.defaults()
	switch {
	case t.NewWriter == nil || t.NewReader == nil:
		return nil, errors.New("bench: staleness target without a writer or readers")
	case len(t.Regions) == 0:
		return nil, errors.New("bench: the staleness workload needs a region to read in")
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	var conns []Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	w, err := t.NewWriter(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: opening the writer in %s: %w", t.Home, err)
	}
	conns = append(conns, w)
	type reader struct {
		region int
		c      Conn
		st     stalenessStats
	}
	var readers []*reader
	for ri, region := range t.Regions {
		for range p.Readers {
			c, err := t.NewReader(ctx, region)
			if err != nil {
				return nil, fmt.Errorf("bench: opening a reader in %s: %w", region, err)
			}
			conns = append(conns, c)
			readers = append(readers, &reader{region: ri, c: c})
		}
	}
	key := p.KeyPrefix + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)
	boundMS := float64(p.Staleness) / 1e6
	var acks ackLog
	var write opStats
	var reads, readErrs atomic.Int64
	start := time.Now()
	// The commands run under ctx, not the run's deadline, so that the
	// last ones finish rather than fail: the run ends when the loops see
	// the deadline passed.
	deadline := start.Add(p.Duration)
	running := func() bool { return ctx.Err() == nil && time.Now().Before(deadline) }

	var wg sync.WaitGroup
	wg.Go(func() {
		for n := int64(1); running(); n++ {
			t0 := time.Now()
			_, err := w.Do(ctx, "SET", key, strconv.FormatInt(n, 10))
			at := time.Now()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				write.errors++
				if write.firstErr == nil {
					write.firstErr = err
				}
				continue // not acknowledged: not in the log
			}
			write.hist.RecordDuration(at.Sub(t0))
			acks.add(n, at)
		}
	})
	for _, r := range readers {
		wg.Go(func() {
			for running() {
				readStart := time.Now()
				v, err := r.c.Do(ctx, "GET", key)
				readEnd := time.Now()
				var val int64
				if err == nil {
					val, err = replyInt(v)
				} else if errors.Is(err, ErrNotFound) {
					err = nil // nothing written yet: value 0
				}
				var last LastAnswer
				if err == nil {
					var lv any
					if lv, err = r.c.Do(ctx, "MERIDIAN.LAST"); err == nil {
						last, err = parseLast(lv)
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					r.st.fail(err)
					readErrs.Add(1)
				} else {
					reads.Add(1)
					r.st.lat.RecordDuration(readEnd.Sub(readStart))
					switch lvl := strings.ToLower(last.Consistency); {
					case strings.HasPrefix(lvl, "bounded"):
						r.st.local++
					case lvl == "strong":
						r.st.strong++
					default:
						r.st.other++
					}
					if last.StalenessMS < 0 {
						r.st.unknown++
					} else {
						r.st.stale.Record(last.StalenessMS * 1e6)
						if float64(last.StalenessMS) > boundMS {
							r.st.overBound++
						}
					}
					if want := acks.before(readStart.Add(-p.Staleness)); want > 0 {
						r.st.checked++
						if val < want {
							r.st.violations++
							if r.st.firstErr == nil {
								r.st.firstErr = fmt.Errorf("a read at %s returned %d, but %d was acknowledged more than %v before the read started (served %s, staleness_ms %d)",
									readStart.UTC().Format(time.RFC3339Nano), val, want, p.Staleness, last.Consistency, last.StalenessMS)
							}
						}
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(p.Pause, max(time.Until(deadline), 0))):
				}
			}
		})
	}
	stopProgress := progressTicker(PhaseStaleness, start, p.ProgressInterval, func() (int64, int64) { return reads.Load() + readErrs.Load(), readErrs.Load() }, progress)
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress(elapsed)

	per := make([]stalenessStats, len(t.Regions))
	var read opStats
	for _, r := range readers {
		per[r.region].merge(&r.st)
		read.hist.Merge(&r.st.lat)
		read.errors += r.st.errors
		if read.firstErr == nil && r.st.errors > 0 {
			read.firstErr = r.st.firstErr
		}
	}
	rep := &Report{
		Target:   t.Label,
		Workload: StalenessWorkloadName,
		Description: fmt.Sprintf("bounded staleness: a writer in %s sets a key to 1, 2, 3...; %d reader(s) per region (%s) read it at bounded(%v)",
			t.Home, p.Readers, strings.Join(t.Regions, ", "), p.Staleness),
		Clients:    1 + len(readers),
		DurationS:  p.Duration.Seconds(),
		Started:    start.UTC().Truncate(time.Millisecond),
		ElapsedS:   round(elapsed.Seconds(), 3),
		Histograms: map[string]*Histogram{},
	}
	var total opStats
	total.merge(&read)
	total.merge(&write)
	rep.Ops = []OpReport{read.report(OpRead.String(), elapsed), write.report(OpUpdate.String(), elapsed)}
	rep.Total = total.report("total", elapsed)
	rep.Histograms[OpRead.String()] = read.hist.Clone()
	rep.Histograms[OpUpdate.String()] = write.hist.Clone()
	rep.Histograms["total"] = total.hist.Clone()
	var violations, checked int64
	var firstViolation string
	for i, region := range t.Regions {
		sr := per[i].report(region, p.Staleness)
		rep.Staleness = append(rep.Staleness, sr)
		rep.Histograms["staleness "+region] = per[i].stale.Clone()
		violations += sr.Violations
		checked += sr.Checked
		if sr.Violations > 0 && firstViolation == "" {
			firstViolation = region + ": " + sr.FirstError
		}
	}
	if checked == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no read started more than %v after a write was acknowledged: no read could be checked for violations (run longer than the bound)", p.Staleness))
	}
	if violations > 0 {
		return rep, fmt.Errorf("bench: %d bounded read(s) returned a value older than one acknowledged more than %v before they started; the first in %s", violations, p.Staleness, firstViolation)
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Total.Count == 0 && rep.Total.Errors > 0 {
		return rep, fmt.Errorf("bench: every operation failed; the first: %s", rep.Total.FirstError)
	}
	if write.hist.Count() == 0 {
		return rep, fmt.Errorf("bench: no write was acknowledged in %v; the first error: %v", p.Duration, write.firstErr)
	}
	return rep, nil
}

// writeStalenessTable writes the staleness of every region as a table.
func writeStalenessTable(w io.Writer, rs []StalenessReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	nameW := len("bounded reads")
	for _, r := range rs {
		nameW = max(nameW, len(r.Region))
	}
	fmt.Fprintf(tw, "%-*s\treads\terrors\tlocal\tstrong\tother\tlocal share\tread p50 ms\tp99 ms\tstaleness p50 ms\tp99 ms\tmax ms\tbound ms\tover bound\tchecked\tviolations\t\n", nameW, "bounded reads")
	for _, r := range rs {
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", nameW, r.Region, r.Reads, r.Errors,
			r.Local, r.Strong, r.Other, 100*r.LocalShare, fmtMS(r.ReadP50MS), fmtMS(r.ReadP99MS),
			fmtMS(r.StalenessP50MS), fmtMS(r.StalenessP99MS), fmtMS(r.StalenessMaxMS), fmtMS(r.BoundMS),
			r.OverBound, r.Checked, r.Violations)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if r.UnknownStaleness > 0 {
			fmt.Fprintf(w, "%s: %d answers without a staleness (-1)\n", r.Region, r.UnknownStaleness)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "first error in %s: %s\n", r.Region, r.FirstError)
		}
	}
	return nil
}
