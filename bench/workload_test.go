package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseWorkload(t *testing.T) {
	for in, want := range map[string]string{"A": "A", "a": "A", " workloadb ": "B", "WorkloadC": "C", "d": "D", "F": "F"} {
		w, err := ParseWorkload(in)
		if err != nil || w.Name != want {
			t.Errorf("ParseWorkload(%q) = %q, %v; want %q", in, w.Name, err, want)
		}
	}
	for in, msg := range map[string]string{
		"":         "empty workload",
		"E":        "not supported",
		"Z":        `unknown workload "Z"`,
		"AB":       "unknown workload",
		"workload": "empty workload",
	} {
		_, err := ParseWorkload(in)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "A, B, C, D, F") {
			t.Errorf("ParseWorkload(%q): error %v, want one containing %q and the list of workloads", in, err, msg)
		}
	}
	for _, w := range Workloads {
		if err := w.Validate(); err != nil {
			t.Errorf("workload %s: %v", w.Name, err)
		}
	}
}

func TestWorkloadMixes(t *testing.T) {
	const n = 200_000
	for _, w := range Workloads {
		rng := newRand(11, 0)
		var counts [numOps]int
		for range n {
			counts[w.choose(rng.Float64())]++
		}
		for o := range numOps {
			got, want := float64(counts[o])/n, w.proportion(Op(o))
			if math.Abs(got-want) > 0.01 {
				t.Errorf("workload %s: %s fraction %.4f, want %.2f", w.Name, Op(o), got, want)
			}
		}
	}
	// The top of [0, 1) never lands on an empty kind.
	if o := WorkloadC.choose(math.Nextafter(1, 0)); o != OpRead {
		t.Errorf("workload C chose %s", o)
	}
	w := Workload{Name: "x", Read: 0.3, Update: 0.7}
	if o := w.choose(0.999999999999); o != OpUpdate {
		t.Errorf("chose %s", o)
	}
}

func TestWorkloadValidate(t *testing.T) {
	for _, c := range []struct {
		w   Workload
		msg string
	}{
		{Workload{}, "no workload set"},
		{Workload{Name: "x", Read: 0.5}, "add up to 0.5"},
		{Workload{Name: "x", Read: 1.5, Update: -0.5}, "not in [0, 1]"},
		{Workload{Name: "x", Read: math.NaN()}, "not in [0, 1]"},
		{Workload{Name: "x", Read: 1, Distribution: "hot"}, "unknown key distribution"},
	} {
		if err := c.w.Validate(); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: error %v, want one containing %q", c.w, err, c.msg)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("default params: %v", err)
	}
	ops := DefaultParams()
	ops.Duration, ops.Operations = 0, 1000
	if err := ops.Validate(); err != nil {
		t.Fatalf("operation count: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Params)
		msg  string
	}{
		{"no workload", func(p *Params) { p.Workload = Workload{} }, "no workload set"},
		{"bad distribution", func(p *Params) { p.Distribution = "normal" }, `unknown key distribution "normal"`},
		{"zero clients", func(p *Params) { p.Clients = 0 }, "clients must be at least 1, not 0"},
		{"negative clients", func(p *Params) { p.Clients = -3 }, "clients must be at least 1, not -3"},
		{"too many clients", func(p *Params) { p.Clients = MaxClients + 1 }, "more than the limit"},
		{"zero records", func(p *Params) { p.Records = 0 }, "records must be at least 1"},
		{"too many records", func(p *Params) { p.Records = MaxRecords + 1 }, "records is more than the limit"},
		{"zero value size", func(p *Params) { p.ValueSize = 0 }, "value size must be at least 1 byte"},
		{"negative value size", func(p *Params) { p.ValueSize = -1 }, "value size must be at least 1 byte"},
		{"huge value size", func(p *Params) { p.ValueSize = 16<<20 + 1 }, "larger than the limit"},
		{"both", func(p *Params) { p.Operations = 10 }, "not both"},
		{"neither", func(p *Params) { p.Duration = 0 }, "both are zero"},
		{"negative duration", func(p *Params) { p.Duration = -time.Second }, "negative duration"},
		{"negative operations", func(p *Params) { p.Duration, p.Operations = 0, -1 }, "negative operation count"},
		{"nanosecond duration", func(p *Params) { p.Duration = 10 }, "shorter than a millisecond"},
		{"negative progress", func(p *Params) { p.ProgressInterval = -1 }, "negative progress interval"},
		{"space in prefix", func(p *Params) { p.KeyPrefix = "a b" }, "white space"},
		{"negative pipeline", func(p *Params) { p.Pipeline = -1 }, "pipeline depth must be at least 1, not -1"},
		{"deep pipeline", func(p *Params) { p.Pipeline = MaxPipeline + 1 }, "more than the limit"},
	} {
		p := DefaultParams()
		c.edit(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.msg)
		}
	}
	p := DefaultParams()
	p.ValueSize = MaxValueSize
	if err := p.Validate(); err != nil {
		t.Errorf("16 MiB values: %v", err)
	}
	p = DefaultParams()
	p.Pipeline = MaxPipeline
	if err := p.Validate(); err != nil {
		t.Errorf("pipeline of %d: %v", MaxPipeline, err)
	}
}

func TestParamsDistributionDefault(t *testing.T) {
	p := DefaultParams()
	p.Workload, p.Distribution = WorkloadD, ""
	if d := p.distribution(); d != DistLatest {
		t.Errorf("workload D defaults to %q", d)
	}
	p.Distribution = "Uniform"
	if d := p.distribution(); d != DistUniform {
		t.Errorf("explicit distribution gave %q", d)
	}
}
