package kv

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/storage"
)

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Op: OpSet, Flags: FlagNX | FlagGet, Int: -42, Args: [][]byte{[]byte("k"), {}, []byte("value")}}
	got, err := DecodeCommand(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != c.Op || got.Flags != c.Flags || got.Int != c.Int || len(got.Args) != 3 ||
		!bytes.Equal(got.Args[0], c.Args[0]) || len(got.Args[1]) != 0 || !bytes.Equal(got.Args[2], c.Args[2]) {
		t.Fatalf("round trip: %+v, want %+v", got, c)
	}
	for _, bad := range [][]byte{nil, {1}, {9, 1, 0, 0, 0}, {1, 1, 0, 0, 5}, append(c.Encode(), 0)} {
		if _, err := DecodeCommand(bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("DecodeCommand(%v) = %v, want ErrBadCommand", bad, err)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(Command{Op: OpSet, Args: [][]byte{[]byte("k"), []byte("v")}}.Encode())
	f.Add(Command{Op: OpDelete, Args: [][]byte{[]byte("a"), []byte("b")}}.Encode())
	f.Add([]byte{1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// What decodes must survive a round trip unchanged.
		c2, err := DecodeCommand(c.Encode())
		if err != nil || c2.Op != c.Op || c2.Flags != c.Flags || c2.Int != c.Int || len(c2.Args) != len(c.Args) {
			t.Fatalf("round trip of a decoded command: %+v -> %+v, %v", c, c2, err)
		}
		for i := range c.Args {
			if !bytes.Equal(c.Args[i], c2.Args[i]) {
				t.Fatalf("argument %d differs after a round trip", i)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(Record{Type: TypeString, ExpireAtMS: 5, Payload: []byte("x")}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err == nil && !bytes.Equal(r.Encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestApplySetDelete(t *testing.T) {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sm := &StateMachine{Group: 3}
	apply := func(c Command) Result {
		b := db.NewBatch()
		r := sm.Apply(b, 1, c.Encode()).(Result)
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := []byte("k")
	if r := apply(Command{Op: OpSet, Flags: FlagXX, Args: [][]byte{k, []byte("a")}}); r.N != 0 {
		t.Fatalf("XX on a missing key wrote: %+v", r)
	}
	if r := apply(Command{Op: OpSet, Args: [][]byte{k, []byte("a")}}); r.N != 1 || r.Err != nil {
		t.Fatalf("set: %+v", r)
	}
	if r := apply(Command{Op: OpSet, Flags: FlagNX | FlagGet, Args: [][]byte{k, []byte("b")}}); r.N != 0 || string(r.Value) != "a" {
		t.Fatalf("NX GET on an existing key: %+v", r)
	}
	if r := apply(Command{Op: OpSet, Int: 1000, Args: [][]byte{k, []byte("c")}}); r.N != 1 {
		t.Fatalf("set with expiry: %+v", r)
	}
	if rec, ok, _ := Get(db, 3, k, 999); !ok || string(rec.Payload) != "c" {
		t.Fatalf("live read: %+v %v", rec, ok)
	}
	if _, ok, _ := Get(db, 3, k, 1000); ok {
		t.Fatal("expired record still visible")
	}
	if r := apply(Command{Op: OpDelete, Args: [][]byte{k, []byte("missing")}}); r.N != 1 {
		t.Fatalf("delete counted %d, want 1", r.N)
	}
	if r := apply(Command{Op: 77}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("unknown op: %+v", r)
	}
}
