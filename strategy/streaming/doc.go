// Package streaming runs the streams of region-local groups on a node:
// the machinery async and active keyspaces share (docs/DESIGN.md 2.4).
//
// Source side (Set). The leader of a region-local group runs one stream
// sender (package stream) per destination group its strategy names (a
// Want): an async primary to every replica region, an active region to
// every other. A sender reads the group's applied log
// (raftgroup.ReadCommitted) from the destination's acknowledged position,
// turns each entry into what the strategy ships for it (Hooks.Change:
// the command itself, or an active write's delta-states), and proposes
// each batch, as one OpStreamApply command, to the destination group,
// whose state machine applies it exactly once (stream.Apply keeps the
// cursor in the same batch as the data). Only what took effect at the
// source is shipped: a write the group refused (a fenced or demoted
// primary's) is an entry of its log all the same, and the group's role
// history replays the verdict (kv.Admitted). The source keeps its log
// from the slowest destination's acknowledged position on
// (Host.RetainFrom): a lagging region's backlog stays on disk at the
// source. Senders stop when this node loses leadership.
//
// Recovery is package stream's (gap repair, retries paced by the RTT and
// ended by Wake when the transport sees a peer reachable again, stall
// reports); the Sink asks the nearest healthy replica of the destination
// group and another after one fails, every call bounded in time.
//
// Every batch carries the keyspace's epoch and the cluster id; a
// destination that has nothing from the stream, or needs changes the
// source no longer keeps, is first brought up to date by a resync: by
// default the source's data, read from one consistent storage view,
// shipped in chunks through the destination's raft group (stream.Chunk);
// a strategy may resync otherwise (Hooks.Resync: active keyspaces merge
// states rather than replace the destination's).
//
// The lag of a source's streams is a lookup by source group (Set.Lag),
// not a walk over every stream: an async primary's RPO gate asks it on
// every write.
//
// Destination side (Inbox). An idle stream's heartbeat only carries the
// source's closed timestamp; a replica of the destination group that has
// applied everything the heartbeat follows answers it itself, without a
// raft round, and keeps the closed timestamp in memory (Inbox.Position).
// Batches that arrive out of order are proposed in order where they can
// be (a batch waits a moment for the batch it follows). Batches stamped
// further in the future than the node's clock offset allows are refused.
package streaming
