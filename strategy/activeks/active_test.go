package activeks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// regionEnv is an Env that knows the cluster, its region and a clock:
// what state machines and Prepare need.
type regionEnv struct {
	strategy.Env
	region string
	clock  *hlc.Clock
	offset time.Duration // how far this region's clock runs ahead
}

func (e regionEnv) Cluster() string   { return "c" }
func (e regionEnv) Region() string    { return e.region }
func (e regionEnv) Clock() *hlc.Clock { return e.clock }
func (e regionEnv) Now() time.Time    { return time.Now().Add(e.offset) }

func newStrategy(region string) *Strategy {
	return New(regionEnv{region: region, clock: hlc.New(1, time.Second)}, nil)
}

type group struct {
	t     *testing.T
	db    *storage.DB
	sm    raftgroup.StateMachine
	id    uint64
	index uint64
}

func newGroup(t *testing.T, s *Strategy, region string, id uint64) *group {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &group{t: t, db: db, id: id, sm: s.Machine(metadata.RegionalGroup{Group: id, Region: region})}
}

func (g *group) apply(c kv.Command) kv.Result {
	g.t.Helper()
	g.index++
	b := g.db.NewBatch()
	v, err := g.sm.Apply(b, g.index, c.Encode())
	if err != nil {
		b.Close()
		g.t.Fatalf("%s: fatal %v", c.Op, err)
	}
	if err := b.Commit(false); err != nil {
		g.t.Fatal(err)
	}
	return v.(kv.Result)
}

func batchCmd(t *testing.T, b stream.Batch) kv.Command {
	t.Helper()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}
}

// TestActiveMachineRefusesPlainOpsAndRoles: an active group applies
// stamped CRDT ops and streams of merges, and refuses plain data ops,
// roles and resync chunks (which would replace its own writes), also a
// stream batch carrying a plain op, whole.
func TestActiveMachineRefusesPlainOpsAndRoles(t *testing.T) {
	east, west := newStrategy("east"), newStrategy("west")
	a, b := newGroup(t, east, "east", 11), newGroup(t, west, "west", 12)
	ks := &metadata.Keyspace{KeyspaceSpec: metadata.KeyspaceSpec{Name: "k", Strategy: metadata.Active}}
	set, err := east.Prepare(ks, kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("k"), []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.apply(set); r.Err != nil || r.N != 1 {
		t.Fatalf("active set: %+v", r)
	}
	chunk := stream.Chunk{Stream: 11, Cluster: "c", Index: 1, Last: true}
	chunkEnc, err := chunk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []kv.Command{
		{Op: kv.OpSet, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("plain")}},
		{Op: kv.OpIncrBy, Int: 1, NowMS: 1, Args: [][]byte{[]byte("n")}},
		{Op: kv.OpMSet, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("x"), []byte("j"), []byte("y")}},
		{Op: kv.OpDelete, NowMS: 1, Args: [][]byte{[]byte("k")}},
		{Op: kv.OpSAdd, NowMS: 1, Args: [][]byte{[]byte("s"), []byte("m")}},
		kv.RoleCommand(kv.Role{Epoch: 1, Primary: true}, 0, 0, 0),
		{Op: kv.OpStreamChunk, Args: [][]byte{chunkEnc}},
	} {
		if r := a.apply(c); !errors.Is(r.Err, kv.ErrRefused) {
			t.Errorf("%s applied by an active group: %+v", c.Op, r)
		}
	}
	if v, ok, err := kv.GetActive(a.db, 11, []byte("k")); err != nil || !ok || string(v.Value) != "v" {
		t.Fatalf("k after the refusals: %+v %v %v", v, ok, err)
	}
	// The write's merge, as east's stream ships it, is applied by west;
	// a batch carrying a plain op with it is refused whole.
	merge, err := change(a.db, 11, 1, set.Encode())
	if err != nil || merge == nil {
		t.Fatalf("east ships %v, %v", merge, err)
	}
	plain := kv.Command{Op: kv.OpSet, NowMS: 1, Args: [][]byte{[]byte("p"), []byte("x")}}.Encode()
	bad := stream.Batch{Stream: 11, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: merge}, {Index: 2, Data: plain}}}
	if r := b.apply(batchCmd(t, bad)); !errors.Is(r.Err, kv.ErrRefused) {
		t.Fatalf("batch with a plain op: %+v", r)
	}
	if _, ok, _ := kv.GetActive(b.db, 12, []byte("k")); ok {
		t.Fatal("a batch refused whole applied its merge")
	}
	good := stream.Batch{Stream: 11, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: merge}}}
	if r := b.apply(batchCmd(t, good)); r.Err != nil || r.N != 1 {
		t.Fatalf("batch of a merge: %+v", r)
	}
	if v, ok, err := kv.GetActive(b.db, 12, []byte("k")); err != nil || !ok || string(v.Value) != "v" {
		t.Fatalf("west's k: %+v %v %v", v, ok, err)
	}
	// A plain op in east's log (refused there) is never shipped.
	if m, err := change(a.db, 11, 2, plain); err != nil || m != nil {
		t.Fatalf("a refused plain op ships %v, %v", m, err)
	}
}

// TestActivePrepareAndLevels: writes are stamped with the node's region;
// what active keyspaces cannot do is refused before it is proposed;
// reads default to session and strong is refused.
func TestActivePrepareAndLevels(t *testing.T) {
	s := newStrategy("east")
	ks := &metadata.Keyspace{KeyspaceSpec: metadata.KeyspaceSpec{Name: "k", Strategy: metadata.Active}}
	c, err := s.Prepare(ks, kv.Command{Op: kv.OpIncrBy, Int: 3, NowMS: 5, Args: [][]byte{[]byte("n")}})
	if err != nil || c.Op != kv.OpActiveIncr || c.Int != 3 || c.NowMS != 5 {
		t.Fatalf("incr prepared as %+v, %v", c, err)
	}
	if st, err := kv.DecodeActiveStamp(c.Args[len(c.Args)-1]); err != nil || st.Region != "east" {
		t.Fatalf("stamp %+v, %v", st, err)
	}
	if again, err := s.Prepare(ks, c); err != nil || again.Op != c.Op {
		t.Fatalf("an active op prepared again: %+v %v", again, err)
	}
	for _, bad := range []kv.Command{
		{Op: kv.OpSet, Int: 99, Args: [][]byte{[]byte("k"), []byte("v")}},
		{Op: kv.OpMSet, Args: [][]byte{[]byte("k"), []byte("v")}},
		{Op: kv.OpExpire, Int: 99, Args: [][]byte{[]byte("k")}},
	} {
		if _, err := s.Prepare(ks, bad); !errors.Is(err, ErrNotOnActive) {
			t.Errorf("%s prepared: %v", bad.Op, err)
		}
	}
	if r, err := s.Level(ks, consistency.Requirement{}); err != nil || r.Level != consistency.Session {
		t.Fatalf("default level %v, %v", r, err)
	}
	if _, err := s.Level(ks, consistency.Requirement{Level: consistency.Strong}); !errors.Is(err, ErrStrongOnActive) {
		t.Fatalf("strong read: %v", err)
	}
	if s.Ops().Admits(kv.OpMSet) || !s.Ops().Admits(kv.OpActiveMerge) {
		t.Fatal("active admission")
	}
	// The command engine: sorted sets become CRDT ops of the region,
	// lists are refused saying why.
	zadd := kv.RedisCommand([]byte("z"), 5, [][]byte{[]byte("ZADD"), []byte("z"), []byte("1"), []byte("m")})
	if c, err := s.Prepare(ks, zadd); err != nil || c.Op != kv.OpActiveRedis || !s.Ops().Admits(c.Op) || s.Ops().Admits(kv.OpRedis) {
		t.Fatalf("ZADD prepared as %+v, %v", c, err)
	}
	push := kv.RedisCommand([]byte("l"), 5, [][]byte{[]byte("RPUSH"), []byte("l"), []byte("a")})
	if _, err := s.Prepare(ks, push); !errors.Is(err, ErrNotOnActive) || !strings.Contains(err.Error(), "sequence CRDT") {
		t.Fatalf("RPUSH prepared: %v", err)
	}
}

// TestActiveWriteAfterSkewedOneWins: east's clock runs 300 ms ahead.
// West applies east's write, then writes the key itself: its write came
// later, so it must win in both regions, whatever the wall clocks say
// (west's write has seen east's, in its causal context; last writer wins
// decides only between writes that have not seen each other).
func TestActiveWriteAfterSkewedOneWins(t *testing.T) {
	ahead := 300 * time.Millisecond
	east := New(regionEnv{region: "east", offset: ahead,
		clock: hlc.NewWithWall(1, 2*ahead, func() int64 { return time.Now().Add(ahead).UnixMilli() })}, nil)
	west := newStrategy("west")
	a, b := newGroup(t, east, "east", 11), newGroup(t, west, "west", 12)
	ks := &metadata.Keyspace{KeyspaceSpec: metadata.KeyspaceSpec{Name: "k", Strategy: metadata.Active}}
	write := func(s *Strategy, g *group, value string) kv.Command {
		t.Helper()
		c, err := s.Prepare(ks, kv.Command{Op: kv.OpSet, NowMS: s.env.Now().UnixMilli(), Args: [][]byte{[]byte("k"), []byte(value)}})
		if err != nil {
			t.Fatal(err)
		}
		if r := g.apply(c); r.Err != nil {
			t.Fatalf("%s: %v", value, r.Err)
		}
		return c
	}
	ship := func(from, to *group, index uint64, c kv.Command) {
		t.Helper()
		m, err := change(from.db, from.id, index, c.Encode())
		if err != nil || m == nil {
			t.Fatalf("ship %d: %v %v", index, m, err)
		}
		b := stream.Batch{Stream: from.id, Cluster: "c", Prev: index - 1, Changes: []stream.Change{{Index: index, TimeMS: c.NowMS, Data: m}}}
		if r := to.apply(batchCmd(t, b)); r.Err != nil {
			t.Fatalf("apply %d at %d: %v", index, to.id, r.Err)
		}
	}
	ship(a, b, 1, write(east, a, "east"))
	ship(b, a, 1, write(west, b, "west"))
	for _, g := range []*group{a, b} {
		if v, ok, err := kv.GetActive(g.db, g.id, []byte("k")); err != nil || !ok || string(v.Value) != "west" {
			t.Fatalf("group %d: k = %q (%v %v), want the later write, west's", g.id, v.Value, ok, err)
		}
	}
}
