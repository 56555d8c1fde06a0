package kv

import (
	"fmt"

	"github.com/meridian-db/meridian/storage"
)

// Result is what applying a command returns to its proposer.
type Result struct {
	// Value is the previous value (OpSet with FlagGet).
	Value []byte
	// Found tells whether Value holds something.
	Found bool
	// N is a count (OpDelete: keys removed) or, for OpSet, 1 if the value
	// was written and 0 if a condition (NX/XX) prevented it.
	N int64
	// Err is a command error (wrong type, bad command); nothing was applied.
	Err error
}

// StateMachine applies kv commands to one group's data.
type StateMachine struct {
	Group uint64
	// OnApplied, if set, is called after applied commands are durable.
	OnApplied func(index uint64)
}

// Apply implements raftgroup.StateMachine. The expiry of existing records is
// judged against the command's own time (Int for writes that carry one,
// otherwise records are treated as live), never the local clock.
func (sm *StateMachine) Apply(b *storage.Batch, index uint64, cmd []byte) any {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return Result{Err: err}
	}
	switch c.Op {
	case OpSet:
		return sm.applySet(b, c)
	case OpDelete:
		var n int64
		for _, k := range c.Args {
			if _, ok, err := b.GetData(sm.Group, k); err != nil {
				return Result{Err: err}
			} else if ok {
				n++
				b.DeleteData(sm.Group, k)
			}
		}
		return Result{N: n}
	default:
		return Result{Err: fmt.Errorf("%w: unknown op %d", ErrBadCommand, c.Op)}
	}
}

func (sm *StateMachine) applySet(b *storage.Batch, c Command) Result {
	if len(c.Args) != 2 {
		return Result{Err: fmt.Errorf("%w: set takes 2 arguments", ErrBadCommand)}
	}
	key, val := c.Args[0], c.Args[1]
	old, exists, err := b.GetData(sm.Group, key)
	if err != nil {
		return Result{Err: err}
	}
	var rec Record
	if exists {
		if rec, err = DecodeRecord(old); err != nil {
			return Result{Err: err}
		}
	}
	var res Result
	if c.Flags&FlagGet != 0 && exists {
		if rec.Type != TypeString {
			return Result{Err: ErrWrongType}
		}
		res.Value, res.Found = rec.Payload, true
	}
	if (c.Flags&FlagNX != 0 && exists) || (c.Flags&FlagXX != 0 && !exists) {
		return res
	}
	expire := c.Int
	if c.Flags&FlagKeepTTL != 0 && exists {
		expire = rec.ExpireAtMS
	}
	b.SetData(sm.Group, key, Record{Type: TypeString, ExpireAtMS: expire, Payload: val}.Encode())
	res.N = 1
	return res
}

// Applied implements raftgroup.StateMachine.
func (sm *StateMachine) Applied(index uint64, restored bool) {
	if sm.OnApplied != nil {
		sm.OnApplied(index)
	}
}

// Get reads a key's live record from committed storage. nowMS decides
// expiry (reads are not replicated, so they may use the local clock).
func Get(db *storage.DB, group uint64, key []byte, nowMS int64) (Record, bool, error) {
	v, ok, err := db.Get(group, key)
	if err != nil || !ok {
		return Record{}, false, err
	}
	rec, err := DecodeRecord(v)
	if err != nil {
		return Record{}, false, err
	}
	if rec.Expired(nowMS) {
		return Record{}, false, nil
	}
	return rec, true, nil
}
