// Package raftgroup hosts many raft groups on one node: one loop goroutine
// drives every group's RawNode (go.etcd.io/raft/v3), one ticker ticks them
// all, one sender ships their messages, and one synced storage batch per
// loop round persists all of them together (group commit). Groups left
// idle quiesce (Config.QuiesceAfter): they stop ticking and heartbeating,
// and the loop's rounds skip them, until something wakes them
// (quiesce.go has the protocol and why it is safe).
//
// The Ready contract, as the loop follows it each round:
//
//  1. A leader's messages are handed to the sender at once: a leader may
//     replicate entries before its own copy is durable.
//  2. For every group with a Ready: the snapshot (if any), the new entries,
//     the hard state and the effects of the committed entries are staged
//     in ONE batch, committed with fsync when any Ready asks for it.
//  3. Only then are the followers' and candidates' messages sent (votes and
//     acknowledgements must never be sent for state that is not durable).
//  4. Waiters are woken (proposals with their results, reads whose index
//     is applied), and every RawNode is advanced.
//
// Fatal errors. A failed commit is fatal, and so is a committed command a
// state machine cannot apply (StateMachine.Apply returns an error): the
// round's batch is discarded, so the applied index stays where storage has
// it and nothing of the command is half-applied; the loop stops, every
// waiter fails (a pending proposal with ErrTimeout wrapping ErrStopped,
// since other replicas may still apply it), and the host reports the error
// through Config.OnFatal so that the node stops. Nothing is retried: a node
// whose storage fails must not keep answering.
//
// Command errors and fatal errors. Every replica applies the same commands
// from the same state, so a command that fails for a reason of its own (a
// wrong type, a stale epoch, a malformed argument, bytes that do not decode
// in a format this binary knows) fails identically everywhere: that
// failure is the command's result and the applied index moves on. A
// failure of this replica's environment is different: a storage read or
// write error, stored state that no longer decodes, or an encoding newer
// than this binary (a command version or op it does not know: replicas
// running different binaries would disagree about it). Turning such a
// failure into a result would let this replica skip a command the others
// applied, and diverge from them for good; it is fatal instead. On restart
// the node applies the command again from the log, with whatever was
// repaired (storage, binary).
//
// Nothing blocks inside the loop: callers submit work through channels and
// wait on their own goroutines (Propose, ReadIndex, WaitApplied all take a
// context). The package does no network I/O of its own.
//
// Commit stamps. With Config.Stamps, every proposal's entry carries the
// hybrid logical time at which its leader appended it, never below the
// stamps before it in the log, so that stamps never decrease along a
// group's committed log and "the group at time T" is a prefix of it
// (envelope.go gives the format, its versions and the argument). Mark
// appends an entry with a stamp and no command: once it is applied, no
// entry stamped at or before its time can still join the log. ReadCommitted
// returns each entry's stamp, Status the stamp of the last entry applied.
//
// Time. The ticker and the wall clock leases are measured on come from
// Config.Clock: the system's in production; a ManualClock in tests, which
// move time by hand (ManualClock.Advance) so that an election, a lease's
// end or a transfer's abort happens at an exact, repeatable instant.
package raftgroup
