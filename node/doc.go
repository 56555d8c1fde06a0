// Package node assembles one Meridian node: storage, the raft host with the
// system group and every data group the metadata places here, the
// transport, and the request router that the front ends call.
//
// The router (router.go) maps a key to its keyspace's shard by hashing
// (FNV-1a of the key, or of its hash tag: "{user42}:cart" hashes
// "user42") and runs writes through the group that takes them; the
// proposer (propose.go) finds a group's leader; the read framework
// (reads.go) serves reads at the requested consistency: strong reads
// confirm the read point with the leader (ReadIndex, or its lease) and
// then read locally; the other levels read the local replica once its
// position allows. A node that holds no replica of the shard forwards the
// request to the group's leader or the nearest node that has one (rpc.go,
// the typed node-to-node service).
//
// What differs between the replication strategies lives in their
// packages (strategies.go; package strategy and below): which group takes
// a write and what it applies, the gate at the leader, a replica's
// position, each group's state machine, and the strategies' background
// work (leader placement, roles and primary leases, streams, tombstone
// collection). The node gives them what they need through strategy.Env
// (env.go), and its public API (Switchover, Failover, LostWrites,
// Conflicts, Tombstones, Streams) delegates to them.
//
// Redis's commands (docs/DESIGN.md 5.5) reach the node as kv engine
// commands: writes through Write like any other, reads through Query
// (query.go, forwarded as the node service's Query), blocking pops
// through BlockingWrite (blocking.go), FLUSHDB shard by shard. Pub/sub
// runs beside raft: Publish delivers to this node's subscribers and sends
// the message to every other node in the node service's Publish, in
// order and at most once (pubsub.go).
//
// Background loops keep the node in step with the metadata (recording the
// initial members, registering the node, creating the replicas placed on
// it), send closed timestamps from leaders to followers, and warn while a
// keyspace is below its replication goal (a replica placed for it is not
// live).
//
// Formation (formation.go): the cluster's regions are those of all its
// members, joined or not yet. A keyspace change places replicas on live
// nodes only (joined, and answering this node's pings) and waits up to a
// bound for a live node in every region it needs, then fails with
// ErrRegionUnavailable naming the regions and their nodes; it never drops
// a region. Ready says whether the node has joined, has caught up with the
// metadata (a read index confirmed by the metadata group's leader) and
// hosts every replica placed on it; ClusterReadiness asks every member.
//
// A node belongs to one cluster, identified by an id fixed when the cluster
// forms and recorded in the node's storage (cluster.go); its transport,
// streams and session tokens carry that id and refuse another's. The
// cluster also records its lease-critical timings (tick and minimum
// heartbeat) when it forms, and a node whose own differ is refused at
// join and at start (timings.go).
//
// Security (security.go, SECURITY.md): with certificates (Config.Certs)
// the transport is mutual TLS and a peer is the node its certificate
// names; with Config.RequireAuth the front ends authenticate every client
// and authorize every request through the node's Guard (package auth).
// Users live in the metadata (users.go): SetUser hashes passwords on the
// node that takes the change and proposes only hashes. Every admin action
// a front end runs is recorded in this node's audit log (audit.go: why
// per node, and not in the metadata group); ClusterAuditLog gathers every
// node's through the node service's Audit method.
//
// Config holds every setting of a node, today's defaults filled in for
// what is left zero; Validate refuses negative and contradictory values
// naming the field. Package config maps a configuration file onto it.
//
// Backups and restores (backup.go, archive.go, restore.go; docs/DESIGN.md
// section 8): a backup cuts keyspaces at one hybrid time by the commit
// stamps of the groups' logs, its replicas writing bases and log segments
// to a target (package backup); with a schedule, every group's leader
// archives its log continuously and the metadata leader takes the
// scheduled backups; a restore rebuilds a keyspace at any time of the
// window into a hidden keyspace and names it in one metadata command.
//
// When its raft host stops on a fatal error (storage failed, or a committed
// command cannot be applied here: see package raftgroup), the node halts:
// its loops and its transport stop, Fatal reports the error, and only
// Close remains (`meridian start` exits). It never serves on from a
// replica that may have diverged from the others.
package node
