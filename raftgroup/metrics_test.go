package raftgroup

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestStatsCountWork(t *testing.T) {
	n, nodes := startCluster(t, 0)
	defer func() { stopAll(n, nodes) }()
	waitLeader(t, nodes)
	for _, tn := range nodes {
		if s := tn.host.Stats(); s.Fsyncs == 0 {
			t.Fatalf("node %d: bootstrapping the group wrote synced batches, but Fsyncs=0", tn.id)
		}
	}
	before := make([]Stats, len(nodes))
	for i, tn := range nodes {
		before[i] = tn.host.Stats()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const writes = 20
	for i := range writes {
		if _, err := propose(ctx, t, nodes, fmt.Appendf(nil, "k%d=v", i)); err != nil {
			t.Fatal(err)
		}
	}
	var proposals uint64
	for i, tn := range nodes {
		// A read index on every node makes each one apply every write.
		if _, err := readIndex(ctx, tn); err != nil {
			t.Fatal(err)
		}
		s, b := tn.host.Stats(), before[i]
		proposals += s.Proposals - b.Proposals
		if d := s.EntriesApplied - b.EntriesApplied; d < writes {
			t.Errorf("node %d applied %d entries, want at least %d", tn.id, d, writes)
		}
		if d := s.EntriesAppended - b.EntriesAppended; d < writes {
			t.Errorf("node %d appended %d entries, want at least %d", tn.id, d, writes)
		}
		// A leader under its lease answers without a read-index round.
		if s.ReadIndexRequests == b.ReadIndexRequests && s.LeaseReads == b.LeaseReads {
			t.Errorf("node %d: strong read counted neither as a read index nor as a lease read", tn.id)
		}
		if s.ReadyRounds == b.ReadyRounds || s.ReadyGroups-b.ReadyGroups < s.ReadyRounds-b.ReadyRounds {
			t.Errorf("node %d: ready rounds %d -> %d, groups %d -> %d", tn.id, b.ReadyRounds, s.ReadyRounds, b.ReadyGroups, s.ReadyGroups)
		}
		fs, bc := s.Fsyncs-b.Fsyncs, s.BatchesCommitted-b.BatchesCommitted
		if fs == 0 || fs > bc {
			t.Errorf("node %d: %d fsyncs for %d committed batches", tn.id, fs, bc)
		}
		if s.MessagesSent == b.MessagesSent {
			t.Errorf("node %d sent no messages", tn.id)
		}
	}
	if proposals < writes {
		t.Errorf("%d proposals counted across the nodes, want at least %d", proposals, writes)
	}
}
