package storage

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Written WAL space.
//
// Every durable write ends in an fdatasync of Pebble's write-ahead log,
// and its cost decides how fast a node writes. Pebble reserves a new
// WAL's space with fallocate(FALLOC_FL_KEEP_SIZE): the blocks are
// allocated but unwritten, so every fdatasync after an append must also
// commit, in the filesystem's journal, the conversion of the blocks it
// wrote and the file's new size. Overwriting blocks that already hold
// data within the file's size needs neither: on ext4 (the development
// machine's disk), a 2,500-byte write followed by fdatasync took 209 / 176
// / 222 us in space reserved so and 114 / 116 / 127 us in a walFile
// (BenchmarkWALSync, three runs).
//
// walFS therefore gives WAL files (*.log) space that is written: ahead of
// the writes, a goroutine writes zeros over the next chunk past the end
// of the file and makes them durable with an fdatasync of its own, so
// that the log's own writes land on initialized blocks within the file's
// size. Pebble's preallocation of WAL files is skipped. Pebble reads a
// log's zeroed tail as its end (it has to: recycled and preallocated logs
// end that way too), and recycles old logs, written space included, for
// new ones. A write that reaches the end of the zeroed space while the
// next chunk is being written waits for it; if writing zeros fails (a
// full disk), the log is appended to plainly from then on.

const (
	// walZeroChunk is how much zeroed space one fill adds.
	walZeroChunk = 1 << 20
	// walZeroAhead is how close to the end of the zeroed space the
	// writes get before the next fill starts.
	walZeroAhead = walZeroChunk / 2
)

// walZeros is what a fill writes (read only).
var walZeros = sync.OnceValue(func() []byte { return make([]byte, walZeroChunk) })

// walFS is an FS (the operating system's, see Open) with written space for
// WAL files.
type walFS struct{ vfs.FS }

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return newWALFile(f, 0), nil
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	// A recycled log is written from its start; its old contents,
	// zeroed tail included, are initialized space already.
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return newWALFile(f, size), nil
}

// walFile is a WAL file written sequentially from its start (Write), with
// zeroed space kept ahead of the writes.
type walFile struct {
	vfs.File
	mu   sync.Mutex
	cond sync.Cond
	pos  int64 // where the next Write goes
	// zeroed is the end of the initialized space: no fill ever writes
	// below it, nor below pos.
	zeroed  int64
	filling bool // a fill is writing past zeroed
	failed  bool // a fill failed: append without zeros from now on
	closed  bool
}

func newWALFile(f vfs.File, zeroed int64) *walFile {
	w := &walFile{File: f, zeroed: zeroed}
	w.cond.L = &w.mu
	return w
}

// Preallocate does nothing: the fills give the space (see walFS).
func (w *walFile) Preallocate(offset, length int64) error { return nil }

func (w *walFile) Write(p []byte) (int, error) {
	end := w.pos + int64(len(p))
	w.mu.Lock()
	// A fill covers the space past zeroed: a write into it waits for the
	// zeros to land first, or they would land on the write.
	for w.filling && end > w.zeroed {
		w.cond.Wait()
	}
	if !w.failed && !w.filling && !w.closed && end+walZeroAhead > w.zeroed {
		from := max(w.zeroed, end)
		w.filling = true
		go w.fill(from)
	}
	w.mu.Unlock()
	n, err := w.File.Write(p)
	w.pos += int64(n)
	return n, err
}

// fill writes zeros over [from, from+walZeroChunk) and makes them durable.
// Write does not write at or past from until it is done.
func (w *walFile) fill(from int64) {
	_, err := w.File.WriteAt(walZeros(), from)
	if err == nil {
		err = w.File.SyncData()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.filling = false
	if err != nil {
		w.failed = true
	} else {
		w.zeroed = from + walZeroChunk
	}
	w.cond.Broadcast()
}

func (w *walFile) Close() error {
	w.mu.Lock()
	for w.filling {
		w.cond.Wait()
	}
	w.closed = true
	w.mu.Unlock()
	return w.File.Close()
}
