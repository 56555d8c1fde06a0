package asyncks

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// clusterEnv is an Env that only knows the cluster's id: all a state
// machine needs.
type clusterEnv struct{ strategy.Env }

func (clusterEnv) Cluster() string { return "c" }

func apply(t *testing.T, db *storage.DB, sm raftgroup.StateMachine, index uint64, c kv.Command) kv.Result {
	t.Helper()
	b := db.NewBatch()
	v, err := sm.Apply(b, index, c.Encode())
	if err != nil {
		b.Close()
		t.Fatalf("%s: fatal %v", c.Op, err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	return v.(kv.Result)
}

// TestAsyncMachineRefusesActiveOps: an async group applies data ops,
// roles and streams, and refuses every op of active keyspaces (a command
// error, nothing applied), also inside a stream batch.
func TestAsyncMachineRefusesActiveOps(t *testing.T) {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	sm := New(clusterEnv{}, nil).Machine(metadata.RegionalGroup{Group: 7, Region: "r"})
	if r := apply(t, db, sm, 1, kv.RoleCommand(kv.Role{Epoch: 1, Primary: true}, 0, 0, 0)); r.Err != nil {
		t.Fatalf("role: %v", r.Err)
	}
	if r := apply(t, db, sm, 2, kv.Command{Op: kv.OpSet, Epoch: 1, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("v")}}); r.Err != nil || r.N != 1 {
		t.Fatalf("set: %+v", r)
	}
	push := kv.RedisCommand([]byte("l"), 1, [][]byte{[]byte("RPUSH"), []byte("l"), []byte("a")})
	push.Epoch = 1
	if r := apply(t, db, sm, 3, push); r.Err != nil {
		t.Fatalf("an engine write: %+v", r)
	}
	stamp := kv.ActiveStamp{Region: "r", Time: hlc.Timestamp{WallMS: 1}}
	refused := []kv.Command{
		kv.ActiveCommand(kv.OpActiveSet, stamp, 1, []byte("k"), []byte("w"), nil),
		kv.ActiveCommand(kv.OpActiveIncr, stamp, 1, []byte("n")),
		kv.ActiveCommand(kv.OpActiveDel, stamp, 1, []byte("k")),
		{Op: kv.OpActiveMerge, NowMS: 1, Args: [][]byte{[]byte("k"), {1}}},
		kv.KnowCommand("r", nil, 1),
		kv.GCCommand([]string{"r"}, 1),
		kv.StreamCursorCommand(9, 5),
	}
	zadd, err := kv.ActiveRedisCommand(kv.RedisCommand([]byte("z"), 1, [][]byte{[]byte("ZADD"), []byte("z"), []byte("2"), []byte("m")}), stamp, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	refused = append(refused, zadd)
	for i, c := range refused {
		c.Epoch = 1
		r := apply(t, db, sm, uint64(4+i), c)
		if !errors.Is(r.Err, kv.ErrRefused) {
			t.Errorf("%s applied by an async group: %+v", c.Op, r)
		}
	}
	if rec, ok, err := kv.Get(db, 7, []byte("k"), 1); err != nil || !ok || string(rec.Payload) != "v" {
		t.Fatalf("k after the refusals: %+v %v %v", rec, ok, err)
	}
	// A replica refuses a stream batch carrying an active merge, whole.
	if r := apply(t, db, sm, 20, kv.RoleCommand(kv.Role{Epoch: 2}, 0, 0, 0)); r.Err != nil {
		t.Fatalf("role: %v", r.Err)
	}
	set := kv.Command{Op: kv.OpSet, Epoch: 2, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("x")}}.Encode()
	merge := kv.Command{Op: kv.OpActiveMerge, NowMS: 1, Args: [][]byte{[]byte("k"), {1}}}.Encode()
	batch := stream.Batch{Stream: 9, Epoch: 2, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: set}, {Index: 2, Data: merge}}}
	enc, err := batch.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if r := apply(t, db, sm, 21, kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}); !errors.Is(r.Err, kv.ErrRefused) {
		t.Fatalf("stream batch with a merge: %+v", r)
	}
	if rec, _, _ := kv.Get(db, 7, []byte("k"), 1); string(rec.Payload) != "v" {
		t.Fatalf("a refused batch applied part of itself: %q", rec.Payload)
	}
}
