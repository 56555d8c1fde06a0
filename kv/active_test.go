package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/stream"
)

// testResolver is a register resolver for the tests: the larger value
// wins (a deletion counts as the smallest).
const testResolver = "kvtest-max"

func init() {
	crdt.RegisterResolver(testResolver, func(a, b crdt.Version) crdt.Version {
		if !a.Deleted && (b.Deleted || bytes.Compare(a.Value, b.Value) > 0) {
			return a
		}
		return b
	})
}

// tb is what the simulated regions need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

const simEpochMS = 1_700_000_000_000

// simRegion is one region's group of an active keyspace: its own storage
// and state machine, a log of what it applied, and an HLC reading a
// simulated wall clock (the shared *now plus the region's skew).
type simRegion struct {
	t     tb
	name  string
	db    *storage.DB
	sm    *StateMachine
	index uint64
	log   [][]byte // log[i] was applied at index i+1
	now   *int64
	skew  int64
	clock *hlc.Clock
}

func newSim(t tb, now *int64, names ...string) []*simRegion {
	t.Helper()
	out := make([]*simRegion, len(names))
	for i, name := range names {
		db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { _ = db.Close() })
		r := &simRegion{t: t, name: name, db: db, sm: &StateMachine{Group: uint64(11 + i), Cluster: "c", Region: name}, now: now}
		r.clock = hlc.NewWithWall(uint32(i+1), 0, func() int64 { return *r.now + r.skew })
		out[i] = r
	}
	return out
}

func (r *simRegion) nowMS() int64 { return *r.now + r.skew }

// applyRaw applies an encoded command at the group's next index.
func (r *simRegion) applyRaw(cmd []byte) Result {
	r.t.Helper()
	r.index++
	b := r.db.NewBatch()
	v, err := r.sm.Apply(b, r.index, cmd)
	if err != nil {
		b.Close()
		r.t.Fatalf("fatal apply error at %d: %v", r.index, err)
	}
	res := v.(Result)
	if err := b.Commit(false); err != nil {
		r.t.Fatalf("commit: %v", err)
	}
	r.log = append(r.log, cmd)
	return res
}

// do applies a local op stamped now; it returns the stamp's time.
func (r *simRegion) do(op Op, n int64, flags uint64, args ...string) (Result, hlc.Timestamp) {
	r.t.Helper()
	st := ActiveStamp{Region: r.name, Time: r.clock.Now()}
	c := ActiveCommand(op, st, r.nowMS(), bs(args...)...)
	c.Int, c.Flags = n, flags
	return r.applyRaw(c.Encode()), st.Time
}

func (r *simRegion) mustDo(op Op, n int64, args ...string) Result {
	r.t.Helper()
	res, _ := r.do(op, n, 0, args...)
	if res.Err != nil {
		r.t.Fatalf("%s: %s %q: %v", r.name, op, args, res.Err)
	}
	return res
}

func bs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

// shipAll returns the merges for every entry of the region's log, as its
// stream source would make them now.
func (r *simRegion) shipAll() [][]byte {
	r.t.Helper()
	var out [][]byte
	for i, cmd := range r.log {
		m, err := ActiveChange(r.db, r.sm.Group, uint64(i+1), cmd)
		if err != nil {
			r.t.Fatalf("%s: ActiveChange: %v", r.name, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// deliver applies a merge from another region; it must succeed.
func (r *simRegion) deliver(m []byte) Result {
	r.t.Helper()
	res := r.applyRaw(m)
	if res.Err != nil {
		r.t.Fatalf("%s: merge: %v", r.name, res.Err)
	}
	return res
}

func (r *simRegion) get(key string) (ActiveValue, bool) {
	r.t.Helper()
	v, ok, err := GetActive(r.db, r.sm.Group, []byte(key))
	if err != nil {
		r.t.Fatalf("%s: GetActive(%q): %v", r.name, key, err)
	}
	return v, ok
}

func (r *simRegion) raw(key string) []byte {
	r.t.Helper()
	v, _, err := r.db.Get(r.sm.Group, []byte(key))
	if err != nil {
		r.t.Fatalf("get: %v", err)
	}
	return v
}

func (r *simRegion) ledger() []LedgerEntry {
	r.t.Helper()
	es, err := ReadLedger(r.db, r.sm.Group, LedgerQuery{Limit: 1 << 20})
	if err != nil {
		r.t.Fatalf("%s: ReadLedger: %v", r.name, err)
	}
	return es
}

// dump returns everything the region's group holds: data, cursors and
// ledger.
func (r *simRegion) dump() string {
	r.t.Helper()
	var sb strings.Builder
	err := r.db.Scan(r.sm.Group, nil, nil, func(k, v []byte) bool {
		fmt.Fprintf(&sb, "d %q=%x\n", k, v)
		return true
	})
	if err == nil {
		err = r.db.ScanLedger(r.sm.Group, nil, nil, func(k, v []byte) bool {
			fmt.Fprintf(&sb, "l %x=%s\n", k, v)
			return true
		})
	}
	if err != nil {
		r.t.Fatalf("dump: %v", err)
	}
	cs, err := r.db.Cursors(r.sm.Group)
	if err != nil {
		r.t.Fatalf("cursors: %v", err)
	}
	fmt.Fprintf(&sb, "c %v\n", cs)
	return sb.String()
}

// exchange ships every region's current states to every other region.
func exchange(regions []*simRegion) {
	msgs := make([][][]byte, len(regions))
	for i, r := range regions {
		msgs[i] = r.shipAll()
	}
	for i := range regions {
		for j, r := range regions {
			if i != j {
				for _, m := range msgs[i] {
					r.deliver(m)
				}
			}
		}
	}
}

func TestActiveRegisterConflictLedger(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "ap", "eu", "us")
	ap, eu, us := rs[0], rs[1], rs[2]
	// Concurrent writes: us writes later by HLC.
	ap.mustDo(OpActiveSet, 0, "k", "from-ap", "")
	now += 5
	us.mustDo(OpActiveSet, 0, "k", "from-us", "")
	apMsg, usMsg := ap.shipAll(), us.shipAll()
	// eu gets ap's first (no conflict), then us's (conflict).
	if res := eu.deliver(apMsg[0]); res.N != 0 {
		t.Fatalf("first merge found %d conflicts", res.N)
	}
	if res := eu.deliver(usMsg[0]); res.N != 1 {
		t.Fatalf("concurrent merge found %d conflicts, want 1", res.N)
	}
	recordedAt := map[string]uint64{"eu": eu.index}
	// Redelivery, in any order, finds nothing new.
	for _, m := range [][]byte{usMsg[0], apMsg[0], usMsg[0]} {
		if res := eu.deliver(m); res.N != 0 {
			t.Fatalf("redelivery found %d conflicts", res.N)
		}
	}
	ap.deliver(usMsg[0])
	recordedAt["ap"] = ap.index
	us.deliver(apMsg[0])
	recordedAt["us"] = us.index
	us.deliver(apMsg[0])
	var ids []string
	for _, r := range rs {
		v, ok := r.get("k")
		if !ok || string(v.Value) != "from-us" || v.Type != TypeString || v.Kind != "register" {
			t.Fatalf("%s reads %+v %v, want from-us", r.name, v, ok)
		}
		es := r.ledger()
		if len(es) != 1 {
			t.Fatalf("%s ledger has %d entries, want 1: %+v", r.name, len(es), es)
		}
		e := es[0]
		if e.Kind != LedgerRegister || string(e.Key) != "k" || e.Rule != "lww" || len(e.Versions) != 2 ||
			string(e.Versions[0].Value) != "from-ap" || e.Versions[0].Region != "ap" ||
			string(e.Winner.Value) != "from-us" || e.Winner.Region != "us" || e.Seq != 1 || e.Index != recordedAt[r.name] {
			t.Fatalf("%s ledger entry %+v", r.name, e)
		}
		ids = append(ids, e.ID)
		st, err := LedgerInfo(r.db, r.sm.Group)
		if err != nil || st.Recorded != 1 || st.Oldest != 1 || st.LastIndex != e.Index {
			t.Fatalf("%s ledger info %+v %v", r.name, st, err)
		}
		if !bytes.Equal(r.raw("k"), ap.raw("k")) {
			t.Fatalf("%s stores other bytes than ap", r.name)
		}
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("the regions gave one conflict different ids: %v", ids)
	}
}

func TestActiveLedgerQueries(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b")
	a, b := rs[0], rs[1]
	for i := range 5 {
		key := fmt.Sprintf("k%d", i%2)
		now += 10
		a.mustDo(OpActiveSet, 0, key, fmt.Sprintf("a%d", i), "")
		b.mustDo(OpActiveHSet, 0, "h", "f", fmt.Sprintf("b%d", i))
		a.mustDo(OpActiveHSet, 0, "h", "f", fmt.Sprintf("a%d", i))
		b.mustDo(OpActiveSet, 0, key, fmt.Sprintf("b%d", i), "")
		exchange(rs)
	}
	all := a.ledger()
	if len(all) != 10 {
		t.Fatalf("%d entries, want 10: %+v", len(all), all)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.TimeMS == 0 {
			t.Fatalf("entry %d: %+v", i, e)
		}
		if string(e.Key) == "h" && (e.Kind != LedgerField || string(e.Field) != "f") {
			t.Fatalf("map conflict %+v", e)
		}
	}
	q := func(q LedgerQuery) []uint64 {
		es, err := ReadLedger(a.db, a.sm.Group, q)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, e := range es {
			seqs = append(seqs, e.Seq)
		}
		return seqs
	}
	var k1 []uint64
	for _, e := range all {
		if string(e.Key) == "k1" {
			k1 = append(k1, e.Seq)
		}
	}
	if got := q(LedgerQuery{Key: []byte("k1")}); !slices.Equal(got, k1) || len(k1) != 2 {
		t.Fatalf("key filter: %v, want %v", got, k1)
	}
	if got := q(LedgerQuery{Key: []byte("k1"), AfterSeq: k1[0]}); !slices.Equal(got, k1[1:]) {
		t.Fatalf("key filter after %d: %v", k1[0], got)
	}
	if got := q(LedgerQuery{Key: []byte("k")}); len(got) != 0 {
		t.Fatalf("a key prefix matched %v", got)
	}
	if got := q(LedgerQuery{AfterSeq: 7, Limit: 2}); !slices.Equal(got, []uint64{8, 9}) {
		t.Fatalf("after 7, limit 2: %v", got)
	}
	if got := q(LedgerQuery{FromIndex: all[6].Index}); len(got) == 0 || got[0] > 7 || got[len(got)-1] != 10 {
		t.Fatalf("from index %d: %v", all[6].Index, got)
	}
	if got := q(LedgerQuery{SinceMS: all[9].TimeMS}); len(got) == 0 || got[len(got)-1] != 10 || slices.Contains(got, 1) {
		t.Fatalf("since %d: %v", all[9].TimeMS, got)
	}
	// Entries serialize as JSON with binary-safe keys.
	if _, err := json.Marshal(all); err != nil {
		t.Fatal(err)
	}
}

func TestActiveCounterSetMapConverge(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	a.mustDo(OpActiveIncr, 5, "n")
	b.mustDo(OpActiveIncr, -2, "n")
	c.mustDo(OpActiveIncr, 10, "n")
	if r := a.mustDo(OpActiveIncr, 1, "n"); r.N != 6 {
		t.Fatalf("local counter %d", r.N)
	}
	a.mustDo(OpActiveSAdd, 0, "s", "x", "y")
	a.mustDo(OpActiveHSet, 0, "h", "f1", "v1", "f2", "v2")
	exchange(rs)
	// Concurrently: a adds x again, b removes x and y, c deletes field f1
	// while a rewrites it.
	a.mustDo(OpActiveSAdd, 0, "s", "x")
	if r := b.mustDo(OpActiveSRem, 0, "s", "x", "y", "nope"); r.N != 2 {
		t.Fatalf("srem removed %d", r.N)
	}
	if r := c.mustDo(OpActiveHDel, 0, "h", "f1"); r.N != 1 {
		t.Fatalf("hdel removed %d", r.N)
	}
	now += 3
	a.mustDo(OpActiveHSet, 0, "h", "f1", "v1b")
	exchange(rs)
	for _, r := range rs {
		n, _ := r.get("n")
		s, _ := r.get("s")
		h, _ := r.get("h")
		if n.Counter != 14 || string(n.Value) != "14" || n.Type != TypeString || n.Kind != "counter" {
			t.Fatalf("%s counter %+v", r.name, n)
		}
		if s.Type != TypeSet || len(s.Members) != 1 || string(s.Members[0]) != "x" {
			t.Fatalf("%s set %+v: add must win over the concurrent remove, y must go", r.name, s)
		}
		if h.Type != TypeHash || len(h.Fields) != 2 || string(h.Fields[0].Value) != "v1b" || string(h.Fields[1].Value) != "v2" {
			t.Fatalf("%s hash %+v", r.name, h)
		}
		for _, k := range []string{"n", "s", "h"} {
			if !bytes.Equal(r.raw(k), a.raw(k)) {
				t.Fatalf("%s: %s stored differently", r.name, k)
			}
		}
	}
	// Deletes are tombstones: absent everywhere, still stored, and an old
	// state delivered again does not bring the key back.
	old := a.shipAll()
	if r := b.mustDo(OpActiveDel, 0, "n", "s", "h", "missing"); r.N != 3 {
		t.Fatalf("del counted %d", r.N)
	}
	exchange(rs)
	for _, m := range old {
		c.deliver(m)
	}
	for _, r := range rs {
		for _, k := range []string{"n", "s", "h"} {
			if v, ok := r.get(k); ok {
				t.Fatalf("%s: deleted %s reads %+v", r.name, k, v)
			}
			if r.raw(k) == nil {
				t.Fatalf("%s: the tombstone of %s was dropped", r.name, k)
			}
		}
	}
	// A deleted counter counts again from zero.
	if r := c.mustDo(OpActiveIncr, 3, "n"); r.N != 3 {
		t.Fatalf("counter after delete: %d", r.N)
	}
}

// TestActiveCausalOverwrite: a region whose clock is behind still
// overwrites what it has seen, and its write then wins everywhere.
func TestActiveCausalOverwrite(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b")
	a, b := rs[0], rs[1]
	a.skew = -400 // a's clock is behind b's (within the skew allowed)
	_, old := b.do(OpActiveSet, 0, 0, "k", "old", "")
	b.mustDo(OpActiveHSet, 0, "h", "f", "old")
	for _, m := range b.shipAll() {
		a.deliver(m)
	}
	a.mustDo(OpActiveSet, 0, "k", "new", "")
	a.mustDo(OpActiveHSet, 0, "h", "f", "new")
	exchange(rs)
	for _, r := range rs {
		k, _ := r.get("k")
		h, _ := r.get("h")
		if string(k.Value) != "new" || len(h.Fields) != 1 || string(h.Fields[0].Value) != "new" {
			t.Fatalf("%s reads %q and %+v, want the later writes", r.name, k.Value, h.Fields)
		}
		if es := r.ledger(); len(es) != 0 {
			t.Fatalf("%s recorded an overwrite as a conflict: %+v", r.name, es)
		}
	}
	// The overwriting version carries a time after the one it replaced,
	// so it also wins over b's concurrent writes made before it.
	s, err := decodeActiveState(payloadOf(t, a, "k"))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.val.(*crdt.Register).Winner()
	if w.Region != "a" || !old.Less(w.Time) || w.Time.Node != 1 {
		t.Fatalf("winner %+v, overwritten version at %s", w, old)
	}
}

func TestActiveResolver(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b", "c")
	// The larger value wins, whatever the times.
	rs[0].mustDo(OpActiveSet, 0, "k", "zzz", testResolver)
	now += 50
	rs[1].mustDo(OpActiveSet, 0, "k", "aaa", testResolver)
	now += 50
	rs[2].mustDo(OpActiveSet, 0, "k", "mmm", testResolver)
	exchange(rs)
	for _, r := range rs {
		if v, _ := r.get("k"); string(v.Value) != "zzz" {
			t.Fatalf("%s reads %q, want the resolver's choice", r.name, v.Value)
		}
		for _, e := range r.ledger() {
			if e.Rule != testResolver || string(e.Winner.Value) != "zzz" {
				t.Fatalf("%s: ledger entry %+v", r.name, e)
			}
		}
		if len(r.ledger()) == 0 {
			t.Fatalf("%s recorded nothing", r.name)
		}
	}
}

// TestActiveTypeChange: a deleted key may be written as another kind (the
// next generation); a concurrent write of the old kind loses, as a type
// conflict recorded in the ledger.
func TestActiveTypeChange(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	a.mustDo(OpActiveSAdd, 0, "k", "x")
	exchange(rs)
	a.mustDo(OpActiveDel, 0, "k")
	a.mustDo(OpActiveSet, 0, "k", "now a string", "")
	b.mustDo(OpActiveSAdd, 0, "k", "y") // concurrent with both
	exchange(rs)
	exchange(rs)
	for _, r := range rs {
		v, ok := r.get("k")
		if !ok || v.Kind != "register" || string(v.Value) != "now a string" {
			t.Fatalf("%s reads %+v", r.name, v)
		}
		if !bytes.Equal(r.raw("k"), a.raw("k")) {
			t.Fatalf("%s stores other bytes", r.name)
		}
	}
	for _, r := range []*simRegion{a, b} {
		es := r.ledger()
		if len(es) != 1 || es[0].Kind != LedgerType || es[0].Rule != LedgerType || es[0].Winner.Kind != "register" ||
			es[0].Versions[0].Kind != "set" || es[0].Winner.Gen != 1 {
			t.Fatalf("%s ledger %+v", r.name, es)
		}
		lost, ok, err := ActiveValueOf(Record{Type: TypeActive, Payload: es[0].Versions[0].State})
		if err != nil || !ok || !slices.ContainsFunc(lost.Members, func(m []byte) bool { return string(m) == "y" }) {
			t.Fatalf("%s: the losing state %+v %v %v", r.name, lost, ok, err)
		}
	}
	// c received a's state before b's or after: either way it recorded
	// the conflict at most once.
	if n := len(c.ledger()); n > 1 {
		t.Fatalf("c recorded %d entries", n)
	}
	// Regions that create a key concurrently as different kinds converge
	// on the higher kind.
	a.mustDo(OpActiveHSet, 0, "k2", "f", "v")
	b.mustDo(OpActiveIncr, 1, "k2")
	c.mustDo(OpActiveSet, 0, "k2", "s", "")
	exchange(rs)
	for _, r := range rs {
		if v, _ := r.get("k2"); v.Kind != "map" || v.Type != TypeHash {
			t.Fatalf("%s reads %+v", r.name, v)
		}
	}
}

// TestActiveRefusalsApplyNothing: every refused op leaves the group's
// storage exactly as it was.
func TestActiveRefusalsApplyNothing(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a")
	a := rs[0]
	a.mustDo(OpActiveSAdd, 0, "set", "m")
	a.mustDo(OpActiveIncr, 1, "ctr")
	a.mustDo(OpActiveSet, 0, "reg", "v", "")
	a.mustDo(OpActiveHSet, 0, "hash", "f", "v")
	a.mustDo(OpActiveIncr, 1<<62, "big")
	a.mustDo(OpActiveIncr, 1<<62-1, "big")
	before := a.dump()
	stamp := func(region string, aheadMS int64) []byte {
		return ActiveStamp{Region: region, Time: hlc.Timestamp{WallMS: a.nowMS() + aheadMS, Node: 1}}.Encode()
	}
	cmd := func(op Op, n int64, flags uint64, args ...string) Command {
		return Command{Op: op, Int: n, Flags: flags, NowMS: a.nowMS(), Args: append(bs(args...), stamp("a", 0))}
	}
	skewed := cmd(OpActiveSet, 0, 0, "reg", "x", "")
	skewed.Args[3] = stamp("a", MaxStampSkewMS+1)
	otherRegion := cmd(OpActiveSet, 0, 0, "reg", "x", "")
	otherRegion.Args[3] = stamp("b", 0)
	noClock := cmd(OpActiveIncr, 1, 0, "ctr")
	noClock.NowMS = 0
	badStamp := cmd(OpActiveIncr, 1, 0, "ctr")
	badStamp.Args[1] = []byte("short")
	for _, tc := range []struct {
		name string
		c    Command
		want error
	}{
		{"incr on a set", cmd(OpActiveIncr, 1, 0, "set"), ErrWrongType},
		{"incr on a register", cmd(OpActiveIncr, 1, 0, "reg"), ErrWrongType},
		{"set on a counter", cmd(OpActiveSet, 0, 0, "ctr", "x", ""), ErrWrongType},
		{"set get on a hash", cmd(OpActiveSet, 0, FlagGet|FlagNX, "hash", "x", ""), ErrWrongType},
		{"sadd on a hash", cmd(OpActiveSAdd, 0, 0, "hash", "x"), ErrWrongType},
		{"srem on a register", cmd(OpActiveSRem, 0, 0, "reg", "x"), ErrWrongType},
		{"hset on a set", cmd(OpActiveHSet, 0, 0, "set", "f", "v"), ErrWrongType},
		{"hdel on a counter", cmd(OpActiveHDel, 0, 0, "ctr", "f"), ErrWrongType},
		{"unknown resolver", cmd(OpActiveSet, 0, 0, "reg", "x", "no-such-resolver"), crdt.ErrUnknownResolver},
		{"unknown resolver on a new key", cmd(OpActiveSet, 0, 0, "new", "x", "no-such-resolver"), ErrUnknownResolver},
		{"clock skew", skewed, ErrClockSkew},
		{"another region's stamp", otherRegion, ErrBadCommand},
		{"no clock", noClock, ErrBadCommand},
		{"bad stamp", badStamp, ErrBadCommand},
		{"expiry", cmd(OpActiveSet, 5, 0, "reg", "x", ""), ErrBadCommand},
		{"flags", cmd(OpActiveSAdd, 0, FlagNX, "set", "x"), ErrBadCommand},
		{"arguments", cmd(OpActiveSet, 0, 0, "reg", "x"), ErrBadCommand},
		{"overflow", cmd(OpActiveIncr, 1, 0, "big"), ErrOverflow},
		{"malformed merge", Command{Op: OpActiveMerge, Args: bs("reg", "junk")}, ErrBadRecord},
		{"merge of a valid state with junk", Command{Op: OpActiveMerge, Args: [][]byte{[]byte("set"), payloadOf(t, a, "reg"), []byte("x"), []byte("junk")}}, ErrBadRecord},
	} {
		res := a.applyRaw(tc.c.Encode())
		if !errors.Is(res.Err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, res.Err, tc.want)
		}
		if after := a.dump(); after != before {
			t.Errorf("%s changed the group:\n%s\nwant\n%s", tc.name, after, before)
		}
	}
	// Within the allowed skew, the write applies.
	ok := cmd(OpActiveSet, 0, 0, "reg", "x", "")
	ok.Args[3] = stamp("a", MaxStampSkewMS)
	if res := a.applyRaw(ok.Encode()); res.Err != nil || res.N != 1 {
		t.Fatalf("write within the skew: %+v", res)
	}
}

func payloadOf(t *testing.T, r *simRegion, key string) []byte {
	t.Helper()
	rec, err := DecodeRecord(r.raw(key))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Payload
}

func TestActiveSetFlags(t *testing.T) {
	now := int64(simEpochMS)
	a := newSim(t, &now, "a")[0]
	if r, _ := a.do(OpActiveSet, 0, FlagXX, "k", "v", ""); r.Err != nil || r.N != 0 {
		t.Fatalf("XX on a missing key: %+v", r)
	}
	if r, _ := a.do(OpActiveSet, 0, FlagNX|FlagGet, "k", "v1", ""); r.Err != nil || r.N != 1 || r.Found {
		t.Fatalf("NX on a missing key: %+v", r)
	}
	if r, _ := a.do(OpActiveSet, 0, FlagNX|FlagGet, "k", "v2", ""); r.Err != nil || r.N != 0 || string(r.Value) != "v1" {
		t.Fatalf("NX on an existing key: %+v", r)
	}
	if r, _ := a.do(OpActiveSet, 0, FlagGet, "k", "v3", ""); r.Err != nil || r.N != 1 || string(r.Value) != "v1" {
		t.Fatalf("GET: %+v", r)
	}
	if v, _ := a.get("k"); string(v.Value) != "v3" {
		t.Fatalf("reads %q", v.Value)
	}
	if r := a.mustDo(OpActiveHSet, 0, "h", "a", "1", "b", "2", "a", "3"); r.N != 2 {
		t.Fatalf("hset counted %d new fields", r.N)
	}
	if v, _ := a.get("h"); len(v.Fields) != 2 || string(v.Fields[0].Value) != "3" {
		t.Fatalf("hash %+v: the later pair wins", v.Fields)
	}
	if r := a.mustDo(OpActiveSAdd, 0, "s", "b", "a", "b"); r.N != 2 {
		t.Fatalf("sadd counted %d", r.N)
	}
	if r := a.mustDo(OpActiveSRem, 0, "s", "zz"); r.N != 0 {
		t.Fatalf("srem counted %d", r.N)
	}
	if r := a.mustDo(OpActiveHDel, 0, "h", "zz"); r.N != 0 {
		t.Fatalf("hdel counted %d", r.N)
	}
	if r := a.mustDo(OpActiveSRem, 0, "missing", "zz"); r.N != 0 {
		t.Fatalf("srem of a missing key counted %d", r.N)
	}
}

func TestActiveChange(t *testing.T) {
	now := int64(simEpochMS)
	a := newSim(t, &now, "a")[0]
	a.mustDo(OpActiveSet, 0, "k1", "v", "")
	a.mustDo(OpActiveSAdd, 0, "k2", "m")
	del := ActiveCommand(OpActiveDel, ActiveStamp{Region: "a", Time: a.clock.Now()}, a.nowMS(), bs("k1", "k2", "k1", "missing")...)
	a.applyRaw(del.Encode())
	m, err := ActiveChange(a.db, a.sm.Group, a.index, del.Encode())
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCommand(m)
	if err != nil || c.Op != OpActiveMerge || c.NowMS != del.NowMS || len(c.Args) != 4 || string(c.Args[0]) != "k1" || string(c.Args[2]) != "k2" ||
		!bytes.Equal(c.Args[1], payloadOf(t, a, "k1")) {
		t.Fatalf("merge %+v %v", c, err)
	}
	for _, skip := range []Command{c, {Op: OpStreamApply, Args: bs("x")}, RoleCommand(Role{Epoch: 1}, 0, 0, 0),
		ActiveCommand(OpActiveSet, ActiveStamp{Region: "a", Time: a.clock.Now()}, a.nowMS(), bs("missing", "v", "")...)} {
		if m, err := ActiveChange(a.db, a.sm.Group, 0, skip.Encode()); m != nil || err != nil {
			t.Fatalf("ActiveChange(%s) = %x, %v; want nothing", skip.Op, m, err)
		}
	}
	if m, err := ActiveChange(a.db, a.sm.Group, 0, []byte{0xff}); m != nil || err != nil {
		t.Fatalf("undecodable command: %x %v", m, err)
	}
	if _, err := ActiveChange(a.db, a.sm.Group, 0, Command{Op: OpSet, Args: bs("k", "v")}.Encode()); !errors.Is(err, ErrNotActive) {
		t.Fatalf("plain op: %v", err)
	}
	if OpActiveMerge.String() != "activemerge" || OpActiveSet.String() != "activeset" {
		t.Fatal("op names")
	}
}

// TestActiveThroughStreams ships merges in stream batches, the way the
// node does: redelivered batches are skipped by the cursor, local ops
// that reach a stream are ignored, a malformed merge stops the stream,
// and the ledger names the stream change a conflict came in.
func TestActiveThroughStreams(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b")
	a, b := rs[0], rs[1]
	a.mustDo(OpActiveSet, 0, "k", "a1", "")
	a.mustDo(OpActiveIncr, 2, "n")
	b.mustDo(OpActiveSet, 0, "k", "b1", "")
	b.mustDo(OpActiveIncr, 3, "n")
	var changes []stream.Change
	for i, cmd := range a.log {
		m, err := ActiveChange(a.db, a.sm.Group, uint64(i+1), cmd)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, stream.Change{Index: uint64(i + 1), Data: m})
	}
	// A local op shipped as itself (a source without ActiveChange) is
	// ignored rather than applied with another region's stamp.
	changes = append(changes, stream.Change{Index: uint64(len(a.log) + 1), Data: a.log[0]})
	batch := stream.Batch{Stream: a.sm.Group, Cluster: "c", Changes: changes}
	cmd := batchCmd(t, batch)
	res := b.applyRaw(cmd.Encode())
	if res.Err != nil || res.N != int64(len(changes)) {
		t.Fatalf("stream batch: %+v", res)
	}
	if res := b.applyRaw(cmd.Encode()); res.Err != nil {
		t.Fatalf("redelivered batch: %+v", res)
	}
	es := b.ledger()
	if len(es) != 1 || es[0].Source != a.sm.Group || es[0].SourceIndex != 1 {
		t.Fatalf("ledger %+v", es)
	}
	if v, _ := b.get("n"); v.Counter != 5 {
		t.Fatalf("counter %d", v.Counter)
	}
	// A malformed merge fails the batch and leaves the cursor.
	bad := stream.Batch{Stream: a.sm.Group, Cluster: "c", Prev: uint64(len(changes)), Changes: []stream.Change{
		{Index: uint64(len(changes) + 1), Data: Command{Op: OpActiveMerge, Args: bs("k", "junk")}.Encode()},
	}}
	if res := b.applyRaw(batchCmd(t, bad).Encode()); !errors.Is(res.Err, ErrBadRecord) {
		t.Fatalf("malformed merge: %+v", res)
	}
	if c, _, _ := b.db.Cursor(b.sm.Group, a.sm.Group); c.Index != uint64(len(changes)) {
		t.Fatalf("cursor moved to %d", c.Index)
	}
}

// activeModel is the ground truth of the simulation for keys with a
// model.
type activeModel struct {
	reg    []modelWrite            // writes of "reg"
	fields map[string][]modelWrite // writes of "map" by field
	ctr    int64                   // sum of "ctr"'s increments
	ctrOps int                     // number of them
	added  map[string]bool         // members ever added to "set"
	rmed   map[string]bool         // members named by an effective SREM of "set"
}

type modelWrite struct {
	time    hlc.Timestamp
	region  string
	value   string
	deleted bool
}

func lastWrite(ws []modelWrite) (modelWrite, bool) {
	if len(ws) == 0 {
		return modelWrite{}, false
	}
	return slices.MaxFunc(ws, func(a, b modelWrite) int {
		if c := a.time.Compare(b.time); c != 0 {
			return c
		}
		return strings.Compare(a.region, b.region)
	}), true
}

type shipped struct {
	merge []byte
	clock hlc.Timestamp // the source's clock when it shipped
}

// TestActiveConvergenceModel simulates three regions writing keys of
// every kind, shipping merges at random moments, delivered in random
// orders with duplicates and stale states. In the end every region stores
// the same bytes for every key, reads match the models (LWW by HLC then
// region, counters sum, add-wins sets), and no region records a conflict
// twice.
func TestActiveConvergenceModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		now := int64(simEpochMS)
		rs := newSim(rt, &now, "ap", "eu", "us")
		for _, r := range rs {
			r.skew = rapid.Int64Range(-200, 200).Draw(rt, "skew")
		}
		m := activeModel{fields: map[string][]modelWrite{}, added: map[string]bool{}, rmed: map[string]bool{}}
		inbox := make([][]shipped, len(rs))
		members := []string{"a", "b", "c"}
		fieldNames := []string{"f1", "f2", "f3"}
		keys := []string{"reg", "res", "ctr", "ctr2", "set", "map", "map2", "mixed"}
		steps := rapid.IntRange(1, 80).Draw(rt, "steps")
		wn := 0
		var wholes [][]byte // the whole states of the keys each local op wrote, right after it
		for range steps {
			now += rapid.Int64Range(0, 5).Draw(rt, "tick")
			ri := rapid.IntRange(0, len(rs)-1).Draw(rt, "region")
			r := rs[ri]
			logged := len(r.log)
			switch rapid.IntRange(0, 9).Draw(rt, "action") {
			case 0, 1, 2, 3, 4: // a local op
				key := rapid.SampledFrom(keys).Draw(rt, "key")
				wn++
				val := fmt.Sprintf("%s%d", r.name, wn)
				kind := key
				if key == "mixed" {
					kind = rapid.SampledFrom([]string{"reg", "ctr2", "set", "map2"}).Draw(rt, "kind")
				}
				del := rapid.IntRange(0, 4).Draw(rt, "del") == 0
				if del && key != "ctr" && key != "map" && key != "set" {
					res, ts := r.do(OpActiveDel, 0, 0, key)
					if res.Err != nil {
						rt.Fatalf("del: %v", res.Err)
					}
					if key == "reg" && res.N == 1 {
						m.reg = append(m.reg, modelWrite{time: ts, region: r.name, deleted: true})
					}
					break
				}
				switch kind {
				case "reg", "res":
					resolver := ""
					if kind == "res" {
						resolver = testResolver
					}
					res, ts := r.do(OpActiveSet, 0, 0, key, val, resolver)
					if res.Err == nil && key == "reg" {
						m.reg = append(m.reg, modelWrite{time: ts, region: r.name, value: val})
					}
					checkActiveErr(rt, key, res)
				case "ctr", "ctr2":
					d := rapid.Int64Range(-5, 10).Draw(rt, "delta")
					res, _ := r.do(OpActiveIncr, d, 0, key)
					if res.Err == nil && key == "ctr" {
						m.ctr += d
						m.ctrOps++
					}
					checkActiveErr(rt, key, res)
				case "set":
					ms := rapid.SliceOfNDistinct(rapid.SampledFrom(members), 1, 3, rapid.ID[string]).Draw(rt, "members")
					op := OpActiveSAdd
					if rapid.Bool().Draw(rt, "remove") {
						op = OpActiveSRem
					}
					res, _ := r.do(op, 0, 0, append([]string{key}, ms...)...)
					checkActiveErr(rt, key, res)
					if res.Err == nil && key == "set" {
						for _, x := range ms {
							if op == OpActiveSAdd {
								m.added[x] = true
							} else if res.N > 0 {
								m.rmed[x] = true
							}
						}
					}
				case "map", "map2":
					fs := rapid.SliceOfNDistinct(rapid.SampledFrom(fieldNames), 1, 3, rapid.ID[string]).Draw(rt, "fields")
					if rapid.IntRange(0, 3).Draw(rt, "hdel") == 0 {
						res, ts := r.do(OpActiveHDel, 0, 0, append([]string{key}, fs...)...)
						checkActiveErr(rt, key, res)
						if res.Err == nil && res.N > 0 && key == "map" {
							for _, f := range fs {
								m.fields[f] = append(m.fields[f], modelWrite{time: ts, region: r.name, deleted: true})
							}
						}
						break
					}
					args := []string{key}
					for i, f := range fs {
						args = append(args, f, fmt.Sprintf("%s.%d", val, i))
					}
					res, ts := r.do(OpActiveHSet, 0, 0, args...)
					checkActiveErr(rt, key, res)
					if res.Err == nil && key == "map" {
						for i, f := range fs {
							m.fields[f] = append(m.fields[f], modelWrite{time: ts, region: r.name, value: fmt.Sprintf("%s.%d", val, i)})
						}
					}
				}
			case 5, 6: // the region's stream ships some entry of its log now
				if len(r.log) == 0 {
					break
				}
				i := rapid.IntRange(0, len(r.log)-1).Draw(rt, "entry")
				mg, err := ActiveChange(r.db, r.sm.Group, uint64(i+1), r.log[i])
				if err != nil {
					rt.Fatalf("ActiveChange: %v", err)
				}
				if mg == nil {
					break
				}
				dst := (ri + 1 + rapid.IntRange(0, len(rs)-2).Draw(rt, "dst")) % len(rs)
				inbox[dst] = append(inbox[dst], shipped{mg, r.clock.Now()})
			default: // deliver something the region was sent, maybe again
				if len(inbox[ri]) == 0 {
					break
				}
				i := rapid.IntRange(0, len(inbox[ri])-1).Draw(rt, "msg")
				msg := inbox[ri][i]
				if rapid.Bool().Draw(rt, "consume") {
					inbox[ri] = slices.Delete(inbox[ri], i, i+1)
				}
				deliverShipped(rt, r, msg)
			}
			if len(r.log) > logged {
				if c, err := DecodeCommand(r.log[len(r.log)-1]); err == nil && c.Op.Active() && c.Op != OpActiveMerge && checkArgs(c) == nil {
					w, err := activeStates(r.db, r.sm.Group, c)
					if err != nil {
						rt.Fatalf("whole states: %v", err)
					}
					if w != nil {
						wholes = append(wholes, w)
					}
				}
			}
		}
		// Flush: every region ships every key it wrote, and everything
		// still in flight arrives too, in random orders, some twice.
		for i, r := range rs {
			ts := r.clock.Now()
			for _, mg := range r.shipAll() {
				for j := range rs {
					if j != i {
						inbox[j] = append(inbox[j], shipped{mg, ts})
					}
				}
			}
		}
		for j, r := range rs {
			msgs := rapid.Permutation(inbox[j]).Draw(rt, "order")
			for k, msg := range msgs {
				deliverShipped(rt, r, msg)
				if k%3 == 0 {
					deliverShipped(rt, r, msgs[rapid.IntRange(0, k).Draw(rt, "again")])
				}
			}
		}
		checkConverged(rt, rs, keys, m)
		// The regions shipped deltas; whole states, merged in any order,
		// end in the same state.
		ref := newSim(rt, &now, "ref")[0]
		for _, w := range rapid.Permutation(wholes).Draw(rt, "whole order") {
			ref.deliver(w)
		}
		for _, key := range keys {
			if got, want := ref.raw(key), rs[0].raw(key); !bytes.Equal(got, want) {
				rt.Fatalf("%s: merging the whole states gives %x, the deltas %x", key, got, want)
			}
		}
	})
}

// TestActiveDeltaSize: what a region ships for one SADD does not grow
// with the set, for sets of 10, 1,000 and 100,000 members (the whole
// state, shipped before deltas, grows with it).
func TestActiveDeltaSize(t *testing.T) {
	var sizes []int
	for _, n := range []int{10, 1000, 100_000} {
		now := int64(simEpochMS)
		a := newSim(t, &now, "a")[0]
		// Log positions of the same magnitude whatever n: the delta holds
		// the key's previous position, whose varint grows with the log.
		a.index = 1 << 30
		for i := 0; i < n; i += 20_000 {
			ms := []string{"s"}
			for j := i; j < min(i+20_000, n); j++ {
				ms = append(ms, fmt.Sprintf("member-%07d", j))
			}
			a.mustDo(OpActiveSAdd, 0, ms...)
		}
		a.index = 1 << 31
		a.mustDo(OpActiveSAdd, 0, "s", "one more member")
		shipped, err := ActiveChange(a.db, a.sm.Group, a.index, a.log[len(a.log)-1])
		if err != nil {
			t.Fatal(err)
		}
		whole, err := activeStates(a.db, a.sm.Group, Command{Op: OpActiveSAdd, Args: bs("s", "x", "stamp")})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SADD to a set of %d members ships %d bytes (the whole state: %d)", n, len(shipped), len(whole))
		sizes = append(sizes, len(shipped))
		if n > 1000 {
			continue
		}
		// And it is what the receiver needs.
		b := newSim(t, &now, "b")[0]
		for i, cmd := range a.log {
			m, err := ActiveChange(a.db, a.sm.Group, uint64(i)+a.index-uint64(len(a.log))+1, cmd)
			if err != nil {
				t.Fatal(err)
			}
			if i == len(a.log)-1 {
				m = shipped
			}
			if m != nil {
				b.deliver(m)
			}
		}
		if !bytes.Equal(b.raw("s"), a.raw("s")) {
			t.Fatalf("%d members: the receiver of the deltas holds another set", n)
		}
	}
	if sizes[1] != sizes[0] || sizes[2] != sizes[0] {
		t.Fatalf("bytes shipped per SADD grow with the set: %v", sizes)
	}
}

func checkActiveErr(t *rapid.T, key string, res Result) {
	if res.Err != nil && !(key == "mixed" && errors.Is(res.Err, ErrWrongType)) {
		t.Fatalf("%s: %v", key, res.Err)
	}
}

func deliverShipped(t *rapid.T, r *simRegion, msg shipped) {
	// A node learns the source's clock from the stream (its batches carry
	// the closed timestamp), so its later writes come after what it got.
	if _, err := r.clock.Update(msg.clock); err != nil {
		t.Fatalf("clock: %v", err)
	}
	r.deliver(msg.merge)
}

func checkConverged(t *rapid.T, rs []*simRegion, keys []string, m activeModel) {
	for _, key := range keys {
		want := rs[0].raw(key)
		for _, r := range rs[1:] {
			if got := r.raw(key); !bytes.Equal(got, want) {
				t.Fatalf("%s: %s stores %x, %s stores %x", key, rs[0].name, want, r.name, got)
			}
		}
	}
	for _, r := range rs {
		if w, ok := lastWrite(m.reg); ok {
			v, found := r.get("reg")
			if found == w.deleted || found && string(v.Value) != w.value {
				t.Fatalf("%s: reg reads %q (%v), want the last write %+v", r.name, v.Value, found, w)
			}
		}
		if v, found := r.get("ctr"); found != (m.ctrOps > 0) || v.Counter != m.ctr {
			t.Fatalf("%s: ctr reads %d (%v), want %d after %d increments", r.name, v.Counter, found, m.ctr, m.ctrOps)
		}
		s, _ := r.get("set")
		for _, x := range []string{"a", "b", "c"} {
			in := slices.ContainsFunc(s.Members, func(b []byte) bool { return string(b) == x })
			if in && !m.added[x] || !in && m.added[x] && !m.rmed[x] {
				t.Fatalf("%s: set member %s present=%v, added=%v removed=%v", r.name, x, in, m.added[x], m.rmed[x])
			}
		}
		h, _ := r.get("map")
		for f, ws := range m.fields {
			w, _ := lastWrite(ws)
			got, found := HashGet(h.Fields, []byte(f))
			if found == w.deleted || found && string(got) != w.value {
				t.Fatalf("%s: field %s reads %q (%v), want %+v", r.name, f, got, found, w)
			}
		}
		// The ledger: contiguous, each conflict once, LWW winners newest.
		es := r.ledger()
		st, err := LedgerInfo(r.db, r.sm.Group)
		if err != nil || st.Recorded != uint64(len(es)) || len(es) > 0 && st.Oldest != 1 {
			t.Fatalf("%s: ledger info %+v for %d entries (%v)", r.name, st, len(es), err)
		}
		ids := map[string]bool{}
		for i, e := range es {
			if e.Seq != uint64(i+1) || ids[e.ID] {
				t.Fatalf("%s: entry %d %+v repeated or out of order", r.name, i, e)
			}
			ids[e.ID] = true
			if e.Rule == "lww" {
				last := e.Versions[len(e.Versions)-1]
				if last.Time != e.Winner.Time || last.Region != e.Winner.Region {
					t.Fatalf("%s: lww winner %+v is not the newest of %+v", r.name, e.Winner, e.Versions)
				}
				for _, v := range e.Versions[:len(e.Versions)-1] {
					if c := v.Time.Compare(last.Time); c > 0 || c == 0 && v.Region >= last.Region {
						t.Fatalf("%s: versions out of order %+v", r.name, e.Versions)
					}
				}
			}
		}
	}
	// Regions that record the same register or field conflict describe it
	// the same way.
	byID := map[string][]byte{}
	for _, r := range rs {
		for _, e := range r.ledger() {
			if e.Kind == LedgerType {
				continue
			}
			d, _ := json.Marshal(struct {
				V []LedgerVersion
				W LedgerVersion
				R string
			}{e.Versions, e.Winner, e.Rule})
			if prev, ok := byID[e.ID]; ok && !bytes.Equal(prev, d) {
				t.Fatalf("conflict %s described differently: %s vs %s", e.ID, prev, d)
			}
			byID[e.ID] = d
		}
	}
}

func FuzzActiveMerge(f *testing.F) {
	now := int64(simEpochMS)
	a := newSim(f, &now, "a")[0]
	a.mustDo(OpActiveSet, 0, "r", "v", "")
	a.mustDo(OpActiveIncr, 4, "c")
	a.mustDo(OpActiveSAdd, 0, "s", "x")
	a.mustDo(OpActiveHSet, 0, "h", "f", "v")
	for _, k := range []string{"r", "c", "s", "h"} {
		rec, _ := DecodeRecord(a.raw(k))
		f.Add(rec.Payload)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		s, err := decodeActiveState(p)
		if err != nil {
			return
		}
		if !bytes.Equal(s.encode(), p) {
			t.Fatalf("non-canonical state accepted")
		}
		out, _, _, err := mergeStates(s, s)
		if err == nil && !bytes.Equal(out.encode(), p) {
			t.Fatalf("merging a state with itself changed it")
		}
	})
}

// TestActiveBatchOfMerges: a stream batch of many merges of one key (its
// state decoded and encoded once for the batch) ends where the merges
// one by one end, conflicts included.
func TestActiveBatchOfMerges(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b1", "b2", "c")
	a, b1, b2, c := rs[0], rs[1], rs[2], rs[3]
	c.mustDo(OpActiveHSet, 0, "h", "f", "from c") // concurrent with a's writes: conflicts
	for _, m := range c.shipAll() {
		b1.deliver(m)
		b2.deliver(m)
	}
	for i := range 20 {
		now++
		a.mustDo(OpActiveSAdd, 0, "s", fmt.Sprint("m", i))
		if i%5 == 0 {
			a.mustDo(OpActiveSRem, 0, "s", fmt.Sprint("m", i-1))
			a.mustDo(OpActiveHSet, 0, "h", "f", fmt.Sprint("from a ", i))
		}
	}
	var changes []stream.Change
	for i, cmd := range a.log {
		m, err := ActiveChange(a.db, a.sm.Group, uint64(i+1), cmd)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, stream.Change{Index: uint64(i + 1), Data: m})
		if m != nil {
			b2.deliver(m) // one by one
		}
	}
	if res := b1.applyRaw(batchCmd(t, stream.Batch{Stream: a.sm.Group, Cluster: "c", Changes: changes}).Encode()); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, k := range []string{"s", "h"} {
		if !bytes.Equal(b1.raw(k), b2.raw(k)) {
			t.Fatalf("%s: the batch gives %x, the merges one by one %x", k, b1.raw(k), b2.raw(k))
		}
	}
	if !bytes.Equal(b1.raw("s"), a.raw("s")) {
		t.Fatal("the set differs from its only writer's")
	}
	e1, e2 := b1.ledger(), b2.ledger()
	if len(e1) != len(e2) || len(e1) == 0 {
		t.Fatalf("conflicts: %d in a batch, %d one by one", len(e1), len(e2))
	}
	for i := range e1 {
		if e1[i].ID != e2[i].ID || e1[i].Source != a.sm.Group || e1[i].SourceIndex == 0 {
			t.Fatalf("conflict %d: %+v vs %+v", i, e1[i], e2[i])
		}
	}
}

// TestPlainRecord: active states read as the string, set or hash they
// are, a tombstone as absent, other records as they are.
func TestPlainRecord(t *testing.T) {
	now := int64(1000)
	r := newSim(t, &now, "r")[0]
	r.mustDo(OpActiveSet, 0, "s", "v", "")
	r.mustDo(OpActiveSAdd, 0, "set", "b", "a")
	r.mustDo(OpActiveHSet, 0, "h", "f", "x")
	r.mustDo(OpActiveSet, 0, "gone", "v", "")
	r.mustDo(OpActiveDel, 0, "gone")
	read := func(key string) (Record, bool) {
		rec, ok, err := Get(r.db, r.sm.Group, []byte(key), now)
		if err != nil {
			t.Fatal(err)
		}
		if rec, ok, err = PlainRecord(rec, ok); err != nil {
			t.Fatal(err)
		}
		return rec, ok
	}
	if rec, ok := read("s"); !ok || rec.Type != TypeString || string(rec.Payload) != "v" {
		t.Fatalf("register: %+v %v", rec, ok)
	}
	if rec, ok := read("set"); !ok || rec.Type != TypeSet || !bytes.Equal(rec.Payload, EncodeSet(bs("a", "b"))) {
		t.Fatalf("set: %+v %v", rec, ok)
	}
	if rec, ok := read("h"); !ok || rec.Type != TypeHash || !bytes.Equal(rec.Payload, EncodeHash([]Field{{Name: []byte("f"), Value: []byte("x")}})) {
		t.Fatalf("hash: %+v %v", rec, ok)
	}
	if rec, ok := read("gone"); ok {
		t.Fatalf("tombstone read as %+v", rec)
	}
	plain := Record{Type: TypeString, Payload: []byte("p")}
	if rec, ok, err := PlainRecord(plain, true); err != nil || !ok || !bytes.Equal(rec.Payload, plain.Payload) || rec.Type != TypeString {
		t.Fatalf("plain record: %+v %v %v", rec, ok, err)
	}
}
