package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func ents(term uint64, from, to uint64) []*pb.Entry {
	var out []*pb.Entry
	for i := from; i <= to; i++ {
		out = append(out, &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Data: []byte{byte(i)}})
	}
	return out
}

func commit(t *testing.T, b *Batch) {
	t.Helper()
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

func TestLogStoreRestartFromDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.LoadLogStore(5)
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	if err := s.StageBootstrap(b, 10, 5, []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	b = db.NewBatch()
	if err := s.StageEntries(b, ents(6, 11, 20)); err != nil {
		t.Fatal(err)
	}
	s.StageHardState(b, &pb.HardState{Term: proto.Uint64(6), Vote: proto.Uint64(2), Commit: proto.Uint64(15)})
	b.SetData(5, []byte("k"), []byte("v"))
	s.StageApplied(b, 15, &pb.ConfState{Voters: []uint64{1, 2, 3}})
	commit(t, b)
	// A conflicting append replaces the suffix from 18 on.
	b = db.NewBatch()
	if err := s.StageEntries(b, ents(7, 18, 19)); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = db.LoadLogStore(5)
	if err != nil {
		t.Fatal(err)
	}
	hs, cs, _ := s.InitialState()
	if hs.GetTerm() != 6 || hs.GetVote() != 2 || hs.GetCommit() != 15 || len(cs.GetVoters()) != 3 {
		t.Fatalf("initial state after restart: %v %v", hs, cs)
	}
	if first, _ := s.FirstIndex(); first != 11 {
		t.Fatalf("first index %d, want 11", first)
	}
	if last, _ := s.LastIndex(); last != 19 {
		t.Fatalf("last index %d, want 19 (the conflicting suffix replaced 20)", last)
	}
	if term, _ := s.Term(18); term != 7 {
		t.Fatalf("term of 18 is %d, want 7", term)
	}
	if term, _ := s.Term(10); term != 5 {
		t.Fatalf("term of the bootstrap index %d, want 5", term)
	}
	got, err := s.Entries(11, 20, 1<<20)
	if err != nil || len(got) != 9 || got[0].GetIndex() != 11 || got[8].GetTerm() != 7 {
		t.Fatalf("entries after restart: %v %v", got, err)
	}
	if got, _ := s.Entries(11, 20, 1); len(got) != 1 {
		t.Fatalf("maxSize not honoured: %d entries", len(got))
	}
	if _, err := s.Entries(5, 12, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries before the first index: %v", err)
	}
	if ap := s.Applied(); ap.Index != 15 {
		t.Fatalf("applied %d, want 15", ap.Index)
	}
	if v, ok, _ := db.Get(5, []byte("k")); !ok || string(v) != "v" {
		t.Fatalf("data after restart: %q %v", v, ok)
	}
}

func TestTruncateAndSnapshot(t *testing.T) {
	db, err := Open("/db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, _ := db.LoadLogStore(9)
	b := db.NewBatch()
	_ = s.StageBootstrap(b, 10, 5, []uint64{1})
	commit(t, b)
	b = db.NewBatch()
	_ = s.StageEntries(b, ents(5, 11, 40))
	s.StageApplied(b, 30, &pb.ConfState{Voters: []uint64{1}})
	commit(t, b)
	b = db.NewBatch()
	if err := s.StageTruncate(b, 35); err == nil {
		t.Fatal("truncating beyond the applied index must fail")
	}
	if err := s.StageTruncate(b, 25); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if first, _ := s.FirstIndex(); first != 26 {
		t.Fatalf("first index %d after truncation, want 26", first)
	}
	if term, err := s.Term(25); err != nil || term != 5 {
		t.Fatalf("term of the truncation point: %d %v", term, err)
	}
	if _, err := s.Term(24); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("term before the truncation point: %v", err)
	}
	// A reloaded store agrees (the truncation was persisted).
	s2, err := db.LoadLogStore(9)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := s2.FirstIndex(); first != 26 {
		t.Fatalf("reloaded first index %d", first)
	}

	// Install a snapshot: data replaced, log emptied, indexes moved.
	b = db.NewBatch()
	b.SetData(9, []byte("old"), []byte("x"))
	commit(t, b)
	src, _ := Open("/src", Options{FS: vfs.NewMem()})
	defer src.Close()
	b = src.NewBatch()
	b.SetData(9, []byte("a"), []byte("1"))
	b.SetData(9, []byte("b"), []byte("2"))
	commit(t, b)
	data, err := src.EncodeGroupData(9)
	if err != nil {
		t.Fatal(err)
	}
	b = db.NewBatch()
	snap := &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(100), Term: proto.Uint64(8), ConfState: &pb.ConfState{Voters: []uint64{1, 2}}}}
	if err := s.StageSnapshot(b, snap); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if _, ok, _ := db.Get(9, []byte("old")); ok {
		t.Fatal("data from before the snapshot survived")
	}
	if v, ok, _ := db.Get(9, []byte("b")); !ok || string(v) != "2" {
		t.Fatalf("snapshot data: %q", v)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 101 || last != 100 || s.Applied().Index != 100 {
		t.Fatalf("after snapshot: first %d last %d applied %d", first, last, s.Applied().Index)
	}
	// Other groups' data is untouched by a snapshot of group 9.
	b = db.NewBatch()
	b.SetData(10, []byte("a"), []byte("z"))
	commit(t, b)
	b = db.NewBatch()
	_ = s.StageSnapshot(b, snap)
	commit(t, b)
	if v, ok, _ := db.Get(10, []byte("a")); !ok || string(v) != "z" {
		t.Fatal("a snapshot of one group touched another group's data")
	}
}

func TestBatchReadsItsOwnWrites(t *testing.T) {
	db, _ := Open("/db", Options{FS: vfs.NewMem()})
	defer db.Close()
	b := db.NewBatch()
	b.SetData(1, []byte("k"), []byte("v1"))
	if v, ok, _ := b.GetData(1, []byte("k")); !ok || string(v) != "v1" {
		t.Fatalf("batch read: %q %v", v, ok)
	}
	if _, ok, _ := db.Get(1, []byte("k")); ok {
		t.Fatal("uncommitted write visible")
	}
	commit(t, b)
	var keys [][]byte
	_ = db.Scan(1, nil, nil, func(k, v []byte) bool { keys = append(keys, bytes.Clone(k)); return true })
	if len(keys) != 1 || string(keys[0]) != "k" {
		t.Fatalf("scan: %q", keys)
	}
}

func TestDataDirPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrDirPermissions) {
		t.Fatalf("open of a 0755 directory: %v, want ErrDirPermissions", err)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	db, err := Open(fresh, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o700 {
		t.Fatalf("created with mode %#o, want 0700", st.Mode().Perm())
	}
}

func FuzzDecodeGroupData(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{snapshotVersion, 4, 1, 'a', 1, 'b', 0})
	f.Add([]byte{snapshotVersion, 0, 32, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{0x80})
	f.Add([]byte{snapshotVersion, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		gd, err := DecodeGroupData(b)
		if err != nil {
			return
		}
		if len(gd.Pairs)%2 != 0 {
			t.Fatalf("odd number of items: %d", len(gd.Pairs))
		}
		size := 0
		for _, p := range gd.Pairs {
			size += len(p)
		}
		if size+len(gd.Cursors)*cursorRecordLen > len(b) {
			t.Fatalf("decoded %d bytes of keys, values and cursors from %d bytes", size, len(b))
		}
		for i := 1; i < len(gd.Cursors); i++ {
			if gd.Cursors[i-1].Source >= gd.Cursors[i].Source {
				t.Fatalf("cursor sources not ascending: %v", gd.Cursors)
			}
		}
	})
}

// TestCacheBytesReachPebble: the configured block cache is the one Pebble
// reads through; zero means the default and a negative size is refused.
func TestCacheBytesReachPebble(t *testing.T) {
	for _, tc := range []struct{ set, want int64 }{{8 << 20, 8 << 20}, {0, DefaultCacheBytes}, {200 << 20, 200 << 20}} {
		db, err := Open("/data", Options{FS: vfs.NewMem(), CacheBytes: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		if got := db.CacheBytes(); got != tc.want {
			t.Errorf("CacheBytes %d: Pebble's cache holds %d, want %d", tc.set, got, tc.want)
		}
		if got := db.pdb.Metrics().BlockCache.Size; got > tc.want {
			t.Errorf("CacheBytes %d: block cache uses %d bytes, above its capacity", tc.set, got)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open("/data", Options{FS: vfs.NewMem(), CacheBytes: -1}); err == nil || !strings.Contains(err.Error(), "CacheBytes") {
		t.Fatalf("negative CacheBytes: %v, want an error naming CacheBytes", err)
	}
}

// TestMemTableBytesReachPebble: memtables grow to the configured size (the
// default when zero) and no further; sizes outside 1 MiB to 4 GiB are
// refused.
func TestMemTableBytesReachPebble(t *testing.T) {
	for _, tc := range []struct{ set, want int64 }{{1 << 20, 1 << 20}, {0, DefaultMemTableBytes}} {
		db, err := Open("/data", Options{FS: vfs.NewMem(), MemTableBytes: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		largest := int64(0)
		value := make([]byte, 64<<10)
		for i := range 1024 { // 64 MiB
			b := db.NewBatch()
			b.Set(fmt.Appendf(nil, "k%06d", i), value)
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			largest = max(largest, int64(db.pdb.Metrics().MemTable.Size))
		}
		// The mutable memtable and those queued for a flush: at most a few.
		if largest < tc.want || largest > 4*tc.want {
			t.Errorf("MemTableBytes %d: memtables reached %d bytes, want at least %d (and not far above)", tc.set, largest, tc.want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []int64{-1, 1 << 10, 4 << 30} {
		if _, err := Open("/data", Options{FS: vfs.NewMem(), MemTableBytes: bad}); err == nil || !strings.Contains(err.Error(), "MemTableBytes") {
			t.Errorf("MemTableBytes %d: %v, want an error naming MemTableBytes", bad, err)
		}
	}
}

// TestLogStoreCachedTailAgrees: through thousands of appends of varying
// sizes (some replacing a suffix, as a new leader's do), the entries and
// terms the log store serves (from within its cached tail, and from before
// it, in Pebble) are those appended last at each index, in order; entries
// it returned earlier do not change as the tail moves on; and after a
// restart, which reads them all from Pebble, the same.
func TestLogStoreCachedTailAgrees(t *testing.T) {
	fs := vfs.NewMem()
	db, s := openLogStore(t, fs, 7)
	b := db.NewBatch()
	if err := s.StageBootstrap(b, 1, 1, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	want := map[uint64]uint64{} // index -> term
	last, term := uint64(1), uint64(1)
	var held []*pb.Entry
	var heldWant [][2]uint64
	check := func(s *LogStore, lo uint64) {
		t.Helper()
		got, err := s.Entries(lo, last+1, 1<<30)
		if err != nil || uint64(len(got)) != last+1-lo {
			t.Fatalf("entries [%d, %d]: %d, %v", lo, last, len(got), err)
		}
		for k, e := range got {
			if e.GetIndex() != lo+uint64(k) {
				t.Fatalf("entries [%d, %d]: entry %d has index %d", lo, last, k, e.GetIndex())
			}
			if e.GetTerm() != want[e.GetIndex()] || e.GetData()[0] != byte(e.GetIndex()) {
				t.Fatalf("entry %d: term %d, want %d", e.GetIndex(), e.GetTerm(), want[e.GetIndex()])
			}
			if tm, err := s.Term(e.GetIndex()); err != nil || tm != want[e.GetIndex()] {
				t.Fatalf("term of %d: %d %v, want %d", e.GetIndex(), tm, err, want[e.GetIndex()])
			}
		}
	}
	for i := 0; i < 400; i++ {
		from := last + 1
		if i%37 == 36 {
			from = last - uint64(i%5) // a new leader replaces a suffix
			term++
		}
		to := from + uint64(i%23)
		b := db.NewBatch()
		if err := s.StageEntries(b, ents(term, from, to)); err != nil {
			t.Fatal(err)
		}
		commit(t, b)
		for j := from; j <= to; j++ {
			want[j] = term
		}
		for j := to + 1; j <= last; j++ {
			delete(want, j)
		}
		last = to
		lo := uint64(2) // from before the cached tail, at most
		if last > 2*maxCachedEntries+12 {
			lo = last - 2*maxCachedEntries - 10
		}
		check(s, lo)
		if last > maxCachedEntries/2+2 {
			check(s, last-maxCachedEntries/2) // within it
		}
		// What Entries returned stays as it was while the log moves on
		// (the cache's array is reused).
		if held == nil {
			lo := uint64(2)
			if last > 10 {
				lo = last - 8
			}
			held, _ = s.Entries(lo, last+1, 1<<30)
			heldWant = nil
			for _, e := range held {
				heldWant = append(heldWant, [2]uint64{e.GetIndex(), e.GetTerm()})
			}
		}
		for j, e := range held {
			if [2]uint64{e.GetIndex(), e.GetTerm()} != heldWant[j] {
				t.Fatalf("an entry Entries returned changed: %d/%d, was %v", e.GetIndex(), e.GetTerm(), heldWant[j])
			}
		}
		if i%50 == 49 {
			held = nil
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, s = openLogStore(t, fs, 7)
	defer db.Close()
	check(s, 2)
}

// TestStageAppliedFollowsTheConfiguration: the applied state written and
// kept in memory is the configuration of each call, byte for byte what
// the configuration encodes to, through calls with the same configuration
// (whose encoding is reused), a changed one, one changed in place, and
// one whose only difference is auto_leave's presence; the copy kept is
// the log store's own.
func TestStageAppliedFollowsTheConfiguration(t *testing.T) {
	db, s := openLogStore(t, vfs.NewMem(), 3)
	defer db.Close()
	cs := &pb.ConfState{Voters: []uint64{1, 2, 3}}
	index := uint64(0)
	stage := func(cs *pb.ConfState) {
		t.Helper()
		index++
		b := db.NewBatch()
		s.StageApplied(b, index, cs)
		commit(t, b)
		v, ok, err := db.get(raftKey(3, suffixApplied))
		if err != nil || !ok {
			t.Fatalf("applied state: %v %v", ok, err)
		}
		if want := append(binary.BigEndian.AppendUint64(nil, index), mustMarshal(cs)...); !bytes.Equal(v, want) {
			t.Fatalf("stored applied state %x, want %x (%v)", v, want, cs)
		}
		if ap := s.Applied(); ap.Index != index || !proto.Equal(ap.ConfState, cs) {
			t.Fatalf("applied in memory %d %v, want %d %v", ap.Index, ap.ConfState, index, cs)
		}
	}
	stage(cs)
	stage(cs)
	stage(&pb.ConfState{Voters: []uint64{1, 2, 3}})
	stage(&pb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}})
	cs.Voters[2] = 4 // changed in place
	stage(cs)
	stage(&pb.ConfState{Voters: []uint64{1, 2, 4}, AutoLeave: proto.Bool(false)})
	stage(&pb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}, AutoLeave: proto.Bool(true)})
	stage(&pb.ConfState{Voters: []uint64{1, 2, 4}, LearnersNext: []uint64{3}})
	ap := s.Applied()
	ap.ConfState.Voters[0] = 9 // the caller's copy
	if s.Applied().ConfState.GetVoters()[0] != 1 {
		t.Fatal("the applied state kept shares its configuration with a caller")
	}
}

// openLogStore opens the database at /db on fs and loads a group's log
// store.
func openLogStore(t *testing.T, fs vfs.FS, group uint64) (*DB, *LogStore) {
	t.Helper()
	db, err := Open("/db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.LoadLogStore(group)
	if err != nil {
		t.Fatal(err)
	}
	return db, s
}
