// Package bench drives YCSB-like workloads against Meridian and against peer
// systems (Redis over RESP, etcd over its JSON gateway) so that they can be
// measured side by side on the same machine, and computes the physical
// floors (quorum round trip, one-way delay, fsync) that Meridian's figures
// are compared with (see BENCHMARKS.md).
//
// The pieces:
//
//   - key choosers: Uniform, Zipfian (scrambled, theta 0.99) and Latest,
//     deterministic given a seed;
//   - workloads A, B, C, D and F (ParseWorkload) and the Params of a run
//     (Params.Validate);
//   - the Client and Target interfaces, with a RESP target (Meridian, Redis)
//     and an etcd v3 target, and ParseTarget for the command line's target
//     syntax;
//   - Run, which loads the records, runs the clients and returns a Report
//     (a table with WriteTable, or JSON);
//   - pipelines (Params.Pipeline, `meridian bench --pipeline N`): each
//     client keeps N operations in flight on its one connection, as
//     redis-benchmark -P does: it sends a batch of N commands, then reads
//     the N replies, and books each operation with the batch's latency
//     (from sending the batch to its last reply). The client must be a
//     Pipeliner (the RESP target's are, so in-process targets too, which
//     are benchmarked over RESP); etcd's JSON gateway is not (Run returns
//     ErrNoPipeline);
//   - Histogram, a mergeable log-linear latency histogram (about 0.4%
//     relative error);
//   - the floors: SyncWriteFloor, AsyncLagFloor, ComputeFloors and
//     MeasureFsync; for a Meridian cluster, DiscoverMeridian (its HTTP
//     /v1/cluster) and MeridianFloors, whose FloorReport Apply sets the
//     floors of a report's operations;
//   - costs: a Meter (MeridianMeter reads every node's /metrics) read
//     before and after the run phase gives the Report's CostReport, fsyncs
//     and bytes sent between regions per write acknowledged;
//   - RunLag, the replication-lag workload: write in one region, poll
//     eventual reads in the others until the value shows up;
//   - RunConverge, the active-convergence workload: every region writes the
//     same key and increments a counter at once, then eventual reads are
//     polled until every region agrees (ConvergeFloor: the largest one-way
//     delay); the final counter must hold every increment;
//   - RunStaleness, the bounded-staleness workload: readers in every region
//     read at bounded(D) while the home region writes increasing values;
//     MERIDIAN.LAST (a Conn's raw command) tells how each read was served,
//     and no read may return a value older than one acknowledged more than
//     D before it started.
//
// The `meridian bench` command (cmd/meridian/bench.go) puts these together.
//
// Nothing here asserts absolute speed: a run produces numbers to compare
// with a peer measured in the same run and with the floor.
package bench
