package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeRESP is a tiny RESP2 server knowing PING, GET and SET, enough for the
// RESP target. pingReply overrides the answer to PING.
//
// Like Redis, it answers every command it has read and sends the replies
// in one write when its read buffer is empty, and it counts, per
// connection, the commands read between two such writes: a pipelining
// client's batch arrives whole, a one-at-a-time client's batches are of
// one command.
type fakeRESP struct {
	ln        net.Listener
	mu        sync.Mutex
	data      map[string]string
	pingReply string
	wg        sync.WaitGroup
	// Under mu: GETs and SETs served, the largest batch and the number of
	// batches of GETs and SETs.
	gets, sets int
	maxBatch   int
	batches    int
}

func startFakeRESP(t *testing.T, pingReply string) *fakeRESP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeRESP{ln: ln, data: map[string]string{}, pingReply: pingReply}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeRESP) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	batch := 0 // GETs and SETs read since the last write
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		switch strings.ToUpper(args[0]) {
		case "PING":
			w.WriteString(s.pingReply)
		case "GET":
			batch++
			s.mu.Lock()
			s.gets++
			v, ok := s.data[args[1]]
			s.mu.Unlock()
			if ok {
				fmt.Fprintf(w, "$%d\r\n%s\r\n", len(v), v)
			} else {
				w.WriteString("$-1\r\n")
			}
		case "SET":
			batch++
			s.mu.Lock()
			s.sets++
			s.data[args[1]] = args[2]
			s.mu.Unlock()
			w.WriteString("+OK\r\n")
		default:
			fmt.Fprintf(w, "-ERR unknown command '%s'\r\n", args[0])
		}
		if r.Buffered() > 0 {
			continue // more commands have arrived: answer them together
		}
		if batch > 0 {
			s.mu.Lock()
			s.batches++
			s.maxBatch = max(s.maxBatch, batch)
			s.mu.Unlock()
			batch = 0
		}
		if w.Flush() != nil {
			return
		}
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		h, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(h[1:]))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func TestRESPTarget(t *testing.T) {
	s := startFakeRESP(t, "+PONG\r\n")
	ctx := context.Background()
	spec, err := ParseTarget("resp://" + s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := spec.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if tgt.Name() != spec.String() {
		t.Errorf("name %q, want %q", tgt.Name(), spec.String())
	}
	p := opsParams(WorkloadA, 400)
	p.Records, p.Clients, p.ValueSize = 50, 4, 100
	rep, err := Run(ctx, tgt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Count != 50 || rep.Total.Count != 400 || rep.Total.Errors != 0 || rep.Op("read").NotFound != 0 {
		t.Fatalf("load %+v total %+v read %+v", rep.Load, rep.Total, rep.Op("read"))
	}
	s.mu.Lock()
	if len(s.data) != 50 || len(s.data[KeyName(DefaultKeyPrefix, 7)]) != 100 {
		t.Errorf("server holds %d keys", len(s.data))
	}
	s.mu.Unlock()
	c, _ := tgt.NewClient(ctx)
	defer c.Close()
	if _, err := c.Read(ctx, "missing"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("read of a missing key: %v", err)
	}
}

func TestRESPTargetPipelines(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		w        Workload
		pipeline int
	}{{WorkloadA, 1}, {WorkloadA, 16}, {WorkloadF, 8}} {
		t.Run(fmt.Sprintf("%s-P%d", c.w.Name, c.pipeline), func(t *testing.T) {
			s := startFakeRESP(t, "+PONG\r\n")
			tgt, err := NewRESPTarget(ctx, s.ln.Addr().String(), RESPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p := opsParams(c.w, 2003) // not a multiple of the depth: the last batches are short
			p.Records, p.Clients, p.ValueSize, p.Pipeline = 301, 3, 20, c.pipeline
			rep, err := Run(ctx, tgt, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Load.Count != p.Records || rep.Total.Count != p.Operations || rep.Total.Errors != 0 || rep.Total.NotFound != 0 {
				t.Fatalf("load %+v total %+v", rep.Load, rep.Total)
			}
			if want := pipelineField(p); rep.Pipeline != want {
				t.Errorf("report's pipeline %d, want %d", rep.Pipeline, want)
			}
			var rmw int64
			if o := rep.Op("rmw"); o != nil {
				rmw = o.Count
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			// Every operation reached the server: the load's SETs, the
			// reads, the updates, and a GET and a SET per rmw.
			if got, want := int64(s.gets+s.sets), p.Records+p.Operations+rmw; got != want {
				t.Errorf("server served %d GETs and %d SETs, want %d in all", s.gets, s.sets, want)
			}
			if len(s.data) != int(p.Records) {
				t.Errorf("server holds %d keys, want %d", len(s.data), p.Records)
			}
			// A batch holds at most the depth's operations (twice as many
			// commands with rmw), and on loopback the whole batch
			// arrives together at least once in the run.
			want := c.pipeline
			if rmw > 0 {
				want = 2 * c.pipeline
			}
			if c.pipeline == 1 && s.maxBatch != 1 || c.pipeline > 1 && (s.maxBatch < c.pipeline || s.maxBatch > want) {
				t.Errorf("largest batch the server read: %d commands, want %d to %d (pipeline %d)", s.maxBatch, c.pipeline, want, c.pipeline)
			}
			if c.pipeline > 1 && int64(s.batches) > 2*(p.Records+p.Operations+rmw)/int64(c.pipeline) {
				t.Errorf("server read %d batches for %d commands with a pipeline of %d", s.batches, s.gets+s.sets, c.pipeline)
			}
		})
	}
}

func TestRESPTargetUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = NewRESPTarget(context.Background(), addr, RESPOptions{})
	if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v", err)
	}
	s := startFakeRESP(t, "-NOAUTH Authentication required.\r\n")
	_, err = NewRESPTarget(context.Background(), s.ln.Addr().String(), RESPOptions{})
	if err == nil || !strings.Contains(err.Error(), "answered PING with an error") || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("got %v", err)
	}
}

// fakeEtcd serves the two gateway calls the etcd target uses.
type fakeEtcd struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (f *fakeEtcd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key   []byte `json:"key"`
		Value []byte `json:"value"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, `{"error":"bad request","message":"bad request","code":3}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/v3/kv/put":
		f.data[string(req.Key)] = req.Value
		fmt.Fprint(w, `{"header":{"revision":"2"}}`)
	case "/v3/kv/range":
		v, ok := f.data[string(req.Key)]
		if !ok {
			fmt.Fprint(w, `{"header":{"revision":"2"}}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"header": map[string]string{"revision": "2"},
			"kvs": []map[string]any{{"key": req.Key, "value": v, "version": "1"}}, "count": "1"})
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"Not Found","code":5,"message":"Not Found"}`)
	}
}

func TestEtcdTarget(t *testing.T) {
	f := &fakeEtcd{data: map[string][]byte{}}
	s1, s2 := httptest.NewServer(f), httptest.NewServer(f)
	defer s1.Close()
	defer s2.Close()
	hosts := strings.TrimPrefix(s1.URL, "http://") + "," + strings.TrimPrefix(s2.URL, "http://")
	spec, err := ParseTarget("etcd://" + hosts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tgt, err := spec.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tgt.Name() != "etcd://"+hosts {
		t.Errorf("name %q", tgt.Name())
	}
	p := opsParams(WorkloadF, 300)
	p.Records, p.Clients, p.ValueSize = 40, 4, 64
	rep, err := Run(ctx, tgt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Count != 40 || rep.Total.Count != 300 || rep.Total.Errors != 0 || rep.Total.NotFound != 0 {
		t.Fatalf("load %+v total %+v", rep.Load, rep.Total)
	}
	f.mu.Lock()
	if len(f.data) != 40 || len(f.data[KeyName(DefaultKeyPrefix, 3)]) != 64 {
		t.Errorf("store holds %d keys", len(f.data))
	}
	f.mu.Unlock()
}

func TestEtcdTargetUnreachable(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := NewEtcdTarget(ctx, []string{addr}, EtcdOptions{}); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("closed port: %v", err)
	}
	notEtcd := httptest.NewServer(http.NotFoundHandler())
	defer notEtcd.Close()
	if _, err := NewEtcdTarget(ctx, []string{notEtcd.URL}, EtcdOptions{}); err == nil || !strings.Contains(err.Error(), "not an etcd v3 JSON gateway") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("not etcd: %v", err)
	}
	for _, eps := range [][]string{nil, {" "}, {"https://h:1"}} {
		if _, err := NewEtcdTarget(ctx, eps, EtcdOptions{}); err == nil {
			t.Errorf("endpoints %q accepted", eps)
		}
	}
}
