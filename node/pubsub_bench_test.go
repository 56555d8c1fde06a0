package node_test

import (
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/netsim"
)

// BenchmarkPubSubDelay measures how long a message published in us-east
// takes to reach a subscriber of each other region, next to the floor:
// the one-way delay of the world matrix (half the round trip). Messages
// carry their publishing time; the subscribers, sinks on the nodes as the
// RESP servers register, note when each arrives. Publishes are spread
// out (one every 2 ms), so the figure is the delay of a message, not of
// a queue.
//
//	go test -run XXX -bench PubSubDelay -benchtime 500x ./node/
func BenchmarkPubSubDelay(b *testing.B) {
	matrix := netsim.WorldMatrix()
	c := testcluster.New(b, testcluster.Options{Matrix: matrix})
	pub := c.Node(c.InRegion("us-east")[0])
	regions := []string{"eu-west", "ap-southeast"}
	var mu sync.Mutex
	delays := map[string][]time.Duration{}
	for _, r := range regions {
		n := c.Node(c.InRegion(r)[0])
		remove := n.AddPubSubSink(func(ch, msg []byte) int {
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(msg)))
			mu.Lock()
			delays[r] = append(delays[r], time.Since(sent))
			mu.Unlock()
			return 1
		})
		b.Cleanup(remove)
	}
	publish := func() {
		pub.Publish([]byte("bench"), binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano())))
	}
	for range 20 { // warm up the connections and the senders
		publish()
		time.Sleep(2 * time.Millisecond)
	}
	if err := c.WaitFor(b.Context(), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delays["ap-southeast"]) == 20 && len(delays["eu-west"]) == 20
	}); err != nil {
		b.Fatal("the warm-up messages never arrived")
	}
	mu.Lock()
	delays = map[string][]time.Duration{}
	mu.Unlock()
	b.ResetTimer()
	for range b.N {
		publish()
		time.Sleep(2 * time.Millisecond) // the pace of the publisher, not a wait for anything
	}
	b.StopTimer()
	if err := c.WaitFor(b.Context(), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delays["ap-southeast"]) == b.N && len(delays["eu-west"]) == b.N
	}); err != nil {
		b.Fatalf("messages lost on an emulated network without loss: %d %d of %d", len(delays["eu-west"]), len(delays["ap-southeast"]), b.N)
	}
	for _, r := range regions {
		l := delays[r]
		slices.Sort(l)
		p := func(q float64) float64 { return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000 }
		rtt, _ := matrix.RTT("us-east", r)
		b.ReportMetric(p(0.5), r+"-p50-ms")
		b.ReportMetric(p(0.9), r+"-p90-ms")
		b.ReportMetric(p(0.99), r+"-p99-ms")
		b.ReportMetric(float64(rtt.Microseconds())/2000, r+"-floor-ms")
	}
}
