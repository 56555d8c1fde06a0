package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// delayedStore makes a write visible in each region a fixed delay after it
// was made (a region with a negative delay never sees anything).
type delayedStore struct {
	mu     sync.Mutex
	data   map[string]delayedValue
	delays map[string]time.Duration
	failW  bool
}

type delayedValue struct {
	v  []byte
	at time.Time
}

type delayedWriter struct{ s *delayedStore }

func (w *delayedWriter) Read(context.Context, string) ([]byte, error) {
	return nil, errors.New("writers do not read")
}

func (w *delayedWriter) Update(_ context.Context, key string, value []byte) error {
	if w.s.failW {
		return errors.New("injected write failure")
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.data[key] = delayedValue{v: bytes.Clone(value), at: time.Now()}
	return nil
}

func (w *delayedWriter) Close() error { return nil }

type delayedReader struct {
	s      *delayedStore
	region string
}

func (r *delayedReader) Read(_ context.Context, key string) ([]byte, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	d := r.s.delays[r.region]
	dv, ok := r.s.data[key]
	if !ok || d < 0 || time.Since(dv.at) < d {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return dv.v, nil
}

func (r *delayedReader) Update(context.Context, string, []byte) error {
	return errors.New("readers do not write")
}

func (r *delayedReader) Close() error { return nil }

func delayedTarget(s *delayedStore, regions ...string) LagTarget {
	return LagTarget{
		Label: "delayed", From: "a", Regions: regions,
		NewWriter: func(context.Context) (Client, error) { return &delayedWriter{s: s}, nil },
		NewReader: func(_ context.Context, region string) (Client, error) {
			return &delayedReader{s: s, region: region}, nil
		},
	}
}

func TestRunLagMeasuresEveryRegion(t *testing.T) {
	s := &delayedStore{data: map[string]delayedValue{}, delays: map[string]time.Duration{"b": 5 * time.Millisecond, "c": 20 * time.Millisecond}}
	var progress []Progress
	rep, err := RunLag(context.Background(), delayedTarget(s, "b", "c"),
		LagParams{Clients: 3, Operations: 30, ValueSize: 40}, func(p Progress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Workload != LagWorkloadName || rep.Total.Count != 30 || rep.Total.Errors != 0 || len(rep.Ops) != 1 || rep.Ops[0].Op != "update" {
		t.Fatalf("writes: %+v", rep)
	}
	if len(rep.Lag) != 2 {
		t.Fatalf("lag %+v", rep.Lag)
	}
	for _, l := range rep.Lag {
		d := s.delays[l.Region]
		// The delay is a lower bound of what can be observed (not a timing
		// assertion: the fake cannot show a value earlier).
		if l.From != "a" || l.Count != 30 || l.Timeouts != 0 || !lagAtLeast(l, d) || l.P50MS > l.MaxMS {
			t.Errorf("%s: %+v", l.Region, l)
		}
		if int64(rep.Histograms["lag "+l.Region].Count()) != 30 {
			t.Errorf("%s: histogram", l.Region)
		}
	}
	if len(progress) == 0 || !progress[len(progress)-1].Final || progress[len(progress)-1].Ops != 30 || progress[len(progress)-1].Phase != PhaseLag {
		t.Fatalf("progress %+v", progress)
	}
	if !rep.SetLagFloor("c", 10*time.Millisecond) || rep.SetLagFloor("a", time.Millisecond) {
		t.Fatal("SetLagFloor found the wrong regions")
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Lag) != 2 || back.Lag[1].FloorMS != 10 || back.Lag[1].P50OverFloor <= 0 {
		t.Fatalf("JSON round trip: %v %+v", err, back.Lag)
	}
	var tab bytes.Buffer
	if err := rep.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"workload:  lag", "a -> b", "a -> c", "one-way floor ms", "after ack p50", "keys:      1000 records"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tab.String())
		}
	}
	if strings.Contains(tab.String(), "seed") {
		t.Errorf("a lag table shows a seed:\n%s", tab.String())
	}
}

// lagAtLeast reports whether the lag's figures are at least d.
func lagAtLeast(l LagReport, d time.Duration) bool {
	ms := float64(d) / 1e6 * 0.99 // the histogram's relative error
	return l.P50MS >= ms && l.MaxMS >= ms
}

func TestRunLagTimeoutsAndFailures(t *testing.T) {
	s := &delayedStore{data: map[string]delayedValue{}, delays: map[string]time.Duration{"b": 0, "never": -1}}
	rep, err := RunLag(context.Background(), delayedTarget(s, "b", "never"), LagParams{Clients: 2, Operations: 4, Timeout: 30 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lag[0].Count != 4 || rep.Lag[0].Timeouts != 0 || rep.Lag[1].Count != 0 || rep.Lag[1].Timeouts != 4 {
		t.Fatalf("lag %+v", rep.Lag)
	}
	// Nothing ever visible: an error.
	if _, err := RunLag(context.Background(), delayedTarget(s, "never"), LagParams{Clients: 1, Operations: 2, Timeout: 20 * time.Millisecond}, nil); err == nil || !strings.Contains(err.Error(), "no write became visible") {
		t.Fatalf("invisible writes: %v", err)
	}
	// Every write failing: an error quoting the failure.
	s.failW = true
	if _, err := RunLag(context.Background(), delayedTarget(s, "b"), LagParams{Clients: 2, Operations: 4}, nil); err == nil || !strings.Contains(err.Error(), "injected write failure") {
		t.Fatalf("failing writes: %v", err)
	}
}

func TestRunLagForADurationAndCancel(t *testing.T) {
	s := &delayedStore{data: map[string]delayedValue{}, delays: map[string]time.Duration{"b": time.Millisecond}}
	rep, err := RunLag(context.Background(), delayedTarget(s, "b"), LagParams{Clients: 2, Duration: 50 * time.Millisecond}, nil)
	if err != nil || rep.Total.Count == 0 || rep.Lag[0].Count != rep.Total.Count {
		t.Fatalf("duration run: %v %+v", err, rep)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	s.delays["b"] = -1
	rep, err = RunLag(ctx, delayedTarget(s, "b"), LagParams{Clients: 1, Duration: time.Hour}, nil)
	if !errors.Is(err, context.Canceled) || rep == nil || rep.Lag[0].Timeouts != 0 {
		t.Fatalf("cancelled: %v %+v", err, rep)
	}
}

func TestLagParamsValidate(t *testing.T) {
	for _, c := range []struct {
		p    LagParams
		want string
	}{
		{LagParams{Clients: 0, Operations: 1}, "clients"},
		{LagParams{Clients: 1}, "both are zero"},
		{LagParams{Clients: 1, Operations: 1, Duration: time.Second}, "not both"},
		{LagParams{Clients: 1, Operations: 1, Timeout: -1}, "timeout"},
		{LagParams{Clients: 1, Operations: 1, ValueSize: MaxValueSize + 1}, "16 MiB"},
	} {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
	if _, err := RunLag(context.Background(), LagTarget{From: "a"}, LagParams{Clients: 1, Operations: 1}, nil); err == nil {
		t.Fatal("a target without clients was accepted")
	}
}
