//go:build linux

package resp

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// waitingBackend is the fake backend whose reads of keys starting with
// "slow" would have to wait (as a strong read without the lease would),
// and which counts the reads asked not to wait and the others.
type waitingBackend struct {
	*fakeBackend
	rmu                     sync.Mutex
	noWait, waited, audited int
	// Writes started without waiting (WriteAsync): how many; those of
	// keys starting with "lag" wait for release to be closed.
	async   int
	release chan struct{}
}

// WriteAsync refuses keys starting with "wait" (the write would have to
// wait), and holds those starting with "lag" until release is closed.
func (w *waitingBackend) WriteAsync(keyspace string, cmd kv.Command, done func(kv.Result, node.Answer, error)) bool {
	key := string(cmd.Args[0])
	if strings.HasPrefix(key, "wait") {
		return false
	}
	w.rmu.Lock()
	w.async++
	release := w.release
	w.rmu.Unlock()
	if !strings.HasPrefix(key, "lag") {
		return w.fakeBackend.WriteAsync(keyspace, cmd, done)
	}
	return w.fakeBackend.WriteAsync(keyspace, cmd, func(r kv.Result, a node.Answer, err error) {
		<-release
		done(r, a, err)
	})
}

func (w *waitingBackend) asyncWrites() int {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	return w.async
}

func (w *waitingBackend) GetRecord(ctx context.Context, keyspace string, key []byte, c node.Consistency) (kv.Record, bool, node.Answer, error) {
	w.rmu.Lock()
	if c.NoWait {
		w.noWait++
	} else {
		w.waited++
	}
	w.rmu.Unlock()
	if c.NoWait && strings.HasPrefix(string(key), "slow") {
		return kv.Record{}, false, node.Answer{}, node.ErrWouldWait
	}
	return w.fakeBackend.GetRecord(ctx, keyspace, key, c)
}

// Audit takes the audit records of admin commands (node.Node syncs
// each to disk).
func (w *waitingBackend) Audit(node.AuditRecord) error {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	w.audited++
	return nil
}

func (w *waitingBackend) put(key, value string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data["default/"+key] = []byte(value)
}

func (w *waitingBackend) get(key string) []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.data["default/"+key]
}

func (w *waitingBackend) reads() (noWait, waited int) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	return w.noWait, w.waited
}

func loopServer(t *testing.T, cfg Config) (*Server, *waitingBackend) {
	t.Helper()
	b := &waitingBackend{fakeBackend: newFakeBackend(), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultKeyspace = "default"
	s := Serve(ln, b, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s, b
}

// TestEventLoop: connections start in the event loop, which answers what
// never waits itself and hands a connection to a goroutine of its own
// (for good) at the first command that may wait, at a command larger
// than its buffer, or when the client does not take its replies; nothing
// is lost or reordered on the way.
func TestEventLoop(t *testing.T) {
	t.Run("ReadsStayInTheLoop", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		b.put("k", "v")
		r := dialRaw(t, s)
		for range 20 {
			r.send(multibulk("GET", "k"))
			r.expect("$1")
			r.expect("v")
		}
		r.send("PING\r\n" + multibulk("MERIDIAN.KEYSPACE", "default") + multibulk("CLIENT", "SETNAME", "x") + multibulk("HELLO", "2") + multibulk("GET", "missing"))
		r.expect("+PONG")
		r.expect("+OK")
		r.expect("+OK")
		r.expect("*") // HELLO's map
		for {
			_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := r.br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "$-1\r\n" { // GET missing, the last reply
				break
			}
		}
		if nw, w := b.reads(); nw != 21 || w != 0 {
			t.Fatalf("%d reads asked not to wait, %d waited; want 21 and 0", nw, w)
		}
		if n := s.handedOver.Load(); n != 0 {
			t.Fatalf("%d connections handed over", n)
		}
	})

	t.Run("AReadThatWouldWait", func(t *testing.T) {
		s, b := loopServer(t, Config{Metrics: metrics.NewRegistry()})
		b.put("slow", "later")
		b.put("k", "v")
		r := dialRaw(t, s)
		// In one write: a read the loop answers, one it cannot, one after.
		r.send(multibulk("GET", "k") + multibulk("GET", "slow") + multibulk("GET", "k"))
		for _, want := range []string{"$1", "v", "$5", "later", "$1", "v"} {
			r.expect(want)
		}
		nw, w := b.reads()
		if nw != 2 || w != 2 { // k and slow in the loop; slow again and k from the goroutine
			t.Fatalf("%d reads asked not to wait, %d waited; want 2 and 2", nw, w)
		}
		if n := s.handedOver.Load(); n != 1 {
			t.Fatalf("%d connections handed over, want 1", n)
		}
		// The read that would have waited is recorded once, as a success.
		if got := requestCounts(t, s.cfg.Metrics); got["get/ok"] != 3 || len(got) != 1 {
			t.Fatalf("the metrics count %v, want 3 successful GETs alone", got)
		}
	})

	t.Run("AWriteInTheLoop", func(t *testing.T) {
		s, b := loopServer(t, Config{Metrics: metrics.NewRegistry()})
		b.put("a", "old")
		r := dialRaw(t, s)
		r.send(multibulk("GET", "a") + multibulk("SET", "a", "new"))
		for _, want := range []string{"$3", "old", "+OK"} {
			r.expect(want)
		}
		r.send(multibulk("GET", "a") + "PING\r\n")
		for _, want := range []string{"$3", "new", "+PONG"} {
			r.expect(want)
		}
		if n, a, lw := s.handedOver.Load(), b.asyncWrites(), s.loopWrites.Load(); n != 0 || a != 1 || lw != 1 {
			t.Fatalf("%d connections handed over, %d writes started in the loop (counted %d); want 0 and 1", n, a, lw)
		}
		// A SET with more behind it is a pipeline's: its goroutine runs
		// it, the replies in order.
		r.send(multibulk("SET", "a", "newer") + multibulk("GET", "a") + "PING\r\n")
		for _, want := range []string{"+OK", "$5", "newer", "+PONG"} {
			r.expect(want)
		}
		if n, a := s.handedOver.Load(), b.asyncWrites(); n != 1 || a != 1 {
			t.Fatalf("%d connections handed over, %d writes started in the loop; want 1 and 1", n, a)
		}
		// Each command recorded once, wherever it ran.
		if got := requestCounts(t, s.cfg.Metrics); got["set/ok"] != 2 || got["get/ok"] != 3 || got["ping/ok"] != 2 || len(got) != 3 {
			t.Fatalf("the metrics count %v, want 2 SETs, 3 GETs and 2 PINGs", got)
		}
	})

	t.Run("MetricsGoOutWithTheReplies", func(t *testing.T) {
		// A connection adds its commands to the metrics in a batch, before
		// their replies are written: a client that has its replies finds
		// them counted, whether its pipeline stays in the loop or not.
		for _, handOver := range []int{pipelineRun, math.MaxInt} {
			s, b := loopServer(t, Config{Metrics: metrics.NewRegistry(), PipelineHandOver: handOver})
			b.put("k", "v")
			w := dialRaw(t, s)
			w.send(multibulk("SET", "k", "w")) // written in the loop, answered when applied
			w.expect("+OK")
			if got := requestCounts(t, s.cfg.Metrics); got["set/ok"] != 1 || len(got) != 1 {
				t.Fatalf("hand over at %d: the metrics count %v once the SET's reply came, want 1 SET", handOver, got)
			}
			if b.asyncWrites() != 1 {
				t.Fatalf("hand over at %d: %d writes started in the loop, want 1", handOver, b.asyncWrites())
			}
			r := dialRaw(t, s)
			r.send(strings.Repeat(multibulk("GET", "k"), 200))
			for range 200 {
				r.expect("$1")
				r.expect("w")
			}
			if got := requestCounts(t, s.cfg.Metrics); got["get/ok"] != 200 || got["set/ok"] != 1 {
				t.Fatalf("hand over at %d: the metrics count %v once the replies came, want 200 GETs and 1 SET", handOver, got)
			}
			want := int64(0) // the pipeline stays in the loop
			if handOver == pipelineRun {
				want = 1
			}
			if n := s.handedOver.Load(); n != want {
				t.Fatalf("hand over at %d: %d connections handed over, want %d", handOver, n, want)
			}
		}
	})

	t.Run("AWriteThatWouldWait", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		b.put("a", "old")
		r := dialRaw(t, s)
		r.send(multibulk("GET", "a") + multibulk("SET", "wait", "new") + multibulk("GET", "wait") + "PING\r\n")
		for _, want := range []string{"$3", "old", "+OK", "$3", "new", "+PONG"} {
			r.expect(want)
		}
		if n := s.handedOver.Load(); n != 1 {
			t.Fatalf("%d connections handed over, want 1", n)
		}
		// A second connection starts in the loop again.
		r2 := dialRaw(t, s)
		r2.send(multibulk("GET", "wait"))
		r2.expect("$3")
		r2.expect("new")
		if n := s.handedOver.Load(); n != 1 {
			t.Fatalf("%d connections handed over, want still 1", n)
		}
	})

	t.Run("InputWhileAWriteIsOut", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		b.put("a", "v")
		r := dialRaw(t, s)
		other := dialRaw(t, s)
		r.send(multibulk("SET", "lag", "1"))
		testutil.Eventually(t, 10*time.Second, "the write started", func() bool { return b.asyncWrites() == 1 })
		// More input while the write is out: it waits for the write's
		// reply, and the loop serves other connections meanwhile.
		r.send(multibulk("GET", "lag") + "PING\r\n")
		other.send(multibulk("GET", "a"))
		other.expect("$1")
		other.expect("v")
		close(b.release)
		for _, want := range []string{"+OK", "$1", "1", "+PONG"} {
			r.expect(want)
		}
		r.send(multibulk("SET", "lag", "2"))
		r.expect("+OK")
		r.send(multibulk("GET", "lag"))
		for _, want := range []string{"$1", "2"} {
			r.expect(want)
		}
		if n, a := s.handedOver.Load(), b.asyncWrites(); n != 0 || a != 2 {
			t.Fatalf("%d connections handed over, %d writes started in the loop; want 0 and 2", n, a)
		}
	})

	t.Run("AClientLeavesWhileItsWriteIsOut", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		r := dialRaw(t, s)
		r.send(multibulk("SET", "lag", "1"))
		testutil.Eventually(t, 10*time.Second, "the write started", func() bool { return b.asyncWrites() == 1 })
		_ = r.c.Close()
		close(b.release) // the outcome comes for a connection that is gone
		testutil.Eventually(t, 10*time.Second, "the connection closed", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.clients) == 0
		})
		if string(b.get("lag")) != "1" {
			t.Fatal("the write was lost")
		}
	})

	t.Run("CloseWhileAWriteIsOut", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		r := dialRaw(t, s)
		r.send(multibulk("SET", "lag", "1"))
		testutil.Eventually(t, 10*time.Second, "the write started", func() bool { return b.asyncWrites() == 1 })
		closeWithin(t, s, "while a write was out")
		close(b.release) // its outcome, after the loop stopped, goes nowhere
	})

	t.Run("WritesOfManyConnections", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		const conns, rounds = 20, 50
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for i := range conns {
			r := dialRaw(t, s)
			wg.Go(func() {
				key := fmt.Sprintf("k%d", i)
				for j := range rounds {
					v := fmt.Sprint(j)
					for _, step := range []struct {
						cmd  string
						want []string
					}{
						{multibulk("SET", key, v), []string{"+OK"}},
						{multibulk("GET", key), []string{fmt.Sprintf("$%d", len(v)), v}},
					} {
						if _, err := io.WriteString(r.c, step.cmd); err != nil {
							errs <- err
							return
						}
						for _, want := range step.want {
							if err := r.tryExpect(want); err != nil {
								errs <- err
								return
							}
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n, a := s.handedOver.Load(), b.asyncWrites(); n != 0 || a != conns*rounds {
			t.Fatalf("%d connections handed over, %d writes started in the loop; want 0 and %d", n, a, conns*rounds)
		}
	})

	t.Run("ACommandInPieces", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		b.put("key", "value")
		r := dialRaw(t, s)
		cmd := multibulk("GET", "key") + "GET key\r\n"
		for i := range len(cmd) {
			r.send(cmd[i : i+1])
			// Each byte its own segment (a pause lets the loop read it
			// alone: what is tested is a command arriving in pieces).
			time.Sleep(time.Millisecond)
		}
		for _, want := range []string{"$5", "value", "$5", "value"} {
			r.expect(want)
		}
		if n := s.handedOver.Load(); n != 0 {
			t.Fatalf("%d connections handed over", n)
		}
	})

	t.Run("ACommandLargerThanTheBuffer", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		big := strings.Repeat("x", 100<<10)
		r := dialRaw(t, s)
		r.send(multibulk("SET", "big", big) + multibulk("GET", "big"))
		r.expect("+OK")
		r.expect(fmt.Sprintf("$%d", len(big)))
		got, _ := r.br.ReadString('\n')
		if got != big+"\r\n" {
			t.Fatalf("GET big: %d bytes back", len(got))
		}
		if string(b.get("big")) != big {
			t.Fatal("the large SET did not reach the backend whole")
		}
	})

	t.Run("AClientThatDoesNotRead", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		value := strings.Repeat("v", 1<<20)
		b.put("v", value)
		r := dialRaw(t, s)
		const n = 64 // 64 MiB of replies: far more than the socket holds
		r.send(strings.Repeat(multibulk("GET", "v"), n))
		// Only once the replies cannot all be written (the client reads
		// nothing yet) is the connection handed over, its replies kept.
		testutil.Eventually(t, 20*time.Second, "the connection handed over", func() bool { return s.handedOver.Load() == 1 })
		for i := range n {
			_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			head, err := r.br.ReadString('\n')
			if err != nil || head != fmt.Sprintf("$%d\r\n", len(value)) {
				t.Fatalf("reply %d: %q %v", i, head, err)
			}
			body := make([]byte, len(value)+2)
			if _, err := io.ReadFull(r.br, body); err != nil || string(body[:len(value)]) != value {
				t.Fatalf("reply %d: %v", i, err)
			}
		}
	})

	t.Run("APipelineIsHandedOver", func(t *testing.T) {
		s, b := loopServer(t, Config{PipelineHandOver: pipelineRun})
		b.put("k", "v")
		r := dialRaw(t, s)
		r.send(strings.Repeat(multibulk("GET", "k"), pipelineRun-1))
		for range pipelineRun - 1 {
			r.expect("$1")
			r.expect("v")
		}
		if n := s.handedOver.Load(); n != 0 {
			t.Fatalf("%d connections handed over after %d commands at once", n, pipelineRun-1)
		}
		r.send(strings.Repeat(multibulk("GET", "k"), pipelineRun))
		for range pipelineRun {
			r.expect("$1")
			r.expect("v")
		}
		// Answered in the loop (the reads asked not to wait), then handed over.
		if nw, w := b.reads(); nw != 2*pipelineRun-1 || w != 0 {
			t.Fatalf("%d reads asked not to wait, %d waited; want %d and 0", nw, w, 2*pipelineRun-1)
		}
		testutil.Eventually(t, 20*time.Second, "the pipelining connection handed over", func() bool { return s.handedOver.Load() == 1 })
		r.send(multibulk("GET", "k"))
		r.expect("$1")
		if _, w := b.reads(); w != 1 {
			t.Fatalf("the next read was not served from the connection's goroutine")
		}
	})

	t.Run("PipelinesStayInTheLoop", func(t *testing.T) {
		s, b := loopServer(t, Config{PipelineHandOver: math.MaxInt})
		b.put("k", "v")
		r := dialRaw(t, s)
		for range 3 {
			r.send(strings.Repeat(multibulk("GET", "k"), 100))
			for range 100 {
				r.expect("$1")
				r.expect("v")
			}
		}
		if nw, w := b.reads(); nw != 300 || w != 0 {
			t.Fatalf("%d reads asked not to wait, %d waited; want 300 and 0", nw, w)
		}
		if n := s.handedOver.Load(); n != 0 {
			t.Fatalf("%d connections handed over; pipelines of reads stay in the loop", n)
		}
		// A write with more behind it still goes to the goroutine (which
		// runs a pipeline's SETs together, pipeline.go).
		r.send(multibulk("SET", "k", "w") + multibulk("GET", "k"))
		r.expect("+OK")
		r.expect("$1")
		r.expect("w")
		if n := s.handedOver.Load(); n != 1 {
			t.Fatalf("%d connections handed over, want the writer's", n)
		}
	})

	t.Run("AuditedCommandsLeaveTheLoop", func(t *testing.T) {
		s, b := loopServer(t, Config{})
		r := dialRaw(t, s)
		r.send(multibulk("CLIENT", "ID") + multibulk("CLIENT", "LIST"))
		r.expect(":")
		r.expect("$")
		r.expect("id=")
		if n := s.handedOver.Load(); n != 1 {
			t.Fatalf("%d connections handed over; CLIENT LIST (audited, a synced write) must leave the loop", n)
		}
		b.rmu.Lock()
		defer b.rmu.Unlock()
		if b.audited != 1 {
			t.Fatalf("%d audit records, want 1", b.audited)
		}
	})

	t.Run("QuitAndProtocolErrors", func(t *testing.T) {
		s, _ := loopServer(t, Config{})
		r := dialRaw(t, s)
		r.send("QUIT\r\n")
		r.expect("+OK")
		r.expectClosed()
		r = dialRaw(t, s)
		r.send("*1\r\n$x\r\n")
		r.expect("-ERR Protocol error")
		r.expectClosed()
		testutil.Eventually(t, 20*time.Second, "both connections forgotten", func() bool { return len(s.clientsSnapshot()) == 0 })
	})

	t.Run("ClientListAndClose", func(t *testing.T) {
		s, _ := loopServer(t, Config{})
		var conns []*rawConn
		for range 3 {
			r := dialRaw(t, s)
			r.send("PING\r\n")
			r.expect("+PONG")
			conns = append(conns, r)
		}
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2})
		defer rdb.Close()
		list, err := rdb.ClientList(context.Background()).Result()
		if err != nil || strings.Count(list, "id=") != 4 {
			t.Fatalf("CLIENT LIST: %v\n%s", err, list)
		}
		closeWithin(t, s, "with connections in the loop")
		for _, r := range conns {
			r.expectClosed()
		}
	})

	t.Run("NoEventLoop", func(t *testing.T) {
		s, b := loopServer(t, Config{NoEventLoop: true})
		b.put("k", "v")
		r := dialRaw(t, s)
		r.send(multibulk("GET", "k"))
		r.expect("$1")
		if nw, w := b.reads(); nw != 0 || w != 1 {
			t.Fatalf("%d reads asked not to wait, %d waited; want 0 and 1", nw, w)
		}
	})
}

// closeWithin closes s, failing the test if Close does not return in 20
// seconds (when: what the server was doing).
func closeWithin(t *testing.T, s *Server, when string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return " + when)
	}
}

func TestDefaultPipelineHandOver(t *testing.T) {
	for _, tc := range []struct{ procs, loops, want int }{
		{1, 1, math.MaxInt}, {2, 1, math.MaxInt}, {3, 1, 8}, {4, 1, 8}, {8, 2, 8}, {4, 2, math.MaxInt}, {16, 4, 8},
	} {
		if got := defaultPipelineHandOver(tc.procs, tc.loops); got != tc.want {
			t.Errorf("%d processors, %d loops: hand over at %d, want %d", tc.procs, tc.loops, got, tc.want)
		}
	}
}
