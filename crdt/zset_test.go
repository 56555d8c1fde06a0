package crdt

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

// zsetModel computes, from the ground truth, what a sorted set that
// reflects the operations S holds for member m: whether it is a member
// and its score (see ZSet). saw(o) is what o's writer had seen of m.
func (w *world) zsetModel(S idSet, m string, saw func(o *op) idSet) (bool, float64) {
	var on []*op
	for id := range S {
		if o := w.ops[id]; o.touches(m) {
			on = append(on, o)
		}
	}
	slices.SortFunc(on, func(a, b *op) int { return a.id - b.id })
	seenByAnother := func(x *op, among func(*op) bool) bool {
		for _, y := range on {
			if y != x && among(y) && saw(y)[x.id] {
				return true
			}
		}
		return false
	}
	present := false
	for _, x := range on {
		if (x.kind == "add" || x.kind == "incr") && !seenByAnother(x, func(*op) bool { return true }) {
			present = true
		}
	}
	isBase := func(o *op) bool { return o.kind == "add" || o.kind == "remove" || o.kind == "clear" }
	var current []*op
	for _, x := range on {
		if isBase(x) && !seenByAnother(x, isBase) {
			current = append(current, x)
		}
	}
	var winner *op
	for _, b := range current {
		switch {
		case winner == nil, winner.kind != "add" && b.kind == "add":
			winner = b
		case (winner.kind == "add") == (b.kind == "add") && lwwAfter(b, winner):
			winner = b
		}
	}
	score := 0.0
	if winner != nil && winner.kind == "add" {
		score = winner.score
	}
	// Each region's increments of m in order, with their running totals.
	totals := map[string][]struct {
		id    int
		total float64
	}{}
	for _, x := range on {
		if x.kind == "incr" {
			r := w.regions[x.region]
			prev := 0.0
			if n := len(totals[r]); n > 0 {
				prev = totals[r][n-1].total
			}
			totals[r] = append(totals[r], struct {
				id    int
				total float64
			}{x.id, prev + x.score})
		}
	}
	for _, r := range slices.Sorted(maps.Keys(totals)) {
		incs := totals[r]
		absorbed := 0.0
		latest := -1
		for _, b := range current {
			for _, in := range incs {
				if saw(b)[in.id] && in.id > latest {
					latest, absorbed = in.id, in.total
				}
			}
		}
		score += incs[len(incs)-1].total - absorbed
	}
	return present, score
}

func lwwAfter(a, b *op) bool {
	if c := a.stamp.Time.Compare(b.stamp.Time); c != 0 {
		return c > 0
	}
	if c := strings.Compare(a.dot.Region, b.dot.Region); c != 0 {
		return c > 0
	}
	return a.dot.Seq > b.dot.Seq
}

func (w *world) checkZSet(out Value, model func(m string) (bool, float64)) {
	z := out.(*ZSet)
	for _, m := range testMembers {
		wantIn, wantScore := model(m)
		got, in := z.Score(m)
		if in != wantIn || in && math.Float64bits(got) != math.Float64bits(wantScore) {
			w.t.Fatalf("member %s: in %v score %v, want in %v score %v", m, in, got, wantIn, wantScore)
		}
	}
}

func TestZSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(ZSet) }, testMembers...)
		checkConflicts := func(cs []Conflict) {
			for _, c := range cs {
				if !slices.Contains(testMembers, c.Field) || len(c.Versions) < 2 || c.Rule != lwwRule {
					t.Fatalf("odd conflict %+v", c)
				}
			}
		}
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			checkConflicts(cs)
			known := union(oldKnown, inKnown)
			w.checkZSet(out, func(m string) (bool, float64) {
				return w.zsetModel(known, m, func(o *op) idSet { return o.past })
			})
		}
		w.onDelta = func(old map[string]idSet, x *op, out Value, cs []Conflict) {
			checkConflicts(cs)
			w.checkZSet(out, func(m string) (bool, float64) {
				in := maps.Clone(old[m])
				if in == nil {
					in = idSet{}
				}
				if slices.Contains(x.carried, m) {
					maps.Copy(in, x.obs[m])
					if x.touches(m) {
						in[x.id] = true
					}
				}
				return w.zsetModel(in, m, func(o *op) idSet { return o.obs[m] })
			})
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				z := v.(*ZSet)
				m := rapid.SampledFrom(testMembers).Draw(t, "member")
				switch rapid.IntRange(0, 6).Draw(t, "kind") {
				case 0:
					o.kind, o.all = "clear", true
					z.Clear(s)
				case 1, 2:
					o.kind, o.keys = "remove", []string{m}
					z.Remove(s, m)
					if z.Contains(m) {
						t.Fatalf("%s still a member after Remove", m)
					}
				case 3, 4:
					o.kind, o.keys = "add", []string{m}
					o.score = float64(rapid.IntRange(-3, 3).Draw(t, "score")) / 2
					z.Add(s, m, o.score)
					if got, ok := z.Score(m); !ok || got != o.score {
						t.Fatalf("after Add(%s, %v): %v %v", m, o.score, got, ok)
					}
				default:
					o.kind, o.keys = "incr", []string{m}
					o.score = float64(rapid.IntRange(-3, 3).Draw(t, "delta")) / 4
					before, _ := z.Score(m)
					got, err := z.Incr(s, m, o.score)
					if err != nil {
						t.Fatal(err)
					}
					if sc, _ := z.Score(m); sc != got {
						t.Fatalf("Incr returned %v, the set says %v", got, sc)
					}
					_ = before
				}
			})
		})
	})
}

func TestZSetSemantics(t *testing.T) {
	st := func(region string, wall int64) Stamp {
		return Stamp{Region: region, Time: hlc.Timestamp{WallMS: wall}}
	}
	score := func(v Value, m string) float64 {
		f, ok := v.(*ZSet).Score(m)
		if !ok {
			t.Fatalf("%s is not a member", m)
		}
		return f
	}
	// Concurrent ZINCRBYs in two regions: both count.
	a, b := &ZSet{}, &ZSet{}
	a.Add(st("us", 1), "m", 10)
	b = mustMerge(t, b, a).(*ZSet)
	if _, err := a.Incr(st("us", 2), "m", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Incr(st("eu", 2), "m", 2); err != nil {
		t.Fatal(err)
	}
	ab := mustMerge(t, a, b)
	if got := score(ab, "m"); got != 13 {
		t.Fatalf("concurrent increments: %v, want 13", got)
	}
	// A ZADD that saw the increments resets the score; an increment it
	// did not see counts on top of it.
	a = ab.(*ZSet)
	a.Add(st("us", 3), "m", 100)
	if _, err := b.Incr(st("eu", 3), "m", 5); err != nil {
		t.Fatal(err)
	}
	if got := score(mustMerge(t, a, b), "m"); got != 105 {
		t.Fatalf("an add with a concurrent increment: %v, want 105", got)
	}
	// Concurrent ZADDs: the last writer wins, and it is a conflict.
	c, d := &ZSet{}, &ZSet{}
	c.Add(st("us", 5), "x", 1)
	d.Add(st("eu", 6), "x", 2)
	out, cs, err := Merge(c, d)
	if err != nil || len(cs) != 1 || cs[0].Field != "x" || string(cs[0].Winner.Value) != "2" {
		t.Fatalf("concurrent adds: %+v %v", cs, err)
	}
	if got := score(out, "x"); got != 2 {
		t.Fatalf("last writer: %v, want 2", got)
	}
	// An add wins over a concurrent remove, with its score, even when the
	// remove is later.
	e, f := &ZSet{}, &ZSet{}
	e.Add(st("us", 1), "y", 7)
	f = mustMerge(t, f, e).(*ZSet)
	if _, err := f.Incr(st("eu", 2), "y", 1); err != nil {
		t.Fatal(err)
	}
	e = mustMerge(t, e, f).(*ZSet)
	e.Add(st("us", 3), "y", 9)
	f.Remove(st("eu", 9), "y")
	ef := mustMerge(t, e, f)
	if got := score(ef, "y"); got != 9 {
		t.Fatalf("add against a later remove: %v, want 9", got)
	}
	// After a remove, increments start from 0.
	g := mustMerge(t, &ZSet{}, f).(*ZSet)
	if g.Contains("y") {
		t.Fatal("removed member present")
	}
	if got, _ := g.Incr(st("eu", 10), "y", 3); got != 3 {
		t.Fatalf("an increment after a remove: %v, want 3", got)
	}
	// inf + -inf is refused, and changes nothing.
	h := &ZSet{}
	h.Add(st("us", 1), "z", math.Inf(1))
	before := h.Encode()
	if _, err := h.Incr(st("us", 2), "z", math.Inf(-1)); err == nil || string(h.Encode()) != string(before) {
		t.Fatalf("NaN increment: %v", err)
	}
}
