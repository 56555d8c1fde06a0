package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var testQuantiles = []float64{0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1}

// refQuantile is the order statistic Quantile estimates: rank ceil(q*n).
func refQuantile(sorted []int64, q float64) int64 {
	if q <= 0 {
		return sorted[0]
	}
	r := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(r, 1)-1]
}

func relErr(got, want int64) float64 {
	if want == 0 {
		return math.Abs(float64(got))
	}
	return math.Abs(float64(got-want)) / math.Abs(float64(want))
}

func TestHistogramQuantilesAgainstSortedSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func() int64{
		"small exact":  func() int64 { return rng.Int64N(300) },
		"uniform wide": func() int64 { return rng.Int64N(int64(time.Second)) },
		// Latencies: log-normal around 1 ms with a long tail.
		"lognormal": func() int64 { return int64(math.Exp(rng.NormFloat64()*1.5) * 1e6) },
		"bimodal": func() int64 {
			if rng.IntN(10) == 0 {
				return 80e6 + rng.Int64N(5e6)
			}
			return 300e3 + rng.Int64N(100e3)
		},
		"huge": func() int64 { return math.MaxInt64 - rng.Int64N(1<<40) },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 50_000)
			sum := 0.0
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
				sum += float64(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", h.Count(), len(vals))
			}
			if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Fatalf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if want := sum / float64(len(vals)); math.Abs(h.Mean()-want) > 1e-9*want {
				t.Fatalf("mean %v, want %v", h.Mean(), want)
			}
			for _, q := range testQuantiles {
				got, want := h.Quantile(q), refQuantile(vals, q)
				if e := relErr(got, want); e > 0.01 {
					t.Errorf("q=%v: got %d, want %d (relative error %.4f)", q, got, want, e)
				}
			}
		})
	}
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	// Every bucket's bounds contain the values mapped to it, and buckets
	// are at most 1/128 of their lower bound wide.
	check := func(v int64) {
		i := histIndex(v)
		lo, w := histBounds(i)
		if v < lo || v-lo >= w {
			t.Fatalf("value %d in bucket %d = [%d, %d+%d)", v, i, lo, lo, w)
		}
		if lo >= histLinear && float64(w)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d = [%d, +%d) is too wide", i, lo, w)
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for s := 8; s < 63; s++ {
		for _, d := range []int64{-1, 0, 1} {
			check(int64(1)<<s + d)
		}
	}
	check(math.MaxInt64)
	// Consecutive buckets are contiguous.
	for i := 1; i < histIndex(math.MaxInt64); i++ {
		plo, pw := histBounds(i - 1)
		lo, _ := histBounds(i)
		if plo+pw != lo {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, plo+pw)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all, a, b Histogram
	c := NewHistogram()
	for i := range 30_000 {
		v := int64(math.Exp(rng.NormFloat64()*2) * 1e5)
		all.Record(v)
		switch i % 3 {
		case 0:
			a.Record(v)
		case 1:
			b.Record(v)
		default:
			c.Record(v)
		}
	}
	// b ends up with the widest range by merging in a different order.
	b.Merge(c)
	a.Merge(&b)
	a.Merge(nil)
	a.Merge(&Histogram{})
	if a.Count() != all.Count() || a.Min() != all.Min() || a.Max() != all.Max() {
		t.Fatalf("merged count/min/max %d/%d/%d, want %d/%d/%d", a.Count(), a.Min(), a.Max(), all.Count(), all.Min(), all.Max())
	}
	if math.Abs(a.Mean()-all.Mean()) > 1e-9*all.Mean() {
		t.Fatalf("merged mean %v, want %v", a.Mean(), all.Mean())
	}
	for _, q := range testQuantiles {
		if got, want := a.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("q=%v: merged %d, single %d", q, got, want)
		}
	}
	// Merging into an empty histogram copies.
	var e Histogram
	e.Merge(&all)
	if e.Quantile(0.99) != all.Quantile(0.99) || e.Min() != all.Min() {
		t.Fatal("merge into an empty histogram differs")
	}
}

func TestHistogramEdgeCases(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Min() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram is not all zero")
	}
	h.Record(-5) // recorded as 0
	h.RecordDuration(3 * time.Millisecond)
	h.RecordN(7, 0) // nothing
	if h.Count() != 2 || h.Min() != 0 || h.Max() != int64(3*time.Millisecond) {
		t.Fatalf("count %d min %d max %d", h.Count(), h.Min(), h.Max())
	}
	if h.Quantile(0.5) != 0 || h.QuantileDuration(1) != 3*time.Millisecond || h.Quantile(math.NaN()) != 0 {
		t.Fatalf("quantiles %d %v", h.Quantile(0.5), h.QuantileDuration(1))
	}
	c := h.Clone()
	h.Reset()
	if h.Count() != 0 || h.Quantile(0.9) != 0 || c.Count() != 2 {
		t.Fatal("reset or clone is wrong")
	}
	// A single repeated value is answered exactly.
	h.RecordN(123_456_789, 10)
	for _, q := range testQuantiles {
		if h.Quantile(q) != 123_456_789 {
			t.Fatalf("q=%v: %d", q, h.Quantile(q))
		}
	}
}
