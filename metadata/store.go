package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/meridian-db/meridian/storage"
)

var stateKey = []byte("state")

// Command is a metadata change.
type Command struct {
	// Op is "init_cluster", "add_node", "create_keyspace",
	// "switch_primary", "lost_writes", "alter_regions", "user",
	// "finish_restore", "cancel_restore" or "backup_schedule".
	Op   string    `json:"op"`
	Node *NodeInfo `json:"node,omitempty"`
	// IfAbsent makes add_node change nothing when the node is already
	// recorded (a node registering a peer it heard of must never overwrite
	// what that peer registered about itself).
	IfAbsent bool           `json:"if_absent,omitempty"`
	Keyspace *Keyspace      `json:"keyspace,omitempty"`
	Switch   *SwitchPrimary `json:"switch,omitempty"`
	Lost     *LostWrites    `json:"lost,omitempty"`
	Alter    *AlterRegions  `json:"alter,omitempty"`
	Init     *InitCluster   `json:"init,omitempty"`
	User     *UserCommand   `json:"user,omitempty"`
	// Restores and backup schedules (backup.go).
	Finish   *FinishRestore  `json:"finish,omitempty"`
	Cancel   *CancelRestore  `json:"cancel,omitempty"`
	Schedule *BackupSchedule `json:"schedule,omitempty"`
}

// Encode returns the command's log encoding.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("metadata: encode command: %v", err))
	}
	return b
}

// ApplyResult is the result of an applied command.
type ApplyResult struct {
	Keyspace *Keyspace
	Err      error
}

// Store is the state machine of the system group and the node's view of
// the committed metadata. Apply runs on the raft loop; readers use State.
type Store struct {
	db *storage.DB

	// state is the committed state, read without a lock: every request
	// reads it, and a lock word shared by every core costs more than the
	// read.
	state   atomic.Pointer[State]
	pending *State // applied in the batch being built, not yet committed (raft loop only)
	mu      sync.Mutex
	changed chan struct{} // closed when state next changes; under mu
}

// Open loads the committed metadata from the node's storage.
func Open(db *storage.DB) (*Store, error) {
	s := &Store{db: db, changed: make(chan struct{})}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

func (s *Store) load() (*State, error) {
	v, ok, err := s.db.Get(SystemGroup, stateKey)
	if err != nil {
		return nil, err
	}
	st := newState()
	if ok {
		if err := json.Unmarshal(v, st); err != nil {
			return nil, fmt.Errorf("metadata: stored state: %w", err)
		}
	}
	return st, nil
}

// State returns the committed state. Callers must not modify it.
func (s *Store) State() *State {
	return s.state.Load()
}

// Changed returns a channel closed at the next committed change.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Keyspace returns a keyspace by name. A keyspace being restored is
// hidden (backup.go): its name is unknown here, wrapping ErrRestoring too.
func (s *Store) Keyspace(name string) (*Keyspace, error) {
	ks := s.State().Keyspaces[name]
	if ks == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKeyspace, name)
	}
	if ks.Restore != nil {
		return nil, fmt.Errorf("%w: %w: %q (restore %s, into %q)", ErrUnknownKeyspace, ErrRestoring, name, ks.Restore.ID, ks.Restore.Target)
	}
	return ks, nil
}

// errEncode marks a failure to encode the state or one of its records: a
// failure of this replica, never a command's result.
var errEncode = errors.New("metadata: cannot encode the state")

func clone(st *State) (*State, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errEncode, err)
	}
	out := newState()
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%w: decode a copy: %w", errEncode, err)
	}
	return out, nil
}

// Apply implements raftgroup.StateMachine.
//
// A command the proposer got wrong (it does not decode as JSON, lacks its
// arguments, names an unknown keyspace, a stale epoch...) fails the same
// way on every replica: its error is the result (ApplyResult.Err) and
// nothing changes. Failures of this replica are returned as the error,
// which stops the node (see package raftgroup): the state cannot be
// encoded, or the op is unknown to this binary (ErrUnsupported: a newer
// binary proposed it, and replicas running that binary apply it).
// Unknown JSON fields are not detected: a field a newer binary adds is
// ignored by an older one, so binaries that add fields to commands must
// not be mixed with older ones in one cluster.
func (s *Store) Apply(b *storage.Batch, index uint64, cmd []byte) (any, error) {
	res := s.apply(b, index, cmd)
	if res.Err != nil && (errors.Is(res.Err, errEncode) || errors.Is(res.Err, ErrUnsupported)) {
		return nil, fmt.Errorf("metadata: applying entry %d: %w", index, res.Err)
	}
	return res, nil
}

func (s *Store) apply(b *storage.Batch, index uint64, cmd []byte) ApplyResult {
	var c Command
	if err := json.Unmarshal(cmd, &c); err != nil {
		return ApplyResult{Err: fmt.Errorf("%w: %w", ErrBadCommand, err)}
	}
	base := s.pending
	if base == nil {
		base = s.State()
	}
	st, err := clone(base)
	if err != nil {
		return ApplyResult{Err: err}
	}
	var res ApplyResult
	switch c.Op {
	case "add_node":
		if c.Node == nil || c.Node.ID == 0 || c.Node.Region == "" {
			return ApplyResult{Err: fmt.Errorf("%w: add_node needs an id and a region", ErrBadCommand)}
		}
		if _, ok := st.Nodes[c.Node.ID]; ok && c.IfAbsent {
			return res
		}
		st.Nodes[c.Node.ID] = *c.Node
	case "create_keyspace":
		ks := c.Keyspace
		if ks == nil {
			return ApplyResult{Err: fmt.Errorf("%w: create_keyspace without keyspace", ErrBadCommand)}
		}
		if st.Keyspaces[ks.Name] != nil {
			return ApplyResult{Err: fmt.Errorf("%w: %q", ErrKeyspaceExists, ks.Name)}
		}
		for i := range ks.Shards {
			for _, id := range ks.Shards[i].Replicas {
				if _, ok := st.Nodes[id]; !ok {
					return ApplyResult{Err: fmt.Errorf("%w: shard %d placed on unknown node %d", ErrPlacement, i, id)}
				}
			}
			ks.Shards[i].Group = st.NextGroup
			ks.Shards[i].Initial = append([]uint64(nil), ks.Shards[i].Replicas...)
			st.NextGroup++
			for j := range ks.Shards[i].Regional {
				rg := &ks.Shards[i].Regional[j]
				for _, id := range rg.Replicas {
					if _, ok := st.Nodes[id]; !ok {
						return ApplyResult{Err: fmt.Errorf("%w: shard %d placed on unknown node %d", ErrPlacement, i, id)}
					}
				}
				rg.Initial = append([]uint64(nil), rg.Replicas...)
				if rg.Region == ks.HomeRegion {
					rg.Group = ks.Shards[i].Group
				} else {
					rg.Group = st.NextGroup
					st.NextGroup++
				}
			}
		}
		ks.CreatedIndex = index
		if ks.Strategy == Async {
			ks.Epoch = 1
		}
		st.Keyspaces[ks.Name] = ks
		res.Keyspace = ks
	case "switch_primary", "lost_writes", "alter_regions", "finish_restore", "cancel_restore", "backup_schedule":
		var err error
		switch {
		case c.Op == "finish_restore" && c.Finish != nil:
			err = s.applyFinishRestore(st, c.Finish)
		case c.Op == "cancel_restore" && c.Cancel != nil:
			err = s.applyCancelRestore(st, c.Cancel)
		case c.Op == "backup_schedule" && c.Schedule != nil:
			err = s.applySchedule(st, c.Schedule)
		case c.Op == "switch_primary" && c.Switch != nil:
			err = s.applySwitch(st, c.Switch)
		case c.Op == "lost_writes" && c.Lost != nil:
			err = s.applyLost(b, st, c.Lost)
		case c.Op == "alter_regions" && c.Alter != nil:
			err = s.applyAlter(st, c.Alter)
		default:
			err = fmt.Errorf("%w: %s without its arguments", ErrBadCommand, c.Op)
		}
		if err != nil {
			return ApplyResult{Err: err}
		}
	case "user":
		if err := applyUser(st, index, c.User); err != nil {
			return ApplyResult{Err: err}
		}
	case "init_cluster":
		if c.Init == nil {
			return ApplyResult{Err: fmt.Errorf("%w: init_cluster without its members", ErrBadCommand)}
		}
		if err := s.applyInit(st, c.Init); err != nil {
			return ApplyResult{Err: err}
		}
	default:
		return ApplyResult{Err: fmt.Errorf("%w: %w: %q", ErrBadCommand, ErrUnsupported, c.Op)}
	}
	st.Index = index
	v, err := json.Marshal(st)
	if err != nil {
		return ApplyResult{Err: fmt.Errorf("%w: %w", errEncode, err)}
	}
	b.SetData(SystemGroup, stateKey, v)
	s.pending = st
	return res
}

// Applied implements raftgroup.StateMachine. After a snapshot it reloads
// the state from storage; failing to read back what this node just
// committed means its storage is broken, and the error stops the node.
func (s *Store) Applied(index uint64, restored bool) error {
	st := s.pending
	if restored || st == nil {
		loaded, err := s.load()
		if err != nil {
			return fmt.Errorf("metadata: reload after index %d: %w", index, err)
		}
		st = loaded
	}
	s.mu.Lock()
	s.state.Store(st) // before the channel closes: a woken waiter reads st
	s.pending = nil
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}
