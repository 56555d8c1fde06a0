package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// PhaseLag is the phase of RunLag, as Progress.Phase names it.
const PhaseLag = "lag"

// LagWorkloadName is the workload name of a replication-lag report.
const LagWorkloadName = "lag"

// LagTarget is what the lag workload needs of a replicated system: clients
// that write in one region and clients that read locally (eventual reads)
// in each of the others.
type LagTarget struct {
	// Label names the target in the report.
	Label string
	// From is the region written (a keyspace's primary or home region).
	From string
	// Regions are the regions read, From excluded.
	Regions []string
	// NewWriter opens a client writing in From.
	NewWriter func(ctx context.Context) (Client, error)
	// NewReader opens a client reading in region, at a level that answers
	// from the local replica without waiting (eventual).
	NewReader func(ctx context.Context, region string) (Client, error)
}

// LagParams describes a replication-lag run: Clients writers each write a
// new value, then poll every region until the value is visible there, and
// start over.
type LagParams struct {
	// Clients is the number of concurrent writers (each with one reader
	// per region).
	Clients int
	// Duration of the run, or Operations: the number of values written,
	// shared by all writers. Exactly one is set.
	Duration   time.Duration
	Operations int64
	// Records is the number of distinct keys each writer cycles through
	// (spreading the writes over the shards). 0 means 1000.
	Records int64
	// ValueSize is the size of every value written; 0 means 256.
	ValueSize int
	// KeyPrefix is put in front of every key; empty means "lag".
	KeyPrefix string
	// Poll is the interval between two reads of one region; 0 means 1 ms.
	Poll time.Duration
	// Timeout bounds how long a value may take to show up in a region;
	// 0 means 10 s. A value not seen by then counts as a timeout.
	Timeout time.Duration
	// ProgressInterval is how often RunLag reports progress; 0 means every
	// second.
	ProgressInterval time.Duration
}

// Default poll interval and timeout of the lag workload.
const (
	DefaultLagPoll    = time.Millisecond
	DefaultLagTimeout = 10 * time.Second
)

func (p *LagParams) defaults() {
	if p.Records == 0 {
		p.Records = 1000
	}
	if p.ValueSize == 0 {
		p.ValueSize = 256
	}
	if p.KeyPrefix == "" {
		p.KeyPrefix = "lag"
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
func (p LagParams) Validate() error {
	p.defaults()
	switch {
	case p.Clients <= 0:
		return fmt.Errorf("bench: clients must be at least 1, not %d", p.Clients)
	case p.Clients > MaxClients:
		return fmt.Errorf("bench: %d clients is more than the limit of %d", p.Clients, MaxClients)
	case p.Records < 0:
		return fmt.Errorf("bench: records must be at least 1, not %d", p.Records)
	case p.ValueSize < 0:
		return fmt.Errorf("bench: value size must be at least 1 byte, not %d", p.ValueSize)
	case p.ValueSize > MaxValueSize:
		return fmt.Errorf("bench: value size %d bytes is larger than the limit of %d (16 MiB)", p.ValueSize, MaxValueSize)
	case p.Duration < 0:
		return fmt.Errorf("bench: negative duration %v", p.Duration)
	case p.Operations < 0:
		return fmt.Errorf("bench: negative operation count %d", p.Operations)
	case p.Duration > 0 && p.Operations > 0:
		return errors.New("bench: give a duration or an operation count, not both")
	case p.Duration == 0 && p.Operations == 0:
		return errors.New("bench: give a duration or an operation count (both are zero)")
	case p.Duration > 0 && p.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %v is shorter than a millisecond (a unit mistake?)", p.Duration)
	case p.Poll < 0:
		return fmt.Errorf("bench: negative poll interval %v", p.Poll)
	case p.Timeout < 0:
		return fmt.Errorf("bench: negative lag timeout %v", p.Timeout)
	case p.ProgressInterval < 0:
		return fmt.Errorf("bench: negative progress interval %v", p.ProgressInterval)
	case strings.ContainsAny(p.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("bench: key prefix %q contains white space", p.KeyPrefix)
	}
	return nil
}

// LagReport is the replication lag to one region: how long after the
// write was sent in From its value was first returned by a local read in
// Region. Latencies are in milliseconds; their resolution is the poll
// interval (1 ms by default).
type LagReport struct {
	From   string `json:"from"`
	Region string `json:"region"`
	// Count is the number of values seen in the region.
	Count int64 `json:"count"`
	// Timeouts counts values not seen within the timeout.
	Timeouts int64 `json:"timeouts"`
	// ReadErrors counts failed reads while polling (the polling goes on).
	ReadErrors int64   `json:"read_errors"`
	MeanMS     float64 `json:"mean_ms"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	P999MS     float64 `json:"p999_ms"`
	MaxMS      float64 `json:"max_ms"`
	// AfterAckP50MS and AfterAckP99MS measure from the write's
	// acknowledgement instead (0 when the value was visible before it).
	AfterAckP50MS float64 `json:"after_ack_p50_ms"`
	AfterAckP99MS float64 `json:"after_ack_p99_ms"`
	// FloorMS is the one-way delay From -> Region (half the round trip),
	// set by the caller; 0 means unknown or no emulated delay.
	FloorMS      float64 `json:"floor_ms,omitempty"`
	P50OverFloor float64 `json:"p50_over_floor,omitempty"`
	P99OverFloor float64 `json:"p99_over_floor,omitempty"`
	FirstError   string  `json:"first_error,omitempty"`
}

// SetFloor records the region's lag floor and the p50 and p99 ratios to
// it. A floor of 0 clears them.
func (l *LagReport) SetFloor(floor time.Duration) {
	if floor <= 0 {
		l.FloorMS, l.P50OverFloor, l.P99OverFloor = 0, 0, 0
		return
	}
	l.FloorMS = round(float64(floor)/1e6, 4)
	l.P50OverFloor = roundSig(l.P50MS/l.FloorMS, 4)
	l.P99OverFloor = roundSig(l.P99MS/l.FloorMS, 4)
}

// SetLagFloor sets the lag floor of a region and reports whether the
// report has that region.
func (r *Report) SetLagFloor(region string, floor time.Duration) bool {
	for i := range r.Lag {
		if r.Lag[i].Region == region {
			r.Lag[i].SetFloor(floor)
			return true
		}
	}
	return false
}

// lagStats accumulates one region's lag for one writer.
type lagStats struct {
	sinceSend, sinceAck Histogram
	timeouts            int64
	readErrors          int64
	firstErr            error
}

func (s *lagStats) merge(o *lagStats) {
	s.sinceSend.Merge(&o.sinceSend)
	s.sinceAck.Merge(&o.sinceAck)
	s.timeouts += o.timeouts
	s.readErrors += o.readErrors
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
}

func (s *lagStats) report(from, region string) LagReport {
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 4) }
	h := &s.sinceSend
	l := LagReport{
		From: from, Region: region, Count: int64(h.Count()), Timeouts: s.timeouts, ReadErrors: s.readErrors,
		MeanMS: round(h.Mean()/1e6, 4), P50MS: ms(h.Quantile(0.5)), P95MS: ms(h.Quantile(0.95)),
		P99MS: ms(h.Quantile(0.99)), P999MS: ms(h.Quantile(0.999)), MaxMS: ms(h.Max()),
		AfterAckP50MS: ms(s.sinceAck.Quantile(0.5)), AfterAckP99MS: ms(s.sinceAck.Quantile(0.99)),
	}
	if s.firstErr != nil {
		l.FirstError = s.firstErr.Error()
	}
	return l
}

// RunLag measures replication lag: each of p.Clients writers writes a new
// value to a key in t.From, and from the moment the write is sent polls
// each region of t.Regions (one reader each) every p.Poll until a read
// returns that value; the time from sending the write to that read's
// answer is the region's lag. Then the writer starts over with another
// key. The report's operations are the writes ("update"); its Lag has one
// entry per region.
func RunLag(ctx context.Context, t LagTarget, p LagParams, progress func(Progress)) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p.defaults()
	switch {
	case t.NewWriter == nil || t.NewReader == nil:
		return nil, errors.New("bench: lag target without writers or readers")
	case len(t.Regions) == 0:
		return nil, fmt.Errorf("bench: the lag workload needs a region to read other than %s", t.From)
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	type lagClient struct {
		w       Client
		readers []Client
	}
	clients := make([]*lagClient, 0, p.Clients)
	defer func() {
		for _, c := range clients {
			if c.w != nil {
				c.w.Close()
			}
			for _, r := range c.readers {
				r.Close()
			}
		}
	}()
	for i := range p.Clients {
		c := &lagClient{}
		clients = append(clients, c)
		var err error
		if c.w, err = t.NewWriter(ctx); err != nil {
			return nil, fmt.Errorf("bench: opening writer %d of %d in %s: %w", i+1, p.Clients, t.From, err)
		}
		for _, region := range t.Regions {
			r, err := t.NewReader(ctx, region)
			if err != nil {
				return nil, fmt.Errorf("bench: opening a reader in %s: %w", region, err)
			}
			c.readers = append(c.readers, r)
		}
	}

	type writerStats struct {
		write opStats
		lag   []lagStats
	}
	per := make([]writerStats, p.Clients)
	var done, failed, ticket atomic.Int64
	var deadline time.Time
	if p.Duration > 0 {
		deadline = time.Now().Add(p.Duration)
	}
	writer := func(i int) {
		c := clients[i]
		st := &per[i]
		st.lag = make([]lagStats, len(t.Regions))
		for n := int64(0); ctx.Err() == nil; n++ {
			if p.Operations > 0 {
				if ticket.Add(1) > p.Operations {
					return
				}
			} else if !time.Now().Before(deadline) {
				return
			}
			key := fmt.Sprintf("%s:%d:%d", p.KeyPrefix, i, n%p.Records)
			val := lagValue(i, n, p.ValueSize)
			ok, counted := lagSample(ctx, c.w, c.readers, key, val, p, &st.write, st.lag)
			if !counted {
				return
			}
			done.Add(1)
			if !ok {
				failed.Add(1)
			}
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { writer(i) })
	}
	stopProgress := progressTicker(PhaseLag, start, p.ProgressInterval, func() (int64, int64) { return done.Load(), failed.Load() }, progress)
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress(elapsed)

	var write opStats
	lag := make([]lagStats, len(t.Regions))
	for i := range per {
		write.merge(&per[i].write)
		for r := range per[i].lag {
			lag[r].merge(&per[i].lag[r])
		}
	}
	rep := &Report{
		Target:      t.Label,
		Workload:    LagWorkloadName,
		Description: fmt.Sprintf("replication lag: write in %s, read in %s every %v until the value is visible", t.From, strings.Join(t.Regions, ", "), p.Poll),
		Records:     p.Records,
		ValueSize:   p.ValueSize,
		Clients:     p.Clients,
		DurationS:   p.Duration.Seconds(),
		Operations:  p.Operations,
		Started:     start.UTC().Truncate(time.Millisecond),
		ElapsedS:    round(elapsed.Seconds(), 3),
		Histograms:  map[string]*Histogram{},
	}
	wr := write.report(OpUpdate.String(), elapsed)
	rep.Ops = []OpReport{wr}
	rep.Total = write.report("total", elapsed)
	rep.Histograms[OpUpdate.String()] = write.hist.Clone()
	rep.Histograms["total"] = write.hist.Clone()
	for r, region := range t.Regions {
		rep.Lag = append(rep.Lag, lag[r].report(t.From, region))
		rep.Histograms["lag "+region] = lag[r].sinceSend.Clone()
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Total.Count == 0 && rep.Total.Errors > 0 {
		return rep, fmt.Errorf("bench: every write failed; the first: %s", rep.Total.FirstError)
	}
	seen := false
	for _, l := range rep.Lag {
		seen = seen || l.Count > 0
	}
	if rep.Total.Count > 0 && !seen {
		first := ""
		for _, l := range rep.Lag {
			if l.FirstError != "" {
				first = "; the first read error: " + l.FirstError
				break
			}
		}
		return rep, fmt.Errorf("bench: no write became visible in any of %s within %v%s", strings.Join(t.Regions, ", "), p.Timeout, first)
	}
	return rep, nil
}

// lagValue is a value unique to writer i's n-th write, padded to size.
func lagValue(i int, n int64, size int) []byte {
	id := fmt.Sprintf("lag-%d-%d-", i, n)
	if size < len(id) {
		size = len(id)
	}
	v := bytes.Repeat([]byte{'.'}, size)
	copy(v, id)
	return v
}

// lagSample writes one value and measures when each reader sees it. It
// returns whether the sample succeeded everywhere, and false for counted
// when ctx ended (the sample is then dropped).
func lagSample(ctx context.Context, w Client, readers []Client, key string, val []byte, p LagParams, write *opStats, lag []lagStats) (ok, counted bool) {
	sctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	type seen struct {
		at      time.Time
		visible bool
		errs    int64
		err     error
	}
	results := make([]seen, len(readers))
	t0 := time.Now()
	var wg sync.WaitGroup
	for ri, r := range readers {
		wg.Go(func() {
			res := &results[ri]
			next := t0
			for {
				v, err := r.Read(sctx, key)
				now := time.Now()
				if err == nil && bytes.Equal(v, val) {
					res.at, res.visible = now, true
					return
				}
				if err != nil && !errors.Is(err, ErrNotFound) && sctx.Err() == nil {
					res.errs++
					if res.err == nil {
						res.err = err
					}
				}
				next = next.Add(p.Poll)
				if d := time.Until(next); d > 0 {
					select {
					case <-sctx.Done():
						return
					case <-time.After(d):
					}
				} else {
					next = now // fell behind: poll again at once, then every p.Poll
				}
				if sctx.Err() != nil {
					return
				}
			}
		})
	}
	err := w.Update(sctx, key, val)
	ack := time.Now()
	if err != nil {
		cancel() // stop polling: the write failed
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false, false
	}
	if err != nil {
		write.errors++
		if write.firstErr == nil {
			write.firstErr = err
		}
		return false, true
	}
	write.hist.RecordDuration(ack.Sub(t0))
	ok = true
	for ri := range results {
		res, st := &results[ri], &lag[ri]
		st.readErrors += res.errs
		if st.firstErr == nil && res.err != nil {
			st.firstErr = res.err
		}
		if !res.visible {
			st.timeouts++
			ok = false
			continue
		}
		st.sinceSend.RecordDuration(res.at.Sub(t0))
		st.sinceAck.RecordDuration(max(0, res.at.Sub(ack)))
	}
	return ok, true
}

// writeLagTable writes the lag of every region as a table.
func writeLagTable(w io.Writer, lags []LagReport) error {
	floors := false
	for _, l := range lags {
		floors = floors || l.FloorMS > 0
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	nameW := len("lag to")
	for _, l := range lags {
		nameW = max(nameW, len(l.From)+len(" -> ")+len(l.Region))
	}
	head := fmt.Sprintf("%-*s\tseen\ttimeouts\tmean ms\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\tafter ack p50\tp99\t", nameW, "lag")
	if floors {
		head += "one-way floor ms\tp50/floor\tp99/floor\t"
	}
	fmt.Fprintln(tw, head)
	for _, l := range lags {
		line := fmt.Sprintf("%-*s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", nameW, l.From+" -> "+l.Region, l.Count, l.Timeouts,
			fmtMS(l.MeanMS), fmtMS(l.P50MS), fmtMS(l.P95MS), fmtMS(l.P99MS), fmtMS(l.P999MS), fmtMS(l.MaxMS),
			fmtMS(l.AfterAckP50MS), fmtMS(l.AfterAckP99MS))
		if floors {
			if l.FloorMS > 0 {
				line += fmt.Sprintf("%s\t%.3g\t%.3g\t", fmtMS(l.FloorMS), l.P50OverFloor, l.P99OverFloor)
			} else {
				line += "-\t-\t-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range lags {
		if l.FirstError != "" {
			fmt.Fprintf(w, "first read error in %s: %s\n", l.Region, l.FirstError)
		}
	}
	return nil
}
