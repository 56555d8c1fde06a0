package syncks

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// clusterEnv is an Env that only knows the cluster's id: all a state
// machine needs.
type clusterEnv struct{ strategy.Env }

func (clusterEnv) Cluster() string { return "c" }

// TestSyncMachineRefusesReplicationOps: a sync group applies data ops and
// refuses roles, streams (batches, resync chunks, cursors) and every op of
// active keyspaces: each a command error that changes nothing.
func TestSyncMachineRefusesReplicationOps(t *testing.T) {
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	sm := New(clusterEnv{}).Machine(metadata.RegionalGroup{Group: 5})
	index := uint64(0)
	apply := func(c kv.Command) kv.Result {
		t.Helper()
		index++
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
	for _, c := range []kv.Command{
		{Op: kv.OpSet, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("v")}},
		{Op: kv.OpIncrBy, Int: 2, NowMS: 1, Args: [][]byte{[]byte("n")}},
		{Op: kv.OpSAdd, NowMS: 1, Args: [][]byte{[]byte("s"), []byte("m")}},
		kv.RedisCommand([]byte("l"), 1, [][]byte{[]byte("RPUSH"), []byte("l"), []byte("a")}),
		kv.TxnCommand([]byte("l"), 1, nil, [][][]byte{{[]byte("ZADD"), []byte("z"), []byte("1"), []byte("m")}}),
	} {
		if r := apply(c); r.Err != nil {
			t.Fatalf("%s: %v", c.Op, r.Err)
		}
	}
	batch := stream.Batch{Stream: 9, Cluster: "c", Changes: []stream.Change{{Index: 1, Data: kv.Command{Op: kv.OpSet, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("w")}}.Encode()}}}
	enc, err := batch.Encode()
	if err != nil {
		t.Fatal(err)
	}
	chunk := stream.Chunk{Stream: 9, Cluster: "c", Index: 1, Last: true}
	chunkEnc, err := chunk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stamp := kv.ActiveStamp{Region: "r", Time: hlc.Timestamp{WallMS: 1}}
	activeZAdd, err := kv.ActiveRedisCommand(kv.RedisCommand([]byte("z"), 1, [][]byte{[]byte("ZADD"), []byte("z"), []byte("2"), []byte("m")}), stamp, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []kv.Command{
		activeZAdd,
		kv.RoleCommand(kv.Role{Epoch: 1, Primary: true}, 0, 0, 0),
		{Op: kv.OpStreamApply, Args: [][]byte{enc}},
		{Op: kv.OpStreamChunk, Args: [][]byte{chunkEnc}},
		kv.StreamCursorCommand(9, 5),
		kv.ActiveCommand(kv.OpActiveSet, stamp, 1, []byte("k"), []byte("w"), nil),
		kv.ActiveCommand(kv.OpActiveIncr, stamp, 1, []byte("n")),
		{Op: kv.OpActiveMerge, NowMS: 1, Args: [][]byte{[]byte("k"), {1}}},
		kv.KnowCommand("r", nil, 1),
		kv.GCCommand([]string{"r"}, 1),
	} {
		if r := apply(c); !errors.Is(r.Err, kv.ErrRefused) || !errors.Is(r.Err, kv.ErrBadCommand) {
			t.Errorf("%s applied by a sync group: %+v", c.Op, r)
		}
	}
	if rec, ok, err := kv.Get(db, 5, []byte("k"), 1); err != nil || !ok || string(rec.Payload) != "v" {
		t.Fatalf("k after the refusals: %+v %v %v", rec, ok, err)
	}
	if r, err := kv.Query(db, 5, 1, [][]byte{[]byte("ZSCORE"), []byte("z"), []byte("m")}, false); err != nil || r.Kind != kv.ReplyDouble || r.Float != 1 {
		t.Fatalf("z after the refusals: %+v %v", r, err)
	}
	if role, err := kv.LoadRole(db, 5); err != nil || role != (kv.Role{}) {
		t.Fatalf("a sync group took a role: %v %v", role, err)
	}
	if c, _, err := db.Cursor(5, 9); err != nil || c.Index != 0 {
		t.Fatalf("a sync group took a stream: %+v %v", c, err)
	}
}
