package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meridian-db/meridian/storage"
)

// Replication roles of region-local groups (async keyspaces; docs/DESIGN.md
// 2.2).
//
// Each region-local group records its Role: the keyspace epoch it is in,
// whether it is that epoch's primary (the one group of the shard that
// accepts writes) and whether it is fenced (a primary that stopped taking
// writes so that a switchover can drain it). The role is stored in the
// group's cursor span, under the reserved source 0, so it travels in raft
// snapshots with the data, and is changed only by OpRole, so every replica
// of the group agrees on it at every index.
//
// A write carries the epoch its proposer saw. The group applies it only if
// it is the unfenced primary of exactly that epoch; otherwise nothing is
// applied and the write fails with ErrStaleEpoch, ErrNotPrimary or
// ErrFenced, all of which mean "certainly not applied", so the proposer may
// look up the keyspace again and retry. Groups of sync keyspaces have no
// role (epoch 0) and take writes without an epoch.

// Errors of replication roles.
var (
	// ErrStaleEpoch: the write or role carries an epoch older than the
	// group's.
	ErrStaleEpoch = errors.New("kv: stale replication epoch")
	// ErrNotPrimary: the group is not the primary of the write's epoch (a
	// replica, or a primary whose role for that epoch is not installed yet).
	ErrNotPrimary = errors.New("kv: not the primary region's group")
	// ErrFenced: the primary is fenced for a switchover.
	ErrFenced = errors.New("kv: writes fenced for a switchover")
	// ErrIsPrimary: a stream or resync reached a group that is a primary.
	ErrIsPrimary = errors.New("kv: the group is a primary and takes no stream")
	// ErrEpochAhead: a stream or resync of an epoch the group has not been
	// given its role in yet; the source retries once it has.
	ErrEpochAhead = errors.New("kv: stream from an epoch the group has not installed yet")
)

// roleSource is the cursor slot holding the group's role.
const roleSource = 0

// The role history. A command in a group's log took effect only if the
// group's role at that point admitted it (checkWrite), and a stream that
// ships the log to another region must ship only what took effect: a write
// refused by a fenced or demoted primary is still an entry of its log. So
// every role change is also kept in the cursor span, at slot
// roleHistory+index (index: the OpRole's log index), and RoleHistory and
// Admitted replay the state machine's verdict for any entry of the log.
// The slots lie in [1<<62, 1<<63), between stream sources (group ids) and
// resync progress slots (bit 63, see stream.IsResyncSlot).
const roleHistory = 1 << 62

// isRoleHistorySlot reports whether a cursor slot holds a role change.
func isRoleHistorySlot(source uint64) bool { return source&(3<<62) == roleHistory }

// RoleChange is a role installed at Index of a group's log.
type RoleChange struct {
	Index uint64
	Role  Role
}

// RoleHistory returns the group's role changes in log order.
func RoleHistory(db *storage.DB, group uint64) ([]RoleChange, error) {
	var out []RoleChange
	err := db.CursorRange(group, roleHistory, 1<<63-1, func(source uint64, c storage.Cursor) bool {
		out = append(out, RoleChange{Index: source - roleHistory, Role: roleOf(c)})
		return true
	})
	return out, err
}

// Admitted reports whether the group's state machine let the command at
// index of its log take effect, as far as the group's role decides
// (checkWrite): stream, resync and role commands are never refused here.
// Entries before the first recorded change (a log written before role
// histories were kept) count as admitted.
func Admitted(history []RoleChange, index uint64, c Command) bool {
	switch c.Op {
	case OpStreamApply, OpStreamChunk, OpRole, OpRestoreChunk:
		return true
	}
	i := len(history) - 1
	for i >= 0 && history[i].Index >= index {
		i--
	}
	if i < 0 {
		return len(history) == 0 || checkWrite(Role{}, c.Epoch) == nil
	}
	return checkWrite(history[i].Role, c.Epoch) == nil
}

// Role is a region-local group's replication role.
type Role struct {
	Epoch   uint64
	Primary bool
	Fenced  bool
}

func (r Role) cursor() storage.Cursor {
	var f uint64
	if r.Primary {
		f |= RolePrimary
	}
	if r.Fenced {
		f |= RoleFenced
	}
	return storage.Cursor{Index: f, Epoch: r.Epoch}
}

func roleOf(c storage.Cursor) Role {
	return Role{Epoch: c.Epoch, Primary: c.Index&RolePrimary != 0, Fenced: c.Index&RoleFenced != 0}
}

func (r Role) String() string {
	s := "replica"
	if r.Primary {
		s = "primary"
	}
	if r.Fenced {
		s += " (fenced)"
	}
	return fmt.Sprintf("%s at epoch %d", s, r.Epoch)
}

// LoadRole returns a group's committed role.
func LoadRole(db *storage.DB, group uint64) (Role, error) {
	c, _, err := db.Cursor(group, roleSource)
	return roleOf(c), err
}

func loadRole(b *storage.Batch, group uint64) (Role, error) {
	c, _, err := b.GetCursor(group, roleSource)
	return roleOf(c), err
}

// CheckStream decides whether a replica group may take a stream batch or
// resync chunk of the given epoch (older epochs are refused by package
// stream, with ErrStaleEpoch).
func CheckStream(r Role, epoch uint64) error {
	switch {
	case epoch > r.Epoch:
		return fmt.Errorf("%w: stream at epoch %d, group is %v", ErrEpochAhead, epoch, r)
	case r.Primary && epoch == r.Epoch:
		return fmt.Errorf("%w: group is %v", ErrIsPrimary, r)
	}
	return nil
}

// checkWrite decides whether a write of the given epoch may apply.
func checkWrite(r Role, epoch uint64) error {
	switch {
	case r.Epoch == 0 && epoch == 0:
		return nil
	case epoch < r.Epoch:
		return fmt.Errorf("%w: write at epoch %d, group is %v", ErrStaleEpoch, epoch, r)
	case epoch > r.Epoch || !r.Primary:
		return fmt.Errorf("%w: write at epoch %d, group is %v", ErrNotPrimary, epoch, r)
	case r.Fenced:
		return fmt.Errorf("%w: group is %v", ErrFenced, r)
	}
	return nil
}

// RoleCommand builds an OpRole command. watch, if not zero, is the stream
// whose cursor the result reports; initSource/initIndex, if initSource is
// not zero, raise that stream's cursor.
func RoleCommand(r Role, watch, initSource, initIndex uint64) Command {
	c := Command{Op: OpRole, Int: int64(r.Epoch), Flags: r.cursor().Index, Args: [][]byte{nil}}
	if watch != 0 {
		c.Args[0] = binary.BigEndian.AppendUint64(nil, watch)
	}
	if initSource != 0 {
		c.Args = append(c.Args, binary.BigEndian.AppendUint64(nil, initSource), binary.BigEndian.AppendUint64(nil, initIndex))
	}
	return c
}

func (sm *StateMachine) role(b *storage.Batch, index uint64, c Command) Result {
	if c.Int <= 0 || c.Flags&^(RolePrimary|RoleFenced) != 0 {
		return Result{Err: fmt.Errorf("%w: role with epoch %d and flags %#x", ErrBadCommand, c.Int, c.Flags)}
	}
	for _, a := range c.Args {
		if len(a) != 0 && len(a) != 8 {
			return Result{Err: fmt.Errorf("%w: role argument of %d bytes", ErrBadCommand, len(a))}
		}
	}
	cur, err := loadRole(b, sm.Group)
	if err != nil {
		return Result{Err: err}
	}
	next := roleOf(storage.Cursor{Index: c.Flags, Epoch: uint64(c.Int)})
	if next.Epoch < cur.Epoch {
		return Result{Err: fmt.Errorf("%w: role %v, group is %v", ErrStaleEpoch, next, cur)}
	}
	b.SetCursor(sm.Group, roleSource, next.cursor())
	b.SetCursor(sm.Group, roleHistory+index, next.cursor())
	if len(c.Args) == 3 && len(c.Args[1]) == 8 && len(c.Args[2]) == 8 {
		src, idx := binary.BigEndian.Uint64(c.Args[1]), binary.BigEndian.Uint64(c.Args[2])
		cc, _, err := b.GetCursor(sm.Group, src)
		if err != nil {
			return Result{Err: err}
		}
		// The stream's position in the new epoch (see stream.Check: a
		// cursor of an older epoch is none), never lower than it was.
		if idx > cc.Index || (idx == cc.Index && cc.Epoch < next.Epoch) {
			b.SetCursor(sm.Group, src, storage.Cursor{Index: idx, ClosedMS: cc.ClosedMS, Epoch: max(cc.Epoch, next.Epoch)})
		}
	}
	var res Result
	if len(c.Args[0]) == 8 {
		cc, _, err := b.GetCursor(sm.Group, binary.BigEndian.Uint64(c.Args[0]))
		if err != nil {
			return Result{Err: err}
		}
		res.N = int64(cc.Index)
	}
	return res
}
