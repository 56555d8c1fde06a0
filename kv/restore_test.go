package kv

import (
	"bytes"
	"errors"
	"testing"

	"github.com/meridian-db/meridian/storage"
)

// TestRestoreChunksInOrderOnce: a group applies restore chunks only in
// order, each once: a chunk proposed again (a resumed restore) changes
// nothing and answers the group's position, a chunk ahead of it is
// refused, a chunk with a record that does not decode changes nothing.
func TestRestoreChunksInOrderOnce(t *testing.T) {
	h := newHarness(t)
	rec := func(v string) []byte { return Record{Type: TypeString, Payload: []byte(v)}.Encode() }
	c1 := RestoreChunk{Pairs: [][]byte{[]byte("a"), rec("1"), []byte("b"), rec("2")}}
	c2 := RestoreChunk{Pairs: [][]byte{[]byte("c"), rec("3")}}
	if res := h.apply(RestoreChunkCommand("r", 2, c2)); !errors.Is(res.Err, ErrRestoreGap) || res.N != 0 {
		t.Fatalf("chunk 2 first: %+v, want ErrRestoreGap at 0", res)
	}
	if _, ok := h.get("c", 0); ok {
		t.Fatal("a refused chunk wrote")
	}
	if res := h.apply(RestoreChunkCommand("r", 1, c1)); res.Err != nil || res.N != 1 {
		t.Fatalf("chunk 1: %+v", res)
	}
	// Proposed again with other contents: the group's position answers.
	if res := h.apply(RestoreChunkCommand("r", 1, c2)); res.Err != nil || res.N != 1 {
		t.Fatalf("chunk 1 again: %+v", res)
	}
	if _, ok := h.get("c", 0); ok {
		t.Fatal("a chunk applied twice")
	}
	bad := RestoreChunk{Pairs: [][]byte{[]byte("d"), Record{Type: TypeSet, Payload: []byte{0xff, 0xff}}.Encode()}}
	if res := h.apply(RestoreChunkCommand("r", 2, bad)); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("bad record: %+v", res)
	}
	if res := h.apply(RestoreChunkCommand("r", 2, c2)); res.Err != nil || res.N != 2 {
		t.Fatalf("chunk 2: %+v", res)
	}
	for k, v := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		if r, ok := h.get(k, 0); !ok || string(r.Payload) != v {
			t.Fatalf("%s=%q %v", k, r.Payload, ok)
		}
	}
	// Only conflict ledger records go in a restore.
	led := RestoreChunk{Ledger: [][]byte{[]byte("Kus-east"), []byte("x")}}
	if res := h.apply(RestoreChunkCommand("r", 3, led)); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("a knowledge report restored: %+v", res)
	}
	// A restore chunk travels in no active stream and is always admitted.
	cmd := RestoreChunkCommand("r", 3, c2).Encode()
	if m, err := ActiveChange(h.db, 3, 9, cmd); m != nil || err != nil {
		t.Fatalf("ActiveChange of a restore chunk: %q %v", m, err)
	}
	if !Admitted([]RoleChange{{Index: 1, Role: Role{Epoch: 2}}}, 5, RestoreChunkCommand("r", 1, c1)) {
		t.Fatal("a restore chunk not admitted")
	}
}

// TestRestoredActiveStateMerges: two regions' states of a counter merge
// into one that counts both, and keeps counting.
func TestRestoredActiveStateMerges(t *testing.T) {
	now := int64(1000)
	rs := newSim(t, &now, "us-east", "eu-west")
	rs[0].mustDo(OpActiveIncr, 5, "c")
	rs[1].mustDo(OpActiveIncr, 7, "c")
	rs[1].mustDo(OpActiveIncr, 1, "gone")
	rs[1].mustDo(OpActiveDel, 0, "gone")
	a, _, _ := rs[0].db.Get(rs[0].sm.Group, []byte("c"))
	b, _, _ := rs[1].db.Get(rs[1].sm.Group, []byte("c"))
	m, conflicts, err := MergeActiveRecords(a, b)
	if err != nil || conflicts != 0 {
		t.Fatalf("merge: %v, %d conflicts", err, conflicts)
	}
	rec, _ := DecodeRecord(m)
	v, ok, err := ActiveValueOf(rec)
	if err != nil || !ok || v.Counter != 12 {
		t.Fatalf("merged counter %+v %v %v, want 12", v, ok, err)
	}
	gone, _, _ := rs[1].db.Get(rs[1].sm.Group, []byte("gone"))
	if live, err := LiveActiveRecord(gone); err != nil || live {
		t.Fatalf("a tombstone reads live=%v (%v)", live, err)
	}
	// Loaded into a fresh group of region us-east, it keeps counting.
	fresh := newSim(t, &now, "us-east")[0]
	fresh.applyRaw(RestoreChunkCommand("r", 1, RestoreChunk{Pairs: [][]byte{[]byte("c"), m},
		LedgerCounters: &storage.Cursor{Index: 4, ClosedMS: 99}}).Encode())
	if res := fresh.mustDo(OpActiveIncr, 3, "c"); res.N != 15 {
		t.Fatalf("restored counter after +3: %d, want 15", res.N)
	}
	if c, ok, err := LedgerCounters(fresh.db, fresh.sm.Group); err != nil || !ok || c.Index != 4 {
		t.Fatalf("ledger counters %+v %v %v", c, ok, err)
	}
}

func FuzzDecodeRestoreChunk(f *testing.F) {
	f.Add(EncodeRestoreChunk(RestoreChunk{Pairs: [][]byte{[]byte("k"), []byte("v")}, Ledger: [][]byte{[]byte("e"), []byte("{}")},
		LedgerCounters: &storage.Cursor{Index: 1, ClosedMS: 2}}))
	f.Add(EncodeRestoreChunk(RestoreChunk{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeRestoreChunk(b)
		if err != nil {
			return
		}
		// A version 2 chunk encodes back to itself; a version 1 chunk
		// encodes as version 2 with the same contents.
		enc := EncodeRestoreChunk(c)
		if b[0] == 2 && !bytes.Equal(enc, b) {
			t.Fatal("re-encoding differs")
		}
		if c2, err := DecodeRestoreChunk(enc); err != nil || !bytes.Equal(EncodeRestoreChunk(c2), enc) {
			t.Fatalf("re-encoding does not decode to the same chunk: %v", err)
		}
	})
}

// TestRestoreChunkElements: a chunk carries the element span of lists and
// sorted sets, written as it is beside the heads (checked: a list head
// that does not decode is refused, nothing written); a chunk of version 1
// (no elements) still applies.
func TestRestoreChunkElements(t *testing.T) {
	src := newHarness(t)
	for _, c := range []Command{
		RedisCommand([]byte("l"), 1, [][]byte{[]byte("RPUSH"), []byte("l"), []byte("a"), []byte("b")}),
		RedisCommand([]byte("z"), 1, [][]byte{[]byte("ZADD"), []byte("z"), []byte("1"), []byte("x")}),
	} {
		if res := src.apply(c); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	var chunk RestoreChunk
	if err := src.db.Scan(src.sm.Group, nil, nil, func(k, v []byte) bool {
		chunk.Pairs = append(chunk.Pairs, bytes.Clone(k), bytes.Clone(v))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := src.db.ScanElems(src.sm.Group, nil, nil, func(k, v []byte) bool {
		chunk.Elements = append(chunk.Elements, bytes.Clone(k), bytes.Clone(v))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(chunk.Pairs) != 4 || len(chunk.Elements) < 6 {
		t.Fatalf("source: %d pairs, %d elements", len(chunk.Pairs)/2, len(chunk.Elements)/2)
	}
	dst := newHarness(t)
	badHead := RestoreChunk{Pairs: [][]byte{[]byte("l"), Record{Type: TypeList, Payload: []byte{9}}.Encode()}, Elements: chunk.Elements}
	if res := dst.apply(RestoreChunkCommand("r", 1, badHead)); !errors.Is(res.Err, ErrBadCommand) {
		t.Fatalf("a list head that does not decode: %+v", res)
	}
	if err := dst.db.ScanElems(dst.sm.Group, nil, nil, func(k, v []byte) bool { t.Fatalf("element %q written by a refused chunk", k); return false }); err != nil {
		t.Fatal(err)
	}
	if res := dst.apply(RestoreChunkCommand("r", 1, chunk)); res.Err != nil || res.N != 1 {
		t.Fatalf("chunk with elements: %+v", res)
	}
	for _, q := range [][]string{{"LRANGE", "l", "0", "-1"}, {"ZRANGE", "z", "0", "-1"}} {
		args := make([][]byte, len(q))
		for i, w := range q {
			args[i] = []byte(w)
		}
		want, err := Query(src.db, src.sm.Group, 1, args, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Query(dst.db, dst.sm.Group, 1, args, false)
		if err != nil || !bytes.Equal(got.Encode(), want.Encode()) || len(got.Elems) == 0 {
			t.Fatalf("%v restored: %+v (%v), want %+v", q, got, err, want)
		}
	}
	// Version 1: pairs (2 slices: a key and its record), ledger (none),
	// counters flag (none).
	v1 := []byte{1, 2, 1, 'k', 1, 'v', 0, 0}
	c, err := DecodeRestoreChunk(v1)
	if err != nil || len(c.Pairs) != 2 || c.Elements != nil {
		t.Fatalf("version 1 chunk: %+v %v", c, err)
	}
}
