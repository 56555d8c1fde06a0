// Package kv is the state machine of a data group: the commands a client
// write turns into, their encoding in the raft log, the record stored for
// each key, and the deterministic application of a command to storage.
//
// A command is (op, flags, one integer, the proposer's clock, arguments);
// its encoding is versioned (version 1 had no clock; both versions decode)
// and decoded defensively, because it is read back from disk and may
// arrive from other nodes. A stored record is (type, expiry, version,
// payload): the type (string, set, hash, list, zset) lets a command on a
// key of the wrong type fail with ErrWrongType, the expiry (absolute,
// milliseconds since the epoch, 0 for none) is decided by the proposer so
// that every replica applies the same thing, and the version is the log
// index of the command that last wrote the record (WATCH compares it;
// records written before versions existed have none). A set or a hash is
// one record whose payload lists its members (fields) in byte order; its
// size is bounded by MaxCollectionBytes and an emptied set or hash is
// deleted.
//
// Lists and sorted sets keep one storage key per element, in the group's
// element span (package storage), so that reading a range or writing one
// element never loads the whole collection; the record at the key is the
// collection's head (its id, and its bounds or size). Layout:
//
//	list head:      format(1) uvarint(id) varint(first position) uvarint(length)
//	list item:      id(8) position(8, sign bit flipped)              -> the item
//	zset head:      format(1) uvarint(id) uvarint(cardinality)
//	zset member:    id(8) 'm' member                                  -> score (8 bytes)
//	zset by score:  id(8) 's' order(8: the score's bits, made to sort) member -> score
//	next id:        8 zero bytes                                       -> uvarint
//
// A collection's id is unique in its group (allocated from the next-id
// element), so its elements are one range: DEL, an overwrite or an
// expired collection's replacement drop them with one range deletion,
// RENAME moves only the head, COPY copies them under a new id. TYPE, DEL,
// EXPIRE, SCAN and DBSIZE see the head only: a list or sorted set is one
// key. See list.go and zset.go.
//
// The command engine (engine.go) runs Redis commands as clients send
// them: writes as OpRedis (one command) or OpTxn (a MULTI/EXEC
// transaction, with WATCH's versions; txn.go), reads on a consistent view
// of a replica (Query), both answering a Reply that the front end writes
// in RESP2 or RESP3. Active keyspaces run it too (active_redis.go): reads
// on the merged CRDT states, writes with a CRDT form as OpActiveRedis.
//
// Time: every write carries the proposer's clock (Command.NowMS). A write
// treats a record whose expiry is at or before that time as absent (and
// removes it if it writes the key); an expiry at or before that time in
// the command itself removes the key at once. Reads are not replicated
// and judge expiry by the reader's clock (Get). Expired records that no
// write touches stay on disk until one does; nothing removes them in the
// background yet.
//
// Active keyspaces, in which every region accepts writes, have their own
// ops (OpActiveSet ... OpActiveMerge), stamped by the proposer with the
// origin region and HLC time; each key is one record of TypeActive holding
// a CRDT state (package crdt), regions ship each write's delta-state to
// each other (ActiveChange) and merge them, and conflicts go to a per-group ledger
// written in the same batch (ReadLedger). See active.go and ledger.go.
//
// Every replication strategy runs its groups on this model, but a group
// applies only the ops its strategy defines (StateMachine.Admits, an
// Admission keyed by op, see admission.go): another op is refused as a
// command error (ErrRefused), and so is a stream batch carrying one.
//
// Restores load a backed-up state into a hidden keyspace's groups in
// numbered chunks (OpRestoreChunk, restore.go), each applied once; every
// strategy admits them.
//
// Apply must be deterministic: it may only depend on the command, the
// group's stored data and the log index, never on the local clock, the
// node, or anything in memory. A command that fails (wrong type, not an
// integer, overflow, too large, malformed) changes nothing and its error is
// its result, the same on every replica.
//
// A failure of the replica itself is never a result (see IsFatal): a storage
// read that fails, a stored record, set, hash, active state or knowledge
// report that does not decode (storage.ErrCorrupt: what this package
// stored must always decode), or a command of a version or op this binary
// does not know (ErrUnsupported: a newer binary wrote it, and replicas
// running that binary apply it). Apply returns it as an error, which stops
// the node (package raftgroup) before anything of the command commits. The
// same holds for the commands of a stream batch: a command error there is
// skipped (it failed at the source too), a failure of the replica fails
// the batch and stops the node.
package kv
