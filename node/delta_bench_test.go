package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// BenchmarkActiveSetBytesPerWrite measures what one SADD of a new member
// to an active set costs across regions, for sets of 10, 1,000 and
// 100,000 members: two regions, the set filled first (untimed), then b.N
// SADDs in us-east until eu-west has them all. It reports the bytes the
// stream's batches took per write (stream-bytes/write: encoded batches,
// heartbeats left out), everything us-east's transport sent to eu-west's
// node per write (wire-bytes/write: batches after compression, and the
// heartbeats, the metadata group's raft traffic and the pings of the
// time the writes took, which grows with the set because the source and
// the destination still decode and encode a key's whole state on every
// write), and the size of the set's members (set-bytes: what shipping
// the whole set with every write would cost at least), and the stream's
// failed sends and repaired gaps during the writes. Run with a fixed
// count, e.g. -benchtime=300x.
func BenchmarkActiveSetBytesPerWrite(b *testing.B) {
	for _, size := range []int{10, 1000, 100_000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) { benchSetBytes(b, size) })
	}
}

func benchSetBytes(b *testing.B, size int) {
	c := testcluster.New(b, testcluster.Options{Regions: []string{"us-east", "eu-west"}})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	eastID, westID := c.InRegion("us-east")[0], c.InRegion("eu-west")[0]
	east, west := c.Node(eastID), c.Node(westID)
	sadd := func(members ...[]byte) {
		cmd := kv.Command{Op: kv.OpSAdd, NowMS: time.Now().UnixMilli(), Args: append([][]byte{[]byte("s")}, members...)}
		if _, _, err := east.Write(ctx, "a", cmd); err != nil {
			b.Fatal(err)
		}
	}
	setBytes := 0
	await := func(n int) {
		if err := c.WaitFor(ctx, func() bool {
			rec, ok, _, err := west.GetRecord(ctx, "a", []byte("s"), node.Eventual)
			if err != nil || !ok {
				return false
			}
			set, err := kv.DecodeSet(rec.Payload)
			setBytes = len(rec.Payload)
			return err == nil && len(set) == n
		}); err != nil {
			b.Fatalf("eu-west never had the %d members", n)
		}
	}
	for i := 0; i < size; i += 1000 {
		var ms [][]byte
		for j := i; j < min(i+1000, size); j++ {
			ms = append(ms, fmt.Appendf(nil, "member-%07d", j))
		}
		sadd(ms...)
	}
	await(size)
	streamBytes := func() (bytes, retries, repairs uint64) {
		for _, s := range east.Streams() {
			bytes, retries, repairs = bytes+s.BatchBytes, retries+s.Retries, repairs+s.GapRepairs
		}
		return bytes, retries, repairs
	}
	wire := func() uint64 { return east.Transport().BytesSent()[westID] }
	s0, r0, g0 := streamBytes()
	w0 := wire()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sadd(fmt.Appendf(nil, "new-%07d", i))
	}
	await(size + b.N)
	b.StopTimer()
	s1, r1, g1 := streamBytes()
	w1 := wire()
	b.ReportMetric(float64(s1-s0)/float64(b.N), "stream-bytes/write")
	b.ReportMetric(float64(w1-w0)/float64(b.N), "wire-bytes/write")
	b.ReportMetric(float64(setBytes), "set-bytes")
	b.ReportMetric(float64(r1-r0), "stream-retries")
	b.ReportMetric(float64(g1-g0), "gap-repairs")
}
