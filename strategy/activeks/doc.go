// Package activeks is the active replication strategy (docs/DESIGN.md
// 2.3): every region's region-local group of a shard takes writes, and
// streams them to every other region.
//
// A write is turned into a CRDT op (package kv, active.go) stamped with
// the region and the node's hybrid clock by the node that proposes it, in
// the region of the group that takes it, so the stamp's region is always
// the group's (active.go). Every region streams what it wrote to every
// other region as merges of the delta-states its writes produced
// (kv.ActiveChange), whole states only when seeding a region (a resync by
// merges, which never replaces the destination's own data). Reads are
// served by the local region's group, complete up to the oldest closed
// timestamp of its own and of every other region's stream; strong reads
// are refused (there is no single order to be linearizable in).
//
// gc.go has every region report what it has seen and collect the
// tombstones every region has seen; conflicts.go reads the conflict
// ledger each region keeps.
package activeks
