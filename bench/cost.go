package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Meter reads the cumulative work counters of the nodes of a cluster, so
// that Run can report what its run phase cost the cluster (Report.Costs):
// Run reads them just before the run phase and just after it.
type Meter interface {
	Read(ctx context.Context) (Counters, error)
}

// Counters are cumulative work counters of a cluster's nodes, by node.
type Counters map[string]NodeCounters

// NodeCounters are the cumulative work counters of one node.
type NodeCounters struct {
	// Fsyncs is meridian_raft_fsyncs_total.
	Fsyncs uint64
	// BytesSent sums meridian_transport_bytes_sent_total over the peers.
	BytesSent uint64
	// CrossRegionBytes sums it over the peers in another region than the
	// node's.
	CrossRegionBytes uint64
}

// CostReport is what the run phase cost the cluster: counter deltas summed
// over its nodes, and divided by the writes acknowledged. Every operation
// kind of the run (reads too: strong reads exchange messages with the
// leader and its quorum) and the cluster's background work (heartbeats,
// pings) are included, then charged to the writes. Its JSON field names
// are stable.
type CostReport struct {
	// Nodes is the number of nodes whose counters were read.
	Nodes int `json:"nodes"`
	// Writes is the number of writes acknowledged in the run phase
	// (successful updates, inserts and read-modify-writes).
	Writes int64 `json:"writes"`
	// Fsyncs is the sum over the nodes of meridian_raft_fsyncs_total's
	// increase: raft batches committed with fsync.
	Fsyncs uint64 `json:"fsyncs"`
	// FsyncsPerWrite is Fsyncs / Writes (0 without writes); below the
	// replica count, writes share fsyncs.
	FsyncsPerWrite float64 `json:"fsyncs_per_write"`
	// BytesSent is the sum over the nodes of
	// meridian_transport_bytes_sent_total's increase, to every peer.
	BytesSent uint64 `json:"bytes_sent"`
	// CrossRegionBytes is the part of BytesSent sent to peers in another
	// region than the sender's.
	CrossRegionBytes uint64 `json:"cross_region_bytes"`
	// CrossRegionBytesPerWrite is CrossRegionBytes / Writes (0 without
	// writes).
	CrossRegionBytesPerWrite float64 `json:"cross_region_bytes_per_write"`
	// CPUMSPerOp is the CPU time (user and system) of the whole process
	// during the run phase, in ms, per operation of any kind: for an
	// in-process cluster, every node's work and the clients' together.
	// Zero when not measured (clusters in other processes).
	CPUMSPerOp float64 `json:"cpu_ms_per_op,omitempty"`
}

// newCostReport computes the cost from two readings. A node missing from
// either is left out; a counter that went back (the node restarted)
// counts from 0.
func newCostReport(before, after Counters, writes int64) *CostReport {
	delta := func(b, a uint64) uint64 {
		if a < b {
			return a
		}
		return a - b
	}
	c := &CostReport{Writes: writes}
	for node, a := range after {
		b, ok := before[node]
		if !ok {
			continue
		}
		c.Nodes++
		c.Fsyncs += delta(b.Fsyncs, a.Fsyncs)
		c.BytesSent += delta(b.BytesSent, a.BytesSent)
		c.CrossRegionBytes += delta(b.CrossRegionBytes, a.CrossRegionBytes)
	}
	if writes > 0 {
		c.FsyncsPerWrite = roundSig(float64(c.Fsyncs)/float64(writes), 4)
		c.CrossRegionBytesPerWrite = roundSig(float64(c.CrossRegionBytes)/float64(writes), 4)
	}
	return c
}

// writes counts the writes acknowledged in the run phase.
func (r *Report) writes() int64 {
	var n int64
	for _, o := range r.Ops {
		switch o.Op {
		case OpUpdate.String(), OpInsert.String(), OpRMW.String():
			n += o.Count
		}
	}
	return n
}

func (c *CostReport) write(b *strings.Builder) {
	fmt.Fprintf(b, "costs:     run phase, %d nodes, %d writes: %s fsyncs per write, %s bytes between regions per write\n",
		c.Nodes, c.Writes, fmtSig(c.FsyncsPerWrite), fmtSig(c.CrossRegionBytesPerWrite))
	fmt.Fprintf(b, "           (%d fsyncs; %d bytes sent between regions, of %d sent between nodes)\n",
		c.Fsyncs, c.CrossRegionBytes, c.BytesSent)
	if c.CPUMSPerOp > 0 {
		fmt.Fprintf(b, "           CPU %s ms per operation (the whole process: nodes and clients)\n", fmtSig(c.CPUMSPerOp))
	}
}

// fmtSig prints x with four significant digits, without an exponent for
// the sizes seen here.
func fmtSig(x float64) string {
	return strconv.FormatFloat(roundSig(x, 4), 'f', -1, 64)
}

// Metric names a MeridianMeter reads.
const (
	metricFsyncs    = "meridian_raft_fsyncs_total"
	metricBytesSent = "meridian_transport_bytes_sent_total"
)

// MeridianMeter reads the counters of every node of a Meridian cluster
// from its Prometheus endpoint, GET /metrics on the node's HTTP address.
type MeridianMeter struct {
	cluster *MeridianCluster
	hc      *http.Client
}

// NewMeridianMeter returns a Meter for the nodes of c that have an HTTP
// address.
func NewMeridianMeter(c *MeridianCluster) *MeridianMeter {
	return &MeridianMeter{cluster: c, hc: &http.Client{Timeout: 10 * time.Second}}
}

// Read scrapes every node at once. It fails if any node fails, so that the
// sums cover the same nodes each time.
func (m *MeridianMeter) Read(ctx context.Context) (Counters, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		out  = Counters{}
		errs []error
	)
	for _, n := range m.cluster.Nodes {
		if n.HTTPAddr == "" {
			continue
		}
		wg.Go(func() {
			nc, err := m.readNode(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[strconv.FormatUint(n.ID, 10)] = nc
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("bench: no node has an HTTP address to read metrics from")
	}
	return out, nil
}

func (m *MeridianMeter) readNode(ctx context.Context, n MeridianNode) (NodeCounters, error) {
	url := "http://" + strings.TrimPrefix(n.HTTPAddr, "http://") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return NodeCounters{}, fmt.Errorf("bench: %w", err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := m.hc.Do(req)
	if err != nil {
		return NodeCounters{}, fmt.Errorf("bench: metrics of node %d: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return NodeCounters{}, fmt.Errorf("bench: GET %s: %s", url, resp.Status)
	}
	samples, err := parsePromText(io.LimitReader(resp.Body, 64<<20), func(name string) bool {
		return name == metricFsyncs || name == metricBytesSent
	})
	if err != nil {
		return NodeCounters{}, fmt.Errorf("bench: GET %s: %w", url, err)
	}
	var nc NodeCounters
	fsyncs := false
	for _, s := range samples {
		switch s.name {
		case metricFsyncs:
			nc.Fsyncs += uint64(s.value)
			fsyncs = true
		case metricBytesSent:
			v := uint64(s.value)
			nc.BytesSent += v
			peerRegion := s.labels["peer_region"]
			if peerRegion == "" {
				if id, err := strconv.ParseUint(s.labels["peer"], 10, 64); err == nil {
					peerRegion = m.cluster.RegionOf(id)
				}
			}
			if peerRegion != n.Region {
				nc.CrossRegionBytes += v
			}
		}
	}
	if !fsyncs {
		return NodeCounters{}, fmt.Errorf("bench: GET %s: no %s", url, metricFsyncs)
	}
	return nc, nil
}

// promSample is one sample of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parsePromText parses the samples of the metrics that keep accepts from
// the Prometheus text exposition format (version 0.0.4): comments and
// other metrics are skipped, timestamps ignored.
func parsePromText(r io.Reader, keep func(name string) bool) ([]promSample, error) {
	var out []promSample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ \t")
		if end < 0 {
			return nil, fmt.Errorf("metrics line %d: no value: %q", lineNo, line)
		}
		name := line[:end]
		if !keep(name) {
			continue
		}
		rest := line[end:]
		s := promSample{name: name, labels: map[string]string{}}
		if rest[0] == '{' {
			var err error
			if rest, err = parsePromLabels(rest[1:], s.labels); err != nil {
				return nil, fmt.Errorf("metrics line %d: %w", lineNo, err)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics line %d: bad value: %q", lineNo, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: bad value: %w", lineNo, err)
		}
		s.value = v
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return out, nil
}

// parsePromLabels parses `name="value",...}` into labels and returns what
// follows the closing brace.
func parsePromLabels(s string, labels map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", errors.New("bad label")
		}
		name := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return "", fmt.Errorf("label %s: value not quoted", name)
		}
		var v strings.Builder
		i, closed := 1, false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '"' {
				closed = true
				break
			}
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					v.WriteByte('\n')
				default: // \\ and \"
					v.WriteByte(s[i])
				}
				continue
			}
			v.WriteByte(c)
		}
		if !closed {
			return "", fmt.Errorf("label %s: unterminated value", name)
		}
		labels[name] = v.String()
		s = strings.TrimLeft(s[i+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return "", fmt.Errorf("label %s: expected , or }", name)
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
