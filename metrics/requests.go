package metrics

import (
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request figures are kept in cells of their own instead of a
// prometheus CounterVec and HistogramVec: a counter's Inc and a
// histogram's Observe took five atomic operations on words every
// processor writes (a compare-and-swap loop for the float sum among
// them), and a pipelined GET paid a tenth of its CPU for that. A cell is
// a set of counters (the sum in integer nanoseconds), a front end can add
// many requests to it at once (Tally), and the collector turns cells into
// the same families at scrape time.

// nBuckets counts the histogram's buckets, the last one for what falls
// beyond the largest bound.
const nBuckets = 16

// bucketNanos are latencyBuckets in nanoseconds.
var bucketNanos = func() [nBuckets - 1]int64 {
	if len(latencyBuckets) != nBuckets-1 {
		panic("metrics: latencyBuckets and nBuckets disagree")
	}
	var out [nBuckets - 1]int64
	for i, b := range latencyBuckets {
		out[i] = int64(math.Round(b * 1e9))
	}
	return out
}()

// bucketOf is the bucket a request that took d (at least 0) falls in: the
// first whose bound d does not exceed, as Prometheus counts them (most
// requests take less than the first bound).
func bucketOf(d time.Duration) int {
	for i, b := range bucketNanos {
		if int64(d) <= b {
			return i
		}
	}
	return nBuckets - 1
}

type histogramCell struct {
	buckets  [nBuckets]atomic.Uint64
	sumNanos atomic.Uint64
}

// RequestSeries is where the requests of one front end, command and
// outcome are counted and timed (Registry.RequestSeries). Only the
// registry makes them; a zero RequestSeries must not be used.
type RequestSeries struct {
	count   *atomic.Uint64
	latency *histogramCell
}

// Observe records one request that took d.
func (s RequestSeries) Observe(d time.Duration) {
	d = max(d, 0)
	s.count.Add(1)
	s.latency.buckets[bucketOf(d)].Add(1)
	s.latency.sumNanos.Add(uint64(d))
}

// Tally gathers requests before they are added to their series: a front
// end serving one connection's pipeline adds its commands here and
// flushes once it writes their replies, one atomic add per bucket used
// instead of several per request. It holds one series at a time (adding
// to another flushes the first) and flushes itself after maxTally
// requests. Its zero value is ready; it is not safe for concurrent use.
type Tally struct {
	s       RequestSeries
	n       uint64
	sum     uint64
	buckets [nBuckets]uint32
}

// maxTally bounds what a tally holds back from the scrapes.
const maxTally = 1024

// Add records one request of s that took d.
func (t *Tally) Add(s RequestSeries, d time.Duration) {
	if s != t.s {
		t.Flush()
		t.s = s
	}
	d = max(d, 0)
	t.n++
	t.sum += uint64(d)
	t.buckets[bucketOf(d)]++
	if t.n >= maxTally {
		t.Flush()
	}
}

// Flush adds what the tally holds to its series.
func (t *Tally) Flush() {
	if t.n == 0 {
		return
	}
	t.s.count.Add(t.n)
	for i, c := range t.buckets {
		if c != 0 {
			t.s.latency.buckets[i].Add(uint64(c))
			t.buckets[i] = 0
		}
	}
	t.s.latency.sumNanos.Add(t.sum)
	t.n, t.sum = 0, 0
}

// requestCells holds the cells by their (bounded) label values and
// exports them as meridian_requests_total and
// meridian_request_duration_seconds.
type requestCells struct {
	countDesc, latencyDesc *prometheus.Desc

	mu      sync.Mutex
	counts  map[requestKey]*atomic.Uint64
	latency map[[2]string]*histogramCell // by frontend, command
}

func newRequestCells() *requestCells {
	return &requestCells{
		countDesc: prometheus.NewDesc("meridian_requests_total",
			"Client requests served, by front end, command and outcome code (ok or the error code).",
			[]string{"frontend", "command", "code"}, nil),
		latencyDesc: prometheus.NewDesc("meridian_request_duration_seconds",
			"Time to serve a client request, from its arrival to its answer, by front end and command.",
			[]string{"frontend", "command"}, nil),
		counts:  map[requestKey]*atomic.Uint64{},
		latency: map[[2]string]*histogramCell{},
	}
}

// series returns the cells of these label values, made on first use.
func (c *requestCells) series(frontend, command, code string) RequestSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := requestKey{frontend, command, code}
	n := c.counts[k]
	if n == nil {
		n = new(atomic.Uint64)
		c.counts[k] = n
	}
	lk := [2]string{frontend, command}
	h := c.latency[lk]
	if h == nil {
		h = &histogramCell{}
		c.latency[lk] = h
	}
	return RequestSeries{count: n, latency: h}
}

func (c *requestCells) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.countDesc
	ch <- c.latencyDesc
}

// Collect exports every cell (the registry sorts the series).
func (c *requestCells) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	counts, lats := maps.Clone(c.counts), maps.Clone(c.latency)
	c.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.countDesc, prometheus.CounterValue,
			float64(n.Load()), k.frontend, k.command, k.code)
	}
	for k, h := range lats {
		// The count is the buckets' total, so that the two agree however
		// requests are added while they are read.
		var total uint64
		cumulative := make(map[float64]uint64, nBuckets-1)
		for b := range nBuckets {
			total += h.buckets[b].Load()
			if b < nBuckets-1 {
				cumulative[latencyBuckets[b]] = total
			}
		}
		sum := float64(h.sumNanos.Load()) / 1e9
		ch <- prometheus.MustNewConstHistogram(c.latencyDesc, total, sum, cumulative, k[0], k[1])
	}
}
