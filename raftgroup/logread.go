package raftgroup

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/meridian-db/meridian/hlc"
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
	// membership change, a mark).
	Command []byte
	// Stamp is the entry's commit stamp (zero if it has none: see
	// envelope.go).
	Stamp hlc.Timestamp
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
		if e.GetType() == pb.EntryNormal {
			env, ok, err := decodeEnvelope(e.GetData())
			if err != nil {
				return nil, fmt.Errorf("raftgroup: group %d: entry %d: %w", groupID, e.GetIndex(), err)
			}
			if ok && !env.mark {
				le.Command = env.cmd
			}
			le.Stamp = env.stamp
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
	return h.RetainFor(groupID, "", index)
}

// RetainFor is RetainFrom for one of several holders of a group's log
// (streams use holder "", the backup archiver its own): the log keeps
// what the most demanding of them still needs. Index 0 withdraws the
// holder's wish.
func (h *Host) RetainFor(groupID uint64, holder string, index uint64) error {
	g := h.group(groupID)
	if g == nil {
		return fmt.Errorf("%w: %d", ErrUnknownGroup, groupID)
	}
	g.retainMu.Lock()
	defer g.retainMu.Unlock()
	if g.retainBy == nil {
		g.retainBy = map[string]uint64{}
	}
	if index == 0 {
		delete(g.retainBy, holder)
	} else {
		g.retainBy[holder] = index
	}
	var floor uint64
	for _, i := range g.retainBy {
		if floor == 0 || i < floor {
			floor = i
		}
	}
	g.retain.Store(floor)
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
