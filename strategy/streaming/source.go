package streaming

import (
	"errors"
	"fmt"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// groupLog is a source group's applied log, as a stream reads it
// (stream.Log).
type groupLog struct {
	env    strategy.Env
	group  uint64
	notify <-chan struct{}
	change func(db *storage.DB, group, index uint64, cmd []byte) ([]byte, error)
}

func newGroupLog(env strategy.Env, group uint64, change func(*storage.DB, uint64, uint64, []byte) ([]byte, error)) (*groupLog, func()) {
	l := &groupLog{env: env, group: group, change: change}
	ch, cancel, err := env.Host().SubscribeApplied(group)
	if err != nil {
		// Not hosted (any more): the sender finds nothing to read and is
		// stopped by the next reconcile.
		c := make(chan struct{})
		l.notify = c
		return l, func() {}
	}
	l.notify = ch
	return l, cancel
}

// Applied returns the applied index and the source's closed timestamp:
// the promise of this node's lease on the group (strategy.Env.Closed: a
// leader that lost its lease, or an async group that no longer acts as
// the primary, promises nothing: 0). The promise covers an index at or
// below the applied one read after it, so it holds for the applied index
// too.
func (l *groupLog) Applied() (uint64, int64) {
	_, closed, _ := l.env.Closed(l.group)
	st, _ := l.env.Host().Status(l.group)
	return st.Applied, closed
}

func (l *groupLog) Read(from, to uint64, maxBytes int) ([]stream.Change, error) {
	ents, err := l.env.Host().ReadCommitted(l.group, from, to, maxBytes)
	if errors.Is(err, raftgroup.ErrCompacted) {
		return nil, fmt.Errorf("%w: %w", stream.ErrCompacted, err)
	}
	if err != nil {
		return nil, err
	}
	// Only what took effect here is shipped: a write the group refused (a
	// fenced or demoted primary's) is an entry of its log all the same.
	db := l.env.DB()
	history, err := kv.RoleHistory(db, l.group)
	if err != nil {
		return nil, err
	}
	out := make([]stream.Change, len(ents))
	for i, e := range ents {
		out[i] = stream.Change{Index: e.Index, Data: e.Command}
		if len(e.Command) == 0 {
			continue
		}
		c, err := kv.DecodeCommand(e.Command)
		if err == nil {
			out[i].TimeMS = c.NowMS
			if !kv.Admitted(history, e.Index, c) {
				out[i].Data = nil
				continue
			}
		}
		if l.change != nil {
			data, err := l.change(db, l.group, e.Index, e.Command)
			if err != nil {
				return nil, fmt.Errorf("change at %d: %w", e.Index, err)
			}
			out[i].Data = data
		}
	}
	return out, nil
}

// Notify is told by the host whenever the group applies entries.
func (l *groupLog) Notify() <-chan struct{} { return l.notify }
