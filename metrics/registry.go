package metrics

import (
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-db/meridian/node"
)

// Front ends, the values of the frontend label.
const (
	FrontendRESP = "resp"
	FrontendHTTP = "http"
)

// CodeOK is the code label of a request that succeeded.
const CodeOK = "ok"

// Other replaces a label value that is not accepted: one longer than
// MaxLabelBytes or not valid UTF-8, or a command name beyond the first
// MaxCommands of a front end.
const Other = "other"

// Bounds on label values, so that clients cannot create series at will.
const (
	MaxLabelBytes = 64
	MaxCommands   = 256
)

// latencyBuckets span a local read (a fraction of a millisecond) to a
// request that waited out a cross-region election (seconds).
var latencyBuckets = []float64{
	0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// Registry holds one node's metrics. Each node has its own (never the
// process-wide default registry), so several nodes can run in one process
// and each exposes only its own figures. The methods are safe for
// concurrent use.
type Registry struct {
	reg   *prometheus.Registry
	cells *requestCells // meridian_requests_total, meridian_request_duration_seconds

	commands sync.Map // frontend+"\x00"+command -> struct{}: names admitted as label values
	mu       sync.Mutex
	count    map[string]int // frontend -> commands admitted

	// handles caches the series of admitted (front end, command, code)
	// triples: looking them up by label values on every request costs.
	handles sync.Map // requestKey -> RequestSeries; read on every request without a shared lock word
}

type requestKey struct{ frontend, command, code string }

// NewRegistry returns a registry holding the request metrics and the Go
// runtime and process collectors. AddNode adds a node's own metrics.
func NewRegistry() *Registry {
	r := &Registry{
		reg:   prometheus.NewRegistry(),
		cells: newRequestCells(),
		count: map[string]int{},
	}
	r.reg.MustRegister(r.cells,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// ForNode returns a new registry with n's metrics added.
func ForNode(n *node.Node) *Registry {
	r := NewRegistry()
	if err := r.AddNode(n); err != nil {
		// A fresh registry holds no node metrics, so this cannot clash.
		panic("metrics: " + err.Error())
	}
	return r
}

// AddNode adds the metrics of a node, read from it at each scrape: raft
// work counters, per-group indexes and lag, leaders, round trips to the
// peers. A registry takes one node; a second call fails.
func (r *Registry) AddNode(n *node.Node) error {
	return r.reg.Register(newNodeCollector(n))
}

// Register adds another collector to the registry.
func (r *Registry) Register(c prometheus.Collector) error { return r.reg.Register(c) }

// Gatherer gives access to the collected metrics (tests, or to merge them
// into another registry).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves the registry in the Prometheus text format (the
// /metrics endpoint). A collector that fails does not hide the others.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRequest records one request of a front end: command names what
// was asked ("get", "set" for RESP; a route name for HTTP), d how long it
// took, err its outcome (nil: ok; otherwise its code is node.ErrorCode).
//
// Command names become label values: pass names from a fixed set (an
// unknown RESP command as "unknown", not the client's text). As a
// safeguard, only the first MaxCommands distinct names of a front end are
// kept; later ones are counted as Other.
func (r *Registry) ObserveRequest(frontend, command string, d time.Duration, err error) {
	code := CodeOK
	if err != nil {
		code = node.ErrorCode(err)
	}
	r.ObserveRequestCode(frontend, command, code, d)
}

// ObserveRequestCode is ObserveRequest for a front end that has decided
// the outcome code itself (codes of its own, such as an HTTP front end's
// "bad_json"). Codes must come from a fixed set.
func (r *Registry) ObserveRequestCode(frontend, command, code string, d time.Duration) {
	r.RequestSeries(frontend, command, code).Observe(d)
}

// RequestSeries returns the series ObserveRequestCode records into for
// these labels. A front end that serves the same command with the same
// outcome many times in a row (a connection's pipeline of GETs) keeps it
// and skips the look-up.
func (r *Registry) RequestSeries(frontend, command, code string) RequestSeries {
	k := requestKey{frontend, command, code}
	if v, ok := r.handles.Load(k); ok {
		return v.(RequestSeries)
	}
	frontend, code = bound(frontend), bound(code)
	admitted := r.admit(frontend, bound(command))
	h := r.cells.series(frontend, admitted, code)
	if admitted == command && frontend == k.frontend && code == k.code {
		// Only admitted names are cached, so the cache is as bounded
		// as the label values.
		r.handles.Store(k, h)
	}
	return h
}

// admit returns command if it is, or can become, one of the front end's
// label values, and Other once the front end has MaxCommands of them.
func (r *Registry) admit(frontend, command string) string {
	key := frontend + "\x00" + command
	if _, ok := r.commands.Load(key); ok {
		return command
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.commands.Load(key); ok {
		return command
	}
	if r.count[frontend] >= MaxCommands {
		return Other
	}
	r.count[frontend]++
	r.commands.Store(key, struct{}{})
	return command
}

func bound(s string) string {
	if len(s) > MaxLabelBytes || !utf8.ValidString(s) {
		return Other
	}
	return s
}
