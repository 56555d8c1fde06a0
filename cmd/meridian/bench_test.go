package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/bench"
)

// tinyBench is a small, fast run against an in-process cluster without
// emulated latency.
func tinyBench() benchFlags {
	return benchFlags{
		workload: "A", records: 50, valueSize: 64, clients: 4, ops: 200, target: "inproc:none",
		json: true, seed: 1, fsyncSamples: 3, progressInterval: 50 * time.Millisecond, lagTimeout: 10 * time.Second,
	}
}

func runBenchT(t *testing.T, f benchFlags) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err = runBench(ctx, f, &out, &errb)
	return out.String(), errb.String(), err
}

// benchReport runs the bench with the JSON report and returns it decoded,
// with what the bench wrote on stderr.
func benchReport(t *testing.T, f benchFlags) (bench.Report, string) {
	t.Helper()
	out, errs, err := runBenchT(t, f)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errs)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, out)
	}
	return rep, errs
}

// TestBenchInprocJSON runs workload A on an in-process cluster and checks
// that the JSON report parses and that its counts add up. No timing is
// asserted.
func TestBenchInprocJSON(t *testing.T) {
	out, errs, err := runBenchT(t, tinyBench())
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errs)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, out)
	}
	if rep.Workload != "A" || rep.Clients != 4 || rep.Operations != 200 || rep.Records != 50 || rep.ValueSize != 64 {
		t.Fatalf("report header %+v", rep)
	}
	if rep.Total.Count+rep.Total.Errors != 200 || rep.Total.Errors != 0 {
		t.Fatalf("total: %d ok + %d errors, want 200 + 0 (%s)", rep.Total.Count, rep.Total.Errors, rep.Total.FirstError)
	}
	var sum int64
	kinds := map[string]bool{}
	for _, o := range rep.Ops {
		sum += o.Count + o.Errors
		kinds[o.Op] = true
		if o.Count > 0 && (o.P50MS <= 0 || o.P50MS > o.P99MS || o.P99MS > o.P999MS || o.Throughput <= 0) {
			t.Errorf("%s: implausible figures %+v", o.Op, o)
		}
	}
	if sum != 200 || len(rep.Ops) != 2 || !kinds["read"] || !kinds["update"] {
		t.Fatalf("ops %+v add up to %d", rep.Ops, sum)
	}
	if rep.Load == nil || rep.Load.Count != 50 || rep.Load.Errors != 0 {
		t.Fatalf("load %+v", rep.Load)
	}
	// Floors: no emulated latency, so a write's floor is the fsync alone;
	// reads in the leader's region have none.
	f := rep.Floors
	if f == nil || f.Latency != "none" || f.Keyspace != demoSyncKeyspace || f.Strategy != "sync" || f.ClientRegion != "us-east" ||
		f.QuorumRTTMS != 0 || f.WriteMS != f.FsyncMS || len(f.VoterRegions) != 3 {
		t.Fatalf("floors %+v", f)
	}
	if up := rep.Op("update"); f.FsyncMS > 0 && (up.FloorMS != f.WriteMS || up.P50OverFloor <= 0) {
		t.Fatalf("update floor %+v", up)
	}
	if rd := rep.Op("read"); rd.FloorMS != 0 || rd.P50OverFloor != 0 {
		t.Fatalf("a local read got a floor: %+v", rd)
	}
	if !strings.Contains(errs, "run  done: 200 ops") || !strings.Contains(errs, "load done: 50 ops") {
		t.Fatalf("progress on stderr:\n%s", errs)
	}
	// Costs, from every node's /metrics: the writes were fsynced and
	// replicated to the other regions.
	c := rep.Costs
	if c == nil || c.Nodes != 3 || c.Writes != rep.Op("update").Count || c.Writes <= 0 ||
		c.Fsyncs == 0 || c.FsyncsPerWrite <= 0 || c.CrossRegionBytes == 0 || c.CrossRegionBytesPerWrite <= 0 ||
		c.BytesSent < c.CrossRegionBytes || c.CPUMSPerOp <= 0 {
		t.Fatalf("costs %+v", c)
	}
	// Each write reaches at least two other regions with its value.
	if c.CrossRegionBytesPerWrite < 2*64 {
		t.Errorf("%v bytes between regions per write of a 64-byte value", c.CrossRegionBytesPerWrite)
	}
	for _, k := range []string{`"costs"`, `"fsyncs_per_write"`, `"cross_region_bytes_per_write"`, `"cpu_ms_per_op"`} {
		if !strings.Contains(out, k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}

// TestBenchInprocPipelined runs workload A with 8 operations in flight per
// client on an in-process cluster: every operation is answered and booked.
func TestBenchInprocPipelined(t *testing.T) {
	f := tinyBench()
	f.pipeline, f.ops = 8, 203
	rep, _ := benchReport(t, f)
	if rep.Pipeline != 8 || rep.Total.Count != 203 || rep.Total.Errors != 0 || rep.Total.NotFound != 0 || rep.Load == nil || rep.Load.Count != 50 {
		t.Fatalf("pipeline %d, load %+v, total %+v", rep.Pipeline, rep.Load, rep.Total)
	}
	if c := rep.Costs; c == nil || c.Writes != rep.Op("update").Count || c.Fsyncs == 0 {
		t.Fatalf("costs %+v", c)
	}
}

// TestBenchInprocTableAndRegion benches a node outside the leader's region
// with the table output: strong reads there are forwarded, so they get a
// floor (0 here, without emulated latency, hence none is shown).
func TestBenchInprocTableAndRegion(t *testing.T) {
	f := tinyBench()
	f.json = false
	f.region = "eu-west"
	f.workload = "F"
	f.ops = 100
	out, errs, err := runBenchT(t, f)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errs)
	}
	for _, s := range []string{"node 2 in eu-west", "rmw", "p99.9 ms", "floors:    keyspace default (sync)", "client in eu-west, leader in us-east",
		"fsyncs per write", "bytes between regions per write"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

// TestBenchInprocLag measures replication lag on the async keyspace: every
// value written must show up in both other regions.
func TestBenchInprocLag(t *testing.T) {
	f := tinyBench()
	f.workload = "lag"
	f.ops = 20
	f.clients = 2
	rep, _ := benchReport(t, f)
	if rep.Workload != "lag" || rep.Total.Count != 20 || rep.Total.Errors != 0 {
		t.Fatalf("writes: %+v", rep.Total)
	}
	if rep.Floors == nil || rep.Floors.Keyspace != demoAsyncKeyspace || rep.Floors.Strategy != "async" {
		t.Fatalf("floors %+v", rep.Floors)
	}
	if len(rep.Lag) != 2 {
		t.Fatalf("lag %+v", rep.Lag)
	}
	for _, l := range rep.Lag {
		if l.From != "us-east" || l.Region == "us-east" || l.Count != 20 || l.Timeouts != 0 || l.P50MS <= 0 || l.P50MS > l.MaxMS {
			t.Errorf("lag %+v", l)
		}
	}
}

// TestBenchInprocConverge runs a few rounds of conflicting writes on the
// active keyspace: every round converges, the counts add up and the final
// counter holds every increment.
func TestBenchInprocConverge(t *testing.T) {
	f := tinyBench()
	f.workload = "converge"
	f.ops = 4
	rep, errs := benchReport(t, f)
	c := rep.Converge
	if rep.Workload != "converge" || c == nil || rep.Clients != 3 || rep.Operations != 4 {
		t.Fatalf("report %+v", rep)
	}
	// One warm-up round, then 4 measured: 3 regions increment in each.
	if c.Rounds != 4 || c.WarmupRounds != 1 || c.Converged != 4 || c.Timeouts != 0 || c.Increments != 15 || !c.CounterOK || len(c.Regions) != 3 {
		t.Fatalf("converge %+v", c)
	}
	var wins int64
	for _, r := range c.Regions {
		if c.FinalCounter[r] != 15 {
			t.Errorf("final counter in %s: %d, want 15", r, c.FinalCounter[r])
		}
		wins += c.Wins[r]
	}
	if wins != 4 {
		t.Errorf("wins %v add up to %d, want 4", c.Wins, wins)
	}
	if up, in := rep.Op("update"), rep.Op("incr"); up == nil || in == nil || up.Count != 12 || in.Count != 12 || rep.Total.Count != 24 || rep.Total.Errors != 0 {
		t.Fatalf("ops %+v total %+v", rep.Ops, rep.Total)
	}
	// No emulated latency: the floor is the fsync alone.
	if c.P50MS <= 0 || c.P50MS > c.P99MS || c.P99MS > c.MaxMS || c.OneWayMS != 0 || c.FloorMS != c.FsyncMS || c.FloorMS <= 0 ||
		c.P99OverFloor <= 0 || c.P99MinusFloorMS != roundMS(c.P99MS-c.FloorMS) {
		t.Fatalf("figures %+v", c)
	}
	if rep.Floors == nil || rep.Floors.Keyspace != demoActiveKeyspace || rep.Floors.Strategy != "active" {
		t.Fatalf("floors %+v", rep.Floors)
	}
	if !strings.Contains(errs, "converge done: 4 ops") {
		t.Fatalf("progress on stderr:\n%s", errs)
	}
	// The table too.
	f.json = false
	out, errs, err := runBenchT(t, f)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errs)
	}
	for _, s := range []string{"convergence", "p99-floor ms", "winners:", "warm-up:   1 round(s)", "15 increments", ": OK"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func roundMS(ms float64) float64 { return math.Round(ms*1e4) / 1e4 }

// TestBenchInprocStaleness reads at bounded(D) in every region for about a
// second while the home region writes: no read may be older than the bound
// allows.
func TestBenchInprocStaleness(t *testing.T) {
	f := tinyBench()
	f.workload = "staleness"
	f.ops = 0
	f.duration = time.Second
	f.staleness = 200 * time.Millisecond
	rep, errs := benchReport(t, f)
	if rep.Workload != "staleness" || len(rep.Staleness) != 3 || rep.Clients != 4 {
		t.Fatalf("report %+v", rep)
	}
	rd, up := rep.Op("read"), rep.Op("update")
	if rd == nil || up == nil || up.Count == 0 || rep.Total.Count != rd.Count+up.Count {
		t.Fatalf("ops %+v", rep.Ops)
	}
	var reads, errors, checked int64
	for _, s := range rep.Staleness {
		if s.Reads == 0 || s.Local+s.Strong+s.Other != s.Reads || s.Other != 0 || s.Violations != 0 || s.BoundMS != 200 ||
			s.LocalShare < 0 || s.LocalShare > 1 || s.StalenessP50MS > s.StalenessMaxMS || s.Checked > s.Reads {
			t.Errorf("%+v", s)
		}
		reads += s.Reads
		errors += s.Errors
		checked += s.Checked
	}
	if reads != rd.Count || errors != rd.Errors || checked == 0 {
		t.Fatalf("%d reads, %d errors, %d checked by region; read %+v", reads, errors, checked, rd)
	}
	if !strings.Contains(errs, "staleness done:") || !strings.Contains(errs, "bounded(200ms)") {
		t.Fatalf("progress on stderr:\n%s", errs)
	}
}

// countingListener accepts connections and counts them, to prove that a
// refused command sent nothing.
func countingListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepted
}

func TestBenchFlagErrors(t *testing.T) {
	addr, accepted := countingListener(t)
	// A port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	resp := func(mod func(*benchFlags)) benchFlags {
		f := tinyBench()
		f.target = "resp://" + addr
		mod(&f)
		return f
	}
	cases := []struct {
		name string
		f    benchFlags
		want string
	}{
		{"unknown workload", resp(func(f *benchFlags) { f.workload = "Z" }), `unknown workload "Z"`},
		{"workload E", resp(func(f *benchFlags) { f.workload = "E" }), "not supported"},
		{"negative clients", resp(func(f *benchFlags) { f.clients = -4 }), "clients must be at least 1, not -4"},
		{"zero records", resp(func(f *benchFlags) { f.records = 0 }), "records must be at least 1"},
		{"huge value", resp(func(f *benchFlags) { f.valueSize = 17 << 20 }), "16 MiB"},
		{"bad distribution", resp(func(f *benchFlags) { f.distribution = "pareto" }), `unknown key distribution "pareto"`},
		{"duration and ops", resp(func(f *benchFlags) { f.duration = time.Second }), "not both"},
		{"neither duration nor ops", resp(func(f *benchFlags) { f.ops = 0 }), "give a duration or an operation count"},
		{"bad target", resp(func(f *benchFlags) { f.target = "tcp://" + addr }), `unknown scheme "tcp"`},
		{"no scheme", resp(func(f *benchFlags) { f.target = addr }), "has no scheme"},
		{"bad latency", resp(func(f *benchFlags) { f.target = "inproc:mars" }), `unknown latency "mars"`},
		{"region of a resp target", resp(func(f *benchFlags) { f.region = "eu-west" }), "in-process targets only"},
		{"lag against resp", resp(func(f *benchFlags) { f.workload = "lag" }), "lag workload needs a node in every region"},
		{"lag with a distribution", resp(func(f *benchFlags) { f.workload = "lag"; f.distribution = "uniform" }), "--distribution does not apply"},
		{"keyspace on etcd", resp(func(f *benchFlags) { f.target = "etcd://" + addr; f.keyspace = "x" }), "Meridian targets only"},
		{"negative fsync samples", resp(func(f *benchFlags) { f.fsyncSamples = -1 }), "--fsync-samples"},
		{"converge against resp", resp(func(f *benchFlags) { f.workload = "converge"; f.ops = 3 }), "converge workload needs a node in every region"},
		{"staleness against resp", resp(func(f *benchFlags) { f.workload = "staleness"; f.ops = 0; f.duration = time.Second }), "staleness workload needs a node in every region"},
		{"staleness bound on workload A", resp(func(f *benchFlags) { f.staleness = time.Second }), "--staleness applies to the staleness workload only"},
		{"staleness with ops", resp(func(f *benchFlags) { f.workload = "staleness" }), "runs for --duration, not --ops"},
		{"negative staleness", resp(func(f *benchFlags) {
			f.workload = "staleness"
			f.ops = 0
			f.duration = time.Second
			f.staleness = -time.Second
		}), "must be positive"},
		{"staleness in microseconds", resp(func(f *benchFlags) {
			f.workload = "staleness"
			f.ops = 0
			f.duration = time.Second
			f.staleness = time.Microsecond
		}), "shorter than a millisecond"},
		{"staleness readers", resp(func(f *benchFlags) {
			f.workload, f.ops, f.duration, f.clients, f.clientsSet = "staleness", 0, time.Second, 0, true
		}), "readers per region"},
		{"converge with a consistency", resp(func(f *benchFlags) { f.workload = "converge"; f.consistency = "strong" }), "--consistency does not apply to the converge workload"},
		{"converge with clients", resp(func(f *benchFlags) { f.workload = "converge"; f.clientsSet = true }), "--clients does not apply to the converge workload"},
		{"converge with both", resp(func(f *benchFlags) { f.workload = "converge"; f.duration = time.Second }), "not both"},
		{"converge timeout", resp(func(f *benchFlags) { f.workload = "converge"; f.lagTimeout = 0 }), "--lag-timeout must be positive"},
		{"negative pipeline", resp(func(f *benchFlags) { f.pipeline = -2 }), "--pipeline must be at least 1, not -2"},
		{"deep pipeline", resp(func(f *benchFlags) { f.pipeline = bench.MaxPipeline + 1 }), "pipeline depth 10001 is more than the limit"},
		{"pipelined lag", resp(func(f *benchFlags) { f.workload = "lag"; f.pipeline = 4 }), "--pipeline does not apply to the lag workload"},
		{"pipelined etcd", resp(func(f *benchFlags) { f.target = "etcd://" + addr; f.pipeline = 4 }), "etcd's JSON gateway answers one request at a time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runBenchT(t, c.f)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("refused commands opened %d connections to the target", n)
	}

	// An unreachable target is reported before any load, quickly.
	f := tinyBench()
	f.target = "resp://" + deadAddr
	start := time.Now()
	_, _, err = runBenchT(t, f)
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), deadAddr) {
		t.Fatalf("unreachable target: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the reachability check took %v", d) // a hang, not a performance figure
	}
	// A listener that is not a RESP server.
	f.target = "resp://" + addr
	if _, _, err = runBenchT(t, f); err == nil || !strings.Contains(err.Error(), "RESP target") {
		t.Fatalf("a server that hangs up: %v", err)
	}
	// An unknown keyspace of the in-process cluster is refused before load.
	f = tinyBench()
	f.keyspace = "nope"
	if _, _, err = runBenchT(t, f); err == nil || !strings.Contains(err.Error(), `keyspace "nope" does not exist`) || !strings.Contains(err.Error(), "default") {
		t.Fatalf("unknown keyspace: %v", err)
	}
	// A cluster that cannot start: the demo's error is passed on.
	f = tinyBench()
	f.target, f.regions = "inproc:world", "us-east,mars"
	if _, _, err = runBenchT(t, f); err == nil || !strings.Contains(err.Error(), "starting the in-process cluster") || !strings.Contains(err.Error(), "mars") {
		t.Fatalf("a region the matrix does not know: %v", err)
	}
	// The converge workload needs an active keyspace.
	f = tinyBench()
	f.workload, f.ops, f.keyspace = "converge", 2, demoSyncKeyspace
	if _, _, err = runBenchT(t, f); err == nil || !strings.Contains(err.Error(), "needs an active keyspace") {
		t.Fatalf("converge on a sync keyspace: %v", err)
	}
	f = tinyBench()
	f.region = "mars"
	if _, _, err = runBenchT(t, f); err == nil || !strings.Contains(err.Error(), "--region mars has no node") {
		t.Fatalf("unknown region: %v", err)
	}
}

// TestBenchCommandLine goes through cobra: flag spelling, --ops replacing
// the default --duration, and errors.
func TestBenchCommandLine(t *testing.T) {
	run := func(args ...string) (string, error) {
		root := rootCmd()
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetArgs(append([]string{"bench"}, args...))
		err := root.Execute()
		return out.String() + errb.String(), err
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--workload", "Q"}, "unknown workload"},
		{[]string{"--clients", "-1"}, "clients must be at least 1"},
		{[]string{"--ops", "10", "--duration", "1s"}, "not both"},
		{[]string{"--duration", "0s"}, "give a duration or an operation count"},
		{[]string{"--target", "mongodb://x:1"}, "unknown scheme"},
		{[]string{"--clients", "many"}, "invalid argument"},
		{[]string{"--workload", "C", "--ops", "10", "--target", "redis://127.0.0.1:0"}, "bad port"},
		{[]string{"--workload", "staleness", "--staleness", "0s"}, "--staleness must be positive"},
		{[]string{"--workload", "converge", "--clients", "3", "--ops", "2"}, "--clients does not apply"},
		{[]string{"--workload", "staleness", "--staleness", "soon"}, "invalid argument"},
		{[]string{"--pipeline", "0"}, "--pipeline must be at least 1"},
		{[]string{"--pipeline", "-1"}, "--pipeline must be at least 1"},
	} {
		out, err := run(c.args...)
		if err == nil || !strings.Contains(out+err.Error(), c.want) {
			t.Errorf("%v: %v\n%s", c.args, err, out)
		}
	}
	// The flags of the documented examples (and compare.sh's --pipeline)
	// are known.
	cmd := benchCmd()
	for _, name := range []string{"workload", "distribution", "records", "value-size", "clients", "duration", "ops", "target", "json",
		"keyspace", "consistency", "region", "regions", "base-port", "seed", "no-load", "fsync-samples", "lag-timeout", "staleness", "pipeline"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
}

func TestProgressPrinter(t *testing.T) {
	var b bytes.Buffer
	p := newProgressPrinter(&b)
	p(bench.Progress{Phase: bench.PhaseRun, Elapsed: time.Second, Ops: 1000, Rate: 1000})
	p(bench.Progress{Phase: bench.PhaseRun, Elapsed: 2 * time.Second, Ops: 2100, Rate: 1050, Final: true, Errors: 1})
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(b.String(), "\r") || !strings.Contains(lines[1], "run  done: 2100 ops in 2.0s, 1050 ops/s, 1 errors") {
		t.Fatalf("progress:\n%q", b.String())
	}
}
