package raftgroup

import "sync/atomic"

// Stats counts the host's work since it was created. The counters only
// grow; a monitoring system turns them into rates. They are updated with
// atomic adds (the loop never takes a lock for them) and read without
// stopping the loop, so two fields read together may be a few events
// apart.
type Stats struct {
	// Proposals is the number of proposals (commands and membership
	// changes) raft accepted on this node while it led their group.
	Proposals uint64
	// ProposalsDropped is the number of proposals raft refused at once
	// (for example while leadership was being transferred).
	ProposalsDropped uint64
	// ReadIndexRequests is the number of read-index requests handed to
	// raft (strong reads; a retried request counts again).
	ReadIndexRequests uint64
	// ReadyRounds is the number of loop rounds that processed at least one
	// group's Ready; ReadyGroups is the number of Readies they processed.
	// ReadyGroups / ReadyRounds is how many groups share one batch.
	ReadyRounds, ReadyGroups uint64
	// EntriesAppended is the number of log entries persisted to this
	// node's raft logs (all groups).
	EntriesAppended uint64
	// EntriesApplied is the number of committed entries applied to the
	// state machines.
	EntriesApplied uint64
	// SnapshotsApplied is the number of snapshots installed on this node.
	SnapshotsApplied uint64
	// BatchesCommitted is the number of storage batches the loop
	// committed; Fsyncs is the number of the host's batch commits that
	// were synced to disk (loop rounds that raft required to be durable,
	// plus group bootstraps and removals).
	BatchesCommitted, Fsyncs uint64
	// MessagesSent is the number of raft messages handed to the Sender.
	MessagesSent uint64
	// LeaseReads is the number of linearizable reads (local or forwarded
	// by a follower) a leader answered under its lease, without a
	// heartbeat round.
	LeaseReads uint64
}

// hostStats holds the live counters behind Stats.
type hostStats struct {
	proposals, proposalsDropped, readIndex atomic.Uint64
	readyRounds, readyGroups               atomic.Uint64
	entriesAppended, entriesApplied        atomic.Uint64
	snapshotsApplied                       atomic.Uint64
	batches, fsyncs                        atomic.Uint64
	messagesSent, leaseReads               atomic.Uint64
	quiesced                               atomic.Int64 // a gauge
}

// Stats returns the host's counters. It is safe to call from any
// goroutine, and cheap: it takes no lock.
func (h *Host) Stats() Stats {
	s := &h.stats
	return Stats{
		Proposals:         s.proposals.Load(),
		ProposalsDropped:  s.proposalsDropped.Load(),
		ReadIndexRequests: s.readIndex.Load(),
		ReadyRounds:       s.readyRounds.Load(),
		ReadyGroups:       s.readyGroups.Load(),
		EntriesAppended:   s.entriesAppended.Load(),
		EntriesApplied:    s.entriesApplied.Load(),
		SnapshotsApplied:  s.snapshotsApplied.Load(),
		BatchesCommitted:  s.batches.Load(),
		Fsyncs:            s.fsyncs.Load(),
		MessagesSent:      s.messagesSent.Load(),
		LeaseReads:        s.leaseReads.Load(),
	}
}
