package node_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// BenchmarkSyncWrite measures the commit path of one 3-voter sync group
// (us-east, eu-west, ap-southeast), writing at the leader (us-east), with
// 1 and 64 concurrent clients, on loopback without emulated delay and on the
// world matrix. It reports writes/s and p50/p99 latency; on the world
// matrix also the floor: the round trip from the leader to the nearest
// quorum (us-east <-> eu-west, 81 ms).
func BenchmarkSyncWrite(b *testing.B) {
	for _, net := range []struct {
		name   string
		matrix netsim.Matrix
		floor  time.Duration
	}{{"loopback", nil, 0}, {"world", netsim.WorldMatrix(), 81 * time.Millisecond}} {
		for _, clients := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", net.name, clients), func(b *testing.B) {
				benchWrites(b, net.matrix, net.floor, clients)
			})
		}
	}
}

func benchWrites(b *testing.B, matrix netsim.Matrix, floor time.Duration, clients int) {
	c := testcluster.New(b, testcluster.Options{Matrix: matrix, TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "bench", Shards: 1, HomeRegion: "us-east"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.WaitFor(ctx, func() bool {
		l := c.Leader(ks.Shards[0].Group)
		return l != 0 && c.RegionOf(l) == "us-east"
	}); err != nil {
		b.Fatal("no leader in us-east")
	}
	n := c.Node(c.Leader(ks.Shards[0].Group))
	value := make([]byte, 256)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, err := n.Put(ctx, "bench", fmt.Appendf(nil, "key%d", i%1000), value); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	if floor > 0 {
		b.ReportMetric(float64(floor.Milliseconds()), "floor-ms")
		b.ReportMetric(p(0.5)/float64(floor.Milliseconds()), "p50/floor")
	}
}

// BenchmarkStrongRead measures a linearizable read at the leader (ReadIndex:
// one heartbeat round to a quorum) on the world matrix.
func BenchmarkStrongRead(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix(), TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "bench", Shards: 1, HomeRegion: "us-east"})
	ctx := context.Background()
	n := c.Node(c.Leader(ks.Shards[0].Group))
	if _, err := n.Put(ctx, "bench", []byte("k"), []byte("v")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, _, _, err := n.Get(ctx, "bench", []byte("k"), node.Strong); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/read")
}

// BenchmarkLocalRead measures reads served by a follower in ap-southeast
// (a sync keyspace led from us-east, world matrix) at the levels that
// allow it: eventual, prefix, bounded(1s) and session. None crosses the
// WAN; p50 and p99 per level are reported.
func BenchmarkLocalRead(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix(), TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "bench", Shards: 1, HomeRegion: "us-east"})
	ctx := context.Background()
	east := c.Node(c.InRegion("us-east")[0])
	a, err := east.Put(ctx, "bench", []byte("k"), []byte("v"))
	if err != nil {
		b.Fatal(err)
	}
	token, err := east.Session("bench", "", a)
	if err != nil {
		b.Fatal(err)
	}
	asia := c.Node(c.InRegion("ap-southeast")[0])
	levels := []node.Consistency{
		node.Eventual,
		node.Level(consistency.Requirement{Level: consistency.Prefix}),
		node.Level(consistency.BoundedBy(time.Second)),
		{Req: consistency.Requirement{Level: consistency.Session}, Token: token},
	}
	// Wait until the follower has the write and a fresh closed timestamp.
	for _, l := range levels {
		for {
			v, _, a, err := asia.Get(ctx, "bench", []byte("k"), l)
			if err == nil && string(v) == "v" && a.Consistency != "strong" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.ResetTimer()
	for _, l := range levels {
		lat := make([]time.Duration, 0, b.N)
		local := 0
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			_, _, a, err := asia.Get(ctx, "bench", []byte("k"), l)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			if a.Consistency != "strong" {
				local++
			}
		}
		slices.Sort(lat)
		name := strings.SplitN(l.String(), "(", 2)[0]
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, name+"-p99-ms")
		b.ReportMetric(100*float64(local)/float64(b.N), name+"-local-%")
	}
}

// asyncLagWarmup is how many untimed writes BenchmarkAsyncLag makes first.
const asyncLagWarmup = 5

// BenchmarkAsyncLag measures, on the world matrix, how long after a write
// is acknowledged in the primary region (us-east) it becomes visible to
// eventual reads in each other region, next to the floor: the one-way
// delay from us-east (eu-west 40.5 ms, ap-southeast 108.5 ms). Visibility
// is polled every millisecond, which adds up to 1 ms.
//
// It measures the streams running steadily: a few writes go first, untimed,
// while the streams start (each asks its destination for its position,
// resyncs the new, empty destination, and keeps one batch in flight until
// the first is acknowledged), which costs the first writes a round trip
// or two.
func BenchmarkAsyncLag(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix(), TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "lag", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	primary := c.Node(c.InRegion("us-east")[0])
	regions := []string{"eu-west", "ap-southeast"}
	floors := map[string]float64{"eu-west": 40.5, "ap-southeast": 108.5}
	lags := map[string][]time.Duration{}
	// write puts a new value and returns, per region, how long after its
	// acknowledgement it became visible there.
	write := func(val []byte) map[string]time.Duration {
		if _, err := primary.Put(ctx, "lag", []byte("k"), val); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		out := map[string]time.Duration{}
		for _, r := range regions {
			n := c.Node(c.InRegion(r)[0])
			for {
				v, ok, _, err := n.Get(ctx, "lag", []byte("k"), node.Eventual)
				if err == nil && ok && string(v) == string(val) {
					break
				}
				if ctx.Err() != nil {
					b.Fatalf("write %q never reached %s", val, r)
				}
				time.Sleep(time.Millisecond)
			}
			out[r] = time.Since(acked)
		}
		return out
	}
	for i := range asyncLagWarmup {
		write(fmt.Appendf(nil, "warmup%d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r, d := range write(fmt.Appendf(nil, "v%d", i)) {
			lags[r] = append(lags[r], d)
		}
	}
	b.StopTimer()
	for _, r := range regions {
		l := lags[r]
		slices.Sort(l)
		p := func(q float64) float64 { return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000 }
		b.ReportMetric(p(0.5), r+"-p50-ms")
		b.ReportMetric(p(0.9), r+"-p90-ms")
		b.ReportMetric(p(0.99), r+"-p99-ms")
		b.ReportMetric(floors[r], r+"-floor-ms")
	}
	retries := uint64(0)
	for _, s := range primary.Streams() {
		retries += s.Retries
	}
	b.ReportMetric(float64(retries), "stream-retries")
}

// putKeys writes keys k0..k(b.N-1) of keyspace ks through n, from the
// given number of writers at once.
func putKeys(b *testing.B, n *node.Node, ks string, writers int) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < b.N; i += writers {
				if _, err := n.Put(context.Background(), ks, fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkFsyncsPerWrite counts the fsyncs every node of a 3-voter sync
// group makes per write (the host's counters), for one writer and for 20
// concurrent ones, on the world matrix at 1/5 scale. Raft needs the
// leader's and two followers' appends: 3 without batching.
func BenchmarkFsyncsPerWrite(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "f", Shards: 1, HomeRegion: "us-east"})
	lead := c.Node(c.Leader(ks.Shards[0].Group))
	fsyncs := func() uint64 {
		var f uint64
		for _, n := range c.Running() {
			f += n.Host().Stats().Fsyncs
		}
		return f
	}
	b.ResetTimer()
	for _, writers := range []int{1, 10, 50} {
		before := fsyncs()
		putKeys(b, lead, "f", writers)
		b.ReportMetric(float64(fsyncs()-before)/float64(b.N), fmt.Sprintf("fsyncs/write-%d-writers", writers))
	}
}

// BenchmarkCombinedSets compares, side by side, 50 writers' plain SETs
// into a 3-voter sync group on loopback with the SETs combined into
// MSETs (combine.go) and with every SET its own proposal
// (Config.NoCombine). It reports writes/s, and raft entries and fsyncs
// per write at the leader.
func BenchmarkCombinedSets(b *testing.B) {
	for _, mode := range []struct {
		name string
		off  bool
	}{{"combined", false}, {"one-per-set", true}} {
		b.Run(mode.name, func(b *testing.B) {
			c := testcluster.New(b, testcluster.Options{Tune: func(_ uint64, cfg *node.Config) { cfg.NoCombine = mode.off }})
			ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "f", Shards: 1, Replicas: 3})
			lead := c.Node(c.Leader(ks.Shards[0].Group))
			const writers = 50
			before := lead.Host().Stats()
			b.ResetTimer()
			start := time.Now()
			putKeys(b, lead, "f", writers)
			secs := time.Since(start).Seconds()
			after := lead.Host().Stats()
			b.ReportMetric(float64(b.N)/secs, "writes/s")
			b.ReportMetric(float64(after.EntriesAppended-before.EntriesAppended)/float64(b.N), "entries/write")
			b.ReportMetric(float64(after.Fsyncs-before.Fsyncs)/float64(b.N), "fsyncs/write")
		})
	}
}
