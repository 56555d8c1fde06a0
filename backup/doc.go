// Package backup owns the format of Meridian's backups and everything
// that reads or writes it without a running node: targets (a directory,
// file:///path, or an S3 bucket prefix through minio-go, s3://bucket/prefix),
// the objects stored there, manifests, the replay of a group's log up to
// a time, verification and retention. docs/backup-format.md documents the
// format and its versions; docs/DESIGN.md section 8 how nodes use it
// (package node: backup.go, archive.go, restore.go).
//
// What a backup holds, per raft group of the keyspaces it covers:
//
//   - a base: the group's data, element (the items of lists and sorted
//     sets), cursor and ledger spans from one consistent storage view
//     (storage.Reader) at its applied index, in parts, with a bound on the
//     commit stamps of the entries it reflects;
//   - log segments: runs of the group's committed entries after the base,
//     each with its commit stamp (raftgroup's entry envelope), up to an
//     entry stamped after the backup's cut, which seals it.
//
// The manifest, written last, names every object with its size and
// SHA-256; a backup without one does not exist. A group's state at any
// time T from its base on is its base plus its log up to the last entry
// stamped at or before T, applied by the kv state machine (Replay), which
// is deterministic: the replayed state is the group's. Segments written
// by the continuous archive (node/archive.go) extend what a backup can
// restore to after its cut.
//
// Every object checks itself (a trailing SHA-256) and may be encrypted
// (AES-256-GCM, the object's name bound in), so that a truncated, altered,
// moved or missing object is found by Verify and refused by Replay, and
// the error names it. Writes are atomic (Target.Put): a reader never takes
// a half-written object for a whole one. Credentials never appear in
// errors, String or logs.
//
// The package never talks to a node; nodes call it.
package backup
