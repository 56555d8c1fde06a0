package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/transport"
)

// checkDecodeError checks that a decoder's error is a client error with a
// known code: decoders never produce a 500.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	code := codeOf(err)
	if s := StatusOf(code); s < 400 || s > 499 {
		t.Fatalf("decoder error %q has code %q and status %d, want a 4xx", err, code, s)
	}
}

const fuzzMaxValue = 64

func FuzzDecodePut(f *testing.F) {
	for _, s := range []string{
		`{"value": "hello"}`,
		`{"value": ""}`,
		`{"value_base64": "AAEC/w=="}`,
		`{"type": "string", "value": "x", "ttl_ms": 1000}`,
		`{"value": "x", "ttl_ms": 0}`,
		`{"value": "x", "value_base64": "eA=="}`,
		`{"value": "x"} {"value": "y"}`,
		`{"value": "x", "extra": 1}`,
		`{"value": "\u00e9\ud800"}`,
		`{"value_base64": "eA"}`,
		`{"value": null}`,
		`{"ttl_ms": 1e3, "value": "x"}`,
		`[`, ``, `null`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePut(bytes.NewReader(data), fuzzMaxValue)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if len(p.value) > fuzzMaxValue || p.ttlMS < 0 || p.ttlMS > MaxTTLMS || p.value == nil {
			t.Fatalf("accepted %+v from %q", p, data)
		}
		// What was accepted survives a round trip through the other
		// encoding of the value.
		req := PutRequest{ValueBase64: ptr(base64.StdEncoding.EncodeToString(p.value))}
		if p.ttlMS != 0 {
			req.TTLMS = &p.ttlMS
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		q, err := decodePut(bytes.NewReader(b), fuzzMaxValue)
		if err != nil || !bytes.Equal(q.value, p.value) || q.ttlMS != p.ttlMS {
			t.Fatalf("round trip of %+v: %+v, %v", p, q, err)
		}
	})
}

func FuzzDecodeKeyspaceSpec(f *testing.F) {
	for _, s := range []string{
		`{"name": "t"}`,
		`{"name": "users", "strategy": "sync", "regions": ["us-east", "eu-west"], "home_region": "eu-west", "shards": 8, "replicas": 3}`,
		`{"name": "x", "shards": -1}`,
		`{"name": "x", "shards": 1e100}`,
		`{"name": "x", "regions": null}`,
		`{"name": "x", "shard": 2}`,
		`{"name": 7}`,
		`{"name": "x"}garbage`,
		`{`, ``, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := decodeKeyspaceSpec(bytes.NewReader(data))
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeKeyspaceSpec(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if again.Name != spec.Name || again.Strategy != spec.Strategy || again.HomeRegion != spec.HomeRegion ||
			again.Shards != spec.Shards || again.Replicas != spec.Replicas || !slices.Equal(again.Regions, spec.Regions) {
			t.Fatalf("round trip: %+v became %+v", spec, again)
		}
		// Whatever decodes, the node's own validation either accepts
		// with sane values or refuses with invalid_spec.
		norm, err := spec.Normalize([]string{"ap-southeast", "eu-west", "us-east"})
		if err != nil {
			if !errors.Is(err, metadata.ErrInvalidSpec) {
				t.Fatalf("normalize: %v", err)
			}
			return
		}
		if norm.Shards < 1 || norm.Shards > metadata.MaxShards || norm.HomeRegion == "" {
			t.Fatalf("normalized %+v", norm)
		}
	})
}

func FuzzDecodeNodeInfo(f *testing.F) {
	for _, s := range []string{
		`{"id": 4, "region": "us-east", "addr": "10.0.0.4:7400"}`,
		`{"id": 4, "region": "us-east", "zone": "a", "addr": "[::1]:7400", "resp_addr": "h:6379", "http_addr": "h:8080"}`,
		`{"id": 0, "region": "us-east", "addr": "h:1"}`,
		`{"id": 4, "region": "us-east", "addr": "h"}`,
		`{"id": 18446744073709551616}`,
		`{"id": 4, "region": "us east", "addr": "h:1"}`,
		`{`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ni, err := decodeNodeInfo(bytes.NewReader(data))
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if ni.ID == 0 || ni.Region == "" || ni.Addr == "" {
			t.Fatalf("accepted %+v", ni)
		}
		b, _ := json.Marshal(ni)
		again, err := decodeNodeInfo(bytes.NewReader(b))
		if err != nil || again != ni {
			t.Fatalf("round trip of %+v: %+v %v", ni, again, err)
		}
	})
}

func TestDecodeLimit(t *testing.T) {
	rec := httptest.NewRecorder()
	body := http.MaxBytesReader(rec, http.NoBody, 0)
	_, err := decodePut(body, 10)
	if codeOf(err) != CodeBadJSON {
		t.Fatalf("empty body: %v", err)
	}
	big := `{"value": "` + strings.Repeat("x", 100) + `"}`
	_, err = decodePut(http.MaxBytesReader(rec, readCloser{strings.NewReader(big)}, 50), 1000)
	if codeOf(err) != CodeBodyTooLarge || StatusOf(codeOf(err)) != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v (%s)", err, codeOf(err))
	}
	_, err = decodePut(strings.NewReader(`{"value": "12345678901"}`), 10)
	if codeOf(err) != "value_too_large" || StatusOf(codeOf(err)) != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized value: %v (%s)", err, codeOf(err))
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// TestStatusOf checks the one mapping from errors to statuses, for the
// node's sentinel errors as they reach the front end (wrapped).
func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{metadata.ErrUnknownKeyspace, 404},
		{metadata.ErrKeyspaceExists, 409},
		{metadata.ErrInvalidSpec, 400},
		{metadata.ErrPlacement, 400},
		{node.ErrEmptyKey, 400},
		{node.ErrKeyTooLarge, 400},
		{node.ErrValueTooLarge, 413},
		{node.ErrUnknownConsistency, 400},
		{node.ErrNoReplica, 503},
		{node.ErrOutcomeUnknown, 503},
		{raftgroup.ErrNoLeader, 503},
		{raftgroup.ErrTimeout, 503},
		{raftgroup.ErrNotLeader, 503},
		{raftgroup.ErrDropped, 503},
		{raftgroup.ErrStopped, 503},
		{transport.ErrUnreachable, 503},
		{kv.ErrWrongType, 409},
		{kv.ErrBadCommand, 400},
		{errorf(CodeKeyNotFound, "k"), 404},
		{errorf(CodeBadJSON, "k"), 400},
		{errors.New("disk on fire"), 500},
	} {
		wrapped := errors.Join(errors.New("context"), tc.err)
		if got := StatusOf(codeOf(wrapped)); got != tc.status {
			t.Errorf("%v: code %q status %d, want %d", tc.err, codeOf(wrapped), got, tc.status)
		}
	}
}

func TestCanonical(t *testing.T) {
	for p, want := range map[string]bool{
		"/v1/keyspaces/t/keys/a":        true,
		"/v1/keyspaces/t/keys/a/b":      true,
		"/v1/keyspaces/t/keys/a%2F%2Fb": true,
		"/v1/keyspaces/t/keys/":         true,
		"/v1/keyspaces/t/keys/a//b":     false,
		"/v1/keyspaces/t/keys/./a":      false,
		"/v1/keyspaces/t/keys/a/..":     false,
	} {
		if canonical(p) != want {
			t.Errorf("canonical(%q) = %v", p, !want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
