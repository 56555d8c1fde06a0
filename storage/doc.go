// Package storage owns a node's single Pebble database: the raft log, hard
// state and truncation state of every raft group hosted on the node, each
// group's applied state, and the user data the groups replicate.
//
// Key layout (all group ids are 8-byte big-endian):
//
//	'r' group 'h'          raft hard state (term, vote, commit)
//	'r' group 'a'          applied state (applied index, conf state)
//	'r' group 't'          truncated state (index and term of the last entry removed from the log)
//	'r' group 'l' index    one raft log entry (index 8-byte big-endian)
//	'd' group userkey      a key of the group's replicated data
//
// Everything a raft group owns therefore lies in two contiguous spans, so a
// snapshot is one scan and dropping a replica is two range deletions.
//
// The package never decides anything about raft: it persists what the
// raftgroup host hands it and answers raft's Storage queries (LogStore).
// Writes are staged in a Batch and committed by the host once per Ready
// round (group commit); a failed commit is reported to the caller, who must
// stop the node, never retry.
//
// The data directory is created with mode 0700; an existing directory that
// other users can read or write is refused.
package storage
