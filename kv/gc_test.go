package kv

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/hlc"
)

// TestTombstonesCollectedOnlyWhenStable: a deleted key is removed only
// once every region of the keyspace has reported seeing the delete; live
// keys never are.
func TestTombstonesCollectedOnlyWhenStable(t *testing.T) {
	h := newHarness(t)
	h.sm.Region = "r1"
	stamp := func(ms int64) ActiveStamp { return ActiveStamp{Region: "r1", Time: hlc.Timestamp{WallMS: ms, Node: 1}} }
	for _, c := range []Command{
		ActiveCommand(OpActiveSet, stamp(10), 10, []byte("gone"), []byte("v"), nil),
		ActiveCommand(OpActiveSet, stamp(11), 11, []byte("kept"), []byte("v"), nil),
		ActiveCommand(OpActiveDel, stamp(12), 12, []byte("gone")),
	} {
		if r := h.apply(c); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	regions := []string{"r1", "r2"}
	collect := func() int64 {
		t.Helper()
		r := h.apply(GCCommand(regions, 20))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.N
	}
	stored := func(k string) bool {
		_, ok, err := h.db.Get(h.sm.Group, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if n := collect(); n != 0 || !stored("gone") {
		t.Fatalf("collected %d before any region reported", n)
	}
	// The harness applies every command at index 1 (the crdt then numbers
	// the key's operations itself): 100 is past all of them.
	h.apply(KnowCommand("r1", crdt.VersionVector{"r1": 100}, 20))
	h.apply(KnowCommand("r2", crdt.VersionVector{"r1": 0}, 20))
	if n := collect(); n != 0 || !stored("gone") {
		t.Fatalf("collected %d while r2 had not seen the delete", n)
	}
	h.apply(KnowCommand("r2", crdt.VersionVector{"r1": 100}, 20))
	if n := collect(); n != 1 || stored("gone") {
		t.Fatalf("collected %d once every region saw the delete (still stored: %v)", n, stored("gone"))
	}
	if !stored("kept") {
		t.Fatal("a live key was collected")
	}
	// Reports only grow: an older report changes nothing.
	h.apply(KnowCommand("r2", crdt.VersionVector{"r1": 0}, 21))
	v, ok, _ := h.db.GetLedger(h.sm.Group, knowSuffix("r2"))
	if vv, err := crdt.DecodeVersionVector(v); !ok || err != nil || vv["r1"] != 100 {
		t.Fatalf("r2's report went back: %v %v", vv, err)
	}
}

// TestDeltaRecordsCollected: the record of what a local op ships stays
// until every other region has reported applying the op; after that a
// stream that still asked for it would get the key's whole state.
func TestDeltaRecordsCollected(t *testing.T) {
	now := int64(simEpochMS)
	a := newSim(t, &now, "r1")[0]
	for _, m := range []string{"x", "y", "z"} {
		a.mustDo(OpActiveSAdd, 0, "s", m) // indexes 1, 2, 3
	}
	records := func() []uint64 {
		t.Helper()
		var out []uint64
		if err := a.db.ScanLedger(a.sm.Group, []byte{deltaPrefix}, []byte{deltaPrefix + 1}, func(k, _ []byte) bool {
			out = append(out, binary.BigEndian.Uint64(k[1:]))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := records(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("delta records %v", got)
	}
	regions := []string{"r1", "r2", "r3"}
	gc := func() {
		t.Helper()
		if r := a.applyRaw(GCCommand(regions, now).Encode()); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	a.applyRaw(KnowCommand("r1", crdt.VersionVector{"r1": 3}, now).Encode())
	a.applyRaw(KnowCommand("r2", crdt.VersionVector{"r1": 2}, now).Encode())
	gc()
	if got := records(); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("records %v dropped before r3 reported", got)
	}
	a.applyRaw(KnowCommand("r3", crdt.VersionVector{"r1": 3}, now).Encode())
	gc()
	if got := records(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("records %v, want only 3's (r2 has applied up to 2)", got)
	}
	// A collected record: the whole state goes instead.
	m, err := ActiveChange(a.db, a.sm.Group, 1, a.log[0])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := DecodeCommand(m); err != nil || len(c.Args) != 2 || !bytes.Equal(c.Args[1], payloadOf(t, a, "s")) {
		t.Fatalf("after collection ActiveChange gives %+v %v, want the whole state", c, err)
	}
	d, err := ActiveChange(a.db, a.sm.Group, 3, a.log[2])
	if err != nil {
		t.Fatal(err)
	}
	if c, err := DecodeCommand(d); err != nil || len(c.Args) != 2 || len(c.Args[1]) >= len(payloadOf(t, a, "s")) {
		t.Fatalf("the delta of index 3: %+v %v", c, err)
	}
}
