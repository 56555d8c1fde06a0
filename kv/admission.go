package kv

import (
	"errors"
	"fmt"
)

// Admission: which ops a group's state machine applies.
//
// Every replication strategy runs its groups on this package's data model,
// but a group applies only the ops its strategy defines: a sync group has
// no roles, streams or CRDTs; an async group no CRDTs; an active group no
// plain data ops (its writes are stamped CRDT ops) and no roles. Each
// strategy gives its machines an Admission (StateMachine.Admits), a table
// keyed by op; a command of another op is refused as a command error
// (ErrRefused, with ErrBadCommand), the same on every replica, since the
// table is the group's configuration (its keyspace's strategy, fixed when
// the group is created). A stream batch carrying such an op is refused
// whole.
//
// A new data op needs no change here: Op.Data is true for every op that
// is not one of replication's (roles, streams, active keyspaces) or a
// restore's, and AdmitData admits all of them. Every strategy admits
// restore chunks (OpRestoreChunk, restore.go) explicitly: a restore loads
// any keyspace's groups through their logs. An op this binary does not know is still
// fatal (ErrUnsupported): the argument check runs before admission.

// ErrRefused is wrapped, with ErrBadCommand, by the error of a command
// whose op the group's strategy does not apply (see Admission). Nothing
// was applied.
var ErrRefused = errors.New("kv: op not applied by groups of this strategy")

// Data reports whether o is a plain data op (a client write of a sync or
// async keyspace): any op but roles, streams, restores and the ops of
// active keyspaces. Ops added later are data ops unless listed here.
func (o Op) Data() bool {
	switch o {
	case OpRole, OpStreamApply, OpStreamChunk, OpStreamCursor, OpActiveKnow, OpActiveGC, OpRestoreChunk:
		return false
	}
	return !o.active()
}

// Admission is the set of ops a group's state machine applies. The nil
// Admission applies every op.
type Admission struct {
	name string // the strategy, for messages
	ops  [4]uint64
}

// Admit returns the Admission of the named strategy applying ops.
func Admit(name string, ops ...Op) *Admission {
	a := &Admission{name: name}
	for _, o := range ops {
		a.ops[o/64] |= 1 << (o % 64)
	}
	return a
}

// AdmitData returns the Admission of the named strategy applying every
// data op (Op.Data) and extra.
func AdmitData(name string, extra ...Op) *Admission {
	a := Admit(name, extra...)
	for o := range 256 {
		if Op(o).Data() {
			a.ops[o/64] |= 1 << (o % 64)
		}
	}
	return a
}

// ActiveOps are the ops of active keyspaces: the local ops (the command
// engine's, OpActiveRedis, among them), merges, knowledge reports,
// tombstone collection and the cursor raised after a resync by merges.
func ActiveOps() []Op {
	return []Op{OpActiveSet, OpActiveDel, OpActiveIncr, OpActiveSAdd, OpActiveSRem, OpActiveHSet, OpActiveHDel,
		OpActiveRedis, OpActiveMerge, OpActiveKnow, OpActiveGC, OpStreamCursor}
}

// Admits reports whether the machine applies op.
func (a *Admission) Admits(op Op) bool {
	return a == nil || a.ops[op/64]&(1<<(op%64)) != 0
}

// Name returns the strategy's name ("" for the nil Admission).
func (a *Admission) Name() string {
	if a == nil {
		return ""
	}
	return a.name
}

// refuse is the command error of an op the group does not apply.
func (a *Admission) refuse(group uint64, op Op) error {
	return fmt.Errorf("%w: %w: %s in group %d of a %s keyspace", ErrBadCommand, ErrRefused, op, group, a.name)
}
