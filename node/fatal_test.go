package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
)

// readFaults fails every read of a node's table files while on.
type readFaults struct{ on atomic.Bool }

func (f *readFaults) MaybeError(op errorfs.Op) error {
	if f.on.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsRead && strings.HasSuffix(op.Path, ".sst") {
		return errorfs.ErrInjected
	}
	return nil
}

func (f *readFaults) String() string { return "sst read faults" }

// TestStorageFaultInApplyStopsNode injects a storage read fault into one
// replica's Apply (Pebble's errorfs fails its table reads while writes
// that read what they replace go on): that node stops (Fatal fires, it
// takes no more writes) without applying anything after the fault, and
// the other two replicas keep taking writes, hold every acknowledged one
// and agree.
func TestStorageFaultInApplyStopsNode(t *testing.T) {
	faults := map[uint64]*readFaults{}
	c := testcluster.New(t, testcluster.Options{FS: func(id uint64) vfs.FS {
		f := &readFaults{}
		faults[id] = f
		return errorfs.Wrap(vfs.NewMem(), f)
	}})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "k", Shards: 1, Replicas: 3})
	group := ks.Shards[0].Group
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := c.Leader(group)
	ln := c.Node(leader)
	for i := range 20 {
		if _, err := ln.Put(ctx, "k", fmt.Appendf(nil, "pre%d", i), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	var x uint64 // the faulty node: a follower of the group
	for _, id := range ks.Shards[0].Replicas {
		if id != leader {
			x = id
			break
		}
	}
	xn := c.Node(x)
	st, _ := ln.Host().Status(group)
	if err := xn.Host().WaitApplied(ctx, group, st.Applied); err != nil {
		t.Fatal(err)
	}
	// Its data goes to table files, then its reads of them fail.
	if err := xn.Storage().Flush(); err != nil {
		t.Fatal(err)
	}
	faults[x].on.Store(true)

	// Writes through the leader, before and after the faulty node stops.
	acked := map[string]string{}
	var firstIndex uint64 // the log index of the first write of the fault
	writes := func(from, to int) {
		for i := from; i < to; i++ {
			k, v := fmt.Sprintf("pre%d", i%20), fmt.Sprintf("new%d", i)
			if i%2 == 1 {
				k = fmt.Sprintf("post%d", i)
			}
			// SET ... GET reads the record it replaces (a plain SET reads
			// nothing once its group's facts are known: kv's knownFacts).
			_, a, err := ln.Write(ctx, "k", kv.Command{Op: kv.OpSet, Flags: kv.FlagGet, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte(k), []byte(v)}})
			if err != nil {
				t.Errorf("write %s through the leader: %v", k, err)
				return
			}
			if firstIndex == 0 {
				firstIndex = a.Index
			}
			acked[k] = v
		}
	}
	writes(0, 10)
	var ferr error
	select {
	case ferr = <-xn.Fatal():
	case <-ctx.Done():
		t.Fatal("the node with failing storage reads did not stop")
	}
	if !errors.Is(ferr, storage.ErrIO) || !strings.Contains(ferr.Error(), errorfs.ErrInjected.Error()) {
		t.Fatalf("fatal error %v, want the injected storage read error", ferr)
	}
	stopped, _ := xn.Host().Status(group)
	writes(10, 60)
	if t.Failed() {
		return
	}
	if _, err := xn.Put(ctx, "k", []byte("late"), []byte("x")); !errors.Is(err, raftgroup.ErrStopped) {
		t.Fatalf("write through the stopped node: %v, want ErrStopped", err)
	}

	// The healthy replicas agree and hold every acknowledged write.
	idx, err := ln.Host().ReadIndex(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var healthy [][]string
	for _, id := range ks.Shards[0].Replicas {
		if id == x {
			continue
		}
		n := c.Node(id)
		if err := n.Host().WaitApplied(ctx, group, idx); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixMilli()
		for k, v := range acked {
			rec, ok, err := kv.Get(n.Storage(), group, []byte(k), now)
			if err != nil || !ok || string(rec.Payload) != v {
				t.Fatalf("node %d: acknowledged %s=%s reads %q %v %v", id, k, v, rec.Payload, ok, err)
			}
		}
		healthy = append(healthy, dump(t, n.Storage(), group))
	}
	if strings.Join(healthy[0], "\n") != strings.Join(healthy[1], "\n") {
		t.Fatalf("the healthy replicas differ:\n%v\n%v", healthy[0], healthy[1])
	}

	// The faulty node applied nothing after the fault: its durable applied
	// index is where it stopped, before the first write of the fault, and
	// its data is what it was.
	faults[x].on.Store(false)
	ls, err := xn.Storage().LoadLogStore(group)
	if err != nil {
		t.Fatal(err)
	}
	if got := ls.Applied().Index; got != stopped.Applied || got >= firstIndex {
		t.Fatalf("faulty node: applied %d on disk, %d when it stopped; the fault began at entry %d", got, stopped.Applied, firstIndex)
	}
	rec, ok, err := kv.Get(xn.Storage(), group, []byte("pre0"), time.Now().UnixMilli())
	if err != nil || !ok || string(rec.Payload) != "old" {
		t.Fatalf("faulty node: pre0=%q %v %v, want its value from before the fault", rec.Payload, ok, err)
	}
	for k := range acked {
		if strings.HasPrefix(k, "post") {
			if _, ok, _ := kv.Get(xn.Storage(), group, []byte(k), time.Now().UnixMilli()); ok {
				t.Fatalf("faulty node holds %s, written after the fault", k)
			}
		}
	}
	t.Logf("node %d stopped at applied %d (first write of the fault at %d); %d acknowledged writes, all on the 2 healthy replicas, which agree (%d keys); %v",
		x, stopped.Applied, firstIndex, 60, len(healthy[0]), ferr)
}

// dump lists a group's data as "key=value" lines.
func dump(t *testing.T, db *storage.DB, group uint64) []string {
	t.Helper()
	var out []string
	if err := db.Scan(group, nil, nil, func(k, v []byte) bool {
		out = append(out, fmt.Sprintf("%s=%x", bytes.Clone(k), v))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
