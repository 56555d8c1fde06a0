package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walBytes returns n bytes of content that no zero-fill could produce.
func walBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(1 + rng.IntN(255))
	}
	return b
}

// writeAll writes data through w in writes of random sizes, as Pebble's
// log writer does (a few larger than the space kept ahead, which must
// wait for the fill under way), and returns what it wrote.
func writeAll(t *testing.T, w vfs.File, rng *rand.Rand, total int) []byte {
	t.Helper()
	data := walBytes(rng, total)
	for off := 0; off < total; {
		n := 1 + rng.IntN(40_000)
		if rng.IntN(8) == 0 {
			n = 1 + rng.IntN(walZeroChunk)
		}
		n = min(n, total-off)
		if _, err := w.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(4) == 0 {
			if err := w.SyncData(); err != nil {
				t.Fatal(err)
			}
		}
		off += n
	}
	return data
}

// checkFile reads path: data first, then only zeros (want: at least min
// of them).
func checkFile(t *testing.T, path string, data []byte, minZeros int) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(data) || !bytes.Equal(got[:len(data)], data) {
		i := 0
		for i < min(len(got), len(data)) && got[i] == data[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, the written %d differ from byte %d (zeros over written data?)", path, len(got), len(data), i)
	}
	tail := got[len(data):]
	if len(tail) < minZeros {
		t.Fatalf("%s: %d bytes of zeroed space after the %d written, want at least %d", path, len(tail), len(data), minZeros)
	}
	if i := bytes.IndexFunc(tail, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("%s: byte %d after the written ones is not zero", path, len(data)+i)
	}
}

// TestWALFileZeroesAheadOfWrites: writes of random sizes through a WAL
// file land as written (the fills ahead of them never write over them),
// and the file ends in zeroed space (at least what the fills keep ahead).
// A recycled file's existing space counts as written: no fill until the
// writes near its end.
func TestWALFileZeroesAheadOfWrites(t *testing.T) {
	dir := t.TempDir()
	fs := walFS{vfs.Default}
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(dir, "000001.log")
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*walFile); !ok {
		t.Fatalf("a log file is a %T, not a walFile", f)
	}
	data := writeAll(t, f, rng, 20*walZeroChunk+12345)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data, walZeroAhead)

	// Recycled: the old file is all initialized space.
	size := int64(len(data))
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	reused := filepath.Join(dir, "000002.log")
	f, err = fs.ReuseForWrite(path, reused, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	small := writeAll(t, f, rng, 100_000)
	if st, err := f.Stat(); err != nil || st.Size() != size {
		t.Fatalf("recycled log grew to %v (%v) after 100 KB written into its %d bytes", st.Size(), err, size)
	}
	rest := writeAll(t, f, rng, int(size)) // past its end
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, reused, append(small, rest...), walZeroAhead)

	// Other files are Pebble's own.
	other, err := fs.Create(filepath.Join(dir, "000003.sst"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, ok := other.(*walFile); ok {
		t.Fatal("a table file got zeroed space")
	}
}

// failingWriteAt fails every WriteAt, as a full disk would.
type failingWriteAt struct{ vfs.File }

func (failingWriteAt) WriteAt([]byte, int64) (int, error) { return 0, errors.New("no space left") }

// TestWALFileWithoutSpace: when writing zeros fails, the log is appended
// to without them; no write waits for a fill that cannot come.
func TestWALFileWithoutSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000001.log")
	inner, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f := newWALFile(failingWriteAt{inner}, 0)
	data := writeAll(t, f, rand.New(rand.NewPCG(3, 4)), 3*walZeroChunk)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.failed {
		t.Fatal("the failed fill was not noticed")
	}
	checkFile(t, path, data, 0)
}

// TestWALSpaceSurvivesRestartAndCrash: a node's database on the operating
// system's filesystem writes its log into zeroed space, and every synced
// batch is there after a clean restart and after a crash (the files
// copied as they are while the database is open, as a kill -9 leaves
// them: the log's zeroed tail included).
func TestWALSpaceSurvivesRestartAndCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const group = 7
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	val := bytes.Repeat([]byte("v"), 300)
	put := func(db *DB, from, to int) {
		for i := from; i < to; i++ {
			b := db.NewBatch()
			b.SetData(group, key(i), val)
			if err := b.Commit(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(db *DB, n int, when string) {
		t.Helper()
		for i := range n {
			if v, ok, err := db.Get(group, key(i)); err != nil || !ok || !bytes.Equal(v, val) {
				t.Fatalf("%s: key %d: %v %v", when, i, ok, err)
			}
		}
	}
	put(db, 0, 3000)
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no log files in %s (%v)", dir, err)
	}
	zeroed := false
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) >= walZeroAhead && bytes.Count(b[len(b)-walZeroAhead:], []byte{0}) == walZeroAhead {
			zeroed = true
		}
	}
	if !zeroed {
		t.Fatalf("no log among %v ends in zeroed space", logs)
	}

	crashed := filepath.Join(t.TempDir(), "crashed")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(crashed, 0o700); err != nil {
		t.Fatal(err)
	}
	cdb, err := Open(crashed, Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	check(cdb, 3000, "after the crash")
	put(cdb, 3000, 3100)
	check(cdb, 3100, "written after the crash")
	if err := cdb.Close(); err != nil {
		t.Fatal(err)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, Options{CacheBytes: 1 << 20}); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	check(db, 3000, "after a restart")
	put(db, 3000, 3100)
	check(db, 3100, "written after the restart")
}

// BenchmarkWALSync times what makes a commit durable: a 2,500-byte write
// to a log followed by fdatasync, in a file whose space Pebble reserved
// (fallocate with KEEP_SIZE, as for its own logs) and in a walFile
// (space zeroed ahead). On the operating system's filesystem, in the
// package's directory (run it where the data lives: TMPDIR is often a
// tmpfs).
//
//	go test -run XXX -bench WALSync -benchtime 3000x ./storage
func BenchmarkWALSync(b *testing.B) {
	rec := walBytes(rand.New(rand.NewPCG(5, 6)), 2500)
	for _, mode := range []string{"reserved", "zeroed"} {
		b.Run(mode, func(b *testing.B) {
			dir, err := os.MkdirTemp(".", "walsync")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "000001.log")
			var f vfs.File
			if mode == "zeroed" {
				f, err = walFS{vfs.Default}.Create(path, vfs.WriteCategoryUnspecified)
			} else if f, err = vfs.Default.Create(path, vfs.WriteCategoryUnspecified); err == nil {
				err = f.Preallocate(0, int64(b.N)*int64(len(rec))+walZeroChunk)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := f.SyncData(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
