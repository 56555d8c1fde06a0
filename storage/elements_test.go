package storage

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func elemKeys(t *testing.T, it *ElemIter, reverse bool) []string {
	t.Helper()
	var out []string
	ok := it.First()
	if reverse {
		ok = it.Last()
	}
	for ; ok; ok = map[bool]func() bool{false: it.Next, true: it.Prev}[reverse]() {
		v, err := it.Value()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(it.Key())+"="+string(v))
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestElements(t *testing.T) {
	db, err := Open("/db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	for i := range 5 {
		b.SetElem(7, []byte{'x', byte('a' + i)}, []byte{byte('0' + i)})
	}
	b.SetElem(8, []byte("xa"), []byte("other group"))
	b.SetData(7, []byte("xa"), []byte("a user key"))
	// The batch reads its own elements.
	if v, ok, err := b.GetElem(7, []byte("xc")); err != nil || !ok || string(v) != "2" {
		t.Fatalf("batch element read: %q %v %v", v, ok, err)
	}
	it, err := b.Elems(7, []byte("xb"), []byte("xe"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(elemKeys(t, it, false)); got != "[xb=1 xc=2 xd=3]" {
		t.Fatalf("batch range: %s", got)
	}
	commit(t, b)

	// Elements are not user keys: scans of the data span never see them.
	var keys []string
	_ = db.Scan(7, nil, nil, func(k, v []byte) bool { keys = append(keys, string(k)); return true })
	if fmt.Sprint(keys) != "[xa]" {
		t.Fatalf("data scan: %v", keys)
	}

	r := db.NewReader()
	it, err = r.Elems(7, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(elemKeys(t, it, true)); got != "[xe=4 xd=3 xc=2 xb=1 xa=0]" {
		t.Fatalf("reverse range: %s", got)
	}
	it, _ = r.Elems(7, nil, nil)
	if !it.SeekGE(7, []byte("xc")) || string(it.Key()) != "xc" || !it.SeekLT(7, []byte("xc")) || string(it.Key()) != "xb" {
		t.Fatal("seek")
	}
	_ = it.Close()
	if v, ok, _ := r.Get(7, []byte("xa")); !ok || string(v) != "a user key" {
		t.Fatalf("reader get: %q", v)
	}

	// A later write is not in the view; a range removal goes with the batch.
	b = db.NewBatch()
	b.DeleteElems(7, []byte("xb"), []byte("xd"))
	b.DeleteElem(7, []byte("xe"))
	commit(t, b)
	if _, ok, _ := r.GetElem(7, []byte("xb")); !ok {
		t.Fatal("the view saw a later removal")
	}
	r.Close()
	r = db.NewReader()
	var all []string
	_ = r.ScanElements(7, func(k, v []byte) bool { all = append(all, string(k)); return true })
	r.Close()
	if fmt.Sprint(all) != "[xa xd]" {
		t.Fatalf("after removals: %v", all)
	}

	// Snapshots carry elements (format 3), replace the receiver's and
	// leave other groups alone; ClearData clears them.
	data, err := db.EncodeGroupData(7)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != snapshotVersion {
		t.Fatalf("a group with elements encoded in version %d", data[0])
	}
	dst, _ := Open("/dst", Options{FS: vfs.NewMem()})
	defer dst.Close()
	b = dst.NewBatch()
	b.SetElem(7, []byte("zz"), []byte("stale"))
	b.SetElem(9, []byte("zz"), []byte("kept"))
	commit(t, b)
	s, _ := dst.LoadLogStore(7)
	b = dst.NewBatch()
	snap := &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(50), Term: proto.Uint64(2), ConfState: &pb.ConfState{Voters: []uint64{1}}}}
	if err := s.StageSnapshot(b, snap); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	r = dst.NewReader()
	all = nil
	_ = r.ScanElements(7, func(k, v []byte) bool { all = append(all, string(k)+"="+string(v)); return true })
	if _, ok, _ := r.GetElem(9, []byte("zz")); !ok {
		t.Fatal("a snapshot of group 7 removed group 9's elements")
	}
	r.Close()
	if fmt.Sprint(all) != "[xa=0 xd=3]" {
		t.Fatalf("restored elements: %v", all)
	}
	again, _ := dst.EncodeGroupData(7)
	if !bytes.Equal(again, data) {
		t.Fatal("a restored snapshot encodes differently")
	}
	b = dst.NewBatch()
	b.ClearData(7)
	commit(t, b)
	if d, _ := dst.EncodeGroupData(7); d[0] != snapshotV2 {
		t.Fatalf("a group without elements must encode in version 2, got %d", d[0])
	}

	// StageDestroy drops them.
	b = db.NewBatch()
	s7, _ := db.LoadLogStore(7)
	s7.StageDestroy(b)
	commit(t, b)
	r = db.NewReader()
	defer r.Close()
	n := 0
	_ = r.ScanElements(7, func(k, v []byte) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d elements survived the group's removal", n)
	}
	if _, ok, _ := r.GetElem(8, []byte("xa")); !ok {
		t.Fatal("removing group 7 removed group 8's elements")
	}
}

func TestGroupDataVersions(t *testing.T) {
	// A version-2 payload (no element section) still decodes.
	db, _ := Open("/db", Options{FS: vfs.NewMem()})
	defer db.Close()
	b := db.NewBatch()
	b.SetData(3, []byte("k"), []byte("v"))
	commit(t, b)
	data, _ := db.EncodeGroupData(3)
	gd, err := DecodeGroupData(data)
	if err != nil || len(gd.Pairs) != 2 || len(gd.Elems) != 0 {
		t.Fatalf("v2 decode: %+v %v", gd, err)
	}
	if _, err := DecodeGroupData(append([]byte{snapshotVersion}, data[1:]...)); err == nil {
		t.Fatal("a version-3 payload without its element section must fail")
	}
}
