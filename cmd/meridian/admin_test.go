package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/node"
)

// readinessServer answers GET /v1/cluster/readiness: node 3 is not ready
// until the answer number readyAt (never if 0).
func readinessServer(t *testing.T, readyAt int64) *httptest.Server {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/readiness" {
			http.NotFound(w, r)
			return
		}
		n := calls.Add(1)
		cr := node.ClusterReadiness{Node: 1, Members: []node.MemberReadiness{
			{ID: 1, Region: "us-east", Initial: true, Joined: true, Ready: true},
			{ID: 2, Region: "eu-west", Initial: true, Joined: true, Ready: true},
			{ID: 3, Region: "ap-southeast", Initial: true, Reasons: []string{"has not joined (not started yet?)"}},
		}}
		status := http.StatusServiceUnavailable
		if readyAt > 0 && n >= readyAt {
			cr.Members[2] = node.MemberReadiness{ID: 3, Region: "ap-southeast", Initial: true, Joined: true, Ready: true}
			cr.Ready, status = true, http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(cr)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWaitClusterReady(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := waitClusterReady(ctx, newAdminClient(readinessServer(t, 3).URL), &out, 30*time.Second); err != nil {
		t.Fatalf("wait: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "2/3 members ready; waiting for node 3 (ap-southeast)") || !strings.Contains(out.String(), "3/3 members ready (after") {
		t.Fatalf("progress:\n%s", out.String())
	}

	out.Reset()
	err := waitClusterReady(ctx, newAdminClient(readinessServer(t, 0).URL), &out, 600*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready after 600ms") || !strings.Contains(err.Error(), "node 3 (ap-southeast): has not joined") {
		t.Fatalf("timeout: %v", err)
	}

	// Nobody answers at that address: the error says so.
	out.Reset()
	err = waitClusterReady(ctx, newAdminClient("127.0.0.1:1"), &out, 400*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not ready after 400ms") || !strings.Contains(out.String(), "does not answer yet") {
		t.Fatalf("no server: %v\n%s", err, out.String())
	}
}

func TestPlacementPath(t *testing.T) {
	if p, err := placementPath("/v1/keyspaces", 1500*time.Millisecond); err != nil || p != "/v1/keyspaces?placement_wait=1.5s" {
		t.Fatalf("path %q %v", p, err)
	}
	for _, d := range []time.Duration{-time.Second, time.Hour} {
		if _, err := placementPath("/v1/keyspaces", d); err == nil {
			t.Fatalf("--placement-wait %v accepted", d)
		}
	}
}
