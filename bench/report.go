package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// OpReport summarises one operation kind of a run (or all of them, as
// Report.Total). Latencies are in milliseconds and count successful
// operations only (reads of missing keys included).
type OpReport struct {
	Op     string `json:"op"`
	Count  int64  `json:"count"`  // successful operations
	Errors int64  `json:"errors"` // failed operations
	// NotFound counts reads that found no value (part of Count).
	NotFound   int64   `json:"not_found"`
	Throughput float64 `json:"throughput_ops"` // successful operations per second
	MeanMS     float64 `json:"mean_ms"`
	MinMS      float64 `json:"min_ms"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	P999MS     float64 `json:"p999_ms"`
	MaxMS      float64 `json:"max_ms"`
	// FloorMS is the physical floor of this operation, filled by the
	// caller (see SetFloor); 0 means unknown.
	FloorMS float64 `json:"floor_ms,omitempty"`
	// P50OverFloor is P50MS / FloorMS, when FloorMS is set.
	P50OverFloor float64 `json:"p50_over_floor,omitempty"`
	// P99OverFloor is P99MS / FloorMS, when FloorMS is set.
	P99OverFloor float64 `json:"p99_over_floor,omitempty"`
	// FirstError is the first failure seen, to tell what went wrong.
	FirstError string `json:"first_error,omitempty"`
}

// Report is the result of a run. Its JSON field names are stable.
type Report struct {
	Target       string `json:"target"`
	Workload     string `json:"workload"`
	Description  string `json:"description"`
	Distribution string `json:"distribution"`
	Records      int64  `json:"records"`
	ValueSize    int    `json:"value_size"`
	Clients      int    `json:"clients"`
	// Pipeline is the operations each client kept in flight (Params.Pipeline),
	// when more than 1.
	Pipeline   int     `json:"pipeline,omitempty"`
	DurationS  float64 `json:"duration_s,omitempty"` // requested duration
	Operations int64   `json:"operations,omitempty"` // requested operation count
	Seed       uint64  `json:"seed"`
	// Started is when the run phase started.
	Started time.Time `json:"started"`
	// ElapsedS is the wall time of the run phase, in seconds.
	ElapsedS float64 `json:"elapsed_s"`
	// Load summarises the load phase; nil when it was skipped.
	Load         *OpReport `json:"load,omitempty"`
	LoadElapsedS float64   `json:"load_elapsed_s,omitempty"`
	// Ops has one entry per operation kind of the workload, in the order
	// read, update, insert, rmw.
	Ops []OpReport `json:"ops"`
	// Total merges every operation of the run phase.
	Total OpReport `json:"total"`

	// Floors describes how the floors of the operations were computed
	// (in-process Meridian targets); nil when unknown.
	Floors *FloorReport `json:"floors,omitempty"`
	// Costs is what the run phase cost the cluster (fsyncs and bytes
	// between regions per write), read from the nodes' metrics through
	// Params.Meter (in-process Meridian targets); nil when not measured.
	Costs *CostReport `json:"costs,omitempty"`
	// Lag is the replication lag per region (the lag workload, RunLag).
	Lag []LagReport `json:"lag,omitempty"`
	// Converge is the convergence of an active keyspace (the converge
	// workload, RunConverge).
	Converge *ConvergeReport `json:"converge,omitempty"`
	// Staleness is what the bounded reads returned, per region (the
	// staleness workload, RunStaleness).
	Staleness []StalenessReport `json:"staleness,omitempty"`
	// Notes are remarks on how to read the figures.
	Notes []string `json:"notes,omitempty"`

	// Histograms holds the latency histograms (nanoseconds) by operation
	// name, "total" included, for callers that merge runs.
	Histograms map[string]*Histogram `json:"-"`

	workload Workload
}

func newReport(target string, p Params) *Report {
	return &Report{
		Target:       target,
		Workload:     p.Workload.Name,
		Description:  p.Workload.Description,
		Distribution: p.distribution(),
		Records:      p.Records,
		ValueSize:    p.ValueSize,
		Clients:      p.Clients,
		Pipeline:     pipelineField(p),
		DurationS:    p.Duration.Seconds(),
		Operations:   p.Operations,
		Seed:         p.Seed,
		Histograms:   map[string]*Histogram{},
		workload:     p.Workload,
	}
}

// pipelineField is Report.Pipeline for p: its depth when more than 1.
func pipelineField(p Params) int {
	if n := p.pipeline(); n > 1 {
		return n
	}
	return 0
}

// fill sets the run phase's figures.
func (r *Report) fill(stats *phaseStats, elapsed time.Duration) {
	r.Started = time.Now().Add(-elapsed).UTC().Truncate(time.Millisecond)
	r.ElapsedS = round(elapsed.Seconds(), 3)
	var total opStats
	for o := range numOps {
		st := &stats[o]
		if r.workload.proportion(Op(o)) > 0 || st.hist.Count() > 0 || st.errors > 0 {
			r.Ops = append(r.Ops, st.report(Op(o).String(), elapsed))
			r.Histograms[Op(o).String()] = st.hist.Clone()
		}
		total.merge(st)
	}
	r.Total = total.report("total", elapsed)
	r.Histograms["total"] = total.hist.Clone()
}

func (r *Report) firstError() string {
	for _, o := range r.Ops {
		if o.FirstError != "" {
			return o.FirstError
		}
	}
	return "unknown"
}

func (s *opStats) report(name string, elapsed time.Duration) OpReport {
	h := &s.hist
	ms := func(ns int64) float64 { return round(float64(ns)/1e6, 4) }
	o := OpReport{
		Op:         name,
		Count:      int64(h.Count()),
		Errors:     s.errors,
		NotFound:   s.notFound,
		Throughput: round(rate(int64(h.Count()), elapsed), 1),
		MeanMS:     round(h.Mean()/1e6, 4),
		MinMS:      ms(h.Min()),
		P50MS:      ms(h.Quantile(0.50)),
		P95MS:      ms(h.Quantile(0.95)),
		P99MS:      ms(h.Quantile(0.99)),
		P999MS:     ms(h.Quantile(0.999)),
		MaxMS:      ms(h.Max()),
	}
	if s.firstErr != nil {
		o.FirstError = s.firstErr.Error()
	}
	return o
}

// roundSig rounds x to the given number of significant digits.
func roundSig(x float64, digits int) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	return round(x, digits-1-int(math.Floor(math.Log10(math.Abs(x)))))
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// SetFloor records the operation's physical floor and its p50/floor
// ratio. A floor of 0 clears both.
func (o *OpReport) SetFloor(floor time.Duration) {
	if floor <= 0 {
		o.FloorMS, o.P50OverFloor, o.P99OverFloor = 0, 0, 0
		return
	}
	o.FloorMS = round(float64(floor)/1e6, 4)
	o.P50OverFloor = roundSig(o.P50MS/o.FloorMS, 4)
	o.P99OverFloor = roundSig(o.P99MS/o.FloorMS, 4)
}

// SetFloor sets the floor of the named operation ("read", "update",
// "insert", "rmw" or "total"; see OpReport.SetFloor) and reports whether the
// report has that operation. "load" names the load phase's inserts.
func (r *Report) SetFloor(op string, floor time.Duration) bool {
	if op == "load" {
		if r.Load == nil {
			return false
		}
		r.Load.SetFloor(floor)
		return true
	}
	if op == r.Total.Op {
		r.Total.SetFloor(floor)
		return true
	}
	for i := range r.Ops {
		if r.Ops[i].Op == op {
			r.Ops[i].SetFloor(floor)
			return true
		}
	}
	return false
}

// Op returns the report of the named operation, or nil.
func (r *Report) Op(op string) *OpReport {
	if op == r.Total.Op {
		return &r.Total
	}
	for i := range r.Ops {
		if r.Ops[i].Op == op {
			return &r.Ops[i]
		}
	}
	return nil
}

// WriteJSON writes r as indented JSON followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target:    %s\n", r.Target)
	wl := r.Workload
	if r.Description != "" {
		wl += " (" + r.Description + ")"
	}
	fmt.Fprintf(&b, "workload:  %s\n", wl)
	run := fmt.Sprintf("%gs", r.DurationS)
	if r.Operations > 0 {
		run = fmt.Sprintf("%d operations", r.Operations)
	}
	switch {
	case r.Distribution != "":
		fmt.Fprintf(&b, "keys:      %s over %d records, values of %d bytes\n", r.Distribution, r.Records, r.ValueSize)
	case r.Records > 0:
		fmt.Fprintf(&b, "keys:      %d records, values of %d bytes\n", r.Records, r.ValueSize)
	}
	seed := fmt.Sprintf(", seed %d", r.Seed)
	switch r.Workload {
	case LagWorkloadName, ConvergeWorkloadName, StalenessWorkloadName:
		seed = "" // these workloads draw nothing at random
	}
	if r.Workload == ConvergeWorkloadName && r.Operations > 0 {
		run = fmt.Sprintf("%d rounds", r.Operations)
	}
	pipe := ""
	if r.Pipeline > 1 {
		pipe = fmt.Sprintf(" with %d operations in flight each (pipelined)", r.Pipeline)
	}
	fmt.Fprintf(&b, "clients:   %d%s, run of %s (took %.3fs)%s\n", r.Clients, pipe, run, r.ElapsedS, seed)
	if r.Load != nil {
		floor := ""
		if r.Load.FloorMS > 0 {
			floor = fmt.Sprintf(", floor %s ms", fmtMS(r.Load.FloorMS))
		}
		fmt.Fprintf(&b, "load:      %d inserts in %.3fs (%.0f ops/s, p50 %s ms, p99 %s ms%s), %d errors\n",
			r.Load.Count, r.LoadElapsedS, r.Load.Throughput, fmtMS(r.Load.P50MS), fmtMS(r.Load.P99MS), floor, r.Load.Errors)
	}
	b.WriteString("\n")
	floors, notFound := false, false
	rows := append(append([]OpReport(nil), r.Ops...), r.Total)
	for _, o := range rows {
		floors = floors || o.FloorMS > 0
		notFound = notFound || o.NotFound > 0
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Numbers align right; padding the names to one width aligns them left.
	nameW := len("op")
	for _, o := range rows {
		nameW = max(nameW, len(o.Op))
	}
	head := fmt.Sprintf("%-*s\tcount\terrors\t", nameW, "op")
	if notFound {
		head += "not found\t"
	}
	head += "ops/s\tmean ms\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\t"
	if floors {
		head += "floor ms\tp50/floor\tp99/floor\t"
	}
	fmt.Fprintln(tw, head)
	for _, o := range rows {
		line := fmt.Sprintf("%-*s\t%d\t%d\t", nameW, o.Op, o.Count, o.Errors)
		if notFound {
			line += fmt.Sprintf("%d\t", o.NotFound)
		}
		line += fmt.Sprintf("%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t", o.Throughput, fmtMS(o.MeanMS), fmtMS(o.P50MS),
			fmtMS(o.P95MS), fmtMS(o.P99MS), fmtMS(o.P999MS), fmtMS(o.MaxMS))
		if floors {
			if o.FloorMS > 0 {
				line += fmt.Sprintf("%s\t%.3g\t%.3g\t", fmtMS(o.FloorMS), o.P50OverFloor, o.P99OverFloor)
			} else {
				line += "-\t-\t-\t"
			}
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range append(rows, derefOr(r.Load)...) {
		if o.FirstError != "" && o.Op != "total" {
			fmt.Fprintf(&b, "first %s error: %s\n", o.Op, o.FirstError)
		}
	}
	if len(r.Lag) > 0 {
		b.WriteString("\n")
		if err := writeLagTable(&b, r.Lag); err != nil {
			return err
		}
	}
	if r.Converge != nil {
		b.WriteString("\n")
		if err := writeConvergeTable(&b, r.Converge); err != nil {
			return err
		}
	}
	if len(r.Staleness) > 0 {
		b.WriteString("\n")
		if err := writeStalenessTable(&b, r.Staleness); err != nil {
			return err
		}
	}
	if r.Costs != nil {
		b.WriteString("\n")
		r.Costs.write(&b)
	}
	if r.Floors != nil {
		b.WriteString("\n")
		r.Floors.write(&b)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func derefOr(o *OpReport) []OpReport {
	if o == nil {
		return nil
	}
	c := *o
	c.Op = "load " + c.Op
	return []OpReport{c}
}

// fmtMS prints milliseconds with three significant digits or more.
func fmtMS(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}
