package strategy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/strategy/activeks"
	"github.com/meridian-db/meridian/strategy/asyncks"
	"github.com/meridian-db/meridian/strategy/syncks"
	"github.com/meridian-db/meridian/stream"
)

// clusterEnv is an Env that only knows the cluster's id: all a state
// machine needs.
type clusterEnv struct{ strategy.Env }

func (clusterEnv) Cluster() string { return "c" }

// dbEnv is a clusterEnv with the node's database (what the async
// primary's gate reads roles from) and clock.
type dbEnv struct {
	clusterEnv
	db *storage.DB
}

func (e dbEnv) DB() *storage.DB { return e.db }
func (dbEnv) Now() time.Time    { return time.Now() }

// machine is a strategy's state machine over an in-memory database.
type machine struct {
	t     *testing.T
	db    *storage.DB
	sm    raftgroup.StateMachine
	group uint64
	index uint64
}

func newMachine(t *testing.T, s strategy.Strategy, group uint64) *machine {
	t.Helper()
	db, err := storage.Open("/d", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &machine{t: t, db: db, sm: s.Machine(metadata.RegionalGroup{Group: group, Region: "r"}), group: group}
}

func (m *machine) apply(c kv.Command) kv.Result {
	m.t.Helper()
	m.index++
	b := m.db.NewBatch()
	v, err := m.sm.Apply(b, m.index, c.Encode())
	if err != nil {
		b.Close()
		m.t.Fatalf("%s: fatal %v", c.Op, err)
	}
	if err := b.Commit(false); err != nil {
		m.t.Fatal(err)
	}
	return v.(kv.Result)
}

// activeRecord is the stored record of an active keyspace's key, as an
// active group holds it (what a backup of one carries).
func activeRecord(t *testing.T, key, value string) []byte {
	t.Helper()
	m := newMachine(t, activeks.New(clusterEnv{}, nil), 50)
	stamp := kv.ActiveStamp{Region: "r", Time: hlc.Timestamp{WallMS: 1}}
	if r := m.apply(kv.ActiveCommand(kv.OpActiveSet, stamp, 1, []byte(key), []byte(value), nil)); r.Err != nil {
		t.Fatalf("active set: %v", r.Err)
	}
	rec, ok, err := kv.Get(m.db, 50, []byte(key), 1)
	if err != nil || !ok || rec.Type != kv.TypeActive {
		t.Fatalf("active record: %+v %v %v", rec, ok, err)
	}
	return rec.Encode()
}

// TestEveryStrategyAdmitsRestoreChunks: a restore loads a hidden
// keyspace's groups through their logs (kv.OpRestoreChunk, numbered
// chunks), whatever the keyspace's strategy, so every strategy's state
// machine applies them: chunk 1 loads its records, chunk 1 again changes
// nothing, a chunk out of order is refused. An async keyspace is restored
// into its primary's group and its replicas get the chunks by stream; the
// primary's gate lets them through whatever the group's role. An active
// group ships nothing of them (every region's group is loaded itself).
func TestEveryStrategyAdmitsRestoreChunks(t *testing.T) {
	plain := kv.Record{Type: kv.TypeString, Payload: []byte("v")}.Encode()
	for _, tc := range []struct {
		name   string
		s      strategy.Strategy
		record []byte
	}{
		{"sync", syncks.New(clusterEnv{}), plain},
		{"async", asyncks.New(clusterEnv{}, nil), plain},
		{"active", activeks.New(clusterEnv{}, nil), activeRecord(t, "k", "v")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.s.Ops().Admits(kv.OpRestoreChunk) {
				t.Fatalf("the %s strategy does not admit restore chunks", tc.name)
			}
			m := newMachine(t, tc.s, 7)
			chunk := kv.RestoreChunkCommand("r1", 1, kv.RestoreChunk{Pairs: [][]byte{[]byte("k"), tc.record}})
			if r := m.apply(chunk); r.Err != nil || r.N != 1 {
				t.Fatalf("chunk 1: %+v", r)
			}
			rec, ok, err := kv.Get(m.db, 7, []byte("k"), 1)
			if err != nil || !ok || string(rec.Encode()) != string(tc.record) {
				t.Fatalf("k after chunk 1: %+v %v %v", rec, ok, err)
			}
			again := kv.RestoreChunkCommand("r1", 1, kv.RestoreChunk{Pairs: [][]byte{[]byte("k2"), tc.record}})
			if r := m.apply(again); r.Err != nil || r.N != 1 {
				t.Fatalf("chunk 1 again: %+v", r)
			}
			if _, ok, _ := kv.Get(m.db, 7, []byte("k2"), 1); ok {
				t.Fatal("chunk 1 applied twice")
			}
			gap := kv.RestoreChunkCommand("r1", 3, kv.RestoreChunk{Pairs: [][]byte{[]byte("k3"), tc.record}})
			if r := m.apply(gap); !errors.Is(r.Err, kv.ErrRestoreGap) || r.N != 1 {
				t.Fatalf("chunk 3 after 1: %+v", r)
			}
			if _, ok, _ := kv.Get(m.db, 7, []byte("k3"), 1); ok {
				t.Fatal("a chunk out of order was applied")
			}
		})
	}

	t.Run("async replicas by stream", func(t *testing.T) {
		// The primary's gate: its group is the primary, but this node
		// holds no primary lease, so a client write is stopped; a restore
		// chunk is not.
		primary := newMachine(t, asyncks.New(clusterEnv{}, nil), 7)
		if r := primary.apply(kv.RoleCommand(kv.Role{Epoch: 1, Primary: true}, 0, 0, 0)); r.Err != nil {
			t.Fatalf("role: %v", r.Err)
		}
		s := asyncks.New(dbEnv{db: primary.db}, nil)
		g := strategy.GroupInfo{Keyspace: "q", Strategy: metadata.Async, Group: 7, Primary: true, RPOBudgetMS: 1}
		set := kv.Command{Op: kv.OpSet, Epoch: 1, NowMS: 1, Args: [][]byte{[]byte("k"), []byte("v")}}.Encode()
		if err := s.Gate(context.Background(), g, set); !errors.Is(err, asyncks.ErrPrimaryLease) {
			t.Fatalf("a write passed the gate of a primary without its lease: %v", err)
		}
		chunk := kv.RestoreChunkCommand("r1", 1, kv.RestoreChunk{Pairs: [][]byte{[]byte("k"), plain}}).Encode()
		if err := s.Gate(context.Background(), g, chunk); err != nil {
			t.Fatalf("the primary's gate stopped a restore chunk: %v", err)
		}
		// A replica applies the chunk the primary's stream ships.
		replica := newMachine(t, s, 8)
		if r := replica.apply(kv.RoleCommand(kv.Role{Epoch: 1}, 0, 0, 0)); r.Err != nil {
			t.Fatalf("role: %v", r.Err)
		}
		batch := stream.Batch{Stream: 7, Epoch: 1, Cluster: "c", Changes: []stream.Change{{Index: 3, Data: chunk}}}
		enc, err := batch.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if r := replica.apply(kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}); r.Err != nil {
			t.Fatalf("stream batch with a restore chunk: %+v", r)
		}
		if rec, ok, err := kv.Get(replica.db, 8, []byte("k"), 1); err != nil || !ok || string(rec.Payload) != "v" {
			t.Fatalf("k at the replica: %+v %v %v", rec, ok, err)
		}
	})

	t.Run("active streams ship none", func(t *testing.T) {
		m := newMachine(t, activeks.New(clusterEnv{}, nil), 9)
		chunk := kv.RestoreChunkCommand("r1", 1, kv.RestoreChunk{Pairs: [][]byte{[]byte("k"), activeRecord(t, "k", "v")}}).Encode()
		out, err := kv.ActiveChange(m.db, 9, 1, chunk)
		if err != nil || out != nil {
			t.Fatalf("an active group's stream ships %d bytes of a restore chunk (%v)", len(out), err)
		}
	})
}
