// Package stream ships the committed changes of a region-local raft group
// to the region-local group of another region (docs/DESIGN.md 2.4), one stream
// per (shard, source region, destination region).
//
// It owns the batch wire format (Batch, Encode, DecodeBatch), the source
// side (Sender, which reads a Log and sends through a Sink with bounded
// batches in flight, heartbeats, lag statistics, gap repair, paced
// retries and stall detection; see DESIGN.md) and the destination side
// (Apply, which stages a batch and the stream's cursor into one storage
// batch so that redelivery changes nothing).
//
// It never does I/O of its own: the source's log, the network (Sink) and the
// destination's raft group belong to the caller. It never buffers a backlog
// in memory (a slow destination leaves it in the source's log), never
// reads a clock inside Apply, and never decides what to do when the source
// log has been compacted: it reports ErrCompacted and the caller ships a
// snapshot.
package stream
