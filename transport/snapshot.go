package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/transport/transportpb"
)

// sendSnapshot streams one MsgSnap to the peer and reports the outcome. It
// runs on its own goroutine so the peer's batch queue keeps flowing.
func (p *peer) sendSnapshot(e Envelope) {
	err := p.streamSnapshot(e)
	ok := err == nil
	if !ok && p.ctx.Err() == nil {
		p.t.log.Warn("snapshot failed", "peer", p.id, "group", e.Group, "err", err)
	}
	p.t.callback(func() {
		if !ok {
			p.t.h.ReportUnreachable(e.Group, p.id)
		}
		p.t.h.ReportSnapshot(e.Group, p.id, ok)
	})
}

func (p *peer) streamSnapshot(e Envelope) error {
	t := p.t
	data, err := proto.Marshal(e.Msg)
	if err != nil {
		return fmt.Errorf("transport: marshal snapshot: %w", err)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	conn, err := p.ready(ctx)
	if err != nil {
		return err
	}
	stream, err := conn.NewStream(p.outgoing(ctx), &transportpb.Transport_ServiceDesc.Streams[1], transportpb.Transport_Snapshot_FullMethodName)
	if err != nil {
		return fmt.Errorf("%w: peer %d: open snapshot stream: %w", ErrUnreachable, p.id, err)
	}

	frames := [][]byte{encodeSnapshotHeader(e.Group, len(data))}
	for off := 0; off < len(data); off += t.cfg.SnapshotChunkBytes {
		frames = append(frames, data[off:min(off+t.cfg.SnapshotChunkBytes, len(data))])
	}

	// Every frame crosses the network as one message on the peer's link, so
	// it is delayed, ordered and partitioned like the batch frames. The
	// first failure (or the last successful write) settles the outcome.
	var (
		mu      sync.Mutex
		settled bool
	)
	result := make(chan error, 1)
	settle := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if !settled {
			settled = true
			result <- err
		}
	}
	isSettled := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return settled
	}
	defer settle(ErrClosed) // keeps late deliveries from writing after we left

	for i, f := range frames {
		last := i == len(frames)-1
		var written bool // only touched by the link's delivery goroutine
		deliver := func() {
			// A chunk duplicated by the network is written once: the
			// stream below is ordered and reliable, like TCP.
			if written || isSettled() {
				return
			}
			written = true
			if err := stream.SendMsg(&transportpb.Frame{Data: f}); err != nil {
				if errors.Is(err, io.EOF) {
					// The receiver ended the stream; its status says why.
					if rerr := stream.RecvMsg(new(transportpb.Done)); rerr != nil && !errors.Is(rerr, io.EOF) {
						err = wrongCluster(rerr)
					}
				}
				settle(fmt.Errorf("%w: peer %d: send snapshot chunk: %w", ErrUnreachable, p.id, err))
				return
			}
			p.sent.Add(uint64(len(f)))
			if last {
				if err := stream.CloseSend(); err != nil {
					settle(fmt.Errorf("%w: peer %d: close snapshot stream: %w", ErrUnreachable, p.id, err))
					return
				}
				settle(nil)
			}
		}
		dropped := func() {
			settle(fmt.Errorf("%w: peer %d: snapshot chunk dropped by the network", ErrUnreachable, p.id))
		}
		if !t.net.SendNotify(t.cfg.NodeID, p.id, deliver, dropped) {
			settle(fmt.Errorf("%w: peer %d: snapshot chunk dropped by the network", ErrUnreachable, p.id))
		}
		if isSettled() {
			break
		}
	}
	select {
	case err := <-result:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ErrClosed
	}
	// The receiver acknowledges once its Handler has the snapshot.
	if err := stream.RecvMsg(new(transportpb.Done)); err != nil {
		return fmt.Errorf("%w: peer %d: snapshot not acknowledged: %w", ErrUnreachable, p.id, wrongCluster(err))
	}
	return nil
}
