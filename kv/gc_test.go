package kv

import (
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
