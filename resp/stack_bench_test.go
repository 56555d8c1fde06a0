package resp_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/resp"
)

// BenchmarkPipelinedGet measures the whole server path of a GET (the RESP
// front end, the node's lease read, storage) on one node with one
// replica: connections over loopback send GETs in pipelines of 16 and
// read their replies, four connections per processor. ns/op is per GET;
// cpu-ns/op is the process's CPU time per GET (user and system, the
// clients' included), as are allocs/op.
func BenchmarkPipelinedGet(b *testing.B) {
	addr := stackServer(b)
	set(b, addr, "key", "value")
	req := bytes.Repeat([]byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), pipelineDepth)
	want := bytes.Repeat([]byte("$5\r\nvalue\r\n"), pipelineDepth)
	pipelines(b, addr, func(int) []byte { return req }, want)
}

// BenchmarkPipelinedSet is BenchmarkPipelinedGet for durable SETs of keys
// spread over a keyspace's four shards (each pipeline writes 16 keys of
// 256, in turn).
func BenchmarkPipelinedSet(b *testing.B) {
	addr := stackServer(b)
	var reqs [16][]byte
	for i := range reqs {
		var r bytes.Buffer
		for j := range pipelineDepth {
			k := fmt.Sprintf("key:%03d", i*pipelineDepth+j)
			fmt.Fprintf(&r, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$5\r\nvalue\r\n", len(k), k)
		}
		reqs[i] = r.Bytes()
	}
	want := bytes.Repeat([]byte("+OK\r\n"), pipelineDepth)
	pipelines(b, addr, func(i int) []byte { return reqs[i%len(reqs)] }, want)
}

const pipelineDepth = 16

// stackServer starts a one-node cluster with a keyspace "bench" of four
// shards, one replica each, and a RESP server for it that records request
// metrics, as a node's does; it returns the server's address. The node's
// storage is in memory: an fsync costs nothing, and what is measured is
// the CPU.
func stackServer(b *testing.B) string {
	c := testcluster.New(b, testcluster.Options{Regions: []string{"us-east"}, FS: func(uint64) vfs.FS { return vfs.NewMem() }})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "bench", Shards: 4, Replicas: 1, HomeRegion: "us-east"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	n := c.Node(c.IDs()[0])
	s := resp.Serve(ln, n, resp.Config{DefaultKeyspace: "bench", Metrics: metrics.ForNode(n)})
	b.Cleanup(func() { _ = s.Close() })
	return ln.Addr().String()
}

func set(b *testing.B, addr, key, value string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(value), value); err != nil {
		b.Fatal(err)
	}
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "+OK\r\n" {
		b.Fatalf("SET: %q %v", line, err)
	}
}

// pipelines runs b.N commands in pipelines of pipelineDepth from four
// connections per processor: the i-th pipeline of a connection sends
// req(i) and must be answered with want.
func pipelines(b *testing.B, addr string, req func(i int) []byte, want []byte) {
	b.ReportAllocs()
	b.SetParallelism(4)
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		got := make([]byte, len(want))
		for i, more := 0, true; more; i++ {
			for range pipelineDepth {
				more = pb.Next() // (each connection's last pipeline may run past b.N)
			}
			if _, err := conn.Write(req(i)); err != nil {
				b.Error(err)
				return
			}
			if _, err := io.ReadFull(br, got); err != nil {
				b.Error(err)
				return
			}
			if !bytes.Equal(got, want) {
				b.Errorf("replies %q", got)
				return
			}
		}
	})
	b.StopTimer()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
