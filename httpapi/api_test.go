package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// env is a 3-region cluster (one node per region) with one HTTP server
// per node.
type env struct {
	c    *testcluster.Cluster
	ks   *metadata.Keyspace
	srv  map[uint64]*httptest.Server
	regs map[uint64]*metrics.Registry
}

func newEnv(t *testing.T) *env {
	c := testcluster.New(t, testcluster.Options{})
	e := &env{c: c, srv: map[uint64]*httptest.Server{}, regs: map[uint64]*metrics.Registry{}}
	e.ks = c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 2})
	for _, id := range c.IDs() {
		n := c.Node(id)
		e.regs[id] = metrics.ForNode(n)
		s := httptest.NewServer(httpapi.New(n, httpapi.Config{Metrics: e.regs[id]}))
		t.Cleanup(s.Close)
		e.srv[id] = s
	}
	return e
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to node id. A non-nil body is sent as JSON unless
// the headers say otherwise.
func (e *env) do(t *testing.T, id uint64, method, path string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv[id].URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func decode[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r.body, err)
	}
	return v
}

// wantError checks an error answer: status, code, and the JSON shape.
func wantError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q", ct)
	}
	var eb httpapi.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if eb.Error.Code != code || eb.Error.Message == "" {
		t.Fatalf("error %+v, want code %q and a message", eb.Error, code)
	}
}

// checkAnswer checks the answer headers.
func checkAnswer(t *testing.T, r reply, region string, nodeID uint64, consistency string, forwarded bool, wantIndex bool) uint64 {
	t.Helper()
	h := r.header
	if h.Get("Meridian-Region") != region || h.Get("Meridian-Node") != strconv.FormatUint(nodeID, 10) ||
		h.Get("Meridian-Consistency") != consistency || h.Get("Meridian-Forwarded") != strconv.FormatBool(forwarded) {
		t.Fatalf("answer headers region=%q node=%q consistency=%q forwarded=%q; want %s %d %s %v",
			h.Get("Meridian-Region"), h.Get("Meridian-Node"), h.Get("Meridian-Consistency"), h.Get("Meridian-Forwarded"),
			region, nodeID, consistency, forwarded)
	}
	idx := h.Get("Meridian-Index")
	if !wantIndex {
		if idx != "" {
			t.Fatalf("Meridian-Index %q on an answer that has none", idx)
		}
		return 0
	}
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("Meridian-Index %q", idx)
	}
	return n
}

func keyPath(ks, key string) string {
	return "/v1/keyspaces/" + url.PathEscape(ks) + "/keys/" + url.PathEscape(key)
}

func TestHTTPAPI(t *testing.T) {
	e := newEnv(t)
	c := e.c
	east, west, asia := c.InRegion("us-east")[0], c.InRegion("eu-west")[0], c.InRegion("ap-southeast")[0]
	leaderOf := func(key string) uint64 {
		return c.Leader(e.ks.Shards[node.ShardOf([]byte(key), len(e.ks.Shards))].Group)
	}

	t.Run("PutHereGetThere", func(t *testing.T) {
		r := e.do(t, east, "PUT", keyPath("t", "greeting"), httpapi.PutRequest{Value: ptr("hello")})
		if r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		putIdx := checkAnswer(t, r, "us-east", east, "strong", leaderOf("greeting") != east, true)
		if w := decode[httpapi.WriteResponse](t, r); w.Key != "greeting" || !w.Written {
			t.Fatalf("put answer %+v", w)
		}
		// A strong read in another region sees it at once, at a read
		// index no older than the write.
		r = e.do(t, west, "GET", keyPath("t", "greeting"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("strong get: %d %s", r.status, r.body)
		}
		if idx := checkAnswer(t, r, "eu-west", west, "strong", false, true); idx < putIdx {
			t.Fatalf("read index %d before the write's index %d", idx, putIdx)
		}
		v := decode[httpapi.ValueResponse](t, r)
		if v.Key != "greeting" || v.Type != "string" || !v.Found || v.Value == nil || *v.Value != "hello" || v.ValueBase64 != nil {
			t.Fatalf("strong get %s", r.body)
		}
		// An eventual read is served by the local replica; it converges.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var last reply
		if err := c.WaitFor(ctx, func() bool {
			last = e.do(t, asia, "GET", keyPath("t", "greeting"), nil, "Meridian-Consistency", "eventual")
			return last.status == http.StatusOK
		}); err != nil {
			t.Fatalf("eventual read never found the key: %d %s", last.status, last.body)
		}
		// The eventual answer says which log position it reflects and
		// hands out a session token.
		checkAnswer(t, last, "ap-southeast", asia, "eventual", false, true)
		if last.header.Get("Meridian-Session") == "" {
			t.Fatal("no session token on a read")
		}
		if v := decode[httpapi.ValueResponse](t, last); v.Value == nil || *v.Value != "hello" {
			t.Fatalf("eventual get %s", last.body)
		}
	})

	t.Run("BinaryValuesAndKeys", func(t *testing.T) {
		bin := []byte{0, 1, 0xfe, 0xff, 'x'}
		key := "dir/\xff\x00key"
		r := e.do(t, asia, "PUT", keyPath("t", key), httpapi.PutRequest{ValueBase64: ptr(base64.StdEncoding.EncodeToString(bin))})
		if r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		r = e.do(t, east, "GET", keyPath("t", key), nil)
		v := decode[httpapi.ValueResponse](t, r)
		if v.Value != nil || v.ValueBase64 == nil || *v.ValueBase64 != base64.StdEncoding.EncodeToString(bin) {
			t.Fatalf("binary value came back as %s", r.body)
		}
		if v.KeyBase64 != base64.StdEncoding.EncodeToString([]byte(key)) {
			t.Fatalf("key_base64 %q for a non-UTF-8 key", v.KeyBase64)
		}
		// Text can be asked for in base64.
		r = e.do(t, east, "GET", keyPath("t", "greeting")+"?encoding=base64", nil)
		if v := decode[httpapi.ValueResponse](t, r); v.ValueBase64 == nil || *v.ValueBase64 != base64.StdEncoding.EncodeToString([]byte("hello")) {
			t.Fatalf("encoding=base64: %s", r.body)
		}
	})

	t.Run("SlashesInKeys", func(t *testing.T) {
		r := e.do(t, east, "PUT", "/v1/keyspaces/t/keys/users/42", httpapi.PutRequest{Value: ptr("ada")})
		if r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		// Raw and percent-encoded slashes name the same key.
		r = e.do(t, west, "GET", "/v1/keyspaces/t/keys/users%2F42", nil)
		if v := decode[httpapi.ValueResponse](t, r); r.status != http.StatusOK || v.Key != "users/42" || *v.Value != "ada" {
			t.Fatalf("get users%%2F42: %d %s", r.status, r.body)
		}
		// A path the mux would clean (and so redirect to another key) is refused.
		wantError(t, e.do(t, east, "PUT", "/v1/keyspaces/t/keys/users//42", httpapi.PutRequest{Value: ptr("x")}), 400, "bad_path")
		wantError(t, e.do(t, east, "GET", "/v1/keyspaces/t/keys/a/../b", nil), 400, "bad_path")
	})

	t.Run("TTL", func(t *testing.T) {
		ttl := int64(60_000)
		before := time.Now().UnixMilli()
		r := e.do(t, east, "PUT", keyPath("t", "session"), httpapi.PutRequest{Value: ptr("s"), TTLMS: &ttl})
		if r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		v := decode[httpapi.ValueResponse](t, e.do(t, west, "GET", keyPath("t", "session"), nil))
		if v.ExpiresAtMS < before+ttl || v.ExpiresAtMS > time.Now().UnixMilli()+ttl || v.TTLMS <= 0 || v.TTLMS > ttl {
			t.Fatalf("expiry %d ttl %d (put at %d with ttl %d)", v.ExpiresAtMS, v.TTLMS, before, ttl)
		}
		// A key with a short TTL disappears.
		short := int64(50)
		if r := e.do(t, east, "PUT", keyPath("t", "brief"), httpapi.PutRequest{Value: ptr("b"), TTLMS: &short}); r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.WaitFor(ctx, func() bool {
			return e.do(t, west, "GET", keyPath("t", "brief"), nil).status == http.StatusNotFound
		}); err != nil {
			t.Fatal("a key with a 50ms TTL never expired")
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if r := e.do(t, west, "PUT", keyPath("t", "doomed"), httpapi.PutRequest{Value: ptr("x")}); r.status != http.StatusOK {
			t.Fatalf("put: %d %s", r.status, r.body)
		}
		r := e.do(t, west, "DELETE", keyPath("t", "doomed"), nil)
		if r.status != http.StatusOK {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		checkAnswer(t, r, "eu-west", west, "strong", leaderOf("doomed") != west, true)
		if d := decode[httpapi.DeleteResponse](t, r); d.Key != "doomed" || !d.Deleted {
			t.Fatalf("delete answer %s", r.body)
		}
		r = e.do(t, asia, "GET", keyPath("t", "doomed"), nil)
		wantError(t, r, 404, "key_not_found")
		checkAnswer(t, r, "ap-southeast", asia, "strong", false, true) // a miss still says how it was served
		wantError(t, e.do(t, west, "DELETE", keyPath("t", "doomed"), nil), 404, "key_not_found")
	})

	t.Run("DataErrors", func(t *testing.T) {
		big := strings.Repeat("x", 4<<20+1)
		huge := strings.Repeat("y", 6<<20)
		long := strings.Repeat("k", 16<<10+1)
		for _, tc := range []struct {
			name, method, path string
			body               any
			hdr                []string
			status             int
			code               string
		}{
			{"malformed JSON", "PUT", keyPath("t", "k"), `{"value": "x"`, nil, 400, "bad_json"},
			{"not an object", "PUT", keyPath("t", "k"), `["x"]`, nil, 400, "bad_json"},
			{"wrong field type", "PUT", keyPath("t", "k"), `{"value": 5}`, nil, 400, "bad_json"},
			{"empty body", "PUT", keyPath("t", "k"), ``, nil, 400, "bad_json"},
			{"trailing data", "PUT", keyPath("t", "k"), `{"value": "x"} {}`, nil, 400, "bad_json"},
			{"unknown field", "PUT", keyPath("t", "k"), `{"value": "x", "colour": "red"}`, nil, 400, "unknown_field"},
			{"no value", "PUT", keyPath("t", "k"), `{}`, nil, 400, "bad_value"},
			{"two values", "PUT", keyPath("t", "k"), `{"value": "x", "value_base64": "eA=="}`, nil, 400, "bad_value"},
			{"bad base64", "PUT", keyPath("t", "k"), `{"value_base64": "not base64!"}`, nil, 400, "bad_value"},
			{"unknown type", "PUT", keyPath("t", "k"), `{"type": "hash", "value": "x"}`, nil, 400, "bad_value"},
			{"negative ttl", "PUT", keyPath("t", "k"), `{"value": "x", "ttl_ms": -1}`, nil, 400, "bad_ttl"},
			{"zero ttl", "PUT", keyPath("t", "k"), `{"value": "x", "ttl_ms": 0}`, nil, 400, "bad_ttl"},
			{"not JSON", "PUT", keyPath("t", "k"), `value=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
			{"no content type", "PUT", keyPath("t", "k"), `{"value": "x"}`, []string{"Content-Type", ""}, 415, "unsupported_media_type"},
			{"value over the node's limit", "PUT", keyPath("t", "k"), httpapi.PutRequest{Value: &big}, nil, 413, "value_too_large"},
			{"body over the limit", "PUT", keyPath("t", "k"), httpapi.PutRequest{Value: &huge}, nil, 413, "body_too_large"},
			{"unknown keyspace get", "GET", keyPath("nope", "k"), nil, nil, 404, "unknown_keyspace"},
			{"unknown keyspace put", "PUT", keyPath("nope", "k"), httpapi.PutRequest{Value: ptr("x")}, nil, 404, "unknown_keyspace"},
			{"unknown keyspace delete", "DELETE", keyPath("nope", "k"), nil, nil, 404, "unknown_keyspace"},
			{"missing key", "GET", keyPath("t", "never-written"), nil, nil, 404, "key_not_found"},
			{"bad consistency", "GET", keyPath("t", "k"), nil, []string{"Meridian-Consistency", "psychic"}, 400, "unknown_consistency"},
			{"bad consistency on a write", "PUT", keyPath("t", "k"), httpapi.PutRequest{Value: ptr("x")}, []string{"Meridian-Consistency", "maybe"}, 400, "unknown_consistency"},
			{"bad encoding", "GET", keyPath("t", "k") + "?encoding=hex", nil, nil, 400, "bad_query"},
			{"empty key", "GET", "/v1/keyspaces/t/keys/", nil, nil, 400, "empty_key"},
			{"key too long", "GET", keyPath("t", long), nil, nil, 400, "key_too_large"},
			{"no route", "GET", "/v1/nothing", nil, nil, 404, "not_found"},
			{"wrong method", "PATCH", keyPath("t", "k"), nil, nil, 405, "method_not_allowed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do(t, east, tc.method, tc.path, tc.body, tc.hdr...), tc.status, tc.code)
			})
		}
		// 405 says what is allowed.
		r := e.do(t, east, "POST", "/v1/cluster", nil)
		wantError(t, r, 405, "method_not_allowed")
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") {
			t.Fatalf("Allow %q", allow)
		}
	})

	t.Run("Keyspaces", func(t *testing.T) {
		r := e.do(t, west, "POST", "/v1/keyspaces?wait=true", metadata.KeyspaceSpec{Name: "orders", Shards: 3})
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if loc := r.header.Get("Location"); loc != "/v1/keyspaces/orders" {
			t.Fatalf("Location %q", loc)
		}
		// The answer decodes as a metadata.Keyspace (what the CLI reads)...
		mk := decode[metadata.Keyspace](t, r)
		if mk.Name != "orders" || mk.Strategy != metadata.Sync || mk.KeyspaceSpec.Shards != 3 || len(mk.Shards) != 3 || len(mk.KeyspaceSpec.Regions) != 3 {
			t.Fatalf("created %s", r.body)
		}
		// ...and, waited for, every shard has a leader.
		created := decode[httpapi.Keyspace](t, r)
		if len(created.Shards) != 3 {
			t.Fatalf("shard_list %s", r.body)
		}
		for _, sh := range created.Shards {
			if sh.Leader == 0 || sh.LeaderRegion != c.RegionOf(sh.Leader) || len(sh.Replicas) != 3 {
				t.Fatalf("shard after wait=true: %+v", sh)
			}
		}
		// A write to the new keyspace works at once.
		if r := e.do(t, asia, "PUT", keyPath("orders", "o1"), httpapi.PutRequest{Value: ptr("1")}); r.status != http.StatusOK {
			t.Fatalf("put in the new keyspace: %d %s", r.status, r.body)
		}

		list := decode[[]httpapi.Keyspace](t, e.do(t, asia, "GET", "/v1/keyspaces", nil))
		var names []string
		for _, ks := range list {
			names = append(names, ks.Name)
		}
		if !slices.Equal(names, []string{"orders", "t"}) {
			t.Fatalf("list %v", names)
		}

		r = e.do(t, east, "GET", "/v1/keyspaces/t", nil)
		if r.status != http.StatusOK {
			t.Fatalf("describe: %d %s", r.status, r.body)
		}
		d := decode[httpapi.Keyspace](t, r)
		if d.Name != "t" || d.KeyspaceSpec.Shards != 2 || len(d.Shards) != 2 || d.CreatedIndex == 0 {
			t.Fatalf("describe %s", r.body)
		}
		for i, sh := range d.Shards {
			want := e.ks.Shards[i]
			if sh.Index != i || sh.Group != want.Group || !slices.Equal(sh.Replicas, want.Replicas) {
				t.Fatalf("shard %d: %+v, metadata %+v", i, sh, want)
			}
			if lead := c.Leader(sh.Group); lead == 0 || sh.Leader != lead || sh.LeaderRegion != c.RegionOf(lead) || sh.Term == 0 || sh.Commit == 0 {
				t.Fatalf("shard %d: leader %d (%s) term %d commit %d; the cluster says %d", i, sh.Leader, sh.LeaderRegion, sh.Term, sh.Commit, lead)
			}
		}

		for _, tc := range []struct {
			name, body string
			status     int
			code       string
		}{
			{"exists", `{"name": "t"}`, 409, "keyspace_exists"},
			{"too many shards", `{"name": "x", "shards": 100000}`, 400, "invalid_spec"},
			{"unknown region", `{"name": "x", "regions": ["mars"]}`, 400, "invalid_spec"},
			{"bad name", `{"name": "no spaces"}`, 400, "invalid_spec"},
			{"unknown strategy", `{"name": "x", "strategy": "quantum"}`, 400, "invalid_spec"},
			{"unknown field", `{"name": "x", "shard": 2}`, 400, "unknown_field"},
			{"malformed", `{"name": `, 400, "bad_json"},
			{"wrong type", `{"name": "x", "shards": "two"}`, 400, "bad_json"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do(t, east, "POST", "/v1/keyspaces", tc.body), tc.status, tc.code)
			})
		}
		wantError(t, e.do(t, east, "POST", "/v1/keyspaces?wait=perhaps", `{"name": "x"}`), 400, "bad_query")
		wantError(t, e.do(t, east, "GET", "/v1/keyspaces/nope", nil), 404, "unknown_keyspace")
		big := `{"name": "` + strings.Repeat("x", 70<<10) + `"}`
		wantError(t, e.do(t, east, "POST", "/v1/keyspaces", big), 413, "body_too_large")
	})

	t.Run("Cluster", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var cs node.ClusterStatus
		var last reply
		complete := func() bool {
			last = e.do(t, west, "GET", "/v1/cluster", nil)
			if last.status != http.StatusOK {
				return false
			}
			cs = decode[node.ClusterStatus](t, last)
			for _, a := range c.IDs() {
				for _, b := range c.Others(a) {
					if _, ok := cs.RTTms[a][b]; !ok {
						return false
					}
				}
			}
			return true
		}
		if err := c.WaitFor(ctx, complete); err != nil {
			t.Fatalf("the RTT matrix never filled: %s", last.body)
		}
		if cs.Node != west || cs.Region != "eu-west" || len(cs.Nodes) != 3 || !slices.Equal(cs.Regions, []string{"ap-southeast", "eu-west", "us-east"}) {
			t.Fatalf("cluster %s", last.body)
		}
		for _, ns := range cs.Nodes {
			if !ns.Reachable || ns.Region != c.RegionOf(ns.ID) || ns.Addr != c.Member(ns.ID).Addr {
				t.Fatalf("node %+v", ns)
			}
		}
		var ksNames []string
		for _, ks := range cs.Keyspaces {
			ksNames = append(ksNames, ks.Name)
			for _, sh := range ks.Shards {
				if sh.Leader == 0 {
					t.Fatalf("keyspace %s shard %d without a leader", ks.Name, sh.Index)
				}
			}
		}
		if !slices.Contains(ksNames, "t") {
			t.Fatalf("keyspaces %v", ksNames)
		}
	})

	t.Run("Dashboard", func(t *testing.T) {
		r := e.do(t, east, "GET", "/", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("dashboard: %d %q", r.status, r.header.Get("Content-Type"))
		}
		page := string(r.body)
		for _, want := range []string{"<script>", "v1/cluster", "rtt", "keyspaces", "leader"} {
			if !strings.Contains(page, want) {
				t.Fatalf("dashboard lacks %q", want)
			}
		}
		for _, external := range []string{"http://", "https://", " src=", "<link"} {
			if strings.Contains(page, external) {
				t.Fatalf("dashboard refers to an external asset (%q)", external)
			}
		}
		// The CSP allows exactly the inline script, so browsers run it.
		_, rest, _ := strings.Cut(page, "<script>")
		script, _, _ := strings.Cut(rest, "</script>")
		sum := sha256.Sum256([]byte(script))
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
			t.Fatalf("CSP %q does not allow the page's script", csp)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		r := e.do(t, east, "GET", "/metrics", nil)
		if r.status != http.StatusOK {
			t.Fatalf("metrics: %d", r.status)
		}
		text := string(r.body)
		for _, name := range []string{
			"meridian_requests_total", "meridian_request_duration_seconds_bucket",
			"meridian_raft_proposals_total", "meridian_raft_entries_applied_total", "meridian_raft_ready_rounds_total",
			"meridian_raft_fsyncs_total", "meridian_raft_batches_committed_total", "meridian_raft_read_index_total",
			"meridian_raft_leaders", "meridian_raft_groups", "meridian_raft_group_apply_lag_entries",
			"meridian_raft_group_commit_index", "meridian_peer_rtt_seconds", "meridian_node_info",
		} {
			if !strings.Contains(text, "\n"+name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		// The traffic above was counted, with its outcomes.
		for _, want := range []struct {
			command, code string
		}{{"kv.put", "ok"}, {"kv.get", "ok"}, {"kv.get", "key_not_found"}, {"kv.put", "bad_json"}, {"unmatched", "not_found"}} {
			if v := counterValue(t, e.regs[east], "meridian_requests_total", map[string]string{
				"frontend": "http", "command": want.command, "code": want.code}); v == 0 {
				t.Errorf("no %s request with code %s counted", want.command, want.code)
			}
		}
		// The leader of a shard reports its replication lag.
		lead := c.Leader(e.ks.Shards[0].Group)
		if !familyHas(t, e.regs[lead], "meridian_raft_group_replication_lag_entries", map[string]string{
			"keyspace": "t", "shard": "0", "group": strconv.FormatUint(e.ks.Shards[0].Group, 10)}) {
			t.Errorf("leader %d reports no replication lag for shard 0", lead)
		}
	})

	t.Run("Health", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		r := e.do(t, east, "GET", "/healthz", nil)
		if h := decode[httpapi.Health](t, r); r.status != http.StatusOK || h.Status != "ok" || h.Node != east {
			t.Fatalf("healthz: %d %s", r.status, r.body)
		}
		for _, id := range c.IDs() {
			r := e.do(t, id, "GET", "/readyz", nil)
			if rd := decode[node.Readiness](t, r); r.status != http.StatusOK || !rd.Ready || rd.Node != id || rd.Replicas == 0 || rd.Hosted != rd.Replicas {
				t.Fatalf("readyz of node %d: %d %s", id, r.status, r.body)
			}
		}
		r = e.do(t, west, "GET", "/v1/cluster/readiness", nil)
		if cr := decode[node.ClusterReadiness](t, r); r.status != http.StatusOK || !cr.Ready || len(cr.Members) != 3 || !cr.Members[0].Initial || !cr.Members[0].Joined {
			t.Fatalf("cluster readiness: %d %s", r.status, r.body)
		}
		for _, q := range []string{"forever", "-1s", "1h"} {
			wantError(t, e.do(t, east, "POST", "/v1/keyspaces?placement_wait="+q, `{"name": "x"}`), 400, "bad_query")
			wantError(t, e.do(t, east, "PATCH", "/v1/keyspaces/t?placement_wait="+q, `{"add_region": "us-east"}`), 400, "bad_query")
		}

		// ap-southeast cut off: a keyspace that needs it is refused after
		// the wait asked for, naming it; the node cut off is not ready.
		c.Net.Isolate(asia)
		if err := c.WaitFor(ctx, func() bool { return slices.Contains(c.Node(east).Membership().Unreachable, asia) }); err != nil {
			t.Fatal("node 1 never saw ap-southeast's node unreachable")
		}
		r = e.do(t, east, "POST", "/v1/keyspaces?placement_wait=200ms", `{"name": "late", "strategy": "async"}`)
		wantError(t, r, 503, "region_unavailable")
		if !strings.Contains(string(r.body), "ap-southeast") {
			t.Fatalf("the refusal does not name the region: %s", r.body)
		}
		if err := c.WaitFor(ctx, func() bool {
			r = e.do(t, asia, "GET", "/readyz", nil)
			return r.status == http.StatusServiceUnavailable
		}); err != nil {
			t.Fatalf("readyz of the cut-off node: %d %s", r.status, r.body)
		}
		if rd := decode[node.Readiness](t, r); rd.Ready || len(rd.Reasons) == 0 || r.header.Get("Retry-After") == "" {
			t.Fatalf("readyz of the cut-off node: %s", r.body)
		}
		r = e.do(t, east, "GET", "/v1/cluster/readiness", nil)
		if cr := decode[node.ClusterReadiness](t, r); r.status != http.StatusServiceUnavailable || cr.Ready {
			t.Fatalf("cluster readiness with a node cut off: %d %s", r.status, r.body)
		}
		c.Heal()
		if err := c.WaitFor(ctx, func() bool {
			r = e.do(t, east, "GET", "/v1/cluster/readiness", nil)
			return r.status == http.StatusOK
		}); err != nil {
			t.Fatalf("cluster readiness after healing: %d %s", r.status, r.body)
		}
	})

	t.Run("AddNode", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			status     int
			code       string
		}{
			{"empty", `{}`, 400, "invalid_spec"},
			{"no address", `{"id": 9, "region": "us-east"}`, 400, "invalid_spec"},
			{"address without port", `{"id": 9, "region": "us-east", "addr": "10.0.0.9"}`, 400, "invalid_spec"},
			{"bad region", `{"id": 9, "region": "", "addr": "10.0.0.9:7400"}`, 400, "invalid_spec"},
			{"bad http address", `{"id": 9, "region": "us-east", "addr": "10.0.0.9:7400", "http_addr": "x"}`, 400, "invalid_spec"},
			{"unknown field", `{"id": 9, "region": "us-east", "addr": "10.0.0.9:7400", "role": "x"}`, 400, "unknown_field"},
			{"malformed", `{"id": 9,`, 400, "bad_json"},
			{"negative id", `{"id": -9, "region": "us-east", "addr": "10.0.0.9:7400"}`, 400, "bad_json"},
			{"an existing id elsewhere", fmt.Sprintf(`{"id": %d, "region": "us-east", "addr": "10.0.0.1:1"}`, west), 400, "invalid_spec"},
			{"other timings", `{"id": 9, "region": "us-east", "addr": "10.0.0.9:7400", "timings": {"tick_interval_ns": 20000000, "min_heartbeat_interval_ns": 50000000, "min_election_timeout_ns": 500000000}}`, 400, "timings_differ"},
			{"negative timings", `{"id": 9, "region": "us-east", "addr": "10.0.0.9:7400", "timings": {"tick_interval_ns": -1, "min_heartbeat_interval_ns": 1, "min_election_timeout_ns": 1}}`, 400, "invalid_spec"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do(t, east, "POST", "/v1/cluster/nodes", tc.body), tc.status, tc.code)
			})
		}
		wantError(t, e.do(t, east, "POST", "/v1/cluster/nodes", `{"id": 9}`, "Content-Type", "text/plain"), 415, "unsupported_media_type")

		// A well-formed request admits the node (it never starts here: its
		// address refuses connections) and answers with the peers it
		// would start with.
		info := metadata.NodeInfo{ID: 9, Region: "us-east", Addr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"}
		r := e.do(t, west, "POST", "/v1/cluster/nodes", info)
		if r.status != http.StatusOK {
			t.Fatalf("add node: %d %s", r.status, r.body)
		}
		j := decode[httpapi.JoinResponse](t, r)
		var ids []uint64
		for _, p := range j.TransportPeers() {
			ids = append(ids, p.ID)
			if p.ID == 9 && (p.Region != "us-east" || p.Addr != "127.0.0.1:1") {
				t.Fatalf("peer %+v", p)
			}
		}
		if j.Node != info || !slices.Equal(ids, []uint64{1, 2, 3, 9}) {
			t.Fatalf("join answer %s", r.body)
		}
		if j.Cluster != "meridian" || !strings.HasPrefix(j.ClusterID, "meridian-") {
			t.Fatalf("join answer without the cluster's identity: %s", r.body)
		}
		if j.Timings == nil || *j.Timings != c.Node(west).Timings() {
			t.Fatalf("join answer without the cluster's timings: %s", r.body)
		}
		cs := decode[node.ClusterStatus](t, e.do(t, east, "GET", "/v1/cluster", nil))
		if len(cs.Nodes) != 4 || cs.Nodes[3].ID != 9 || cs.Nodes[3].Reachable {
			t.Fatalf("after admitting node 9: %+v", cs.Nodes)
		}
	})
}

// counterValue returns the value of a counter series (0 if absent).
func counterValue(t *testing.T, reg *metrics.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	for _, m := range series(t, reg, name) {
		if labelsMatch(m.GetLabel(), labels) {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// familyHas reports whether a family has a series with the given labels.
func familyHas(t *testing.T, reg *metrics.Registry, name string, labels map[string]string) bool {
	t.Helper()
	for _, m := range series(t, reg, name) {
		if labelsMatch(m.GetLabel(), labels) {
			return true
		}
	}
	return false
}

func series(t *testing.T, reg *metrics.Registry, name string) []*dto.Metric {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, lp := range got {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func ptr[T any](v T) *T { return &v }
