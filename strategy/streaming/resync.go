package streaming

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/stream"
)

// ResyncChunkBytes is how much data one resync chunk (or merge) carries.
const ResyncChunkBytes = 512 << 10

// BeginResync opens the consistent view a resync ships the stream's
// source from, returns it with its applied index, and marks the resync
// under way.
func (r *Running) BeginResync(db *storage.DB) (*storage.Reader, uint64, error) {
	view := db.NewReader()
	at, err := view.Applied(r.key.Src)
	if err != nil {
		view.Close()
		return nil, 0, err
	}
	r.mu.Lock()
	r.resyncing, r.resyncKeys, r.resyncBytes = true, 0, 0
	r.mu.Unlock()
	return view, at, nil
}

// EndResync closes the view and marks the resync over.
func (r *Running) EndResync(view *storage.Reader) {
	view.Close()
	r.mu.Lock()
	r.resyncing = false
	r.mu.Unlock()
}

// Shipped counts what a resync has sent: progress for the stall
// detection.
func (r *Running) Shipped(keys, bytes int) {
	r.mu.Lock()
	r.resyncKeys += int64(keys)
	r.resyncBytes += int64(bytes)
	r.mu.Unlock()
	r.sender.NoteProgress()
}

// Resync ships the stream's source group's data, as of one applied
// index, to the destination through sink, in chunks read from a
// consistent storage view (nothing but one chunk is held in memory), and
// returns that index. The chunks replace the destination's data.
func (s *Set) Resync(ctx context.Context, r *Running, sink *Sink) (uint64, error) {
	src := r.key.Src
	view, at, err := r.BeginResync(s.env.DB())
	if err != nil {
		return 0, err
	}
	defer r.EndResync(view)
	log := s.env.Logger()
	log.Info("resync started", "from", src, "to", sink.dst.Group, "region", sink.dst.Region, "at", at)
	chunk := stream.Chunk{Stream: src, Epoch: r.epoch, Cluster: s.env.Cluster(), Index: at}
	size := 0
	send := func() error {
		enc, err := chunk.Encode()
		if err != nil {
			return err
		}
		res, err := sink.ProposeChunk(ctx, kv.Command{Op: kv.OpStreamChunk, Args: [][]byte{enc}}.Encode())
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return fmt.Errorf("resync chunk %d: %w", chunk.Seq, err)
		}
		r.Shipped(len(chunk.Pairs)/2, size)
		chunk.Seq++
		chunk.Pairs, chunk.Elems, size = chunk.Pairs[:0], chunk.Elems[:0], 0
		return nil
	}
	var sendErr error
	err = view.Scan(src, nil, func(k, v []byte) bool {
		chunk.Pairs = append(chunk.Pairs, slices.Clone(k), slices.Clone(v))
		size += len(k) + len(v)
		if size >= ResyncChunkBytes {
			sendErr = send()
		}
		return sendErr == nil
	})
	if err = cmp.Or(err, sendErr); err != nil {
		return 0, err
	}
	// The elements of lists and sorted sets, after the records that own
	// them (storage's element span).
	err = view.ScanElements(src, func(k, v []byte) bool {
		chunk.Elems = append(chunk.Elems, slices.Clone(k), slices.Clone(v))
		size += len(k) + len(v)
		if size >= ResyncChunkBytes {
			sendErr = send()
		}
		return sendErr == nil
	})
	if err = cmp.Or(err, sendErr); err != nil {
		return 0, err
	}
	chunk.Last = true
	if err := send(); err != nil {
		return 0, err
	}
	log.Info("resync done", "from", src, "to", sink.dst.Group, "region", sink.dst.Region, "at", at, "seq", chunk.Seq)
	return at, nil
}
