package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrDirPermissions is returned by Open when the data directory can be read
// or written by users other than its owner.
var ErrDirPermissions = errors.New("storage: data directory permissions are looser than 0700")

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("storage: closed")

// ErrIO is wrapped by every error of the storage engine itself: a read, a
// scan or a commit that failed (a missing key is not an error). It means
// this node's storage is failing, not that the data asked for is wrong: a
// state machine that meets it while applying a command must not turn it
// into the command's result (see package raftgroup).
var ErrIO = errors.New("storage: I/O error")

// Options configures Open.
type Options struct {
	// FS is the filesystem Pebble runs on. Nil means the operating system's.
	// Tests pass vfs.NewMem() or a crashable in-memory filesystem.
	FS vfs.FS
	// CacheBytes is the size of Pebble's block cache. Zero means
	// DefaultCacheBytes (64 MiB).
	CacheBytes int64
	// MemTableBytes is the size Pebble's memtables grow to (they start
	// small). Zero means DefaultMemTableBytes (32 MiB).
	MemTableBytes int64
	// Logger receives Pebble's own log lines at debug level. Nil discards.
	Logger *slog.Logger
	// RowCacheBytes bounds the row cache: the values of recently read user
	// keys kept in memory in front of Pebble (rowcache.go). Zero means
	// DefaultRowCacheBytes (16 MiB); negative, no row cache.
	RowCacheBytes int64
}

// DB is one node's storage. It is safe for concurrent use; writes are
// expected to come from the raftgroup host's single loop, reads from anywhere.
type DB struct {
	pdb      *pebble.DB
	cache    *pebble.Cache // Pebble holds a reference while pdb is open
	memtable int64
	rows     *rowCache // nil: none
}

// Open opens (creating if needed) the database in dir.
func Open(dir string, opts Options) (*DB, error) {
	if opts.FS == nil {
		if err := ensureDir(dir); err != nil {
			return nil, err
		}
	}
	po := &pebble.Options{FS: opts.FS}
	if po.FS == nil {
		po.FS = walFS{vfs.Default} // walfs.go
	}
	if opts.CacheBytes < 0 {
		return nil, fmt.Errorf("storage: CacheBytes must not be negative (got %d)", opts.CacheBytes)
	}
	switch m := opts.MemTableBytes; {
	case m == 0:
		po.MemTableSize = DefaultMemTableBytes
	case m < 1<<20 || m >= 4<<30:
		return nil, fmt.Errorf("storage: MemTableBytes must be between 1 MiB and 4 GiB (got %d)", m)
	default:
		po.MemTableSize = uint64(m)
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	po.Cache = cache
	po.Logger = pebbleLogger{l: opts.Logger}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	db := &DB{pdb: pdb, cache: cache, memtable: int64(po.MemTableSize)}
	switch r := opts.RowCacheBytes; {
	case r == 0:
		db.rows = newRowCache(DefaultRowCacheBytes)
	case r > 0:
		db.rows = newRowCache(r)
	}
	return db, nil
}

// DefaultMemTableBytes is the memtable size when Options.MemTableBytes is
// 0. Pebble's own default, 4 MiB, flushes a node under write load every
// few thousand writes, and the compactions of those small tables cost a
// write more CPU than the write itself: with 32 MiB, `meridian bench
// --target inproc:none --workload W --pipeline 64` used 0.035-0.039 ms of
// CPU an operation against 0.047-0.048 (README, performance).
const DefaultMemTableBytes = 32 << 20

// DefaultCacheBytes is the block cache's size when Options.CacheBytes is 0.
const DefaultCacheBytes = 64 << 20

// RowCacheStats returns the row cache's counts (all zero without one).
func (db *DB) RowCacheStats() RowCacheStats {
	if db.rows == nil {
		return RowCacheStats{}
	}
	return db.rows.stats()
}

// CacheBytes returns the capacity of the block cache Pebble reads
// through (Options.CacheBytes, or its default).
func (db *DB) CacheBytes() int64 { return db.cache.MaxSize() }

// MemTableBytes returns the size memtables grow to (Options.MemTableBytes,
// or its default).
func (db *DB) MemTableBytes() int64 { return db.memtable }

func ensureDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("storage: create data directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("storage: data directory: %w", err)
	case !st.IsDir():
		return fmt.Errorf("storage: %s is not a directory", dir)
	case st.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%w: %s has mode %#o (run chmod 700 %s)", ErrDirPermissions, dir, st.Mode().Perm(), dir)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Batch is a set of writes committed atomically.
type Batch struct {
	db      *DB
	pb      *pebble.Batch
	seq     uint64
	touched rowTouch // the user keys it changes (rowcache.go)
}

// batchSeq numbers the batches of the process (Batch.Seq).
var batchSeq atomic.Uint64

// NewBatch returns an empty batch. Reads through the batch (GetData) see
// the committed state with the batch's own writes applied on top, so a
// state machine can apply several commands to the same key in one batch.
func (db *DB) NewBatch() *Batch {
	return &Batch{db: db, pb: db.pdb.NewIndexedBatch(), seq: batchSeq.Add(1)}
}

// Seq identifies the batch: no two batches of the process have the same
// (and none has 0). A state machine may keep what it read through a
// batch for as long as it is given the same batch.
func (b *Batch) Seq() uint64 { return b.seq }

// Set stages key=value.
func (b *Batch) Set(key, value []byte) {
	must(b.pb.Set(key, value, nil))
	b.touch(key)
}

// Delete stages the removal of key.
func (b *Batch) Delete(key []byte) {
	must(b.pb.Delete(key, nil))
	b.touch(key)
}

// DeleteRange stages the removal of every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) {
	must(b.pb.DeleteRange(start, end, nil))
	if b.db.rows != nil {
		b.touched.addRange(start, end)
	}
}

func (b *Batch) touch(key []byte) {
	if b.db.rows != nil {
		b.touched.add(b.db.rows, key)
	}
}

// Empty reports whether nothing is staged.
func (b *Batch) Empty() bool { return b.pb.Empty() }

// Len is the encoded size of the batch in bytes.
func (b *Batch) Len() int { return b.pb.Len() }

// Commit applies the batch; with sync it is durable (one WAL fsync) when
// Commit returns. The batch cannot be used afterwards.
func (b *Batch) Commit(sync bool) error {
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if b.db.rows != nil {
		b.db.rows.begin(&b.touched)
		defer b.db.rows.end(&b.touched)
	}
	err := b.pb.Commit(opt)
	_ = b.pb.Close()
	if err != nil {
		return fmt.Errorf("%w: commit: %w", ErrIO, err)
	}
	return nil
}

// Close discards an uncommitted batch.
func (b *Batch) Close() { _ = b.pb.Close() }

// must panics on errors Pebble only returns for programming errors (writing
// to a committed batch); it keeps the staging API free of error plumbing.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("storage: batch misuse: %v", err))
	}
}

// get returns a copy of the value of key, or nil, false.
func (db *DB) get(key []byte) ([]byte, bool, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: get: %w", ErrIO, err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// Flush writes everything held in memory to the database's files (Pebble's
// memtable to sstables), so that later reads of it go to the filesystem.
// Nothing needs it for durability (committed batches are in the
// write-ahead log); tests use it to put data where an injected read fault
// reaches it.
func (db *DB) Flush() error {
	if err := db.pdb.Flush(); err != nil {
		return fmt.Errorf("%w: flush: %w", ErrIO, err)
	}
	return nil
}

// scan calls fn for each key in [start, end) in order until fn returns false.
// Key and value are only valid during the call.
func (db *DB) scan(start, end []byte, fn func(k, v []byte) bool) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	return iterate(it, fn)
}

// iterate calls fn for each key of it in order until fn returns false,
// then closes it.
func iterate(it *pebble.Iterator, fn func(k, v []byte) bool) error {
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("%w: scan: %w", ErrIO, err)
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("%w: scan: %w", ErrIO, err)
	}
	return nil
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
