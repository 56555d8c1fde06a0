// Package raftgroup hosts many raft groups on one node: one loop goroutine
// drives every group's RawNode (go.etcd.io/raft/v3), one ticker ticks them
// all, one sender ships their messages, and one synced storage batch per
// loop round persists all of them together (group commit).
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
// A failed commit is fatal: the loop stops, every waiter fails with
// ErrStopped, and the host reports the error through Config.OnFatal. It is
// never retried.
//
// Nothing blocks inside the loop: callers submit work through channels and
// wait on their own goroutines (Propose, ReadIndex, WaitApplied all take a
// context). The package does no network I/O of its own.
package raftgroup
