package kv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/storage"
)

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Op: OpSet, Flags: FlagNX | FlagGet, Int: -42, NowMS: 1_700_000_000_123, Args: [][]byte{[]byte("k"), {}, []byte("value")}}
	got, err := DecodeCommand(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != c.Op || got.Flags != c.Flags || got.Int != c.Int || got.NowMS != c.NowMS || len(got.Args) != 3 ||
		!bytes.Equal(got.Args[0], c.Args[0]) || len(got.Args[1]) != 0 || !bytes.Equal(got.Args[2], c.Args[2]) {
		t.Fatalf("round trip: %+v, want %+v", got, c)
	}
	for _, bad := range [][]byte{nil, {1}, {9, 1, 0, 0, 0}, {1, 1, 0, 0, 5}, {2, 1, 0, 0}, {2, 1, 0, 0, 0, 3}, append(c.Encode(), 0)} {
		if _, err := DecodeCommand(bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("DecodeCommand(%v) = %v, want ErrBadCommand", bad, err)
		}
	}
}

// TestDecodeVersion1 decodes bytes written by the version-1 encoder (as
// found in existing raft logs): they still decode, with no clock.
func TestDecodeVersion1(t *testing.T) {
	// version 1, OpSet, flags NX|GET (9), int -42 (zigzag 83), 2 args "k", "vv"
	v1 := []byte{1, 1, 9, 83, 2, 1, 'k', 2, 'v', 'v'}
	c, err := DecodeCommand(v1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Op != OpSet || c.Flags != FlagNX|FlagGet || c.Int != -42 || c.NowMS != 0 || len(c.Args) != 2 ||
		string(c.Args[0]) != "k" || string(c.Args[1]) != "vv" {
		t.Fatalf("decoded %+v", c)
	}
	if enc := c.Encode(); enc[0] != 3 {
		t.Fatalf("Encode writes version %d, want 3", enc[0])
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add(Command{Op: OpSet, Args: [][]byte{[]byte("k"), []byte("v")}}.Encode())
	f.Add(Command{Op: OpDelete, NowMS: 5, Args: [][]byte{[]byte("a"), []byte("b")}}.Encode())
	f.Add([]byte{1, 1, 9, 83, 2, 1, 'k', 2, 'v', 'v'})
	f.Add(Command{Op: OpSet, NowMS: 9, Epoch: 3, Args: [][]byte{[]byte("k"), []byte("v")}}.Encode())
	f.Add([]byte{1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2, 4, 0, 2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 1, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// What decodes must survive a round trip unchanged.
		c2, err := DecodeCommand(c.Encode())
		if err != nil || c2.Op != c.Op || c2.Flags != c.Flags || c2.Int != c.Int || c2.NowMS != c.NowMS || c2.Epoch != c.Epoch || len(c2.Args) != len(c.Args) {
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

// FuzzDecodeSet: a payload either fails to decode or is the canonical
// encoding of what it decodes to (sorted, distinct members).
func FuzzDecodeSet(f *testing.F) {
	f.Add(EncodeSet(nil))
	f.Add(EncodeSet([][]byte{[]byte("a"), []byte("b"), []byte("zz")}))
	f.Add(EncodeSet([][]byte{{}, {0}, {0, 0}}))
	f.Add([]byte{1, 2, 1, 'b', 1, 'a'})               // out of order
	f.Add([]byte{1, 2, 1, 'a', 1, 'a'})               // duplicate
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})    // huge count
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}) // huge length
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeSet(p)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if !bytes.Equal(EncodeSet(m), p) {
			t.Fatalf("re-encoding of %q differs", m)
		}
		for i := 1; i < len(m); i++ {
			if bytes.Compare(m[i-1], m[i]) >= 0 {
				t.Fatalf("members not strictly increasing: %q", m)
			}
		}
		for _, x := range m {
			if !SetContains(m, x) {
				t.Fatalf("SetContains misses %q", x)
			}
		}
	})
}

// FuzzDecodeHash: as FuzzDecodeSet, for hashes.
func FuzzDecodeHash(f *testing.F) {
	f.Add(EncodeHash(nil))
	f.Add(EncodeHash([]Field{{[]byte("a"), []byte("1")}, {[]byte("b"), nil}}))
	f.Add([]byte{1, 1, 1, 'a'})               // value missing
	f.Add([]byte{1, 2, 1, 'b', 0, 1, 'a', 0}) // out of order
	f.Add([]byte{2, 0})                       // unknown format
	f.Add([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, p []byte) {
		fs, err := DecodeHash(p)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		if !bytes.Equal(EncodeHash(fs), p) {
			t.Fatalf("re-encoding differs")
		}
		for _, f := range fs {
			if v, ok := HashGet(fs, f.Name); !ok || !bytes.Equal(v, f.Value) {
				t.Fatalf("HashGet(%q) = %q, %v", f.Name, v, ok)
			}
		}
	})
}

func TestParseInt(t *testing.T) {
	good := map[string]int64{"0": 0, "7": 7, "-7": -7, "9223372036854775807": math.MaxInt64, "-9223372036854775808": math.MinInt64}
	for s, want := range good {
		if v, ok := ParseInt([]byte(s)); !ok || v != want {
			t.Errorf("ParseInt(%q) = %d, %v", s, v, ok)
		}
	}
	for _, s := range []string{"", "+1", "01", "-0", " 1", "1 ", "1.0", "0x10", "9223372036854775808", "-9223372036854775809", "abc", "-", "1e3"} {
		if v, ok := ParseInt([]byte(s)); ok {
			t.Errorf("ParseInt(%q) = %d, accepted", s, v)
		}
	}
}

// harness applies commands to one group of an in-memory database.
type harness struct {
	t  *testing.T
	db *storage.DB
	sm *StateMachine
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &harness{t: t, db: db, sm: &StateMachine{Group: 3}}
}

func (h *harness) apply(c Command) Result {
	h.t.Helper()
	b := h.db.NewBatch()
	v, err := h.sm.Apply(b, 1, c.Encode())
	if err != nil {
		b.Close()
		h.t.Fatalf("fatal apply error: %v", err)
	}
	if err := b.Commit(false); err != nil {
		h.t.Fatal(err)
	}
	return v.(Result)
}

// applyFatal applies a command that must fail fatally (the batch is then
// discarded, as the host does) and returns the error.
func (h *harness) applyFatal(cmd []byte) error {
	h.t.Helper()
	b := h.db.NewBatch()
	defer b.Close()
	v, err := h.sm.Apply(b, 1, cmd)
	if err == nil {
		h.t.Fatalf("apply succeeded with %+v, want a fatal error", v)
	}
	if v != nil {
		h.t.Fatalf("a fatal error came with a result: %+v", v)
	}
	return err
}

func (h *harness) get(key string, nowMS int64) (Record, bool) {
	h.t.Helper()
	rec, ok, err := Get(h.db, h.sm.Group, []byte(key), nowMS)
	if err != nil {
		h.t.Fatal(err)
	}
	return rec, ok
}

func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

func TestApplySetDelete(t *testing.T) {
	h := newHarness(t)
	k := []byte("k")
	if r := h.apply(Command{Op: OpSet, Flags: FlagXX, Args: [][]byte{k, []byte("a")}}); r.N != 0 {
		t.Fatalf("XX on a missing key wrote: %+v", r)
	}
	if r := h.apply(Command{Op: OpSet, Args: [][]byte{k, []byte("a")}}); r.N != 1 || r.Err != nil {
		t.Fatalf("set: %+v", r)
	}
	if r := h.apply(Command{Op: OpSet, Flags: FlagNX | FlagGet, Args: [][]byte{k, []byte("b")}}); r.N != 0 || string(r.Value) != "a" {
		t.Fatalf("NX GET on an existing key: %+v", r)
	}
	if r := h.apply(Command{Op: OpSet, Int: 1000, Args: [][]byte{k, []byte("c")}}); r.N != 1 {
		t.Fatalf("set with expiry: %+v", r)
	}
	if rec, ok := h.get("k", 999); !ok || string(rec.Payload) != "c" {
		t.Fatalf("live read: %+v %v", rec, ok)
	}
	if _, ok := h.get("k", 1000); ok {
		t.Fatal("expired record still visible")
	}
	if r := h.apply(Command{Op: OpDelete, Args: [][]byte{k, []byte("missing")}}); r.N != 1 {
		t.Fatalf("delete counted %d, want 1", r.N)
	}
	// An op this binary does not know comes from a newer one: fatal, not
	// a command error (replicas running the newer binary apply it).
	if err := h.applyFatal(Command{Op: 77, Args: args("k")}.Encode()); !errors.Is(err, ErrBadCommand) || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown op: %v", err)
	}
	for _, c := range []Command{{Op: OpSet, Args: args("k")}, {Op: OpMSet, Args: args("a", "1", "b")}, {Op: OpHSet, Args: args("h", "f")}, {Op: OpSAdd, Args: args("s")}, {Op: OpIncrBy}} {
		if r := h.apply(c); !errors.Is(r.Err, ErrBadCommand) {
			t.Errorf("%s with %d arguments: %+v, want ErrBadCommand", c.Op, len(c.Args), r)
		}
	}
}

// TestExpiryJudgedByCommandClock: writes see a record as absent once the
// command's own time reaches its expiry, whatever the time is now.
func TestExpiryJudgedByCommandClock(t *testing.T) {
	h := newHarness(t)
	h.apply(Command{Op: OpSet, Int: 2000, NowMS: 1000, Args: args("k", "old")})
	if r := h.apply(Command{Op: OpSet, Flags: FlagNX, NowMS: 1999, Args: args("k", "new")}); r.N != 0 {
		t.Fatalf("NX before the expiry wrote: %+v", r)
	}
	if r := h.apply(Command{Op: OpSet, Flags: FlagXX | FlagGet, NowMS: 2000, Args: args("k", "new")}); r.N != 0 || r.Found {
		t.Fatalf("XX at the expiry: %+v (the record is gone at its expiry)", r)
	}
	if r := h.apply(Command{Op: OpSet, Flags: FlagNX | FlagKeepTTL, NowMS: 2000, Args: args("k", "new")}); r.N != 1 {
		t.Fatalf("NX at the expiry: %+v", r)
	}
	if rec, ok := h.get("k", 1<<40); !ok || string(rec.Payload) != "new" || rec.ExpireAtMS != 0 {
		t.Fatalf("after NX KEEPTTL on an expired key: %+v %v (no expiry to keep)", rec, ok)
	}
	// DEL does not count an expired key, but removes it.
	h.apply(Command{Op: OpSet, Int: 3000, NowMS: 2000, Args: args("e", "v")})
	if r := h.apply(Command{Op: OpDelete, NowMS: 3000, Args: args("e", "k")}); r.N != 1 {
		t.Fatalf("DEL counted %d, want 1 (e had expired)", r.N)
	}
	if v, ok, _ := h.db.Get(3, []byte("e")); ok {
		t.Fatalf("expired key still stored: %q", v)
	}
	// An expiry in the command's past removes the key at once.
	h.apply(Command{Op: OpSet, NowMS: 5000, Args: args("p", "v")})
	if r := h.apply(Command{Op: OpSet, Int: 4000, NowMS: 5000, Args: args("p", "w")}); r.N != 1 {
		t.Fatalf("SET with a past expiry: %+v", r)
	}
	if _, ok, _ := h.db.Get(3, []byte("p")); ok {
		t.Fatal("SET with a past expiry left the key stored")
	}
	// Version-1 commands carry no clock: records stay live for them.
	h.apply(Command{Op: OpSet, Int: 10, NowMS: 5, Args: args("v1", "x")})
	if r := h.apply(Command{Op: OpSet, Flags: FlagNX, Args: args("v1", "y")}); r.N != 0 {
		t.Fatalf("a clockless NX treated a stored record as absent: %+v", r)
	}
}

func TestIncrBy(t *testing.T) {
	h := newHarness(t)
	incr := func(key string, d, now int64) Result {
		return h.apply(Command{Op: OpIncrBy, Int: d, NowMS: now, Args: args(key)})
	}
	if r := incr("c", 1, 1); r.Err != nil || r.N != 1 {
		t.Fatalf("INCR of a missing key: %+v", r)
	}
	if r := incr("c", -11, 1); r.Err != nil || r.N != -10 {
		t.Fatalf("DECRBY 11: %+v", r)
	}
	if rec, _ := h.get("c", 1); string(rec.Payload) != "-10" || rec.Type != TypeString {
		t.Fatalf("stored %+v", rec)
	}
	h.apply(Command{Op: OpSet, Args: args("big", strconv.FormatInt(math.MaxInt64, 10))})
	if r := incr("big", 1, 1); !errors.Is(r.Err, ErrOverflow) {
		t.Fatalf("overflow: %+v", r)
	}
	h.apply(Command{Op: OpSet, Args: args("small", strconv.FormatInt(math.MinInt64+1, 10))})
	if r := incr("small", -2, 1); !errors.Is(r.Err, ErrOverflow) {
		t.Fatalf("underflow: %+v", r)
	}
	if r := incr("small", -1, 1); r.Err != nil || r.N != math.MinInt64 {
		t.Fatalf("to MinInt64: %+v", r)
	}
	for _, v := range []string{"abc", "1.5", " 1", "01", ""} {
		h.apply(Command{Op: OpSet, Args: args("s", v)})
		if r := incr("s", 1, 1); !errors.Is(r.Err, ErrNotInteger) {
			t.Errorf("INCR of %q: %+v", v, r)
		}
	}
	h.apply(Command{Op: OpSAdd, Args: args("set", "m")})
	if r := incr("set", 1, 1); !errors.Is(r.Err, ErrWrongType) {
		t.Fatalf("INCR of a set: %+v", r)
	}
	// INCR keeps the expiry; on an expired key it starts again from 0.
	h.apply(Command{Op: OpSet, Int: 100, NowMS: 1, Args: args("t", "5")})
	if r := incr("t", 1, 50); r.N != 6 {
		t.Fatalf("INCR of a live counter: %+v", r)
	}
	if rec, _ := h.get("t", 50); rec.ExpireAtMS != 100 {
		t.Fatalf("INCR dropped the expiry: %+v", rec)
	}
	if r := incr("t", 1, 100); r.N != 1 {
		t.Fatalf("INCR of an expired counter: %+v", r)
	}
	if rec, _ := h.get("t", 1<<40); rec.ExpireAtMS != 0 {
		t.Fatalf("a counter recreated after expiry kept the old expiry: %+v", rec)
	}
}

func TestGetDelAndMSet(t *testing.T) {
	h := newHarness(t)
	if r := h.apply(Command{Op: OpMSet, NowMS: 1, Args: args("a", "1", "b", "2", "a", "3")}); r.Err != nil || r.N != 3 {
		t.Fatalf("MSET: %+v", r)
	}
	if rec, _ := h.get("a", 1); string(rec.Payload) != "3" {
		t.Fatalf("the later pair of MSET must win: %q", rec.Payload)
	}
	if r := h.apply(Command{Op: OpGetDel, NowMS: 1, Args: args("b")}); !r.Found || string(r.Value) != "2" {
		t.Fatalf("GETDEL: %+v", r)
	}
	if r := h.apply(Command{Op: OpGetDel, NowMS: 1, Args: args("b")}); r.Found {
		t.Fatalf("GETDEL of a deleted key: %+v", r)
	}
	h.apply(Command{Op: OpHSet, Args: args("h", "f", "v")})
	if r := h.apply(Command{Op: OpGetDel, NowMS: 1, Args: args("h")}); !errors.Is(r.Err, ErrWrongType) {
		t.Fatalf("GETDEL of a hash: %+v", r)
	}
	if _, ok := h.get("h", 1); !ok {
		t.Fatal("a failed GETDEL deleted the key")
	}
	// MSET overwrites any type and clears expiries.
	h.apply(Command{Op: OpExpire, Int: 100, NowMS: 1, Args: args("h")})
	h.apply(Command{Op: OpMSet, NowMS: 1, Args: args("h", "s")})
	if rec, _ := h.get("h", 1); rec.Type != TypeString || rec.ExpireAtMS != 0 {
		t.Fatalf("after MSET: %+v", rec)
	}
}

func TestSetOps(t *testing.T) {
	h := newHarness(t)
	if r := h.apply(Command{Op: OpSAdd, NowMS: 1, Args: args("s", "b", "a", "b", "c")}); r.N != 3 {
		t.Fatalf("SADD counted %d, want 3", r.N)
	}
	if r := h.apply(Command{Op: OpSAdd, NowMS: 1, Args: args("s", "a", "d")}); r.N != 1 {
		t.Fatalf("SADD counted %d, want 1", r.N)
	}
	rec, _ := h.get("s", 1)
	m, err := DecodeSet(rec.Payload)
	if err != nil || rec.Type != TypeSet || fmt.Sprintf("%q", m) != `["a" "b" "c" "d"]` {
		t.Fatalf("set %+v: %q %v", rec, m, err)
	}
	if r := h.apply(Command{Op: OpSRem, NowMS: 1, Args: args("s", "a", "zz", "a")}); r.N != 1 {
		t.Fatalf("SREM counted %d, want 1", r.N)
	}
	if r := h.apply(Command{Op: OpSRem, NowMS: 1, Args: args("s", "b", "c", "d")}); r.N != 3 {
		t.Fatalf("SREM counted %d, want 3", r.N)
	}
	if _, ok, _ := h.db.Get(3, []byte("s")); ok {
		t.Fatal("an empty set is still stored")
	}
	h.apply(Command{Op: OpSet, Args: args("str", "v")})
	for _, op := range []Op{OpSAdd, OpSRem} {
		if r := h.apply(Command{Op: op, Args: args("str", "m")}); !errors.Is(r.Err, ErrWrongType) {
			t.Errorf("%s on a string: %+v", op, r)
		}
	}
}

func TestHashOps(t *testing.T) {
	h := newHarness(t)
	if r := h.apply(Command{Op: OpHSet, NowMS: 1, Args: args("h", "f2", "a", "f1", "b", "f2", "c")}); r.N != 2 {
		t.Fatalf("HSET counted %d, want 2", r.N)
	}
	if r := h.apply(Command{Op: OpHSet, NowMS: 1, Args: args("h", "f1", "x", "f3", "y")}); r.N != 1 {
		t.Fatalf("HSET counted %d, want 1", r.N)
	}
	rec, _ := h.get("h", 1)
	fs, err := DecodeHash(rec.Payload)
	if err != nil || rec.Type != TypeHash {
		t.Fatal(rec, err)
	}
	if got := fmt.Sprintf("%s", fs); got != "[{f1 x} {f2 c} {f3 y}]" {
		t.Fatalf("hash %s", got)
	}
	if r := h.apply(Command{Op: OpHDel, NowMS: 1, Args: args("h", "f1", "nope")}); r.N != 1 {
		t.Fatalf("HDEL counted %d", r.N)
	}
	if r := h.apply(Command{Op: OpHDel, NowMS: 1, Args: args("h", "f2", "f3")}); r.N != 2 {
		t.Fatalf("HDEL counted %d", r.N)
	}
	if _, ok, _ := h.db.Get(3, []byte("h")); ok {
		t.Fatal("an empty hash is still stored")
	}
	h.apply(Command{Op: OpSAdd, Args: args("s", "m")})
	if r := h.apply(Command{Op: OpHSet, Args: args("s", "f", "v")}); !errors.Is(r.Err, ErrWrongType) {
		t.Fatalf("HSET on a set: %+v", r)
	}
	// A set keeps its expiry across SADD; an expired set starts empty.
	h.apply(Command{Op: OpExpire, Int: 100, NowMS: 1, Args: args("s")})
	h.apply(Command{Op: OpSAdd, NowMS: 2, Args: args("s", "n")})
	if rec, _ := h.get("s", 2); rec.ExpireAtMS != 100 {
		t.Fatalf("SADD dropped the expiry: %+v", rec)
	}
	if r := h.apply(Command{Op: OpSAdd, NowMS: 100, Args: args("s", "m")}); r.N != 1 {
		t.Fatalf("SADD to an expired set counted %d, want 1", r.N)
	}
	if rec, _ := h.get("s", 1<<40); rec.ExpireAtMS != 0 {
		t.Fatalf("a recreated set kept the old expiry: %+v", rec)
	}
}

func TestCollectionLimit(t *testing.T) {
	h := newHarness(t)
	big := make([][]byte, 0, 10)
	big = append(big, []byte("s"))
	for i := range 9 {
		big = append(big, bytes.Repeat([]byte{byte('a' + i)}, 1<<20))
	}
	if r := h.apply(Command{Op: OpSAdd, Args: big}); !errors.Is(r.Err, ErrTooLarge) {
		t.Fatalf("a 9 MiB set: %+v", r)
	}
	if _, ok := h.get("s", 1); ok {
		t.Fatal("a refused SADD stored something")
	}
	if r := h.apply(Command{Op: OpSAdd, Args: big[:8]}); r.Err != nil || r.N != 7 {
		t.Fatalf("a 7 MiB set: %+v", r)
	}
	if r := h.apply(Command{Op: OpSAdd, Args: [][]byte{big[0], big[8], big[9]}}); !errors.Is(r.Err, ErrTooLarge) {
		t.Fatalf("growing to 9 MiB: %+v", r)
	}
	if r := h.apply(Command{Op: OpHSet, Args: [][]byte{[]byte("h"), []byte("f"), bytes.Repeat([]byte("v"), MaxCollectionBytes)}}); !errors.Is(r.Err, ErrTooLarge) {
		t.Fatalf("an oversized hash: %+v", r)
	}
}

func TestExpireAndPersist(t *testing.T) {
	h := newHarness(t)
	exp := func(key string, at int64, flags uint64) int64 {
		t.Helper()
		r := h.apply(Command{Op: OpExpire, Int: at, Flags: flags, NowMS: 10, Args: args(key)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		return r.N
	}
	ttl := func(key string) int64 {
		rec, ok := h.get(key, 10)
		if !ok {
			return -2
		}
		return rec.ExpireAtMS
	}
	if exp("missing", 100, 0) != 0 {
		t.Fatal("EXPIRE of a missing key set something")
	}
	h.apply(Command{Op: OpSet, Args: args("k", "v")})
	steps := []struct {
		at    int64
		flags uint64
		n     int64
		after int64
	}{
		{100, FlagXX, 0, 0},   // no expiry yet
		{100, FlagGT, 0, 0},   // no expiry counts as infinite
		{100, FlagLT, 1, 100}, // ... so any expiry is earlier
		{200, FlagNX, 0, 100},
		{50, FlagGT, 0, 100},
		{200, FlagGT, 1, 200},
		{300, FlagLT, 0, 200},
		{150, FlagXX | FlagLT, 1, 150},
		{400, 0, 1, 400},
	}
	for i, s := range steps {
		if n := exp("k", s.at, s.flags); n != s.n || ttl("k") != s.after {
			t.Fatalf("step %d: EXPIRE %d flags %b = %d, expiry %d; want %d, %d", i, s.at, s.flags, n, ttl("k"), s.n, s.after)
		}
	}
	if r := h.apply(Command{Op: OpPersist, NowMS: 10, Args: args("k")}); r.N != 1 || ttl("k") != 0 {
		t.Fatalf("PERSIST: %+v, expiry %d", r, ttl("k"))
	}
	if r := h.apply(Command{Op: OpPersist, NowMS: 10, Args: args("k")}); r.N != 0 {
		t.Fatalf("PERSIST without an expiry: %+v", r)
	}
	if exp("k", 10, 0) != 1 || ttl("k") != -2 {
		t.Fatal("EXPIRE at the command's own time must delete the key")
	}
	h.apply(Command{Op: OpSet, Args: args("k", "v")})
	if exp("k", -5, 0) != 1 || ttl("k") != -2 {
		t.Fatal("EXPIRE to a negative time must delete the key")
	}
}

// TestApplyMatchesModel applies random commands to the state machine and
// to a plain in-memory model, on two databases, and checks that results
// and contents agree, and that both databases hold identical bytes
// (Apply is deterministic).
func TestApplyMatchesModel(t *testing.T) {
	h1, h2 := newHarness(t), newHarness(t)
	type entry struct {
		typ    Type
		str    string
		set    map[string]bool
		hash   map[string]string
		expire int64
	}
	model := map[string]*entry{}
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"a", "b", "c", "d"}
	members := []string{"x", "y", "z", ""}
	now := int64(1000)
	liveEntry := func(k string) *entry {
		e := model[k]
		if e != nil && e.expire != 0 && e.expire <= now {
			delete(model, k)
			return nil
		}
		return e
	}
	for step := range 3000 {
		now += rng.Int64N(20)
		k := keys[rng.IntN(len(keys))]
		pick := func() string { return members[rng.IntN(len(members))] }
		var c Command
		var wantN int64
		var wantErr error
		e := liveEntry(k)
		switch rng.IntN(7) {
		case 0: // SET with an optional expiry
			c = Command{Op: OpSet, Args: args(k, pick())}
			if rng.IntN(2) == 0 {
				c.Int = now + rng.Int64N(100)
			}
			wantN = 1
			model[k] = &entry{typ: TypeString, str: string(c.Args[1]), expire: c.Int}
			if c.Int != 0 && c.Int <= now {
				delete(model, k)
			}
		case 1:
			c = Command{Op: OpDelete, Args: args(k)}
			if e != nil {
				wantN = 1
			}
			delete(model, k)
		case 2:
			m := []string{k, pick(), pick()}
			c = Command{Op: OpSAdd, Args: args(m...)}
			switch {
			case e != nil && e.typ != TypeSet:
				wantErr = ErrWrongType
			default:
				if e == nil {
					e = &entry{typ: TypeSet, set: map[string]bool{}}
					model[k] = e
				}
				for _, x := range m[1:] {
					if !e.set[x] {
						e.set[x] = true
						wantN++
					}
				}
			}
		case 3:
			c = Command{Op: OpSRem, Args: args(k, pick())}
			switch {
			case e == nil:
			case e.typ != TypeSet:
				wantErr = ErrWrongType
			default:
				if x := string(c.Args[1]); e.set[x] {
					delete(e.set, x)
					wantN = 1
				}
				if len(e.set) == 0 {
					delete(model, k)
				}
			}
		case 4:
			c = Command{Op: OpHSet, Args: args(k, pick(), pick())}
			switch {
			case e != nil && e.typ != TypeHash:
				wantErr = ErrWrongType
			default:
				if e == nil {
					e = &entry{typ: TypeHash, hash: map[string]string{}}
					model[k] = e
				}
				if _, ok := e.hash[string(c.Args[1])]; !ok {
					wantN = 1
				}
				e.hash[string(c.Args[1])] = string(c.Args[2])
			}
		case 5:
			c = Command{Op: OpHDel, Args: args(k, pick())}
			switch {
			case e == nil:
			case e.typ != TypeHash:
				wantErr = ErrWrongType
			default:
				if _, ok := e.hash[string(c.Args[1])]; ok {
					delete(e.hash, string(c.Args[1]))
					wantN = 1
				}
				if len(e.hash) == 0 {
					delete(model, k)
				}
			}
		case 6:
			c = Command{Op: OpExpire, Int: now + rng.Int64N(60) - 10, Args: args(k)}
			if e != nil {
				wantN = 1
				e.expire = c.Int
				if c.Int <= now {
					delete(model, k)
				}
			}
		}
		c.NowMS = now
		r1, r2 := h1.apply(c), h2.apply(c)
		if r1.N != wantN || !errors.Is(r1.Err, wantErr) || r2.N != r1.N {
			t.Fatalf("step %d: %s %q at %d: %+v, want N=%d err=%v", step, c.Op, c.Args, now, r1, wantN, wantErr)
		}
		// Compare the whole model with what reads see.
		for _, k := range keys {
			e := liveEntry(k)
			rec, ok := h1.get(k, now)
			if (e != nil) != ok {
				t.Fatalf("step %d: key %q live=%v, model %+v", step, k, ok, e)
			}
			if !ok {
				continue
			}
			if rec.Type != e.typ || rec.ExpireAtMS != e.expire {
				t.Fatalf("step %d: key %q is %+v, model %+v", step, k, rec, e)
			}
			var got, want []string
			switch e.typ {
			case TypeString:
				got, want = []string{string(rec.Payload)}, []string{e.str}
			case TypeSet:
				m, err := DecodeSet(rec.Payload)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range m {
					got = append(got, string(x))
				}
				for x := range e.set {
					want = append(want, x)
				}
			case TypeHash:
				fs, err := DecodeHash(rec.Payload)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					got = append(got, string(f.Name)+"="+string(f.Value))
				}
				for n, v := range e.hash {
					want = append(want, n+"="+v)
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: key %q holds %q, model %q", step, k, got, want)
			}
		}
	}
	d1, err := h1.db.EncodeGroupData(3)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := h2.db.EncodeGroupData(3)
	if !bytes.Equal(d1, d2) {
		t.Fatal("two replicas applying the same commands hold different bytes")
	}
}
