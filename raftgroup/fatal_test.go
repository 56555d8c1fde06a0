package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// waitFatal waits for the host's OnFatal report.
func waitFatal(t *testing.T, tn *testNode) error {
	t.Helper()
	select {
	case err := <-tn.fatal:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("node %d did not stop", tn.id)
		return nil
	}
}

// storedApplied is the applied index a node's storage holds for group 7.
func storedApplied(t *testing.T, tn *testNode) uint64 {
	t.Helper()
	ls, err := tn.db.LoadLogStore(7)
	if err != nil {
		t.Fatal(err)
	}
	return ls.Applied().Index
}

// TestApplyErrorStopsReplica: a replica whose state machine cannot apply a
// committed command (Apply returns an error, as on a storage failure)
// stops, commits nothing of it and does not move its applied index, while
// the other replicas apply it and go on. Restarted with the fault gone, it
// applies the command from its log and catches up. When the leader is the
// one that fails, its waiting proposer learns that the outcome is unknown,
// and indeed the others apply the command.
func TestApplyErrorStopsReplica(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	leader := waitLeader(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 10 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v%d", i, i)); err != nil {
			t.Fatal(err)
		}
	}

	// A follower cannot apply writes of "poison".
	f := nodes[leader%3] // a node other than the leader
	f.sm.failOn("poison")
	r, err := propose(ctx, t, nodes, []byte("poison=1"))
	if err != nil {
		t.Fatalf("the healthy majority should apply the write: %v", err)
	}
	ferr := waitFatal(t, f)
	if !errors.Is(ferr, errApplyFault) {
		t.Fatalf("fatal error %v does not wrap the state machine's", ferr)
	}
	if !errors.Is(f.host.Err(), errApplyFault) {
		t.Fatalf("Err() = %v", f.host.Err())
	}
	if _, err := f.host.ReadIndex(ctx, 7); !errors.Is(err, ErrStopped) {
		t.Fatalf("read on the stopped replica: %v, want ErrStopped", err)
	}
	if got := storedApplied(t, f); got >= r.Index {
		t.Fatalf("the failed replica's applied index is %d, at or past the entry it could not apply (%d)", got, r.Index)
	}
	if _, ok, _ := f.db.Get(7, []byte("poison")); ok {
		t.Fatal("the failed replica stored the command it could not apply")
	}
	t.Logf("replica %d stopped at applied %d, before entry %d: %v", f.id, storedApplied(t, f), r.Index, ferr)

	// The other two keep going.
	var live []*testNode
	for _, tn := range nodes {
		if tn != f {
			live = append(live, tn)
		}
	}
	for i := range 10 {
		if _, err := propose(ctx, t, live, fmt.Appendf(nil, "after%d=%d", i, i)); err != nil {
			t.Fatalf("write %d after the fault: %v", i, err)
		}
	}
	for _, tn := range live {
		idx, err := readIndex(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"poison", "after9"} {
			if _, ok, _ := tn.db.Get(7, []byte(k)); !ok {
				t.Fatalf("node %d lacks %s at read index %d", tn.id, k, idx)
			}
		}
	}

	// Restarted without the fault, it applies the entry from its log.
	i := int(f.id - 1)
	fs := f.fs
	f.stop(n)
	nodes[i] = startNode(t, n, f.id, fs, 0)
	idx, err := readIndex(ctx, live[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := waitApplied(ctx, nodes[i], idx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"poison", "after9"} {
		if _, ok, _ := nodes[i].db.Get(7, []byte(k)); !ok {
			t.Fatalf("the restarted replica lacks %s", k)
		}
	}

	// Now the leader fails on a command: its proposer cannot know the
	// outcome, and the other replicas do apply it.
	leader = waitLeader(t, nodes)
	ln := nodes[leader-1]
	ln.sm.failOn("leaderpoison")
	_, err = ln.host.Propose(ctx, 7, []byte("leaderpoison=1"))
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrStopped) {
		t.Fatalf("proposer at the failing leader got %v, want ErrTimeout wrapping ErrStopped (outcome unknown)", err)
	}
	if err := waitFatal(t, ln); !errors.Is(err, errApplyFault) {
		t.Fatalf("fatal error %v", err)
	}
	live = live[:0]
	for _, tn := range nodes {
		if tn != ln {
			live = append(live, tn)
		}
	}
	if _, err := propose(ctx, t, live, []byte("final=1")); err != nil {
		t.Fatal(err)
	}
	for _, tn := range live {
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := tn.db.Get(7, []byte("leaderpoison")); !ok {
			t.Fatalf("node %d lacks the failed leader's replicated command", tn.id)
		}
	}
	if _, ok, _ := ln.db.Get(7, []byte("leaderpoison")); ok {
		t.Fatal("the failed leader stored the command it could not apply")
	}
}
