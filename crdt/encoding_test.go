package crdt

import (
	"bytes"
	"math"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

// randomValue builds a value of a random type by random operations from
// a few regions, with extreme stamps, and merges of such values.
func randomValue(t *rapid.T) Value {
	typ := rapid.IntRange(0, 4).Draw(t, "type")
	fresh := [](func() Value){
		func() Value { return new(Register) },
		func() Value { return new(Counter) },
		func() Value { return new(Set) },
		func() Value { return new(Map) },
		func() Value { return new(ZSet) },
	}[typ]
	str := rapid.OneOf(rapid.SampledFrom([]string{"", "a", "b"}), rapid.String())
	stamp := rapid.Custom(func(t *rapid.T) Stamp {
		return Stamp{
			Region: rapid.SampledFrom([]string{"", "eu", "us", "\xff"}).Draw(t, "region"),
			Time: hlc.Timestamp{
				WallMS:  rapid.OneOf(rapid.Int64Range(-3, 3), rapid.Int64()).Draw(t, "wall"),
				Logical: rapid.OneOf(rapid.Just(uint32(0)), rapid.Just(uint32(math.MaxUint32)), rapid.Uint32()).Draw(t, "logical"),
				Node:    rapid.Uint32().Draw(t, "node"),
			},
			Seq: rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64()).Draw(t, "seq"),
		}
	})
	var vals []Value
	for range rapid.IntRange(1, 3).Draw(t, "replicas") {
		v := fresh()
		for range rapid.IntRange(0, 4).Draw(t, "ops") {
			s := stamp.Draw(t, "stamp")
			prev := v.clone()
			switch v := v.(type) {
			case *Register:
				if rapid.Bool().Draw(t, "clear") {
					v.Clear(s)
				} else {
					v.Set(s, []byte(str.Draw(t, "value")), rapid.SampledFrom([]string{"", "lww", "test-nest"}).Draw(t, "resolver"))
				}
			case *Counter:
				if rapid.IntRange(0, 3).Draw(t, "clear") == 0 {
					v.Clear(s)
				} else {
					_ = v.Add(s, rapid.Int64().Draw(t, "delta"))
				}
			case *Set:
				ms := rapid.SliceOfN(str, 0, 3).Draw(t, "members")
				switch rapid.IntRange(0, 3).Draw(t, "kind") {
				case 0:
					v.Clear(s)
				case 1:
					v.Remove(s, ms...)
				default:
					v.Add(s, ms...)
				}
			case *Map:
				switch rapid.IntRange(0, 3).Draw(t, "kind") {
				case 0:
					v.Clear(s)
				case 1:
					v.Delete(s, rapid.SliceOfN(str, 0, 3).Draw(t, "fields")...)
				default:
					v.Set(s, str.Draw(t, "field"), []byte(str.Draw(t, "value")))
				}
			case *ZSet:
				score := rapid.OneOf(rapid.Float64(), rapid.SampledFrom([]float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 1.5})).Draw(t, "score")
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					v.Clear(s)
				case 1:
					v.Remove(s, rapid.SliceOfN(str, 0, 3).Draw(t, "members")...)
				case 2:
					_, _ = v.Incr(s, str.Draw(t, "member"), score)
				default:
					v.Add(s, str.Draw(t, "member"), score)
				}
			}
			// Some operations travel as deltas, some of which are lost:
			// contexts with gaps, members' and fields' own contexts.
			if rapid.IntRange(0, 2).Draw(t, "ship delta") == 0 {
				vals = append(vals, Delta(prev, v))
			}
		}
		if rapid.IntRange(0, 3).Draw(t, "keep state") > 0 {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return fresh()
	}
	var out Value
	for _, v := range vals {
		var err error
		if out, _, err = Merge(out, v); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestEncodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		checkRoundTrip(t, randomValue(t))
	})
}

func FuzzDecode(f *testing.F) {
	var r Register
	r.Set(Stamp{Region: "us", Time: hlc.Timestamp{WallMS: 1700000000000, Logical: 2, Node: 3}}, []byte("v"), "")
	var r2 Register
	r2.Set(Stamp{Region: "eu", Time: hlc.Timestamp{WallMS: 1700000000001}}, []byte("w"), "test-nest")
	conflict, _, _ := Merge(&r, &r2)
	var c Counter
	_ = c.Add(Stamp{Region: "us"}, 5)
	_ = c.Add(Stamp{Region: "eu"}, -7)
	c.Clear(Stamp{Region: "ap"})
	_ = c.Add(Stamp{Region: "eu"}, 1)
	var s Set
	s.Add(Stamp{Region: "us"}, "a", "b")
	s.Remove(Stamp{Region: "eu"}, "a")
	var m Map
	m.Set(Stamp{Region: "us"}, "f", []byte("1"))
	m.Delete(Stamp{Region: "eu"}, "g")
	// Deltas: a context with gaps, a removed member's own context, a
	// written field's own context.
	sPrev := s.clone()
	s.Remove(Stamp{Region: "us"}, "b")
	s.Add(Stamp{Region: "us"}, "c", "d", "e")
	mPrev := m.clone()
	m.Set(Stamp{Region: "eu", Seq: 9}, "f", []byte("2"))
	var z ZSet
	z.Add(Stamp{Region: "us"}, "a", 1.5)
	_, _ = z.Incr(Stamp{Region: "eu"}, "a", 2)
	_, _ = z.Incr(Stamp{Region: "eu"}, "b", -1)
	zPrev := z.clone()
	z.Remove(Stamp{Region: "us"}, "a")
	z.Add(Stamp{Region: "eu", Seq: 9}, "c", math.Inf(-1))
	for _, v := range []Value{&r, conflict, &c, &s, &m, &z, new(Register), new(Map), new(ZSet), Delta(sPrev, &s), Delta(mPrev, &m), Delta(zPrev, &z)} {
		f.Add(v.Encode())
	}
	f.Add(VersionVector{"eu": 1, "us": 300}.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodeVersionVector(b); err == nil && !bytes.Equal(v.Encode(), b) {
			t.Fatalf("version vector encoding is not canonical: %x", b)
		}
		v, err := Decode(b)
		if err != nil {
			return
		}
		if got := v.Encode(); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x gave %x", b, got)
		}
		// Whatever decodes must be usable.
		v.Live()
		Collectable(v, v.Context())
		m, _, err := Merge(v, v)
		if err == nil && v.Type() != "register" && !bytes.Equal(m.Encode(), b) {
			t.Fatalf("merging %x with itself changed it", b)
		}
		v.Clear(Stamp{Region: "fuzz"})
		v.Encode()
	})
}
