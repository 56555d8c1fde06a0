// Package metrics owns a node's Prometheus metrics: what the front ends
// record about the requests they serve, and what is read from the node
// (raft host counters, group indexes, lag, leaders, round trips) each time
// the metrics are scraped.
//
// Every node has its own Registry; the package never touches the
// process-wide default registry, because several nodes run in one process
// in the demo and the tests. The front ends call ObserveRequest (or
// ObserveRequestCode) once per request, or gather a connection's requests
// in a Tally and add them to their series at once when the replies are
// written (the RESP front end: a pipeline of GETs costs a few atomic adds,
// not several per GET); the request figures are plain atomic counters
// (the latency sum in integer nanoseconds) exported as a counter and a
// histogram at scrape time. The node's figures are gathered by a collector
// at scrape time too, so neither the raft loop nor the request path does
// any metrics work beyond atomic counter adds. The package sits
// beside the front ends, above node: node never imports it.
//
// Metrics, all prefixed meridian_:
//
// Requests (labels: frontend = resp|http, command, code = ok or an error code):
//
//	meridian_requests_total                      counter   requests served, by frontend, command, code
//	meridian_request_duration_seconds            histogram time to serve a request, by frontend, command
//
// Raft host counters (this node, all groups; see raftgroup.Stats):
//
//	meridian_raft_proposals_total                counter   proposals accepted by raft at a leader here
//	meridian_raft_proposals_dropped_total        counter   proposals raft refused at once
//	meridian_raft_read_index_total               counter   read-index requests (strong reads)
//	meridian_raft_ready_rounds_total             counter   loop rounds that processed a Ready
//	meridian_raft_ready_groups_total             counter   group Readies processed
//	meridian_raft_entries_appended_total         counter   log entries persisted
//	meridian_raft_entries_applied_total          counter   committed entries applied
//	meridian_raft_snapshots_applied_total        counter   snapshots installed
//	meridian_raft_batches_committed_total        counter   storage batches committed by the loop
//	meridian_raft_fsyncs_total                   counter   batches committed with sync
//	meridian_raft_messages_sent_total            counter   raft messages handed to the transport
//
// Storage (this node):
//
//	meridian_storage_row_cache_hits_total        counter   point reads of user keys the row cache answered
//	meridian_storage_row_cache_misses_total      counter   point reads that went past it to the engine
//	meridian_storage_row_cache_bytes             gauge     what it holds (keys, values, overhead)
//	meridian_storage_row_cache_capacity_bytes    gauge     what it may hold (0: no row cache)
//
// Groups (labels: group, keyspace, shard; the metadata group is keyspace
// "_system", shard 0):
//
//	meridian_raft_groups                         gauge     groups hosted here (no labels)
//	meridian_raft_leaders                        gauge     groups led by this node (no labels)
//	meridian_raft_groups_quiesced                gauge     groups quiesced here: idle, not ticking (no labels)
//	meridian_raft_group_term                     gauge     current term on this replica
//	meridian_raft_group_commit_index             gauge     commit index known to this replica
//	meridian_raft_group_applied_index            gauge     applied index on this replica
//	meridian_raft_group_is_leader                gauge     1 if this replica leads the group
//	meridian_raft_group_apply_lag_entries        gauge     commit - applied on this replica
//	meridian_raft_group_quiesced                 gauge     1 while this replica is quiesced, else 0
//	meridian_raft_group_replication_lag_entries  gauge     leader only: max over the other replicas of last index - match
//
// Peers (labels: peer, peer_region):
//
//	meridian_peer_rtt_seconds                    gauge     smoothed round trip to the peer (once measured)
//	meridian_peer_reachable                      gauge     1 if a recent ping to the peer succeeded
//	meridian_transport_bytes_sent_total          counter   bytes sent to the peer: raft frames, snapshots, calls
//
// Streams this node sends (async and active) {keyspace, shard, from_region, to_region}:
//
//	meridian_stream_lag_entries                  gauge     entries not yet acknowledged by the destination
//	meridian_stream_lag_seconds                  gauge     age of the oldest unacknowledged change (0 when caught up)
//	meridian_stream_stalled                      gauge     1 while the stream makes no progress (node.StreamStallAfter + RTT)
//	meridian_stream_stalled_seconds              gauge     how long a stalled stream has made no progress (0 if not stalled)
//
// Log archives this node ships (the groups it leads, with a backup
// schedule; node/archive.go) {keyspace, shard, region, group}:
//
//	meridian_backup_archive_lag_seconds          gauge     age of the newest archived entry's stamp: the RPO
//	meridian_backup_archived_bytes_total         counter   bytes of the log archived while leading the group
//	meridian_backup_archive_gaps_total           counter   holes found (the log no longer held what followed the archive)
//
// Membership, as this node sees it (liveness: joined and answering pings):
//
//	meridian_cluster_nodes_not_joined            gauge     recorded members (initial ones included) never registered: not started, or gone
//	meridian_cluster_nodes_unreachable           gauge     joined members this node does not reach
//	meridian_keyspace_under_replicated           gauge     {keyspace} 1 while a replica placed for it is not live
//	meridian_keyspace_replicas_down              gauge     {keyspace} replicas placed for it whose node is not live
//	meridian_keyspace_regions_without_live_replica gauge   {keyspace} its regions where none of its replicas is live
//
// Node:
//
//	meridian_node_info                           gauge     always 1; labels node, region
//
// The registry also holds the standard go_* and process_* collectors.
//
// Label values are bounded: a value longer than MaxLabelBytes or not valid
// UTF-8 becomes "other", and each front end keeps at most MaxCommands
// distinct command names, so a client sending random command names cannot
// grow the number of series without bound.
package metrics
