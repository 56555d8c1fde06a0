package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrCorrupt is returned when persisted state (raft's, an applied state, a
// stream cursor) cannot be decoded: the node's storage is damaged, or was
// written by a binary that encodes it differently.
var ErrCorrupt = errors.New("storage: corrupt stored state")

// maxCachedEntries bounds the in-memory tail of the log kept per group so
// that applying committed entries and replicating to up-to-date followers
// do not read Pebble: at least the last maxCachedEntries entries are kept,
// at most twice as many.
const maxCachedEntries = 512

// AppliedState is what a group has applied: the index and the
// configuration in force at that index. It is written in the same batch as
// the effects of the entries it covers.
type AppliedState struct {
	Index     uint64
	ConfState *pb.ConfState
}

// LogStore is the raft.Storage of one group. Its methods are called from the
// raftgroup host's loop (writes and raft's reads) and may also be called
// concurrently for status, hence the mutex.
type LogStore struct {
	db    *DB
	group uint64

	mu        sync.Mutex
	hard      *pb.HardState
	applied   AppliedState
	truncIdx  uint64
	truncTerm uint64
	last      uint64
	cache     []*pb.Entry // consecutive entries ending at last (may be empty)
	// appliedCS and appliedEnc: the configuration StageApplied last wrote
	// (its own copy) and its encoding.
	appliedCS  *pb.ConfState
	appliedEnc []byte

	// SnapshotFunc builds a snapshot of the group's current applied state.
	// Set by the host; raft calls Snapshot when a follower needs one.
	SnapshotFunc func() (*pb.Snapshot, error)
}

// LoadLogStore reads a group's raft state. A group with no state has
// everything zero (an empty replica waiting for a snapshot or bootstrap).
func (db *DB) LoadLogStore(group uint64) (*LogStore, error) {
	s := &LogStore{db: db, group: group, hard: &pb.HardState{}}
	if v, ok, err := db.get(raftKey(group, suffixHardState)); err != nil {
		return nil, err
	} else if ok {
		if err := proto.Unmarshal(v, s.hard); err != nil {
			return nil, fmt.Errorf("%w: hard state of group %d: %w", ErrCorrupt, group, err)
		}
	}
	ap, err := db.loadApplied(group)
	if err != nil {
		return nil, err
	}
	s.applied = ap
	if v, ok, err := db.get(raftKey(group, suffixTruncated)); err != nil {
		return nil, err
	} else if ok {
		if len(v) != 16 {
			return nil, fmt.Errorf("%w: truncated state of group %d", ErrCorrupt, group)
		}
		s.truncIdx, s.truncTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	s.last = s.truncIdx
	// The last entry: seek to the end of the group's log span.
	lo, hi := logKey(group, 0), logKey(group, ^uint64(0))
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	defer it.Close()
	if it.SeekLT(hi) && len(it.Key()) == len(lo) && string(it.Key()[:10]) == string(lo[:10]) {
		s.last = binary.BigEndian.Uint64(it.Key()[10:])
	}
	if s.last < s.truncIdx {
		return nil, fmt.Errorf("%w: group %d log ends at %d before its truncation point %d", ErrCorrupt, group, s.last, s.truncIdx)
	}
	return s, nil
}

func (db *DB) loadApplied(group uint64) (AppliedState, error) {
	v, ok, err := db.get(raftKey(group, suffixApplied))
	if err != nil || !ok {
		return AppliedState{ConfState: &pb.ConfState{}}, err
	}
	if len(v) < 8 {
		return AppliedState{}, fmt.Errorf("%w: applied state of group %d", ErrCorrupt, group)
	}
	cs := &pb.ConfState{}
	if err := proto.Unmarshal(v[8:], cs); err != nil {
		return AppliedState{}, fmt.Errorf("%w: conf state of group %d: %w", ErrCorrupt, group, err)
	}
	return AppliedState{Index: binary.BigEndian.Uint64(v), ConfState: cs}, nil
}

// HasState reports whether the group has ever been bootstrapped or received
// a snapshot on this node.
func (s *LogStore) HasState() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last > 0 || s.applied.Index > 0
}

// InitialState implements raft.Storage.
func (s *LogStore) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hard).(*pb.HardState), proto.Clone(s.applied.ConfState).(*pb.ConfState), nil
}

// Entries implements raft.Storage.
func (s *LogStore) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.truncIdx {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, fmt.Errorf("storage: entries [%d,%d) beyond last index %d: %w", lo, hi, s.last, raft.ErrUnavailable)
	}
	var out []*pb.Entry
	var size uint64
	add := func(e *pb.Entry) bool {
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			return false
		}
		out = append(out, e)
		return true
	}
	if n := len(s.cache); n > 0 && lo >= s.cache[0].GetIndex() {
		first := s.cache[0].GetIndex()
		for i := lo; i < hi; i++ {
			if !add(s.cache[i-first]) {
				break
			}
		}
		return out, nil
	}
	var decodeErr error
	next := lo
	err := s.db.scan(logKey(s.group, lo), logKey(s.group, hi), func(k, v []byte) bool {
		e := &pb.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			decodeErr = fmt.Errorf("%w: entry of group %d: %w", ErrCorrupt, s.group, err)
			return false
		}
		if e.GetIndex() != next {
			decodeErr = fmt.Errorf("%w: group %d log has a gap at %d", ErrCorrupt, s.group, next)
			return false
		}
		next++
		return add(e)
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// Term implements raft.Storage.
func (s *LogStore) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.termLocked(i)
}

func (s *LogStore) termLocked(i uint64) (uint64, error) {
	switch {
	case i == s.truncIdx:
		return s.truncTerm, nil
	case i < s.truncIdx:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	if n := len(s.cache); n > 0 && i >= s.cache[0].GetIndex() {
		return s.cache[i-s.cache[0].GetIndex()].GetTerm(), nil
	}
	v, ok, err := s.db.get(logKey(s.group, i))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, raft.ErrUnavailable
	}
	e := &pb.Entry{}
	if err := proto.Unmarshal(v, e); err != nil {
		return 0, fmt.Errorf("%w: entry %d of group %d: %w", ErrCorrupt, i, s.group, err)
	}
	return e.GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *LogStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// FirstIndex implements raft.Storage.
func (s *LogStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncIdx + 1, nil
}

// Bounds returns the first and last index of the log (FirstIndex and
// LastIndex without the error raft.Storage's signatures carry: neither
// reads anything).
func (s *LogStore) Bounds() (first, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncIdx + 1, s.last
}

// Snapshot implements raft.Storage by asking the host for a snapshot of the
// current applied state.
func (s *LogStore) Snapshot() (*pb.Snapshot, error) {
	if s.SnapshotFunc == nil {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return s.SnapshotFunc()
}

// Applied returns the applied state.
func (s *LogStore) Applied() AppliedState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return AppliedState{Index: s.applied.Index, ConfState: proto.Clone(s.applied.ConfState).(*pb.ConfState)}
}

// Truncated returns the index and term of the last entry removed from the log.
func (s *LogStore) Truncated() (index, term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncIdx, s.truncTerm
}

// --- writes, staged into a batch by the host ---

// StageHardState stages the hard state.
func (s *LogStore) StageHardState(b *Batch, hs *pb.HardState) {
	if hs == nil || raft.IsEmptyHardState(hs) {
		return
	}
	s.mu.Lock()
	s.hard = proto.Clone(hs).(*pb.HardState)
	s.mu.Unlock()
	b.Set(raftKey(s.group, suffixHardState), mustMarshal(hs))
}

// StageEntries stages appended entries, removing any conflicting suffix the
// new entries replace.
func (s *LogStore) StageEntries(b *Batch, ents []*pb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := ents[0].GetIndex()
	if first <= s.truncIdx {
		return fmt.Errorf("storage: group %d: append at %d overwrites truncated log (truncated at %d)", s.group, first, s.truncIdx)
	}
	if first > s.last+1 {
		return fmt.Errorf("storage: group %d: append at %d leaves a gap after %d", s.group, first, s.last)
	}
	newLast := ents[len(ents)-1].GetIndex()
	if newLast < s.last {
		b.DeleteRange(logKey(s.group, newLast+1), logKey(s.group, s.last+1))
	}
	for _, e := range ents {
		b.Set(logKey(s.group, e.GetIndex()), mustMarshal(e))
	}
	// Cache: keep the consecutive tail.
	if n := len(s.cache); n > 0 && first >= s.cache[0].GetIndex() && first <= s.last+1 {
		s.cache = s.cache[:first-s.cache[0].GetIndex()]
	} else {
		s.cache = nil
	}
	s.cache = append(s.cache, ents...)
	switch n := len(s.cache); {
	case n > 2*maxCachedEntries && cap(s.cache) > 4*maxCachedEntries:
		// A large append (a follower catching up) grew the array: keep
		// the tail in one of the usual size.
		s.cache = append(make([]*pb.Entry, 0, 2*maxCachedEntries), s.cache[n-maxCachedEntries:]...)
	case n > 2*maxCachedEntries:
		// Keep the last maxCachedEntries, moved to the front of the same
		// array (no reader holds a slice of it: Entries copies out), once
		// the tail has grown to twice that: a copy every maxCachedEntries
		// entries, not an allocation every append.
		copy(s.cache, s.cache[n-maxCachedEntries:])
		clear(s.cache[maxCachedEntries:n])
		s.cache = s.cache[:maxCachedEntries]
	}
	s.last = newLast
	return nil
}

// StageApplied stages the applied state. It runs after every round that
// applies something, and the configuration rarely changes: its copy and
// encoding are those of the last call while it is the same.
func (s *LogStore) StageApplied(b *Batch, index uint64, cs *pb.ConfState) {
	s.mu.Lock()
	if s.appliedCS == nil || !sameConfState(s.appliedCS, cs) {
		s.appliedCS, s.appliedEnc = cloneConfState(cs), mustMarshal(cs)
	}
	s.applied = AppliedState{Index: index, ConfState: s.appliedCS} // (readers copy it)
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(s.appliedEnc)), index)
	v = append(v, s.appliedEnc...)
	s.mu.Unlock()
	b.Set(raftKey(s.group, suffixApplied), v)
}

// cloneConfState copies a configuration (what proto.Clone does, without
// reflection).
func cloneConfState(cs *pb.ConfState) *pb.ConfState {
	c := &pb.ConfState{
		Voters: slices.Clone(cs.GetVoters()), Learners: slices.Clone(cs.GetLearners()),
		VotersOutgoing: slices.Clone(cs.GetVotersOutgoing()), LearnersNext: slices.Clone(cs.GetLearnersNext()),
	}
	if cs.AutoLeave != nil {
		c.AutoLeave = proto.Bool(*cs.AutoLeave)
	}
	return c
}

// sameConfState reports whether two configurations are the same.
func sameConfState(a, b *pb.ConfState) bool {
	return slices.Equal(a.GetVoters(), b.GetVoters()) && slices.Equal(a.GetLearners(), b.GetLearners()) &&
		slices.Equal(a.GetVotersOutgoing(), b.GetVotersOutgoing()) && slices.Equal(a.GetLearnersNext(), b.GetLearnersNext()) &&
		(a.AutoLeave == nil) == (b.AutoLeave == nil) && a.GetAutoLeave() == b.GetAutoLeave()
}

// StageTruncate stages the removal of every log entry up to and including
// index, which must be applied.
func (s *LogStore) StageTruncate(b *Batch, index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index <= s.truncIdx {
		return nil
	}
	if index > s.applied.Index || index > s.last {
		return fmt.Errorf("storage: group %d: truncate to %d beyond applied %d", s.group, index, s.applied.Index)
	}
	term, err := s.termLocked(index)
	if err != nil {
		return err
	}
	b.DeleteRange(logKey(s.group, s.truncIdx+1), logKey(s.group, index+1))
	s.setTruncatedLocked(b, index, term)
	if n := len(s.cache); n > 0 && s.cache[0].GetIndex() <= index {
		s.cache = append([]*pb.Entry(nil), s.cache[min(uint64(n), index+1-s.cache[0].GetIndex()):]...)
	}
	return nil
}

func (s *LogStore) setTruncatedLocked(b *Batch, index, term uint64) {
	s.truncIdx, s.truncTerm = index, term
	v := binary.BigEndian.AppendUint64(nil, index)
	b.Set(raftKey(s.group, suffixTruncated), binary.BigEndian.AppendUint64(v, term))
}

// StageSnapshot stages the installation of a snapshot received from the
// leader: the group's data is replaced, the whole log discarded, and the
// applied and truncated states moved to the snapshot's index.
func (s *LogStore) StageSnapshot(b *Batch, snap *pb.Snapshot) error {
	if err := b.RestoreGroupData(s.group, snap.GetData()); err != nil {
		return err
	}
	b.DeleteRange(logKey(s.group, 0), logKey(s.group, ^uint64(0)))
	s.stageSnapshotState(b, snap.GetMetadata())
	return nil
}

// stageSnapshotState stages the applied, truncated and cached state of a
// snapshot at md, once the group's data and log have been replaced.
func (s *LogStore) stageSnapshotState(b *Batch, md *pb.SnapshotMetadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache = nil
	s.last = md.GetIndex()
	s.setTruncatedLocked(b, md.GetIndex(), md.GetTerm())
	cs := md.GetConfState()
	if cs == nil {
		cs = &pb.ConfState{}
	}
	s.applied = AppliedState{Index: md.GetIndex(), ConfState: proto.Clone(cs).(*pb.ConfState)}
	v := binary.BigEndian.AppendUint64(nil, md.GetIndex())
	b.Set(raftKey(s.group, suffixApplied), append(v, mustMarshal(cs)...))
}

// StageBootstrap stages the initial state of a brand-new group whose
// initial members are voters: every member writes the same state, as if
// each had installed the same empty snapshot at index `index`, term `term`.
func (s *LogStore) StageBootstrap(b *Batch, index, term uint64, voters []uint64) error {
	if s.HasState() {
		return fmt.Errorf("storage: group %d already has state", s.group)
	}
	// A group without state has no data and no log here (StageDestroy
	// removes both with the state, in one batch): nothing to clear, and
	// no range deletion per new group (thousands of them in a memtable
	// make every read of it slow).
	s.stageSnapshotState(b, &pb.SnapshotMetadata{
		Index: proto.Uint64(index), Term: proto.Uint64(term),
		ConfState: &pb.ConfState{Voters: voters},
	})
	s.StageHardState(b, &pb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(index)})
	return nil
}

// StageDestroy stages the removal of everything the group owns on this node.
func (s *LogStore) StageDestroy(b *Batch) {
	lo, hi := raftSpan(s.group)
	b.DeleteRange(lo, hi)
	lo, hi = dataSpan(s.group)
	b.DeleteRange(lo, hi)
	lo, hi = elemSpan(s.group)
	b.DeleteRange(lo, hi)
	lo, hi = cursorSpan(s.group)
	b.DeleteRange(lo, hi)
	b.ClearLedger(s.group)
}

func mustMarshal(m proto.Message) []byte {
	v, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("storage: marshal %T: %v", m, err))
	}
	return v
}
