package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records non-negative integer values (latencies in nanoseconds,
// typically) in log-linear buckets: values below 256 exactly, larger values
// in 128 buckets per power of two, so a bucket is at most 1/128 of its lower
// bound wide and Quantile, which answers a bucket's midpoint, is within about
// 0.4% of the exact order statistic. Memory grows with the largest value
// recorded (about 14 KiB for values up to a second in nanoseconds).
//
// The zero value is an empty histogram ready to use. A Histogram is not safe
// for concurrent use: record into one per goroutine and Merge them.
type Histogram struct {
	counts []uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	histLinear  = 2 * histSub      // values below this have their own bucket
)

// histIndex returns the bucket of v >= 0.
func histIndex(v int64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1 // v>>shift is in [histSub, 2*histSub)
	return histLinear + (shift-1)*histSub + int(uint64(v)>>shift) - histSub
}

// histBounds returns the lowest value of bucket i and the bucket's width.
func histBounds(i int) (lo, width int64) {
	if i < histLinear {
		return int64(i), 1
	}
	shift := (i-histLinear)/histSub + 1
	sub := int64((i-histLinear)%histSub + histSub)
	return sub << shift, int64(1) << shift
}

// NewHistogram returns an empty histogram (the same as new(Histogram)).
func NewHistogram() *Histogram { return &Histogram{} }

// Record adds one value; negative values are recorded as 0.
func (h *Histogram) Record(v int64) { h.RecordN(v, 1) }

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.RecordN(int64(d), 1) }

// RecordN adds the value v count times.
func (h *Histogram) RecordN(v int64, count uint64) {
	if count == 0 {
		return
	}
	v = max(v, 0)
	i := histIndex(v)
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i] += count
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n += count
	h.sum += float64(v) * float64(count)
}

func (h *Histogram) grow(n int) {
	// Round up to whole powers of two so that a slowly rising maximum does
	// not reallocate on every new bucket.
	n = max(n, histLinear+((n-histLinear+histSub-1)/histSub)*histSub, 2*len(h.counts))
	c := make([]uint64, n)
	copy(c, h.counts)
	h.counts = c
}

// Merge adds every value recorded in o to h. o is not changed.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.n == 0 || o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.n, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Clone returns an independent copy of h.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.counts = append([]uint64(nil), h.counts...)
	return &c
}

// Count returns the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest value recorded, exactly; 0 when empty.
func (h *Histogram) Min() int64 { return h.min }

// Max returns the largest value recorded, exactly; 0 when empty.
func (h *Histogram) Max() int64 { return h.max }

// Sum returns the sum of the values recorded.
func (h *Histogram) Sum() float64 { return h.sum }

// Mean returns the exact mean of the values recorded; 0 when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns an estimate of the q-quantile (q in [0, 1]; 0.99 for
// p99): the value of rank ceil(q*Count()) in sorted order (the smallest value
// for q = 0), within about 0.4% relative error, never below Min or above Max.
// It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if math.IsNaN(q) || q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := histBounds(i)
			return max(h.min, min(h.max, lo+(w-1)/2))
		}
	}
	return h.max
}

// QuantileDuration is Quantile for a histogram of nanoseconds.
func (h *Histogram) QuantileDuration(q float64) time.Duration {
	return time.Duration(h.Quantile(q))
}
