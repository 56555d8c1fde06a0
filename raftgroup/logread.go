package raftgroup

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// ErrCompacted is returned by ReadCommitted when the requested entries have
// been truncated from the log (the reader must catch up from a snapshot).
var ErrCompacted = errors.New("raftgroup: log entries compacted")

// LogEntry is one committed and applied entry of a group's log, as a
// stream source ships it.
type LogEntry struct {
	Index uint64
	// Command is the state machine command (without the proposal id), or
	// nil for an entry that carries none (a leader's empty entry, a
	// membership change).
	Command []byte
}

// ReadCommitted returns the group's applied entries with index in
// (from, to], at most about maxBytes of them but at least one if any is
// available, in order and without gaps. It may be called from any
// goroutine; entries up to the applied index are durable and immutable.
func (h *Host) ReadCommitted(groupID, from, to uint64, maxBytes int) ([]LogEntry, error) {
	g := h.group(groupID)
	if g == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
	}
	applied := g.store.Applied().Index
	if to > applied {
		to = applied
	}
	if from >= to {
		return nil, nil
	}
	// Every replica of a group starts from the same empty state at
	// bootstrapIndex: a reader starting before it reads empty entries.
	if idx, _ := g.store.Truncated(); idx == bootstrapIndex && from < bootstrapIndex {
		var out []LogEntry
		for i := from + 1; i <= min(to, bootstrapIndex); i++ {
			out = append(out, LogEntry{Index: i})
		}
		return out, nil
	}
	ents, err := g.store.Entries(from+1, to+1, uint64(max(maxBytes, 1)))
	if errors.Is(err, raft.ErrCompacted) {
		first, _ := g.store.Bounds()
		return nil, fmt.Errorf("%w: group %d needs index %d, log starts at %d", ErrCompacted, groupID, from+1, first)
	}
	if err != nil {
		return nil, err
	}
	out := make([]LogEntry, 0, len(ents))
	for _, e := range ents {
		le := LogEntry{Index: e.GetIndex()}
		if e.GetType() == pb.EntryNormal && len(e.GetData()) >= 8 {
			le.Command = e.GetData()[8:]
		}
		out = append(out, le)
	}
	return out, nil
}

// RetainFrom keeps the group's log entries after index from being
// truncated (0 lifts the limit): a stream source sets it to what its
// slowest destination has acknowledged, so that a lagging region's
// backlog stays on disk at the source rather than forcing a snapshot.
func (h *Host) RetainFrom(groupID, index uint64) error {
	g := h.group(groupID)
	if g == nil {
		return fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
	}
	g.retain.Store(index)
	return nil
}

// SubscribeApplied returns a channel that receives a value (coalesced)
// whenever the group's applied index advances on this node, and a function
// that ends the subscription.
func (h *Host) SubscribeApplied(groupID uint64) (<-chan struct{}, func(), error) {
	g := h.group(groupID)
	if g == nil {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
	}
	ch := make(chan struct{}, 1)
	g.subMu.Lock()
	if g.subs == nil {
		g.subs = map[chan struct{}]struct{}{}
	}
	g.subs[ch] = struct{}{}
	g.subMu.Unlock()
	return ch, func() {
		g.subMu.Lock()
		delete(g.subs, ch)
		g.subMu.Unlock()
	}, nil
}
