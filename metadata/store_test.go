package metadata

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/storage"
)

// TestStoreApplyErrors: a command the proposer got wrong is a result,
// the same on every replica; an op this binary does not know and a state
// that cannot be read back are errors, which stop the node.
func TestStoreApplyErrors(t *testing.T) {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(index uint64, cmd []byte) (ApplyResult, error) {
		t.Helper()
		b := db.NewBatch()
		v, err := s.Apply(b, index, cmd)
		if err != nil {
			b.Close()
			return ApplyResult{}, err
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		if err := s.Applied(index, false); err != nil {
			t.Fatal(err)
		}
		return v.(ApplyResult), nil
	}
	if res, err := apply(1, Command{Op: "add_node", Node: &NodeInfo{ID: 1, Region: "r"}}.Encode()); err != nil || res.Err != nil {
		t.Fatalf("add_node: %+v %v", res, err)
	}
	for _, cmd := range [][]byte{[]byte("{"), Command{Op: "add_node"}.Encode(), Command{Op: "switch_primary"}.Encode()} {
		if res, err := apply(2, cmd); err != nil || !errors.Is(res.Err, ErrBadCommand) {
			t.Fatalf("malformed command %s: %+v, %v; want the command error ErrBadCommand", cmd, res, err)
		}
	}
	if _, err := apply(3, Command{Op: "rename_cluster"}.Encode()); !errors.Is(err, ErrUnsupported) || !errors.Is(err, ErrBadCommand) {
		t.Fatalf("unknown op: %v, want a fatal error wrapping ErrUnsupported", err)
	}
	if len(s.State().Nodes) != 1 {
		t.Fatalf("state changed: %+v", s.State().Nodes)
	}
	// A snapshot installed a state that does not decode: Applied says so
	// instead of panicking on the raft loop.
	b := db.NewBatch()
	b.SetData(SystemGroup, stateKey, []byte("{not json"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Applied(4, true); err == nil {
		t.Fatal("Applied after an undecodable snapshot succeeded")
	}
}
