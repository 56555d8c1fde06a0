package kv

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/stream"
)

// Tombstone collection in active keyspaces.
//
// A deleted key stays as a tombstone (its state, not live, with every
// operation it reflects in its seen vector) until every region is known to
// have seen everything it reflects; never after a fixed time. Knowledge
// travels in the regions' own logs:
//
//   - Each region's group periodically proposes OpActiveKnow with what it
//     has applied of every region's writes (its own applied index, and its
//     stream cursor of each other region's group: log indexes, which are
//     the sequence numbers of the operations' stamps). The report is
//     shipped to the other regions by the same stream as the region's
//     writes, after them, so a group that applies a report has also
//     applied every write the reporting region made before it. Each group
//     keeps the latest report of each region (pointwise maximum).
//   - OpActiveGC, proposed by a region's group for itself, computes the
//     stable vector, the pointwise minimum of the reports of every region
//     of the keyspace (none collected while one is missing), and removes
//     every tombstone whose seen vector it dominates (crdt.Collectable's
//     rule): every region has seen the delete and everything before it,
//     and nothing concurrent with it can still be on its way.
//
// Both are deterministic: the reports are in the group's log and storage,
// and the collection scans the group's keys in the apply.
//
// OpActiveGC also removes the group's delta records (active.go) of the
// ops that every other region has reported applying (its report's entry
// for this region is its stream cursor of this group's stream).

// knowSuffix is the ledger-span record of a region's latest report.
func knowSuffix(region string) []byte { return append([]byte{'K'}, region...) }

// KnowCommand builds the OpActiveKnow of a region.
func KnowCommand(region string, seen crdt.VersionVector, nowMS int64) Command {
	return Command{Op: OpActiveKnow, NowMS: nowMS, Args: [][]byte{[]byte(region), seen.Encode()}}
}

// GCCommand builds the OpActiveGC of a keyspace's regions.
func GCCommand(regions []string, nowMS int64) Command {
	c := Command{Op: OpActiveGC, NowMS: nowMS}
	for _, r := range regions {
		c.Args = append(c.Args, []byte(r))
	}
	return c
}

func (sm *StateMachine) know(b *storage.Batch, c Command) Result {
	vv, err := crdt.DecodeVersionVector(c.Args[1])
	if err != nil {
		return Result{Err: fmt.Errorf("%w: knowledge report: %w", ErrBadCommand, err)}
	}
	old, ok, err := b.GetLedger(sm.Group, knowSuffix(string(c.Args[0])))
	if err != nil {
		return Result{Err: err}
	}
	if ok {
		prev, err := crdt.DecodeVersionVector(old)
		if err != nil {
			return Result{Err: corrupt(err, "knowledge report of region", c.Args[0])}
		}
		vv = vv.Merge(prev)
	}
	b.SetLedger(sm.Group, knowSuffix(string(c.Args[0])), vv.Encode())
	return Result{}
}

func (sm *StateMachine) collect(b *storage.Batch, c Command) Result {
	var reports []crdt.VersionVector
	for _, r := range c.Args {
		v, ok, err := b.GetLedger(sm.Group, knowSuffix(string(r)))
		if err != nil {
			return Result{Err: err}
		}
		if !ok {
			return Result{} // a region has not reported yet: nothing is stable
		}
		vv, derr := crdt.DecodeVersionVector(v)
		if derr != nil {
			return Result{Err: corrupt(fmt.Errorf("%w: %w", ErrBadRecord, derr), "knowledge report of region", r)}
		}
		reports = append(reports, vv)
	}
	sm.dropDeltas(b, c.Args, reports)
	stable := crdt.StableVector(reports...)
	var doomed [][]byte
	var bad error
	err := b.ScanData(sm.Group, func(k, v []byte) bool {
		rec, err := DecodeRecord(v)
		if err != nil {
			bad = corrupt(err, "record", k)
			return false
		}
		if rec.Type != TypeActive {
			return true
		}
		s, err := decodeActiveState(rec.Payload)
		if err != nil {
			bad = corrupt(err, "active state", k)
			return false
		}
		if s.val.Live() {
			return true
		}
		if stable.Dominates(s.seen) {
			doomed = append(doomed, slices.Clone(k))
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return Result{Err: err}
	}
	for _, k := range doomed {
		b.DeleteData(sm.Group, k)
	}
	return Result{N: int64(len(doomed))}
}

// dropDeltas removes the delta records (active.go) of the ops every other
// region has reported applying: no stream will ship them again, since a
// stream resumes from its destination's cursor. reports are the latest
// reports of regions, in order. The group's own region must be known
// (StateMachine.Region).
func (sm *StateMachine) dropDeltas(b *storage.Batch, regions [][]byte, reports []crdt.VersionVector) {
	if sm.Region == "" {
		return
	}
	upTo := uint64(math.MaxUint64)
	for i, r := range regions {
		if string(r) != sm.Region {
			upTo = min(upTo, reports[i][sm.Region])
		}
	}
	if upTo == 0 {
		return
	}
	end := []byte{deltaPrefix + 1}
	if upTo < math.MaxUint64 {
		end = deltaKey(upTo + 1)
	}
	b.DeleteRange(storage.LedgerKey(sm.Group, []byte{deltaPrefix}), storage.LedgerKey(sm.Group, end))
}

// ReportedApplied returns how far every region of regions other than own
// has reported applying the stream of own's group (the smallest such
// report), read from the group's committed reports; false if one of them
// has not reported yet, math.MaxUint64 if there is no other region.
func ReportedApplied(db *storage.DB, group uint64, own string, regions []string) (uint64, bool, error) {
	floor := uint64(math.MaxUint64)
	for _, r := range regions {
		if r == own {
			continue
		}
		v, ok, err := db.GetLedger(group, knowSuffix(r))
		if err != nil || !ok {
			return 0, false, err
		}
		vv, err := crdt.DecodeVersionVector(v)
		if err != nil {
			return 0, false, fmt.Errorf("%w: knowledge report of %q: %w", ErrBadRecord, r, err)
		}
		floor = min(floor, vv[own])
	}
	return floor, true, nil
}

// StreamCursorCommand builds an OpStreamCursor.
func StreamCursorCommand(source, index uint64) Command {
	return Command{Op: OpStreamCursor, Args: [][]byte{binary.BigEndian.AppendUint64(nil, source), binary.BigEndian.AppendUint64(nil, index)}}
}

func (sm *StateMachine) raiseCursor(b *storage.Batch, c Command) Result {
	src, idx := binary.BigEndian.Uint64(c.Args[0]), binary.BigEndian.Uint64(c.Args[1])
	if src == roleSource || src == ledgerSource || src == restoreSlot || stream.IsResyncSlot(src) || isRoleHistorySlot(src) {
		return Result{Err: fmt.Errorf("%w: cursor slot %d is reserved", ErrBadCommand, src)}
	}
	cur, _, err := b.GetCursor(sm.Group, src)
	if err != nil {
		return Result{Err: err}
	}
	if idx > cur.Index {
		cur.Index = idx
		b.SetCursor(sm.Group, src, cur)
	}
	return Result{N: int64(cur.Index)}
}
