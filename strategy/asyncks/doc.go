// Package asyncks is the async replication strategy (docs/DESIGN.md 2.2):
// one primary region per keyspace takes the writes, and streams them to
// the shard's region-local group in every other region.
//
// What it does, by file:
//
//   - async.go: the strategy as the node uses it (strategy.Strategy): a
//     write carries the keyspace's epoch; the primary's leader admits a
//     client write only while its group acts as the primary (its role
//     and the primary lease) and within the RPO budget; a replica
//     region's reads are served at its stream's position.
//   - roles.go: every region-local group records its role (kv.Role) in
//     its own log; the role loop brings a group whose role is older than
//     the metadata's epoch up to date, a former primary only after it
//     has reported its lost writes (LostWrites).
//   - switchover.go: Switchover (fence, drain, epoch+1: nothing lost) and
//     Failover (promote at once; the old primary reports what it loses
//     when it returns).
//   - lease.go: the primary lease a node must hold for its groups to act
//     as the primary (take writes, serve strong reads, close timestamps).
//
// The streams themselves are package streaming's; this package says which
// run (the primary's leader to every other region, in the keyspace's
// epoch) and ships every command its groups applied as it is.
package asyncks
