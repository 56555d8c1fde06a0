package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/bench"
	"github.com/meridian-db/meridian/demo"
	"github.com/meridian-db/meridian/netsim"
)

// benchFlags are the options of `meridian bench`; the zero value of an
// optional one means "not set".
type benchFlags struct {
	workload     string
	distribution string
	records      int64
	valueSize    int
	clients      int
	// pipeline: operations in flight per client; 0 means not set (1).
	pipeline int
	duration time.Duration
	ops      int64
	target   string
	json     bool
	seed     uint64
	noLoad   bool

	// Meridian only.
	keyspace    string
	consistency string
	// RESP targets: TLS and credentials.
	tlsCA, user, password string
	// In-process clusters only.
	region       string
	regions      string
	basePort     int
	fsyncSamples int
	// The lag workload (and converge's timeout).
	lagTimeout time.Duration
	// The staleness workload: the bound D; 0 means not set
	// (bench.DefaultStaleness).
	staleness time.Duration
	// clientsSet is whether --clients was given (the converge and
	// staleness workloads have their own default).
	clientsSet bool

	// progressInterval: 0 means every second (tests shorten it).
	progressInterval time.Duration
}

// Defaults of `meridian bench`.
const (
	benchDefaultTarget       = "inproc:world"
	benchDefaultFsyncSamples = 25
	// Keyspaces the demo cluster creates.
	demoSyncKeyspace   = "default"
	demoAsyncKeyspace  = "async"
	demoActiveKeyspace = "active"
)

// convergeWarmupRounds run before the measured rounds of the converge
// workload: on a new cluster the first conflicting writes take up to two
// one-way delays more (the streams between regions start).
const convergeWarmupRounds = 1

// The workloads of in-process clusters only, besides the YCSB mixes.
const (
	workloadLag       = bench.LagWorkloadName
	workloadConverge  = bench.ConvergeWorkloadName
	workloadStaleness = bench.StalenessWorkloadName
)

func benchCmd() *cobra.Command {
	def := bench.DefaultParams()
	f := benchFlags{
		workload: def.Workload.Name, records: def.Records, valueSize: def.ValueSize, clients: def.Clients,
		duration: def.Duration, target: benchDefaultTarget, seed: def.Seed, fsyncSamples: benchDefaultFsyncSamples,
		lagTimeout: bench.DefaultLagTimeout,
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark Meridian (or Redis, or etcd) with a YCSB-like workload, next to the physical floors",
		Long: `Benchmark a YCSB-like workload against a RESP server (Meridian, Redis), an etcd
cluster, or a Meridian cluster started in this process on an emulated network.

Workloads: A (50% read, 50% update), B (95/5), C (read only), D (read latest,
5% insert), F (50% read, 50% read-modify-write), and, for in-process targets
only:
  lag        write in a keyspace's home region and time how long until an
             eventual read sees the value in every other region
  converge   rounds of conflicting writes on the active keyspace: every
             region sets the same key and increments a counter at once; time
             from the last acknowledgement until every region's eventual
             read agrees (--ops is the number of rounds, after one warm-up
             round; --lag-timeout bounds a round); the final counter must
             equal the increments made
  staleness  a writer in the home region sets a key to 1, 2, 3... while
             readers in every region (--clients per region, default 1) read
             it at bounded(--staleness); reports the share served locally,
             MERIDIAN.LAST's staleness_ms, and violations (a value older
             than one acknowledged more than D before the read): must be 0

Targets:
  resp://HOST:PORT                  Meridian or Redis over RESP
  etcd://HOST:PORT[,HOST:PORT...]   etcd v3 through its JSON gateway
  inproc:world | inproc:none        a Meridian cluster in this process (as
  inproc:MATRIX.json                'meridian demo' runs it), benchmarked over
                                    RESP at its node in --region

For in-process targets the report shows each operation's physical floor (the
quorum round trip from the emulated world matrix plus the measured fsync, and
the round trip to the leader from another region) and the ratio to it.
They also show what the run phase cost the cluster, read from every node's
/metrics before and after it: fsyncs per write and bytes sent between regions
per write (the JSON report's "costs").
With --pipeline N every client keeps N operations in flight on its one
connection, as redis-benchmark -P N does: it sends N commands, then reads
their N replies (a read-modify-write is two commands of the batch). An
operation's latency is then the time from sending its batch to reading the
batch's last reply. RESP and in-process targets only.

Progress goes to stderr, the report (a table, or JSON with --json) to stdout.

Examples:
  meridian bench --target inproc:world --workload A --clients 20 --duration 20s
  meridian bench --target inproc:world --workload A --pipeline 16 --duration 10s
  meridian bench --target inproc:world --workload lag --duration 10s --clients 4
  meridian bench --target inproc:world --workload converge --duration 10s
  meridian bench --target inproc:world --workload staleness --duration 10s --staleness 500ms
  meridian bench --target resp://127.0.0.1:6379 --workload C --ops 100000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if fl.Changed("ops") && !fl.Changed("duration") {
				f.duration = 0
			}
			f.clientsSet = fl.Changed("clients")
			if fl.Changed("pipeline") && f.pipeline < 1 {
				return fmt.Errorf("bench: --pipeline must be at least 1 (1: one operation at a time), not %d", f.pipeline)
			}
			if fl.Changed("staleness") && f.staleness == 0 {
				return errors.New("bench: --staleness must be positive, not 0s (a zero bound is a strong read)")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", f.workload, "A, B, C, D or F (YCSB mixes), lag (replication lag between regions), converge (active convergence) or staleness (bounded reads)")
	fl.StringVar(&f.distribution, "distribution", "", "key distribution: zipfian, uniform or latest (default: the workload's, zipfian except latest for D)")
	fl.Int64Var(&f.records, "records", f.records, "records loaded first, then read and updated")
	fl.IntVar(&f.valueSize, "value-size", f.valueSize, "size in bytes of every value written (1 to 16 MiB)")
	fl.IntVar(&f.clients, "clients", f.clients, "concurrent clients, one connection each (lag: concurrent writers; staleness: readers per region, default 1; converge: one writer per region, not settable)")
	fl.IntVar(&f.pipeline, "pipeline", 1, fmt.Sprintf("operations each client keeps in flight on its connection, like redis-benchmark -P (1 to %d; RESP and in-process targets)", bench.MaxPipeline))
	fl.DurationVar(&f.duration, "duration", f.duration, "length of the run phase (give this or --ops)")
	fl.Int64Var(&f.ops, "ops", 0, "operations of the run phase, shared by the clients (instead of --duration)")
	fl.StringVar(&f.target, "target", f.target, "resp://HOST:PORT, etcd://HOST:PORT[,HOST:PORT...], inproc:world, inproc:none or inproc:MATRIX.json")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fl.Uint64Var(&f.seed, "seed", f.seed, "seed of the operation and key sequences")
	fl.BoolVar(&f.noLoad, "no-load", false, "skip the load phase (the records are already there)")
	fl.StringVar(&f.keyspace, "keyspace", "", "Meridian keyspace (sent as MERIDIAN.KEYSPACE; in-process default: "+demoSyncKeyspace+", the sync keyspace, or "+demoAsyncKeyspace+" for --workload lag, "+demoActiveKeyspace+" for converge)")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "resp:// targets: speak TLS, verifying the server with this CA bundle (a Meridian node with certificates: its ca.crt)")
	fl.StringVar(&f.user, "user", "", "resp:// targets: the user to authenticate as (env MERIDIAN_USER)")
	fl.StringVar(&f.password, "password", "", "resp:// targets: its password (env MERIDIAN_PASSWORD; MERIDIAN_PASSWORD_FILE names a file)")
	fl.StringVar(&f.consistency, "consistency", "", "Meridian read consistency, sent as MERIDIAN.CONSISTENCY (default: the server's, strong); for etcd, serializable or eventual make reads serializable")
	fl.StringVar(&f.region, "region", "", "in-process targets: the region of the node benchmarked (default: the first region)")
	fl.StringVar(&f.regions, "regions", "", "in-process targets: comma-separated regions of the cluster (default: the demo's, us-east,eu-west,ap-southeast)")
	fl.IntVar(&f.basePort, "base-port", 0, "in-process targets: first RESP port, HTTP ports at +1000 (default 0: free ports)")
	fl.IntVar(&f.fsyncSamples, "fsync-samples", f.fsyncSamples, "in-process targets: fsyncs timed in the data directory for the floors (0: do not measure)")
	fl.DurationVar(&f.lagTimeout, "lag-timeout", f.lagTimeout, "lag and converge workloads: how long a value may take to show up in a region (converge: a round to converge) before it counts as a timeout")
	fl.DurationVar(&f.staleness, "staleness", 0, "staleness workload: the bound D of the bounded(D) reads (default 1s)")
	return cmd
}

// runBench is the whole command: it checks every option and the target
// before sending any load, runs the workload, and writes the report to
// stdout and progress to stderr.
func runBench(ctx context.Context, f benchFlags, stdout, stderr io.Writer) error {
	var wl inprocWorkload
	wl.mode = strings.ToLower(strings.TrimSpace(f.workload))
	inprocOnly := false
	if f.pipeline < 0 {
		return fmt.Errorf("bench: --pipeline must be at least 1, not %d", f.pipeline)
	}
	if f.staleness != 0 && wl.mode != workloadStaleness {
		return fmt.Errorf("bench: --staleness applies to the staleness workload only, not %s", f.workload)
	}
	switch wl.mode {
	case workloadLag, workloadConverge, workloadStaleness:
		inprocOnly = true
		why := map[string][3]string{
			workloadLag: {"every writer cycles through its own keys", "it reads at eventual consistency",
				"it writes in the keyspace's home region and reads in every other"},
			workloadConverge: {"every round writes one key and one counter", "it reads at eventual consistency",
				"it writes and reads in every region"},
			workloadStaleness: {"it writes one key", "it reads at bounded(--staleness)",
				"it writes in the keyspace's home region and reads in every region"},
		}[wl.mode]
		switch {
		case f.pipeline > 1:
			return fmt.Errorf("bench: --pipeline does not apply to the %s workload (it times every operation on its own); use A, B, C, D or F", wl.mode)
		case f.distribution != "":
			return fmt.Errorf("bench: --distribution does not apply to the %s workload (%s)", wl.mode, why[0])
		case f.consistency != "":
			return fmt.Errorf("bench: --consistency does not apply to the %s workload (%s)", wl.mode, why[1])
		case f.region != "":
			return fmt.Errorf("bench: --region does not apply to the %s workload (%s)", wl.mode, why[2])
		case f.lagTimeout <= 0 && wl.mode != workloadStaleness:
			return fmt.Errorf("bench: --lag-timeout must be positive, not %v", f.lagTimeout)
		}
	}
	switch wl.mode {
	case workloadLag:
		wl.lag = bench.LagParams{
			Clients: f.clients, Duration: f.duration, Operations: f.ops, Records: f.records, ValueSize: f.valueSize,
			Timeout: f.lagTimeout, ProgressInterval: f.progressInterval,
		}
		if err := wl.lag.Validate(); err != nil {
			return err
		}
	case workloadConverge:
		if f.clientsSet {
			return errors.New("bench: --clients does not apply to the converge workload (one writer and one reader per region)")
		}
		wl.converge = bench.ConvergeParams{Rounds: f.ops, Duration: f.duration, WarmupRounds: convergeWarmupRounds,
			Timeout: f.lagTimeout, ProgressInterval: f.progressInterval}
		if err := wl.converge.Validate(); err != nil {
			return err
		}
	case workloadStaleness:
		if f.ops != 0 {
			return errors.New("bench: the staleness workload runs for --duration, not --ops")
		}
		readers := 1
		if f.clientsSet {
			readers = f.clients
			if readers <= 0 {
				return fmt.Errorf("bench: clients (readers per region) must be at least 1, not %d", readers)
			}
		}
		d := f.staleness
		if d == 0 {
			d = bench.DefaultStaleness
		}
		wl.staleness = bench.StalenessParams{Staleness: d, Duration: f.duration, Readers: readers, ProgressInterval: f.progressInterval}
		if err := wl.staleness.Validate(); err != nil {
			return err
		}
	default:
		w, err := bench.ParseWorkload(f.workload)
		if err != nil {
			return fmt.Errorf("%w, or lag, converge or staleness", err)
		}
		wl.mode = ""
		wl.params = bench.Params{
			Workload: w, Distribution: f.distribution, Records: f.records, ValueSize: f.valueSize, Clients: f.clients, Pipeline: f.pipeline,
			Duration: f.duration, Operations: f.ops, NoLoad: f.noLoad, Seed: f.seed, ProgressInterval: f.progressInterval,
		}
		if err := wl.params.Validate(); err != nil {
			return err
		}
	}
	params := wl.params
	spec, err := bench.ParseTarget(f.target)
	if err != nil {
		return err
	}
	if spec.Kind != bench.TargetInproc {
		switch {
		case inprocOnly:
			return fmt.Errorf("bench: the %s workload needs a node in every region: use an in-process target (inproc:world), not %s", wl.mode, spec)
		case f.region != "" || f.regions != "" || f.basePort != 0:
			return fmt.Errorf("bench: --region, --regions and --base-port apply to in-process targets only, not %s", spec)
		}
	}
	if f.basePort < 0 || f.basePort > 65535-1000 {
		return fmt.Errorf("bench: --base-port %d is not a port (0 picks free ones)", f.basePort)
	}
	if f.fsyncSamples < 0 {
		return fmt.Errorf("bench: --fsync-samples must not be negative, not %d", f.fsyncSamples)
	}
	progress := newProgressPrinter(stderr)
	switch spec.Kind {
	case bench.TargetRESP:
		var connect [][]any
		if f.keyspace != "" {
			connect = append(connect, []any{"MERIDIAN.KEYSPACE", f.keyspace})
		}
		if f.consistency != "" {
			connect = append(connect, []any{"MERIDIAN.CONSISTENCY", f.consistency})
		}
		opts, err := f.respSecurity()
		if err != nil {
			return err
		}
		opts.ConnectCommands = connect
		t, err := bench.NewRESPTarget(ctx, spec.Addrs[0], opts)
		if err != nil {
			return err
		}
		defer t.Close()
		rep, err := bench.Run(ctx, t, params, progress)
		return finishReport(rep, err, f.json, stdout)
	case bench.TargetEtcd:
		if f.keyspace != "" {
			return errors.New("bench: --keyspace applies to Meridian targets only")
		}
		if f.pipeline > 1 {
			return fmt.Errorf("%w: etcd's JSON gateway answers one request at a time per connection (--pipeline applies to resp:// and inproc: targets)", bench.ErrNoPipeline)
		}
		var opts bench.EtcdOptions
		switch strings.ToLower(f.consistency) {
		case "", "strong", "linearizable":
		case "serializable", "eventual":
			opts.Serializable = true
		default:
			return fmt.Errorf("bench: etcd reads are linearizable or serializable, not %q", f.consistency)
		}
		t, err := bench.NewEtcdTarget(ctx, spec.Addrs, opts)
		if err != nil {
			return err
		}
		defer t.Close()
		rep, err := bench.Run(ctx, t, params, progress)
		return finishReport(rep, err, f.json, stdout)
	case bench.TargetInproc:
		return runInproc(ctx, f, spec, wl, progress, stdout, stderr)
	}
	return fmt.Errorf("bench: unsupported target %s", spec)
}

// finishReport prints the report, if any, and passes err on. A partial
// report (interrupted run) is printed too.
func finishReport(rep *bench.Report, err error, asJSON bool, stdout io.Writer) error {
	if rep != nil && (err == nil || rep.Total.Count > 0) {
		var werr error
		if asJSON {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteTable(stdout)
		}
		if err == nil {
			err = werr
		}
	}
	return err
}

// runInproc starts a Meridian cluster in this process, benchmarks it and
// stops it.
func runInproc(ctx context.Context, f benchFlags, spec bench.TargetSpec, wl inprocWorkload,
	progress func(bench.Progress), stdout, stderr io.Writer) error {
	params := wl.params
	matrix, err := netsim.MatrixFor(spec.Latency)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	keyspace := f.keyspace
	if keyspace == "" {
		switch wl.mode {
		case workloadLag:
			keyspace = demoAsyncKeyspace
		case workloadConverge:
			keyspace = demoActiveKeyspace
		default:
			keyspace = demoSyncKeyspace
		}
	}
	fmt.Fprintf(stderr, "starting an in-process Meridian cluster (latency %s)\n", spec.Latency)
	cl, err := startInprocCluster(ctx, demo.Options{Regions: splitList(f.regions), Latency: spec.Latency, BasePort: f.basePort})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "stopping the in-process cluster")
		if err := cl.stop(); err != nil {
			fmt.Fprintf(stderr, "bench: stopping the in-process cluster: %v\n", err)
		}
	}()
	info, ks, err := settledLeaders(ctx, cl.httpAddr, keyspace, stderr)
	if err != nil {
		return err
	}
	if wl.mode == workloadConverge && ks.Strategy != "active" {
		return fmt.Errorf("bench: the converge workload needs an active keyspace (every region writes), and %s is %s", ks.Name, ks.Strategy)
	}
	regions := info.NodeRegions()
	clientRegion := f.region
	switch {
	case wl.mode != "":
		clientRegion = ks.HomeRegion
	case clientRegion == "":
		clientRegion = regions[0]
	case !slices.Contains(regions, clientRegion):
		return fmt.Errorf("bench: --region %s has no node (the cluster's regions: %s)", clientRegion, strings.Join(regions, ", "))
	}
	node, ok := info.NodeIn(clientRegion)
	if !ok {
		return fmt.Errorf("bench: no node serves RESP in %s", clientRegion)
	}
	// Floors: the matrix's round trips and fsync measured where the nodes
	// keep their data.
	var fsync time.Duration
	if f.fsyncSamples > 0 {
		if fsync, err = bench.MeasureFsync(cl.dataDir, f.fsyncSamples); err != nil {
			return err
		}
	}
	readLevel := f.consistency
	switch wl.mode {
	case workloadLag, workloadConverge:
		readLevel = "eventual"
	case workloadStaleness:
		readLevel = boundedLevel(wl.staleness.Staleness)
	}
	floors, err := bench.MeridianFloors(info, ks, bench.MatrixRTT(matrix), clientRegion, fsync, readLevel)
	if err != nil {
		return err
	}
	floors.Latency = spec.Latency
	label := fmt.Sprintf("%s (node %d in %s, keyspace %s, %s)", spec, node.ID, clientRegion, ks.Name, ks.Strategy)
	connect := [][]any{{"MERIDIAN.KEYSPACE", ks.Name}}
	switch wl.mode {
	case workloadLag:
		return runInprocLag(ctx, info, ks, floors, matrix, label, connect, wl.lag, f, progress, stdout, stderr)
	case workloadConverge:
		return runInprocConverge(ctx, info, ks, floors, matrix, label, connect, wl.converge, f, progress, stdout, stderr)
	case workloadStaleness:
		return runInprocStaleness(ctx, info, ks, floors, label, connect, wl.staleness, f, progress, stdout, stderr)
	}
	if f.consistency != "" {
		connect = append(connect, []any{"MERIDIAN.CONSISTENCY", f.consistency})
	}
	t, err := bench.NewRESPTarget(ctx, node.RESPAddr, bench.RESPOptions{ConnectCommands: connect})
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Fprintf(stderr, "benchmarking node %d in %s over RESP (%s), keyspace %s (%s); write floor %.3g ms\n",
		node.ID, clientRegion, node.RESPAddr, ks.Name, ks.Strategy, floors.WriteMS)
	params.Meter = bench.NewMeridianMeter(info)
	params.InProcess = true
	rep, err := bench.Run(ctx, &labeled{Target: t, label: label}, params, progress)
	if rep != nil {
		floors.Apply(rep)
		rep.Notes = append(rep.Notes, "floors from the emulated network's matrix (not measured round trips) plus the fsync measured in the data directory; reads served in the client's region have a floor of 0 and no ratio")
		if rep.Costs != nil {
			rep.Notes = append(rep.Notes, "costs: increase of every node's meridian_raft_fsyncs_total and meridian_transport_bytes_sent_total (to peers in another region) over the run phase, divided by the writes acknowledged; the reads' and the background traffic are charged to the writes too")
		}
	}
	return finishReport(rep, err, f.json, stdout)
}

// runInprocLag runs the lag workload on an in-process cluster: writes at
// the keyspace's home region, eventual reads at one node of every other
// region of the keyspace.
func runInprocLag(ctx context.Context, info *bench.MeridianCluster, ks *bench.MeridianKeyspace, floors *bench.FloorReport, matrix netsim.Matrix,
	label string, connect [][]any, p bench.LagParams, f benchFlags, progress func(bench.Progress), stdout, stderr io.Writer) error {
	from := ks.HomeRegion
	writer, ok := info.NodeIn(from)
	if !ok {
		return fmt.Errorf("bench: no node serves RESP in %s, the home region of %s", from, ks.Name)
	}
	ksRegions := ks.Regions
	if len(ksRegions) == 0 {
		ksRegions = info.NodeRegions()
	}
	wt, err := bench.NewRESPTarget(ctx, writer.RESPAddr, bench.RESPOptions{ConnectCommands: connect})
	if err != nil {
		return err
	}
	readConnect := append(slices.Clone(connect), []any{"MERIDIAN.CONSISTENCY", "eventual"})
	readers := map[string]*bench.RESPTarget{}
	var others []string
	for _, r := range ksRegions {
		if r == from {
			continue
		}
		n, ok := info.NodeIn(r)
		if !ok {
			return fmt.Errorf("bench: no node serves RESP in %s", r)
		}
		rt, err := bench.NewRESPTarget(ctx, n.RESPAddr, bench.RESPOptions{ConnectCommands: readConnect})
		if err != nil {
			return err
		}
		readers[r] = rt
		others = append(others, r)
	}
	if len(others) == 0 {
		return fmt.Errorf("bench: keyspace %s has no region other than %s to measure lag to", ks.Name, from)
	}
	t := bench.LagTarget{
		Label: label, From: from, Regions: others,
		NewWriter: wt.NewClient,
		NewReader: func(ctx context.Context, region string) (bench.Client, error) { return readers[region].NewClient(ctx) },
	}
	fmt.Fprintf(stderr, "measuring replication lag of keyspace %s (%s): writes at node %d in %s, eventual reads in %s\n",
		ks.Name, ks.Strategy, writer.ID, from, strings.Join(others, ", "))
	rep, err := bench.RunLag(ctx, t, p, progress)
	if rep != nil {
		floors.Apply(rep)
		rtt := bench.MatrixRTT(matrix)
		for _, r := range others {
			if d, ferr := bench.AsyncLagFloor(rtt, from, r); ferr == nil {
				rep.SetLagFloor(r, d)
			}
		}
		rep.Notes = append(rep.Notes,
			"lag is timed from sending the write to the first eventual read returning it (reads every 1 ms); its floor is the one-way delay RTT/2 of the emulated matrix",
			"'after ack' times from the write's acknowledgement instead; 0 means the value was visible before the write was acknowledged")
	}
	return finishReport(rep, err, f.json, stdout)
}

// labeled renames a target in the report.
type labeled struct {
	bench.Target
	label string
}

func (l *labeled) Name() string { return l.label }

// leaderSettleTimeout bounds how long an in-process run waits for the
// leaders of a sync keyspace to reach its home region.
const leaderSettleTimeout = 30 * time.Second

// settledLeaders discovers the in-process cluster and, for a sync
// keyspace, waits until every shard is led from the home region, where
// Meridian keeps its leaders once a new cluster has settled: the run then
// measures that steady state (and its floors), not the election that
// followed the start. Should they not settle in leaderSettleTimeout, the
// run goes ahead and says so.
func settledLeaders(ctx context.Context, httpAddr, keyspace string, stderr io.Writer) (*bench.MeridianCluster, *bench.MeridianKeyspace, error) {
	deadline := time.Now().Add(leaderSettleTimeout)
	for {
		info, err := bench.DiscoverMeridian(ctx, httpAddr)
		if err != nil {
			return nil, nil, err
		}
		ks, err := info.FindKeyspace(keyspace)
		if err != nil {
			return nil, nil, err
		}
		settled := true
		if ks.Strategy == "sync" {
			for _, sh := range ks.Shards {
				settled = settled && sh.LeaderRegion == ks.HomeRegion
			}
		}
		if settled {
			return info, ks, nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "note: keyspace %s's leaders are not all in its home region %s after %v; running anyway\n", ks.Name, ks.HomeRegion, leaderSettleTimeout)
			return info, ks, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// inprocCluster is a demo cluster running in this process.
type inprocCluster struct {
	httpAddr string // the first node's HTTP API
	dataDir  string
	stop     func() error
}

// inprocStartTimeout bounds the start of an in-process cluster.
const inprocStartTimeout = 2 * time.Minute

var (
	demoHTTPRE  = regexp.MustCompile(`http://(\S+)`)
	demoReadyRE = regexp.MustCompile(`(?i)\bare ready\b`)
)

// startInprocCluster runs demo.Run (as `meridian demo` does) until its
// cluster is ready, with its data in a new temporary directory, and returns
// how to reach it. stop ends the demo and removes the data.
func startInprocCluster(ctx context.Context, opts demo.Options) (*inprocCluster, error) {
	dir, err := os.MkdirTemp("", "meridian-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	opts.DataDir = dir
	// The in-process cluster is benchmarked in plaintext; what TLS and
	// authentication cost is measured against resp:// targets (--tls-ca).
	opts.Insecure = true
	dctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := demo.Run(dctx, opts, pw)
		pw.Close()
		done <- err
	}()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		if err := os.RemoveAll(dir); err != nil && runErr == nil {
			runErr = err
		}
		return runErr
	}
	c := &inprocCluster{dataDir: dir, stop: stop}
	// Should the demo never say it is ready, give up rather than hang.
	timer := time.AfterFunc(inprocStartTimeout, func() {
		pw.CloseWithError(fmt.Errorf("the cluster was not ready after %v", inprocStartTimeout))
	})
	defer timer.Stop()
	sc := bufio.NewScanner(pr)
	var out []string
	ready := false
	for sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		if m := demoHTTPRE.FindStringSubmatch(line); m != nil && c.httpAddr == "" {
			c.httpAddr = strings.TrimRight(m[1], "/")
		}
		if demoReadyRE.MatchString(line) {
			ready = true
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }() // the demo goes on writing
	if !ready || c.httpAddr == "" {
		err := sc.Err()
		if serr := stop(); serr != nil {
			err = serr
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = fmt.Errorf("the demo stopped without saying it was ready:\n%s", strings.Join(out, "\n"))
		}
		return nil, fmt.Errorf("bench: starting the in-process cluster: %w", err)
	}
	return c, nil
}

// newProgressPrinter returns a progress callback writing to w: one line
// rewritten in place on a terminal, else one line per report.
func newProgressPrinter(w io.Writer) func(bench.Progress) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return func(p bench.Progress) {
		var line string
		if p.Final {
			line = fmt.Sprintf("%-4s done: %d ops in %.1fs, %.0f ops/s, %d errors", p.Phase, p.Ops, p.Elapsed.Seconds(), p.Rate, p.Errors)
		} else {
			line = fmt.Sprintf("%-4s %6.1fs %10d ops %10.0f ops/s %6d errors", p.Phase, p.Elapsed.Seconds(), p.Ops, p.Rate, p.Errors)
		}
		switch {
		case !tty:
			fmt.Fprintln(w, line)
		case p.Final:
			fmt.Fprintf(w, "\r%s\x1b[K\n", line)
		default:
			fmt.Fprintf(w, "\r%s\x1b[K", line)
		}
	}
}

// inprocWorkload is the workload of a run: mode "" for a YCSB mix
// (params), else lag, converge or staleness with their parameters.
type inprocWorkload struct {
	mode      string
	params    bench.Params
	lag       bench.LagParams
	converge  bench.ConvergeParams
	staleness bench.StalenessParams
}

// boundedLevel is the MERIDIAN.CONSISTENCY level bounded(d).
func boundedLevel(d time.Duration) string { return "bounded(" + d.String() + ")" }

// keyspaceRegions returns the regions of a keyspace (every region with a
// node when it does not say).
func keyspaceRegions(info *bench.MeridianCluster, ks *bench.MeridianKeyspace) []string {
	if len(ks.Regions) > 0 {
		return ks.Regions
	}
	return info.NodeRegions()
}

// regionConns returns a function opening connections to one node of each
// region, with the given connect commands; it checks every region first.
func regionConns(ctx context.Context, info *bench.MeridianCluster, regions []string, connect [][]any) (func(ctx context.Context, region string) (bench.Conn, error), error) {
	targets := map[string]*bench.RESPTarget{}
	for _, r := range regions {
		n, ok := info.NodeIn(r)
		if !ok {
			return nil, fmt.Errorf("bench: no node serves RESP in %s", r)
		}
		t, err := bench.NewRESPTarget(ctx, n.RESPAddr, bench.RESPOptions{ConnectCommands: connect})
		if err != nil {
			return nil, err
		}
		targets[r] = t
	}
	return func(ctx context.Context, region string) (bench.Conn, error) {
		t := targets[region]
		if t == nil {
			return nil, fmt.Errorf("bench: no node in %s", region)
		}
		return t.NewConn(ctx)
	}, nil
}

// runInprocConverge runs the converge workload on an in-process cluster's
// active keyspace: a writer and an eventual reader at one node of every
// region of the keyspace.
func runInprocConverge(ctx context.Context, info *bench.MeridianCluster, ks *bench.MeridianKeyspace, floors *bench.FloorReport, matrix netsim.Matrix,
	label string, connect [][]any, p bench.ConvergeParams, f benchFlags, progress func(bench.Progress), stdout, stderr io.Writer) error {
	regions := keyspaceRegions(info, ks)
	if len(regions) < 2 {
		return fmt.Errorf("bench: keyspace %s has one region (%s): nothing to converge", ks.Name, strings.Join(regions, ", "))
	}
	oneWay, from, to, err := bench.ConvergeFloor(bench.MatrixRTT(matrix), regions)
	if err != nil {
		return err
	}
	writers, err := regionConns(ctx, info, regions, connect)
	if err != nil {
		return err
	}
	readers, err := regionConns(ctx, info, regions, append(slices.Clone(connect), []any{"MERIDIAN.CONSISTENCY", "eventual"}))
	if err != nil {
		return err
	}
	fsync := msDur(floors.FsyncMS)
	fmt.Fprintf(stderr, "measuring convergence of keyspace %s (%s): conflicting writes and eventual reads in %s; floor %.3g ms (one-way %s -> %s + fsync)\n",
		ks.Name, ks.Strategy, strings.Join(regions, ", "), float64(oneWay+fsync)/1e6, from, to)
	t := bench.ConvergeTarget{Label: label, Regions: regions, NewWriter: writers, NewReader: readers}
	rep, err := bench.RunConverge(ctx, t, p, progress)
	if rep != nil {
		floors.Apply(rep)
		rep.Converge.SetFloor(oneWay, fsync, from, to)
		rep.Notes = append(rep.Notes,
			"convergence is timed from the last acknowledgement of a round (SET then INCR in every region, released at once) to the end of the first sweep of eventual reads (every 1 ms) in which every region returned the same value and the counter the increments made so far",
			"its floor is the largest one-way delay RTT/2 between two regions of the emulated matrix plus the fsync measured in the data directory; the target is p99 <= floor + 25 ms")
	}
	return finishCheckedReport(rep, err, f.json, stdout)
}

// runInprocStaleness runs the staleness workload: a writer at the
// keyspace's home region, bounded readers at one node of every region.
func runInprocStaleness(ctx context.Context, info *bench.MeridianCluster, ks *bench.MeridianKeyspace, floors *bench.FloorReport,
	label string, connect [][]any, p bench.StalenessParams, f benchFlags, progress func(bench.Progress), stdout, stderr io.Writer) error {
	home := ks.HomeRegion
	regions := keyspaceRegions(info, ks)
	if home == "" || !slices.Contains(regions, home) {
		return fmt.Errorf("bench: keyspace %s has no home region among its regions %s", ks.Name, strings.Join(regions, ", "))
	}
	writer, err := regionConns(ctx, info, []string{home}, connect)
	if err != nil {
		return err
	}
	level := boundedLevel(p.Staleness)
	readers, err := regionConns(ctx, info, regions, append(slices.Clone(connect), []any{"MERIDIAN.CONSISTENCY", level}))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "measuring bounded staleness of keyspace %s (%s): writes in %s, %d reader(s) at %s in each of %s\n",
		ks.Name, ks.Strategy, home, p.Readers, level, strings.Join(regions, ", "))
	t := bench.StalenessTarget{
		Label: label, Home: home, Regions: regions,
		NewWriter: func(ctx context.Context) (bench.Conn, error) { return writer(ctx, home) },
		NewReader: readers,
	}
	rep, err := bench.RunStaleness(ctx, t, p, progress)
	if rep != nil {
		floors.Apply(rep)
		rep.Notes = append(rep.Notes,
			"local: answered at bounded consistency by the region's replica; strong: it was not fresh enough and the read went to the leader (MERIDIAN.LAST's consistency); staleness_ms as MERIDIAN.LAST reports it, strong answers at 0",
			"a violation is a read returning a value older than one whose write was acknowledged (at the client) more than D before the read was sent")
	}
	return finishCheckedReport(rep, err, f.json, stdout)
}

// finishCheckedReport is finishReport for the converge and staleness
// workloads: their report is printed whenever there is one, failed checks
// included, so that the figures behind the error can be seen.
func finishCheckedReport(rep *bench.Report, err error, asJSON bool, stdout io.Writer) error {
	if rep == nil {
		return err
	}
	var werr error
	if asJSON {
		werr = rep.WriteJSON(stdout)
	} else {
		werr = rep.WriteTable(stdout)
	}
	if err == nil {
		err = werr
	}
	return err
}

func msDur(ms float64) time.Duration { return time.Duration(ms * 1e6) }

// respSecurity returns the TLS and credentials of a resp:// target from
// --tls-ca, --user and --password (or the environment).
func (f *benchFlags) respSecurity() (bench.RESPOptions, error) {
	var o bench.RESPOptions
	o.Username, o.Password = f.user, f.password
	if o.Username == "" {
		o.Username = os.Getenv("MERIDIAN_USER")
	}
	if o.Password == "" {
		o.Password = os.Getenv("MERIDIAN_PASSWORD")
	}
	if file := os.Getenv("MERIDIAN_PASSWORD_FILE"); o.Password == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return o, fmt.Errorf("bench: MERIDIAN_PASSWORD_FILE: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return o, fmt.Errorf("bench: --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("bench: --tls-ca %s holds no certificate", f.tlsCA)
		}
		o.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}
