package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParsePromText(t *testing.T) {
	text := `# HELP meridian_raft_fsyncs_total Batches committed with sync.
# TYPE meridian_raft_fsyncs_total counter
meridian_raft_fsyncs_total 1.234e+06
meridian_raft_fsyncs_totalx 5
go_goroutines 12
meridian_transport_bytes_sent_total{peer="2",peer_region="eu-west"} 1000
meridian_transport_bytes_sent_total{ peer="3", peer_region="a \"b\" \\ c\nd" } 250 1712345678000

meridian_transport_bytes_sent_total{peer="4",peer_region="",} +Inf
`
	got, err := parsePromText(strings.NewReader(text), func(name string) bool {
		return name == metricFsyncs || name == metricBytesSent
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d samples: %+v", len(got), got)
	}
	if got[0].name != metricFsyncs || got[0].value != 1234000 || len(got[0].labels) != 0 {
		t.Errorf("fsyncs sample %+v", got[0])
	}
	if got[1].labels["peer"] != "2" || got[1].labels["peer_region"] != "eu-west" || got[1].value != 1000 {
		t.Errorf("sample %+v", got[1])
	}
	if got[2].labels["peer"] != "3" || got[2].labels["peer_region"] != "a \"b\" \\ c\nd" || got[2].value != 250 {
		t.Errorf("escaped sample %+v", got[2])
	}
	if got[3].labels["peer"] != "4" || got[3].value <= 1e300 {
		t.Errorf("sample %+v", got[3])
	}
	for _, bad := range []string{
		"meridian_raft_fsyncs_total",
		"meridian_raft_fsyncs_total x",
		`meridian_transport_bytes_sent_total{peer=2} 1`,
		`meridian_transport_bytes_sent_total{peer="2 1`,
		`meridian_transport_bytes_sent_total{peer="2" x="3"} 1`,
	} {
		if _, err := parsePromText(strings.NewReader(bad), func(string) bool { return true }); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestMeridianMeter serves the metrics of a 3-region cluster whose
// counters grow by known amounts between two reads.
func TestMeridianMeter(t *testing.T) {
	var reads atomic.Int64
	var addrs [3]string
	for i := range addrs {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/metrics" {
				http.NotFound(w, r)
				return
			}
			k := reads.Add(1) // 1..3 the first read, 4..6 the second
			n := uint64(1)
			if k > 3 {
				n = 2
			}
			// Node i+1 has made n*10 fsyncs and sent n*100 bytes to
			// every other node, plus n*7 to a node 9 of its own region.
			fmt.Fprintf(w, "# TYPE meridian_raft_fsyncs_total counter\nmeridian_raft_fsyncs_total %d\n", n*10)
			for p := 1; p <= 3; p++ {
				if p != i+1 {
					fmt.Fprintf(w, "meridian_transport_bytes_sent_total{peer=\"%d\",peer_region=\"r%d\"} %d\n", p, p, n*100)
				}
			}
			fmt.Fprintf(w, "meridian_transport_bytes_sent_total{peer=\"9\",peer_region=\"r%d\"} %d\n", i+1, n*7)
		}))
		t.Cleanup(srv.Close)
		addrs[i] = strings.TrimPrefix(srv.URL, "http://")
	}
	c := &MeridianCluster{}
	for i, a := range addrs {
		c.Nodes = append(c.Nodes, MeridianNode{ID: uint64(i + 1), Region: fmt.Sprintf("r%d", i+1), HTTPAddr: a})
	}
	m := NewMeridianMeter(c)
	ctx := context.Background()
	before, err := m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := m.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := newCostReport(before, after, 15)
	want := CostReport{Nodes: 3, Writes: 15, Fsyncs: 30, FsyncsPerWrite: 2, BytesSent: 3 * 207, CrossRegionBytes: 600, CrossRegionBytesPerWrite: 40}
	if *got != want {
		t.Fatalf("costs %+v, want %+v", *got, want)
	}

	// A node that does not answer fails the reading.
	c.Nodes = append(c.Nodes, MeridianNode{ID: 4, Region: "r4", HTTPAddr: reserveLoopback(t)})
	if _, err := m.Read(ctx); err == nil {
		t.Fatal("a reading without node 4 succeeded")
	}
}

// reserveLoopback returns a loopback address nothing listens on.
func reserveLoopback(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	return addr
}

// fakeMeter returns its readings in turn: fsyncs and cross-region bytes
// of one node.
type fakeMeter struct {
	readings []NodeCounters
	err      error
}

func (m *fakeMeter) Read(context.Context) (Counters, error) {
	if m.err != nil {
		return nil, m.err
	}
	r := m.readings[0]
	m.readings = m.readings[1:]
	return Counters{"1": r}, nil
}

func TestRunReportsCosts(t *testing.T) {
	p := opsParams(WorkloadA, 2000)
	p.Meter = &fakeMeter{readings: []NodeCounters{
		{Fsyncs: 500, BytesSent: 10_000, CrossRegionBytes: 4000},
		{Fsyncs: 1000, BytesSent: 90_000, CrossRegionBytes: 54_000},
	}}
	rep, err := Run(context.Background(), &memTarget{store: newMemStore()}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	writes := rep.Op("update").Count
	c := rep.Costs
	if c == nil || c.Nodes != 1 || c.Writes != writes || c.Fsyncs != 500 || c.BytesSent != 80_000 || c.CrossRegionBytes != 50_000 ||
		c.FsyncsPerWrite != roundSig(500/float64(writes), 4) || c.CrossRegionBytesPerWrite != roundSig(50_000/float64(writes), 4) {
		t.Fatalf("costs %+v with %d writes", c, writes)
	}
	var js strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	_ = json.Unmarshal([]byte(js.String()), &m)
	for _, k := range []string{"nodes", "writes", "fsyncs", "fsyncs_per_write", "bytes_sent", "cross_region_bytes", "cross_region_bytes_per_write"} {
		if _, ok := m["costs"][k]; !ok {
			t.Errorf("JSON costs lack %q:\n%s", k, js.String())
		}
	}
	var tb strings.Builder
	if err := rep.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "fsyncs per write") || !strings.Contains(tb.String(), "bytes between regions per write") {
		t.Fatalf("table lacks the costs:\n%s", tb.String())
	}

	// A meter that fails leaves a note, not an error.
	p.Meter = &fakeMeter{err: errors.New("no metrics")}
	rep, err = Run(context.Background(), &memTarget{store: newMemStore()}, p, nil)
	if err != nil || rep.Costs != nil || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "no metrics") {
		t.Fatalf("failing meter: %v, costs %+v, notes %q", err, rep.Costs, rep.Notes)
	}
}
