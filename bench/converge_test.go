package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegions is a toy replicated store speaking a few RESP commands: SET
// is last-writer-wins across every region at once, INCR adds to the
// counter of every region except those in lose (a lost increment), GET
// reads a region's copy, unless the region is frozen (it then returns what
// it had when frozen). MERIDIAN.LAST answers level.
type fakeRegions struct {
	mu     sync.Mutex
	data   map[string]map[string]string // region -> key -> value
	lose   map[string]bool
	frozen map[string]bool
	level  string
}

func newFakeRegions(regions ...string) *fakeRegions {
	f := &fakeRegions{data: map[string]map[string]string{}, lose: map[string]bool{}, frozen: map[string]bool{}, level: "bounded(5ms)"}
	for _, r := range regions {
		f.data[r] = map[string]string{}
	}
	return f
}

type fakeConn struct {
	f      *fakeRegions
	region string
}

func (f *fakeRegions) conn(_ context.Context, region string) (Conn, error) {
	return &fakeConn{f: f, region: region}, nil
}

func (c *fakeConn) Do(_ context.Context, args ...any) (any, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	switch args[0] {
	case "SET":
		for r, d := range c.f.data {
			if !c.f.frozen[r] {
				d[args[1].(string)] = args[2].(string)
			}
		}
		return "OK", nil
	case "INCR":
		var mine int64
		for r, d := range c.f.data {
			if c.f.frozen[r] || (c.f.lose[c.region] && r != c.region) {
				continue
			}
			n, _ := strconv.ParseInt(d[args[1].(string)], 10, 64)
			d[args[1].(string)] = strconv.FormatInt(n+1, 10)
			if r == c.region {
				mine = n + 1
			}
		}
		return mine, nil
	case "GET":
		v, ok := c.f.data[c.region][args[1].(string)]
		if !ok {
			return nil, fmt.Errorf("%w: %v", ErrNotFound, args[1])
		}
		return v, nil
	case "MERIDIAN.LAST":
		return []any{"region", c.region, "node", int64(1), "consistency", c.f.level, "index", "7", "forwarded", int64(0), "staleness_ms", int64(2), "session", "x"}, nil
	}
	return nil, fmt.Errorf("unknown command %v", args[0])
}

func (c *fakeConn) Close() error { return nil }

func convergeTarget(f *fakeRegions, regions ...string) ConvergeTarget {
	return ConvergeTarget{Label: "fake", Regions: regions, NewWriter: f.conn, NewReader: f.conn}
}

func TestRunConverge(t *testing.T) {
	regions := []string{"a", "b", "c"}
	f := newFakeRegions(regions...)
	var finals int
	rep, err := RunConverge(context.Background(), convergeTarget(f, regions...), ConvergeParams{Rounds: 5, WarmupRounds: 2, Poll: time.Millisecond, Timeout: time.Second},
		func(p Progress) {
			if p.Final {
				finals++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Converge
	// 2 warm-up rounds, out of the figures but not of the counter.
	if c == nil || c.Rounds != 5 || c.WarmupRounds != 2 || c.Converged != 5 || c.Timeouts != 0 || c.Increments != 21 || !c.CounterOK || finals != 1 {
		t.Fatalf("converge %+v", c)
	}
	var wins int64
	for _, r := range regions {
		if c.FinalCounter[r] != 21 {
			t.Errorf("final counter of %s: %d", r, c.FinalCounter[r])
		}
		wins += c.Wins[r]
	}
	if wins != 5 {
		t.Errorf("wins %v", c.Wins)
	}
	if rep.Workload != ConvergeWorkloadName || rep.Op("update").Count != 15 || rep.Op(OpIncr).Count != 15 || rep.Total.Count != 30 || rep.Clients != 3 {
		t.Fatalf("report %+v", rep)
	}
	c.SetFloor(100*time.Millisecond, 2*time.Millisecond, "a", "c")
	if c.FloorMS != 102 || c.OneWayMS != 100 || c.FloorFrom != "a" || c.P99MinusFloorMS != round(c.P99MS-102, 4) {
		t.Fatalf("floor %+v", c)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"convergence", "p99-floor ms", "one-way a -> c 100 ms + fsync 2.00 ms = 102 ms", "21 increments", ": OK", "run of 5 rounds", "warm-up:   2 round(s)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	cj, _ := back["converge"].(map[string]any)
	for _, k := range []string{"rounds", "warmup_rounds", "converged", "timeouts", "p50_ms", "p99_ms", "max_ms", "floor_ms", "p99_over_floor", "p99_minus_floor_ms", "increments", "final_counter", "counter_ok", "wins"} {
		if _, ok := cj[k]; !ok {
			t.Errorf("JSON converge lacks %s: %v", k, cj)
		}
	}
}

// A region that does not pass its increments on: rounds time out and the
// final counter check fails loudly.
func TestRunConvergeLostIncrement(t *testing.T) {
	regions := []string{"a", "b"}
	f := newFakeRegions(regions...)
	f.lose["b"] = true
	rep, err := RunConverge(context.Background(), convergeTarget(f, regions...), ConvergeParams{Rounds: 2, Timeout: 30 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "does not equal the 4 increments") || !strings.Contains(err.Error(), "a 2") {
		t.Fatalf("error %v", err)
	}
	if c := rep.Converge; c.CounterOK || c.Timeouts != 2 || c.Converged != 0 || c.FinalCounter["b"] != 4 || !strings.Contains(c.FirstError, "did not converge") {
		t.Fatalf("converge %+v", c)
	}
}

func TestConvergeParamsValidate(t *testing.T) {
	for _, c := range []struct {
		p    ConvergeParams
		want string
	}{
		{ConvergeParams{}, "both are zero"},
		{ConvergeParams{Rounds: 3, Duration: time.Second}, "not both"},
		{ConvergeParams{Rounds: -1}, "negative round count"},
		{ConvergeParams{Duration: time.Microsecond}, "shorter than a millisecond"},
		{ConvergeParams{Rounds: 1, Timeout: -time.Second}, "negative convergence timeout"},
		{ConvergeParams{Rounds: 1, WarmupRounds: -1}, "negative warm-up"},
	} {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
	if _, err := RunConverge(context.Background(), ConvergeTarget{Regions: []string{"a"}, NewWriter: newFakeRegions("a").conn, NewReader: newFakeRegions("a").conn},
		ConvergeParams{Rounds: 1}, nil); err == nil || !strings.Contains(err.Error(), "two regions or more") {
		t.Fatalf("one region: %v", err)
	}
}

func TestConvergeFloor(t *testing.T) {
	rtt := RTTOf(func(a, b string) time.Duration {
		if a > b {
			a, b = b, a
		}
		return map[string]time.Duration{"a|b": 80 * time.Millisecond, "a|c": 200 * time.Millisecond, "b|c": 240 * time.Millisecond}[a+"|"+b]
	})
	d, from, to, err := ConvergeFloor(rtt, []string{"a", "b", "c"})
	if err != nil || d != 120*time.Millisecond || from != "b" || to != "c" {
		t.Fatalf("%v %s %s %v", d, from, to, err)
	}
	if _, _, _, err := ConvergeFloor(rtt, []string{"a"}); err == nil {
		t.Fatal("one region has a convergence floor")
	}
}

func TestParseLast(t *testing.T) {
	want := LastAnswer{Region: "eu-west", Node: 2, Consistency: "bounded(1s)", Forwarded: true, StalenessMS: 12}
	for _, v := range []any{
		[]any{"region", "eu-west", "node", int64(2), "consistency", "bounded(1s)", "index", "9", "forwarded", int64(1), "staleness_ms", int64(12), "session", "t"},
		map[any]any{"region": "eu-west", "node": int64(2), "consistency": "bounded(1s)", "forwarded": int64(1), "staleness_ms": int64(12)},
		map[string]any{"region": "eu-west", "node": int64(2), "consistency": "bounded(1s)", "forwarded": int64(1), "staleness_ms": "12"},
	} {
		got, err := parseLast(v)
		if err != nil || got != want {
			t.Errorf("%v: %+v %v", v, got, err)
		}
	}
	for _, v := range []any{"OK", []any{"region"}, []any{"region", "x"}, map[string]any{"consistency": "strong", "staleness_ms": "soon"}} {
		if _, err := parseLast(v); err == nil {
			t.Errorf("%v parsed", v)
		}
	}
}

func TestAckLog(t *testing.T) {
	var l ackLog
	t0 := time.Now()
	if l.before(t0) != 0 {
		t.Fatal("an empty log has values")
	}
	l.add(1, t0)
	l.add(3, t0.Add(10*time.Millisecond)) // 2 failed: not acknowledged
	l.add(4, t0.Add(20*time.Millisecond))
	for _, c := range []struct {
		at   time.Duration
		want int64
	}{{0, 0}, {time.Nanosecond, 1}, {10 * time.Millisecond, 1}, {15 * time.Millisecond, 3}, {time.Hour, 4}} {
		if got := l.before(t0.Add(c.at)); got != c.want {
			t.Errorf("before +%v: %d, want %d", c.at, got, c.want)
		}
	}
}

func stalenessTarget(f *fakeRegions, regions ...string) StalenessTarget {
	return StalenessTarget{Label: "fake", Home: regions[0], Regions: regions,
		NewWriter: func(ctx context.Context) (Conn, error) { return f.conn(ctx, regions[0]) }, NewReader: f.conn}
}

func TestRunStaleness(t *testing.T) {
	regions := []string{"a", "b"}
	f := newFakeRegions(regions...)
	rep, err := RunStaleness(context.Background(), stalenessTarget(f, regions...),
		StalenessParams{Staleness: 5 * time.Millisecond, Duration: 150 * time.Millisecond, Readers: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Staleness) != 2 || rep.Clients != 5 || rep.Op("update").Count == 0 {
		t.Fatalf("report %+v", rep)
	}
	var reads int64
	for _, s := range rep.Staleness {
		if s.Reads == 0 || s.Local != s.Reads || s.LocalShare != 1 || s.Violations != 0 || s.Checked == 0 || s.BoundMS != 5 ||
			s.StalenessP50MS < 1.9 || s.StalenessP50MS > 2.1 || s.OverBound != 0 {
			t.Errorf("%+v", s)
		}
		reads += s.Reads
	}
	if reads != rep.Op("read").Count {
		t.Errorf("%d reads by region, %d in total", reads, rep.Op("read").Count)
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil || !strings.Contains(b.String(), "bounded reads") || !strings.Contains(b.String(), "violations") {
		t.Fatalf("%v\n%s", err, b.String())
	}

	// A region stuck on an old value, still claiming to be fresh: its
	// reads are violations, and the run fails.
	f = newFakeRegions(regions...)
	f.level = "strong"
	go func() {
		time.Sleep(20 * time.Millisecond)
		f.mu.Lock()
		f.frozen["b"] = true
		f.mu.Unlock()
	}()
	rep, err = RunStaleness(context.Background(), stalenessTarget(f, regions...),
		StalenessParams{Staleness: 5 * time.Millisecond, Duration: 150 * time.Millisecond}, nil)
	if err == nil || !strings.Contains(err.Error(), "older than one acknowledged more than 5ms") {
		t.Fatalf("a frozen region: %v", err)
	}
	if a, b := rep.Staleness[0], rep.Staleness[1]; a.Violations != 0 || b.Violations == 0 || b.Strong != b.Reads || b.Local != 0 || !strings.Contains(b.FirstError, "returned") {
		t.Fatalf("a %+v\nb %+v", a, b)
	}
}

func TestStalenessParamsValidate(t *testing.T) {
	for _, c := range []struct {
		p    StalenessParams
		want string
	}{
		{StalenessParams{Duration: time.Second}, "must be positive"},
		{StalenessParams{Staleness: -time.Second, Duration: time.Second}, "must be positive"},
		{StalenessParams{Staleness: time.Microsecond, Duration: time.Second}, "shorter than a millisecond"},
		{StalenessParams{Staleness: 48 * time.Hour, Duration: time.Second}, "longer than a day"},
		{StalenessParams{Staleness: time.Second}, "positive duration"},
		{StalenessParams{Staleness: time.Second, Duration: time.Second, Readers: -2}, "at least 1"},
	} {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
	if err := (StalenessParams{Staleness: time.Second, Duration: time.Second}).Validate(); err != nil {
		t.Fatal(err)
	}
}
