package kv

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/stream"
)

// TestApplyStorageReadFaultIsFatal: a storage read that fails inside Apply
// (Pebble's error-injecting filesystem failing reads of table files) is
// returned as Apply's error, never as the command's result; the command
// applies normally once storage reads again.
func TestApplyStorageReadFaultIsFatal(t *testing.T) {
	faults := &errorfs.Toggle{Injector: errorfs.ErrInjected.If(errorfs.And(errorfs.Reads, errorfs.PathMatch("/d/*.sst")))}
	db, err := storage.Open("/d", storage.Options{FS: errorfs.Wrap(vfs.NewMem(), faults)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	h := &harness{t: t, db: db, sm: &StateMachine{Group: 3}}
	h.apply(Command{Op: OpSet, Args: args("str", "1")})
	h.apply(Command{Op: OpSAdd, Args: args("set", "a")})
	// The records go to table files, where the injected faults reach them.
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	cmds := []Command{
		{Op: OpSet, Flags: FlagGet, Args: args("str", "2")}, // a plain SET need not read (knownFacts)
		{Op: OpIncrBy, Int: 1, Args: args("str")},
		{Op: OpSAdd, Args: args("set", "b")},
		{Op: OpDelete, Args: args("str", "set")},
	}
	faults.On()
	for _, c := range cmds {
		err := h.applyFatal(c.Encode())
		// Pebble reports the injected error by its text only.
		if !errors.Is(err, storage.ErrIO) || !strings.Contains(err.Error(), errorfs.ErrInjected.Error()) || !IsFatal(err) {
			t.Fatalf("%s under a read fault: %v, want a fatal storage.ErrIO wrapping the injected error", c.Op, err)
		}
	}
	faults.Off()
	if r := h.apply(cmds[1]); r.Err != nil || r.N != 2 {
		t.Fatalf("incr once storage reads again: %+v (the faulty attempts must have changed nothing)", r)
	}
}

// TestApplyFatalOrCommandError sorts failures: those every replica meets
// identically are results, those of this replica (stored state that does
// not decode, a command from a newer binary) are fatal, also inside a
// stream batch, where a command's own error is otherwise skipped.
func TestApplyFatalOrCommandError(t *testing.T) {
	h := newHarness(t)
	h.sm.Cluster = "c"
	// Command errors: the result, nothing fatal.
	h.apply(Command{Op: OpSet, Args: args("str", "x")})
	if r := h.apply(Command{Op: OpIncrBy, Int: 1, Args: args("str")}); !errors.Is(r.Err, ErrNotInteger) {
		t.Fatalf("incr of a non-integer: %+v", r)
	}
	if r := h.apply(Command{Op: OpSAdd, Args: args("str", "m")}); !errors.Is(r.Err, ErrWrongType) {
		t.Fatalf("sadd on a string: %+v", r)
	}
	for _, bad := range [][]byte{{}, {0, 1}, {commandVersion, byte(OpSet), 0x80}} {
		b := h.db.NewBatch()
		v, err := h.sm.Apply(b, 1, bad)
		b.Close()
		if err != nil || !errors.Is(v.(Result).Err, ErrBadCommand) {
			t.Fatalf("malformed command %v: %v, %v; want the command error ErrBadCommand", bad, v, err)
		}
	}

	// A version this binary does not know.
	newer := Command{Op: OpSet, Args: args("k", "v")}.Encode()
	newer[0] = commandVersion + 1
	if err := h.applyFatal(newer); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("newer version: %v", err)
	}

	// A stored record that does not decode.
	b := h.db.NewBatch()
	b.SetData(h.sm.Group, []byte("broken"), []byte{byte(TypeString)})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if err := h.applyFatal(Command{Op: OpSet, Flags: FlagGet, Args: args("broken", "v")}.Encode()); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("write over an undecodable record: %v", err)
	}

	// The same inside a stream batch: the batch fails and Apply is fatal,
	// the stream's cursor does not move.
	h.mustRole(Role{Epoch: 1}, 0, 0, 0)
	w := Command{Op: OpSet, Epoch: 1, NowMS: 1, Args: args("broken", "v")}.Encode()
	batch := stream.Batch{Stream: 9, Epoch: 1, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: w}}}
	if err := h.applyFatal(batchCmd(t, batch).Encode()); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("stream batch writing over an undecodable record: %v", err)
	}
	if c, _, err := h.db.Cursor(h.sm.Group, 9); err != nil || c.Index != 0 {
		t.Fatalf("cursor after the failed batch: %+v %v", c, err)
	}
	// A command error inside a stream batch is skipped: it failed at the
	// source too.
	wrong := Command{Op: OpSAdd, Epoch: 1, NowMS: 1, Args: args("str", "m")}.Encode()
	batch = stream.Batch{Stream: 9, Epoch: 1, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: wrong}}}
	if r := h.apply(batchCmd(t, batch)); r.Err != nil || r.N != 1 {
		t.Fatalf("stream batch with a command error: %+v", r)
	}
	// An op this binary does not know inside a stream batch is fatal.
	unknown := Command{Op: 99, Epoch: 1, NowMS: 1, Args: args("k")}.Encode()
	batch = stream.Batch{Stream: 9, Epoch: 1, Cluster: "c", Prev: 1, Changes: []stream.Change{{Index: 2, Data: unknown}}}
	if err := h.applyFatal(batchCmd(t, batch).Encode()); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("stream batch with an unknown op: %v", err)
	}
	// A plain SET replaces the undecodable record without reading it (the
	// group holds no list or sorted set whose elements it would drop):
	// every replica ends with the same record.
	h.mustRole(Role{Epoch: 2, Primary: true}, 0, 0, 0)
	if r := h.apply(Command{Op: OpSet, Epoch: 2, NowMS: 1, Args: args("broken", "v")}); r.Err != nil {
		t.Fatalf("plain SET over an undecodable record: %+v", r)
	}
	if rec, ok := h.get("broken", 1); !ok || string(rec.Payload) != "v" {
		t.Fatalf("after a plain SET: %+v %v", rec, ok)
	}
}
