package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
)

// ackedWrite is one write a workload made: when it began and when it was
// acknowledged (zero if it failed or is unknown).
type ackedWrite struct {
	key   string
	value int
	begin time.Time
	ack   time.Time
}

// backupCluster is a three-region cluster that archives fast.
func backupCluster(t *testing.T, opts testcluster.Options) *testcluster.Cluster {
	t.Helper()
	tune := opts.Tune
	opts.Tune = func(id uint64, cfg *node.Config) {
		cfg.BackupArchiveInterval = 100 * time.Millisecond
		cfg.BackupSealInterval = 200 * time.Millisecond
		if tune != nil {
			tune(id, cfg)
		}
	}
	return testcluster.New(t, opts)
}

// workload writes from every region until stop is closed: to a sync
// keyspace, unique keys w<region>-<i> (value i) and one key per region
// overwritten with i; to an active keyspace, increments of a few
// counters; to an async keyspace (primary us-east), unique keys. It
// returns what each acknowledged, per keyspace.
type workload struct {
	mu     sync.Mutex
	writes map[string][]ackedWrite // keyspace -> writes
	errs   map[string]int
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once
}

func startWorkload(t *testing.T, c *testcluster.Cluster, sync, active, async string) *workload {
	w := &workload{writes: map[string][]ackedWrite{}, errs: map[string]int{}, stop: make(chan struct{})}
	for _, n := range c.Running() {
		for _, ks := range []string{sync, active, async} {
			if ks == "" || (ks == async && n.Region() != "us-east") {
				continue
			}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				for i := 1; ; i++ {
					select {
					case <-w.stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					var cmd kv.Command
					var key string
					now := time.Now()
					switch ks {
					case active:
						key = fmt.Sprintf("c%d", i%3)
						cmd = kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: now.UnixMilli(), Args: [][]byte{[]byte(key)}}
					default:
						key = fmt.Sprintf("w%s-%d", n.Region(), i)
						if i%3 == 0 {
							key = "last-" + n.Region()
						}
						cmd = kv.Command{Op: kv.OpSet, NowMS: now.UnixMilli(), Args: [][]byte{[]byte(key), []byte(strconv.Itoa(i))}}
					}
					_, _, err := n.Write(ctx, ks, cmd)
					ack := time.Now()
					cancel()
					w.mu.Lock()
					if err != nil {
						w.errs[ks]++
						ack = time.Time{}
					}
					w.writes[ks] = append(w.writes[ks], ackedWrite{key: key, value: i, begin: now, ack: ack})
					w.mu.Unlock()
				}
			}()
		}
	}
	return w
}

func (w *workload) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *workload) snapshot(ks string) []ackedWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes[ks])
}

// cutTime returns now, a time to restore to.
func cutTime() time.Time { return time.Now() }

// beganAfter reports whether a write began after the millisecond of T:
// times are restored with millisecond resolution (backup.ParseTime), so
// the state at T holds every entry stamped in T's millisecond or before.
func beganAfter(w ackedWrite, at time.Time) bool {
	return !w.begin.Before(at.Truncate(time.Millisecond).Add(time.Millisecond))
}

// checkKV checks a restored plain keyspace against the writes: every key
// acknowledged before T is there with its value, none begun after T is,
// and no key is there that no write made; an overwritten key holds a
// value acknowledged before T or in flight at T. The restored keyspace
// takes no writes, so one strong scan lists its keys; only the keys
// acknowledged before T are read one by one.
func checkKV(t *testing.T, ctx context.Context, n *node.Node, keyspace string, writes []ackedWrite, at time.Time) (present, inFlight int) {
	t.Helper()
	restored := map[string]bool{}
	for cursor := "0"; ; {
		var keys [][]byte
		var next string
		err := retryUnavailable(ctx, func() (err error) {
			keys, next, _, err = n.Scan(ctx, keyspace, cursor, "", 1000, node.Strong)
			return err
		})
		if err != nil {
			t.Fatalf("scan %s: %v", keyspace, err)
		}
		for _, k := range keys {
			restored[string(k)] = true
		}
		if next == "0" {
			break
		}
		cursor = next
	}
	type span struct{ lo, hi int } // acceptable values of an overwritten key
	last := map[string]*span{}
	written := map[string]bool{}
	var acked []ackedWrite // acknowledged before T
	for _, w := range writes {
		written[w.key] = true
		before := !w.ack.IsZero() && w.ack.Before(at)
		after := beganAfter(w, at)
		if w.key[:5] == "last-" {
			s := last[w.key]
			if s == nil {
				s = &span{lo: 0, hi: 0}
				last[w.key] = s
			}
			if before && w.value > s.lo {
				s.lo = w.value
			}
			if !after && w.value > s.hi {
				s.hi = w.value
			}
			continue
		}
		switch {
		case before:
			acked = append(acked, w)
		case after && restored[w.key]:
			t.Errorf("%s: %s begun at %s, after %s, is in the restore", keyspace, w.key, w.begin.Format("15:04:05.000"), at.Format("15:04:05.000"))
		case !after:
			inFlight++
		}
	}
	// The keys acknowledged before T and the overwritten ones, read at
	// strong in a few multi-key reads (one strong read per key took
	// minutes on loaded cores).
	keys := make([]string, 0, len(acked)+len(last))
	for _, w := range acked {
		keys = append(keys, w.key)
	}
	for k := range last {
		keys = append(keys, k)
	}
	values := mgetStrong(t, ctx, n, keyspace, keys)
	for _, w := range acked {
		v, ok := values[w.key]
		if !ok || v != strconv.Itoa(w.value) || !restored[w.key] {
			t.Errorf("%s: %s acknowledged at %s, before %s, restored as %q %v (scanned: %v)", keyspace, w.key, w.ack.Format("15:04:05.000"), at.Format("15:04:05.000"), v, ok, restored[w.key])
		} else {
			present++
		}
	}
	for k := range restored {
		if !written[k] {
			t.Errorf("%s: %s is in the restore, but no write made it", keyspace, k)
		}
	}
	for k, s := range last {
		got := 0
		if v, ok := values[k]; ok {
			got, _ = strconv.Atoi(v)
		}
		if got < s.lo || got > s.hi {
			t.Errorf("%s: %s restored as %d; acknowledged before T: %d, begun before T: up to %d", keyspace, k, got, s.lo, s.hi)
		}
	}
	return present, inFlight
}

// TestBackupRestoreAtTime: writers in three regions on a sync, an active
// and an async keyspace; the schedule archives every group's log; a full
// backup, then an incremental one, are taken while the writes go on.
// Restoring each keyspace at a time T between them, into new keyspaces
// while the writers keep writing, gives exactly the state acknowledged at
// T: every write acknowledged before T is there and none begun after T's
// millisecond (times have millisecond resolution);
// each active counter is between the increments acknowledged and those
// begun before T (equal when none was in flight), and keeps counting in
// every region afterwards.
func TestBackupRestoreAtTime(t *testing.T) {
	c := backupCluster(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.1)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 3})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 2})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "q", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // usually well under one; two shared, loaded cores have taken two
	defer cancel()
	n := c.Running()[0]
	target := "file://" + t.TempDir()
	if err := n.SetBackupSchedule(ctx, &metadata.BackupSchedule{Target: target, Archive: true}); err != nil {
		t.Fatal(err)
	}
	w := startWorkload(t, c, "s", "a", "q")
	defer w.halt()
	time.Sleep(700 * time.Millisecond)

	start := time.Now()
	full, err := n.CreateBackup(ctx, node.BackupRequest{Target: target, Full: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if full.Kind != "full" {
		t.Fatalf("first backup is %s", full.Kind)
	}
	time.Sleep(500 * time.Millisecond)
	at := cutTime()
	time.Sleep(500 * time.Millisecond)
	incr, err := c.Running()[1].CreateBackup(ctx, node.BackupRequest{Target: target}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if incr.Kind != "incremental" || incr.Parent != full.ID {
		t.Fatalf("second backup is %s with parent %q, want incremental on %s", incr.Kind, incr.Parent, full.ID)
	}
	t.Logf("FIGURES: full backup %d bytes, %d keys in %v; incremental %d new bytes (of %d referenced)", full.NewBytes, full.Keys, took.Round(time.Millisecond), incr.NewBytes, incr.Bytes)

	// The restores, at T (between the two backups: the full backup's base
	// and log, plus the archive) while the writers go on.
	store, err := backup.OpenStore(target, backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := backup.Verify(ctx, store); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
	atText := at.UTC().Format(time.RFC3339Nano)
	for _, ks := range []string{"s", "q", "a"} {
		st, err := c.Running()[2].Restore(ctx, node.RestoreRequest{From: target, Keyspace: ks, At: atText, As: ks + "_at_t"})
		if err != nil {
			t.Fatalf("restore %s: %v", ks, err)
		}
		if st.Backup != full.ID && st.Backup != incr.ID {
			t.Fatalf("restore of %s at T used backup %s, want %s or %s", ks, st.Backup, full.ID, incr.ID)
		}
		t.Logf("restored %s at %s from %s: %d keys, %d entries replayed, %d chunks, epoch %d, in %v", ks, atText, st.Backup, st.Keys, st.Entries, st.Chunks, st.Epoch, time.Duration(st.ElapsedMS)*time.Millisecond)
		if ks == "a" {
			for _, cut := range st.Cuts {
				t.Logf("  active cut: shard %d region %s group %d at index %d (stamp %s)", cut.Shard, cut.Region, cut.Group, cut.Index, cut.Stamp)
			}
		}
	}
	writes := map[string][]ackedWrite{}
	for _, ks := range []string{"s", "q", "a"} {
		writes[ks] = w.snapshot(ks)
	}
	for _, ks := range []string{"s", "q"} {
		present, inFlight := checkKV(t, ctx, n, ks+"_at_t", writes[ks], at)
		if present == 0 {
			t.Fatalf("%s: no write acknowledged before T to check", ks)
		}
		t.Logf("%s at T: %d acknowledged writes present, %d in flight at T", ks, present, inFlight)
	}
	// The restored async keyspace's replica regions got its data by stream.
	var probe ackedWrite
	for _, wr := range writes["q"] {
		if !wr.ack.IsZero() && wr.ack.Before(at) && !strings.HasPrefix(wr.key, "last-") {
			probe = wr
		}
	}
	for _, m := range c.Running() {
		if err := c.WaitFor(ctx, func() bool {
			v, ok, a, err := m.Get(ctx, "q_at_t", []byte(probe.key), node.Eventual)
			return err == nil && ok && string(v) == strconv.Itoa(probe.value) && a.Region == m.Region()
		}); err != nil {
			t.Fatalf("region %s never got the restored async keyspace's %s", m.Region(), probe.key)
		}
	}
	// Active: counters between what was acknowledged and what was begun
	// before T.
	lo, hi := map[string]int64{}, map[string]int64{}
	for _, wr := range writes["a"] {
		if !wr.ack.IsZero() && wr.ack.Before(at) {
			lo[wr.key]++
		}
		if !beganAfter(wr, at) {
			hi[wr.key]++
		}
	}
	restored := map[string]int64{}
	for k := range hi {
		v, ok, _, err := n.Get(ctx, "a_at_t", []byte(k), node.Eventual)
		if err != nil || !ok {
			t.Fatalf("counter %s: %q %v %v", k, v, ok, err)
		}
		got, _ := strconv.ParseInt(string(v), 10, 64)
		restored[k] = got
		if got < lo[k] || got > hi[k] {
			t.Errorf("counter %s restored as %d; %d increments acknowledged before T, %d begun", k, got, lo[k], hi[k])
		}
		if lo[k] == hi[k] && got != lo[k] {
			t.Errorf("counter %s restored as %d, want exactly %d", k, got, lo[k])
		}
	}
	t.Logf("active counters at T: restored %v, acknowledged before T %v, begun before T %v", restored, lo, hi)
	w.halt()

	// The restored counters keep counting, in every region.
	for _, m := range c.Running() {
		if _, _, err := m.Write(ctx, "a_at_t", kv.Command{Op: kv.OpIncrBy, Int: 10, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("c1")}}); err != nil {
			t.Fatal(err)
		}
	}
	want := strconv.FormatInt(restored["c1"]+30, 10)
	for _, m := range c.Running() {
		if err := c.WaitFor(ctx, func() bool {
			v, ok, _, err := m.Get(ctx, "a_at_t", []byte("c1"), node.Eventual)
			return err == nil && ok && string(v) == want
		}); err != nil {
			v, _, _, _ := m.Get(ctx, "a_at_t", []byte("c1"), node.Eventual)
			t.Fatalf("region %s: restored counter at %s after 3 x 10 more, want %s", m.Region(), v, want)
		}
	}
	// The hidden keyspaces are gone; the restored ones are visible.
	for _, ks := range n.Metadata().Keyspaces {
		if ks.Restore != nil {
			t.Fatalf("keyspace %s still being restored", ks.Name)
		}
	}
}

// pausingTarget stops the first Put of a base part until resumed, so
// that a test acts in the middle of a backup.
type pausingTarget struct {
	backup.Target
	once    *sync.Once
	paused  chan struct{}
	resumed chan struct{}
}

func (p pausingTarget) Put(ctx context.Context, name string, data []byte) error {
	if strings.Contains(name, "/base/") {
		p.once.Do(func() {
			close(p.paused)
			<-p.resumed
		})
	}
	return p.Target.Put(ctx, name, data)
}

// fill writes n keys of about size bytes to a keyspace.
func fill(t *testing.T, ctx context.Context, n *node.Node, keyspace string, keys, size int) {
	t.Helper()
	val := strings.Repeat("x", size)
	for i := range keys {
		if _, _, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{fmt.Appendf(nil, "k%05d", i), []byte(val)}}); err != nil {
			t.Fatalf("fill %s: %v", keyspace, err)
		}
	}
}

// TestBackupWithARegionKilled: a region's node is killed in the middle
// of a backup. A sync keyspace's backup completes from the replicas in
// the other regions, verifies and restores; an active keyspace's backup,
// whose groups in that region have no other replica, fails cleanly,
// naming them, and records nothing; so does an incremental backup of it
// taken with the region down (it fails sealing the cut). Either way no
// corrupt backup is ever recorded as good.
func TestBackupWithARegionKilled(t *testing.T) {
	c := backupCluster(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 2})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	asia := c.InRegion("ap-southeast")[0]
	fill(t, ctx, east, "s", 200, 100)
	fill(t, ctx, east, "a", 50, 10)
	target := "file://" + t.TempDir()

	for _, ks := range []string{"s", "a"} {
		if ks == "a" {
			c.Restart(asia)
			if err := c.Node(asia).WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
		}
		pt := pausingTarget{once: &sync.Once{}, paused: make(chan struct{}), resumed: make(chan struct{})}
		restore := node.SetBackupTargetWrapper(func(tg backup.Target) backup.Target { w := pt; w.Target = tg; return w })
		done := make(chan error, 1)
		var m *backup.Manifest
		go func() {
			var err error
			m, err = east.CreateBackup(ctx, node.BackupRequest{Target: target, Keyspaces: []string{ks}, Full: true}, nil)
			done <- err
		}()
		<-pt.paused
		close(pt.resumed)
		c.Kill(asia)
		err := <-done
		restore()
		store, serr := backup.OpenStore(target, backup.Options{})
		if serr != nil {
			t.Fatal(serr)
		}
		ms, _, lerr := store.Manifests(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		rep, verr := backup.Verify(ctx, store)
		if verr != nil || !rep.OK() {
			t.Fatalf("%s: after the backup (err %v), verify: %v %+v", ks, err, verr, rep.Problems)
		}
		switch {
		case ks == "s" && err != nil:
			t.Fatalf("the sync keyspace's backup failed with a region down: %v", err)
		case ks == "s":
			if len(ms) != 1 || ms[0].ID != m.ID {
				t.Fatalf("manifests %d after the sync backup", len(ms))
			}
			st, err := east.Restore(ctx, node.RestoreRequest{From: target, Keyspace: "s", As: "s2"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				if v, ok, _, err := east.Get(ctx, "s2", fmt.Appendf(nil, "k%05d", i), node.Strong); err != nil || !ok || len(v) != 100 {
					t.Fatalf("k%05d restored as %d bytes %v %v", i, len(v), ok, err)
				}
			}
			t.Logf("sync keyspace backed up with ap-southeast killed half-way: %d bytes; restored %d keys", m.NewBytes, st.Keys)
		case err == nil:
			// The killed region's groups were written before the kill.
			if len(ms) != 2 {
				t.Fatalf("%d manifests after a successful backup", len(ms))
			}
			t.Logf("the active keyspace's backup completed before the kill reached it")
		default:
			if len(ms) != 1 {
				t.Fatalf("a failed backup recorded a manifest (%d manifests)", len(ms))
			}
			if !strings.Contains(err.Error(), "ap-southeast") {
				t.Fatalf("the failure does not name the region: %v", err)
			}
			t.Logf("the active keyspace's backup failed cleanly: %v", err)
		}
	}

	// An incremental backup of the active keyspace with ap-southeast down:
	// its groups there keep their parent's bases, so the first step that
	// needs them is sealing the cut, which fails (after a request timeout,
	// not at the caller's deadline), naming the region, and records
	// nothing.
	c.Restart(asia)
	if err := c.Node(asia).WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	parent, err := east.CreateBackup(ctx, node.BackupRequest{Target: target, Keyspaces: []string{"a"}, Full: true}, nil)
	if err != nil {
		t.Fatalf("the active keyspace's backup with every region up: %v", err)
	}
	c.Kill(asia)
	store, err := backup.OpenStore(target, backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := store.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = east.CreateBackup(ctx, node.BackupRequest{Target: target, Keyspaces: []string{"a"}}, nil)
	switch {
	case err == nil:
		t.Fatal("an incremental backup of the active keyspace succeeded with ap-southeast down")
	case ctx.Err() != nil:
		t.Fatalf("the incremental backup ran until the caller's deadline: %v", err)
	case !strings.Contains(err.Error(), "ap-southeast"):
		t.Fatalf("the failure does not name the region: %v", err)
	}
	after, _, lerr := store.Manifests(ctx)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(after) != len(before) {
		t.Fatalf("a failed incremental backup recorded a manifest (%d, then %d)", len(before), len(after))
	}
	if rep, verr := backup.Verify(ctx, store); verr != nil || !rep.OK() {
		t.Fatalf("verify after the failed incremental backup: %v %+v", verr, rep.Problems)
	}
	t.Logf("incremental backup on %s with ap-southeast down failed cleanly: %v", parent.ID, err)
}

// TestRestoreInterruptedThenResumedOrCancelled: a restore stopped half-way
// leaves nothing visible under its name; resumed, it finishes with every
// key; another, cancelled, leaves nothing at all.
func TestRestoreInterruptedThenResumedOrCancelled(t *testing.T) {
	c := backupCluster(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := c.Running()[0]
	const keys = 600
	fill(t, ctx, n, "s", keys, 2000) // about 1.2 MB: several chunks per shard
	target := "file://" + t.TempDir()
	if _, err := n.CreateBackup(ctx, node.BackupRequest{Target: target, Full: true}, nil); err != nil {
		t.Fatal(err)
	}
	interrupt := func(as string) string {
		t.Helper()
		// The first chunk applied, the restore waits until interrupted.
		reached := make(chan struct{})
		var once sync.Once
		undo := node.SetAfterRestoreChunk(func(ctx context.Context, id string, seq uint64) {
			once.Do(func() {
				close(reached)
				<-ctx.Done()
			})
		})
		defer undo()
		st, err := n.StartRestore(node.RestoreRequest{From: target, Keyspace: "s", As: as})
		if err != nil {
			t.Fatal(err)
		}
		<-reached
		if _, err := n.StartRestore(node.RestoreRequest{Resume: st.ID, From: target}); err == nil {
			t.Fatal("a restore was resumed while it runs")
		}
		if _, err := n.Restore(ctx, node.RestoreRequest{Resume: "no-such-restore", From: target}); err == nil {
			t.Fatal("resuming an unknown restore succeeded")
		}
		// Interrupt it as a node stop would: its context ends.
		stopRestore(t, n, st.ID)
		undo()
		if _, _, _, err := n.Get(ctx, as, []byte("k00000"), node.Strong); err == nil {
			t.Fatalf("%s is visible after an interrupted restore", as)
		}
		return st.ID
	}
	id := interrupt("s2")
	st, err := n.Restore(ctx, node.RestoreRequest{Resume: id, From: target})
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if v, ok, _, err := n.Get(ctx, "s2", fmt.Appendf(nil, "k%05d", i), node.Strong); err != nil || !ok || len(v) != 2000 {
			t.Fatalf("after the resumed restore, k%05d: %d bytes %v %v", i, len(v), ok, err)
		}
	}
	t.Logf("resumed restore %s: %d chunks proposed (again from the first), %d keys", id, st.Chunks, st.Keys)

	id = interrupt("s3")
	hidden := ""
	for name, ks := range n.Metadata().Keyspaces {
		if ks.Restore != nil && ks.Restore.ID == id {
			hidden = name
		}
	}
	if hidden == "" {
		t.Fatal("no hidden keyspace for the interrupted restore")
	}
	if err := n.CancelRestore(ctx, id); err != nil {
		t.Fatal(err)
	}
	st2 := n.Metadata()
	if st2.Keyspaces[hidden] != nil || st2.Keyspaces["s3"] != nil {
		t.Fatal("a cancelled restore left a keyspace")
	}
	retired := 0
	for _, g := range st2.Retired {
		for _, sh := range c.Running()[0].Metadata().Keyspaces["s2"].Shards {
			if g == sh.Group {
				t.Fatalf("the finished restore's group %d was retired", g)
			}
		}
		retired++
	}
	if retired < 2 {
		t.Fatalf("the cancelled restore's groups were not retired: %v", st2.Retired)
	}
}

// stopRestore ends a running restore's job without cancelling the
// restore (as a node stopping would): its hidden keyspace stays.
func stopRestore(t *testing.T, n *node.Node, id string) {
	t.Helper()
	node.InterruptRestore(n, id)
	p, err := n.RestoreProgress(id)
	if err != nil || !p.Done {
		t.Fatalf("restore %s not stopped: %+v %v", id, p, err)
	}
}

// TestBackupRestoreListsAndSortedSets: lists and sorted sets keep their
// items in the element span beside their heads; a full backup, more
// pushes, and an incremental backup of a sync and an async keyspace,
// restored under new names, give back every collection as it was at the
// incremental backup, in every region (the async keyspace's replicas by
// stream); a list made after the restore gets an id of its own and leaves
// the restored ones alone; verify by restore compares the elements too.
func TestBackupRestoreListsAndSortedSets(t *testing.T) {
	c := backupCluster(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "r", Shards: 2})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "qa", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	east := c.Node(c.InRegion("us-east")[0])
	target := "file://" + t.TempDir()
	lists := []string{"l0", "l1", "l2", "l3"}
	push := func(from, to int) {
		for _, ks := range []string{"r", "qa"} {
			for _, l := range lists {
				for i := from; i < to; i++ {
					redisWrite(ctx, t, east, ks, "RPUSH", l, fmt.Sprintf("%s-%d", l, i))
					redisWrite(ctx, t, east, ks, "ZADD", "z"+l, strconv.Itoa(i), fmt.Sprintf("m%d", i))
				}
			}
		}
	}
	push(0, 20)
	if _, err := east.CreateBackup(ctx, node.BackupRequest{Target: target, Full: true}, nil); err != nil {
		t.Fatal(err)
	}
	push(20, 30)
	incr, err := east.CreateBackup(ctx, node.BackupRequest{Target: target}, nil)
	if err != nil || incr.Kind != "incremental" {
		t.Fatalf("incremental backup: %+v %v", incr, err)
	}
	// What the collections were at the incremental backup.
	want := map[string]string{}
	for _, ks := range []string{"r", "qa"} {
		for _, l := range lists {
			want[ks+"/"+l] = redisRead(ctx, t, east, ks, node.Strong, "LRANGE", l, "0", "-1")
			want[ks+"/z"+l] = redisRead(ctx, t, east, ks, node.Strong, "ZRANGE", "z"+l, "0", "-1")
		}
	}
	push(30, 35) // after the backup: not in the restore
	for _, ks := range []string{"r", "qa"} {
		if _, err := east.Restore(ctx, node.RestoreRequest{From: target, Keyspace: ks, As: ks + "2"}); err != nil {
			t.Fatalf("restore %s: %v", ks, err)
		}
	}
	for _, ks := range []string{"r", "qa"} {
		for _, m := range c.Running() {
			level := node.Strong
			if ks == "qa" {
				level = node.Eventual // every region's own replica, filled by the stream
			}
			for _, l := range lists {
				for _, key := range []string{l, "z" + l} {
					cmd := "LRANGE"
					if key[0] == 'z' {
						cmd = "ZRANGE"
					}
					var got string
					if err := c.WaitFor(ctx, func() bool {
						got = redisRead(ctx, t, m, ks+"2", level, cmd, key, "0", "-1")
						return got == want[ks+"/"+key]
					}); err != nil {
						t.Fatalf("%s in %s2 at %s: %s, want %s", key, ks, m.Region(), got, want[ks+"/"+key])
					}
				}
			}
		}
	}
	// New collections in the restored keyspace get ids of their own.
	for _, l := range lists {
		redisWrite(ctx, t, east, "r2", "RPUSH", "new-"+l, "x")
		if got := redisRead(ctx, t, east, "r2", node.Strong, "LRANGE", l, "0", "-1"); got != want["r/"+l] {
			t.Fatalf("%s in r2 after a new list: %s, want %s", l, got, want["r/"+l])
		}
	}
	checks, err := node.VerifyByRestore(ctx, target, backup.Options{}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, chk := range checks {
		if len(chk.Mismatches) > 0 || chk.Err != "" {
			t.Fatalf("verify by restore of %s: %+v", chk.Keyspace, chk)
		}
	}
	t.Logf("lists and sorted sets of a sync and an async keyspace restored in every region; verify by restore: %d keyspaces identical", len(checks))
}

// retryUnavailable runs read again while it fails because its group has
// no leader for the moment (a restored keyspace's groups are new, and a
// loaded machine can make them hold an election): a read is idempotent.
// Any other error, or ctx's end, is returned.
func retryUnavailable(ctx context.Context, read func() error) error {
	for {
		err := read()
		if err == nil || !(errors.Is(err, raftgroup.ErrNoLeader) || errors.Is(err, raftgroup.ErrTimeout)) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mgetStrong reads keys at strong, 200 to a multi-key read, each read
// retried while a group has no leader (retryUnavailable); it returns the
// keys found and their values.
func mgetStrong(t *testing.T, ctx context.Context, n *node.Node, keyspace string, keys []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(keys); i += 200 {
		batch := make([][]byte, 0, 200)
		for _, k := range keys[i:min(i+200, len(keys))] {
			batch = append(batch, []byte(k))
		}
		var recs []kv.Record
		var found []bool
		if err := retryUnavailable(ctx, func() (err error) {
			recs, found, _, err = n.MGet(ctx, keyspace, batch, node.Strong)
			return err
		}); err != nil {
			t.Fatalf("read %d keys of %s: %v", len(batch), keyspace, err)
		}
		for j, rec := range recs {
			if found[j] {
				out[string(batch[j])] = string(rec.Payload)
			}
		}
	}
	return out
}
