package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
)

func gather(t *testing.T, r *metrics.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// find returns the series of a family whose labels include want.
func find(f *dto.MetricFamily, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		l := labels(m)
		ok := true
		for k, v := range want {
			ok = ok && l[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func TestObserveRequest(t *testing.T) {
	r := metrics.NewRegistry()
	r.ObserveRequest(metrics.FrontendRESP, "get", 3*time.Millisecond, nil)
	r.ObserveRequest(metrics.FrontendRESP, "get", 40*time.Millisecond, nil)
	r.ObserveRequest(metrics.FrontendRESP, "get", time.Millisecond, fmt.Errorf("wrapped: %w", node.ErrUnknownKeyspace))
	r.ObserveRequest(metrics.FrontendRESP, "set", time.Millisecond, errors.New("something odd"))
	r.ObserveRequestCode(metrics.FrontendHTTP, "kv.put", "bad_json", time.Millisecond)
	fams := gather(t, r)
	for _, tc := range []struct {
		frontend, command, code string
		want                    float64
	}{
		{"resp", "get", "ok", 2},
		{"resp", "get", "unknown_keyspace", 1},
		{"resp", "set", "internal", 1},
		{"http", "kv.put", "bad_json", 1},
	} {
		s := find(fams["meridian_requests_total"], map[string]string{"frontend": tc.frontend, "command": tc.command, "code": tc.code})
		if len(s) != 1 || s[0].GetCounter().GetValue() != tc.want {
			t.Errorf("%+v: series %v", tc, s)
		}
	}
	h := find(fams["meridian_request_duration_seconds"], map[string]string{"frontend": "resp", "command": "get"})
	if len(h) != 1 || h[0].GetHistogram().GetSampleCount() != 3 {
		t.Fatalf("latency histogram %v", h)
	}
	if sum := h[0].GetHistogram().GetSampleSum(); sum < 0.043 || sum > 0.045 {
		t.Fatalf("latency sum %v, want 0.044", sum)
	}
	// The Go and process collectors are there too.
	if fams["go_goroutines"] == nil {
		t.Fatal("no Go runtime metrics")
	}
}

func TestLabelBounds(t *testing.T) {
	r := metrics.NewRegistry()
	r.ObserveRequest("resp", strings.Repeat("x", metrics.MaxLabelBytes+1), time.Millisecond, nil)
	r.ObserveRequest("resp", "\xff\xfe", time.Millisecond, nil)
	for i := range metrics.MaxCommands + 50 {
		r.ObserveRequest("http", fmt.Sprintf("cmd%d", i), time.Millisecond, nil)
	}
	// A command admitted before the cap is still counted as itself.
	r.ObserveRequest("http", "cmd0", time.Millisecond, nil)
	fams := gather(t, r)
	reqs := fams["meridian_requests_total"]
	if s := find(reqs, map[string]string{"frontend": "resp", "command": metrics.Other}); len(s) != 1 || s[0].GetCounter().GetValue() != 2 {
		t.Fatalf("oversized and invalid labels: %v", s)
	}
	httpSeries := find(reqs, map[string]string{"frontend": "http"})
	if len(httpSeries) != metrics.MaxCommands+1 {
		t.Fatalf("%d http series, want %d commands and %q", len(httpSeries), metrics.MaxCommands, metrics.Other)
	}
	if s := find(reqs, map[string]string{"frontend": "http", "command": metrics.Other}); len(s) != 1 || s[0].GetCounter().GetValue() != 50 {
		t.Fatalf("commands beyond the cap: %v", s)
	}
	if s := find(reqs, map[string]string{"frontend": "http", "command": "cmd0"}); len(s) != 1 || s[0].GetCounter().GetValue() != 2 {
		t.Fatalf("cmd0: %v", s)
	}
}

func TestLag(t *testing.T) {
	follower := raftgroup.Status{ID: 2, Commit: 50, Applied: 47}
	if got := metrics.ApplyLag(follower); got != 3 {
		t.Fatalf("apply lag %d", got)
	}
	if got := metrics.ReplicationLag(follower); got != 0 {
		t.Fatalf("replication lag on a follower %d", got)
	}
	leader := raftgroup.Status{ID: 1, Commit: 50, Applied: 50, LastIndex: 60, Match: map[uint64]uint64{1: 60, 2: 58, 3: 41, 4: 70}}
	if got := metrics.ReplicationLag(leader); got != 19 {
		t.Fatalf("replication lag %d, want 19 (replica 3)", got)
	}
	if got := metrics.ApplyLag(raftgroup.Status{Commit: 5, Applied: 9}); got != 0 {
		t.Fatalf("apply lag after a snapshot %d", got)
	}
}

// documented returns the metric names listed in the package doc.
func documented(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^//\t(meridian_[a-z_]+)\s`).FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	if len(out) < 20 {
		t.Fatalf("only %d metric names documented", len(out))
	}
	return out
}

func TestNodeMetrics(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 2})
	regs := map[uint64]*metrics.Registry{}
	for _, id := range c.IDs() {
		regs[id] = metrics.ForNode(c.Node(id))
		regs[id].ObserveRequest(metrics.FrontendRESP, "get", time.Millisecond, nil)
		if err := regs[id].AddNode(c.Node(id)); err == nil {
			t.Fatal("a registry took a second node")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sumOver := func(name string) float64 {
		var s float64
		for _, id := range c.IDs() {
			for _, m := range gather(t, regs[id])[name].GetMetric() {
				s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return s
	}
	proposalsBefore := sumOver("meridian_raft_proposals_total")
	const writes = 10
	for i := range writes {
		if _, err := c.Node(c.IDs()[i%3]).Put(ctx, "t", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if d := sumOver("meridian_raft_proposals_total") - proposalsBefore; d < writes {
		t.Fatalf("%v proposals counted for %d writes", d, writes)
	}
	groups := len(ks.Shards) + 1 // and the metadata group
	// Leadership may be moving to the home region; wait until each group
	// has exactly one leader.
	if err := c.WaitFor(ctx, func() bool { return sumOver("meridian_raft_leaders") == float64(groups) }); err != nil {
		t.Fatalf("leaders across nodes: %v, want %d", sumOver("meridian_raft_leaders"), groups)
	}
	// An async keyspace, so that some node sends streams and exports their lag.
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, Shards: 1})
	if err := c.WaitFor(ctx, func() bool {
		for _, id := range c.IDs() {
			if len(c.Node(id).Streams()) > 0 {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no node started the async keyspace's streams")
	}
	// A backup schedule, so that the groups' leaders archive their logs
	// and export the archives' lag.
	if err := c.Node(c.IDs()[0]).SetBackupSchedule(ctx, &metadata.BackupSchedule{Target: "file://" + t.TempDir(), Archive: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func() bool {
		for _, id := range c.IDs() {
			for _, a := range c.Node(id).Archives() {
				if !a.LastStamp.IsZero() {
					return true
				}
			}
		}
		return false
	}); err != nil {
		t.Fatal("no node archived a group's log")
	}

	seen := map[string]bool{}
	for _, id := range c.IDs() {
		fams := gather(t, regs[id])
		for name := range fams {
			if strings.HasPrefix(name, "meridian_") {
				seen[name] = true
			}
		}
		value := func(name string) float64 {
			ms := fams[name].GetMetric()
			if len(ms) != 1 {
				t.Fatalf("node %d: %s has %d series", id, name, len(ms))
			}
			return ms[0].GetCounter().GetValue() + ms[0].GetGauge().GetValue()
		}
		for _, name := range []string{"meridian_raft_fsyncs_total", "meridian_raft_entries_applied_total", "meridian_raft_entries_appended_total",
			"meridian_raft_ready_rounds_total", "meridian_raft_batches_committed_total", "meridian_raft_messages_sent_total"} {
			if value(name) == 0 {
				t.Errorf("node %d: %s is 0", id, name)
			}
		}
		// Every node reads keys (the metadata's state at least) through
		// its row cache.
		if value("meridian_storage_row_cache_hits_total")+value("meridian_storage_row_cache_misses_total") == 0 ||
			value("meridian_storage_row_cache_capacity_bytes") != float64(node.DefaultRowCacheBytes) ||
			value("meridian_storage_row_cache_bytes") > value("meridian_storage_row_cache_capacity_bytes") {
			t.Errorf("node %d: row cache hits %v, misses %v, bytes %v of %v", id, value("meridian_storage_row_cache_hits_total"),
				value("meridian_storage_row_cache_misses_total"), value("meridian_storage_row_cache_bytes"), value("meridian_storage_row_cache_capacity_bytes"))
		}
		// Plus the async keyspace's group in this node's region.
		if value("meridian_raft_groups") != float64(groups+1) {
			t.Errorf("node %d hosts %v groups, want %d", id, value("meridian_raft_groups"), groups+1)
		}
		if value("meridian_cluster_nodes_not_joined") != 0 || value("meridian_cluster_nodes_unreachable") != 0 {
			t.Errorf("node %d: members not joined %v, unreachable %v", id, value("meridian_cluster_nodes_not_joined"), value("meridian_cluster_nodes_unreachable"))
		}
		for _, name := range []string{"meridian_keyspace_under_replicated", "meridian_keyspace_replicas_down", "meridian_keyspace_regions_without_live_replica"} {
			for _, k := range []string{"t", "a"} {
				if got := find(fams[name], map[string]string{"keyspace": k}); len(got) != 1 || got[0].GetGauge().GetValue() != 0 {
					t.Errorf("node %d: %s{keyspace=%s} = %v, want one series at 0", id, name, k, got)
				}
			}
		}
		if info := find(fams["meridian_node_info"], map[string]string{"node": strconv.FormatUint(id, 10), "region": c.RegionOf(id)}); len(info) != 1 {
			t.Errorf("node %d: node_info %v", id, fams["meridian_node_info"])
		}
		// Per-group gauges carry the keyspace and shard.
		for _, want := range []map[string]string{
			{"keyspace": "_system", "shard": "0", "group": strconv.FormatUint(metadata.SystemGroup, 10)},
			{"keyspace": "t", "shard": "0", "group": strconv.FormatUint(ks.Shards[0].Group, 10)},
			{"keyspace": "t", "shard": "1", "group": strconv.FormatUint(ks.Shards[1].Group, 10)},
		} {
			commit := find(fams["meridian_raft_group_commit_index"], want)
			lag := find(fams["meridian_raft_group_apply_lag_entries"], want)
			isLeader := find(fams["meridian_raft_group_is_leader"], want)
			if len(commit) != 1 || commit[0].GetGauge().GetValue() == 0 || len(lag) != 1 || len(isLeader) != 1 {
				t.Fatalf("node %d: group %v: commit %v lag %v", id, want, commit, lag)
			}
			rlag := find(fams["meridian_raft_group_replication_lag_entries"], want)
			if leads := isLeader[0].GetGauge().GetValue() == 1; leads != (len(rlag) == 1) {
				t.Errorf("node %d group %v: leader %v but %d replication lag series", id, want, leads, len(rlag))
			}
		}
		// A round trip to each peer, labelled with its region.
		var peers []string
		for _, m := range fams["meridian_peer_rtt_seconds"].GetMetric() {
			l := labels(m)
			peer, _ := strconv.ParseUint(l["peer"], 10, 64)
			if l["peer_region"] != c.RegionOf(peer) || m.GetGauge().GetValue() <= 0 {
				t.Errorf("node %d: rtt series %v = %v", id, l, m.GetGauge().GetValue())
			}
			peers = append(peers, l["peer"])
		}
		slices.Sort(peers)
		var want []string
		for _, p := range c.Others(id) {
			want = append(want, strconv.FormatUint(p, 10))
		}
		if !slices.Equal(peers, want) {
			t.Errorf("node %d: rtt to %v, want %v", id, peers, want)
		}
		// Bytes sent to each peer, labelled with its region. Pings are not
		// counted, so a peer this node had nothing to send yet (it leads no
		// group that peer follows, and follows none it leads) may show 0;
		// to someone, every node has sent something (raft's answers).
		peers = peers[:0]
		sent := 0.0
		for _, m := range fams["meridian_transport_bytes_sent_total"].GetMetric() {
			l := labels(m)
			peer, _ := strconv.ParseUint(l["peer"], 10, 64)
			if l["peer_region"] != c.RegionOf(peer) || m.GetCounter().GetValue() < 0 {
				t.Errorf("node %d: bytes sent series %v = %v", id, l, m.GetCounter().GetValue())
			}
			sent += m.GetCounter().GetValue()
			peers = append(peers, l["peer"])
		}
		if sent == 0 {
			t.Errorf("node %d: no bytes sent to any peer", id)
		}
		slices.Sort(peers)
		if !slices.Equal(peers, want) {
			t.Errorf("node %d: bytes sent to %v, want %v", id, peers, want)
		}
		for _, m := range fams["meridian_peer_reachable"].GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				t.Errorf("node %d: peer %v unreachable", id, labels(m))
			}
		}
	}
	// Every documented metric is exported, and every exported one is documented.
	doc := documented(t)
	for _, name := range doc {
		if !seen[name] {
			t.Errorf("%s is documented but not exported", name)
		}
	}
	for name := range seen {
		if !slices.Contains(doc, name) {
			t.Errorf("%s is exported but not documented", name)
		}
	}
}
