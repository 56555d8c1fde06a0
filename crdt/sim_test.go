package crdt

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

// The tests below simulate regions that perform operations on one key and
// ship their full state after each, delivered to other regions in a random
// order, some more than once. Alongside, they keep the ground truth: the
// operations each state reflects, and for each operation the operations
// its region had seen. The implementation must agree with models computed
// from the ground truth alone.

type idSet map[int]bool

// op is one operation of a simulation.
type op struct {
	id     int
	region int
	past   idSet // operations seen before it
	stamp  Stamp
	dot    Dot
	kind   string   // "write" (register, map), "add", "remove", "clear", "inc"
	keys   []string // map fields or set members it touched
	all    bool     // it touched every set member
	ver    Version  // register, map: the version it wrote
	delta  int64
	score  float64 // sorted set: the score an add wrote, the delta an incr added
	// carried are the keys (map fields, set members, "" for a register)
	// its delta says something about: those it changed, or every key if
	// the delta is the whole state. obs holds, for each of them, the
	// operations on the key that its region's state had seen when it ran
	// (what it overwrote or removed, or what the whole state says). With
	// full states that is its whole past; with deltas, which carry what
	// their writer had seen of the keys they carry only, it can be less.
	carried []string
	obs     map[string]idSet
}

func (o *op) touches(k string) bool { return o.all || slices.Contains(o.keys, k) }

type message struct {
	enc   []byte
	known idSet
	op    int // the operation it was shipped after
}

type world struct {
	t       *rapid.T
	regions []string
	fresh   func() Value
	states  []Value
	known   []idSet
	lastSeq []uint64
	pos     []uint64
	msgs    []message // the full state after each operation
	ops     []*op
	// deltas: regions ship each operation's delta (Delta) rather than
	// their full state; dmsgs are those, obs what each region's state has
	// seen of each key (see op.obs), keys every key.
	deltas bool
	dmsgs  []message
	obs    []map[string]idSet
	keys   []string
	// onDelta checks a merge of a delta against the model: what the
	// stored state had seen of each key, the operation the delta comes
	// from, the result and the conflicts reported. Without it, onMerge
	// checks merges of deltas too (counters, whose deltas are states).
	onDelta func(old map[string]idSet, x *op, out Value, cs []Conflict)
	// onMerge checks a merge against the model: the stored state (nil
	// for none) and what it reflects, the received state and what it
	// reflects, the result and the conflicts reported.
	onMerge func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict)
}

func newWorld(t *rapid.T, fresh func() Value, keys ...string) *world {
	n := rapid.IntRange(2, 4).Draw(t, "regions")
	w := &world{t: t, regions: []string{"ap", "eu", "sa", "us"}[:n], fresh: fresh, keys: keys}
	w.states = make([]Value, n)
	w.known = make([]idSet, n)
	w.obs = make([]map[string]idSet, n)
	for i := range w.known {
		w.known[i] = idSet{}
		w.obs[i] = map[string]idSet{}
	}
	w.lastSeq = make([]uint64, n)
	w.pos = make([]uint64, n)
	return w
}

// observe records in obs what a state that merged the delta of x (or
// ran x) has seen of the keys the delta carries.
func (w *world) observe(obs map[string]idSet, x *op) {
	for _, k := range x.carried {
		if obs[k] == nil {
			obs[k] = idSet{}
		}
		maps.Copy(obs[k], x.obs[k])
		if x.touches(k) {
			obs[k][x.id] = true
		}
	}
}

// maximalObs returns the operations on key among known that no other
// one among them had seen (op.obs), in last-writer-wins order of the
// versions they wrote.
func (w *world) maximalObs(known idSet, key string) []*op {
	var out []*op
	for id := range known {
		o := w.ops[id]
		if !o.touches(key) {
			continue
		}
		covered := false
		for id2 := range known {
			if id2 != id && w.ops[id2].obs[key][id] {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *op) int { return compareVersions(a.ver, b.ver) })
	return out
}

// deltaModel checks a merge of the delta of x for one key: the versions
// (registers and map fields) the result holds are the operations on the
// key no other had seen, and a conflict is reported exactly when the
// merge brings together versions neither side had seen. It returns
// those versions and whether there is a conflict.
func (w *world) deltaModel(old map[string]idSet, x *op, key string) ([]Version, bool) {
	in := idSet{}
	if slices.Contains(x.carried, key) {
		maps.Copy(in, x.obs[key])
		if x.touches(key) {
			in[x.id] = true
		}
	}
	all := union(old[key], in)
	return versionsOf(w.maximalObs(all, key)), meet(w.maximalObs(old[key], key), w.maximalObs(in, key), old[key], in)
}

// shipped returns the messages regions send each other.
func (w *world) shipped() []message {
	if w.deltas {
		return w.dmsgs
	}
	return w.msgs
}

// local performs an operation in a random region: do applies it to the
// region's value and fills in what it did.
func (w *world) local(do func(v Value, s Stamp, o *op)) {
	t := w.t
	r := rapid.IntRange(0, len(w.regions)-1).Draw(t, "region")
	s := Stamp{Region: w.regions[r], Time: hlc.Timestamp{
		WallMS:  int64(rapid.IntRange(0, 3).Draw(t, "wall")),
		Logical: uint32(rapid.IntRange(0, 1).Draw(t, "logical")),
		Node:    uint32(r),
	}}
	if rapid.Bool().Draw(t, "explicit seq") {
		w.pos[r] += uint64(rapid.IntRange(1, 3).Draw(t, "seq gap"))
		s.Seq = w.pos[r]
	}
	o := &op{id: len(w.ops), region: r, past: maps.Clone(w.known[r]), stamp: s}
	o.dot = Dot{s.Region, max(s.Seq, w.lastSeq[r]+1)}
	w.lastSeq[r] = o.dot.Seq
	v := w.states[r]
	if v == nil {
		v = w.fresh()
	}
	prev := Snapshot(v)
	do(v, s, o)
	if !v.Context().Contains(o.dot) {
		t.Fatalf("context %v lacks the operation's dot %v", v.Context(), o.dot)
	}
	checkRoundTrip(t, v)
	w.states[r] = v
	w.ops = append(w.ops, o)
	w.known[r][o.id] = true
	w.msgs = append(w.msgs, message{v.Encode(), maps.Clone(w.known[r]), o.id})
	// The delta: the operation's effect on prev, and no more than v.
	d := Delta(prev, v)
	checkRoundTrip(t, d)
	if got := mustMerge(t, prev, d).Encode(); !bytes.Equal(got, v.Encode()) {
		t.Fatalf("the state before the operation merged with its delta:\n%x\nwant the state after it\n%x", got, v.Encode())
	}
	if got := mustMerge(t, v, d).Encode(); !bytes.Equal(got, v.Encode()) {
		t.Fatalf("the delta holds more than the state it comes from:\n%x\n%x", got, v.Encode())
	}
	w.dmsgs = append(w.dmsgs, message{d.Encode(), maps.Clone(w.known[r]), o.id})
	o.carried = w.keys
	if !bytes.Equal(d.Encode(), v.Encode()) {
		switch d := d.(type) {
		case *Set:
			o.carried = slices.Collect(maps.Keys(d.members))
			for m := range d.mctx {
				if !slices.Contains(o.carried, m) {
					o.carried = append(o.carried, m)
				}
			}
		case *Map:
			o.carried = slices.Collect(maps.Keys(d.fields))
		case *ZSet:
			o.carried = slices.Collect(maps.Keys(d.members))
			for m := range d.mctx {
				if !slices.Contains(o.carried, m) {
					o.carried = append(o.carried, m)
				}
			}
		default:
			t.Fatalf("a %s's delta is not the whole state", d.Type())
		}
	}
	o.obs = map[string]idSet{}
	for _, k := range o.carried {
		o.obs[k] = maps.Clone(w.obs[r][k])
	}
	w.observe(w.obs[r], o)
}

// deliver merges message m into region r, checking that the merge is
// commutative.
func (w *world) deliver(m, r int) {
	t := w.t
	msg := w.shipped()[m]
	in, err := Decode(msg.enc)
	if err != nil {
		t.Fatalf("decoding a shipped state: %v", err)
	}
	old := w.states[r]
	out, cs, err := Merge(old, in)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	out2, cs2, err := Merge(in, old)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if !bytes.Equal(out.Encode(), out2.Encode()) {
		t.Fatalf("merge is not commutative:\n%x\n%x", out.Encode(), out2.Encode())
	}
	if !reflect.DeepEqual(cs, cs2) {
		t.Fatalf("conflicts depend on the merge order:\n%+v\n%+v", cs, cs2)
	}
	checkRoundTrip(t, out)
	union := maps.Clone(w.known[r])
	maps.Copy(union, msg.known)
	switch {
	case w.deltas && w.onDelta != nil:
		x := w.ops[msg.op]
		before := map[string]idSet{}
		for k, ids := range w.obs[r] {
			before[k] = maps.Clone(ids)
		}
		w.observe(w.obs[r], x)
		w.onDelta(before, x, out, cs)
	case w.onMerge != nil:
		w.onMerge(old, w.known[r], in, msg.known, out, cs)
	}
	w.states[r] = out
	w.known[r] = union
}

// run performs random local operations and deliveries, then delivers
// every message to every region in a random order with duplicates, and
// checks that all regions converged and the merge laws.
func (w *world) run(local func()) {
	t := w.t
	w.deltas = rapid.Bool().Draw(t, "deltas")
	for range rapid.IntRange(1, 30).Draw(t, "steps") {
		if len(w.msgs) == 0 || rapid.Bool().Draw(t, "local") {
			local()
		} else {
			w.deliver(rapid.IntRange(0, len(w.msgs)-1).Draw(t, "msg"), rapid.IntRange(0, len(w.regions)-1).Draw(t, "to"))
		}
	}
	all := make([]int, len(w.msgs))
	for i := range all {
		all[i] = i
	}
	for r := range w.regions {
		order := rapid.Permutation(all).Draw(t, "order")
		order = append(order, rapid.SliceOfN(rapid.SampledFrom(all), 0, 5).Draw(t, "dups")...)
		for _, m := range order {
			w.deliver(m, r)
		}
	}
	want := w.states[0].Encode()
	for r := range w.regions {
		if got := w.states[r].Encode(); !bytes.Equal(got, want) {
			t.Fatalf("regions %s and %s did not converge:\n%x\n%x", w.regions[0], w.regions[r], want, got)
		}
	}
	// Folding the messages from nothing, in their order, gives the same,
	// and so do the full states when the regions shipped deltas, and the
	// deltas in any order.
	folds := [][]message{w.msgs}
	if w.deltas {
		folds = append(folds, w.dmsgs, rapid.Permutation(w.dmsgs).Draw(t, "delta order"))
	}
	for _, msgs := range folds {
		var v Value
		for _, m := range msgs {
			in, _ := Decode(m.enc)
			v, _, _ = Merge(v, in)
		}
		if got := v.Encode(); !bytes.Equal(got, want) {
			t.Fatalf("folding all messages gives another state:\n%x\n%x", want, got)
		}
	}
	w.checkLaws()
}

// checkLaws checks associativity and idempotence of Merge on states of
// the simulation (commutativity is checked by every delivery).
func (w *world) checkLaws() {
	t := w.t
	pool := slices.Clone(w.states)
	for _, m := range w.shipped() {
		v, _ := Decode(m.enc)
		pool = append(pool, v)
	}
	pick := rapid.SampledFrom(pool)
	for range 5 {
		a, b, c := pick.Draw(t, "a"), pick.Draw(t, "b"), pick.Draw(t, "c")
		ab := mustMerge(t, a, b)
		abc := mustMerge(t, ab, c)
		bc := mustMerge(t, b, c)
		abc2 := mustMerge(t, a, bc)
		if !bytes.Equal(abc.Encode(), abc2.Encode()) {
			t.Fatalf("merge is not associative")
		}
		aa, cs, err := Merge(a, a)
		if err != nil || len(cs) != 0 || !bytes.Equal(aa.Encode(), a.Encode()) {
			t.Fatalf("merge is not idempotent: %v %v", cs, err)
		}
		// Merging a state that was merged in before changes nothing.
		again, cs, err := Merge(ab, b)
		if err != nil || len(cs) != 0 || !bytes.Equal(again.Encode(), ab.Encode()) {
			t.Fatalf("redelivery changed the state or reported conflicts: %v %v", cs, err)
		}
	}
}

func mustMerge(t interface{ Fatalf(string, ...any) }, a, b Value) Value {
	v, _, err := Merge(a, b)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	return v
}

// maximal returns the operations of known that pass keep and are not in
// the past of another one that does, in last-writer-wins order of the
// versions they wrote.
func (w *world) maximal(known idSet, keep func(*op) bool) []*op {
	var out []*op
	for id := range known {
		o := w.ops[id]
		if !keep(o) {
			continue
		}
		covered := false
		for id2 := range known {
			if o2 := w.ops[id2]; id2 != id && keep(o2) && o2.past[id] {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *op) int { return compareVersions(a.ver, b.ver) })
	return out
}

func versionsOf(ops []*op) []Version {
	var vs []Version
	for _, o := range ops {
		vs = append(vs, o.ver)
	}
	return vs
}

// meet reports whether merging states that reflect knownA and knownB
// brings concurrent writes together for the first time: whether a's
// current writes include one b has not seen and b's one a has not seen.
func meet(maxA, maxB []*op, knownA, knownB idSet) bool {
	return slices.ContainsFunc(maxA, func(o *op) bool { return !knownB[o.id] }) &&
		slices.ContainsFunc(maxB, func(o *op) bool { return !knownA[o.id] })
}

func union(a, b idSet) idSet {
	u := idSet{}
	maps.Copy(u, a)
	maps.Copy(u, b)
	return u
}

func value(t *rapid.T) []byte {
	return []byte(rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(t, "value"))
}

func checkWrite(t *rapid.T, got Version, s Stamp, o *op) {
	if got.Dot() != o.dot || got.Time != s.Time {
		t.Fatalf("write at %+v gave version %+v, want dot %v", s, got, o.dot)
	}
}

func TestRegisterModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(Register) }, "")
		every := func(*op) bool { return true }
		w.onDelta = func(old map[string]idSet, x *op, out Value, cs []Conflict) {
			want, conflict := w.deltaModel(old, x, "")
			if got := out.(*Register).Versions(); !reflect.DeepEqual(got, want) {
				t.Fatalf("versions after merging a delta:\n got %+v\nwant %+v", got, want)
			}
			if conflict != (len(cs) > 0) || len(cs) > 1 || conflict && !reflect.DeepEqual(cs[0].Versions, want) {
				t.Fatalf("conflicts %+v, want a conflict: %v with versions %+v", cs, conflict, want)
			}
		}
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			r := out.(*Register)
			known := union(oldKnown, inKnown)
			want := versionsOf(w.maximal(known, every))
			if got := r.Versions(); !reflect.DeepEqual(got, want) {
				t.Fatalf("versions after merge:\n got %+v\nwant %+v", got, want)
			}
			winner := want[len(want)-1]
			if got, _ := r.Winner(); !reflect.DeepEqual(got, winner) {
				t.Fatalf("winner %+v, want the newest concurrent version %+v", got, winner)
			}
			if v, ok := r.Get(); ok == winner.Deleted || !bytes.Equal(v, winner.Value) {
				t.Fatalf("Get = %q, %v; want %+v", v, ok, winner)
			}
			conflict := meet(w.maximal(oldKnown, every), w.maximal(inKnown, every), oldKnown, inKnown)
			if conflict != (len(cs) > 0) || len(cs) > 1 {
				t.Fatalf("conflicts %+v, want a conflict: %v", cs, conflict)
			}
			if conflict {
				c := cs[0]
				if c.Field != "" || c.Rule != "lww" || !reflect.DeepEqual(c.Versions, want) || !reflect.DeepEqual(c.Winner, winner) {
					t.Fatalf("conflict %+v, want versions %+v", c, want)
				}
			}
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				r := v.(*Register)
				o.kind, o.all = "write", true
				if rapid.IntRange(0, 3).Draw(t, "clear") == 0 {
					r.Clear(s)
				} else {
					r.Set(s, value(t), "")
				}
				vs := r.Versions()
				if len(vs) != 1 {
					t.Fatalf("a local write left %d versions", len(vs))
				}
				checkWrite(t, vs[0], s, o)
				o.ver = vs[0]
			})
		})
	})
}

func init() {
	// nest is neither commutative nor associative, and a deletion loses.
	RegisterResolver("test-nest", func(a, b Version) Version {
		switch {
		case a.Deleted:
			return b
		case b.Deleted:
			return a
		}
		return Version{Value: fmt.Appendf(nil, "(%s %s)", a.Value, b.Value)}
	})
}

func TestRegisterResolverModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(Register) }, "")
		every := func(*op) bool { return true }
		w.onDelta = func(old map[string]idSet, x *op, out Value, cs []Conflict) {
			if want, _ := w.deltaModel(old, x, ""); !reflect.DeepEqual(out.(*Register).Versions(), want) {
				t.Fatalf("versions after merging a delta:\n got %+v\nwant %+v", out.(*Register).Versions(), want)
			}
		}
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			r := out.(*Register)
			vs := versionsOf(w.maximal(union(oldKnown, inKnown), every))
			if got := r.Versions(); !reflect.DeepEqual(got, vs) {
				t.Fatalf("versions after merge:\n got %+v\nwant %+v", got, vs)
			}
			// The winner is the resolver named by the newest version,
			// folded over the concurrent versions, oldest first.
			want := vs[0]
			for _, v := range vs[1:] {
				if vs[len(vs)-1].Resolver == "" {
					want = v
					continue
				}
				res := want
				switch {
				case want.Deleted:
					res = v
				case !v.Deleted:
					res = Version{Value: fmt.Appendf(nil, "(%s %s)", want.Value, v.Value)}
				}
				want = v
				want.Value, want.Deleted = res.Value, res.Deleted
			}
			if got, _ := r.Winner(); !reflect.DeepEqual(got, want) {
				t.Fatalf("winner %+v, want %+v", got, want)
			}
			for _, c := range cs {
				if c.Rule != vs[len(vs)-1].Resolver && !(c.Rule == "lww" && vs[len(vs)-1].Resolver == "") {
					t.Fatalf("conflict rule %q", c.Rule)
				}
			}
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				r := v.(*Register)
				o.kind, o.all = "write", true
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					r.Clear(s)
				case 1:
					r.Set(s, value(t), "lww")
				default:
					r.Set(s, value(t), "test-nest")
				}
				checkWrite(t, r.Versions()[0], s, o)
				o.ver = r.Versions()[0]
			})
		})
	})
}

var testFields = []string{"f", "g", "h"}

func TestMapModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(Map) }, testFields...)
		w.onDelta = func(old map[string]idSet, x *op, out Value, cs []Conflict) {
			m := out.(*Map)
			var conflicts []string
			for _, f := range testFields {
				want, conflict := w.deltaModel(old, x, f)
				if got := m.Versions(f); !reflect.DeepEqual(got, want) {
					t.Fatalf("versions of %s after merging a delta:\n got %+v\nwant %+v", f, got, want)
				}
				if conflict {
					conflicts = append(conflicts, f)
					if i := slices.IndexFunc(cs, func(c Conflict) bool { return c.Field == f }); i < 0 || !reflect.DeepEqual(cs[i].Versions, want) {
						t.Fatalf("conflicts %+v, want one on %s with versions %+v", cs, f, want)
					}
				}
			}
			if len(cs) != len(conflicts) {
				t.Fatalf("conflicts %+v, want them on %v", cs, conflicts)
			}
		}
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			m := out.(*Map)
			known := union(oldKnown, inKnown)
			var conflicts []string
			var live []string
			for _, f := range testFields {
				on := func(o *op) bool { return o.touches(f) }
				want := versionsOf(w.maximal(known, on))
				if got := m.Versions(f); !reflect.DeepEqual(got, want) {
					t.Fatalf("versions of %s after merge:\n got %+v\nwant %+v", f, got, want)
				}
				if len(want) > 0 && !want[len(want)-1].Deleted {
					live = append(live, f)
					if v, _ := m.Get(f); !bytes.Equal(v, want[len(want)-1].Value) {
						t.Fatalf("Get(%s) = %q, want %q", f, v, want[len(want)-1].Value)
					}
				}
				if meet(w.maximal(oldKnown, on), w.maximal(inKnown, on), oldKnown, inKnown) {
					conflicts = append(conflicts, f)
					i := slices.IndexFunc(cs, func(c Conflict) bool { return c.Field == f })
					if i < 0 || !reflect.DeepEqual(cs[i].Versions, want) || !reflect.DeepEqual(cs[i].Winner, want[len(want)-1]) || cs[i].Rule != "lww" {
						t.Fatalf("conflicts %+v, want one on %s with versions %+v", cs, f, want)
					}
				}
			}
			if len(cs) != len(conflicts) {
				t.Fatalf("conflicts %+v, want them on %v", cs, conflicts)
			}
			if got := m.Fields(); !slices.Equal(got, live) || m.Live() != (len(live) > 0) {
				t.Fatalf("fields %v, want %v", got, live)
			}
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				m := v.(*Map)
				o.kind = "write"
				switch rapid.IntRange(0, 5).Draw(t, "kind") {
				case 0:
					// Clear deletes the fields the region holds.
					o.keys = slices.Sorted(maps.Keys(m.fields))
					m.Clear(s)
				case 1:
					o.keys = rapid.SliceOfNDistinct(rapid.SampledFrom(testFields), 1, 2, rapid.ID[string]).Draw(t, "fields")
					m.Delete(s, o.keys...)
				default:
					o.keys = []string{rapid.SampledFrom(testFields).Draw(t, "field")}
					m.Set(s, o.keys[0], value(t))
				}
				for _, f := range o.keys {
					vs := m.Versions(f)
					checkWrite(t, vs[0], s, o)
					o.ver = vs[0]
				}
			})
		})
	})
}

var testMembers = []string{"x", "y", "z"}

func TestSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(Set) }, testMembers...)
		w.onDelta = func(old map[string]idSet, x *op, out Value, cs []Conflict) {
			if len(cs) > 0 {
				t.Fatalf("set merge reported conflicts %+v", cs)
			}
			var want []string
			for _, m := range testMembers {
				in := union(old[m], idSet{})
				if slices.Contains(x.carried, m) {
					in = union(in, x.obs[m])
					if x.touches(m) {
						in[x.id] = true
					}
				}
				if slices.ContainsFunc(w.maximalObs(in, m), func(o *op) bool { return o.kind == "add" }) {
					want = append(want, m)
				}
			}
			if got := out.(*Set).Members(); !slices.Equal(got, want) {
				t.Fatalf("members after merging a delta %v, want %v", got, want)
			}
		}
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			if len(cs) > 0 {
				t.Fatalf("set merge reported conflicts %+v", cs)
			}
			// A member is in the set if one of the latest operations on
			// it is an add: an add survives every remove that did not see
			// it.
			known := union(oldKnown, inKnown)
			var want []string
			for _, m := range testMembers {
				if slices.ContainsFunc(w.maximal(known, func(o *op) bool { return o.touches(m) }), func(o *op) bool { return o.kind == "add" }) {
					want = append(want, m)
				}
			}
			if got := out.(*Set).Members(); !slices.Equal(got, want) {
				t.Fatalf("members %v, want %v", got, want)
			}
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				set := v.(*Set)
				members := rapid.SliceOfNDistinct(rapid.SampledFrom(testMembers), 1, 2, rapid.ID[string]).Draw(t, "members")
				switch rapid.IntRange(0, 4).Draw(t, "kind") {
				case 0:
					o.kind, o.all = "clear", true
					set.Clear(s)
				case 1, 2:
					o.kind, o.keys = "remove", members
					set.Remove(s, members...)
				default:
					o.kind, o.keys = "add", members
					set.Add(s, members...)
					for _, m := range members {
						if !set.Contains(m) {
							t.Fatalf("%s missing after Add", m)
						}
					}
				}
			})
		})
	})
}

func TestCounterModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := newWorld(t, func() Value { return new(Counter) })
		clears := rapid.Bool().Draw(t, "with clears")
		w.onMerge = func(old Value, oldKnown idSet, in Value, inKnown idSet, out Value, cs []Conflict) {
			if len(cs) > 0 {
				t.Fatalf("counter merge reported conflicts %+v", cs)
			}
			// The value is the sum of the increments that no clear saw.
			known := union(oldKnown, inKnown)
			var sum int64
			live := false
			for id := range known {
				if o := w.ops[id]; o.kind == "inc" && !slices.ContainsFunc(w.ops, func(c *op) bool { return known[c.id] && c.kind == "clear" && c.past[id] }) {
					sum += o.delta
					live = true
				}
			}
			c := out.(*Counter)
			if c.Value() != sum || c.Live() != live {
				t.Fatalf("counter %d (live %v), want %d (live %v)", c.Value(), c.Live(), sum, live)
			}
		}
		w.run(func() {
			w.local(func(v Value, s Stamp, o *op) {
				c := v.(*Counter)
				if clears && rapid.IntRange(0, 4).Draw(t, "kind") == 0 {
					o.kind = "clear"
					c.Clear(s)
					return
				}
				o.kind = "inc"
				o.delta = rapid.Int64Range(-1e12, 1e12).Draw(t, "delta")
				if err := c.Add(s, o.delta); err != nil {
					t.Fatal(err)
				}
			})
		})
		if !clears {
			var sum int64
			for _, o := range w.ops {
				sum += o.delta
			}
			if got := w.states[0].(*Counter).Value(); got != sum {
				t.Fatalf("counter %d, want the sum of all increments %d", got, sum)
			}
		}
	})
}

// checkRoundTrip checks that v survives encoding and decoding.
func checkRoundTrip(t interface{ Fatalf(string, ...any) }, v Value) {
	enc := v.Encode()
	d, err := Decode(enc)
	if err != nil {
		t.Fatalf("decoding %x: %v", enc, err)
	}
	if got := d.Encode(); !bytes.Equal(got, enc) {
		t.Fatalf("re-encoding changed the bytes:\n%x\n%x", enc, got)
	}
	if d.Type() != v.Type() || d.Live() != v.Live() || !equalVV(d.Context(), v.Context()) {
		t.Fatalf("decoded %s (live %v, context %v), want %s (live %v, context %v)",
			d.Type(), d.Live(), d.Context(), v.Type(), v.Live(), v.Context())
	}
	var same bool
	switch v := v.(type) {
	case *Register:
		d := d.(*Register)
		w1, _ := v.Winner()
		w2, _ := d.Winner()
		same = reflect.DeepEqual(v.Versions(), d.Versions()) && reflect.DeepEqual(w1, w2)
	case *Counter:
		d := d.(*Counter)
		same = v.Value() == d.Value() && maps.Equal(v.rows, d.rows) && equalVV(v.del, d.del)
	case *Set:
		same = slices.Equal(v.Members(), d.(*Set).Members())
	case *Map:
		d := d.(*Map)
		same = len(v.fields) == len(d.fields)
		for f, vs := range v.fields {
			same = same && reflect.DeepEqual(vs, d.fields[f])
		}
	case *ZSet:
		d := d.(*ZSet)
		m1, s1 := v.Members()
		m2, s2 := d.Members()
		same = slices.Equal(m1, m2) && slices.EqualFunc(s1, s2, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }) &&
			len(v.members) == len(d.members)
		for m, zm := range v.members {
			same = same && reflect.DeepEqual(zm, d.members[m])
		}
	}
	if !same {
		t.Fatalf("decoded %+v, want %+v", d, v)
	}
}
