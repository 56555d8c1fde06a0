package stream

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/meridian-db/meridian/storage"
)

const (
	dstGroup = 7
	cluster  = "test-cluster"
)

func openDB(t testing.TB, name string) *storage.DB {
	t.Helper()
	db, err := storage.Open("/"+name, storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// kvApply applies "key=value" changes to the destination group's data.
func kvApply(b *storage.Batch, c Change) error {
	if len(c.Data) == 0 {
		return nil
	}
	k, v, ok := bytes.Cut(c.Data, []byte("="))
	if !ok {
		return fmt.Errorf("change %d: no '='", c.Index)
	}
	b.SetData(dstGroup, k, v)
	return nil
}

// kvChanges returns changes first..last that overwrite a few keys, so
// applying one twice or out of order would show.
func kvChanges(first, last uint64) []Change {
	var out []Change
	for i := first; i <= last; i++ {
		out = append(out, Change{Index: i, TimeMS: int64(1000 + i), Data: fmt.Appendf(nil, "k%d=v%d", i%5, i)})
	}
	return out
}

func mkBatch(prev uint64, changes []Change, closed int64) Batch {
	return Batch{Stream: 3, Epoch: 2, Cluster: cluster, Prev: prev, Changes: changes, ClosedMS: closed}
}

// deliver applies one batch in its own storage batch, committing only on
// success, as a state machine would.
func deliver(t *testing.T, db *storage.DB, batch Batch, epoch uint64) (Ack, error) {
	t.Helper()
	b := db.NewBatch()
	ack, err := Apply(b, dstGroup, cluster, batch, epoch, kvApply)
	if err != nil {
		if !b.Empty() {
			t.Fatalf("a refused batch staged writes: %v", err)
		}
		b.Close()
		return ack, err
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	return ack, nil
}

// state is a group's data and its cursor for stream 3.
func state(t *testing.T, db *storage.DB) string {
	t.Helper()
	var out []byte
	if err := db.Scan(dstGroup, nil, nil, func(k, v []byte) bool {
		out = fmt.Appendf(out, "%s=%s ", k, v)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	c, _, err := db.Cursor(dstGroup, 3)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%scursor=%+v", out, c)
}

func TestApplyIdempotent(t *testing.T) {
	all := kvChanges(1, 30)
	b1 := mkBatch(0, all[0:10], 1005)   // 1..10
	b2 := mkBatch(10, all[10:20], 1015) // 11..20
	b3 := mkBatch(20, all[20:30], 1025) // 21..30
	over := mkBatch(5, all[5:25], 1020) // 6..25 overlaps all three
	hb := mkBatch(30, nil, 1100)

	ref := openDB(t, "ref")
	for _, b := range []Batch{b1, b2, b3, hb} {
		if _, err := deliver(t, ref, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	want := state(t, ref)
	if !bytes.Contains([]byte(want), []byte("k0=v30")) || !bytes.Contains([]byte(want), []byte("Index:30 ClosedMS:1100 Epoch:2")) {
		t.Fatalf("reference state %s", want)
	}

	orders := map[string][]Batch{
		"twice":                {b1, b2, b3, hb, b1, b2, b3, hb},
		"duplicated":           {b1, b1, b2, b2, b2, b3, b3, hb, hb},
		"older after newer":    {b1, b2, b3, b2, b1, hb, b1},
		"overlapping":          {b1, over, b2, b3, over, hb},
		"gap first, then fill": {b2, b3, b1, b3, b2, b3, hb},
		"heartbeat early":      {hb, b1, hb, b2, b3, hb},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			db := openDB(t, "dst")
			for _, b := range order {
				ack, err := deliver(t, db, b, 1)
				if errors.Is(err, ErrGap) {
					if ack.Applied >= b.Prev {
						t.Fatalf("gap reported with cursor %d for a batch after %d", ack.Applied, b.Prev)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if ack.Applied < b.Last() {
					t.Fatalf("ack %d below the batch's last index %d", ack.Applied, b.Last())
				}
			}
			if got := state(t, db); got != want {
				t.Fatalf("state\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestApplyRefusals(t *testing.T) {
	db := openDB(t, "dst")
	if _, err := deliver(t, db, mkBatch(0, kvChanges(1, 3), 1003), 1); err != nil {
		t.Fatal(err)
	}
	before := state(t, db)

	ack, err := deliver(t, db, mkBatch(5, kvChanges(6, 8), 1008), 1)
	if !errors.Is(err, ErrGap) || ack.Applied != 3 {
		t.Fatalf("gap: ack %+v err %v", ack, err)
	}
	other := mkBatch(3, kvChanges(4, 5), 1005)
	other.Cluster = "elsewhere"
	if _, err := deliver(t, db, other, 1); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("wrong cluster: %v", err)
	}
	// The caller's floor refuses an old epoch ...
	ack, err = deliver(t, db, mkBatch(3, kvChanges(4, 5), 1005), 5)
	if !errors.Is(err, ErrStaleEpoch) || ack.Epoch != 5 {
		t.Fatalf("stale against the floor: ack %+v err %v", ack, err)
	}
	// A cursor of an older epoch is no position in a newer epoch's stream:
	// a batch of the newer epoch that follows it is a gap, and a probe
	// finds the destination at 0 (its sender then resyncs it).
	newer := mkBatch(3, kvChanges(4, 5), 1005)
	newer.Epoch = 4
	if ack, err := deliver(t, db, newer, 1); !errors.Is(err, ErrGap) || ack.Applied != 0 {
		t.Fatalf("a newer epoch following an older epoch's cursor: ack %+v err %v", ack, err)
	}
	if got := state(t, db); got != before {
		t.Fatalf("a gapped batch changed the state:\n%s\n%s", got, before)
	}
	probe := mkBatch(0, nil, 1003)
	probe.Epoch = 4
	if ack, err := deliver(t, db, probe, 1); err != nil || ack.Applied != 0 || ack.Epoch != 4 {
		t.Fatalf("probe of a newer epoch: ack %+v err %v", ack, err)
	}
	// ... and the cursor refuses the old epoch once the newer one was seen.
	before = state(t, db)
	if _, err := deliver(t, db, mkBatch(3, kvChanges(4, 5), 1005), 1); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale against the cursor: %v", err)
	}
	unordered := Batch{Stream: 3, Epoch: 4, Cluster: cluster, Prev: 0, Changes: []Change{{Index: 5}, {Index: 4}}}
	if _, err := deliver(t, db, unordered, 1); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("unordered: %v", err)
	}
	if got := state(t, db); got != before {
		t.Fatalf("refused batches changed the state:\n%s\n%s", got, before)
	}
	// A failing apply aborts with its error.
	b := db.NewBatch()
	boom := errors.New("boom")
	_, err = Apply(b, dstGroup, cluster, Batch{Stream: 3, Epoch: 4, Cluster: cluster, Prev: 0, Changes: kvChanges(4, 4)}, 1,
		func(*storage.Batch, Change) error { return boom })
	b.Close()
	if !errors.Is(err, boom) {
		t.Fatalf("apply error: %v", err)
	}
}

func TestHeartbeatClosedNeverGoesBack(t *testing.T) {
	db := openDB(t, "dst")
	for _, hb := range []struct {
		closed, want int64
	}{{500, 500}, {400, 500}, {900, 900}} {
		if _, err := deliver(t, db, mkBatch(0, nil, hb.closed), 1); err != nil {
			t.Fatal(err)
		}
		if c, _, _ := db.Cursor(dstGroup, 3); c.ClosedMS != hb.want || c.Index != 0 {
			t.Fatalf("after heartbeat at %d: %+v, want closed %d", hb.closed, c, hb.want)
		}
	}
}

func TestCursorSurvivesSnapshot(t *testing.T) {
	src := openDB(t, "src")
	b1 := mkBatch(0, kvChanges(1, 10), 1010)
	b2 := mkBatch(10, kvChanges(11, 12), 1012)
	if _, err := deliver(t, src, b1, 1); err != nil {
		t.Fatal(err)
	}
	payload, err := src.EncodeGroupData(dstGroup)
	if err != nil {
		t.Fatal(err)
	}
	replica := openDB(t, "replica")
	b := replica.NewBatch()
	if err := b.RestoreGroupData(dstGroup, payload); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got, want := state(t, replica), state(t, src); got != want {
		t.Fatalf("restored %s, want %s", got, want)
	}
	// Redelivery after the snapshot is still harmless, and the stream
	// continues from the restored cursor on both.
	for _, db := range []*storage.DB{src, replica} {
		for _, bt := range []Batch{b1, b2, b1} {
			if _, err := deliver(t, db, bt, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := state(t, replica), state(t, src); got != want {
		t.Fatalf("after more batches: %s, want %s", got, want)
	}
}

func TestChunkCarriesElements(t *testing.T) {
	src := openDB(t, "src")
	b := src.NewBatch()
	b.SetData(dstGroup, []byte("list"), []byte("head record"))
	b.SetElem(dstGroup, []byte("e1"), []byte("one"))
	b.SetElem(dstGroup, []byte("e2"), []byte("two"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	view := src.NewReader()
	defer view.Close()
	c := Chunk{Stream: 3, Epoch: 1, Cluster: cluster, Index: 40, Seq: 0, Last: true}
	_ = view.Scan(dstGroup, nil, func(k, v []byte) bool {
		c.Pairs = append(c.Pairs, bytes.Clone(k), bytes.Clone(v))
		return true
	})
	_ = view.ScanElements(dstGroup, func(k, v []byte) bool {
		c.Elems = append(c.Elems, bytes.Clone(k), bytes.Clone(v))
		return true
	})
	enc, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeChunk(enc)
	if err != nil || len(got.Pairs) != 2 || len(got.Elems) != 4 || string(got.Elems[3]) != "two" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// A chunk without elements keeps the first encoding.
	plain := Chunk{Stream: 3, Epoch: 1, Cluster: cluster, Pairs: c.Pairs}
	if enc, _ := plain.Encode(); enc[0] != chunkV1 {
		t.Fatalf("a chunk without elements encoded in version %d", enc[0])
	}
	dst := openDB(t, "dst")
	b = dst.NewBatch()
	b.SetElem(dstGroup, []byte("e9"), []byte("stale"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b = dst.NewBatch()
	if _, err := ApplyChunk(b, dstGroup, cluster, got, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	r := dst.NewReader()
	defer r.Close()
	var elems []string
	_ = r.ScanElements(dstGroup, func(k, v []byte) bool { elems = append(elems, string(k)+"="+string(v)); return true })
	if fmt.Sprint(elems) != "[e1=one e2=two]" {
		t.Fatalf("destination elements after the resync: %v", elems)
	}
}
