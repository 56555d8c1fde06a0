package metrics_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-db/meridian/metrics"
)

// latencyBounds are the request histogram's bucket bounds, as exported.
func latencyBounds(t *testing.T, r *metrics.Registry) []float64 {
	t.Helper()
	r.ObserveRequest(metrics.FrontendRESP, "probe", 0, nil)
	h := find(gather(t, r)["meridian_request_duration_seconds"], map[string]string{"command": "probe"})
	if len(h) != 1 {
		t.Fatalf("probe series %v", h)
	}
	var out []float64
	for _, b := range h[0].GetHistogram().GetBucket() {
		out = append(out, b.GetUpperBound())
	}
	return out
}

// drawDuration draws durations in every bucket, on and about the bounds.
func drawDuration(rng *rand.Rand, bounds []float64) time.Duration {
	i := rng.IntN(len(bounds) + 1)
	if i == len(bounds) {
		return time.Duration((bounds[len(bounds)-1] + rng.Float64()*20) * 1e9)
	}
	d := time.Duration(bounds[i] * 1e9)
	switch rng.IntN(4) {
	case 0:
		return d // on the bound: counted in its bucket
	case 1:
		return d + 1
	case 2:
		return d - 1
	}
	return time.Duration(rng.Int64N(int64(d) + 1))
}

// TestTallyAgreesWithPrometheus records the same requests three ways:
// one by one into the registry, through a Tally flushed at random
// points and switched between series, and into the Prometheus client's
// own histogram, which is the oracle for what falls in which bucket.
func TestTallyAgreesWithPrometheus(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		direct, tallied := metrics.NewRegistry(), metrics.NewRegistry()
		bounds := latencyBounds(t, direct)
		latencyBounds(t, tallied)
		oracle := map[string]prometheus.Histogram{}
		counts := map[string]int{}
		var tally metrics.Tally
		for range 2000 {
			cmd := []string{"get", "set", "del"}[rng.IntN(3)]
			code := []string{metrics.CodeOK, "busy"}[rng.IntN(2)]
			d := drawDuration(rng, bounds)
			direct.ObserveRequestCode(metrics.FrontendRESP, cmd, code, d)
			tally.Add(tallied.RequestSeries(metrics.FrontendRESP, cmd, code), d)
			if rng.IntN(10) == 0 {
				tally.Flush()
			}
			if oracle[cmd] == nil {
				oracle[cmd] = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: bounds})
			}
			oracle[cmd].Observe(d.Seconds())
			counts[cmd+"/"+code]++
		}
		tally.Flush()
		for _, r := range []*metrics.Registry{direct, tallied} {
			fams := gather(t, r)
			for key, n := range counts {
				cmd, code, _ := strings.Cut(key, "/")
				s := find(fams["meridian_requests_total"], map[string]string{"command": cmd, "code": code})
				if len(s) != 1 || s[0].GetCounter().GetValue() != float64(n) {
					t.Fatalf("seed %d: %s counted %v, want %d", seed, key, s, n)
				}
			}
			for cmd, o := range oracle {
				var want dto.Metric
				if err := o.Write(&want); err != nil {
					t.Fatal(err)
				}
				h := find(fams["meridian_request_duration_seconds"], map[string]string{"command": cmd})
				if len(h) != 1 {
					t.Fatalf("seed %d: %s: %v", seed, cmd, h)
				}
				got := h[0].GetHistogram()
				if got.GetSampleCount() != want.GetHistogram().GetSampleCount() {
					t.Fatalf("seed %d: %s: %d samples, want %d", seed, cmd, got.GetSampleCount(), want.GetHistogram().GetSampleCount())
				}
				if d := got.GetSampleSum() - want.GetHistogram().GetSampleSum(); d > 1e-6 || d < -1e-6 {
					t.Fatalf("seed %d: %s: sum %v, want %v", seed, cmd, got.GetSampleSum(), want.GetHistogram().GetSampleSum())
				}
				for i, b := range want.GetHistogram().GetBucket() {
					if g := got.GetBucket()[i]; g.GetUpperBound() != b.GetUpperBound() || g.GetCumulativeCount() != b.GetCumulativeCount() {
						t.Fatalf("seed %d: %s: bucket %v, want %v", seed, cmd, g, b)
					}
				}
			}
		}
	}
}

// TestTallyHoldsUntilFlushed: what a tally holds is not exported until it
// is flushed, adding to another series flushes it, and it flushes itself
// before it holds back too much.
func TestTallyHoldsUntilFlushed(t *testing.T) {
	r := metrics.NewRegistry()
	get := r.RequestSeries(metrics.FrontendRESP, "get", metrics.CodeOK)
	set := r.RequestSeries(metrics.FrontendRESP, "set", metrics.CodeOK)
	count := func(cmd string) float64 {
		s := find(gather(t, r)["meridian_requests_total"], map[string]string{"command": cmd})
		if len(s) != 1 {
			t.Fatalf("%s: %v", cmd, s)
		}
		return s[0].GetCounter().GetValue()
	}
	var tally metrics.Tally
	tally.Add(get, time.Millisecond)
	tally.Add(get, time.Millisecond)
	if n := count("get"); n != 0 {
		t.Fatalf("%v gets exported before the flush", n)
	}
	tally.Add(set, time.Millisecond)
	if n := count("get"); n != 2 {
		t.Fatalf("%v gets exported after another series came, want 2", n)
	}
	tally.Flush()
	tally.Flush() // nothing more
	if n := count("set"); n != 1 {
		t.Fatalf("%v sets, want 1", n)
	}
	for range 5000 {
		tally.Add(get, time.Microsecond)
	}
	if n := count("get"); n != 2+4*1024 {
		t.Fatalf("%v gets exported of 5002 before the last flush, want 4098: a tally flushes itself at 1024", n)
	}
	tally.Flush()
	if n := count("get"); n != 5002 {
		t.Fatalf("%v gets, want 5002", n)
	}
}
