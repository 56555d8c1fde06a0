package crdt

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

func at(region string, wall int64) Stamp {
	return Stamp{Region: region, Time: hlc.Timestamp{WallMS: wall}}
}

func merge(t *testing.T, a, b Value) (Value, []Conflict) {
	t.Helper()
	v, cs, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return v, cs
}

func TestVersionVector(t *testing.T) {
	a := VersionVector{"eu": 2, "us": 1}
	tests := []struct {
		b    VersionVector
		want Ordering
	}{
		{VersionVector{"eu": 2, "us": 1}, Equal},
		{VersionVector{"eu": 2, "us": 1, "ap": 0}, Equal},
		{VersionVector{"eu": 3, "us": 1}, Before},
		{VersionVector{"eu": 2, "us": 1, "ap": 1}, Before},
		{VersionVector{"eu": 1}, After},
		{nil, After},
		{VersionVector{"eu": 3}, Concurrent},
		{VersionVector{"ap": 1}, Concurrent},
	}
	for _, tt := range tests {
		if got := a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %v, want %v", a, tt.b, got, tt.want)
		}
		if got := a.Dominates(tt.b); got != (tt.want == Equal || tt.want == After) {
			t.Errorf("%v.Dominates(%v) = %v", a, tt.b, got)
		}
		m := a.Merge(tt.b)
		if !m.Dominates(a) || !m.Dominates(tt.b) || m.Compare(a.Merge(tt.b)) != Equal {
			t.Errorf("%v.Merge(%v) = %v", a, tt.b, m)
		}
	}
	if !a.Contains(Dot{"eu", 2}) || a.Contains(Dot{"eu", 3}) || a.Contains(Dot{"ap", 1}) || a.Contains(Dot{"ap", 0}) {
		t.Error("Contains")
	}
	if got := a.String(); got != "{eu:2 us:1}" {
		t.Errorf("String = %q", got)
	}
	stable := StableVector(a, VersionVector{"eu": 5, "us": 0, "ap": 3}, VersionVector{"eu": 1, "us": 4})
	if !reflect.DeepEqual(stable, VersionVector{"eu": 1}) {
		t.Errorf("StableVector = %v, want {eu:1}", stable)
	}
	if got := StableVector(); len(got) != 0 {
		t.Errorf("StableVector() = %v", got)
	}
}

func TestVersionVectorEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.MapOf(rapid.StringN(0, 4, 8), rapid.Uint64()).Draw(t, "v")
		enc := VersionVector(v).Encode()
		d, err := DecodeVersionVector(enc)
		if err != nil {
			t.Fatal(err)
		}
		if VersionVector(v).Compare(d) != Equal || slices.Contains(slices.Collect(maps.Values(d)), 0) {
			t.Fatalf("decoded %v, want %v", d, v)
		}
		if !bytes.Equal(d.Encode(), enc) {
			t.Fatal("encoding is not canonical")
		}
	})
	for _, bad := range [][]byte{
		nil,
		{1},                            // truncated
		{1, 1, 'a', 0},                 // zero entry
		{2, 1, 'b', 1, 1, 'a', 1},      // out of order
		{1, 1, 'a', 0x81, 0},           // non-minimal varint
		{1, 1, 'a', 1, 0},              // trailing byte
		{0xff, 0xff, 0xff, 0xff, 0x0f}, // huge count
	} {
		if _, err := DecodeVersionVector(bad); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("DecodeVersionVector(%x) = %v, want ErrBadEncoding", bad, err)
		}
	}
}

func TestStampSeq(t *testing.T) {
	var r Register
	r.Set(Stamp{Region: "eu", Seq: 10}, []byte("a"), "")
	r.Set(Stamp{Region: "eu", Seq: 4}, []byte("b"), "") // behind: raised
	r.Set(Stamp{Region: "eu"}, []byte("c"), "")         // zero: next
	r.Set(Stamp{Region: "eu", Seq: 40}, []byte("d"), "")
	w, _ := r.Winner()
	if w.Seq != 40 || !reflect.DeepEqual(r.Context(), VersionVector{"eu": 40}) {
		t.Fatalf("winner %+v, context %v", w, r.Context())
	}
	var s Set
	s.Add(Stamp{Region: "eu", Seq: 7}, "x")
	s.Remove(Stamp{Region: "eu"}, "y")
	if !reflect.DeepEqual(s.Context(), VersionVector{"eu": 8}) {
		t.Fatalf("context %v, want {eu:8}", s.Context())
	}
}

// TestLWWWinner checks that among concurrent writes the winner is the one
// with the largest (time, region), whatever the merge order.
func TestLWWWinner(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		regions := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"ap", "eu", "sa", "us", "af"}), 2, 5, rapid.ID[string]).Draw(t, "regions")
		var states []Value
		var best Version
		for i, region := range regions {
			s := Stamp{Region: region, Time: hlc.Timestamp{
				WallMS:  rapid.Int64Range(-2, 2).Draw(t, "wall"),
				Logical: rapid.Uint32Range(0, 1).Draw(t, "logical"),
				Node:    rapid.Uint32Range(0, 1).Draw(t, "node"),
			}}
			r := new(Register)
			r.Set(s, []byte(region), "")
			if v := r.Versions()[0]; i == 0 || s.Time.Compare(best.Time) > 0 || s.Time == best.Time && region > best.Region {
				best = v
			}
			states = append(states, r)
		}
		var v Value
		for i, s := range rapid.Permutation(states).Draw(t, "order") {
			var cs []Conflict
			var err error
			if v, cs, err = Merge(v, s); err != nil {
				t.Fatal(err)
			}
			if i > 0 && len(cs) != 1 {
				t.Fatalf("merging a concurrent write reported %d conflicts", len(cs))
			}
		}
		if got, _ := v.(*Register).Get(); string(got) != best.Region {
			t.Fatalf("winner %s, want %s", got, best.Region)
		}
	})
}

func TestRegisterConflict(t *testing.T) {
	var us Register
	us.Set(at("us", 100), []byte("blue"), "")

	// eu saw us's write and overwrote it, with an older clock: an
	// ordinary overwrite, no conflict, eu wins.
	seen, _ := merge(t, nil, &us)
	eu := seen.(*Register)
	eu.Set(at("eu", 50), []byte("green"), "")
	got, cs := merge(t, &us, eu)
	if v, _ := got.(*Register).Get(); string(v) != "green" || len(cs) != 0 {
		t.Fatalf("overwrite: got %q, conflicts %+v", v, cs)
	}

	// ap saw neither: a conflict, reported identically in both merge
	// orders, won by ap's write, the later one.
	var ap Register
	ap.Set(at("ap", 120), []byte("red"), "")
	m1, cs1 := merge(t, eu, &ap)
	m2, cs2 := merge(t, &ap, eu)
	if !bytes.Equal(m1.Encode(), m2.Encode()) || !reflect.DeepEqual(cs1, cs2) || len(cs1) != 1 {
		t.Fatalf("conflicts %+v and %+v", cs1, cs2)
	}
	c := cs1[0]
	if c.Rule != "lww" || len(c.Versions) != 2 || string(c.Versions[0].Value) != "green" || string(c.Versions[1].Value) != "red" ||
		string(c.Winner.Value) != "red" || c.Winner.Region != "ap" || c.Winner.Time.WallMS != 120 {
		t.Fatalf("conflict %+v", c)
	}

	// Redelivery of either side reports nothing and changes nothing.
	for _, in := range []Value{eu, &ap, &us} {
		again, cs := merge(t, m1, in)
		if len(cs) != 0 || !bytes.Equal(again.Encode(), m1.Encode()) {
			t.Fatalf("redelivery: conflicts %+v", cs)
		}
	}

	// A write that has seen both concurrent versions replaces them.
	r := m1.(*Register)
	r.Clear(at("us", 10))
	if r.Live() || len(r.Versions()) != 1 {
		t.Fatalf("after Clear: live %v, versions %+v", r.Live(), r.Versions())
	}
}

func TestResolverRegistry(t *testing.T) {
	for _, name := range []string{"", "lww"} {
		fn, err := LookupResolver(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fn(Version{Value: []byte("a")}, Version{Value: []byte("b")}); string(got.Value) != "b" {
			t.Fatalf("LookupResolver(%q) does not pick the newer version", name)
		}
	}
	_, err := LookupResolver("no-such-resolver")
	if !errors.Is(err, ErrUnknownResolver) || !strings.Contains(err.Error(), "no-such-resolver") {
		t.Fatalf("unknown resolver: %v", err)
	}

	RegisterResolver("test-shortest", func(a, b Version) Version {
		if len(a.Value) < len(b.Value) {
			return a
		}
		return b
	})
	if _, err := LookupResolver("test-shortest"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		fn   Resolver
	}{
		{"", lastWriterWins},
		{"lww", lastWriterWins},
		{"test-shortest", lastWriterWins},
		{"test-nil", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterResolver(%q) did not panic", tt.name)
				}
			}()
			RegisterResolver(tt.name, tt.fn)
		}()
	}

	// The resolver named by the newest concurrent version decides, whatever
	// the merge order; the winner keeps the newest version's identity.
	var a, b Register
	a.Set(at("us", 1), []byte("short"), "")
	b.Set(at("eu", 2), []byte("much longer"), "test-shortest")
	m1, cs1 := merge(t, &a, &b)
	m2, cs2 := merge(t, &b, &a)
	if !bytes.Equal(m1.Encode(), m2.Encode()) || !reflect.DeepEqual(cs1, cs2) {
		t.Fatal("resolved merge is not commutative")
	}
	w, _ := m1.(*Register).Winner()
	if string(w.Value) != "short" || w.Region != "eu" || cs1[0].Rule != "test-shortest" || !reflect.DeepEqual(cs1[0].Winner, w) {
		t.Fatalf("winner %+v, conflicts %+v", w, cs1)
	}
	checkRoundTrip(t, m1)

	// A resolver that is not registered is an error, not a silent choice.
	b.Set(at("eu", 3), []byte("x"), "no-such-resolver")
	if _, _, err := Merge(&a, &b); !errors.Is(err, ErrUnknownResolver) {
		t.Fatalf("merge with an unknown resolver: %v", err)
	}
}

func TestTypeMismatch(t *testing.T) {
	var r Register
	r.Set(at("us", 1), []byte("a"), "")
	var c Counter
	var s Set
	var m Map
	values := []Value{&r, &c, &s, &m}
	for i, a := range values {
		for j, b := range values {
			_, _, err := Merge(a, b)
			if (i != j) != errors.Is(err, ErrTypeMismatch) {
				t.Errorf("Merge(%s, %s): %v", a.Type(), b.Type(), err)
			}
		}
	}
	if _, err := DecodeSet(r.Encode()); !errors.Is(err, ErrTypeMismatch) {
		t.Errorf("DecodeSet of a register: %v", err)
	}
	if _, err := DecodeRegister(r.Encode()); err != nil {
		t.Errorf("DecodeRegister: %v", err)
	}
	if v, cs, err := Merge(nil, nil); v != nil || cs != nil || err != nil {
		t.Errorf("Merge(nil, nil) = %v, %v, %v", v, cs, err)
	}
}

func TestCounter(t *testing.T) {
	var c Counter
	if c.Live() || c.Value() != 0 {
		t.Fatal("zero counter")
	}
	if err := c.Add(at("us", 0), math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(at("us", 0), 1); !errors.Is(err, ErrOverflow) || c.Value() != math.MaxInt64 {
		t.Fatalf("overflow: %v, value %d", err, c.Value())
	}
	if err := c.Add(at("us", 0), math.MinInt64); err != nil || c.Value() != -1 {
		t.Fatalf("add MinInt64: %v, value %d", err, c.Value())
	}

	// Concurrent increments can leave the int64 range; Value saturates.
	var d Counter
	if err := d.Add(at("eu", 0), math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(at("eu", 0), 0); err != nil {
		t.Fatal(err)
	}
	var e Counter
	if err := e.Add(at("us", 0), 5); err != nil {
		t.Fatal(err)
	}
	m, _ := merge(t, &d, &e)
	if got := m.(*Counter).Value(); got != math.MaxInt64 {
		t.Fatalf("saturated value %d", got)
	}
	if err := m.(*Counter).Add(at("us", 0), -6); err != nil || m.(*Counter).Value() != math.MaxInt64-1 {
		t.Fatalf("coming back into range: %v", err)
	}

	// Clear cancels what it saw, not a concurrent increment.
	var x Counter
	_ = x.Add(at("us", 0), 10)
	y, _ := merge(t, nil, &x)
	x.Clear(at("us", 0))
	_ = y.(*Counter).Add(at("eu", 0), 3)
	z, _ := merge(t, &x, y)
	if got := z.(*Counter).Value(); got != 3 || !z.Live() {
		t.Fatalf("after a clear and a concurrent increment: %d, live %v", got, z.Live())
	}
}

func TestSetAddWins(t *testing.T) {
	var us Set
	us.Add(at("us", 0), "x", "y")
	seen, _ := merge(t, nil, &us)
	eu := seen.(*Set)
	eu.Remove(at("eu", 0), "x") // saw us's add of x
	us.Add(at("us", 0), "x")    // concurrent with the remove
	eu.Clear(at("eu", 0))       // also did not see the second add
	m, _ := merge(t, &us, eu)
	if got := m.(*Set).Members(); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("members %v, want [x]", got)
	}
}

// TestTombstones checks that a tombstone can be collected exactly when
// every region has seen it, and that collecting does not resurrect
// anything.
func TestTombstones(t *testing.T) {
	regions := []string{"ap", "eu", "us"}
	states := make([]*Map, 3)
	ship := func(from, to int) {
		v, _ := merge(t, states[to], states[from])
		states[to] = v.(*Map)
	}
	states[0] = new(Map)
	states[0].Set(at("ap", 1), "f", []byte("1"))
	states[0].Set(at("ap", 1), "g", []byte("2"))
	old := states[0].clone()
	ship(0, 1)
	ship(0, 2)
	states[1].Delete(at("eu", 2), "f")
	ship(1, 0)
	stable := func() VersionVector {
		return StableVector(states[0].Context(), states[1].Context(), states[2].Context())
	}
	if states[1].Compact(stable()) != 0 {
		t.Fatal("compacted a tombstone us has not seen")
	}
	ship(1, 2)
	for i, m := range states {
		if n := m.Compact(stable()); n != 1 {
			t.Fatalf("%s compacted %d fields, want 1", regions[i], n)
		}
		if vs := m.Versions("f"); len(vs) != 0 {
			t.Fatalf("%s still holds %+v", regions[i], vs)
		}
	}
	// An old state arriving late does not bring f back.
	v, _ := merge(t, states[0], old)
	if _, ok := v.(*Map).Get("f"); ok {
		t.Fatal("a compacted field came back")
	}

	// The whole key: not collectable while live or before everyone saw
	// the delete.
	if Collectable(states[0], stable()) {
		t.Fatal("a live map is collectable")
	}
	states[2].Clear(at("us", 3))
	if states[2].Live() || Collectable(states[2], stable()) {
		t.Fatal("collectable before the others saw the clear")
	}
	ship(2, 0)
	if Collectable(states[2], stable()) {
		t.Fatal("collectable before eu saw the clear")
	}
	ship(2, 1)
	for i, m := range states {
		if !Collectable(m, stable()) {
			t.Fatalf("%s cannot collect a stable tombstone", regions[i])
		}
	}
	if Collectable(nil, stable()) {
		t.Fatal("nil is collectable")
	}

	// The same for the other types.
	var r Register
	r.Set(at("us", 1), []byte("a"), "")
	r.Clear(at("us", 2))
	var s Set
	s.Add(at("us", 1), "x")
	s.Remove(at("us", 2), "x")
	var c Counter
	_ = c.Add(at("us", 1), 1)
	c.Clear(at("us", 2))
	for _, v := range []Value{&r, &s, &c} {
		if v.Live() || Collectable(v, VersionVector{"us": 1}) || !Collectable(v, VersionVector{"us": 2}) {
			t.Errorf("%s tombstone: live %v", v.Type(), v.Live())
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	var r Register
	r.Set(at("us", 1), []byte("a"), "")
	good := r.Encode()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"tag":       append([]byte{1, 9}, good[2:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(slices.Clone(good), 0),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}
