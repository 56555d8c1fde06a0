package metadata

import (
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/storage"
)

// TestRestoreKeyspaceLifecycle: a keyspace being restored is hidden from
// Keyspace; finishing gives it its name in one command (replacing the
// keyspace of that name only if the restore was told to, its groups
// retired); cancelling drops it and retires its groups.
func TestRestoreKeyspaceLifecycle(t *testing.T) {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	index := uint64(0)
	apply := func(c Command) error {
		t.Helper()
		index++
		b := db.NewBatch()
		v, err := s.Apply(b, index, c.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		if err := s.Applied(index, false); err != nil {
			t.Fatal(err)
		}
		return v.(ApplyResult).Err
	}
	if err := apply(Command{Op: "add_node", Node: &NodeInfo{ID: 1, Region: "r"}}); err != nil {
		t.Fatal(err)
	}
	ks := func(name string, restore *RestoreInfo) *Keyspace {
		return &Keyspace{KeyspaceSpec: KeyspaceSpec{Name: name, Strategy: Sync}, Shards: []Shard{{Replicas: []uint64{1}}}, Restore: restore}
	}
	if err := apply(Command{Op: "create_keyspace", Keyspace: ks("orders", nil)}); err != nil {
		t.Fatal(err)
	}
	old := s.State().Keyspaces["orders"].Shards[0].Group
	r1 := &RestoreInfo{ID: "r1", Target: "orders"}
	if err := apply(Command{Op: "create_keyspace", Keyspace: ks("orders.restore-r1", r1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Keyspace("orders.restore-r1"); !errors.Is(err, ErrUnknownKeyspace) || !errors.Is(err, ErrRestoring) {
		t.Fatalf("a keyspace being restored is visible: %v", err)
	}
	if s.State().Restoring("r1") == nil {
		t.Fatal("the restore is not found by its id")
	}
	// Without Replace, an existing keyspace stays.
	if err := apply(Command{Op: "finish_restore", Finish: &FinishRestore{Name: "orders.restore-r1", ID: "r1"}}); !errors.Is(err, ErrKeyspaceExists) {
		t.Fatalf("finish over an existing keyspace: %v", err)
	}
	if err := apply(Command{Op: "finish_restore", Finish: &FinishRestore{Name: "orders.restore-r1", ID: "other"}}); !errors.Is(err, ErrRestoring) {
		t.Fatalf("finish of another restore's keyspace: %v", err)
	}
	if err := apply(Command{Op: "cancel_restore", Cancel: &CancelRestore{Name: "orders.restore-r1", ID: "r1"}}); err != nil {
		t.Fatal(err)
	}
	st := s.State()
	if st.Keyspaces["orders.restore-r1"] != nil || st.Keyspaces["orders"] == nil {
		t.Fatalf("after cancel: %v", st.Keyspaces)
	}
	cancelled := uint64(0)
	for _, g := range st.Retired {
		if g != old {
			cancelled = g
		}
	}
	if cancelled == 0 {
		t.Fatalf("the cancelled restore's group was not retired: %v", st.Retired)
	}
	// With Replace, the restored keyspace takes the name; the old one's
	// groups are retired.
	r2 := &RestoreInfo{ID: "r2", Target: "orders", Replace: true}
	if err := apply(Command{Op: "create_keyspace", Keyspace: ks("orders.restore-r2", r2)}); err != nil {
		t.Fatal(err)
	}
	restored := s.State().Keyspaces["orders.restore-r2"].Shards[0].Group
	if err := apply(Command{Op: "finish_restore", Finish: &FinishRestore{Name: "orders.restore-r2", ID: "r2"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Keyspace("orders")
	if err != nil || got.Shards[0].Group != restored || got.Restore != nil || got.Name != "orders" {
		t.Fatalf("orders after the restore: %+v %v", got, err)
	}
	if st := s.State(); !slices.Contains(st.Retired, old) || st.Keyspaces["orders.restore-r2"] != nil {
		t.Fatalf("the replaced keyspace's group %d is not retired (%v), or the hidden name remains", old, st.Retired)
	}
	// The backup schedule: set, then removed.
	if err := apply(Command{Op: "backup_schedule", Schedule: &BackupSchedule{Target: "file:///b", Archive: true, Keyspaces: []string{"orders"}}}); err != nil {
		t.Fatal(err)
	}
	if b := s.State().Backup; b == nil || !b.Covers("orders") || b.Covers("other") {
		t.Fatalf("schedule %+v", b)
	}
	if err := apply(Command{Op: "backup_schedule", Schedule: &BackupSchedule{Target: "x", RetainCount: -1}}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("negative retention: %v", err)
	}
	if err := apply(Command{Op: "backup_schedule", Schedule: &BackupSchedule{}}); err != nil || s.State().Backup != nil {
		t.Fatalf("schedule removal: %v %+v", err, s.State().Backup)
	}
}
