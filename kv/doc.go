// Package kv is the state machine of a data group: the commands a client
// write turns into, their encoding in the raft log, the record stored for
// each key, and the deterministic application of a command to storage.
//
// A command is (op, flags, one integer, arguments); its encoding is
// versioned and decoded defensively, because it is read back from disk and
// may arrive from other nodes. A stored record is (type, expiry, payload):
// the type lets a command on a key of the wrong type fail with ErrWrongType,
// the expiry (absolute, milliseconds since the epoch, 0 for none) is decided
// by the proposer so that every replica applies the same thing.
//
// Apply must be deterministic: it may only depend on the command, the
// group's stored data and the log index, never on the local clock, the
// node, or anything in memory.
package kv
