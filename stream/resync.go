package stream

import (
	"encoding/binary"
	"fmt"

	"github.com/golang/snappy"

	"github.com/meridian-db/meridian/storage"
)

// Resync. A destination that has nothing from a source (a new region, a
// region that was a primary before a failover) or that needs changes the
// source no longer keeps is brought up to date by shipping the source
// group's whole data, as it stood at one applied index P, in chunks; the
// stream then continues from P. Chunks are applied through the
// destination's own raft group like batches:
//
//   - chunk 0 clears the destination group's data (its records and its
//     collections' elements: a chunk carries both), sets the stream's cursor
//     back to 0 and records the resync in progress (P, next chunk) under a
//     reserved cursor slot;
//   - chunk i > 0 is applied only if it is the next one of the same resync
//     (same P and epoch); anything else is refused with ErrGap and the
//     source starts again from chunk 0;
//   - the last chunk sets the cursor to P and removes the progress record.
//
// Redelivery of any chunk is therefore harmless: a repeated chunk is
// refused, and a repeated chunk 0 restarts the resync. While a resync is in
// progress the destination's data is incomplete; its cursor reads 0 and
// its closed timestamp does not advance, so reads that need freshness go
// elsewhere.

// resyncSlot is the cursor slot, per stream, holding resync progress.
func resyncSlot(stream uint64) uint64 { return stream | 1<<63 }

// Chunk is one piece of a resync.
type Chunk struct {
	Stream  uint64
	Epoch   uint64
	Cluster string
	// Index is the source's applied index the data reflects (P).
	Index uint64
	// ClosedMS is the source's closed timestamp at P.
	ClosedMS int64
	// Seq numbers the chunks of one resync from 0.
	Seq uint64
	// Last marks the final chunk.
	Last bool
	// Pairs alternates keys and stored values, in key order.
	Pairs [][]byte
	// Elems alternates element suffixes and values of the source's element
	// span (its lists' and sorted sets' elements; see storage), in order.
	Elems [][]byte
}

// Chunk encodings: version 1 carries the data; version 2 adds the
// elements. A chunk without elements is encoded in version 1, as before
// the element span existed.
const (
	chunkV1      = 1
	chunkVersion = 2
)

// Encode returns the wire form of the chunk (snappy-compressed body).
func (c *Chunk) Encode() ([]byte, error) {
	if len(c.Cluster) > maxClusterLen {
		return nil, fmt.Errorf("%w: cluster id of %d bytes", ErrBadBatch, len(c.Cluster))
	}
	if len(c.Pairs)%2 != 0 || len(c.Elems)%2 != 0 {
		return nil, fmt.Errorf("%w: odd number of key/value items", ErrBadBatch)
	}
	size := 9 * binary.MaxVarintLen64
	for _, p := range c.Pairs {
		size += binary.MaxVarintLen64 + len(p)
	}
	for _, p := range c.Elems {
		size += binary.MaxVarintLen64 + len(p)
	}
	body := make([]byte, 0, size)
	body = binary.AppendUvarint(body, c.Stream)
	body = binary.AppendUvarint(body, c.Epoch)
	body = binary.AppendUvarint(body, uint64(len(c.Cluster)))
	body = append(body, c.Cluster...)
	body = binary.AppendUvarint(body, c.Index)
	body = binary.AppendVarint(body, c.ClosedMS)
	body = binary.AppendUvarint(body, c.Seq)
	last := uint64(0)
	if c.Last {
		last = 1
	}
	body = binary.AppendUvarint(body, last)
	items := func(ps [][]byte) {
		body = binary.AppendUvarint(body, uint64(len(ps)))
		for _, p := range ps {
			body = binary.AppendUvarint(body, uint64(len(p)))
			body = append(body, p...)
		}
	}
	items(c.Pairs)
	version := byte(chunkV1)
	if len(c.Elems) > 0 {
		version = chunkVersion
		items(c.Elems)
	}
	if len(body) > MaxEncodedBytes {
		return nil, fmt.Errorf("%w: chunk of %d bytes, limit %d", ErrBadBatch, len(body), MaxEncodedBytes)
	}
	return append([]byte{version}, snappy.Encode(nil, body)...), nil
}

// DecodeChunk parses a chunk's wire form; it never panics.
func DecodeChunk(p []byte) (Chunk, error) {
	if len(p) < 1 || p[0] != chunkV1 && p[0] != chunkVersion {
		return Chunk{}, fmt.Errorf("%w: not a resync chunk", ErrBadBatch)
	}
	version := p[0]
	body, err := unsnappy(p[1:])
	if err != nil {
		return Chunk{}, err
	}
	d := decoder{p: body}
	var c Chunk
	c.Stream = d.uvarint()
	c.Epoch = d.uvarint()
	c.Cluster = string(d.bytes(maxClusterLen))
	c.Index = d.uvarint()
	c.ClosedMS = d.varint()
	c.Seq = d.uvarint()
	switch d.uvarint() {
	case 0:
	case 1:
		c.Last = true
	default:
		d.fail("last flag")
	}
	items := func() [][]byte {
		n := d.uvarint()
		if d.err == nil && (n%2 != 0 || n > uint64(len(d.p))) {
			d.fail("item count")
		}
		if d.err != nil || n == 0 {
			return nil
		}
		out := make([][]byte, n)
		for i := range out {
			out[i] = d.bytes(len(d.p))
		}
		return out
	}
	c.Pairs = items()
	if version == chunkVersion {
		if c.Elems = items(); d.err == nil && len(c.Elems) == 0 {
			d.fail("a version 2 chunk without elements")
		}
	}
	if d.err == nil && len(d.p) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Chunk{}, d.err
	}
	return c, nil
}

// ApplyChunk stages a resync chunk into the destination group's batch (see
// the rules above). cluster and epoch are as for Apply. The returned Ack
// carries the stream's cursor: 0 until the last chunk, then the chunk's
// Index.
func ApplyChunk(b *storage.Batch, group uint64, cluster string, c Chunk, epoch uint64) (Ack, error) {
	if c.Cluster != cluster {
		return Ack{}, fmt.Errorf("%w: chunk from %q, this is %q", ErrWrongCluster, c.Cluster, cluster)
	}
	cur, _, err := b.GetCursor(group, c.Stream)
	if err != nil {
		return Ack{}, err
	}
	floor := max(epoch, cur.Epoch)
	ack := Ack{Applied: cur.Index, Epoch: floor}
	if c.Epoch < floor {
		return ack, fmt.Errorf("%w: chunk epoch %d, destination at %d", ErrStaleEpoch, c.Epoch, floor)
	}
	if len(c.Pairs)%2 != 0 || len(c.Elems)%2 != 0 {
		return ack, fmt.Errorf("%w: odd number of key/value items", ErrBadBatch)
	}
	slot := resyncSlot(c.Stream)
	if c.Seq == 0 {
		b.ClearData(group)
		cur = storage.Cursor{Epoch: c.Epoch}
		b.SetCursor(group, c.Stream, cur)
	} else {
		prog, ok, err := b.GetCursor(group, slot)
		if err != nil {
			return ack, err
		}
		if !ok || prog.Index != c.Seq || uint64(prog.ClosedMS) != c.Index || prog.Epoch != c.Epoch {
			return ack, fmt.Errorf("%w: resync chunk %d of index %d is not the one expected", ErrGap, c.Seq, c.Index)
		}
	}
	for i := 0; i+1 < len(c.Pairs); i += 2 {
		b.SetData(group, c.Pairs[i], c.Pairs[i+1])
	}
	for i := 0; i+1 < len(c.Elems); i += 2 {
		b.SetElem(group, c.Elems[i], c.Elems[i+1])
	}
	if !c.Last {
		b.SetCursor(group, slot, storage.Cursor{Index: c.Seq + 1, ClosedMS: int64(c.Index), Epoch: c.Epoch})
		return Ack{Applied: 0, Epoch: c.Epoch}, nil
	}
	b.Delete(storage.CursorKey(group, slot))
	b.SetCursor(group, c.Stream, storage.Cursor{Index: c.Index, ClosedMS: c.ClosedMS, Epoch: c.Epoch})
	return Ack{Applied: c.Index, Epoch: c.Epoch}, nil
}

// IsResyncSlot reports whether a cursor slot holds resync progress rather
// than a stream position.
func IsResyncSlot(source uint64) bool { return source&(1<<63) != 0 }
