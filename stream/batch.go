package stream

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/golang/snappy"
)

// ErrBadBatch is returned when a batch cannot be decoded or breaks the
// ordering rules (changes strictly ascending, all after Prev).
var ErrBadBatch = errors.New("stream: malformed batch")

// Change is one committed command of the source group.
type Change struct {
	// Index is the command's index in the source group's raft log.
	Index uint64
	// TimeMS is when the command was proposed (Unix milliseconds); used to
	// measure lag.
	TimeMS int64
	// Data is the command as the source group applied it.
	Data []byte
}

// Batch is what one Send ships: consecutive committed changes of a source
// group, or, with no changes, a heartbeat.
type Batch struct {
	// Stream is the source group id; the destination keeps one cursor per
	// stream.
	Stream uint64
	// Epoch is the replication epoch the source was in when it read the
	// changes; a destination that has seen a higher epoch refuses the batch.
	Epoch uint64
	// Cluster is the cluster id of the source; a destination of another
	// cluster refuses the batch.
	Cluster string
	// Prev is the source index the batch follows: every change at or before
	// Prev was shipped in earlier batches, and the changes here all have
	// higher indexes.
	Prev uint64
	// Changes are in strictly ascending index order. Source indexes that
	// carry no command (raft's empty and configuration entries) are absent.
	Changes []Change
	// ClosedMS is the source's closed timestamp: every change with TimeMS at
	// or before it that will ever exist is in this batch or an earlier one.
	ClosedMS int64
}

// Last is the source index the batch brings the destination up to: the
// index of its last change, or Prev for a heartbeat.
func (b *Batch) Last() uint64 {
	if n := len(b.Changes); n > 0 {
		return b.Changes[n-1].Index
	}
	return b.Prev
}

// validate checks the ordering rules.
func (b *Batch) validate() error {
	prev := b.Prev
	for _, c := range b.Changes {
		if c.Index <= prev {
			return fmt.Errorf("%w: change %d does not follow %d", ErrBadBatch, c.Index, prev)
		}
		prev = c.Index
	}
	return nil
}

// Wire format, version 1:
//
//	version   1 byte (batchVersion)
//	flags     1 byte; flagSnappy: the rest is snappy-compressed
//	body      uvarint stream, uvarint epoch, uvarint cluster length, cluster,
//	          uvarint prev, varint closed ms, uvarint change count, then per
//	          change: uvarint index delta (from the previous index, or from
//	          prev for the first; at least 1), varint time ms, uvarint data
//	          length, data.
const (
	batchVersion = 1
	flagSnappy   = 1

	// MaxEncodedBytes bounds the body of a batch, compressed or not; a
	// decoder refuses anything bigger before allocating for it.
	MaxEncodedBytes = 64 << 20
	// CompressMinBytes is the body size from which Encode tries snappy; the
	// compressed form is kept only if it is smaller.
	CompressMinBytes = 512
	// maxClusterLen bounds the cluster id.
	maxClusterLen = 255
	// minChangeBytes is the smallest encoding of one change.
	minChangeBytes = 3
)

// Encode returns the wire form of b, compressed when that pays. It fails on
// a batch that breaks the ordering rules or is too large to decode.
func (b *Batch) Encode() ([]byte, error) {
	_, wire, err := b.encode()
	return wire, err
}

// encode returns the uncompressed size of b's encoding and its wire form.
func (b *Batch) encode() (int, []byte, error) {
	if err := b.validate(); err != nil {
		return 0, nil, err
	}
	if len(b.Cluster) > maxClusterLen {
		return 0, nil, fmt.Errorf("%w: cluster id of %d bytes", ErrBadBatch, len(b.Cluster))
	}
	size := 2 + 6*binary.MaxVarintLen64 + len(b.Cluster)
	for _, c := range b.Changes {
		size += 3*binary.MaxVarintLen64 + len(c.Data)
	}
	body := make([]byte, 2, size)
	body[0] = batchVersion
	body = binary.AppendUvarint(body, b.Stream)
	body = binary.AppendUvarint(body, b.Epoch)
	body = binary.AppendUvarint(body, uint64(len(b.Cluster)))
	body = append(body, b.Cluster...)
	body = binary.AppendUvarint(body, b.Prev)
	body = binary.AppendVarint(body, b.ClosedMS)
	body = binary.AppendUvarint(body, uint64(len(b.Changes)))
	prev := b.Prev
	for _, c := range b.Changes {
		body = binary.AppendUvarint(body, c.Index-prev)
		body = binary.AppendVarint(body, c.TimeMS)
		body = binary.AppendUvarint(body, uint64(len(c.Data)))
		body = append(body, c.Data...)
		prev = c.Index
	}
	if len(body)-2 > MaxEncodedBytes {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadBatch, len(body)-2, MaxEncodedBytes)
	}
	if len(body)-2 >= CompressMinBytes {
		z := snappy.Encode(make([]byte, 2, 2+snappy.MaxEncodedLen(len(body)-2))[2:], body[2:])
		if len(z) < len(body)-2 {
			out := make([]byte, 2, 2+len(z))
			out[0], out[1] = batchVersion, flagSnappy
			return len(body), append(out, z...), nil
		}
	}
	return len(body), body, nil
}

// DecodeBatch parses the wire form of a batch. Change data alias p or a
// buffer the decoder allocated. It never panics, checks every length
// against what is left before allocating, and refuses bodies larger than
// MaxEncodedBytes.
func DecodeBatch(p []byte) (Batch, error) {
	if len(p) < 2 {
		return Batch{}, fmt.Errorf("%w: %d bytes", ErrBadBatch, len(p))
	}
	if p[0] != batchVersion {
		return Batch{}, fmt.Errorf("%w: unknown version %d", ErrBadBatch, p[0])
	}
	flags, body := p[1], p[2:]
	if len(body) > MaxEncodedBytes {
		return Batch{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBadBatch, len(body), MaxEncodedBytes)
	}
	switch flags {
	case 0:
	case flagSnappy:
		var err error
		if body, err = unsnappy(body); err != nil {
			return Batch{}, err
		}
	default:
		return Batch{}, fmt.Errorf("%w: unknown flags %#x", ErrBadBatch, flags)
	}
	d := decoder{p: body}
	var b Batch
	b.Stream = d.uvarint()
	b.Epoch = d.uvarint()
	b.Cluster = string(d.bytes(maxClusterLen))
	b.Prev = d.uvarint()
	b.ClosedMS = d.varint()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.p)/minChangeBytes) {
		d.fail("change count")
	}
	if d.err == nil && n > 0 {
		b.Changes = make([]Change, n)
		prev := b.Prev
		for i := range b.Changes {
			delta := d.uvarint()
			if d.err == nil && (delta == 0 || prev+delta < prev) {
				d.fail("change index")
			}
			prev += delta
			b.Changes[i] = Change{Index: prev, TimeMS: d.varint(), Data: d.bytes(len(d.p))}
		}
	}
	if d.err == nil && len(d.p) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Batch{}, d.err
	}
	return b, nil
}

// unsnappy decompresses a snappy body, refusing a claimed size beyond
// MaxEncodedBytes or beyond what snappy can expand to (about 21 times the
// input: a 3-byte copy of 64 bytes) before allocating for it.
func unsnappy(body []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(body)
	if err != nil || n > MaxEncodedBytes || n > 32*len(body) {
		return nil, fmt.Errorf("%w: bad compressed length", ErrBadBatch)
	}
	out, err := snappy.Decode(make([]byte, n), body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBatch, err)
	}
	return out, nil
}

// decoder reads varints and length-prefixed bytes, remembering the first
// failure; after one, every read returns zero.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrBadBatch, what)
	}
	d.p = nil
}

func (d *decoder) uvarint() uint64 {
	v, w := binary.Uvarint(d.p)
	if w <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.p = d.p[w:]
	return v
}

func (d *decoder) varint() int64 {
	v, w := binary.Varint(d.p)
	if w <= 0 {
		d.fail("varint")
		return 0
	}
	d.p = d.p[w:]
	return v
}

// bytes reads a length-prefixed byte string of at most max bytes.
func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) || n > uint64(max) {
		d.fail("length")
		return nil
	}
	v := d.p[:n:n]
	d.p = d.p[n:]
	return v
}
