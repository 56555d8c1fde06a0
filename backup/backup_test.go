package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/storage"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func TestObjectEnvelope(t *testing.T) {
	for _, key := range [][]byte{nil, testKey} {
		data, err := sealObject("groups/1/x.seg", kindSegment, []byte("payload"), key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := openObject("groups/1/x.seg", kindSegment, data, key)
		if err != nil || string(got) != "payload" {
			t.Fatalf("key %v: open gave %q %v", key != nil, got, err)
		}
		if _, err := openObject("groups/1/x.seg", kindBase, data, key); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a segment opened as a base: %v", err)
		}
		// Truncated, flipped: found by the checksum, naming the object.
		for name, bad := range map[string][]byte{
			"truncated": data[:len(data)-5],
			"flipped":   flip(data, len(data)/2),
			"empty":     nil,
		} {
			_, err := openObject("groups/1/x.seg", kindSegment, bad, key)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "groups/1/x.seg") {
				t.Fatalf("%s object: %v, want ErrCorrupt naming it", name, err)
			}
		}
	}
	enc, _ := sealObject("a", kindManifest, []byte("secret"), testKey)
	if bytes.Contains(enc, []byte("secret")) {
		t.Fatal("the encrypted object holds its payload in clear")
	}
	other := bytes.Repeat([]byte{8}, 32)
	for name, try := range map[string]func() error{
		"no key":       func() error { _, err := openObject("a", kindManifest, enc, nil); return err },
		"another key":  func() error { _, err := openObject("a", kindManifest, enc, other); return err },
		"moved object": func() error { _, err := openObject("b", kindManifest, enc, testKey); return err },
		"key for plain": func() error {
			plain, _ := sealObject("a", kindManifest, []byte("x"), nil)
			_, err := openObject("a", kindManifest, plain, testKey)
			return err
		},
	} {
		if err := try(); !errors.Is(err, ErrKey) {
			t.Fatalf("%s: %v, want ErrKey", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x40
	return out
}

func TestRecordsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 20).Draw(t, "n")
		first := rapid.Uint64Range(1, 1<<40).Draw(t, "first")
		seg := Segment{Group: rapid.Uint64().Draw(t, "group")}
		for i := range n {
			e := Entry{Index: first + uint64(i), Stamp: hlc.Timestamp{WallMS: rapid.Int64Range(0, 1<<45).Draw(t, "wall"), Logical: rapid.Uint32().Draw(t, "l")}}
			if rapid.Bool().Draw(t, "cmd") {
				e.Command = rapid.SliceOf(rapid.Byte()).Draw(t, "c")
			}
			seg.Entries = append(seg.Entries, e)
		}
		got, err := decodeSegment("s", encodeSegment(seg))
		if err != nil {
			t.Fatal(err)
		}
		if got.Group != seg.Group || len(got.Entries) != n {
			t.Fatalf("got %+v", got)
		}
		for i, e := range got.Entries {
			w := seg.Entries[i]
			if e.Index != w.Index || e.Stamp != w.Stamp || (e.Command == nil) != (w.Command == nil) || !bytes.Equal(e.Command, w.Command) {
				t.Fatalf("entry %d: %+v, want %+v", i, e, w)
			}
		}
		p := BasePart{Group: 9, Index: first, Stamp: seg.Entries[0].Stamp, Part: rapid.IntRange(0, 100).Draw(t, "part"), Final: rapid.Bool().Draw(t, "final")}
		for range rapid.IntRange(0, 10).Draw(t, "pairs") {
			p.Pairs = append(p.Pairs, rapid.SliceOf(rapid.Byte()).Draw(t, "k"), rapid.SliceOf(rapid.Byte()).Draw(t, "v"))
		}
		p.Cursors = []storage.SourceCursor{{Source: 3, Cursor: storage.Cursor{Index: 4, ClosedMS: 5, Epoch: 6}}}
		p.Ledger = [][]byte{[]byte("e1"), []byte("{}")}
		for range rapid.IntRange(0, 10).Draw(t, "elements") {
			p.Elements = append(p.Elements, rapid.SliceOfN(rapid.Byte(), 1, 20).Draw(t, "s"), rapid.SliceOf(rapid.Byte()).Draw(t, "e"))
		}
		enc := encodeBasePart(p)
		gp, err := decodeBasePart("b", enc)
		if err != nil {
			t.Fatal(err)
		}
		if gp.Group != p.Group || gp.Index != p.Index || gp.Stamp != p.Stamp || gp.Part != p.Part || gp.Final != p.Final ||
			len(gp.Pairs) != len(p.Pairs) || gp.Cursors[0] != p.Cursors[0] || string(gp.Ledger[0]) != "e1" || len(gp.Elements) != len(p.Elements) {
			t.Fatalf("base part %+v, want %+v", gp, p)
		}
		for i := range p.Pairs {
			if !bytes.Equal(gp.Pairs[i], p.Pairs[i]) {
				t.Fatalf("pair %d differs", i)
			}
		}
		for i := range p.Elements {
			if !bytes.Equal(gp.Elements[i], p.Elements[i]) {
				t.Fatalf("element %d differs", i)
			}
		}
		// Version 1 (no element span) still reads: the same part without
		// its elements, its version byte 1 and its elements' count gone.
		p.Elements = nil
		v1 := encodeBasePart(p)
		v1 = append([]byte{1}, v1[1:len(v1)-1]...)
		gp, err = decodeBasePart("b", v1)
		if err != nil || len(gp.Pairs) != len(p.Pairs) || string(gp.Ledger[0]) != "e1" || gp.Elements != nil {
			t.Fatalf("version 1 base part: %+v %v", gp, err)
		}
	})
}

func FuzzDecodeSegment(f *testing.F) {
	f.Add(encodeSegment(Segment{Group: 3, Entries: []Entry{{Index: 5, Command: []byte("x")}, {Index: 6}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSegment("f", b)
		if err == nil && !bytes.Equal(encodeSegment(s), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzDecodeBasePart(f *testing.F) {
	f.Add(encodeBasePart(BasePart{Group: 1, Index: 2, Pairs: [][]byte{[]byte("k"), []byte("v")}, Final: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeBasePart("f", b)
		if err != nil {
			return
		}
		// Version 2 encodes back to itself; version 1 as version 2 with
		// the same contents.
		enc := encodeBasePart(p)
		if b[0] == baseVersion && !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs")
		}
		if p2, err := decodeBasePart("f", enc); err != nil || !bytes.Equal(encodeBasePart(p2), enc) {
			t.Fatalf("re-encoding does not decode to the same part: %v", err)
		}
	})
}

func FuzzOpenObject(f *testing.F) {
	plain, _ := sealObject("n", kindSegment, []byte("abc"), nil)
	enc, _ := sealObject("n", kindSegment, []byte("abc"), testKey)
	f.Add(plain, false)
	f.Add(enc, true)
	f.Fuzz(func(t *testing.T, b []byte, withKey bool) {
		var key []byte
		if withKey {
			key = testKey
		}
		_, _ = openObject("n", kindSegment, b, key)
	})
}

func TestFileTarget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tg, err := Open("file://"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, "groups/1/log/a.seg", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := tg.Put(ctx, "groups/1/log/a.seg", []byte("two")); err != nil {
		t.Fatal(err)
	}
	// A writer that died mid-put leaves a temporary file, never listed.
	if err := os.WriteFile(filepath.Join(dir, "groups/1/log/.tmp-b.seg-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := tg.List(ctx, "groups/1/")
	if err != nil || len(objs) != 1 || objs[0].Name != "groups/1/log/a.seg" || objs[0].Size != 3 {
		t.Fatalf("list: %+v %v", objs, err)
	}
	if b, err := tg.Get(ctx, "groups/1/log/a.seg"); err != nil || string(b) != "two" {
		t.Fatalf("get: %q %v", b, err)
	}
	if _, err := tg.Get(ctx, "groups/1/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	for _, bad := range []string{"../x", "/abs", "a//b", "a/./b", ""} {
		if err := tg.Put(ctx, bad, nil); !errors.Is(err, ErrTarget) {
			t.Fatalf("name %q: %v", bad, err)
		}
	}
	if err := tg.Delete(ctx, "groups/1/log/a.seg"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open("s3://user:secret@bucket/x", Options{}); !errors.Is(err, ErrTarget) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("credentials in a URL: %v", err)
	}
	if _, err := Open("ftp://host/x", Options{}); !errors.Is(err, ErrTarget) {
		t.Fatalf("unknown scheme: %v", err)
	}
	if s := fmt.Sprintf("%v %#v", Options{AccessKey: "AK", SecretKey: "SK", Key: testKey}, Options{SecretKey: "SK"}); strings.Contains(s, "SK") || strings.Contains(s, "AK") {
		t.Fatalf("options print their secrets: %s", s)
	}
}

func TestChain(t *testing.T) {
	refs := []ObjectRef{
		{Name: "a", First: 11, Last: 20},
		{Name: "b", First: 15, Last: 30}, // overlaps a
		{Name: "c", First: 21, Last: 25},
		{Name: "d", First: 32, Last: 40}, // after a hole at 31
	}
	got, reach := Chain(refs, 10)
	if reach != 30 || len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" {
		t.Fatalf("chain %+v reaching %d", got, reach)
	}
	if _, reach := Chain(refs, 5); reach != 5 {
		t.Fatalf("a chain from before the first segment reaches %d", reach)
	}
	// A manifest's reference (with a checksum) is preferred to a listed one.
	got, _ = Chain([]ObjectRef{{Name: "listed", First: 1, Last: 9}, {Name: "ref", SHA256: "x", First: 1, Last: 9}}, 0)
	if got[0].Name != "ref" {
		t.Fatalf("chose %s", got[0].Name)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC).UnixMilli()
	for _, s := range []string{"2026-03-04T05:06:07Z", "2026-03-04 05:06:07Z", "2026-03-04T07:06:07+02:00", "1772600767", "1772600767000"} {
		ts, err := ParseTime(s)
		if err != nil || ts.WallMS != want {
			t.Fatalf("%s: %v %v, want %d", s, ts, err, want)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Fatal("a bad time parsed")
	}
}

// fakeGroup builds a group's history in a real storage DB through the kv
// state machine: a base after `baseAt` writes, then the rest as entries
// stamped one millisecond apart from ms 1000.
type fakeGroup struct {
	group   uint64
	db      *storage.DB
	sm      *kv.StateMachine
	entries []Entry
}

func newFakeGroup(t *testing.T, group uint64) *fakeGroup {
	db, err := storage.Open(filepath.Join(t.TempDir(), "db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &fakeGroup{group: group, db: db, sm: &kv.StateMachine{Group: group, Cluster: "c"}}
}

// write applies a SET at index with stamp ms, and records the entry.
func (g *fakeGroup) write(t *testing.T, index uint64, ms int64, key string, value int) {
	cmd := kv.Command{Op: kv.OpSet, NowMS: ms, Args: [][]byte{[]byte(key), []byte(strconv.Itoa(value))}}.Encode()
	b := g.db.NewBatch()
	if _, err := g.sm.Apply(b, index, cmd); err != nil {
		t.Fatal(err)
	}
	// The applied index, as the raft host stages it.
	ls, err := g.db.LoadLogStore(g.group)
	if err != nil {
		t.Fatal(err)
	}
	ls.StageApplied(b, index, &pb.ConfState{})
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	g.entries = append(g.entries, Entry{Index: index, Stamp: hlc.Timestamp{WallMS: ms, Node: 1}, Command: cmd})
}

// redis applies an engine write (a list or sorted set command) at index
// with stamp ms, and records the entry.
func (g *fakeGroup) redis(t *testing.T, index uint64, ms int64, words ...string) {
	t.Helper()
	args := make([][]byte, len(words))
	for i, w := range words {
		args[i] = []byte(w)
	}
	cmd := kv.RedisCommand(args[1], ms, args).Encode()
	b := g.db.NewBatch()
	v, err := g.sm.Apply(b, index, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := v.(kv.Result); r.Err != nil {
		t.Fatalf("%v: %v", words, r.Err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	g.entries = append(g.entries, Entry{Index: index, Stamp: hlc.Timestamp{WallMS: ms, Node: 1}, Command: cmd})
}

// query runs an engine read on a group's data and returns its reply's
// elements as text.
func query(t *testing.T, db *storage.DB, group uint64, words ...string) string {
	t.Helper()
	args := make([][]byte, len(words))
	for i, w := range words {
		args[i] = []byte(w)
	}
	r, err := kv.Query(db, group, 2000, args, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range r.Elems {
		out = append(out, string(e.Str))
	}
	return strings.Join(out, " ")
}

// TestBaseCarriesElements: a list's and a sorted set's items live in the
// group's element span, beside their heads in the data span; a base holds
// that span (split across parts like the data), and a replay from it, with
// the log after it, gives the collections as they were at each time, and
// a collection made afterwards gets an id of its own (the group's next
// collection id is in the span too).
func TestBaseCarriesElements(t *testing.T) {
	ctx := context.Background()
	const group = 100
	g := newFakeGroup(t, group)
	g.redis(t, 1, 1001, "RPUSH", "l", "a", "b", "c")
	g.redis(t, 2, 1002, "ZADD", "z", "1", "x", "2", "y")
	store, err := OpenStore("file://"+t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	r := g.db.NewReader()
	base, err := store.WriteBase(ctx, r, group, 2, hlc.Timestamp{WallMS: 1002, Node: 1}, "w", 16)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Parts) < 3 || base.Keys != 2 {
		t.Fatalf("base of %d parts and %d keys, want the 2 heads and the elements over several parts of 16 bytes", len(base.Parts), base.Keys)
	}
	g.entries = nil
	g.redis(t, 3, 1003, "RPUSH", "l", "d")
	g.redis(t, 4, 1004, "ZADD", "z", "3", "w")
	g.redis(t, 5, 1005, "RPUSH", "l2", "n")
	g.write(t, 6, 1006, "seal", 1)
	segs, err := store.WriteSegments(ctx, group, g.entries, "w", 0)
	if err != nil {
		t.Fatal(err)
	}
	gb := GroupBackup{Group: group, BaseIndex: 2, BaseStamp: hlc.Timestamp{WallMS: 1002, Node: 1}, BaseParts: base.Parts, CutIndex: 6, SealIndex: 6, Segments: segs}
	for _, tc := range []struct {
		at            int64
		list, set, l2 string
	}{
		{1002, "a b c", "x y", ""},
		{1004, "a b c d", "x y w", ""},
		{1005, "a b c d", "x y w", "n"},
	} {
		scratch := newFakeGroup(t, group)
		if _, err := store.Replay(ctx, scratch.db, gb, nil, AtMillis(tc.at), "c"); err != nil {
			t.Fatalf("replay at %d: %v", tc.at, err)
		}
		l, z, l2 := query(t, scratch.db, group, "LRANGE", "l", "0", "-1"), query(t, scratch.db, group, "ZRANGE", "z", "0", "-1"), query(t, scratch.db, group, "LRANGE", "l2", "0", "-1")
		if l != tc.list || z != tc.set || l2 != tc.l2 {
			t.Fatalf("at %d: list %q, sorted set %q, l2 %q; want %q, %q, %q", tc.at, l, z, l2, tc.list, tc.set, tc.l2)
		}
	}
}

// TestReplayVerifyAndCorruption: a backup of one group (a base, then
// segments), restored at several times, gives the state of the log's
// prefix at each; a truncated file, a flipped byte and a missing segment
// are each found by Verify and refused by Replay, naming the object.
func TestReplayVerifyAndCorruption(t *testing.T) {
	ctx := context.Background()
	const group = 100
	g := newFakeGroup(t, group)
	for i := 1; i <= 10; i++ {
		g.write(t, uint64(10+i), int64(1000+i), fmt.Sprintf("k%d", i), i)
	}
	dir := t.TempDir()
	store, err := OpenStore("file://"+dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	r := g.db.NewReader()
	base, err := store.WriteBase(ctx, r, group, 20, hlc.Timestamp{WallMS: 1010, Node: 1}, "w", 64)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Parts) < 2 || base.Keys != 10 {
		t.Fatalf("base of %d parts, %d keys; want several parts of 64 bytes, 10 keys", len(base.Parts), base.Keys)
	}
	g.entries = nil
	for i := 11; i <= 40; i++ {
		g.write(t, uint64(10+i), int64(1000+i), fmt.Sprintf("k%d", i%15), i)
	}
	segs, err := store.WriteSegments(ctx, group, g.entries, "w", 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	m := &Manifest{Format: FormatVersion, ID: "b1", Kind: "full", Cluster: "c", Created: time.Now().UTC().Format(time.RFC3339Nano),
		Cut: hlc.Timestamp{WallMS: 1030, Node: 9}, Keyspaces: []KeyspaceBackup{{Spec: metadata.KeyspaceSpec{Name: "ks", Strategy: metadata.Sync},
			Shards: []ShardBackup{{Groups: []GroupBackup{{Group: group, BaseIndex: 20, BaseStamp: hlc.Timestamp{WallMS: 1010, Node: 1},
				BaseParts: base.Parts, CutIndex: 40, SealIndex: 41, Segments: segs}}}}}}}
	if _, err := store.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, store); err != nil || !rep.OK() {
		t.Fatalf("verify of a good backup: %v %+v", err, rep.Problems)
	}
	// The state at each time is the prefix stamped at or before it.
	for _, at := range []int64{1010, 1025, 1039} {
		scratch := newFakeGroup(t, group)
		res, err := store.Replay(ctx, scratch.db, m.Keyspaces[0].Shards[0].Groups[0], nil, AtMillis(at), "c")
		if err != nil {
			t.Fatalf("replay at %d: %v", at, err)
		}
		if res.CutIndex != uint64(at-1000+10) {
			t.Fatalf("replay at %d stopped at index %d", at, res.CutIndex)
		}
		want := map[string]int{}
		for i := 1; i <= int(at-1000); i++ {
			k := fmt.Sprintf("k%d", i)
			if i > 10 {
				k = fmt.Sprintf("k%d", i%15)
			}
			want[k] = i
		}
		got := map[string]int{}
		_ = scratch.db.Scan(group, nil, nil, func(k, v []byte) bool {
			rec, _ := kv.DecodeRecord(v)
			got[string(k)], _ = strconv.Atoi(string(rec.Payload))
			return true
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("state at %d: %v, want %v", at, got, want)
		}
	}
	// Past the last segment nothing seals the time.
	if _, err := store.Replay(ctx, newFakeGroup(t, group).db, m.Keyspaces[0].Shards[0].Groups[0], nil, AtMillis(1040), "c"); !errors.Is(err, ErrWindow) {
		t.Fatalf("replay past the log: %v, want ErrWindow", err)
	}
	if _, err := store.Replay(ctx, newFakeGroup(t, group).db, m.Keyspaces[0].Shards[0].Groups[0], nil, AtMillis(1005), "c"); !errors.Is(err, ErrWindow) {
		t.Fatalf("replay before the base: %v, want ErrWindow", err)
	}

	// Corruption, each in a copy of the target.
	corrupt := map[string]func(dir string) string{
		"truncated file": func(dir string) string {
			p := filepath.Join(dir, segs[1].Name)
			b, _ := os.ReadFile(p)
			_ = os.WriteFile(p, b[:len(b)/2], 0o600)
			return segs[1].Name
		},
		"flipped byte": func(dir string) string {
			p := filepath.Join(dir, base.Parts[0].Name)
			b, _ := os.ReadFile(p)
			_ = os.WriteFile(p, flip(b, len(b)-40), 0o600)
			return base.Parts[0].Name
		},
		"missing segment": func(dir string) string {
			_ = os.Remove(filepath.Join(dir, segs[1].Name))
			return segs[1].Name
		},
	}
	for what, damage := range corrupt {
		cp := t.TempDir()
		copyDir(t, dir, cp)
		name := damage(cp)
		s2, _ := OpenStore("file://"+cp, Options{Key: testKey})
		rep, err := Verify(ctx, s2)
		if err != nil {
			t.Fatalf("%s: verify: %v", what, err)
		}
		if rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), name) {
			t.Fatalf("%s: verify found %+v, want a problem naming %s", what, rep.Problems, name)
		}
		_, err = s2.Replay(ctx, newFakeGroup(t, group).db, m.Keyspaces[0].Shards[0].Groups[0], nil, AtMillis(1045), "c")
		if err == nil || !strings.Contains(err.Error(), name) || !(errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound)) {
			t.Fatalf("%s: replay gave %v, want a refusal naming %s", what, err, name)
		}
		t.Logf("%s: verify: %s; restore: %v", what, rep.Problems[0].Err, err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPruneKeepsWhatKeptBackupsNeed: retention by count deletes old
// manifests and the objects only they needed, never an object or a log
// segment a kept backup (or a restore after it) needs.
func TestPruneKeepsWhatKeptBackupsNeed(t *testing.T) {
	ctx := context.Background()
	store, err := OpenStore("file://"+t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	put := func(name string) ObjectRef {
		ref, err := store.put(ctx, name, kindSegment, []byte(name))
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	// Three backups of group 5: bases at 10, 50, 90; segments all along.
	var ms []*Manifest
	var all []string
	for i, baseIdx := range []uint64{10, 50, 90} {
		b := put(BasePartName(5, baseIdx, "w", 0))
		all = append(all, b.Name)
		var segs []ObjectRef
		for first := baseIdx + 1; first < baseIdx+40; first += 10 {
			s := put(SegmentName(5, first, first+9, "w"))
			s.First, s.Last = first, first+9
			segs = append(segs, s)
			all = append(all, s.Name)
		}
		m := &Manifest{ID: fmt.Sprintf("b%d", i), Created: time.Now().Add(time.Duration(i-3) * time.Hour).UTC().Format(time.RFC3339Nano),
			Keyspaces: []KeyspaceBackup{{Shards: []ShardBackup{{Groups: []GroupBackup{{Group: 5, BaseIndex: baseIdx, BaseParts: []ObjectRef{b}, Segments: segs, SealIndex: baseIdx + 40}}}}}}}
		if _, err := store.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	// The archive after the newest backup.
	archived := put(SegmentName(5, 131, 140, "x"))
	rep, err := Prune(ctx, store, Retention{KeepLast: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Manifests) != 1 || rep.Manifests[0] != "b0" {
		t.Fatalf("deleted manifests %v, want [b0]", rep.Manifests)
	}
	left, _ := store.T.List(ctx, "")
	have := map[string]bool{}
	for _, o := range left {
		have[o.Name] = true
	}
	for _, m := range ms[1:] {
		for _, o := range m.Objects() {
			if !have[o.Name] {
				t.Fatalf("kept backup %s lost %s", m.ID, o.Name)
			}
		}
	}
	if !have[archived.Name] {
		t.Fatal("the archive after the newest backup was deleted")
	}
	// b0's segments at or below b1's base (50) are gone; its base is
	// young (within the grace period): kept until later.
	for _, name := range all[1:4] {
		if have[name] {
			t.Fatalf("%s (below every kept base) survived", name)
		}
	}
	if !have[all[0]] {
		t.Fatal("an unreferenced base within the grace period was deleted")
	}
	if _, err := Prune(ctx, store, Retention{KeepLast: 2}, time.Now().Add(7*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.T.Get(ctx, all[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unreferenced base after the grace period: %v", err)
	}
	if rep, err := Verify(ctx, store); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range rep.Problems {
			if strings.HasPrefix(p.Object, "backups/") {
				t.Fatalf("a kept manifest is damaged: %+v", p)
			}
		}
	}
}
