package kv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/meridian-db/meridian/stream"
)

func (h *harness) mustRole(r Role, watch, initSrc, initIdx uint64) Result {
	h.t.Helper()
	res := h.apply(RoleCommand(r, watch, initSrc, initIdx))
	if res.Err != nil {
		h.t.Fatalf("role %v: %v", r, res.Err)
	}
	return res
}

func TestWritesNeedTheirEpochPrimary(t *testing.T) {
	h := newHarness(t)
	set := func(epoch uint64, k string) error {
		return h.apply(Command{Op: OpSet, Epoch: epoch, NowMS: 1, Args: args(k, "v")}).Err
	}
	// No role: a sync group; writes without an epoch apply, with one are
	// refused (the group was never made a primary).
	if err := set(0, "a"); err != nil {
		t.Fatal(err)
	}
	if err := set(1, "b"); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("epoch write to a group without a role: %v", err)
	}
	h.mustRole(Role{Epoch: 1, Primary: true}, 0, 0, 0)
	if err := set(1, "c"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		epoch uint64
		want  error
	}{{0, ErrStaleEpoch}, {2, ErrNotPrimary}} {
		if err := set(c.epoch, "x"); !errors.Is(err, c.want) {
			t.Fatalf("write at epoch %d: %v, want %v", c.epoch, err, c.want)
		}
	}
	h.mustRole(Role{Epoch: 1, Primary: true, Fenced: true}, 0, 0, 0)
	if err := set(1, "x"); !errors.Is(err, ErrFenced) {
		t.Fatalf("write while fenced: %v", err)
	}
	h.mustRole(Role{Epoch: 2}, 0, 0, 0)
	if err := set(1, "x"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale write to a former primary: %v", err)
	}
	if err := set(2, "x"); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("write to a replica: %v", err)
	}
	if _, ok := h.get("x", 1); ok {
		t.Fatal("a refused write was applied")
	}
	// Roles never go back.
	if res := h.apply(RoleCommand(Role{Epoch: 1, Primary: true}, 0, 0, 0)); !errors.Is(res.Err, ErrStaleEpoch) {
		t.Fatalf("role of an older epoch: %v", res.Err)
	}
	if r, _ := LoadRole(h.db, h.sm.Group); r != (Role{Epoch: 2}) {
		t.Fatalf("role %v", r)
	}
}

func batchCmd(t *testing.T, b stream.Batch) Command {
	t.Helper()
	enc, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return Command{Op: OpStreamApply, Args: [][]byte{enc}}
}

func TestStreamRefusals(t *testing.T) {
	h := newHarness(t)
	h.sm.Cluster = "c1"
	w := Command{Op: OpSet, Epoch: 1, NowMS: 1, Args: args("k", "v")}.Encode()
	batch := stream.Batch{Stream: 9, Epoch: 1, Cluster: "c1", Changes: []stream.Change{{Index: 1, Data: w}}}
	// Before the group has its role for epoch 1: retry later.
	if res := h.apply(batchCmd(t, batch)); !errors.Is(res.Err, ErrEpochAhead) {
		t.Fatalf("stream before the role: %v", res.Err)
	}
	h.mustRole(Role{Epoch: 1}, 0, 0, 0)
	other := batch
	other.Cluster = "c2"
	if res := h.apply(batchCmd(t, other)); !errors.Is(res.Err, stream.ErrWrongCluster) {
		t.Fatalf("stream from another cluster: %v", res.Err)
	}
	if _, ok := h.get("k", 1); ok {
		t.Fatal("a refused stream batch was applied")
	}
	if res := h.apply(batchCmd(t, batch)); res.Err != nil || res.N != 1 {
		t.Fatalf("stream batch: %+v", res)
	}
	// The group moves to epoch 2: epoch-1 batches are stale.
	h.mustRole(Role{Epoch: 2}, 0, 0, 0)
	stale := stream.Batch{Stream: 9, Epoch: 1, Cluster: "c1", Prev: 1, Changes: []stream.Change{{Index: 2, Data: w}}}
	if res := h.apply(batchCmd(t, stale)); !errors.Is(res.Err, stream.ErrStaleEpoch) {
		t.Fatalf("stale stream: %v", res.Err)
	}
	// A primary takes no stream of its own epoch.
	h.mustRole(Role{Epoch: 3, Primary: true}, 0, 0, 0)
	if res := h.apply(batchCmd(t, stream.Batch{Stream: 9, Epoch: 3, Cluster: "c1", Prev: 1})); !errors.Is(res.Err, ErrIsPrimary) {
		t.Fatalf("stream into a primary: %v", res.Err)
	}
	// The role command reports a stream's cursor, and can raise it.
	if res := h.mustRole(Role{Epoch: 4}, 9, 0, 0); res.N != 1 {
		t.Fatalf("watched cursor %d, want 1", res.N)
	}
	if res := h.mustRole(Role{Epoch: 4}, 9, 9, 50); res.N != 50 {
		t.Fatalf("cursor after init %d, want 50", res.N)
	}
	if res := h.mustRole(Role{Epoch: 4}, 9, 9, 20); res.N != 50 {
		t.Fatalf("an init never lowers a cursor: %d", res.N)
	}
}

// TestResyncChunksIdempotent applies a resync's chunks with duplicates,
// stale repeats and reordering, then the stream after it: the data always
// ends as the source's.
func TestResyncChunksIdempotent(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			h := newHarness(t)
			h.sm.Cluster = "c"
			h.mustRole(Role{Epoch: 1}, 0, 0, 0)
			// Stale data the resync must replace.
			h.apply(batchCmd(t, stream.Batch{Stream: 5, Epoch: 1, Cluster: "c", Changes: []stream.Change{
				{Index: 1, Data: Command{Op: OpSet, NowMS: 1, Args: args("old", "x")}.Encode()},
			}}))
			var chunks []Command
			want := map[string]string{}
			for i := range 4 {
				c := stream.Chunk{Stream: 7, Epoch: 1, Cluster: "c", Index: 40, Seq: uint64(i), Last: i == 3}
				for j := range 3 {
					k, v := fmt.Sprintf("k%d-%d", i, j), fmt.Sprintf("v%d", rng.IntN(100))
					c.Pairs = append(c.Pairs, []byte(k), Record{Type: TypeString, Payload: []byte(v)}.Encode())
					want[k] = v
				}
				enc, err := c.Encode()
				if err != nil {
					t.Fatal(err)
				}
				chunks = append(chunks, Command{Op: OpStreamChunk, Args: [][]byte{enc}})
			}
			// A sender delivers chunks in order, but any may be
			// repeated, and stale repeats of earlier ones may arrive
			// at any time; a refused chunk makes it start again.
			next, steps := 0, 0
			for next < len(chunks) {
				steps++
				if steps > 1000 {
					t.Fatal("resync never finished")
				}
				i := next
				if rng.IntN(3) == 0 {
					i = rng.IntN(len(chunks))
				}
				res := h.apply(chunks[i])
				switch {
				case i == next && res.Err == nil:
					next++
				case errors.Is(res.Err, stream.ErrGap):
					next = 0 // start over, as the sender does
				case i == 0 && res.Err == nil:
					next = 1 // a repeated first chunk restarted the resync
				case res.Err != nil:
					t.Fatalf("chunk %d: %v", i, res.Err)
				}
			}
			if _, ok := h.get("old", 1); ok {
				t.Fatal("the resync kept data the source does not have")
			}
			for k, v := range want {
				rec, ok := h.get(k, 1)
				if !ok || string(rec.Payload) != v {
					t.Fatalf("%s = %q %v, want %q", k, rec.Payload, ok, v)
				}
			}
			c, _, _ := h.db.Cursor(h.sm.Group, 7)
			if c.Index != 40 {
				t.Fatalf("cursor after the resync %d, want 40", c.Index)
			}
			// The stream continues after the resync point; a batch from
			// before it changes nothing.
			h.apply(batchCmd(t, stream.Batch{Stream: 7, Epoch: 1, Cluster: "c", Prev: 30, Changes: []stream.Change{
				{Index: 35, Data: Command{Op: OpSet, NowMS: 1, Args: args("k0-0", "stale")}.Encode()},
				{Index: 41, Data: Command{Op: OpSet, NowMS: 1, Args: args("new", "n")}.Encode()},
			}}))
			if rec, _ := h.get("k0-0", 1); string(rec.Payload) != want["k0-0"] {
				t.Fatal("a change before the resync point was applied")
			}
			if _, ok := h.get("new", 1); !ok {
				t.Fatal("the change after the resync point was not applied")
			}
		})
	}
}

func FuzzDecodeChunk(f *testing.F) {
	c := stream.Chunk{Stream: 1, Epoch: 2, Cluster: "c", Index: 3, Seq: 1, Pairs: [][]byte{[]byte("k"), []byte("v")}}
	enc, _ := c.Encode()
	f.Add(enc)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := stream.DecodeChunk(b)
		if err != nil {
			return
		}
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded chunk does not encode: %v", err)
		}
		c2, err := stream.DecodeChunk(enc)
		if err != nil || c2.Index != c.Index || c2.Seq != c.Seq || len(c2.Pairs) != len(c.Pairs) {
			t.Fatalf("round trip: %+v -> %+v %v", c, c2, err)
		}
	})
}

// TestRoleHistoryReplaysVerdicts: for every command of a log that goes
// through role changes, Admitted (what a stream source ships) agrees with
// what the state machine did when it applied it.
func TestRoleHistoryReplaysVerdicts(t *testing.T) {
	h := newHarness(t)
	rng := rand.New(rand.NewPCG(3, 7))
	roles := []Role{{Epoch: 1, Primary: true}, {Epoch: 1, Primary: true, Fenced: true}, {Epoch: 2}, {Epoch: 3, Primary: true}, {Epoch: 3, Primary: true, Fenced: true}, {Epoch: 4}}
	type entry struct {
		index uint64
		cmd   Command
		took  bool
	}
	var log []entry
	next := 0
	for i := uint64(1); i <= 300; i++ {
		var c Command
		if i%40 == 0 && next < len(roles) {
			c = RoleCommand(roles[next], 0, 0, 0)
			next++
		} else {
			c = Command{Op: OpSet, Epoch: uint64(rng.IntN(5)), NowMS: 1, Args: args(fmt.Sprint("k", i), "v")}
		}
		b := h.db.NewBatch()
		v, err := h.sm.Apply(b, i, c.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		log = append(log, entry{index: i, cmd: c, took: v.(Result).Err == nil})
	}
	history, err := RoleHistory(h.db, h.sm.Group)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != len(roles) {
		t.Fatalf("history of %d changes, want %d: %v", len(history), len(roles), history)
	}
	took, refused := 0, 0
	for _, e := range log {
		if e.cmd.Op == OpRole {
			continue
		}
		if got := Admitted(history, e.index, e.cmd); got != e.took {
			t.Fatalf("entry %d (epoch %d): Admitted %v, the state machine %v", e.index, e.cmd.Epoch, got, e.took)
		}
		if e.took {
			took++
		} else {
			refused++
		}
	}
	if took == 0 || refused == 0 {
		t.Fatalf("the log exercised nothing: %d took effect, %d refused", took, refused)
	}
}
