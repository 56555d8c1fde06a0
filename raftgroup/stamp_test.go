package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/hlc"
)

func stampedCluster(t *testing.T, compact uint64, skew map[uint64]int64) (*localNet, []*testNode) {
	t.Helper()
	n := newLocalNet()
	n.stamps, n.skewMS = true, skew
	var nodes []*testNode
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, startNode(t, n, id, vfs.NewMem(), compact))
	}
	return n, nodes
}

// readAll reads a node's applied log in (from, applied].
func readAll(t *testing.T, tn *testNode, from uint64) []LogEntry {
	t.Helper()
	to := tn.host.group(7).store.Applied().Index
	var out []LogEntry
	for from < to {
		ents, err := tn.host.ReadCommitted(7, from, to, 1<<16)
		if err != nil {
			t.Fatalf("node %d: read from %d: %v", tn.id, from, err)
		}
		out = append(out, ents...)
		from = ents[len(ents)-1].Index
	}
	return out
}

// TestStampsNeverDecreaseAcrossLeaders: the leader stamps every entry;
// when leadership moves to a node whose clock is two seconds behind, the
// stamps along the log still never decrease, on every replica.
func TestStampsNeverDecreaseAcrossLeaders(t *testing.T) {
	n, nodes := stampedCluster(t, 0, map[uint64]int64{1: 1000, 2: -1000, 3: -1000})
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	moveLeader := func(to uint64) {
		n.whileTicking(func() {
			for ctx.Err() == nil {
				lead := leaderOf(nodes)
				if lead == to {
					return
				}
				if lead != 0 {
					_ = nodes[lead-1].host.TransferLeader(ctx, 7, to)
				}
				time.Sleep(time.Millisecond)
			}
		})
		if leaderOf(nodes) != to {
			t.Fatalf("leadership did not move to %d", to)
		}
	}
	// Node 1's clock runs a second ahead: it writes first.
	moveLeader(1)
	start := nodes[0].host.group(7).store.Applied().Index
	for i := range 30 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "a%d=%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	// Then node 2, whose clock is two seconds behind those stamps.
	moveLeader(2)
	for i := range 30 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "b%d=%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readIndex(ctx, nodes[0]); err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes {
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatal(err)
		}
		var prev hlc.Timestamp
		cmds := 0
		for _, e := range readAll(t, tn, start) {
			if e.Command == nil {
				continue
			}
			cmds++
			if e.Stamp.IsZero() {
				t.Fatalf("node %d: entry %d carries no stamp", tn.id, e.Index)
			}
			if e.Stamp.Less(prev) {
				t.Fatalf("node %d: entry %d stamped %s after %s", tn.id, e.Index, e.Stamp, prev)
			}
			prev = e.Stamp
		}
		if cmds != 60 {
			t.Fatalf("node %d: %d commands, want 60", tn.id, cmds)
		}
		if st, _ := tn.host.Status(7); st.AppliedStamp.Less(prev) {
			t.Fatalf("node %d: applied stamp %s below the last entry's %s", tn.id, st.AppliedStamp, prev)
		}
	}
}

// TestMarkSealsATime: a mark after T is stamped after T and after every
// entry before it, carries no command, and what follows is stamped after
// it; on a host without stamps Mark is refused.
func TestMarkSealsATime(t *testing.T) {
	n, nodes := stampedCluster(t, 0, nil)
	defer func() { stopAll(n, nodes) }()
	leader := nodes[waitLeader(t, nodes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := propose(ctx, t, nodes, []byte("x=1"))
	if err != nil {
		t.Fatal(err)
	}
	// A time 300 ms ahead of the leader's clock (a coordinator whose clock
	// runs ahead, within the offset).
	after := hlc.Timestamp{WallMS: n.clock.Now().UnixMilli() + 300, Logical: 7}
	idx, stamp, err := leader.host.Mark(ctx, 7, after)
	if err != nil {
		t.Fatal(err)
	}
	if idx <= r.Index || !after.Less(stamp) {
		t.Fatalf("mark at %d stamped %s; want after index %d and after %s", idx, stamp, r.Index, after)
	}
	r2, err := propose(ctx, t, nodes, []byte("y=2"))
	if err != nil {
		t.Fatal(err)
	}
	ents := readAll(t, leader, r.Index-1)
	var mark, write LogEntry
	for _, e := range ents {
		switch e.Index {
		case idx:
			mark = e
		case r2.Index:
			write = e
		}
	}
	if mark.Command != nil || mark.Stamp != stamp {
		t.Fatalf("mark read back as %+v, want no command and stamp %s", mark, stamp)
	}
	if !stamp.Less(write.Stamp) {
		t.Fatalf("write after the mark stamped %s, not after %s", write.Stamp, stamp)
	}
	// The state machine never saw the mark: its data is the two writes.
	if v, ok, _ := leader.db.Get(7, []byte("y")); !ok || string(v) != "2" {
		t.Fatalf("y=%q %v", v, ok)
	}

	plain, pnodes := startCluster(t, 0)
	defer func() { stopAll(plain, pnodes) }()
	pl := pnodes[waitLeader(t, pnodes)-1]
	if _, _, err := pl.host.Mark(ctx, 7, after); !errors.Is(err, ErrNoStamps) {
		t.Fatalf("mark without stamps: %v, want ErrNoStamps", err)
	}
}

// TestUnstampedLogStillApplies: a log written by hosts without stamps
// (envelope version 1) is applied and read back by hosts that stamp, and
// their new entries follow it stamped.
func TestUnstampedLogStillApplies(t *testing.T) {
	n, nodes := startCluster(t, 0)
	waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 20 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "old%d=%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	fss := []vfs.FS{nodes[0].fs, nodes[1].fs, nodes[2].fs}
	stopAll(n, nodes)
	n.stamps = true
	for i := range nodes {
		nodes[i] = startNode(t, n, uint64(i+1), fss[i], 0)
	}
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	for i := range 20 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "new%d=%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range nodes {
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatal(err)
		}
		var old, stamped int
		for _, e := range readAll(t, tn, bootstrapIndex) {
			switch {
			case e.Command == nil:
			case bytes.HasPrefix(e.Command, []byte("old")) && e.Stamp.IsZero():
				old++
			case bytes.HasPrefix(e.Command, []byte("new")) && !e.Stamp.IsZero():
				stamped++
			default:
				t.Fatalf("node %d: entry %d %q stamped %s", tn.id, e.Index, e.Command, e.Stamp)
			}
		}
		if old != 20 || stamped != 20 {
			t.Fatalf("node %d: %d unstamped old and %d stamped new commands, want 20 and 20", tn.id, old, stamped)
		}
		for _, k := range []string{"old19", "new19"} {
			if v, ok, _ := tn.db.Get(7, []byte(k)); !ok || string(v) != "19" {
				t.Fatalf("node %d: %s=%q %v", tn.id, k, v, ok)
			}
		}
	}
}

// TestEnvelopeOfANewerBinaryIsFatal: an entry whose envelope has the
// magic and a later version stops every replica that applies it, before
// anything of it is applied.
func TestEnvelopeOfANewerBinaryIsFatal(t *testing.T) {
	n, nodes := stampedCluster(t, 0, nil)
	defer func() { stopAll(n, nodes) }()
	leader := nodes[waitLeader(t, nodes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad := append(append([]byte{}, envelopeMagic...), 3, 0)
	bad = append(bad, make([]byte, 40)...)
	id := leader.host.newID()
	done := make(chan error, 1)
	go func() {
		_, err := leader.host.submit(ctx, 7, id, func(g *group) error { return g.rn.Propose(bad) })
		done <- err
	}()
	for ticks := 0; ; ticks++ {
		select {
		case err := <-leader.fatal:
			if !errors.Is(err, ErrEnvelope) {
				t.Fatalf("fatal error %v, want ErrEnvelope", err)
			}
			if err := <-done; !errors.Is(err, ErrStopped) {
				t.Fatalf("the proposal ended with %v, want an unknown outcome (ErrStopped)", err)
			}
			if v, ok, _ := leader.db.Get(7, bad); ok {
				t.Fatalf("something of the entry was applied: %q", v)
			}
			return
		default:
		}
		if ticks > maxElectionTicks {
			t.Fatal("the leader did not stop on an envelope of a later version")
		}
		n.tick(1)
	}
}

// TestRetainForKeepsTheLowest: two holders of a group's log; the log keeps
// what the more demanding one needs until it lets go.
func TestRetainForKeepsTheLowest(t *testing.T) {
	n, nodes := stampedCluster(t, 40, nil)
	defer func() { stopAll(n, nodes) }()
	leader := nodes[waitLeader(t, nodes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := leader.host.group(7).store.Applied().Index
	if err := leader.host.RetainFor(7, "archive", start); err != nil {
		t.Fatal(err)
	}
	if err := leader.host.RetainFrom(7, start+150); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := leader.host.Status(7); st.FirstIndex > start+1 {
		t.Fatalf("log truncated to %d while a holder keeps %d", st.FirstIndex, start)
	}
	if err := leader.host.RetainFor(7, "archive", 0); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "m%d=v", i)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := leader.host.Status(7)
	if st.FirstIndex <= start+1 || st.FirstIndex > start+151 {
		t.Fatalf("log starts at %d; want truncated past %d but keeping %d", st.FirstIndex, start+1, start+151)
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := rapid.Uint64().Draw(t, "id")
		cmd := rapid.SliceOf(rapid.Byte()).Draw(t, "cmd")
		stamp := hlc.Timestamp{WallMS: rapid.Int64Range(0, 1<<50).Draw(t, "wall"), Logical: rapid.Uint32().Draw(t, "logical"), Node: rapid.Uint32().Draw(t, "node")}
		mark := !stamp.IsZero() && len(cmd) == 0 && rapid.Bool().Draw(t, "mark")
		env, ok, err := decodeEnvelope(encodeEnvelope(id, stamp, mark, cmd))
		if stamp.IsZero() && isMagicID(id) {
			return // version 1 with an id newID never hands out
		}
		if err != nil || !ok {
			t.Fatalf("decode: %v %v", ok, err)
		}
		if env.id != id || env.stamp != stamp || env.mark != mark || !bytes.Equal(env.cmd, cmd) {
			t.Fatalf("round trip gave %+v", env)
		}
	})
}

func isMagicID(id uint64) bool {
	var b [8]byte
	for i := range 8 {
		b[i] = byte(id >> (56 - 8*i))
	}
	return bytes.Equal(b[:7], envelopeMagic)
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope(7, hlc.Timestamp{}, false, []byte("k=v")))
	f.Add(encodeEnvelope(7, hlc.Timestamp{WallMS: 1, Logical: 2, Node: 3}, false, []byte("k=v")))
	f.Add(encodeEnvelope(7, hlc.Timestamp{WallMS: 1}, true, nil))
	f.Add(append(append([]byte{}, envelopeMagic...), 9))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ok, err := decodeEnvelope(data)
		if err != nil || !ok || env.stamp.IsZero() {
			return
		}
		again := encodeEnvelope(env.id, env.stamp, env.mark, env.cmd)
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding %x gave %x", data, again)
		}
	})
}
