package kv

import (
	"errors"
	"slices"
	"testing"

	"github.com/meridian-db/meridian/stream"
)

// TestAdmissionTable: data ops are every op but replication's and
// restores'; Admit and AdmitData build the tables the strategies use; nil
// admits everything.
func TestAdmissionTable(t *testing.T) {
	for _, op := range []Op{OpSet, OpDelete, OpGetDel, OpIncrBy, OpMSet, OpSAdd, OpSRem, OpHSet, OpHDel, OpExpire, OpPersist, OpRedis, OpTxn, 99} {
		if !op.Data() {
			t.Errorf("%s is not a data op", op)
		}
	}
	for _, op := range append(ActiveOps(), OpRole, OpStreamApply, OpStreamChunk, OpRestoreChunk) {
		if op.Data() {
			t.Errorf("%s is a data op", op)
		}
	}
	if !slices.Contains(ActiveOps(), OpActiveRedis) {
		t.Error("the command engine's active op is not among the active ops")
	}
	var all *Admission
	if !all.Admits(OpActiveSet) || !all.Admits(OpRole) || !all.Admits(OpSet) {
		t.Fatal("the nil admission refuses an op")
	}
	a := AdmitData("x", OpRole)
	if !a.Admits(OpSet) || !a.Admits(OpRole) || !a.Admits(200) || a.Admits(OpActiveSet) || a.Admits(OpStreamApply) {
		t.Fatal("AdmitData admits the wrong ops")
	}
	b := Admit("y", OpActiveSet, OpStreamApply)
	if b.Admits(OpSet) || !b.Admits(OpActiveSet) || !b.Admits(OpStreamApply) || b.Admits(OpActiveMerge) || b.Name() != "y" {
		t.Fatal("Admit admits the wrong ops")
	}
}

// TestAdmissionRefuses: an op the group's admission lacks is a command
// error (ErrRefused and ErrBadCommand, nothing applied), also inside a
// stream batch (refused whole, the cursor unmoved); an op this binary
// does not know stays fatal even where it is not admitted.
func TestAdmissionRefuses(t *testing.T) {
	h := newHarness(t)
	h.sm.Cluster = "c"
	h.sm.Admits = Admit("test", OpSet, OpRole, OpStreamApply)
	if r := h.apply(Command{Op: OpSet, NowMS: 1, Args: args("a", "1")}); r.Err != nil || r.N != 1 {
		t.Fatalf("admitted set: %+v", r)
	}
	r := h.apply(Command{Op: OpIncrBy, Int: 1, NowMS: 1, Args: args("a")})
	if !errors.Is(r.Err, ErrRefused) || !errors.Is(r.Err, ErrBadCommand) || IsFatal(r.Err) {
		t.Fatalf("refused incr: %+v", r)
	}
	if rec, ok := h.get("a", 1); !ok || string(rec.Payload) != "1" {
		t.Fatalf("a refused op changed the key: %+v %v", rec, ok)
	}
	// Inside a stream batch: the admitted change is not applied either.
	h.mustRole(Role{Epoch: 1}, 0, 0, 0)
	set := Command{Op: OpSet, Epoch: 1, NowMS: 1, Args: args("b", "2")}.Encode()
	incr := Command{Op: OpIncrBy, Epoch: 1, Int: 1, NowMS: 1, Args: args("a")}.Encode()
	batch := stream.Batch{Stream: 9, Epoch: 1, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: set}, {Index: 2, Data: incr}}}
	if r := h.apply(batchCmd(t, batch)); !errors.Is(r.Err, ErrRefused) {
		t.Fatalf("batch with a refused change: %+v", r)
	}
	if _, ok := h.get("b", 1); ok {
		t.Fatal("a batch refused whole applied part of itself")
	}
	if c, _, err := h.db.Cursor(h.sm.Group, 9); err != nil || c.Index != 0 {
		t.Fatalf("cursor after the refused batch: %+v %v", c, err)
	}
	// Changes about the source group alone are skipped, as everywhere.
	role := RoleCommand(Role{Epoch: 1, Primary: true}, 0, 0, 0).Encode()
	batch = stream.Batch{Stream: 9, Epoch: 1, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: set}, {Index: 2, Data: role}}}
	if r := h.apply(batchCmd(t, batch)); r.Err != nil || r.N != 2 {
		t.Fatalf("batch of admitted changes: %+v", r)
	}
	// Unknown ops are fatal, admitted or not.
	if err := h.applyFatal(Command{Op: 99, Args: args("k")}.Encode()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown op: %v", err)
	}
}
