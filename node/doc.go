// Package node assembles one Meridian node: storage, the raft host with the
// system group and every data group the metadata places here, the
// transport, and the request router that the front ends call.
//
// The router maps a key to its keyspace's shard by hashing (FNV-1a), runs
// writes through the shard's raft group and serves reads at the requested
// consistency: strong reads confirm the read point with the leader
// (ReadIndex) and then read locally; eventual reads read the local replica
// at once. A node that holds no replica of the shard forwards the request
// to the nearest node that does.
//
// Background loops keep the node in step with the metadata (creating the
// replicas placed on it) and keep every sync group's leader in its home
// region (moving it back after a failure, with hysteresis).
package node
