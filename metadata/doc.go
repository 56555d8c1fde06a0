// Package metadata owns the cluster's own state, replicated by the system
// group (raft group 1, voters spread over every region): the nodes and
// their regions, the keyspaces with their replication policy, and where
// every shard's replicas live.
//
// Changes are commands applied through raft, so they are linearizable and
// every node sees them in the same order. The whole state is small and is
// stored as one JSON document under one key of the system group; each
// applied command rewrites it. Placement decisions that depend on a node's
// measurements (round-trip times) are made by the proposer and carried in
// the command, so applying stays deterministic.
//
// A cluster started from a list of initial members records the list once
// (init_cluster, proposed by every member, applied by the first): from
// then on every member is in Nodes, its region one of the cluster's,
// whether it has started or not; NodeInfo.Joined says which members have
// registered themselves. A keyspace's default regions are every region of
// the members, so it never silently spans fewer regions than the cluster
// was started with (the proposer places replicas on live nodes only and
// waits for them; see node.CreateKeyspaceWait).
//
// The cluster's users (users.go) are kept here too, so they are the same
// in every region: their password hashes (never passwords: the proposer
// prepares the rules, see auth.PrepareRules), grants and bearer tokens'
// hashes.
//
// With three or more regions the system group survives the loss of one
// region; with fewer it cannot, and the node warns when the cluster starts.
package metadata
