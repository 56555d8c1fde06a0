package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is an in-memory key-value store shared by fake clients.
type memStore struct {
	mu      sync.Mutex
	data    map[string][]byte
	reads   atomic.Int64
	updates atomic.Int64
	log     []string // operations in order, when logging
	logging bool
}

func newMemStore() *memStore { return &memStore{data: map[string][]byte{}} }

// memTarget makes fake clients; failEvery > 0 fails every failEvery-th
// update of each client.
type memTarget struct {
	store     *memStore
	failEvery int
	opened    atomic.Int64
	closed    atomic.Int64
	hook      func(op string) // called before every operation
}

func (t *memTarget) Name() string { return "mem" }
func (t *memTarget) Close() error { return nil }
func (t *memTarget) NewClient(context.Context) (Client, error) {
	t.opened.Add(1)
	return &memClient{t: t}, nil
}

type memClient struct {
	t       *memTarget
	updates int
}

func (c *memClient) Read(ctx context.Context, key string) ([]byte, error) {
	if c.t.hook != nil {
		c.t.hook("read")
	}
	s := c.t.store
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logging {
		s.log = append(s.log, "r "+key)
	}
	v, ok := s.data[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return v, nil
}

func (c *memClient) Update(ctx context.Context, key string, value []byte) error {
	if c.t.hook != nil {
		c.t.hook("update")
	}
	s := c.t.store
	s.updates.Add(1)
	c.updates++
	if c.t.failEvery > 0 && c.updates%c.t.failEvery == 0 {
		return errors.New("injected failure")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logging {
		s.log = append(s.log, "u "+key)
	}
	s.data[key] = bytes.Clone(value)
	return nil
}

func (c *memClient) Close() error {
	c.t.closed.Add(1)
	return nil
}

func opsParams(w Workload, ops int64) Params {
	p := DefaultParams()
	p.Workload, p.Distribution = w, ""
	p.Records, p.ValueSize, p.Clients = 500, 32, 8
	p.Duration, p.Operations = 0, ops
	return p
}

func sumOps(r *Report) (count, errs int64) {
	for _, o := range r.Ops {
		count += o.Count
		errs += o.Errors
	}
	return count, errs
}

// storeSawAll checks that the store saw every operation of a run of w
// (count operations done): reads of reads and rmw, writes of the load,
// updates, inserts and rmw; and that the observed mix is near w's.
func storeSawAll(t *testing.T, s *memStore, p Params, w Workload, rep *Report, count int64) {
	t.Helper()
	by := map[string]int64{}
	for _, o := range rep.Ops {
		by[o.Op] = o.Count
	}
	if got, want := s.reads.Load(), by["read"]+by["rmw"]; got != want {
		t.Errorf("store reads %d, want %d", got, want)
	}
	if got, want := s.updates.Load(), p.Records+by["update"]+by["insert"]+by["rmw"]; got != want {
		t.Errorf("store writes %d, want %d", got, want)
	}
	if got, want := int64(len(s.data)), p.Records+by["insert"]; got != want {
		t.Errorf("store holds %d keys, want %d", got, want)
	}
	if f := float64(by["read"]) / float64(count); math.Abs(f-w.Read) > 0.02 {
		t.Errorf("read fraction %.3f, want %.2f", f, w.Read)
	}
}

func TestRunCountsAddUp(t *testing.T) {
	for _, w := range Workloads {
		t.Run(w.Name, func(t *testing.T) {
			tgt := &memTarget{store: newMemStore()}
			p := opsParams(w, 20_000)
			var progress []Progress
			rep, err := Run(context.Background(), tgt, p, func(pr Progress) { progress = append(progress, pr) })
			if err != nil {
				t.Fatal(err)
			}
			if tgt.opened.Load() != int64(p.Clients) || tgt.closed.Load() != int64(p.Clients) {
				t.Fatalf("opened %d and closed %d clients, want %d", tgt.opened.Load(), tgt.closed.Load(), p.Clients)
			}
			if rep.Load == nil || rep.Load.Count != p.Records || rep.Load.Errors != 0 {
				t.Fatalf("load: %+v", rep.Load)
			}
			count, errs := sumOps(rep)
			if count+errs != p.Operations || errs != 0 || rep.Total.Count != count {
				t.Fatalf("ops: %d ok + %d errors, total %d; want %d", count, errs, rep.Total.Count, p.Operations)
			}
			if int64(rep.Histograms["total"].Count()) != count {
				t.Fatal("total histogram count differs")
			}
			for _, o := range rep.Ops {
				if o.NotFound != 0 {
					t.Errorf("%s: %d not found", o.Op, o.NotFound)
				}
			}
			storeSawAll(t, tgt.store, p, w, rep, count)
			// A final progress report ends each phase, with the phase's total.
			var finals []Progress
			for _, pr := range progress {
				if pr.Final {
					finals = append(finals, pr)
				}
			}
			if len(finals) != 2 || finals[0].Phase != PhaseLoad || finals[0].Ops != p.Records ||
				finals[1].Phase != PhaseRun || finals[1].Ops != p.Operations || progress[len(progress)-1] != finals[1] {
				t.Errorf("final progress reports %+v", finals)
			}
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	tgt := &memTarget{store: newMemStore(), failEvery: 10}
	p := opsParams(WorkloadA, 10_000)
	rep, err := Run(context.Background(), tgt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Errors == 0 || rep.Load.Count+rep.Load.Errors != p.Records || !strings.Contains(rep.Load.FirstError, "injected failure") {
		t.Fatalf("load: %+v", rep.Load)
	}
	count, errs := sumOps(rep)
	if count+errs != p.Operations {
		t.Fatalf("%d ok + %d errors, want %d operations", count, errs, p.Operations)
	}
	up := rep.Op("update")
	if up == nil || up.Errors == 0 || !strings.Contains(up.FirstError, "injected failure") {
		t.Fatalf("update: %+v", up)
	}
	if rd := rep.Op("read"); rd.Errors != 0 {
		t.Fatalf("read errors: %+v", rd)
	}
	// Records whose load failed are read as missing, not as errors.
	if rep.Op("read").NotFound == 0 || rep.Total.Errors != errs {
		t.Fatalf("read %+v, total %+v", rep.Op("read"), rep.Total)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"not found", "first update error: injected failure", "first load insert error"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, buf.String())
		}
	}
}

func TestRunAllFailing(t *testing.T) {
	tgt := &memTarget{store: newMemStore(), failEvery: 1}
	p := opsParams(WorkloadA, 100)
	rep, err := Run(context.Background(), tgt, p, nil)
	if err == nil || !strings.Contains(err.Error(), "every insert of the load phase failed") || rep == nil {
		t.Fatalf("got %v", err)
	}
	p.NoLoad, p.Workload = true, Workload{Name: "W", Update: 1}
	if _, err := Run(context.Background(), tgt, p, nil); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("got %v", err)
	}
}

func TestRunWithoutLoadReadsNothing(t *testing.T) {
	tgt := &memTarget{store: newMemStore()}
	p := opsParams(WorkloadC, 1000)
	p.NoLoad = true
	rep, err := Run(context.Background(), tgt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd := rep.Op("read")
	if rep.Load != nil || rd.Count != 1000 || rd.NotFound != 1000 || rd.Errors != 0 || len(rep.Ops) != 1 {
		t.Fatalf("load %+v, ops %+v", rep.Load, rep.Ops)
	}
}

func TestRunRefusesBadParamsBeforeConnecting(t *testing.T) {
	tgt := &memTarget{store: newMemStore()}
	p := opsParams(WorkloadA, 100)
	p.Clients = 0
	if _, err := Run(context.Background(), tgt, p, nil); err == nil || !strings.Contains(err.Error(), "clients") {
		t.Fatalf("got %v", err)
	}
	if tgt.opened.Load() != 0 {
		t.Fatal("opened clients despite bad parameters")
	}
	if _, err := Run(context.Background(), nil, opsParams(WorkloadA, 1), nil); err == nil {
		t.Fatal("nil target accepted")
	}
}

func TestRunIsDeterministicWithOneClient(t *testing.T) {
	run := func(seed uint64) []string {
		tgt := &memTarget{store: newMemStore()}
		tgt.store.logging = true
		p := opsParams(WorkloadD, 2000)
		p.Clients, p.Seed = 1, seed
		if _, err := Run(context.Background(), tgt, p, nil); err != nil {
			t.Fatal(err)
		}
		return tgt.store.log
	}
	a, b, c := run(5), run(5), run(6)
	if strings.Join(a, ";") != strings.Join(b, ";") {
		t.Fatal("same seed, different operations")
	}
	if strings.Join(a, ";") == strings.Join(c, ";") {
		t.Fatal("different seeds, same operations")
	}
}

func TestRunForADuration(t *testing.T) {
	tgt := &memTarget{store: newMemStore()}
	p := opsParams(WorkloadB, 0)
	p.Duration, p.ProgressInterval = 50*time.Millisecond, 10*time.Millisecond
	var mu sync.Mutex
	var last Progress
	rep, err := Run(context.Background(), tgt, p, func(pr Progress) { mu.Lock(); last = pr; mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	count, errs := sumOps(rep)
	if count == 0 || errs != 0 || rep.ElapsedS <= 0 || rep.Total.Throughput <= 0 {
		t.Fatalf("report %+v", rep)
	}
	if !last.Final || last.Ops != count {
		t.Fatalf("last progress %+v, want final with %d ops", last, count)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	tgt := &memTarget{store: newMemStore(), hook: func(string) {
		if n.Add(1) == 3000 {
			cancel()
		}
	}}
	p := opsParams(WorkloadA, 0)
	p.Duration = time.Hour
	rep, err := Run(ctx, tgt, p, nil)
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("got %v, %v", rep, err)
	}
	if count, errs := sumOps(rep); errs != 0 || count == 0 {
		t.Fatalf("after cancel: %d ok, %d errors", count, errs)
	}
}

func TestReportJSONAndTable(t *testing.T) {
	tgt := &memTarget{store: newMemStore()}
	rep, err := Run(context.Background(), tgt, opsParams(WorkloadF, 3000), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.SetFloor("rmw", 81*time.Millisecond) || rep.SetFloor("scan", time.Second) {
		t.Fatal("SetFloor found the wrong operations")
	}
	rmw := rep.Op("rmw")
	if rmw.FloorMS != 81 || math.Abs(rmw.P50OverFloor-rmw.P50MS/81) > 0.001 {
		t.Fatalf("rmw floor %+v", rmw)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(js.Bytes(), &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"target", "workload", "distribution", "records", "value_size", "clients", "operations", "elapsed_s", "load", "ops", "total"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, js.String())
		}
	}
	ops := generic["ops"].([]any)
	if len(ops) != 2 {
		t.Fatalf("ops %v", ops)
	}
	rmwJSON := ops[1].(map[string]any)
	for _, k := range []string{"op", "count", "errors", "not_found", "throughput_ops", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "floor_ms", "p50_over_floor"} {
		if _, ok := rmwJSON[k]; !ok {
			t.Errorf("rmw JSON lacks %q", k)
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Total.Count != rep.Total.Count || back.Ops[1].FloorMS != 81 {
		t.Fatalf("round trip: %v %+v", err, back.Total)
	}
	var tab bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"target:    mem", "read-modify-write", "p99.9 ms", "floor ms", "p50/floor", "rmw", "total", "load:      500 inserts"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tab.String())
		}
	}
	if strings.Contains(tab.String(), "not found") {
		t.Errorf("table has a not-found column without misses:\n%s", tab.String())
	}
	t.Logf("\n%s", tab.String())
}

func TestAckCounter(t *testing.T) {
	var a ackCounter
	a.init(10)
	for _, i := range []int64{12, 11, 14} {
		a.ack(i)
	}
	if a.load() != 10 {
		t.Fatalf("limit %d before 10 is acknowledged", a.load())
	}
	a.ack(10)
	if a.load() != 13 {
		t.Fatalf("limit %d, want 13", a.load())
	}
	a.ack(13)
	if a.load() != 15 {
		t.Fatalf("limit %d, want 15", a.load())
	}
}

// memPipeTarget makes fake clients that pipeline: a batch runs its
// operations in order on the memStore, and the largest batch is recorded.
type memPipeTarget struct {
	memTarget
	mu       sync.Mutex
	maxBatch int
	batches  int
}

func (t *memPipeTarget) NewClient(context.Context) (Client, error) {
	t.opened.Add(1)
	return &memPipeClient{memClient: memClient{t: &t.memTarget}, p: t}, nil
}

type memPipeClient struct {
	memClient
	p *memPipeTarget
}

func (c *memPipeClient) Pipeline(ctx context.Context, ops []BatchOp) error {
	c.p.mu.Lock()
	c.p.batches++
	c.p.maxBatch = max(c.p.maxBatch, len(ops))
	c.p.mu.Unlock()
	var first error
	for i := range ops {
		if ops[i].Write {
			ops[i].Err = c.Update(ctx, ops[i].Key, ops[i].Value)
		} else {
			_, ops[i].Err = c.Read(ctx, ops[i].Key)
		}
		if first == nil && ops[i].Err != nil && !errors.Is(ops[i].Err, ErrNotFound) {
			first = ops[i].Err
		}
	}
	return first
}

func TestRunPipelinedCountsAddUp(t *testing.T) {
	for _, w := range Workloads {
		t.Run(w.Name, func(t *testing.T) {
			tgt := &memPipeTarget{memTarget: memTarget{store: newMemStore()}}
			p := opsParams(w, 20_003)
			p.Pipeline = 16
			rep, err := Run(context.Background(), tgt, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Load.Count != p.Records || rep.Load.Errors != 0 {
				t.Fatalf("load: %+v", rep.Load)
			}
			count, errs := sumOps(rep)
			if count+errs != p.Operations || errs != 0 || rep.Total.Count != count || rep.Total.NotFound != 0 {
				t.Fatalf("ops: %d ok + %d errors, total %+v; want %d", count, errs, rep.Total, p.Operations)
			}
			storeSawAll(t, tgt.store, p, w, rep, count)
			// Batches of 16 operations: 16 commands, up to 32 with rmw.
			limit := 16
			if w.RMW > 0 {
				limit = 32
			}
			if tgt.maxBatch < 16 || tgt.maxBatch > limit {
				t.Errorf("largest batch %d commands, want 16 to %d", tgt.maxBatch, limit)
			}
			// Each client's last batch may be short: at most one short
			// batch per client and phase.
			if least := (p.Records+p.Operations)/16 + 1; int64(tgt.batches) < least || int64(tgt.batches) > least+2*int64(p.Clients) {
				t.Errorf("%d batches for %d records and %d operations", tgt.batches, p.Records, p.Operations)
			}
		})
	}
}

func TestRunPipelinedBooksEveryOperation(t *testing.T) {
	// Every 10th write of a client fails: the other operations of its
	// batch still count as done.
	tgt := &memPipeTarget{memTarget: memTarget{store: newMemStore(), failEvery: 10}}
	p := opsParams(WorkloadA, 10_000)
	p.Pipeline = 8
	rep, err := Run(context.Background(), tgt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Errors == 0 || rep.Load.Count+rep.Load.Errors != p.Records {
		t.Fatalf("load: %+v", rep.Load)
	}
	up, rd := rep.Op("update"), rep.Op("read")
	if up.Errors == 0 || up.Errors > (up.Count+up.Errors)/10+int64(p.Clients) || !strings.Contains(up.FirstError, "injected failure") {
		t.Fatalf("update: %+v", up)
	}
	if rd.Errors != 0 || rd.NotFound == 0 || rep.Total.Count+rep.Total.Errors != p.Operations {
		t.Fatalf("read %+v, total %+v", rd, rep.Total)
	}
}

func TestRunPipelineNeedsAPipeliner(t *testing.T) {
	tgt := &memTarget{store: newMemStore()}
	p := opsParams(WorkloadA, 100)
	p.Pipeline = 4
	_, err := Run(context.Background(), tgt, p, nil)
	if !errors.Is(err, ErrNoPipeline) || !strings.Contains(err.Error(), "pipeline of 4") {
		t.Fatalf("error %v, want ErrNoPipeline", err)
	}
	if tgt.store.updates.Load() != 0 {
		t.Fatal("load sent before the pipeline was refused")
	}
	if tgt.opened.Load() != tgt.closed.Load() {
		t.Fatalf("opened %d clients, closed %d", tgt.opened.Load(), tgt.closed.Load())
	}
	p.Pipeline = 1 // one at a time: fine
	if _, err := Run(context.Background(), tgt, p, nil); err != nil {
		t.Fatal(err)
	}
}
