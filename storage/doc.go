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
//	'c' group source       a stream cursor: how far the group has applied
//	                       the stream from source (see package stream)
//	'l' group suffix       a ledger record of the group (ledger.go)
//	'e' group suffix       an element of one of the group's lists or sorted
//	                       sets (elements.go)
//	'n' name               a node-local record, part of no group (local.go)
//
// Everything a raft group owns therefore lies in a few contiguous spans:
// a snapshot carries the data, cursor, ledger and element spans, and
// dropping a replica is a few range deletions.
//
// The package never decides anything about raft: it persists what the
// raftgroup host hands it and answers raft's Storage queries (LogStore).
// Writes are staged in a Batch and committed by the host once per Ready
// round (group commit); a failed commit is reported to the caller, who must
// stop the node, never retry. On the operating system's filesystem, Pebble's
// write-ahead log is written into space zeroed ahead of it (walfs.go), so
// that the fdatasync that makes a round durable flushes data only.
//
// Point reads of user keys (DB.Get) go through a row cache (rowcache.go):
// the values of recently read keys, in memory, bounded in bytes
// (Options.RowCacheBytes). It never serves a value older than Pebble's:
// a batch drops the entries of the keys it writes before it commits, and a
// read that overlapped a commit touching its part of the cache does not
// keep what it read.
//
// Errors say whose fault they are: every failure of the engine itself (a
// read, scan or commit) wraps ErrIO, and persisted state that does not
// decode wraps ErrCorrupt. A state machine meeting either while applying a
// command must not make it the command's result (package raftgroup).
//
// The data directory is created with mode 0700; an existing directory that
// other users can read or write is refused.
package storage
