package node_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkAsyncLag measures, on the world matrix, how long after a write
// is acknowledged in the primary region (us-east) it becomes visible to
// eventual reads in each other region, next to the floor: the one-way
// delay from us-east (eu-west 40.5 ms, ap-southeast 108.5 ms). Visibility
// is polled every millisecond, which adds up to 1 ms.
func BenchmarkAsyncLag(b *testing.B) {
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix(), TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "lag", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	primary := c.Node(c.InRegion("us-east")[0])
	regions := []string{"eu-west", "ap-southeast"}
	floors := map[string]float64{"eu-west": 40.5, "ap-southeast": 108.5}
	lags := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		val := fmt.Appendf(nil, "v%d", i)
		if _, err := primary.Put(ctx, "lag", []byte("k"), val); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for _, r := range regions {
			n := c.Node(c.InRegion(r)[0])
			for {
				v, ok, _, err := n.Get(ctx, "lag", []byte("k"), node.Eventual)
				if err == nil && ok && string(v) == string(val) {
					break
				}
				if ctx.Err() != nil {
					b.Fatalf("write %d never reached %s", i, r)
				}
				time.Sleep(time.Millisecond)
			}
			lags[r] = append(lags[r], time.Since(acked))
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
