package storage

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/internal/testutil"
)

// TestCrashKeepsAPrefixOfBatches is the promise package raftgroup builds
// on: after a crash, the database holds exactly the batches committed up
// to some point, a prefix of them, and that prefix includes every batch
// committed with sync. Raft's applied index and the data it covers are
// written in one batch, and often without sync; were a later synced batch
// kept while an earlier one was dropped, a replica would restart with an
// applied index past data it does not have, and never apply it again.
//
// A writer commits numbered batches (one in three synced), each setting
// a counter to its number, one of nkeys keys to it (with padding, so that
// memtables and write-ahead logs rotate) and a marker key of its own; the
// filesystem is crash-cloned while it writes, keeping a random share of
// what was not synced (Pebble's crashable in-memory filesystem). Every
// other round runs with the written WAL space of the operating system's
// filesystem (walfs.go), so the crash leaves logs with a zeroed tail.
func TestCrashKeepsAPrefixOfBatches(t *testing.T) {
	for r := range testutil.EnvInt(t, "MERIDIAN_CRASH_ROUNDS", 6) {
		crashPrefixRound(t, uint64(r))
	}
}

func crashPrefixRound(t *testing.T, round uint64) {
	const nkeys = 64
	const group = 1
	key := func(j uint64) []byte { return fmt.Appendf(nil, "k%03d", j) }
	marker := func(i uint64) []byte { return fmt.Appendf(nil, "b%09d", i) }
	rng := rand.New(rand.NewPCG(round, 3))
	pad := make([]byte, 500+rng.IntN(3500))
	crashAt := uint64(20 + rng.IntN(150)) // synced batches before the crash
	pct := rng.IntN(60)

	fs := vfs.NewCrashableMem()
	wrap := func(fs vfs.FS) vfs.FS { return fs }
	if round%2 == 1 {
		wrap = func(fs vfs.FS) vfs.FS { return walFS{fs} }
	}
	db, err := Open("/data", Options{FS: wrap(fs), CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	synced := uint64(0)
	reached := make(chan struct{})
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		defer close(werr)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b := db.NewBatch()
			v := binary.BigEndian.AppendUint64(nil, i)
			b.SetData(group, []byte("counter"), v)
			b.SetData(group, key(i%nkeys), append(v, pad...))
			b.SetData(group, marker(i), nil)
			sync := i%3 == 0
			if err := b.Commit(sync); err != nil {
				werr <- err
				return
			}
			if sync {
				mu.Lock()
				synced = i
				mu.Unlock()
				if i/3 == crashAt {
					close(reached) // the crash comes while later batches go on
				}
			}
		}
	}()
	<-reached
	mu.Lock()
	minSynced := synced
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
	close(stop)
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var files []string
	if names, err := crashed.List("/data"); err == nil {
		for _, n := range names {
			if st, err := crashed.Stat("/data/" + n); err == nil {
				files = append(files, fmt.Sprintf("%s(%d)", n, st.Size()))
			}
		}
	}

	cdb, err := Open("/data", Options{FS: wrap(crashed), CacheBytes: 1 << 20})
	if err != nil {
		t.Fatalf("round %d: open after the crash: %v", round, err)
	}
	defer cdb.Close()
	get := func(k []byte) (uint64, bool) {
		v, ok, err := cdb.Get(group, k)
		if err != nil {
			t.Fatalf("round %d: get %s: %v", round, k, err)
		}
		if !ok || len(v) < 8 {
			return 0, ok
		}
		return binary.BigEndian.Uint64(v), true
	}
	kept, _ := get([]byte("counter"))
	var problems []string
	if kept < minSynced {
		problems = append(problems, fmt.Sprintf("the last batch kept is %d, but %d was synced before the crash", kept, minSynced))
	}
	var missing, extra []uint64
	for i := uint64(1); i <= kept; i++ {
		if _, ok := get(marker(i)); !ok {
			missing = append(missing, i)
		}
	}
	for i := kept + 1; i <= kept+200; i++ {
		if _, ok := get(marker(i)); ok {
			extra = append(extra, i)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		problems = append(problems, fmt.Sprintf("not a prefix: the counter says %d, batches up to it missing %v, batches after it present %v", kept, missing, extra))
	}
	for j := uint64(0); j < nkeys; j++ {
		want := kept - (kept+nkeys-j)%nkeys // the last batch <= kept that set key j
		got, ok := get(key(j))
		if want > kept || want == 0 {
			if ok {
				problems = append(problems, fmt.Sprintf("%s=%d, but no batch up to %d set it", key(j), got, kept))
			}
			continue
		}
		if !ok || got != want {
			problems = append(problems, fmt.Sprintf("%s=%d (present %v), want %d", key(j), got, ok, want))
		}
	}
	if len(problems) > 0 {
		t.Errorf("round %d (padding %d bytes, %d%% of unsynced data kept, %d batches synced at the crash): %s\n  files after the crash: %s",
			round, len(pad), pct, minSynced, strings.Join(problems, "; "), strings.Join(files, " "))
	}
}
