package storage

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLocalRecords: a node-local record survives a restart and belongs to
// no group (no snapshot carries it).
func TestLocalRecords(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("/db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.GetLocal("cluster"); ok || err != nil {
		t.Fatalf("a fresh database has a record: %v %v", ok, err)
	}
	if err := db.SetLocal("cluster", []byte("c1")); err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.SetData(0, []byte("k"), []byte("v"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint64{0, 1} {
		data, err := db.EncodeGroupData(g)
		if err != nil {
			t.Fatal(err)
		}
		gd, err := DecodeGroupData(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range gd.Pairs {
			if string(p) == "c1" {
				t.Fatalf("group %d's snapshot carries the node-local record", g)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open("/db", Options{FS: fs}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v, ok, err := db.GetLocal("cluster"); !ok || err != nil || string(v) != "c1" {
		t.Fatalf("after a restart: %q %v %v", v, ok, err)
	}
}
