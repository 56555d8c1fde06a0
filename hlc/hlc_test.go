package hlc_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

// manualWall is a wall clock under test control. It is safe for concurrent use.
type manualWall struct{ ms atomic.Int64 }

func newManualWall(ms int64) *manualWall {
	w := &manualWall{}
	w.ms.Store(ms)
	return w
}

func (w *manualWall) Read() int64      { return w.ms.Load() }
func (w *manualWall) Set(ms int64)     { w.ms.Store(ms) }
func (w *manualWall) Advance(ms int64) { w.ms.Add(ms) }

func mustUpdate(t *testing.T, c *hlc.Clock, remote hlc.Timestamp) hlc.Timestamp {
	t.Helper()
	got, err := c.Update(remote)
	if err != nil {
		t.Fatalf("Update(%s): unexpected error: %v", remote, err)
	}
	if !remote.Less(got) {
		t.Fatalf("Update(%s) = %s, want a reading greater than the remote", remote, got)
	}
	return got
}

func TestTimestampOrder(t *testing.T) {
	// Strictly ascending.
	ordered := []hlc.Timestamp{
		{WallMS: math.MinInt64},
		{WallMS: -1, Logical: math.MaxUint32, Node: math.MaxUint32},
		{},
		{Node: 1},
		{Logical: 1},
		{WallMS: 1},
		{WallMS: 1700000000123, Logical: 4, Node: 7},
		{WallMS: 1700000000123, Logical: 4, Node: 8},
		{WallMS: 1700000000123, Logical: 5, Node: 0},
		{WallMS: math.MaxInt64, Logical: math.MaxUint32, Node: math.MaxUint32},
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
			if got := a.Less(b); got != (want < 0) {
				t.Errorf("%s.Less(%s) = %t, want %t", a, b, got, want < 0)
			}
			ea, eb := a.AppendEncode(nil), b.AppendEncode(nil)
			if got := bytes.Compare(ea, eb); got != want {
				t.Errorf("bytes.Compare(enc(%s), enc(%s)) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestTimestampAccessors(t *testing.T) {
	ts := hlc.Timestamp{WallMS: 1700000000123, Logical: 4, Node: 7}
	if got, want := ts.String(), "1700000000123.4@7"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (hlc.Timestamp{WallMS: -5, Logical: 0, Node: 1}).String(), "-5.0@1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := ts.Time(), time.UnixMilli(1700000000123); !got.Equal(want) {
		t.Errorf("Time() = %v, want %v", got, want)
	}
	if !(hlc.Timestamp{}).IsZero() {
		t.Error("zero Timestamp: IsZero() = false")
	}
	for _, nz := range []hlc.Timestamp{{WallMS: 1}, {Logical: 1}, {Node: 1}} {
		if nz.IsZero() {
			t.Errorf("%s.IsZero() = true", nz)
		}
	}
}

func TestEncodingRoundTripAndOrder(t *testing.T) {
	// Mix full-range values with a tiny range so equal components, and thus
	// the lower-order fields, are exercised often.
	genTS := rapid.Custom(func(t *rapid.T) hlc.Timestamp {
		return hlc.Timestamp{
			WallMS:  rapid.OneOf(rapid.Int64(), rapid.Int64Range(-2, 2)).Draw(t, "wall"),
			Logical: rapid.OneOf(rapid.Uint32(), rapid.Uint32Range(0, 2)).Draw(t, "logical"),
			Node:    rapid.OneOf(rapid.Uint32(), rapid.Uint32Range(0, 2)).Draw(t, "node"),
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		a := genTS.Draw(t, "a")
		b := genTS.Draw(t, "b")
		prefix := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(t, "prefix")

		enc := a.AppendEncode(append([]byte(nil), prefix...))
		if len(enc) != len(prefix)+hlc.EncodedLen {
			t.Fatalf("AppendEncode grew the slice by %d bytes, want %d", len(enc)-len(prefix), hlc.EncodedLen)
		}
		if !bytes.Equal(enc[:len(prefix)], prefix) {
			t.Fatalf("AppendEncode clobbered the prefix")
		}
		got, err := hlc.Decode(enc[len(prefix):])
		if err != nil {
			t.Fatalf("Decode(enc(%s)): %v", a, err)
		}
		if got != a {
			t.Fatalf("Decode(enc(%s)) = %s", a, got)
		}

		ea, eb := a.AppendEncode(nil), b.AppendEncode(nil)
		if bc, tc := bytes.Compare(ea, eb), a.Compare(b); bc != tc {
			t.Fatalf("bytes.Compare = %d but %s.Compare(%s) = %d", bc, a, b, tc)
		}
		if a.Compare(b) != -b.Compare(a) {
			t.Fatalf("Compare is not antisymmetric for %s, %s", a, b)
		}
	})
}

func TestDecodeShort(t *testing.T) {
	full := hlc.Timestamp{WallMS: 42, Logical: 1, Node: 2}.AppendEncode(nil)
	for n := 0; n < hlc.EncodedLen; n++ {
		_, err := hlc.Decode(full[:n])
		if !errors.Is(err, hlc.ErrBadEncoding) {
			t.Errorf("Decode(%d bytes) error = %v, want ErrBadEncoding", n, err)
		}
	}
	// Trailing bytes are ignored.
	got, err := hlc.Decode(append(full, 0xff, 0xee))
	if err != nil || got != (hlc.Timestamp{WallMS: 42, Logical: 1, Node: 2}) {
		t.Errorf("Decode(with suffix) = %s, %v", got, err)
	}
}

func TestNowMonotonicUnderBadWallClock(t *testing.T) {
	wall := newManualWall(1000)
	c := hlc.NewWithWall(3, hlc.DefaultMaxOffset, wall.Read)
	if !c.Last().IsZero() {
		t.Fatalf("Last() before any reading = %s, want zero", c.Last())
	}

	steps := []struct {
		wall int64
		want hlc.Timestamp
	}{
		{1000, hlc.Timestamp{WallMS: 1000, Logical: 0, Node: 3}},
		{1000, hlc.Timestamp{WallMS: 1000, Logical: 1, Node: 3}}, // standing still
		{1000, hlc.Timestamp{WallMS: 1000, Logical: 2, Node: 3}},
		{990, hlc.Timestamp{WallMS: 1000, Logical: 3, Node: 3}}, // small step back
		{-50, hlc.Timestamp{WallMS: 1000, Logical: 4, Node: 3}}, // huge step back
		{1001, hlc.Timestamp{WallMS: 1001, Logical: 0, Node: 3}},
		{1001, hlc.Timestamp{WallMS: 1001, Logical: 1, Node: 3}},
		{500, hlc.Timestamp{WallMS: 1001, Logical: 2, Node: 3}},
		{2000, hlc.Timestamp{WallMS: 2000, Logical: 0, Node: 3}},
	}
	var prev hlc.Timestamp
	for i, s := range steps {
		wall.Set(s.wall)
		got := c.Now()
		if got != s.want {
			t.Fatalf("step %d (wall %d): Now() = %s, want %s", i, s.wall, got, s.want)
		}
		if i > 0 && !prev.Less(got) {
			t.Fatalf("step %d: Now() = %s is not after %s", i, got, prev)
		}
		if last := c.Last(); last != got {
			t.Fatalf("step %d: Last() = %s, want %s", i, last, got)
		}
		prev = got
	}
}

func TestNowFirstReadingUsesNegativeWall(t *testing.T) {
	c := hlc.NewWithWall(1, 0, func() int64 { return -1234 })
	if got, want := c.Now(), (hlc.Timestamp{WallMS: -1234, Node: 1}); got != want {
		t.Fatalf("Now() = %s, want %s", got, want)
	}
}

func TestUpdateRefusesBeyondMaxOffset(t *testing.T) {
	wall := newManualWall(10_000)
	c := hlc.NewWithWall(1, 500*time.Millisecond, wall.Read)
	before := c.Now()

	remote := hlc.Timestamp{WallMS: 10_501, Logical: 3, Node: 9}
	got, err := c.Update(remote)
	if !errors.Is(err, hlc.ErrClockOffset) {
		t.Fatalf("Update(%s) error = %v, want ErrClockOffset", remote, err)
	}
	if !got.IsZero() {
		t.Errorf("Update returned %s alongside an error, want zero", got)
	}
	for _, want := range []string{"hlc: ", "node 9", "501ms ahead"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if last := c.Last(); last != before {
		t.Fatalf("Last() after refusal = %s, want unchanged %s", last, before)
	}
	if n := c.Offenders(); n != 1 {
		t.Fatalf("Offenders() = %d, want 1", n)
	}
	// The clock did not jump: the next reading merely bumps the logical part.
	if got, want := c.Now(), (hlc.Timestamp{WallMS: 10_000, Logical: 1, Node: 1}); got != want {
		t.Fatalf("Now() after refusal = %s, want %s", got, want)
	}

	// Exactly at the bound is accepted.
	edge := hlc.Timestamp{WallMS: 10_500, Logical: 0, Node: 9}
	if got := mustUpdate(t, c, edge); got != (hlc.Timestamp{WallMS: 10_500, Logical: 1, Node: 1}) {
		t.Fatalf("Update(%s) = %s", edge, got)
	}
	if n := c.Offenders(); n != 1 {
		t.Fatalf("Offenders() = %d after an accepted update, want 1", n)
	}
}

func TestUpdateAcceptsWithinMaxOffset(t *testing.T) {
	wall := newManualWall(10_000)
	c := hlc.NewWithWall(1, 500*time.Millisecond, wall.Read)
	before := c.Now()

	remote := hlc.Timestamp{WallMS: 10_400, Logical: 7, Node: 9}
	got := mustUpdate(t, c, remote)
	if !before.Less(got) {
		t.Fatalf("Update = %s, not after previous reading %s", got, before)
	}
	if want := (hlc.Timestamp{WallMS: 10_400, Logical: 8, Node: 1}); got != want {
		t.Fatalf("Update(%s) = %s, want %s", remote, got, want)
	}
	if c.Last() != got {
		t.Fatalf("Last() = %s, want %s", c.Last(), got)
	}
	next := c.Now()
	if !remote.Less(next) || !got.Less(next) {
		t.Fatalf("Now() = %s after accepting %s (update returned %s)", next, remote, got)
	}

	// A remote behind the clock still advances it.
	old := hlc.Timestamp{WallMS: 5, Logical: 1, Node: 2}
	got2 := mustUpdate(t, c, old)
	if !next.Less(got2) {
		t.Fatalf("Update(%s) = %s, not after %s", old, got2, next)
	}

	// Once the wall clock overtakes the merged value it takes over again.
	wall.Set(20_000)
	if got, want := c.Now(), (hlc.Timestamp{WallMS: 20_000, Node: 1}); got != want {
		t.Fatalf("Now() = %s, want %s", got, want)
	}
	if n := c.Offenders(); n != 0 {
		t.Fatalf("Offenders() = %d, want 0", n)
	}
}

func TestUpdateSameWallAndLogicalDifferentNode(t *testing.T) {
	wall := newManualWall(100)
	c := hlc.NewWithWall(5, hlc.DefaultMaxOffset, wall.Read)
	c.Now() // 100.0@5
	// Same wall and logical, lower node id: smaller than Last, still merged.
	got := mustUpdate(t, c, hlc.Timestamp{WallMS: 100, Logical: 0, Node: 1})
	if want := (hlc.Timestamp{WallMS: 100, Logical: 1, Node: 5}); got != want {
		t.Fatalf("Update = %s, want %s", got, want)
	}
	// Same wall and logical, higher node id.
	got = mustUpdate(t, c, hlc.Timestamp{WallMS: 100, Logical: 1, Node: 9})
	if want := (hlc.Timestamp{WallMS: 100, Logical: 2, Node: 5}); got != want {
		t.Fatalf("Update = %s, want %s", got, want)
	}
}

func TestNoMaxOffset(t *testing.T) {
	for _, off := range []time.Duration{0, -time.Second} {
		c := hlc.NewWithWall(1, off, func() int64 { return 0 })
		if c.MaxOffset() != 0 {
			t.Errorf("MaxOffset() = %v for %v, want 0", c.MaxOffset(), off)
		}
		far := hlc.Timestamp{WallMS: math.MaxInt64 - 1, Node: 2}
		mustUpdate(t, c, far)
		if c.Offenders() != 0 {
			t.Errorf("Offenders() = %d with no max offset", c.Offenders())
		}
	}
	if got := hlc.New(1, 250*time.Millisecond).MaxOffset(); got != 250*time.Millisecond {
		t.Errorf("MaxOffset() = %v, want 250ms", got)
	}
}

func TestSubMillisecondMaxOffsetRoundsUp(t *testing.T) {
	c := hlc.NewWithWall(1, 300*time.Microsecond, func() int64 { return 1000 })
	mustUpdate(t, c, hlc.Timestamp{WallMS: 1001, Node: 2})
	if _, err := c.Update(hlc.Timestamp{WallMS: 1002, Node: 2}); !errors.Is(err, hlc.ErrClockOffset) {
		t.Fatalf("Update 2ms ahead with 300µs max offset: err = %v, want ErrClockOffset", err)
	}
}

func TestMaxOffsetSaturates(t *testing.T) {
	// wall+maxOffset would overflow int64; must not wrap around and refuse.
	c := hlc.NewWithWall(1, time.Hour, func() int64 { return math.MaxInt64 - 10 })
	mustUpdate(t, c, hlc.Timestamp{WallMS: math.MaxInt64 - 1, Node: 2})
	// And a far-future remote against a very negative wall is refused without
	// overflowing the reported distance.
	c = hlc.NewWithWall(1, time.Hour, func() int64 { return math.MinInt64 })
	_, err := c.Update(hlc.Timestamp{WallMS: math.MaxInt64, Node: 2})
	if !errors.Is(err, hlc.ErrClockOffset) || !strings.Contains(err.Error(), "18446744073709551615ms ahead") {
		t.Fatalf("err = %v", err)
	}
}

func TestLogicalOverflowAdvancesWall(t *testing.T) {
	wall := newManualWall(1000)
	c := hlc.NewWithWall(2, hlc.DefaultMaxOffset, wall.Read)

	got := mustUpdate(t, c, hlc.Timestamp{WallMS: 1000, Logical: math.MaxUint32 - 1, Node: 8})
	if want := (hlc.Timestamp{WallMS: 1000, Logical: math.MaxUint32, Node: 2}); got != want {
		t.Fatalf("Update = %s, want %s", got, want)
	}
	if got, want := c.Now(), (hlc.Timestamp{WallMS: 1001, Logical: 0, Node: 2}); got != want {
		t.Fatalf("Now() after logical overflow = %s, want %s", got, want)
	}
	if got, want := c.Now(), (hlc.Timestamp{WallMS: 1001, Logical: 1, Node: 2}); got != want {
		t.Fatalf("Now() = %s, want %s", got, want)
	}

	// Merging a remote whose logical part is already saturated also carries.
	got = mustUpdate(t, c, hlc.Timestamp{WallMS: 1002, Logical: math.MaxUint32, Node: 8})
	if want := (hlc.Timestamp{WallMS: 1003, Logical: 0, Node: 2}); got != want {
		t.Fatalf("Update = %s, want %s", got, want)
	}
}

func TestClockExhausted(t *testing.T) {
	c := hlc.NewWithWall(1, 0, func() int64 { return 0 })
	before := c.Now()
	top := hlc.Timestamp{WallMS: math.MaxInt64, Logical: math.MaxUint32, Node: 3}
	if _, err := c.Update(top); !errors.Is(err, hlc.ErrClockExhausted) {
		t.Fatalf("Update(%s) err = %v, want ErrClockExhausted", top, err)
	}
	if c.Last() != before {
		t.Fatalf("Last() = %s after refused update, want %s", c.Last(), before)
	}

	mustUpdate(t, c, hlc.Timestamp{WallMS: math.MaxInt64, Logical: math.MaxUint32 - 1, Node: 3})
	defer func() {
		if recover() == nil {
			t.Fatal("Now() on an exhausted clock did not panic")
		}
	}()
	c.Now()
}

func TestConcurrentNowUnique(t *testing.T) {
	const goroutines, perG = 8, 2000
	// A wall clock that mostly stands still and occasionally steps back, to
	// force contention on the logical counter.
	var ticks atomic.Int64
	wall := func() int64 {
		n := ticks.Add(1)
		return 1_000_000 + n/64 - (n%7)*3
	}
	c := hlc.NewWithWall(4, hlc.DefaultMaxOffset, wall)

	results := make([][]hlc.Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]hlc.Timestamp, 0, perG)
			for i := range perG {
				if i%50 == 0 {
					// Interleave merges of remote timestamps near our own.
					last := c.Last()
					if _, err := c.Update(hlc.Timestamp{WallMS: last.WallMS, Logical: last.Logical, Node: 99}); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
				}
				out = append(out, c.Now())
			}
			results[g] = out
		}()
	}
	wg.Wait()

	seen := make(map[hlc.Timestamp]struct{}, goroutines*perG)
	for g, out := range results {
		for i, ts := range out {
			if i > 0 && !out[i-1].Less(ts) {
				t.Fatalf("goroutine %d: reading %d = %s not after %s", g, i, ts, out[i-1])
			}
			if _, dup := seen[ts]; dup {
				t.Fatalf("duplicate timestamp %s", ts)
			}
			seen[ts] = struct{}{}
		}
	}
	if len(seen) != goroutines*perG {
		t.Fatalf("got %d distinct timestamps, want %d", len(seen), goroutines*perG)
	}
}

func TestConcurrentNowUniqueRealClock(t *testing.T) {
	const goroutines, perG = 8, 1000
	c := hlc.New(1, hlc.DefaultMaxOffset)
	var mu sync.Mutex
	seen := make(map[hlc.Timestamp]struct{}, goroutines*perG)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]hlc.Timestamp, perG)
			for i := range local {
				local[i] = c.Now()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ts := range local {
				if _, dup := seen[ts]; dup {
					t.Errorf("duplicate timestamp %s", ts)
				}
				seen[ts] = struct{}{}
			}
		}()
	}
	wg.Wait()
	if len(seen) != goroutines*perG {
		t.Fatalf("got %d distinct timestamps, want %d", len(seen), goroutines*perG)
	}
}

// TestClockSkew runs two nodes whose wall clocks differ by a fixed skew and
// exchanges messages between them in both directions.
func TestClockSkew(t *testing.T) {
	const maxOffset = 500 * time.Millisecond
	for _, tc := range []struct {
		name string
		skew time.Duration // wall of node B minus wall of node A
	}{
		{"b+100ms", 100 * time.Millisecond},
		{"b-100ms", -100 * time.Millisecond},
		{"b+10min", 10 * time.Minute},
		{"b-10min", -10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			truth := newManualWall(1_700_000_000_000)
			skewMS := tc.skew.Milliseconds()
			a := hlc.NewWithWall(1, maxOffset, truth.Read)
			b := hlc.NewWithWall(2, maxOffset, func() int64 { return truth.Read() + skewMS })

			// send delivers a reading of from to to and reports whether it
			// was accepted. On acceptance it checks causality.
			send := func(from, to *hlc.Clock) bool {
				t.Helper()
				msg := from.Now()
				truth.Advance(3) // network delay
				before := to.Last()
				got, err := to.Update(msg)
				if err != nil {
					if !errors.Is(err, hlc.ErrClockOffset) {
						t.Fatalf("Update: unexpected error %v", err)
					}
					if to.Last() != before {
						t.Fatalf("refused update changed the clock: %s -> %s", before, to.Last())
					}
					return false
				}
				if !msg.Less(got) || !before.Less(got) {
					t.Fatalf("Update(%s) = %s, previous %s", msg, got, before)
				}
				if next := to.Now(); !msg.Less(next) {
					t.Fatalf("Now() = %s after receiving %s", next, msg)
				}
				return true
			}

			tooFar := tc.skew > maxOffset || -tc.skew > maxOffset
			for round := range 20 {
				bAhead := tc.skew > 0
				// Only the node that is behind refuses, and only when the
				// skew exceeds the maximum offset.
				if got, want := send(b, a), !(tooFar && bAhead); got != want {
					t.Fatalf("round %d: B->A accepted = %t, want %t", round, got, want)
				}
				if got, want := send(a, b), !(tooFar && !bAhead); got != want {
					t.Fatalf("round %d: A->B accepted = %t, want %t", round, got, want)
				}
				truth.Advance(1)
			}

			wantA, wantB := uint64(0), uint64(0)
			if tooFar && tc.skew > 0 {
				wantA = 20
			}
			if tooFar && tc.skew < 0 {
				wantB = 20
			}
			if a.Offenders() != wantA || b.Offenders() != wantB {
				t.Fatalf("offenders A=%d B=%d, want A=%d B=%d", a.Offenders(), b.Offenders(), wantA, wantB)
			}

			// With a small skew the two clocks agree on causal order in a
			// request/response chain even though their walls disagree.
			if !tooFar {
				chain := []hlc.Timestamp{a.Now()}
				clocks := []*hlc.Clock{b, a}
				for i := range 10 {
					ts := mustUpdate(t, clocks[i%2], chain[len(chain)-1])
					chain = append(chain, ts)
				}
				for i := 1; i < len(chain); i++ {
					if !chain[i-1].Less(chain[i]) {
						t.Fatalf("causal chain broken at %d: %s !< %s", i, chain[i-1], chain[i])
					}
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, hlc.EncodedLen-1))
	f.Add(make([]byte, hlc.EncodedLen))
	f.Add(bytes.Repeat([]byte{0xff}, hlc.EncodedLen+4))
	for _, ts := range []hlc.Timestamp{
		{},
		{WallMS: -1, Logical: 2, Node: 3},
		{WallMS: 1700000000123, Logical: 4, Node: 7},
		{WallMS: math.MinInt64},
		{WallMS: math.MaxInt64, Logical: math.MaxUint32, Node: math.MaxUint32},
	} {
		f.Add(ts.AppendEncode(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := hlc.Decode(b)
		if len(b) < hlc.EncodedLen {
			if !errors.Is(err, hlc.ErrBadEncoding) {
				t.Fatalf("Decode(%x) error = %v, want ErrBadEncoding", b, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Decode(%x): %v", b, err)
		}
		enc := ts.AppendEncode(nil)
		if !bytes.Equal(enc, b[:hlc.EncodedLen]) {
			t.Fatalf("re-encoding %s = %x, want %x", ts, enc, b[:hlc.EncodedLen])
		}
		again, err := hlc.Decode(enc)
		if err != nil || again != ts {
			t.Fatalf("round trip of %s = %s, %v", ts, again, err)
		}
	})
}

func BenchmarkNow(b *testing.B) {
	c := hlc.New(1, hlc.DefaultMaxOffset)
	for b.Loop() {
		c.Now()
	}
}

func BenchmarkNowParallel(b *testing.B) {
	c := hlc.New(1, hlc.DefaultMaxOffset)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}
