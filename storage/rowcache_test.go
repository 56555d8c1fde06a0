package storage

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func openMem(t *testing.T, rowBytes int64) *DB {
	t.Helper()
	db, err := Open("db", Options{FS: vfs.NewMem(), RowCacheBytes: rowBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustGet(t *testing.T, db *DB, group uint64, key string) (string, bool) {
	t.Helper()
	v, ok, err := db.Get(group, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return string(v), ok
}

// bulkKeys is the size of the tests' large batches (over a thousand
// keys, which the cache once stopped tracking one by one).
const bulkKeys = 1100

// TestRowCacheFollowsEveryWrite: a key read (and so cached) and then set,
// deleted, or removed by a range deletion of its group's data, or set in
// a batch of many keys, reads as Pebble has it afterwards; other groups'
// and keys' entries are not confused with it.
func TestRowCacheFollowsEveryWrite(t *testing.T) {
	db := openMem(t, 0)
	set := func(group uint64, k, v string) {
		b := db.NewBatch()
		b.SetData(group, []byte(k), []byte(v))
		commit(t, b)
	}
	expect := func(group uint64, k, want string, wantOK bool) {
		t.Helper()
		for range 2 { // the second read is the cached one
			if v, ok := mustGet(t, db, group, k); v != want || ok != wantOK {
				t.Fatalf("group %d key %q: got %q, %v; want %q, %v", group, k, v, ok, want, wantOK)
			}
		}
	}
	expect(1, "a", "", false) // absent, cached as absent
	set(1, "a", "1")
	expect(1, "a", "1", true)
	set(2, "a", "other group")
	expect(1, "a", "1", true)
	expect(2, "a", "other group", true)
	set(1, "a", "2")
	expect(1, "a", "2", true)
	if db.rows.len() == 0 {
		t.Fatal("nothing cached after repeated reads")
	}
	// The returned value is the caller's: changing it changes no later read.
	v, _, _ := db.Get(1, []byte("a"))
	v[0] = 'x'
	expect(1, "a", "2", true)

	b := db.NewBatch()
	b.DeleteData(1, []byte("a"))
	commit(t, b)
	expect(1, "a", "", false)

	set(1, "a", "3")
	set(1, "b", "4")
	expect(1, "a", "3", true)
	expect(1, "b", "4", true)
	b = db.NewBatch()
	b.ClearData(1) // a range deletion of the group's data span
	commit(t, b)
	expect(1, "a", "", false)
	expect(1, "b", "", false)
	expect(2, "a", "other group", true)

	b = db.NewBatch()
	for i := range bulkKeys {
		b.SetData(2, fmt.Appendf(nil, "k%d", i), []byte("bulk"))
	}
	b.SetData(2, []byte("a"), []byte("changed in bulk"))
	commit(t, b)
	expect(2, "a", "changed in bulk", true)

	// Writes outside the data spans (raft state, elements) leave entries.
	expect(2, "a", "changed in bulk", true)
	n := db.rows.len()
	b = db.NewBatch()
	b.SetElem(2, []byte("x"), []byte("y"))
	lo, hi := raftSpan(2)
	b.DeleteRange(lo, hi)
	commit(t, b)
	if got := db.rows.len(); got != n {
		t.Fatalf("a batch writing no user key changed the cache from %d to %d entries", n, got)
	}
}

// TestRowCacheClearsOnlyTheGroupsTouched: a range deletion of a group's
// data drops that group's entries, and a batch of many keys of a group
// the entries of its keys; other groups' stay served from the cache. A
// range deletion of another shape, or clearing more groups than the
// cache tracks, drops every entry. Each read gives what Pebble has.
func TestRowCacheClearsOnlyTheGroupsTouched(t *testing.T) {
	db := openMem(t, 0)
	const groups = touchGroupsMax + 2
	for g := uint64(1); g <= groups; g++ {
		b := db.NewBatch()
		b.SetData(g, []byte("a"), fmt.Appendf(nil, "v%d", g))
		commit(t, b)
	}
	// readAll reads every group's key (a miss fills the cache) and returns
	// how many reads the cache served.
	readAll := func() uint64 {
		t.Helper()
		before := db.RowCacheStats().Hits
		for g := uint64(1); g <= groups; g++ {
			if v, ok := mustGet(t, db, g, "a"); v != fmt.Sprintf("v%d", g) || !ok {
				t.Fatalf("group %d: got %q, %v", g, v, ok)
			}
		}
		return db.RowCacheStats().Hits - before
	}
	readAll()
	if hits := readAll(); hits != groups {
		t.Fatalf("%d of %d reads served by the cache once filled", hits, groups)
	}

	b := db.NewBatch()
	b.ClearData(1)
	commit(t, b)
	if v, ok := mustGet(t, db, 1, "a"); ok {
		t.Fatalf("group 1 after its data was cleared: %q", v)
	}
	b = db.NewBatch()
	b.SetData(1, []byte("a"), []byte("v1"))
	for j := range bulkKeys {
		b.SetData(2, fmt.Appendf(nil, "bulk-%d", j), []byte("x"))
	}
	b.SetData(2, []byte("a"), []byte("v2 in bulk"))
	commit(t, b)
	if v, _ := mustGet(t, db, 2, "a"); v != "v2 in bulk" {
		t.Fatalf("group 2 after a bulk batch: %q", v)
	}
	b = db.NewBatch()
	b.SetData(2, []byte("a"), []byte("v2"))
	commit(t, b)
	// Groups 1 and 2 miss once; every other group was served throughout.
	if hits := readAll(); hits != groups-2 {
		t.Fatalf("%d of %d reads served by the cache after groups 1 and 2 changed; want %d", hits, groups, groups-2)
	}

	b = db.NewBatch()
	lo, _ := dataSpan(3)
	_, hi := dataSpan(4)
	b.DeleteRange(lo, hi) // two groups in one range: every entry goes
	commit(t, b)
	for g := uint64(3); g <= 4; g++ {
		if v, ok := mustGet(t, db, g, "a"); ok {
			t.Fatalf("group %d after a range deletion: %q", g, v)
		}
		b = db.NewBatch()
		b.SetData(g, []byte("a"), fmt.Appendf(nil, "v%d", g))
		commit(t, b)
	}
	if hits := readAll(); hits != 0 {
		t.Fatalf("%d reads served by the cache after a range deletion across groups", hits)
	}
	readAll()
	b = db.NewBatch()
	for g := uint64(100); g <= 100+touchGroupsMax; g++ {
		b.ClearData(g)
	}
	commit(t, b)
	if hits := readAll(); hits != 0 {
		t.Fatalf("%d reads served by the cache after %d groups were cleared in one batch", hits, touchGroupsMax+1)
	}
}

// TestRowCacheDropsAReadOverlappingACommit: a read that missed and read
// Pebble before a batch setting its key committed does not keep the older
// value, whether the batch committed before the read could keep it or is
// still committing then.
func TestRowCacheDropsAReadOverlappingACommit(t *testing.T) {
	db := openMem(t, 0)
	set := func(v string) {
		b := db.NewBatch()
		b.SetData(1, []byte("a"), []byte(v))
		commit(t, b)
	}
	set("1")
	t.Cleanup(func() { afterRowMiss = nil })
	afterRowMiss = func() {
		afterRowMiss = nil
		set("2")
	}
	if v, _ := mustGet(t, db, 1, "a"); v != "1" {
		t.Fatalf("the overlapped read got %q, want 1 (what Pebble held when it read)", v)
	}
	if v, _ := mustGet(t, db, 1, "a"); v != "2" {
		t.Fatalf("after the commit, read %q; want 2", v)
	}

	// The same with the commit still in progress when the read would
	// keep its value (as begin and end bracket Pebble's commit).
	var touch rowTouch
	touch.add(db.rows, DataKey(1, []byte("a")))
	afterRowMiss = func() {
		afterRowMiss = nil
		db.rows.begin(&touch)
	}
	b := db.NewBatch() // evict: the next read must miss
	b.SetData(1, []byte("a"), []byte("3"))
	commit(t, b)
	if v, _ := mustGet(t, db, 1, "a"); v != "3" {
		t.Fatalf("read %q, want 3", v)
	}
	// The commit begun above: Pebble's part, then the cache's end.
	if err := db.pdb.Set(DataKey(1, []byte("a")), []byte("4"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.rows.end(&touch)
	if v, _ := mustGet(t, db, 1, "a"); v != "4" {
		t.Fatalf("after the commits, read %q; want 4", v)
	}
}

// TestRowCacheStaysWithinBudget: reading many distinct keys keeps the
// cache within its byte budget, and every read is still right.
func TestRowCacheStaysWithinBudget(t *testing.T) {
	const budget = 64<<10 + 1000 // not a multiple of the shards: Capacity is still what was set
	db := openMem(t, budget)
	b := db.NewBatch()
	for i := range 5000 {
		b.SetData(1, fmt.Appendf(nil, "key-%d", i), fmt.Appendf(nil, "value-%d", i))
	}
	commit(t, b)
	for i := range 5000 {
		k := fmt.Sprintf("key-%d", i)
		for range 2 { // a miss, then a hit
			if v, ok := mustGet(t, db, 1, k); !ok || v != fmt.Sprintf("value-%d", i) {
				t.Fatalf("%s = %q, %v", k, v, ok)
			}
		}
	}
	st := db.RowCacheStats()
	if st.Bytes > budget || st.Bytes <= 0 || st.Capacity != budget {
		t.Fatalf("the cache accounts %d bytes of a capacity of %d, budget %d", st.Bytes, st.Capacity, budget)
	}
	if st.Entries == 0 || st.Entries >= 5000 {
		t.Fatalf("%d entries cached of 5000 keys read under a %d-byte budget", st.Entries, budget)
	}
	if st.Hits != 5000 || st.Misses != 5000 {
		t.Fatalf("5,000 keys read twice in a row counted %d hits and %d misses", st.Hits, st.Misses)
	}
}

// TestRowCacheOff: a negative RowCacheBytes means no row cache.
func TestRowCacheOff(t *testing.T) {
	db := openMem(t, -1)
	if db.rows != nil || db.RowCacheStats() != (RowCacheStats{}) {
		t.Fatal("a row cache despite RowCacheBytes -1")
	}
	b := db.NewBatch()
	b.SetData(1, []byte("a"), []byte("1"))
	commit(t, b)
	if v, ok := mustGet(t, db, 1, "a"); v != "1" || !ok {
		t.Fatalf("got %q, %v", v, ok)
	}
}

// TestRowCacheNeverServesOlderThanPebble races writers that raise
// counters against readers: a read that starts after a write committed
// must see it (or a later one), and no reader sees a key go backwards,
// although reads keep filling the cache (kept small, so entries also come
// and go) while batches touching the same shards commit.
func TestRowCacheNeverServesOlderThanPebble(t *testing.T) {
	db := openMem(t, 64<<10) // 1 KiB a shard: a few entries each, some evicted
	const keys, writers, readers = 8, 2, 4
	writes := 3000
	if testing.Short() {
		writes = 600
	}
	var committed [keys]atomic.Uint64 // the last value committed per key
	key := func(i int) []byte { return fmt.Appendf(nil, "k%d", i) }
	val := func(b []byte) uint64 {
		if len(b) == 0 {
			return 0
		}
		return binary.BigEndian.Uint64(b)
	}
	var mu [keys]sync.Mutex // one writer per key at a time: values only rise
	var stop atomic.Bool
	var wg, rg sync.WaitGroup
	errs := make(chan error, readers+writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range writes {
				i := (n*7 + w) % keys
				mu[i].Lock()
				next := committed[i].Load() + 1
				b := db.NewBatch()
				b.SetData(1, key(i), binary.BigEndian.AppendUint64(nil, next))
				// The batch touches another shard too (a key no reader checks).
				noise := fmt.Appendf(nil, "noise-%d", n%13)
				switch {
				case n%50 == 0: // a batch of many keys
					for j := range bulkKeys {
						b.SetData(1, fmt.Appendf(nil, "bulk-%d", j), []byte("x"))
					}
				case n%2 == 0:
					b.SetData(1, noise, []byte("x"))
				default:
					b.DeleteData(1, noise)
				}
				if n%3 == 0 { // another group cleared: every shard is touched
					b.ClearData(2)
				}
				err := b.Commit(false)
				if err == nil {
					committed[i].Store(next)
				}
				mu[i].Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var seen [keys]uint64
			for n := 0; !stop.Load(); n++ {
				i := n % keys
				floor := committed[i].Load()
				v, _, err := db.Get(1, key(i))
				if err != nil {
					errs <- err
					return
				}
				got := val(v)
				if got < floor || got < seen[i] {
					errs <- fmt.Errorf("key %d read %d after the write of %d had committed and this reader had seen %d", i, got, floor, seen[i])
					return
				}
				seen[i] = got
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := db.RowCacheStats(); st.Hits == 0 {
		t.Fatal("no read was served by the cache: the race above did not involve it")
	}
}
