package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestCursorReadWrite(t *testing.T) {
	db, err := Open("/db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, ok, err := db.Cursor(4, 7); ok || err != nil {
		t.Fatalf("cursor of a fresh group: ok %v err %v", ok, err)
	}
	b := db.NewBatch()
	want := Cursor{Index: 12, ClosedMS: -5, Epoch: 3}
	b.SetCursor(4, 7, want)
	b.SetCursor(4, 1, Cursor{Index: 1})
	b.SetCursor(5, 7, Cursor{Index: 99})
	if c, ok, err := b.GetCursor(4, 7); !ok || err != nil || c != want {
		t.Fatalf("read through batch: %+v %v %v", c, ok, err)
	}
	if _, ok, _ := db.Cursor(4, 7); ok {
		t.Fatal("uncommitted cursor visible")
	}
	commit(t, b)
	if c, ok, err := db.Cursor(4, 7); !ok || err != nil || c != want {
		t.Fatalf("committed cursor: %+v %v %v", c, ok, err)
	}
	all, err := db.Cursors(4)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[7] != want || all[1].Index != 1 {
		t.Fatalf("cursors of group 4: %+v", all)
	}
	// Cursors never show up as user data.
	n := 0
	_ = db.Scan(4, nil, nil, func(k, v []byte) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d user keys in a group with only cursors", n)
	}
}

func TestCursorsTravelInSnapshots(t *testing.T) {
	src, _ := Open("/src", Options{FS: vfs.NewMem()})
	defer src.Close()
	dst, _ := Open("/dst", Options{FS: vfs.NewMem()})
	defer dst.Close()

	b := src.NewBatch()
	b.SetData(3, []byte("a"), []byte("1"))
	b.SetCursor(3, 10, Cursor{Index: 40, ClosedMS: 1000, Epoch: 2})
	b.SetCursor(3, 11, Cursor{Index: 5, ClosedMS: 7, Epoch: 1})
	b.SetCursor(4, 10, Cursor{Index: 77}) // another group: not in the snapshot
	b.SetLedger(3, []byte("e1"), []byte("conflict one"))
	b.SetLedger(4, []byte("e9"), []byte("not in the snapshot"))
	commit(t, b)
	payload, err := src.EncodeGroupData(3)
	if err != nil {
		t.Fatal(err)
	}

	b = dst.NewBatch()
	b.SetData(3, []byte("stale"), []byte("x"))
	b.SetCursor(3, 12, Cursor{Index: 1}) // must be replaced, not merged
	b.SetCursor(8, 10, Cursor{Index: 2}) // another group: untouched
	b.SetLedger(3, []byte("e0"), []byte("stale record"))
	commit(t, b)
	b = dst.NewBatch()
	if err := b.RestoreGroupData(3, payload); err != nil {
		t.Fatal(err)
	}
	commit(t, b)

	got, _ := dst.Cursors(3)
	want, _ := src.Cursors(3)
	if len(got) != 2 || got[10] != want[10] || got[11] != want[11] {
		t.Fatalf("restored cursors %+v, want %+v", got, want)
	}
	if _, ok, _ := dst.Get(3, []byte("stale")); ok {
		t.Fatal("data from before the snapshot survived")
	}
	if c, ok, _ := dst.Cursor(8, 10); !ok || c.Index != 2 {
		t.Fatal("restoring group 3 touched group 8's cursor")
	}
	// The ledger span travels too, replacing what was there.
	var ledger []string
	_ = dst.ScanLedger(3, nil, nil, func(k, v []byte) bool {
		ledger = append(ledger, string(k)+"="+string(v))
		return true
	})
	if len(ledger) != 1 || ledger[0] != "e1=conflict one" {
		t.Fatalf("restored ledger %v", ledger)
	}
	again, _ := dst.EncodeGroupData(3)
	if !bytes.Equal(again, payload) {
		t.Fatal("snapshot of the restored group differs from the original")
	}

	// A malformed payload stages nothing.
	b = dst.NewBatch()
	if err := b.RestoreGroupData(3, payload[:len(payload)-1]); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("truncated payload: %v", err)
	}
	if !b.Empty() {
		t.Fatal("a rejected payload staged writes")
	}
	b.Close()
	// An empty payload (bootstrap) empties both spans.
	b = dst.NewBatch()
	if err := b.RestoreGroupData(3, nil); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if got, _ := dst.Cursors(3); len(got) != 0 {
		t.Fatalf("cursors after an empty snapshot: %+v", got)
	}
}

func TestDestroyRemovesCursors(t *testing.T) {
	db, _ := Open("/db", Options{FS: vfs.NewMem()})
	defer db.Close()
	s, err := db.LoadLogStore(6)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.SetCursor(6, 1, Cursor{Index: 3})
	b.SetCursor(7, 1, Cursor{Index: 4})
	commit(t, b)
	b = db.NewBatch()
	s.StageDestroy(b)
	commit(t, b)
	if _, ok, _ := db.Cursor(6, 1); ok {
		t.Fatal("cursor of a destroyed group survived")
	}
	if _, ok, _ := db.Cursor(7, 1); !ok {
		t.Fatal("destroying group 6 removed group 7's cursor")
	}
}
