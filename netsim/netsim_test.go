package netsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a channel in these tests.
const waitTimeout = 5 * time.Second

func mustNew(t *testing.T, cfg Config) *Network {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestWorldMatrix(t *testing.T) {
	m := WorldMatrix()
	want := []string{"ap-southeast", "eu-west", "sa-east", "us-east", "us-west"}
	if got := m.Regions(); !slices.Equal(got, want) {
		t.Fatalf("Regions() = %v, want %v", got, want)
	}
	for _, pair := range [][2]string{{"us-east", "eu-west"}, {"eu-west", "us-east"}} {
		rtt, ok := m.RTT(pair[0], pair[1])
		if !ok || rtt != 81*time.Millisecond {
			t.Fatalf("RTT(%s, %s) = %v, %v; want 81ms, true", pair[0], pair[1], rtt, ok)
		}
	}
	if rtt, ok := m.RTT("us-east", "us-east"); !ok || rtt != 0 {
		t.Fatalf("RTT to self = %v, %v", rtt, ok)
	}
	if _, ok := m.RTT("us-east", "mars"); ok {
		t.Fatal("RTT to an unknown region reported ok")
	}
	// Every call returns an independent copy.
	m["us-east"]["eu-west"] = time.Hour
	if rtt, _ := WorldMatrix().RTT("us-east", "eu-west"); rtt != 81*time.Millisecond {
		t.Fatalf("WorldMatrix shares state between calls: %v", rtt)
	}
}

func TestMatrixSymmetricLookup(t *testing.T) {
	m, err := ParseMatrix([]byte(`{"rtt_ms": {"a": {"b": 10.5}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if rtt, ok := m.RTT("b", "a"); !ok || rtt != 10500*time.Microsecond {
		t.Fatalf("RTT(b, a) = %v, %v", rtt, ok)
	}
	if got := m.Regions(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Regions() = %v", got)
	}
}

func TestParseMatrixErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ``},
		{"malformed", `{"rtt_ms": {"a": {"b": 1}`},
		{"not object", `[1, 2, 3]`},
		{"missing rtt", `{"regions": ["a"]}`},
		{"null rtt", `{"rtt_ms": null}`},
		{"rtt not object", `{"rtt_ms": [1]}`},
		{"row not object", `{"rtt_ms": {"a": 5}}`},
		{"null row", `{"rtt_ms": {"a": null}}`},
		{"value not number", `{"rtt_ms": {"a": {"b": "10"}}}`},
		{"null value", `{"rtt_ms": {"a": {"b": null}}}`},
		{"negative", `{"rtt_ms": {"a": {"b": -1}}}`},
		{"huge", `{"rtt_ms": {"a": {"b": 1e300}}}`},
		{"overflow", `{"rtt_ms": {"a": {"b": 1e999}}}`},
		{"self", `{"rtt_ms": {"a": {"a": 3}}}`},
		{"empty name", `{"rtt_ms": {"": {"b": 3}}}`},
		{"conflict", `{"rtt_ms": {"a": {"b": 3}, "b": {"a": 4}}}`},
		{"unlisted region", `{"regions": ["a"], "rtt_ms": {"a": {"b": 3}}}`},
		{"duplicate region", `{"regions": ["a", "a"], "rtt_ms": {}}`},
		{"regions not list", `{"regions": "a", "rtt_ms": {}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMatrix([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseMatrix(%s) = %v, want error", tc.in, m)
			}
			if !errors.Is(err, ErrInvalidMatrix) {
				t.Fatalf("error %v does not wrap ErrInvalidMatrix", err)
			}
		})
	}
}

func TestLoadMatrix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	if err := os.WriteFile(path, []byte(`{"regions":["x","y"],"rtt_ms":{"x":{"y":20}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMatrix(path)
	if err != nil {
		t.Fatal(err)
	}
	if rtt, ok := m.RTT("y", "x"); !ok || rtt != 20*time.Millisecond {
		t.Fatalf("RTT = %v, %v", rtt, ok)
	}
	if _, err := LoadMatrix(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("LoadMatrix of a missing file succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{IntraRegionRTT: -1},
		{Jitter: -1},
		{LossRate: -0.1},
		{LossRate: 1},
		{DuplicateRate: 1.5},
		{Matrix: Matrix{"a": {"b": -time.Millisecond}}},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", c, err)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	if err := (Config{Matrix: WorldMatrix(), LossRate: 0.5, DuplicateRate: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOneWay(t *testing.T) {
	n := mustNew(t, Config{Matrix: WorldMatrix(), IntraRegionRTT: 2 * time.Millisecond})
	n.AddNode(1, "us-east")
	n.AddNode(2, "eu-west")
	n.AddNode(3, "us-east")
	n.AddNode(4, "moon")
	for _, tc := range []struct {
		from, to uint64
		want     time.Duration
	}{
		{1, 2, 40500 * time.Microsecond},
		{2, 1, 40500 * time.Microsecond},
		{1, 3, time.Millisecond},
		{1, 4, time.Millisecond}, // region missing from the matrix
		{1, 1, 0},
		{1, 99, 0}, // unknown node
	} {
		if got := n.OneWay(tc.from, tc.to); got != tc.want {
			t.Errorf("OneWay(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	n.AddNode(2, "us-east") // moving a node changes its delay
	if got := n.OneWay(1, 2); got != time.Millisecond {
		t.Fatalf("after move: OneWay = %v", got)
	}
	if r, ok := n.Region(2); !ok || r != "us-east" {
		t.Fatalf("Region(2) = %q, %v", r, ok)
	}
	n.SetRTT("us-east", "moon", 500*time.Millisecond)
	if got := n.OneWay(4, 1); got != 250*time.Millisecond {
		t.Fatalf("after SetRTT: OneWay = %v", got)
	}
}

func TestDelay(t *testing.T) {
	n := mustNew(t, Config{Matrix: Matrix{"a": {"b": 80 * time.Millisecond}}})
	n.AddNode(1, "a")
	n.AddNode(2, "b")
	const slack = 30 * time.Millisecond
	for i := 0; i < 3; i++ {
		got := make(chan time.Duration, 1)
		start := time.Now()
		if !n.Send(1, 2, func() { got <- time.Since(start) }) {
			t.Fatal("Send dropped")
		}
		d := recv(t, got, "delivery")
		if d < 40*time.Millisecond || d >= 40*time.Millisecond+slack {
			t.Fatalf("delivered after %v, want [40ms, %v)", d, 40*time.Millisecond+slack)
		}

		start = time.Now()
		if err := n.Wait(context.Background(), 2, 1); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 40*time.Millisecond || d >= 40*time.Millisecond+slack {
			t.Fatalf("Wait took %v", d)
		}
	}
}

func TestFIFOUnderJitter(t *testing.T) {
	n := mustNew(t, Config{IntraRegionRTT: 4 * time.Millisecond, Jitter: 20 * time.Millisecond, Seed: 7})
	n.AddNode(1, "r")
	n.AddNode(2, "r")
	const count = 500
	got := make(chan int, count)
	for i := 0; i < count; i++ {
		if !n.Send(1, 2, func() { got <- i }) {
			t.Fatal("Send dropped")
		}
	}
	for want := 0; want < count; want++ {
		if i := recv(t, got, "delivery"); i != want {
			t.Fatalf("delivery %d carried message %d", want, i)
		}
	}
	// Two links are independent: a slow message on one does not hold back the
	// other.
	n.SetJitter(0)
	n.AddNode(3, "far")
	n.SetRTT("r", "far", 2*time.Second)
	slow := make(chan struct{}, 1)
	fast := make(chan struct{}, 1)
	n.Send(1, 3, func() { slow <- struct{}{} })
	n.Send(1, 2, func() { fast <- struct{}{} })
	recv(t, fast, "fast link")
	select {
	case <-slow:
		t.Fatal("slow link delivered before the fast one")
	default:
	}
}

func TestDeliverBlockingDelaysLink(t *testing.T) {
	n := mustNew(t, Config{})
	release := make(chan struct{})
	got := make(chan int, 2)
	n.Send(1, 2, func() { <-release; got <- 1 })
	n.Send(1, 2, func() { got <- 2 })
	n.Send(2, 1, func() { got <- 3 }) // another link keeps flowing
	if v := recv(t, got, "other link"); v != 3 {
		t.Fatalf("got %d first, want 3", v)
	}
	close(release)
	if a, b := recv(t, got, "first"), recv(t, got, "second"); a != 1 || b != 2 {
		t.Fatalf("order %d, %d", a, b)
	}
}

// partitionCase applies a partition to a network of nodes 1..6 (regions
// below) and lists the directed links that must be cut.
type partitionCase struct {
	name  string
	apply func(n *Network)
	cut   func(from, to uint64) bool
}

var partitionRegions = map[uint64]string{1: "us-east", 2: "us-east", 3: "eu-west", 4: "eu-west", 5: "ap-southeast", 6: "sa-east"}

func in(ids []uint64, id uint64) bool { return slices.Contains(ids, id) }

func across(a, b []uint64) func(from, to uint64) bool {
	return func(from, to uint64) bool {
		return (in(a, from) && in(b, to)) || (in(b, from) && in(a, to))
	}
}

var partitionCases = []partitionCase{
	{
		name:  "none",
		apply: func(*Network) {},
		cut:   func(uint64, uint64) bool { return false },
	},
	{
		name:  "block one direction",
		apply: func(n *Network) { n.BlockLink(1, 2) },
		cut:   func(from, to uint64) bool { return from == 1 && to == 2 },
	},
	{
		name:  "block then unblock",
		apply: func(n *Network) { n.BlockLink(1, 2); n.BlockLink(3, 4); n.UnblockLink(1, 2) },
		cut:   func(from, to uint64) bool { return from == 3 && to == 4 },
	},
	{
		name:  "isolate",
		apply: func(n *Network) { n.Isolate(3) },
		cut:   func(from, to uint64) bool { return from == 3 || to == 3 },
	},
	{
		name:  "cut region",
		apply: func(n *Network) { n.CutRegion("eu-west") },
		cut:   across([]uint64{3, 4}, []uint64{1, 2, 5, 6}),
	},
	{
		name:  "split majority minority",
		apply: func(n *Network) { n.Split([]uint64{1, 2, 3}, []uint64{4, 5}) },
		cut:   across([]uint64{1, 2, 3}, []uint64{4, 5}),
	},
	{
		name:  "bridge",
		apply: func(n *Network) { n.Bridge([]uint64{1, 2}, []uint64{4, 5}, 3) },
		cut:   across([]uint64{1, 2}, []uint64{4, 5}),
	},
	{
		name:  "ring of five",
		apply: func(n *Network) { n.Ring([]uint64{1, 2, 3, 4, 5}) },
		cut: func(from, to uint64) bool {
			neighbours := map[uint64][]uint64{1: {2, 5}, 2: {1, 3}, 3: {2, 4}, 4: {3, 5}, 5: {4, 1}}
			if from > 5 || to > 5 {
				return false
			}
			return !in(neighbours[from], to)
		},
	},
	{
		name:  "cuts add up",
		apply: func(n *Network) { n.Isolate(6); n.BlockLink(2, 1) },
		cut:   func(from, to uint64) bool { return from == 6 || to == 6 || (from == 2 && to == 1) },
	},
}

func TestPartitions(t *testing.T) {
	for _, tc := range partitionCases {
		t.Run(tc.name, func(t *testing.T) {
			// Small delays keep the test quick while still going through the
			// link goroutines.
			n := mustNew(t, Config{IntraRegionRTT: 2 * time.Millisecond, Jitter: time.Millisecond})
			n.SetRTT("us-east", "eu-west", 6*time.Millisecond)
			for id, r := range partitionRegions {
				n.AddNode(id, r)
			}
			tc.apply(n)
			checkPartition(t, n, tc.cut)
			n.Heal()
			checkPartition(t, n, func(uint64, uint64) bool { return false })
		})
	}
}

func checkPartition(t *testing.T, n *Network, cut func(from, to uint64) bool) {
	t.Helper()
	delivered := make(chan [2]uint64, 64)
	want := 0
	for from := uint64(1); from <= 6; from++ {
		for to := uint64(1); to <= 6; to++ {
			wantCut := from != to && cut(from, to)
			if got := n.Reachable(from, to); got == wantCut {
				t.Errorf("Reachable(%d, %d) = %v, want %v", from, to, got, !wantCut)
			}
			ok := n.Send(from, to, func() { delivered <- [2]uint64{from, to} })
			if ok == wantCut {
				t.Errorf("Send(%d, %d) = %v, want %v", from, to, ok, !wantCut)
			}
			if ok {
				want++
			}
		}
	}
	for i := 0; i < want; i++ {
		l := recv(t, delivered, "delivery")
		if cut(l[0], l[1]) && l[0] != l[1] {
			t.Errorf("delivered on cut link %d->%d", l[0], l[1])
		}
	}
}

func TestIsolateAppliesToLaterNodes(t *testing.T) {
	n := mustNew(t, Config{})
	n.AddNode(1, "a")
	n.Isolate(1)
	n.AddNode(2, "a")
	if n.Reachable(1, 2) || n.Reachable(2, 1) {
		t.Fatal("node added after Isolate can talk to the isolated node")
	}
}

func TestCutInFlight(t *testing.T) {
	n := mustNew(t, Config{Matrix: Matrix{"a": {"b": 100 * time.Millisecond}}})
	n.AddNode(1, "a")
	n.AddNode(2, "b")

	delivered := make(chan int, 2)
	dropped := make(chan int, 2)
	for i := range 2 {
		ok := n.SendNotify(1, 2, func() { delivered <- i }, func() { dropped <- i })
		if !ok {
			t.Fatal("Send dropped before the cut")
		}
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- n.Wait(context.Background(), 1, 2) }()
	// Cut right away; the messages are 50ms from delivery.
	n.BlockLink(1, 2)
	for want := range 2 {
		if i := recv(t, dropped, "drop notification"); i != want {
			t.Fatalf("dropped %d, want %d", i, want)
		}
	}
	select {
	case i := <-delivered:
		t.Fatalf("message %d delivered over a cut link", i)
	default:
	}
	if err := recv(t, waitErr, "Wait"); !errors.Is(err, ErrDropped) {
		t.Fatalf("Wait across a link cut in flight = %v, want ErrDropped", err)
	}
	if err := n.Wait(context.Background(), 1, 2); !errors.Is(err, ErrDropped) {
		t.Fatalf("Wait on a cut link = %v", err)
	}
	// The reverse direction is untouched.
	if err := n.Wait(context.Background(), 2, 1); err != nil {
		t.Fatal(err)
	}

	n.Heal()
	if !n.Send(1, 2, func() { delivered <- 9 }) {
		t.Fatal("Send after Heal dropped")
	}
	if i := recv(t, delivered, "delivery after Heal"); i != 9 {
		t.Fatalf("got %d", i)
	}
	st := n.Stats()
	if st.Sent != st.Delivered+st.Dropped || st.Dropped != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWaitContext(t *testing.T) {
	n := mustNew(t, Config{Matrix: Matrix{"a": {"b": 10 * time.Second}}})
	n.AddNode(1, "a")
	n.AddNode(2, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n.Wait(ctx, 1, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
}

func TestLossRate(t *testing.T) {
	const count, rate = 4000, 0.3
	n := mustNew(t, Config{LossRate: rate, Seed: 42})
	got := make(chan struct{}, count)
	accepted := 0
	for range count {
		if n.Send(1, 2, func() { got <- struct{}{} }) {
			accepted++
		}
	}
	lost := float64(count-accepted) / count
	if lost < rate-0.04 || lost > rate+0.04 {
		t.Fatalf("lost %.3f of messages, want about %.2f", lost, rate)
	}
	for range accepted {
		recv(t, got, "delivery")
	}
	st := n.Stats()
	if st.Sent != count || st.Delivered != uint64(accepted) || st.Dropped != uint64(count-accepted) {
		t.Fatalf("stats %+v, accepted %d", st, accepted)
	}

	// The same seed gives the same outcome.
	n2 := mustNew(t, Config{LossRate: rate, Seed: 42})
	again := 0
	for range count {
		if n2.Send(1, 2, func() {}) {
			again++
		}
	}
	if again != accepted {
		t.Fatalf("seeded run accepted %d, first run %d", again, accepted)
	}

	n.SetLossRate(0)
	for range 100 {
		if !n.Send(1, 2, func() {}) {
			t.Fatal("message lost with LossRate 0")
		}
	}
}

func TestDuplicateRate(t *testing.T) {
	const count = 1000
	n := mustNew(t, Config{DuplicateRate: 0.25, Seed: 3})
	got := make(chan int, 2*count)
	for i := range count {
		n.Send(1, 2, func() { got <- i })
	}
	dups := 0
	next := 0
	for next < count {
		i := recv(t, got, "delivery")
		switch i {
		case next:
			next++
		case next - 1:
			dups++ // the copy right after the original
		default:
			t.Fatalf("got message %d, expected %d or a copy of %d", i, next, next-1)
		}
	}
	// A copy of the last message may still be on its way.
	if n.Stats().Duplicated > uint64(dups) {
		recv(t, got, "last duplicate")
		dups++
	}
	if dups < 200 || dups > 300 {
		t.Fatalf("%d duplicates, want about 250", dups)
	}
}

func TestIdentity(t *testing.T) {
	n := Identity()
	n.AddNode(1, "us-east")
	n.AddNode(2, "ap-southeast")
	n.Isolate(1)
	n.SetLossRate(0.9)
	ran := false
	if !n.Send(1, 2, func() { ran = true }) || !ran {
		t.Fatal("identity Send did not deliver synchronously")
	}
	if !n.Reachable(1, 2) || n.OneWay(1, 2) != 0 {
		t.Fatal("identity network is not the identity")
	}
	if err := n.Wait(context.Background(), 1, 2); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if n.Send(1, 2, func() { t.Error("delivered after Close") }) {
		t.Fatal("Send after Close accepted")
	}
}

func TestCloseDropsInFlight(t *testing.T) {
	base := runtime.NumGoroutine()
	n, err := New(Config{Matrix: Matrix{"a": {"b": 10 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	n.AddNode(1, "a")
	n.AddNode(2, "b")
	var mu sync.Mutex
	var drops []int
	for i := range 10 {
		n.SendNotify(1, 2, func() { t.Error("delivered after Close") }, func() {
			mu.Lock()
			drops = append(drops, i)
			mu.Unlock()
		})
		n.SendNotify(2, 1, func() { t.Error("delivered after Close") }, nil)
	}
	n.Close()
	n.Close() // idempotent
	mu.Lock()
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(drops, want) {
		t.Fatalf("dropped %v, want %v", drops, want)
	}
	mu.Unlock()
	if n.Send(1, 2, func() {}) {
		t.Fatal("Send after Close accepted")
	}
	if err := n.Wait(context.Background(), 1, 2); !errors.Is(err, ErrDropped) {
		t.Fatalf("Wait after Close = %v", err)
	}
	if st := n.Stats(); st.Dropped != 22 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Close waited for the link goroutines. Goroutines of earlier tests may
	// still be on their way out, so allow them a moment.
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before New\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLinkGoroutineIdlesOut(t *testing.T) {
	n := mustNew(t, Config{})
	got := make(chan struct{}, 1)
	n.Send(1, 2, func() { got <- struct{}{} })
	recv(t, got, "delivery")
	deadline := time.Now().Add(waitTimeout)
	for {
		n.mu.Lock()
		running := n.links[linkKey{1, 2}].running
		n.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("link goroutine still running long after the link went idle")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.Send(1, 2, func() { got <- struct{}{} })
	recv(t, got, "delivery on a restarted link")
}

func FuzzParseMatrix(f *testing.F) {
	f.Add(worldRTTJSON)
	f.Add([]byte(`{"rtt_ms": {"a": {"b": 1}}}`))
	f.Add([]byte(`{"regions": ["a"], "rtt_ms": {"a": {}}}`))
	f.Add([]byte(`{"rtt_ms": {"a": {"b": -1}}}`))
	f.Add([]byte(`{"rtt_ms": {"a": null}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMatrix(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidMatrix) {
				t.Fatalf("error %v does not wrap ErrInvalidMatrix", err)
			}
			return
		}
		regions := m.Regions()
		if !slices.IsSorted(regions) {
			t.Fatalf("Regions() not sorted: %v", regions)
		}
		for _, a := range regions {
			for _, b := range regions {
				rtt, ok := m.RTT(a, b)
				back, okBack := m.RTT(b, a)
				if rtt < 0 || rtt != back || ok != okBack {
					t.Fatalf("RTT(%q,%q)=%v,%v but RTT(%q,%q)=%v,%v", a, b, rtt, ok, b, a, back, okBack)
				}
			}
		}
		if err := (Config{Matrix: m}).Validate(); err != nil {
			t.Fatalf("parsed matrix fails Validate: %v", err)
		}
	})
}

func ExampleNetwork() {
	n, _ := New(Config{Matrix: WorldMatrix()})
	defer n.Close()
	n.AddNode(1, "us-east")
	n.AddNode(2, "eu-west")
	fmt.Println(n.OneWay(1, 2))
	n.Isolate(2)
	fmt.Println(n.Reachable(1, 2))
	// Output:
	// 40.5ms
	// false
}
