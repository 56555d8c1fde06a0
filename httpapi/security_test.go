package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
)

// TestEveryRouteHasAPermission: every route has a permission entry and
// every entry a route; and the mux is given routes in one place only
// (New's loop over routes()), so no handler can be registered around the
// table: the package's source is searched for Handle and HandleFunc
// calls.
func TestEveryRouteHasAPermission(t *testing.T) {
	patterns := map[string]bool{}
	for _, rt := range (&api{}).routes() {
		patterns[rt.pattern] = true
		if p, ok := routePermissions[rt.pattern]; !ok || p.Class == auth.Unset {
			t.Errorf("route %q has no entry in routePermissions", rt.pattern)
		}
		if sampleRequests[rt.pattern] == nil {
			t.Errorf("route %q has no sample in sampleRequests (TestPermissionsOverEveryRoute requests every route)", rt.pattern)
		}
	}
	for p := range routePermissions {
		if !patterns[p] {
			t.Errorf("routePermissions names %q, which is no route", p)
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") {
					calls++
					if pos := fset.Position(call.Pos()); pos.Filename != "api.go" {
						t.Errorf("%s: a handler registered outside New's loop", pos)
					}
				}
			}
			return true
		})
	}
	if calls != 1 {
		t.Errorf("%d Handle/HandleFunc calls in the package, want the one in New", calls)
	}
}

// sample is one request of the permission test.
type sample struct {
	method, path, body string
}

// sampleRequests holds a request for every route; bodies are such that
// an allowed caller changes nothing that matters (the handlers refuse
// them or they change a scratch user), since only the authorization is
// under test.
var sampleRequests = map[string][]sample{
	"GET " + keyRoute:                    {{"GET", "/v1/keyspaces/t/keys/k", ""}},
	"PUT " + keyRoute:                    {{"PUT", "/v1/keyspaces/t/keys/k", `{"value":"v"}`}},
	"DELETE " + keyRoute:                 {{"DELETE", "/v1/keyspaces/t/keys/nothing", ""}},
	"GET /healthz":                       {{"GET", "/healthz", ""}},
	"GET /readyz":                        {{"GET", "/readyz", ""}},
	"GET /{$}":                           {{"GET", "/", ""}},
	"GET /v1/cluster":                    {{"GET", "/v1/cluster", ""}},
	"GET /v1/cluster/readiness":          {{"GET", "/v1/cluster/readiness", ""}},
	"GET /metrics":                       {{"GET", "/metrics", ""}},
	"GET /v1/keyspaces":                  {{"GET", "/v1/keyspaces", ""}},
	"GET /v1/keyspaces/{ks}":             {{"GET", "/v1/keyspaces/t", ""}},
	"POST /v1/cluster/nodes":             {{"POST", "/v1/cluster/nodes", `{"id":0}`}},
	"POST /v1/keyspaces":                 {{"POST", "/v1/keyspaces", `{"name":"!bad"}`}},
	"PATCH /v1/keyspaces/{ks}":           {{"PATCH", "/v1/keyspaces/t?placement_wait=0s", `{"add_region":"nowhere"}`}},
	"POST /v1/keyspaces/{ks}/switchover": {{"POST", "/v1/keyspaces/t/switchover", `{"to":"eu-west"}`}},
	"POST /v1/keyspaces/{ks}/failover":   {{"POST", "/v1/keyspaces/t/failover", `{"to":"eu-west"}`}},
	"GET /v1/keyspaces/{ks}/lost-writes": {{"GET", "/v1/keyspaces/t/lost-writes", ""}},
	"GET /v1/keyspaces/{ks}/conflicts":   {{"GET", "/v1/keyspaces/t/conflicts", ""}},
	"GET /debug/netsim":                  {{"GET", "/debug/netsim", ""}},
	"POST /debug/netsim":                 {{"POST", "/debug/netsim", `{"op":"nonsense"}`}},
	"GET /debug/pprof/":                  {{"GET", "/debug/pprof/", ""}},
	"GET /debug/pprof/profile":           {{"GET", "/debug/pprof/profile?seconds=1", ""}},
	"GET /debug/pprof/trace":             {{"GET", "/debug/pprof/trace?seconds=0.01", ""}},
	"GET /debug/pprof/symbol":            {{"GET", "/debug/pprof/symbol", ""}},
	"GET /v1/auth/whoami":                {{"GET", "/v1/auth/whoami", ""}},
	"POST /v1/auth/tokens":               {{"POST", "/v1/auth/tokens", `{"ttl":"1m","user":"reader"}`}},
	"DELETE /v1/auth/tokens/{id}":        {{"DELETE", "/v1/auth/tokens/0011223344556677?user=reader", ""}},
	"GET /v1/users":                      {{"GET", "/v1/users", ""}},
	"GET /v1/users/{user}":               {{"GET", "/v1/users/reader", ""}},
	"PUT /v1/users/{user}":               {{"PUT", "/v1/users/scratch", `{"rules":["off","\u003escratch-pw"]}`}},
	"DELETE /v1/users/{user}":            {{"DELETE", "/v1/users/scratch", ""}},
	"GET /v1/audit":                      {{"GET", "/v1/audit?since=1h", ""}},
	// Backups: targets no node can open (the secrets must not reach the
	// audit log), jobs that do not exist, a schedule without a target.
	"POST /v1/backups":           {{"POST", "/v1/backups", `{"to":"nowhere://x","options":{"secret_key":"backup-sk-sample"}}`}},
	"GET /v1/backups/jobs/{id}":  {{"GET", "/v1/backups/jobs/none", ""}},
	"POST /v1/restores":          {{"POST", "/v1/restores", `{"from":"nowhere://x","keyspace":"t","options":{"key":"YmFja3VwLXNrLXNhbXBsZQ=="}}`}},
	"GET /v1/restores/{id}":      {{"GET", "/v1/restores/none", ""}},
	"DELETE /v1/restores/{id}":   {{"DELETE", "/v1/restores/none", ""}},
	"GET /v1/backup/schedule":    {{"GET", "/v1/backup/schedule", ""}},
	"PUT /v1/backup/schedule":    {{"PUT", "/v1/backup/schedule", `{"target":""}`}},
	"DELETE /v1/backup/schedule": {{"DELETE", "/v1/backup/schedule", ""}},
	"GET /v1/backup/archives":    {{"GET", "/v1/backup/archives", ""}},
}

var testUsers = map[string][]string{
	"admin":   {"on", ">admin-pw", "~*", "+@all"},
	"reader":  {"on", ">reader-pw", "~t", "+@read"},
	"writer":  {"on", ">writer-pw", "~t", "+@read", "+@write"},
	"other":   {"on", ">other-pw", "~o", "+@all"},
	"ksadmin": {"on", ">ksadmin-pw", "~t", "+@admin"},
}

// secureEnv is a secure cluster with an HTTPS server on every node.
type secureEnv struct {
	c    *testcluster.Cluster
	urls []string
	tls  *tls.Config
}

func newSecureEnv(t *testing.T) *secureEnv {
	t.Helper()
	c := testcluster.New(t, testcluster.Options{Secure: true})
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, rules := range testUsers {
		if _, err := c.Node(1).SetUser(ctx, name, rules); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Running() {
		testutil.Eventually(t, 10*time.Second, "the users everywhere", func() bool { return len(n.Users()) == len(testUsers) })
	}
	e := &secureEnv{c: c}
	var err error
	if e.tls, _, err = pki.ClientConfig(c.CA, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.IDs() {
		n := c.Node(id)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := ServeWith(ln, New(n, Config{Certs: n.Certs()}), ServeOptions{TLS: n.Certs().ClientsConfig(n.Cluster(), []string{"http/1.1"})})
		t.Cleanup(func() { _ = srv.Close() })
		e.urls = append(e.urls, "https://"+ln.Addr().String())
	}
	return e
}

// caller is how a test authenticates.
type caller struct {
	name   string
	client *http.Client
	header string // Authorization
}

func (e *secureEnv) caller(t *testing.T, name, header string, cert *tls.Certificate) caller {
	cfg := e.tls.Clone()
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	t.Cleanup(cl.CloseIdleConnections)
	return caller{name: name, client: cl, header: header}
}

func basic(user, pw string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

func (c caller) do(t *testing.T, url string, s sample) (int, []byte) {
	t.Helper()
	var body io.Reader
	if s.body != "" {
		body = strings.NewReader(s.body)
	}
	req, err := http.NewRequest(s.method, url+s.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if s.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.header != "" {
		req.Header.Set("Authorization", c.header)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s as %s: %v", s.method, s.path, c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestPermissionsOverEveryRoute requests every route as every kind of
// caller (anonymous; users by password, by token and by certificate;
// root; a node) and checks that it is refused (401 or 403) exactly when
// the route's permission says so; admin routes' attempts land in the
// audit log.
func TestPermissionsOverEveryRoute(t *testing.T) {
	e := newSecureEnv(t)
	ctx := context.Background()
	tok, _, err := e.c.Node(2).IssueToken(ctx, "writer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, err := pki.LoadKeyPair(filepath.Join(e.c.CA, pki.ClientCertFile(auth.RootUser)), filepath.Join(e.c.CA, pki.ClientKeyFile(auth.RootUser)))
	if err != nil {
		t.Fatal(err)
	}
	nd := e.c.Node(3).Certs().Dir()
	nodeCert, err := pki.LoadKeyPair(filepath.Join(nd, pki.NodeCertFile), filepath.Join(nd, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	type who struct {
		c     caller
		allow func(p auth.Permission) bool
	}
	callers := []who{
		{e.caller(t, "anonymous", "", nil), func(p auth.Permission) bool { return p.Class == auth.Public }},
		{e.caller(t, "wrong password", basic("admin", "nope"), nil), func(p auth.Permission) bool { return false }},
		{e.caller(t, "admin", basic("admin", "admin-pw"), nil), func(p auth.Permission) bool { return true }},
		{e.caller(t, "reader", basic("reader", "reader-pw"), nil), func(p auth.Permission) bool { return p.Class <= auth.Read }},
		{e.caller(t, "writer (token)", "Bearer "+tok, nil), func(p auth.Permission) bool { return p.Class <= auth.Write }},
		{e.caller(t, "other", basic("other", "other-pw"), nil), func(p auth.Permission) bool { return p.Class <= auth.Connected }},
		{e.caller(t, "ksadmin", basic("ksadmin", "ksadmin-pw"), nil), func(p auth.Permission) bool {
			return p.Class <= auth.Connected || p == auth.AdminKeyspace
		}},
		{e.caller(t, "root (certificate)", "", &rootCert), func(p auth.Permission) bool { return true }},
		{e.caller(t, "node 3 (certificate)", "", &nodeCert), func(p auth.Permission) bool {
			return p.Class <= auth.Connected || p.Class == auth.Join
		}},
	}
	checked := 0
	for _, w := range callers {
		for pattern, samples := range sampleRequests {
			perm := routePermissions[pattern]
			for _, s := range samples {
				want := w.allow(perm)
				// Tokens of another user are a cluster admin's business.
				if pattern == "POST /v1/auth/tokens" || pattern == "DELETE /v1/auth/tokens/{id}" {
					want = want && (w.c.name == "admin" || w.c.name == "root (certificate)" || w.c.name == "reader")
				}
				status, body := w.c.do(t, e.urls[checked%3], s)
				refused := status == http.StatusUnauthorized || status == http.StatusForbidden
				if refused == want {
					t.Errorf("%s: %s %s: %d %s, want allowed %v (permission %s)", w.c.name, s.method, s.path, status, body, want, perm)
				}
				if status == http.StatusUnauthorized && !strings.Contains(string(body), CodeUnauthenticated) {
					t.Errorf("401 without its code: %s", body)
				}
				checked++
			}
		}
	}
	t.Logf("FIGURES: %d requests checked against their route's permission over HTTPS", checked)

	// The audit log of each node holds the admin routes' attempts: the
	// switchover refused to the reader and the one tried by the admin.
	var denied, tried, backupTried bool
	for _, id := range e.c.IDs() {
		recs, err := e.c.Node(id).AuditLog(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Action == "keyspace.switchover" && r.Who == "reader" && strings.HasPrefix(r.Result, "denied") && r.Keyspace == "t" {
				denied = true
			}
			if r.Action == "keyspace.switchover" && r.Who == "admin" && strings.Contains(r.Detail, `"to":"eu-west"`) && r.Frontend == "http" {
				tried = true
			}
			if strings.Contains(r.Detail, "scratch-pw") {
				t.Fatalf("a password in the audit log: %+v", r)
			}
			if strings.Contains(r.Detail, "backup-sk-sample") || strings.Contains(r.Detail, "YmFja3VwLXNrLXNhbXBsZQ") {
				t.Fatalf("a backup target's secret in the audit log: %+v", r)
			}
			if r.Action == "backup.start" && r.Who == "admin" && strings.Contains(r.Detail, `"secret_key":"***"`) {
				backupTried = true
			}
		}
	}
	if !denied || !tried {
		t.Fatalf("the audit logs lack the reader's refused switchover (%v) or the admin's (%v)", denied, tried)
	}
	if !backupTried {
		t.Fatal("the audit logs lack the admin's backup, its secret hidden")
	}

	// GET /v1/audit through one node: every node's records, merged; with
	// scope=node, that node's only.
	admin := callers[2].c
	own, err := e.c.Node(1).AuditLog(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"", "&scope=node"} {
		status, body := admin.do(t, e.urls[0], sample{"GET", "/v1/audit?since=1h&limit=100000" + scope, ""})
		var ca node.ClusterAudit
		if status != http.StatusOK || json.Unmarshal(body, &ca) != nil || len(ca.Missing) != 0 {
			t.Fatalf("GET /v1/audit%s: %d %.300s", scope, status, body)
		}
		nodes := map[uint64]int{}
		for _, r := range ca.Records {
			nodes[r.Node]++
		}
		switch {
		case scope == "" && len(nodes) != len(e.c.IDs()):
			t.Fatalf("GET /v1/audit through node 1 holds records of nodes %v, want all %d", nodes, len(e.c.IDs()))
		case scope != "" && (len(nodes) != 1 || nodes[1] < len(own)):
			t.Fatalf("GET /v1/audit?scope=node of node 1 holds records of nodes %v, want node 1's %d", nodes, len(own))
		}
	}
	if status, body := admin.do(t, e.urls[0], sample{"GET", "/v1/audit?scope=region", ""}); status != http.StatusBadRequest || !strings.Contains(string(body), CodeBadQuery) {
		t.Fatalf("a bad scope: %d %s", status, body)
	}
}

// TestTokensAndJoin: a token works until revoked; a wrong password gets
// 401 with WWW-Authenticate; a node's certificate cannot ask to admit
// another node; nothing secret shows in /metrics.
func TestTokensAndJoin(t *testing.T) {
	e := newSecureEnv(t)
	reader := e.caller(t, "reader", basic("reader", "reader-pw"), nil)
	status, body := reader.do(t, e.urls[0], sample{"POST", "/v1/auth/tokens", `{"ttl":"10m"}`})
	var tr TokenResponse
	if status != http.StatusCreated || json.Unmarshal(body, &tr) != nil || tr.User != "reader" || tr.Token == "" {
		t.Fatalf("token: %d %s", status, body)
	}
	bearer := e.caller(t, "bearer", "Bearer "+tr.Token, nil)
	testutil.Eventually(t, 10*time.Second, "the token accepted on node 3", func() bool {
		s, _ := bearer.do(t, e.urls[2], sample{"GET", "/v1/auth/whoami", ""})
		return s == http.StatusOK
	})
	if s, b := bearer.do(t, e.urls[2], sample{"GET", "/v1/auth/whoami", ""}); !bytes.Contains(b, []byte(`"name":"reader"`)) || s != 200 {
		t.Fatalf("whoami by token: %d %s", s, b)
	}
	if s, b := reader.do(t, e.urls[1], sample{"DELETE", "/v1/auth/tokens/" + tr.Record.ID, ""}); s != http.StatusOK {
		t.Fatalf("revoke: %d %s", s, b)
	}
	testutil.Eventually(t, 10*time.Second, "the revoked token refused on node 1", func() bool {
		s, _ := bearer.do(t, e.urls[0], sample{"GET", "/v1/auth/whoami", ""})
		return s == http.StatusUnauthorized
	})
	// A wrong password: 401 and a challenge.
	req, _ := http.NewRequest("GET", e.urls[0]+"/v1/cluster", nil)
	req.SetBasicAuth("reader", "wrong")
	resp, err := reader.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("wrong password: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Node 3's certificate asking to admit node 9.
	nd := e.c.Node(3).Certs().Dir()
	nodeCert, err := pki.LoadKeyPair(filepath.Join(nd, pki.NodeCertFile), filepath.Join(nd, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	n3 := e.caller(t, "node 3", "", &nodeCert)
	join, _ := json.Marshal(JoinRequest{NodeInfo: metadata.NodeInfo{ID: 9, Region: "us-east", Addr: "127.0.0.1:1"}})
	if s, b := n3.do(t, e.urls[0], sample{"POST", "/v1/cluster/nodes", string(join)}); s != http.StatusForbidden {
		t.Fatalf("node 3 admitting node 9: %d %s", s, b)
	}
	if _, ok := e.c.Node(1).Metadata().Nodes[9]; ok {
		t.Fatal("node 9 was admitted")
	}
	// No password or token in the metrics.
	_, metrics := reader.do(t, e.urls[0], sample{"GET", "/metrics", ""})
	for _, secret := range []string{"reader-pw", tr.Token} {
		if bytes.Contains(metrics, []byte(secret)) {
			t.Fatalf("a secret in /metrics")
		}
	}
}

func TestRedactBody(t *testing.T) {
	for in, want := range map[string]string{
		`{"rules":["on",">s3cret","<old\"pw","~*"]}`:  `{"rules":["on",">***","<***","~*"]}`,
		`{"password": "x y"}`:                         `{"password":"***"}`,
		`{"to":"eu-west"}`:                            `{"to":"eu-west"}`,
		`{"rules":["on","\u003es3cret","\u003cold"]}`: `{"rules":["on",">***","<***"]}`,
		`not json "\u003es3cret" ">x"`:                `not json "***" "***"`,
		// A backup target's secrets.
		`{"to":"s3://b/p","options":{"access_key":"AK","secret_key":"SK","key":"a2V5"}}`: `{"options":{"access_key":"***","key":"***","secret_key":"***"},"to":"s3://b/p"}`,
		`{"from":"s3://u:pw@b/p","keyspace":"t"}`:                                        `{"from":"s3://REDACTED@b/p","keyspace":"t"}`,
		`{"Secret_Key":"SK"}`:                       `{"Secret_Key":"***"}`,
		`not json "secret_key": "SK" s3://u:pw@b/p`: `not json "secret_key":"***" s3://REDACTED@b/p`,
	} {
		if got := redactBody([]byte(in)); got != want {
			t.Errorf("redact %s: %s, want %s", in, got, want)
		}
	}
}
