package kv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// batchApply applies commands through one batch, as the host applies a
// round's committed entries, commits it and tells the state machine
// (Applied); it returns each result.
func (e *engine) batchApply(sm *StateMachine, cmds ...Command) []Result {
	e.t.Helper()
	b := e.db.NewBatch()
	out := make([]Result, len(cmds))
	for i, c := range cmds {
		e.index++
		v, err := sm.Apply(b, e.index, c.Encode())
		if err != nil {
			b.Close()
			e.t.Fatalf("%s: fatal: %v", c.Op, err)
		}
		out[i] = v.(Result)
	}
	if err := b.Commit(false); err != nil {
		e.t.Fatal(err)
	}
	if err := sm.Applied(e.index, false); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *engine) redis(words ...string) Command {
	argv := args(words...)
	return RedisCommand(argv[1], e.now, argv)
}

func (e *engine) set(k, v string) Command {
	return Command{Op: OpSet, NowMS: e.now, Args: args(k, v)}
}

// TestKnownFactsFollowTheBatch: a plain SET or MSET skips looking up the
// record it replaces while the group holds no list or sorted set, and
// writes take the group's role from what the state machine read earlier
// in the batch. Whatever creates a collection or changes the role in the
// batch (an op that is not a plain data op), or in the group's data
// between batches, is seen by the next write: a string written over a
// list drops the list's elements, and a write of a superseded epoch is
// refused.
func TestKnownFactsFollowTheBatch(t *testing.T) {
	e := newEngine(t)
	// In one batch: the group learns it holds no collection, a list is
	// made, then a SET and an MSET replace lists.
	res := e.batchApply(e.sm,
		e.set("a", "1"),
		e.redis("rpush", "l1", "x", "y", "z"),
		e.redis("rpush", "l2", "x", "y"),
		e.set("l1", "string"),
		Command{Op: OpMSet, NowMS: e.now, Args: args("b", "2", "l2", "string")},
	)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	if n := e.elements(); n != 0 {
		t.Fatalf("%d elements left of the lists a SET and an MSET replaced in the batch that made them", n)
	}
	e.expect("get l1", `"string"`, "get l2", `"string"`, "get a", `"1"`, "get b", `"2"`)

	// Between batches, another writer of the group's data (here another
	// state machine of the same group, as a restore or a snapshot would
	// be) makes a list; this state machine's next batch sees it.
	e = newEngine(t)
	e.batchApply(e.sm, e.set("c", "3")) // known: no collection
	other := &StateMachine{Group: e.sm.Group}
	e.batchApply(other, e.redis("rpush", "l3", "p", "q"))
	e.batchApply(e.sm, e.set("l3", "string"))
	if n := e.elements(); n != 0 {
		t.Fatalf("%d elements left of a list made between batches and replaced by a SET", n)
	}

	// The role: a write reads it (and keeps it for the batch); a role
	// change in the same batch is seen by the write after it.
	h := newHarness(t)
	b := h.db.NewBatch()
	defer b.Close()
	apply := func(c Command) Result {
		t.Helper()
		v, err := h.sm.Apply(b, 1, c.Encode())
		if err != nil {
			t.Fatal(err)
		}
		return v.(Result)
	}
	if r := apply(RoleCommand(Role{Epoch: 1, Primary: true}, 0, 0, 0)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(Command{Op: OpSet, Epoch: 1, NowMS: 1, Args: args("k", "v")}); r.Err != nil {
		t.Fatalf("write at the primary's epoch: %v", r.Err)
	}
	if r := apply(RoleCommand(Role{Epoch: 2}, 0, 0, 0)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(Command{Op: OpSet, Epoch: 1, NowMS: 1, Args: args("k", "w")}); !errors.Is(r.Err, ErrStaleEpoch) {
		t.Fatalf("write of the old epoch after the role changed in the same batch: %v, want %v", r.Err, ErrStaleEpoch)
	}
	if r := apply(Command{Op: OpMSet, Epoch: 1, NowMS: 1, Args: args("k", "w")}); !errors.Is(r.Err, ErrStaleEpoch) {
		t.Fatalf("MSET of the old epoch after the role changed in the same batch: %v, want %v", r.Err, ErrStaleEpoch)
	}
}

// TestKnownFactsCarryOver: the facts read through a batch serve the next
// batch only if it follows on from a committed one: its first entry is the
// next index and Applied reached the last. A gap (an entry that was not a
// command, or a snapshot), a batch never committed, Applied short of the
// last, a restore or an op that is not a plain data op makes the next
// write read them again.
func TestKnownFactsCarryOver(t *testing.T) {
	e := newEngine(t)
	reads := func() int { return e.sm.known.reads }
	e.batchApply(e.sm, e.set("a", "1"))
	if reads() != 2 {
		t.Fatalf("%d facts read by the first write, want 2 (role, collections)", reads())
	}
	e.batchApply(e.sm, e.set("b", "2"), e.set("c", "3"))
	e.batchApply(e.sm, Command{Op: OpMSet, NowMS: e.now, Args: args("d", "4", "e", "5")})
	if reads() != 2 {
		t.Fatalf("%d facts read after two more committed batches in a row, want still 2", reads())
	}

	step := func(what string, before func()) {
		t.Helper()
		before()
		n := reads()
		e.batchApply(e.sm, e.set("f", what))
		if reads() != n+2 {
			t.Fatalf("%s: the next write read %d facts, want 2", what, reads()-n)
		}
	}
	step("gap", func() { e.index++ })
	step("restored", func() {
		if err := e.sm.Applied(e.index, true); err != nil {
			t.Fatal(err)
		}
	})
	step("not committed", func() {
		b := e.db.NewBatch()
		if _, err := e.sm.Apply(b, e.index+1, e.set("g", "lost").Encode()); err != nil {
			t.Fatal(err)
		}
		b.Close() // never committed (Applied not told)
		e.index++ // the next batch starts at the index after it
	})
	step("applied short of the last", func() {
		b := e.db.NewBatch()
		e.index++
		if _, err := e.sm.Apply(b, e.index, e.set("g", "1").Encode()); err != nil {
			t.Fatal(err)
		}
		e.index++
		if _, err := e.sm.Apply(b, e.index, e.set("g", "2").Encode()); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		// Told of the first entry only: the batch holding the second is
		// not known to be committed.
		if err := e.sm.Applied(e.index-1, false); err != nil {
			t.Fatal(err)
		}
	})
	step("non-plain op", func() {
		e.batchApply(e.sm, e.redis("rpush", "l0", "x"))
		e.batchApply(e.sm, e.redis("del", "l0"))
	})
	// (A list made across a gap by another writer: TestKnownFactsFollowTheBatch.)
}

// TestKnownFactsCarryAgreesWithFreshMachines: random runs of batches
// (plain SETs, MSETs and deletes over keys that lists and sorted sets use
// too; pushes and ZADDs; batches whose commit the machine is not told of,
// some of them never committed, with a role change; gaps; another writer
// of the group's data across a gap, as a snapshot would be) leave the
// same data and elements in a state machine that keeps its facts from
// batch to batch as in one made afresh for every batch, which reads them
// every time.
func TestKnownFactsCarryAgreesWithFreshMachines(t *testing.T) {
	keys := []string{"a", "b", "l", "z"}
	for seed := uint64(1); seed <= 100; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		keep, fresh := newEngine(t), newEngine(t)
		// Half the runs make no list or sorted set themselves: their
		// group's collections come only from the other writer.
		kinds := 4
		if seed%2 == 0 {
			kinds = 6
		}
		draw := func() Command {
			k, v := keys[rng.IntN(len(keys))], fmt.Sprint(rng.IntN(100))
			switch rng.IntN(kinds) {
			case 0, 1:
				return keep.set(k, v)
			case 2:
				return Command{Op: OpMSet, NowMS: keep.now, Args: args(k, v, keys[rng.IntN(len(keys))], v)}
			case 3:
				return Command{Op: OpDelete, NowMS: keep.now, Args: args(k)}
			case 4:
				return keep.redis("rpush", k, v, v)
			}
			return keep.redis("zadd", k, v, "m"+v)
		}
		run := func(e *engine, sm *StateMachine, cmds []Command, tell, discard bool) {
			t.Helper()
			b := e.db.NewBatch()
			for _, c := range cmds {
				e.index++
				if _, err := sm.Apply(b, e.index, c.Encode()); err != nil {
					b.Close()
					t.Fatalf("seed %d: %s: %v", seed, c.Op, err)
				}
			}
			if discard {
				b.Close() // never committed: what it read must not serve the next batch
				return
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			if tell {
				if err := sm.Applied(e.index, false); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := range 60 {
			gap, other, tell := rng.IntN(8) == 0, rng.IntN(4) == 0, rng.IntN(6) != 0
			discard := !tell && rng.IntN(2) == 0
			var cmds []Command
			if discard && rng.IntN(2) == 0 {
				// A role change in a batch never committed: the writes
				// after it in the batch read the new role; the next batch
				// must read the stored one.
				cmds = append(cmds, RoleCommand(Role{Epoch: 1, Primary: true}, 0, 0, 0))
			}
			for range 1 + rng.IntN(4) {
				cmds = append(cmds, draw())
			}
			push := keep.redis("rpush", keys[rng.IntN(len(keys))], "o")
			for _, e := range []*engine{keep, fresh} {
				if gap {
					e.index++
				}
				if other {
					run(e, &StateMachine{Group: e.sm.Group}, []Command{push}, false, false)
				}
				sm := e.sm
				if e == fresh {
					sm = &StateMachine{Group: e.sm.Group}
				}
				run(e, sm, cmds, tell, discard)
			}
			if k, f := keep.contents(), fresh.contents(); k != f {
				t.Fatalf("seed %d, batch %d: the machine keeping its facts holds\n%s\nthe fresh ones\n%s", seed, i, k, f)
			}
		}
	}
}

// contents lists the group's data and elements.
func (e *engine) contents() string {
	var out strings.Builder
	if err := e.db.Scan(e.sm.Group, nil, nil, func(k, v []byte) bool {
		fmt.Fprintf(&out, "d %q=%x\n", k, v)
		return true
	}); err != nil {
		e.t.Fatal(err)
	}
	r := e.db.NewReader()
	defer r.Close()
	if err := r.ScanElements(e.sm.Group, func(k, v []byte) bool {
		fmt.Fprintf(&out, "e %x=%x\n", k, v)
		return true
	}); err != nil {
		e.t.Fatal(err)
	}
	return out.String()
}

// TestBatchSeqUnique: every batch has its own non-zero number.
func TestBatchSeqUnique(t *testing.T) {
	e := newEngine(t)
	seen := map[uint64]bool{}
	for range 100 {
		b := e.db.NewBatch()
		if b.Seq() == 0 || seen[b.Seq()] {
			t.Fatalf("batch number %d repeated or zero", b.Seq())
		}
		seen[b.Seq()] = true
		b.Close()
	}
}
