package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// Authentication and authorization of HTTP requests (package auth,
// SECURITY.md). Every request is authenticated (a client certificate of
// the cluster's CA, "Authorization: Basic" with a user's password, or
// "Authorization: Bearer" with a token from POST /v1/auth/tokens) and
// authorized with the permission routePermissions gives its route, on the
// keyspace its path names, before its body is read. Admin routes are
// recorded in the node's audit log, allowed or refused.

// Error codes of authentication and authorization.
const (
	CodeUnauthenticated = "unauthenticated" // 401: no credentials, or wrong ones
	CodeForbidden       = "forbidden"       // 403: the principal lacks the permission
	CodeBadRule         = "bad_rule"        // 400: a user rule that does not parse
	CodeUnknownUser     = "unknown_user"    // 404
	CodeRootUser        = "root_user"       // 400: the root user is built in
)

// routePermissions says which permission every route needs: the one
// place the HTTP API's authorization reads. New refuses a route without
// an entry (it panics), and TestEveryRouteHasAPermission checks both
// ways.
var routePermissions = map[string]auth.Permission{
	"GET " + keyRoute:    auth.ReadKeyspace,
	"PUT " + keyRoute:    auth.WriteKeyspace,
	"DELETE " + keyRoute: auth.WriteKeyspace,

	"GET /healthz":                       auth.PublicAccess,
	"GET /readyz":                        auth.PublicAccess,
	"GET /{$}":                           auth.PublicAccess, // the dashboard's page; its data needs credentials
	"GET /v1/cluster":                    auth.Authenticated,
	"GET /v1/cluster/readiness":          auth.Authenticated,
	"GET /metrics":                       auth.Authenticated,
	"GET /v1/keyspaces":                  auth.Authenticated,
	"GET /v1/keyspaces/{ks}":             auth.ReadKeyspace,
	"POST /v1/cluster/nodes":             auth.NodeJoin,
	"POST /v1/keyspaces":                 auth.AdminCluster,
	"PATCH /v1/keyspaces/{ks}":           auth.AdminKeyspace,
	"POST /v1/keyspaces/{ks}/switchover": auth.AdminKeyspace,
	"POST /v1/keyspaces/{ks}/failover":   auth.AdminKeyspace,
	"GET /v1/keyspaces/{ks}/lost-writes": auth.AdminKeyspace,
	"GET /v1/keyspaces/{ks}/conflicts":   auth.AdminKeyspace,
	"GET /debug/netsim":                  auth.AdminCluster,
	"POST /debug/netsim":                 auth.AdminCluster,
	"GET /debug/pprof/":                  auth.AdminCluster,
	"GET /debug/pprof/profile":           auth.AdminCluster,
	"GET /debug/pprof/trace":             auth.AdminCluster,
	"GET /debug/pprof/symbol":            auth.AdminCluster,
	"GET /v1/auth/whoami":                auth.Authenticated,
	"POST /v1/auth/tokens":               auth.Authenticated, // another user's token: cluster admin (issueToken)
	"DELETE /v1/auth/tokens/{id}":        auth.Authenticated, // another user's: cluster admin (revokeToken)
	"GET /v1/users":                      auth.AdminCluster,
	"GET /v1/users/{user}":               auth.AdminCluster,
	"PUT /v1/users/{user}":               auth.AdminCluster,
	"DELETE /v1/users/{user}":            auth.AdminCluster,
	"GET /v1/audit":                      auth.AdminCluster,
	// Backups and restores read and write every keyspace (backup.go).
	"POST /v1/backups":           auth.AdminCluster,
	"GET /v1/backups/jobs/{id}":  auth.AdminCluster,
	"POST /v1/restores":          auth.AdminCluster,
	"GET /v1/restores/{id}":      auth.AdminCluster,
	"DELETE /v1/restores/{id}":   auth.AdminCluster,
	"GET /v1/backup/schedule":    auth.AdminCluster,
	"PUT /v1/backup/schedule":    auth.AdminCluster,
	"DELETE /v1/backup/schedule": auth.AdminCluster,
	"GET /v1/backup/archives":    auth.AdminCluster,
}

const keyRoute = "/v1/keyspaces/{ks}/keys/{key...}"

type principalKey struct{}

// principalOf returns the principal of an authorized request.
func principalOf(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// authenticate returns the principal of a request: its verified client
// certificate's user or node, the user of its Basic credentials or
// bearer token, or anonymous.
func (a *api) authenticate(r *http.Request) (auth.Principal, error) {
	g := a.n.Guard()
	if !g.Required() {
		return g.Anonymous(), nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && a.cfg.Certs != nil {
		id, ok, err := a.cfg.Certs.ClientIdentity(*r.TLS, a.n.Cluster())
		if err != nil || !ok {
			return auth.Principal{}, errorf(CodeUnauthenticated, "the client certificate is not trusted")
		}
		p, err := g.LoginCertificate(id)
		if err != nil {
			return auth.Principal{}, errorf(CodeUnauthenticated, "the client certificate's user does not exist or is disabled")
		}
		return p, nil
	}
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		return g.Anonymous(), nil
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return auth.Principal{}, errorf(CodeUnauthenticated, "malformed Basic credentials")
		}
		p, err := g.Login(r.Context(), user, pass)
		if err != nil {
			return auth.Principal{}, errorf(CodeUnauthenticated, "invalid username-password pair or user is disabled")
		}
		return p, nil
	case strings.EqualFold(scheme, "Bearer"):
		p, err := g.LoginToken(strings.TrimSpace(cred), time.Now())
		if err != nil {
			return auth.Principal{}, errorf(CodeUnauthenticated, "invalid, expired or revoked token")
		}
		return p, nil
	}
	return auth.Principal{}, errorf(CodeUnauthenticated, "unknown authorization scheme (Basic or Bearer)")
}

// route wraps a handler: authentication, the one authorization check,
// the audit record of admin routes, error answers, and the request
// metrics.
func (a *api) route(name string, perm auth.Permission, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := metrics.CodeOK
		p, err := a.authenticate(r)
		ks := r.PathValue("ks")
		if err == nil {
			if aerr := a.n.Guard().Authorize(p, perm, ks); aerr != nil {
				err = authzError(aerr)
			}
		}
		detail := ""
		if err == nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			if perm.Class == auth.Admin || perm.Class == auth.Join {
				detail = peekBody(r, a.cfg.MaxAdminBodyBytes)
			}
			err = h(w, r)
		}
		if err != nil {
			if codeOf(err) == CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Basic realm="meridian", charset="UTF-8"`)
			}
			code = a.writeError(w, name, err)
		}
		if (perm.Class == auth.Admin || perm.Class == auth.Join) && p.Authenticated() {
			a.audit(r, p, name, ks, detail, err)
		}
		a.metrics.ObserveRequestCode(metrics.FrontendHTTP, name, code, time.Since(start))
	})
}

// authzError turns a refusal of auth.Authorize into the API's error.
func authzError(err error) error {
	if errors.Is(err, auth.ErrUnauthenticated) {
		return errorf(CodeUnauthenticated, "authentication required")
	}
	return errorf(CodeForbidden, "%s", strings.TrimPrefix(err.Error(), auth.ErrDenied.Error()+": "))
}

// peekBody reads up to limit bytes of an admin request's body for the
// audit log and puts them back for the handler (which applies its own
// limit to the whole body).
func peekBody(r *http.Request, limit int64) string {
	if r.Body == nil || r.Body == http.NoBody {
		return ""
	}
	buf, _ := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = bodyReplay{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	return redactBody(buf)
}

type bodyReplay struct {
	io.Reader
	io.Closer
}

// passwordRule matches, in a body that is not JSON, what may be a
// password rule (">secret", "<secret", also escaped as \u003e, \u003c)
// or a secret field (secretFields).
var passwordRule = regexp.MustCompile(`"(?:[<>]|\\u003[ceCE])(?:[^"\\]|\\.)*"|("(?i:password|secret_key|access_key|key)"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// urlUser matches the user information of a URL in a body that is not
// JSON.
var urlUser = regexp.MustCompile(`://[^/@"\s]*@`)

// redactBody shows an admin body in the audit log: passwords hidden (in
// JSON, every string starting with '>' or '<', as ACL rules give
// passwords, and every "password" field), and a backup target's secrets
// (the "secret_key", "access_key" and encryption "key" fields, the user
// information of a URL), at most 512 bytes, on one line.
func redactBody(b []byte) string {
	var s string
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false)
		if enc.Encode(redactJSON(v, "")) == nil {
			s = strings.TrimSpace(out.String())
		}
	}
	if s == "" {
		s = passwordRule.ReplaceAllStringFunc(string(b), func(m string) string {
			if k, _, ok := strings.Cut(m, ":"); ok && secretFields[strings.ToLower(strings.Trim(strings.TrimSpace(k), `"`))] {
				return k + `:"***"`
			}
			return `"***"`
		})
		s = urlUser.ReplaceAllString(s, "://REDACTED@")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// secretFields are the JSON fields of admin bodies that the audit log
// never shows: passwords, and a backup target's credentials and
// encryption key (backup.Options).
var secretFields = map[string]bool{"password": true, "secret_key": true, "access_key": true, "key": true}

func redactJSON(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = redactJSON(e, k)
		}
	case []any:
		for i, e := range x {
			x[i] = redactJSON(e, key)
		}
	case string:
		if secretFields[strings.ToLower(key)] {
			return "***"
		}
		if strings.Contains(x, "://") && strings.Contains(x, "@") {
			return backup.Redact(x)
		}
		if strings.HasPrefix(x, ">") || strings.HasPrefix(x, "<") {
			return x[:1] + "***"
		}
	}
	return v
}

// audit records an admin request in the node's audit log.
func (a *api) audit(r *http.Request, p auth.Principal, route, ks, detail string, err error) {
	result := "ok"
	if err != nil {
		c := codeOf(err)
		if c == CodeForbidden || c == CodeUnauthenticated {
			result = "denied: " + err.Error()
		} else {
			result = "error: " + c + ": " + err.Error()
		}
	}
	d := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		d += "?" + r.URL.RawQuery
	}
	if detail != "" {
		d += " " + detail
	}
	_ = a.n.Audit(node.AuditRecord{Who: p.Name(), Via: p.Via, From: r.RemoteAddr, Frontend: "http",
		Action: route, Keyspace: ks, Detail: d, Result: result})
}

// --- users, tokens, audit ---

// User is a user as the API shows it: no password, no token secret.
type User struct {
	Name      string   `json:"name"`
	Flags     []string `json:"flags"`
	Passwords []string `json:"passwords"` // fingerprints, not hashes
	Rules     string   `json:"rules"`     // ACL LIST's line
	Tokens    []Token  `json:"tokens"`
}

// Token is a token's record as the API shows it.
type Token struct {
	ID        string `json:"id"`
	CreatedMS int64  `json:"created_ms"`
	ExpiresMS int64  `json:"expires_ms"`
}

// UserRequest is the body of PUT /v1/users/{user}: ACL rules, in
// Redis's syntax, applied in order.
type UserRequest struct {
	Rules []string `json:"rules"`
}

// TokenRequest is the body of POST /v1/auth/tokens.
type TokenRequest struct {
	// User is whose token it is (default: the caller's own; another
	// user's needs cluster admin).
	User string `json:"user,omitempty"`
	// TTL is how long it is valid, a Go duration ("12h"; default 12h).
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse is the answer of POST /v1/auth/tokens: the token, shown
// only this once.
type TokenResponse struct {
	User   string `json:"user"`
	Token  string `json:"token"`
	Record Token  `json:"record"`
}

// WhoAmI is the answer of GET /v1/auth/whoami.
type WhoAmI struct {
	Name string `json:"name"`
	Via  string `json:"via,omitempty"`
}

func userView(u *auth.User) User {
	v := User{Name: u.Name, Flags: u.Flags(), Passwords: u.PasswordFingerprints(), Rules: u.Describe(), Tokens: []Token{}}
	for _, t := range u.Tokens {
		v.Tokens = append(v.Tokens, Token{ID: t.ID, CreatedMS: t.CreatedMS, ExpiresMS: t.ExpiresMS})
	}
	return v
}

func userError(err error) error {
	switch {
	case errors.Is(err, auth.ErrBadRule):
		return errorf(CodeBadRule, "%v", err)
	case errors.Is(err, auth.ErrRootUser):
		return errorf(CodeRootUser, "the root user is built in: it cannot be changed or removed, and authenticates by certificate only")
	case errors.Is(err, auth.ErrUnknownUser):
		return errorf(CodeUnknownUser, "%v", err)
	}
	return err
}

func (a *api) whoami(w http.ResponseWriter, r *http.Request) error {
	p := principalOf(r)
	writeJSON(w, http.StatusOK, WhoAmI{Name: p.Name(), Via: p.Via})
	return nil
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	out := []User{}
	for _, u := range a.n.Users() {
		out = append(out, userView(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	u, ok := a.n.User(r.PathValue("user"))
	if !ok {
		return errorf(CodeUnknownUser, "no user %q", r.PathValue("user"))
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

func (a *api) setUser(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	var req UserRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
		return err
	}
	u, err := a.n.SetUser(r.Context(), r.PathValue("user"), req.Rules)
	if err != nil {
		return userError(err)
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) error {
	ok, err := a.n.DeleteUser(r.Context(), r.PathValue("user"))
	if err != nil {
		return userError(err)
	}
	if !ok {
		return errorf(CodeUnknownUser, "no user %q", r.PathValue("user"))
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}

// ownOrAdmin checks that the caller acts on its own account, or is a
// cluster admin.
func (a *api) ownOrAdmin(r *http.Request, user string) error {
	p := principalOf(r)
	if p.Kind == auth.UserPrincipal && p.User == user {
		return nil
	}
	if err := a.n.Guard().Authorize(p, auth.AdminCluster, ""); err != nil {
		return authzError(err)
	}
	return nil
}

func (a *api) issueToken(w http.ResponseWriter, r *http.Request) error {
	var req TokenRequest
	if r.ContentLength != 0 {
		if err := requireJSON(r); err != nil {
			return err
		}
		if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
			return err
		}
	}
	p := principalOf(r)
	if req.User == "" {
		if p.Kind != auth.UserPrincipal {
			return errorf(CodeBadValue, "name the user the token is for (%s has no tokens)", p.Name())
		}
		req.User = p.User
	}
	if req.User == auth.RootUser {
		return userError(auth.ErrRootUser)
	}
	if err := a.ownOrAdmin(r, req.User); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return errorf(CodeBadValue, "ttl: %v", err)
		}
	}
	tok, rec, err := a.n.IssueToken(r.Context(), req.User, ttl)
	if err != nil {
		return userError(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, TokenResponse{User: req.User, Token: tok, Record: Token{ID: rec.ID, CreatedMS: rec.CreatedMS, ExpiresMS: rec.ExpiresMS}})
	return nil
}

func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) error {
	user := r.URL.Query().Get("user")
	if user == "" {
		user = principalOf(r).User
	}
	if err := a.ownOrAdmin(r, user); err != nil {
		return err
	}
	ok, err := a.n.RevokeToken(r.Context(), user, r.PathValue("id"))
	if err != nil {
		return userError(err)
	}
	if !ok {
		return errorf(CodeNotFound, "user %q has no token %q", user, r.PathValue("id"))
	}
	writeJSON(w, http.StatusOK, map[string]bool{"revoked": true})
	return nil
}

// auditLog answers GET /v1/audit[?since=D|RFC3339][&limit=N][&scope=node]:
// the cluster's audit records (every node's, merged by time; the nodes
// that did not answer named in "missing"), or with scope=node this
// node's only; oldest first, the newest N at most.
func (a *api) auditLog(w http.ResponseWriter, r *http.Request) error {
	var sinceMS int64
	if s := r.URL.Query().Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d >= 0 {
			sinceMS = time.Now().Add(-d).UnixMilli()
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			sinceMS = t.UnixMilli()
		} else {
			return errorf(CodeBadQuery, "since: a duration (1h) or an RFC 3339 time")
		}
	}
	limit := 10000
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			return errorf(CodeBadQuery, "limit: 1 to 100000")
		}
		limit = n
	}
	var out node.ClusterAudit
	switch scope := r.URL.Query().Get("scope"); scope {
	case "", "cluster":
		var err error
		if out, err = a.n.ClusterAuditLog(r.Context(), sinceMS, limit); err != nil {
			return err
		}
	case "node":
		recs, err := a.n.AuditLog(sinceMS, limit)
		if err != nil {
			return err
		}
		out.Records = recs
	default:
		return errorf(CodeBadQuery, "scope: cluster or node, not %q", scope)
	}
	if out.Records == nil {
		out.Records = []node.AuditRecord{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- serving ---

// ServeOptions are how ServeWith serves.
type ServeOptions struct {
	// TLS, if set, serves HTTPS (pki.Store.ClientsConfig).
	TLS *tls.Config
	// MaxConns bounds the open connections; one beyond waits to be
	// accepted. Default 10000.
	MaxConns int
}

// ServeWith is Serve with TLS and a bound on connections.
func ServeWith(ln net.Listener, h http.Handler, o ServeOptions) *http.Server {
	if o.MaxConns <= 0 {
		o.MaxConns = 10000
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, o.MaxConns)}
	if o.TLS != nil {
		ln = tls.NewListener(ln, o.TLS)
	}
	return Serve(ln, h)
}

// limitListener accepts a connection only while fewer than cap(slots)
// are open.
type limitListener struct {
	net.Listener
	slots chan struct{}
	once  sync.Once
	done  chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.once.Do(func() { l.done = make(chan struct{}) })
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { l.done = make(chan struct{}) })
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	c.release()
	return c.Conn.Close()
}
