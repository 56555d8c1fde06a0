package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestReadCommittedAndRetain(t *testing.T) {
	n, nodes := startCluster(t, 40)
	defer func() { stopAll(n, nodes) }()
	leader := nodes[waitLeader(t, nodes)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := leader.host.group(7).store.Applied().Index
	// Keep everything after start: a stream has not shipped it yet.
	if err := leader.host.RetainFrom(7, start); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 200 {
		r, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v%d", i, i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Index
	}
	// Everything after start is still there, in order, without gaps; the
	// commands come back as proposed.
	var got []LogEntry
	for from := start; from < last; {
		ents, err := leader.host.ReadCommitted(7, from, last, 1<<10)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if len(ents) == 0 {
			t.Fatalf("no progress reading from %d", from)
		}
		got = append(got, ents...)
		from = ents[len(ents)-1].Index
	}
	cmds := 0
	for i, e := range got {
		if e.Index != start+uint64(i)+1 {
			t.Fatalf("entry %d has index %d, want %d", i, e.Index, start+uint64(i)+1)
		}
		if e.Command != nil {
			cmds++
		}
	}
	if cmds != 200 {
		t.Fatalf("%d commands read back, want 200", cmds)
	}
	// Lift the limit: the next writes let the log be truncated, and a
	// read of the truncated part says so.
	if err := leader.host.RetainFrom(7, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "m%d=v", i)); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := leader.host.Status(7); st.FirstIndex <= start+1 {
		t.Fatalf("log not truncated after the limit was lifted: first index %d", st.FirstIndex)
	}
	if _, err := leader.host.ReadCommitted(7, start, last, 1<<20); !errors.Is(err, ErrCompacted) {
		t.Fatalf("reading truncated entries: %v, want ErrCompacted", err)
	}
	if _, err := leader.host.ReadCommitted(99, 0, 1, 1); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("unknown group: %v", err)
	}
}
