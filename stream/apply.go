package stream

import (
	"errors"
	"fmt"

	"github.com/meridian-db/meridian/storage"
)

// ErrStaleEpoch is returned by a destination (and by Sink.Send) when a batch
// carries an epoch lower than one the destination has already seen: the
// source is a former primary and must stop shipping.
var ErrStaleEpoch = errors.New("stream: stale epoch")

// ErrWrongCluster is returned when a batch comes from another cluster.
var ErrWrongCluster = errors.New("stream: batch from another cluster")

// ErrGap is returned when a batch follows a source index the destination
// has not reached: changes in between are missing. The Ack returned with it
// carries the destination's position, from which the source resends.
var ErrGap = errors.New("stream: gap before batch")

// Ack is the destination's answer to a batch.
type Ack struct {
	// Applied is the destination's cursor: the source index up to which
	// every change has been applied.
	Applied uint64
	// Epoch is the highest epoch the destination has seen on the stream.
	Epoch uint64
}

// Check decides whether a destination whose cursor for the batch's stream
// is cur takes the batch (Apply's rules: cluster, epoch at least
// max(epoch, cur.Epoch), ordering, no gap after the cursor) and returns the
// destination's answer. It reads nothing, so a replica can answer a
// heartbeat with it without applying anything.
func Check(cur storage.Cursor, cluster string, batch Batch, epoch uint64) (Ack, error) {
	if batch.Cluster != cluster {
		return Ack{}, fmt.Errorf("%w: batch from %q, this is %q", ErrWrongCluster, batch.Cluster, cluster)
	}
	floor := max(epoch, cur.Epoch)
	ack := Ack{Applied: position(cur, batch), Epoch: floor}
	if batch.Epoch < floor {
		return ack, fmt.Errorf("%w: batch epoch %d, destination at %d", ErrStaleEpoch, batch.Epoch, floor)
	}
	if err := batch.validate(); err != nil {
		return ack, err
	}
	if batch.Prev > ack.Applied {
		return ack, fmt.Errorf("%w: batch follows %d, destination at %d (cursor %d of epoch %d)", ErrGap, batch.Prev, ack.Applied, cur.Index, cur.Epoch)
	}
	return ack, nil
}

// position is where a destination whose cursor is cur stands in the stream
// of batch's epoch. A cursor of an older epoch is no position in it: the
// source was a replica in between, and what its log holds from then (the
// stream batches it took from that epoch's primary) is not shipped on, so
// the destination may lack some of it. It starts again from nothing (the
// sender resyncs), unless whoever changed the primary set the cursor in
// the new epoch (a switchover does, for every region that drained).
func position(cur storage.Cursor, batch Batch) uint64 {
	if batch.Epoch > cur.Epoch {
		return 0
	}
	return cur.Index
}

// ApplyFunc stages one change into the destination group's storage batch.
// It must be deterministic. An error aborts the whole batch.
type ApplyFunc func(b *storage.Batch, c Change) error

// Apply stages a received batch into the destination group's storage batch
// b: the changes the group has not yet applied, in order, through apply, and
// the group's new cursor for the stream, in the same batch, so that the data
// and the position it reflects commit together.
//
// cluster is the destination's cluster id and epoch the lowest epoch it
// accepts; the cursor's own epoch raises that floor. A batch from another
// cluster, from a stale epoch, breaking the ordering rules, or following an
// index the cursor has not reached (ErrGap) is refused and nothing is
// staged. Changes at or below the cursor are skipped, so any redelivery,
// duplication or reordering of batches leaves the same state as a single
// in-order delivery. A heartbeat, and every batch, can only raise the
// cursor's closed timestamp.
//
// If apply fails, Apply returns its error and b holds part of the batch:
// the caller must discard b. Apply reads nothing but b, so it can run
// inside a raft state machine's Apply.
func Apply(b *storage.Batch, group uint64, cluster string, batch Batch, epoch uint64, apply ApplyFunc) (Ack, error) {
	cur, _, err := b.GetCursor(group, batch.Stream)
	if err != nil {
		return Ack{}, err
	}
	ack, err := Check(cur, cluster, batch, epoch)
	if err != nil {
		return ack, err
	}
	from := ack.Applied
	for _, c := range batch.Changes {
		if c.Index <= from {
			continue
		}
		if err := apply(b, c); err != nil {
			return ack, fmt.Errorf("stream: apply change %d of stream %d: %w", c.Index, batch.Stream, err)
		}
	}
	next := storage.Cursor{
		Index:    max(from, batch.Last()),
		ClosedMS: max(cur.ClosedMS, batch.ClosedMS),
		Epoch:    batch.Epoch,
	}
	if next != cur {
		b.SetCursor(group, batch.Stream, next)
	}
	return Ack{Applied: next.Index, Epoch: next.Epoch}, nil
}
