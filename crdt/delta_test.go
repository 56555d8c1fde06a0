package crdt

import (
	"errors"
	"fmt"
	"testing"
)

// TestDeltaSizeIndependentOfValue: the delta of one add to a set, or one
// write to a map, has the same size whatever the size of the value.
func TestDeltaSizeIndependentOfValue(t *testing.T) {
	var setSizes, mapSizes []int
	for _, n := range []int{10, 1000, 100_000} {
		var set Set
		var m Map
		// Members added by many operations of several regions, at log
		// positions of the same magnitude whatever n (a delta holds the
		// region's previous position on the key, whose varint grows with
		// the log, not with the value).
		const base = 1 << 40
		for i := range n {
			s := Stamp{Region: []string{"ap", "eu", "us"}[i%3], Seq: base + uint64(i)}
			set.Add(s, fmt.Sprintf("member-%07d", i))
			m.Set(s, fmt.Sprintf("field-%07d", i), []byte("value"))
		}
		s := Stamp{Region: "eu", Seq: 2 * base}
		prev := set.clone()
		set.Add(s, "one more member")
		d := Delta(prev, &set)
		setSizes = append(setSizes, len(d.Encode()))
		if got := mustMerge(t, prev, d); got.(*Set).Len() != n+1 {
			t.Fatalf("the delta of an add to %d members gives %d members", n, got.(*Set).Len())
		}
		prevMap := m.clone()
		m.Set(s, "field-0000003", []byte("new value"))
		mapSizes = append(mapSizes, len(Delta(prevMap, &m).Encode()))
		t.Logf("%d members: the delta of one add is %d bytes (the state %d); of one field write %d bytes (the state %d)",
			n, setSizes[len(setSizes)-1], len(set.Encode()), mapSizes[len(mapSizes)-1], len(m.Encode()))
	}
	for i := range setSizes {
		if setSizes[i] != setSizes[0] || mapSizes[i] != mapSizes[0] {
			t.Fatalf("delta sizes grow with the value: sets %v, maps %v", setSizes, mapSizes)
		}
	}
}

// TestDeltaRemoveCarriesWhatItSaw: a remove's delta removes exactly the
// tags its writer had seen of the member, whatever order deltas arrive
// in, and an add's delta does not remove other members added by the same
// operation.
func TestDeltaRemoveCarriesWhatItSaw(t *testing.T) {
	var a Set
	a.Add(at("us", 1), "x", "y") // one dot for both
	add := Delta(nil, &a)
	prev := a.clone()
	a.Remove(at("us", 2), "x")
	rm := Delta(prev, &a)
	// The remove arrives first: y, added with the same dot as x, stays.
	for _, order := range [][]Value{{add, rm}, {rm, add}} {
		var b Value = new(Set)
		b.(*Set).Add(at("eu", 1), "x") // concurrent: survives the remove
		for _, d := range order {
			b = mustMerge(t, b, d)
		}
		if got := fmt.Sprint(b.(*Set).Members()); got != "[x y]" {
			t.Fatalf("members %s, want x (eu's concurrent add) and y", got)
		}
		if x := b.(*Set).members["x"]; len(x) != 1 || x[0].Region != "eu" {
			t.Fatalf("x's tags %v: us's add of x should be removed", x)
		}
	}
}

func TestDeltaEncoding(t *testing.T) {
	var s Set
	for i := range 10 {
		s.Add(at("us", 1), fmt.Sprint("a", i))
	}
	prev := s.clone()
	s.Add(at("us", 2), "b")
	d := Delta(prev, &s).Encode()
	if d[0] != formatRanges {
		t.Fatalf("a delta following another is encoded in format %d", d[0])
	}
	if s.Encode()[0] != formatVersion {
		t.Fatalf("a state without gaps is encoded in format %d", s.Encode()[0])
	}
	checkRoundTrip(t, Delta(prev, &s))
	// A state that needs no ranges, encoded with them, is refused, as is
	// a member's context overlapping the set's.
	needless := append([]byte{formatRanges}, s.Encode()[1:]...)
	overlap := &Set{ctx: dotSetOf(VersionVector{"us": 2}), members: map[string][]Dot{"a0": {{"us", 1}}},
		mctx: map[string]dotSet{"a": dotSetOf(VersionVector{"us": 5})}}
	bad := &Set{ctx: dotSetOf(VersionVector{"us": 2}), mctx: map[string]dotSet{"a": {"us": {{3, 4}}}}}
	bad.ctx["us"] = []seqRange{{0, 2}, {2, 3}} // touching ranges: not canonical
	var m Map
	m.Set(at("us", 1), "f", []byte("v"))
	needlessMap := append([]byte{formatRanges}, m.Encode()[1:]...)
	var r Register
	r.Set(at("us", 1), []byte("v"), "")
	for name, b := range map[string][]byte{
		"needless ranges":     needless,
		"member overlap":      overlap.Encode(),
		"touching ranges":     bad.Encode(),
		"needless map ranges": needlessMap,
		"register in ranges":  append([]byte{formatRanges}, r.Encode()[1:]...),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("%s: %v, want ErrBadEncoding", name, err)
		}
	}
}

func TestDotSet(t *testing.T) {
	s := dotSet{}
	s.add("us", 0, 3)
	s.add("us", 5, 7)
	s.addDot(Dot{"us", 4})
	if got := s["us"]; len(got) != 2 || got[0] != (seqRange{0, 4}) || got[1] != (seqRange{5, 7}) {
		t.Fatalf("ranges %v", got)
	}
	for seq, want := range map[uint64]bool{0: false, 1: true, 4: true, 5: false, 6: true, 7: true, 8: false} {
		if s.contains(Dot{"us", seq}) != want {
			t.Fatalf("contains us:%d = %v", seq, !want)
		}
	}
	o := dotSet{"us": {{2, 6}}, "eu": {{0, 1}}}
	if got := s.minus(o); len(got) != 1 || fmt.Sprint(got["us"]) != "[{0 2} {6 7}]" {
		t.Fatalf("minus %v", got)
	}
	if u := s.union(o); fmt.Sprint(u["us"]) != "[{0 7}]" || !u.includes(s) || !u.includes(o) || s.includes(o) {
		t.Fatalf("union %v", u)
	}
	if d := s.next(Stamp{Region: "us"}); d.Seq != 8 || fmt.Sprint(s["us"]) != "[{0 4} {5 8}]" {
		t.Fatalf("next %v, ranges %v", d, s["us"])
	}
	if s.isVV() || !dotSetOf(VersionVector{"us": 3}).isVV() || s.upper()["us"] != 8 {
		t.Fatal("isVV / upper")
	}
}
