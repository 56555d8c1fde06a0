// Package strategy is what a replication strategy is to the node: one
// small interface (Strategy), what a strategy may use of the node (Env),
// and what they share (a group's position, the index of data groups, the
// errors both sides know).
//
// Each strategy of docs/DESIGN.md section 2 lives in a package below this
// one, and so does the stream machinery two of them share:
//
//   - syncks: sync keyspaces, one spanning raft group per shard; its
//     leaders are kept in the home region (section 2.1).
//   - asyncks: async keyspaces, one primary region: roles, primary
//     leases, switchover, failover, lost writes, the RPO budget, streams
//     from the primary (section 2.2).
//   - activeks: active keyspaces, every region writes CRDT ops stamped
//     with its region and hybrid clock; streams all to all, conflicts,
//     tombstone collection (section 2.3).
//   - streaming: the streams of region-local groups, run by the source
//     group's leader (senders, the sink, resyncs) and received by the
//     destination (heartbeats answered without raft, batches proposed in
//     order, the clock check) (section 2.4).
//
// The names keep the strategies' words (sync, async, active) with "ks",
// for keyspace, so that none shadows the standard library's sync.
//
// Imports go downward only: node builds the Env and the strategies and
// calls them; strategies use streaming and this package; none imports
// node. Node keeps the wiring, the router, the proposer, the read
// framework (consistency levels, closed timestamps), the node-to-node
// service, scans, keyspace admin, formation and status. A strategy's
// admin verbs (switchover, conflicts...) are methods of its own type,
// which node's public API delegates to.
//
// A strategy's groups apply only what it defines: each builds its groups'
// state machines (Strategy.Machine) with its own kv.Admission, so that, say,
// a sync group refuses an active merge as a command error.
package strategy
