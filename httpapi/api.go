package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path"
	"strings"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
)

// Config configures the HTTP API of one node.
type Config struct {
	// MaxBodyBytes caps the body of a data request (PUT). Default: room
	// for the node's largest value in base64 (MaxValueBytes*4/3) plus
	// 64 KiB. A larger body is refused with 413.
	MaxBodyBytes int64
	// MaxAdminBodyBytes caps the body of an admin request (keyspace and
	// node descriptions). Default 64 KiB.
	MaxAdminBodyBytes int64
	// Metrics records every request and is served at /metrics. Nil: a new
	// registry for the node (metrics.ForNode). Pass the same registry to
	// the RESP front end so that /metrics shows both.
	Metrics *metrics.Registry
	// Logger receives internal errors. Nil discards.
	Logger *slog.Logger
	// Certs, if set, are the node's certificates: a client certificate
	// a TLS request presents (ServeWith serves TLS) logs its user in.
	Certs *pki.Store
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxBodyBytes < 0 || c.MaxAdminBodyBytes < 0 {
		return errors.New("httpapi: MaxBodyBytes and MaxAdminBodyBytes must not be negative")
	}
	return nil
}

func (c *Config) setDefaults(n *node.Node, l node.Limits) {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = int64(base64.StdEncoding.EncodedLen(l.MaxValueBytes)) + 64<<10
	}
	if c.MaxAdminBodyBytes == 0 {
		c.MaxAdminBodyBytes = 64 << 10
	}
	if c.Metrics == nil {
		c.Metrics = metrics.ForNode(n)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// api serves one node.
type api struct {
	n       *node.Node
	cfg     Config
	limits  node.Limits
	log     *slog.Logger
	metrics *metrics.Registry
	mux     *http.ServeMux
}

// handlerFunc serves one route. It writes the answer itself when it
// succeeds and returns the error otherwise; the route wrapper writes the
// error answer (after any headers the handler set, such as the answer
// metadata of a read that found nothing).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// New returns the HTTP API of node n: the data and admin routes, /metrics
// and the dashboard. It panics if cfg is invalid (see Config.Validate).
func New(n *node.Node, cfg Config) http.Handler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	limits := n.Limits()
	cfg.setDefaults(n, limits)
	a := &api{n: n, cfg: cfg, limits: limits, log: cfg.Logger, metrics: cfg.Metrics, mux: http.NewServeMux()}
	for _, rt := range a.routes() {
		perm, ok := routePermissions[rt.pattern]
		if !ok || perm.Class == auth.Unset {
			panic(fmt.Sprintf("httpapi: route %q has no entry in routePermissions", rt.pattern))
		}
		a.mux.Handle(rt.pattern, a.route(rt.name, perm, rt.h))
	}
	return a
}

// routeDef is one route: its pattern, its name (metrics, the audit log)
// and its handler. Its permission is routePermissions[pattern].
type routeDef struct {
	pattern, name string
	h             handlerFunc
}

// routes lists every route the API serves; New registers them, and
// nothing else.
func (a *api) routes() []routeDef {
	const key = keyRoute
	return []routeDef{
		{"GET " + key, "kv.get", a.getKey},
		{"PUT " + key, "kv.put", a.putKey},
		{"DELETE " + key, "kv.delete", a.deleteKey},
		{"GET /v1/cluster", "cluster.status", a.clusterStatus},
		{"GET /v1/cluster/readiness", "cluster.readiness", a.clusterReadiness},
		{"GET /healthz", "healthz", a.healthz},
		{"GET /readyz", "readyz", a.readyz},
		{"POST /v1/cluster/nodes", "cluster.add_node", a.addNode},
		{"GET /v1/keyspaces", "keyspace.list", a.listKeyspaces},
		{"POST /v1/keyspaces", "keyspace.create", a.createKeyspace},
		{"GET /v1/keyspaces/{ks}", "keyspace.describe", a.describeKeyspace},
		{"PATCH /v1/keyspaces/{ks}", "keyspace.alter", a.alterKeyspace},
		{"POST /v1/keyspaces/{ks}/switchover", "keyspace.switchover", a.switchover},
		{"POST /v1/keyspaces/{ks}/failover", "keyspace.failover", a.failover},
		{"GET /v1/keyspaces/{ks}/lost-writes", "keyspace.lost_writes", a.lostWrites},
		{"GET /v1/keyspaces/{ks}/conflicts", "keyspace.conflicts", a.conflicts},
		// Backups and restores (backup.go).
		{"POST /v1/backups", "backup.start", a.startBackup},
		{"GET /v1/backups/jobs/{id}", "backup.job", a.backupJob},
		{"POST /v1/restores", "restore.start", a.startRestore},
		{"GET /v1/restores/{id}", "restore.status", a.restoreStatus},
		{"DELETE /v1/restores/{id}", "restore.cancel", a.cancelRestore},
		{"GET /v1/backup/schedule", "backup.schedule", a.getSchedule},
		{"PUT /v1/backup/schedule", "backup.set_schedule", a.putSchedule},
		{"DELETE /v1/backup/schedule", "backup.delete_schedule", a.deleteSchedule},
		{"GET /v1/backup/archives", "backup.archives", a.archives},
		{"GET /metrics", "metrics", a.serveMetrics},
		{"GET /debug/netsim", "debug.netsim", a.netsimState},
		{"POST /debug/netsim", "debug.netsim_fault", a.netsimFault},
		{"GET /{$}", "dashboard", serveDashboard},
		// Go's profiler, for `go tool pprof https://HOST:PORT/debug/pprof/profile`.
		{"GET /debug/pprof/", "debug.pprof", plain(pprof.Index)},
		{"GET /debug/pprof/profile", "debug.pprof_profile", plain(pprof.Profile)},
		{"GET /debug/pprof/trace", "debug.pprof_trace", plain(pprof.Trace)},
		{"GET /debug/pprof/symbol", "debug.pprof_symbol", plain(pprof.Symbol)},
		// Users, tokens and the audit log (auth.go).
		{"GET /v1/auth/whoami", "auth.whoami", a.whoami},
		{"POST /v1/auth/tokens", "auth.token_issue", a.issueToken},
		{"DELETE /v1/auth/tokens/{id}", "auth.token_revoke", a.revokeToken},
		{"GET /v1/users", "user.list", a.listUsers},
		{"GET /v1/users/{user}", "user.get", a.getUser},
		{"PUT /v1/users/{user}", "user.set", a.setUser},
		{"DELETE /v1/users/{user}", "user.delete", a.deleteUser},
		{"GET /v1/audit", "audit", a.auditLog},
	}
}

func plain(f http.HandlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f(w, r)
		return nil
	}
}

// ServeHTTP routes a request. Requests the mux cannot route get JSON
// errors (404 not_found, 405 method_not_allowed with Allow) instead of its
// plain-text ones, and API paths with empty or dot segments are refused
// rather than redirected to a cleaned path: such a redirect would silently
// name another key.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if p := r.URL.EscapedPath(); strings.HasPrefix(p, "/v1/") && !canonical(p) {
		a.unrouted(w, errorf(CodeBadPath, "path %q has empty or dot segments; percent-encode '/' and '.' in keys (%%2F, %%2E)", p))
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		if _, ok := routePermissions[pattern]; !ok { // never: New registers the table's routes only
			a.unrouted(w, errorf(CodeForbidden, "no permission is recorded for %s", pattern))
			return
		}
		a.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404 and 405 (and compute Allow), then
	// answer in JSON.
	cw := &captureWriter{header: http.Header{}}
	h.ServeHTTP(cw, r)
	if cw.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", cw.header.Get("Allow"))
		a.unrouted(w, errorf(CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	a.unrouted(w, errorf(CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
}

// unrouted answers a request no route took; its metrics go under the
// route name "unmatched".
func (a *api) unrouted(w http.ResponseWriter, err error) {
	start := time.Now()
	code := a.writeError(w, "unmatched", err)
	a.metrics.ObserveRequestCode(metrics.FrontendHTTP, "unmatched", code, time.Since(start))
}

// canonical reports whether an escaped path has no empty or dot segments
// (what ServeMux would otherwise redirect to a cleaned path).
func canonical(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// captureWriter records what the mux's fallback handlers write.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the status is sent; a failed write is the client's loss
}

func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	a.metrics.Handler().ServeHTTP(w, r)
	return nil
}

// Server timeouts: the header must arrive quickly; a body may be a few
// MiB on a slow link; the answer may wait for a request timeout (10s by
// default) plus a cross-region round trip.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = time.Minute
	WriteTimeout      = time.Minute
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10 // read before a request is authenticated
)

// NewServer returns an http.Server for h with the package's timeouts and
// header limit.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves h on an already-open listener, in the background, and
// returns the server; Close or Shutdown stops it (and closes ln).
func Serve(ln net.Listener, h http.Handler) *http.Server {
	srv := NewServer(h)
	go func() { _ = srv.Serve(ln) }()
	return srv
}
