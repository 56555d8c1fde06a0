package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// Active keyspaces (docs/DESIGN.md 2.3): every region's region-local group
// accepts writes, ships them to every other region by streams, and merges
// what it receives; values are the CRDTs of package crdt.
//
// # Commands
//
// A client write becomes a local op (OpActiveSet, OpActiveDel,
// OpActiveIncr, OpActiveSAdd, OpActiveSRem, OpActiveHSet, OpActiveHDel;
// see ActiveCommand). Apply may not read a clock, so the proposer stamps
// the op: its last argument is an ActiveStamp (the origin region and the
// proposer's HLC reading) and NowMS is the proposer's wall clock. The
// group applies the op with crdt.Stamp{Region, Time, Seq: the op's log
// index}, so dots follow the region's log positions (an op writing several
// fields takes several dots, the first at its index, which only makes
// stability judged by stream positions more conservative).
//
// A register or map-field write (or delete) overwrites the versions it
// has seen; its time is raised, if needed, to just after the newest of
// them, so that a region whose clock is behind a version it received still
// writes after it. Hence, under last writer wins, the write that stays is
// always the last one by (HLC, region), whether it overwrote the others or
// won over concurrent ones.
//
// Checks, all deterministic; a refused op changes nothing:
//   - the stamp's region must be the group's (StateMachine.Region, which
//     the node should set for every active group): two groups issuing one
//     region's dots would corrupt the CRDTs;
//   - clock skew: the stamp may not be more than MaxStampSkewMS ahead of
//     the command's NowMS (ErrClockSkew). An HLC reading runs ahead of its
//     node's wall clock only by what it absorbed from other nodes, which
//     hlc.Clock bounds by the same maximum offset; a stamp further ahead
//     comes from a broken clock or proposer, and would win every
//     last-writer-wins conflict until real time caught up with it, so it
//     is refused rather than stored. A node whose wall clock itself runs
//     ahead passes this check (its NowMS is ahead too): catching it needs
//     the comparison with other nodes that hlc.Clock.Update makes, and the
//     node must stop serving writes when that fails;
//   - a register write may name the keyspace's resolver
//     (crdt.RegisterResolver); a name unknown in this process is refused
//     with an error wrapping crdt.ErrUnknownResolver;
//   - type: an op on a live key of another type fails with ErrWrongType.
//
// # Stored state and Redis types
//
// A key is one Record of TypeActive whose payload is the key's state:
// format byte, generation (uvarint), the causal context of everything the
// state reflects across generations (length-prefixed
// crdt.VersionVector.Encode), then crdt.Value.Encode of the value. The
// value's kind maps onto Redis's TYPE: register and counter are "string"
// (GET of a counter gives its decimal value), set is "set", map is
// "hash", zset is "zset". A register (SET) and a counter (INCR) are different kinds: INCR
// on a register, or SET on a live counter, fails with ErrWrongType. An
// active record has no expiry.
//
// Deletes are tombstones (crdt Clear, Set.Remove, Map.Delete): a deleted
// key stays stored, reads as absent (GetActive), and keeps its causal
// context, so that an older write arriving later stays deleted. Nothing
// removes tombstones by time; a collector may drop one once
// crdt.Collectable says it is causally stable.
//
// A deleted key may be written as another kind: the key then moves to the
// next generation. Values of different generations, or of different kinds
// in one generation (regions that created the key concurrently as
// different kinds), do not merge: the state with the higher (generation,
// kind) wins whole, kinds ranked register < counter < set < map < zset, which is
// deterministic, associative and commutative. When the losing state held
// live data the winner had not seen, it is a type conflict, recorded in
// the ledger like other conflicts (rule "type").
//
// # Streams and merges
//
// A region ships deltas, not states: when a local op applies, the group
// records in the same batch (ledger span, deltaKey(index)) the
// OpActiveMerge command carrying, for each key the op changed, the
// op's delta-state (crdt.Delta: the part of the state the op produced,
// with the whole seen vector; the whole state when the op created the
// key or changed its kind or generation, or when that is smaller, say
// after a delete). ActiveChange returns that record for the op's log
// entry, so the bytes a write ships depend on what it wrote, not on the
// size of the key's value; an SADD to a set of any size ships the member
// and a few dots. A delta carries as context what its writer had seen of
// the fields or members it wrote, so a receiver detects conflicts and
// applies removes exactly as it would with the whole state: an overwrite
// is never recorded as a conflict where it arrives first, a remove
// removes the tags its writer saw, also those that arrive later.
//
// When the record is gone (OpActiveGC removes those every other region
// has reported applying, gc.go) ActiveChange falls back to the keys'
// current whole states: correct (merging is idempotent and monotone),
// only larger. Resyncs (a new region, a source that no longer holds what
// a destination needs) ship whole states too, in chunks. Merges received
// from other regions are not shipped again (no ping-pong): each region's
// writes reach every other region through its own streams, in the order
// of its log. The receiver stores Merge(stored, received) and writes
// every conflict the merge reports to its conflict ledger, in the same
// batch (see ledger.go). A merge that fails (a malformed state, an
// unknown resolver) fails the whole stream batch, so that the stream
// stops visibly instead of dropping a write; merges staged before it in
// the batch are harmless, being idempotent.
//
// Conflicts are reported where concurrent versions first meet: every
// region that brings them together records them once (redelivery reports
// nothing), a region that receives them already together from a third
// region does not. Versions are concurrent when neither writer had seen
// the other's version of the field (a delta tells what its writer had
// seen of the fields it wrote; package crdt explains the one case where
// that is less than what its region had received). The union of the
// regions' ledgers, deduplicated by LedgerEntry.ID, lists every
// conflict. A type conflict's losing state, as recorded, is the state or
// delta that lost.

// TypeActive is the record type of every key of an active keyspace; its
// payload is the key's CRDT state (see above). Type.String reports it as
// "none": GetActive and ActiveValueOf give the Redis type.
const TypeActive Type = 16

// MaxStampSkewMS bounds how far an active op's stamp may be ahead of the
// command's NowMS (hlc.DefaultMaxOffset). It is part of the apply logic:
// every replica must use the same value, so changing it needs the care of
// any change to Apply.
const MaxStampSkewMS = int64(hlc.DefaultMaxOffset / time.Millisecond)

// Errors of active keyspaces.
var (
	// ErrClockSkew: an active op's stamp is further ahead of its
	// proposer's clock than MaxStampSkewMS; nothing was applied.
	ErrClockSkew = errors.New("kv: write stamped too far ahead of its proposer's clock")
	// ErrNotActive: a command or stored record that does not belong to an
	// active keyspace where one is needed.
	ErrNotActive = errors.New("kv: not an active-keyspace command or value")
	// ErrUnknownResolver is crdt.ErrUnknownResolver: a register write or a
	// merge names a resolver that is not registered in this process.
	ErrUnknownResolver = crdt.ErrUnknownResolver
)

// ActiveStamp is what the proposer of an active op stamps it with.
type ActiveStamp struct {
	// Region is the origin region, the group's.
	Region string
	// Time is the proposer's HLC reading.
	Time hlc.Timestamp
}

// Encode returns the stamp's argument form: the HLC timestamp (16 bytes,
// hlc encoding) followed by the region's bytes.
func (s ActiveStamp) Encode() []byte {
	return append(s.Time.AppendEncode(make([]byte, 0, hlc.EncodedLen+len(s.Region))), s.Region...)
}

// DecodeActiveStamp parses the output of ActiveStamp.Encode; the region
// may not be empty.
func DecodeActiveStamp(b []byte) (ActiveStamp, error) {
	if len(b) <= hlc.EncodedLen {
		return ActiveStamp{}, fmt.Errorf("%w: stamp of %d bytes", ErrBadCommand, len(b))
	}
	t, err := hlc.Decode(b)
	if err != nil {
		return ActiveStamp{}, fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	return ActiveStamp{Region: string(b[hlc.EncodedLen:]), Time: t}, nil
}

// ActiveCommand builds a local op of an active keyspace: args are the op's
// arguments without the stamp, which is appended. Set Int (OpActiveIncr's
// delta) and Flags (OpActiveSet) on the result as needed.
func ActiveCommand(op Op, s ActiveStamp, nowMS int64, args ...[]byte) Command {
	a := make([][]byte, 0, len(args)+1)
	a = append(a, args...)
	return Command{Op: op, NowMS: nowMS, Args: append(a, s.Encode())}
}

// active reports whether o is an op of active keyspaces.
func (o Op) active() bool { return o >= OpActiveSet && o <= OpActiveMerge || o == OpActiveRedis }

// Active reports whether o is an op of active keyspaces.
func (o Op) Active() bool { return o.active() }

// activeArgsOK checks the number of arguments of an active op.
func activeArgsOK(op Op, n int) bool {
	switch op {
	case OpActiveSet:
		return n == 4
	case OpActiveDel:
		return n >= 2
	case OpActiveIncr:
		return n == 2
	case OpActiveSAdd, OpActiveSRem, OpActiveHDel:
		return n >= 3
	case OpActiveHSet:
		return n >= 4 && n%2 == 0
	case OpActiveMerge:
		return n >= 2 && n%2 == 0
	case OpActiveRedis:
		return n >= 5 // key, resolver, count, name, stamp
	}
	return false
}

// CRDT kinds, as crdt.Value.Type reports them.
const (
	kindRegister = "register"
	kindCounter  = "counter"
	kindSet      = "set"
	kindMap      = "map"
	kindZSet     = "zset"
)

// kindRank orders kinds for type conflicts.
func kindRank(kind string) int {
	switch kind {
	case kindRegister:
		return 1
	case kindCounter:
		return 2
	case kindSet:
		return 3
	case kindMap:
		return 4
	case kindZSet:
		return 5
	}
	return 0
}

func newValue(kind string) crdt.Value {
	switch kind {
	case kindRegister:
		return &crdt.Register{}
	case kindCounter:
		return &crdt.Counter{}
	case kindSet:
		return &crdt.Set{}
	case kindZSet:
		return &crdt.ZSet{}
	default:
		return &crdt.Map{}
	}
}

// activeState is the stored state of a key of an active keyspace.
type activeState struct {
	// gen counts the times the key changed kind (see the top of this file).
	gen uint64
	// seen holds every operation the state reflects, in any generation;
	// it dominates val's context.
	seen crdt.VersionVector
	val  crdt.Value // never nil
}

// activeFormat is the first byte of an active record's payload.
const activeFormat = 1

func (s *activeState) encode() []byte {
	vv := s.seen.Encode()
	val := s.val.Encode()
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(vv)+len(val))
	b = append(b, activeFormat)
	b = binary.AppendUvarint(b, s.gen)
	b = binary.AppendUvarint(b, uint64(len(vv)))
	b = append(b, vv...)
	return append(b, val...)
}

// decodeActiveState parses an active record's payload; it accepts only
// the canonical form.
func decodeActiveState(p []byte) (*activeState, error) {
	if len(p) == 0 || p[0] != activeFormat {
		return nil, fmt.Errorf("%w: unknown active state format", ErrBadRecord)
	}
	gen, w := uvarint(p[1:])
	if w <= 0 {
		return nil, fmt.Errorf("%w: active state generation", ErrBadRecord)
	}
	vv, rest, err := lengthPrefixed(p[1+w:])
	if err != nil {
		return nil, err
	}
	seen, err := crdt.DecodeVersionVector(vv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	val, err := crdt.Decode(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if !seen.Dominates(val.Context()) {
		return nil, fmt.Errorf("%w: active state context behind its value's", ErrBadRecord)
	}
	return &activeState{gen: gen, seen: seen, val: val}, nil
}

// compareSlots orders states by (generation, kind).
func compareSlots(a, b *activeState) int {
	if a.gen != b.gen {
		if a.gen < b.gen {
			return -1
		}
		return 1
	}
	return kindRank(a.val.Type()) - kindRank(b.val.Type())
}

// typeConflict is a merge in which a state with live data the other had
// not seen lost to a state of a higher (generation, kind).
type typeConflict struct {
	winner, loser *activeState
}

// mergeStates returns the merge of the stored state s (nil: none) and a
// received one, with the conflicts found.
func mergeStates(s, r *activeState) (*activeState, []crdt.Conflict, *typeConflict, error) {
	if s == nil {
		return r, nil, nil, nil
	}
	seen := s.seen.Merge(r.seen)
	switch c := compareSlots(s, r); {
	case c == 0:
		v, cs, err := crdt.Merge(s.val, r.val)
		if err != nil {
			return nil, nil, nil, err
		}
		return &activeState{gen: s.gen, seen: seen, val: v}, cs, nil, nil
	default:
		w, l := s, r
		if c < 0 {
			w, l = r, s
		}
		var tc *typeConflict
		if l.val.Live() && !w.seen.Dominates(l.val.Context()) {
			tc = &typeConflict{winner: w, loser: l}
		}
		return &activeState{gen: w.gen, seen: seen, val: w.val}, nil, tc, nil
	}
}

// activeTxn stages the states of one command's keys in memory, so that a
// command that fails after touching some keys writes nothing.
type activeTxn struct {
	b       *storage.Batch
	group   uint64
	states  map[string]*activeState
	stored  map[string][]byte // payloads as loaded (absent: nothing stored)
	order   []string          // keys put, in the order first put
	written map[string]bool
	// before, for a local op (see deltas), holds the states as loaded
	// (crdt.Snapshot of the values, which the op then changes).
	before map[string]*activeState
}

func newActiveTxn(b *storage.Batch, group uint64) *activeTxn {
	return &activeTxn{b: b, group: group, states: map[string]*activeState{}, stored: map[string][]byte{}, written: map[string]bool{}}
}

// load returns the key's state (nil if absent) as the command sees it.
// The caller may modify it and put it back.
func (t *activeTxn) load(key []byte) (*activeState, error) {
	if s, ok := t.states[string(key)]; ok {
		return s, nil
	}
	v, ok, err := t.b.GetData(t.group, key)
	if err != nil {
		return nil, err
	}
	var s *activeState
	if ok {
		rec, err := DecodeRecord(v)
		if err != nil {
			return nil, corrupt(err, "record", key)
		}
		if rec.Type != TypeActive {
			return nil, fmt.Errorf("%w: key %q holds a %s record", ErrNotActive, key, rec.Type)
		}
		if s, err = decodeActiveState(rec.Payload); err != nil {
			return nil, corrupt(err, "active state", key)
		}
		t.stored[string(key)] = rec.Payload
		if t.before != nil {
			t.before[string(key)] = &activeState{gen: s.gen, seen: s.seen, val: crdt.Snapshot(s.val)}
		}
	}
	t.states[string(key)] = s
	return s, nil
}

// put records the key's new state.
func (t *activeTxn) put(key []byte, s *activeState) {
	k := string(key)
	if !t.written[k] {
		t.written[k] = true
		t.order = append(t.order, k)
	}
	t.states[k] = s
}

// commit encodes the states put, checking the size of local writes
// (limit > 0), stages those that changed and returns their keys.
func (t *activeTxn) commit(limit int) ([]string, error) {
	payloads := make([][]byte, len(t.order))
	for i, k := range t.order {
		p := t.states[k].encode()
		if limit > 0 && len(p) > limit {
			return nil, fmt.Errorf("%w: the value of %q would take %d bytes (limit %d)", ErrTooLarge, k, len(p), limit)
		}
		payloads[i] = p
	}
	var changed []string
	for i, k := range t.order {
		if old, ok := t.stored[k]; ok && bytes.Equal(old, payloads[i]) {
			continue
		}
		t.b.SetData(t.group, []byte(k), Record{Type: TypeActive, Payload: payloads[i]}.Encode())
		changed = append(changed, k)
	}
	return changed, nil
}

// deltas stages, for the local op applied at index, the record of what
// the region ships for it (see "Streams and merges"): the OpActiveMerge
// of the changed keys' delta-states, or an empty record when it changed
// nothing. The txn must have kept the states as loaded (before).
func (t *activeTxn) deltas(index uint64, nowMS int64, changed []string) {
	var rec []byte
	if len(changed) > 0 {
		out := Command{Op: OpActiveMerge, NowMS: nowMS}
		for _, k := range changed {
			out.Args = append(out.Args, []byte(k), deltaState(t.before[k], t.states[k]).encode())
		}
		rec = out.Encode()
	}
	t.b.SetLedger(t.group, deltaKey(index), rec)
}

// deltaState returns the delta-state of a local op that turned old (nil:
// nothing stored) into s: the whole state when the key is new or changed
// kind or generation, else the value's delta (crdt.Delta) with the whole
// seen vector, which tells receivers what the writer had seen (type
// conflicts, collection).
func deltaState(old, s *activeState) *activeState {
	if old == nil || compareSlots(old, s) != 0 {
		return s
	}
	return &activeState{gen: s.gen, seen: s.seen, val: crdt.Delta(old.val, s.val)}
}

// Delta records (ledger span, suffix 'D' + index, 8 bytes big-endian):
// what the region ships for each of its local ops, written in the op's
// apply batch (see ActiveChange), removed by OpActiveGC once every other
// region has reported applying the op (see gc.go).
const deltaPrefix = 'D'

func deltaKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{deltaPrefix}, index)
}

// applyActive applies an active op at index. source and sourceIndex name
// the stream change a merge came in (0 for none).
func (sm *StateMachine) applyActive(b *storage.Batch, index uint64, c Command, source, sourceIndex uint64) Result {
	if c.Op == OpActiveMerge {
		return sm.merge(b, index, c, source, sourceIndex)
	}
	n := len(c.Args)
	st, err := DecodeActiveStamp(c.Args[n-1])
	if err != nil {
		return Result{Err: err}
	}
	switch {
	case sm.Region != "" && st.Region != sm.Region:
		return Result{Err: fmt.Errorf("%w: op stamped by region %q in a group of region %q", ErrBadCommand, st.Region, sm.Region)}
	case c.NowMS <= 0:
		return Result{Err: fmt.Errorf("%w: %s without the proposer's clock", ErrBadCommand, c.Op)}
	case st.Time.WallMS > c.NowMS && st.Time.WallMS-c.NowMS > MaxStampSkewMS:
		return Result{Err: fmt.Errorf("%w: stamp %s is %dms ahead of %d (max %dms)", ErrClockSkew, st.Time, st.Time.WallMS-c.NowMS, c.NowMS, MaxStampSkewMS)}
	}
	if c.Op != OpActiveIncr && c.Op != OpActiveRedis && c.Int != 0 || c.Op == OpActiveRedis && c.Int&^1 != 0 {
		return Result{Err: fmt.Errorf("%w: %s takes no integer (no expiry in active keyspaces)", ErrBadCommand, c.Op)}
	}
	if c.Op != OpActiveSet && c.Flags != 0 || c.Flags&^(FlagNX|FlagXX|FlagGet) != 0 {
		return Result{Err: fmt.Errorf("%w: %s with flags %#x", ErrBadCommand, c.Op, c.Flags)}
	}
	a := activeOp{txn: newActiveTxn(b, sm.Group), stamp: crdt.Stamp{Region: st.Region, Time: st.Time, Seq: index}}
	a.txn.before = map[string]*activeState{}
	args := c.Args[:n-1]
	var res Result
	switch c.Op {
	case OpActiveSet:
		res = a.set(args[0], args[1], string(args[2]), c.Flags)
	case OpActiveDel:
		res = a.del(args)
	case OpActiveIncr:
		res = a.incr(args[0], c.Int)
	case OpActiveSAdd, OpActiveSRem:
		res = a.setOp(c.Op, args[0], args[1:])
	case OpActiveHSet, OpActiveHDel:
		res = a.mapOp(c.Op, args[0], args[1:])
	case OpActiveRedis: // active_redis.go
		res = a.redis(sm, c, args)
	}
	if res.Err != nil {
		return res
	}
	changed, err := a.txn.commit(MaxCollectionBytes)
	if err != nil {
		return Result{Err: err}
	}
	a.txn.deltas(index, c.NowMS, changed)
	return res
}

// activeOp applies one local op.
type activeOp struct {
	txn   *activeTxn
	stamp crdt.Stamp
}

// after returns the op's stamp with a time later than every version in
// vs: those the write overwrites. The proposer's clock may be behind a
// version it received from another region; a write that has seen a
// version must still win over it and over whatever that version won
// against, so that the last write, by (HLC, region), is the one that
// stays. The result is at most just after a stored time, each of which
// passed its own origin's skew check.
func (a activeOp) after(vs []crdt.Version) crdt.Stamp {
	s := a.stamp
	for _, v := range vs {
		if !v.Time.Less(s.Time) {
			s.Time = hlc.Timestamp{WallMS: v.Time.WallMS, Logical: v.Time.Logical + 1, Node: s.Time.Node}
			if v.Time.Logical == math.MaxUint32 {
				s.Time.WallMS, s.Time.Logical = v.Time.WallMS+1, 0
			}
		}
	}
	return s
}

// prepare returns the state the op writes a value of kind to: the stored
// one, a new one if none is stored, or the next generation if the stored
// value is a tombstone of another kind. A live value of another kind is
// ErrWrongType.
func prepare(s *activeState, kind string) (*activeState, error) {
	switch {
	case s == nil:
		return &activeState{seen: crdt.VersionVector{}, val: newValue(kind)}, nil
	case s.val.Type() == kind:
		return s, nil
	case s.val.Live():
		return nil, ErrWrongType
	}
	return &activeState{gen: s.gen + 1, seen: s.seen, val: newValue(kind)}, nil
}

// done records the op in the state's context and puts it back.
func (a activeOp) done(key []byte, s *activeState) {
	s.seen = s.seen.Merge(s.val.Context())
	a.txn.put(key, s)
}

func (a activeOp) set(key, value []byte, resolver string, flags uint64) Result {
	if _, err := crdt.LookupResolver(resolver); err != nil {
		return Result{Err: fmt.Errorf("kv: register write: %w", err)}
	}
	s, err := a.txn.load(key)
	if err != nil {
		return Result{Err: err}
	}
	live := s != nil && s.val.Live()
	var res Result
	if flags&FlagGet != 0 && live {
		r, ok := s.val.(*crdt.Register)
		if !ok {
			return Result{Err: ErrWrongType}
		}
		res.Value, res.Found = r.Get()
	}
	if flags&FlagNX != 0 && live || flags&FlagXX != 0 && !live {
		return res
	}
	if s, err = prepare(s, kindRegister); err != nil {
		return Result{Err: err}
	}
	r := s.val.(*crdt.Register)
	r.Set(a.after(r.Versions()), value, resolver)
	a.done(key, s)
	res.N = 1
	return res
}

func (a activeOp) del(keys [][]byte) Result {
	var n int64
	for _, k := range keys {
		s, err := a.txn.load(k)
		if err != nil {
			return Result{Err: err}
		}
		if s == nil || !s.val.Live() {
			continue
		}
		stamp := a.stamp
		switch v := s.val.(type) {
		case *crdt.Register:
			stamp = a.after(v.Versions())
		case *crdt.Map:
			var vs []crdt.Version
			for _, f := range v.Fields() {
				vs = append(vs, v.Versions(f)...)
			}
			stamp = a.after(vs)
		}
		s.val.Clear(stamp)
		a.done(k, s)
		n++
	}
	return Result{N: n}
}

func (a activeOp) incr(key []byte, delta int64) Result {
	s, err := a.txn.load(key)
	if err != nil {
		return Result{Err: err}
	}
	if s, err = prepare(s, kindCounter); err != nil {
		return Result{Err: err}
	}
	ctr := s.val.(*crdt.Counter)
	if err := ctr.Add(a.stamp, delta); err != nil {
		if errors.Is(err, crdt.ErrOverflow) {
			return Result{Err: ErrOverflow}
		}
		return Result{Err: err}
	}
	a.done(key, s)
	return Result{N: ctr.Value()}
}

// existing returns s if it holds a value of kind, else nil; a live value
// of another kind is ErrWrongType.
func existing(s *activeState, kind string) (*activeState, error) {
	switch {
	case s == nil:
		return nil, nil
	case s.val.Type() == kind:
		return s, nil
	case s.val.Live():
		return nil, ErrWrongType
	}
	return nil, nil
}

func (a activeOp) setOp(op Op, key []byte, members [][]byte) Result {
	s, err := a.txn.load(key)
	if err != nil {
		return Result{Err: err}
	}
	ms := make([]string, 0, len(members))
	for _, m := range sortedDistinct(members) {
		ms = append(ms, string(m))
	}
	if op == OpActiveSAdd {
		if s, err = prepare(s, kindSet); err != nil {
			return Result{Err: err}
		}
		set := s.val.(*crdt.Set)
		var n int64
		for _, m := range ms {
			if !set.Contains(m) {
				n++
			}
		}
		// Members already there are added again: the add must survive
		// concurrent removes in other regions (add wins).
		set.Add(a.stamp, ms...)
		a.done(key, s)
		return Result{N: n}
	}
	if s, err = existing(s, kindSet); err != nil || s == nil {
		return Result{Err: err}
	}
	set := s.val.(*crdt.Set)
	var n int64
	for _, m := range ms {
		if set.Contains(m) {
			n++
		}
	}
	if n == 0 {
		return Result{}
	}
	set.Remove(a.stamp, ms...)
	a.done(key, s)
	return Result{N: n}
}

func (a activeOp) mapOp(op Op, key []byte, args [][]byte) Result {
	s, err := a.txn.load(key)
	if err != nil {
		return Result{Err: err}
	}
	if op == OpActiveHSet {
		if s, err = prepare(s, kindMap); err != nil {
			return Result{Err: err}
		}
		m := s.val.(*crdt.Map)
		fresh := map[string]bool{}
		seq := a.stamp.Seq
		for i := 0; i+1 < len(args); i += 2 {
			f := string(args[i])
			if _, ok := m.Get(f); !ok {
				fresh[f] = true
			}
			// Each field write takes a dot: the first the op's index, the
			// next ones the following numbers.
			stamp := a.after(m.Versions(f))
			stamp.Seq, seq = seq, 0
			m.Set(stamp, f, args[i+1])
		}
		a.done(key, s)
		return Result{N: int64(len(fresh))}
	}
	if s, err = existing(s, kindMap); err != nil || s == nil {
		return Result{Err: err}
	}
	m := s.val.(*crdt.Map)
	names := sortedDistinct(args)
	fields := make([]string, len(names))
	var n int64
	for i, f := range names {
		fields[i] = string(f)
		if _, ok := m.Get(fields[i]); ok {
			n++
		}
	}
	if n == 0 {
		return Result{}
	}
	var vs []crdt.Version
	for _, f := range fields {
		vs = append(vs, m.Versions(f)...)
	}
	m.Delete(a.after(vs), fields...)
	a.done(key, s)
	return Result{N: n}
}

// merge applies OpActiveMerge (see there).
func (sm *StateMachine) merge(b *storage.Batch, index uint64, c Command, source, sourceIndex uint64) Result {
	txn := newActiveTxn(b, sm.Group)
	res := sm.mergeInto(txn, index, c, source, sourceIndex)
	if res.Err == nil {
		if _, err := txn.commit(0); err != nil {
			return Result{Err: err}
		}
	}
	return res
}

// mergeInto merges an OpActiveMerge's states into txn, which the caller
// commits (a stream batch's merges share one, so that a key they all
// touch is decoded and encoded once per batch), and records the
// conflicts found.
func (sm *StateMachine) mergeInto(txn *activeTxn, index uint64, c Command, source, sourceIndex uint64) Result {
	var found []ledgerConflict
	for i := 0; i < len(c.Args); i += 2 {
		key := c.Args[i]
		r, err := decodeActiveState(c.Args[i+1])
		if err != nil {
			return Result{Err: fmt.Errorf("kv: merge of %q: %w", key, err)}
		}
		s, err := txn.load(key)
		if err != nil {
			return Result{Err: fmt.Errorf("kv: merge of %q: %w", key, err)}
		}
		out, cs, tc, err := mergeStates(s, r)
		if err != nil {
			return Result{Err: fmt.Errorf("kv: merge of %q: %w", key, err)}
		}
		for _, x := range cs {
			found = append(found, ledgerConflict{key: key, kind: out.val.Type(), c: x})
		}
		if tc != nil {
			found = append(found, ledgerConflict{key: key, t: tc})
		}
		txn.put(key, out)
	}
	if err := recordConflicts(txn.b, sm.Group, index, source, sourceIndex, c.NowMS, found); err != nil {
		return Result{Err: err}
	}
	return Result{N: int64(len(found))}
}

// ActiveChange returns what a region ships to the others for the command
// cmd applied at index of its group's log: for a local active op, the
// OpActiveMerge command carrying the delta-states of the keys it changed,
// as recorded when it was applied (nil if it changed nothing). If the
// record is gone (collected, or the op predates delta records), it
// carries the keys' current whole states instead, read from db, which
// is correct too (newer than the op's, but merging is idempotent and
// monotone) and only larger. It returns nil, to ship nothing, for merges
// received from other regions (never shipped again), stream and role
// commands, commands that do not decode (they failed here too) and ops
// whose keys hold nothing. A plain (non-active) data op fails with
// ErrNotActive: it has no place in an active group's log.
//
// db must reflect cmd: call it only for entries at or below the index the
// group has applied on this node, as a stream source reads them. The
// merge keeps the op's NowMS, which streams use to measure lag.
func ActiveChange(db *storage.DB, group, index uint64, cmd []byte) ([]byte, error) {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return nil, nil
	}
	switch {
	case c.Op == OpActiveKnow:
		return cmd, nil // a region's report travels as itself (gc.go)
	case c.Op == OpActiveMerge, c.Op == OpStreamApply, c.Op == OpStreamChunk, c.Op == OpRole, c.Op == OpActiveGC, c.Op == OpStreamCursor,
		c.Op == OpRestoreChunk: // every region's group is restored itself (restore.go)
		return nil, nil
	case !c.Op.active():
		return nil, fmt.Errorf("%w: %s in the log of active group %d", ErrNotActive, c.Op, group)
	}
	if checkArgs(c) != nil {
		return nil, nil
	}
	rec, ok, err := db.GetLedger(group, deltaKey(index))
	if err != nil {
		return nil, err
	}
	if ok {
		if len(rec) == 0 {
			return nil, nil
		}
		return rec, nil
	}
	return activeStates(db, group, c)
}

// activeStates returns the OpActiveMerge carrying the current whole
// states of the keys the local op c wrote (nil if none holds anything).
func activeStates(db *storage.DB, group uint64, c Command) ([]byte, error) {
	keys := c.Args[:1]
	switch c.Op {
	case OpActiveDel:
		keys = c.Args[:len(c.Args)-1]
	case OpActiveRedis:
		keys = activeRedisKeys(c)
	}
	out := Command{Op: OpActiveMerge, NowMS: c.NowMS}
	done := map[string]bool{}
	for _, k := range keys {
		if done[string(k)] {
			continue
		}
		done[string(k)] = true
		v, ok, err := db.Get(group, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		rec, err := DecodeRecord(v)
		if err != nil {
			return nil, err
		}
		if rec.Type != TypeActive {
			return nil, fmt.Errorf("%w: key %q of active group %d holds a %s record", ErrNotActive, k, group, rec.Type)
		}
		out.Args = append(out.Args, k, rec.Payload)
	}
	if len(out.Args) == 0 {
		return nil, nil
	}
	return out.Encode(), nil
}

// ActiveValue is what a key of an active keyspace reads as.
type ActiveValue struct {
	// Kind is the CRDT: "register", "counter", "set", "map" or "zset".
	Kind string
	// Type is the Redis type: TypeString (register and counter), TypeSet,
	// TypeHash or TypeZSet.
	Type Type
	// Value is a register's value, or a counter's in decimal.
	Value []byte
	// Counter is a counter's value.
	Counter int64
	// Members are a set's or a sorted set's members, in byte order.
	Members [][]byte
	// Scores are a sorted set's scores, Members' order.
	Scores []float64
	// Fields are a map's live fields, in byte order.
	Fields []Field
}

// GetActive reads a key of an active keyspace from committed storage. A
// deleted key (a tombstone) reads as absent.
func GetActive(db *storage.DB, group uint64, key []byte) (ActiveValue, bool, error) {
	v, ok, err := db.Get(group, key)
	if err != nil || !ok {
		return ActiveValue{}, false, err
	}
	rec, err := DecodeRecord(v)
	if err != nil {
		return ActiveValue{}, false, err
	}
	return ActiveValueOf(rec)
}

// ActiveValueOf decodes a record of an active keyspace (as Get or a scan
// returns it); a tombstone is reported absent, a record of another type
// fails with ErrNotActive.
func ActiveValueOf(rec Record) (ActiveValue, bool, error) {
	if rec.Type != TypeActive {
		return ActiveValue{}, false, fmt.Errorf("%w: a %s record", ErrNotActive, rec.Type)
	}
	s, err := decodeActiveState(rec.Payload)
	if err != nil {
		return ActiveValue{}, false, err
	}
	if !s.val.Live() {
		return ActiveValue{}, false, nil
	}
	out := ActiveValue{Kind: s.val.Type()}
	switch v := s.val.(type) {
	case *crdt.Register:
		out.Type = TypeString
		val, _ := v.Get()
		out.Value = bytes.Clone(val)
		if out.Value == nil {
			out.Value = []byte{}
		}
	case *crdt.Counter:
		out.Type = TypeString
		out.Counter = v.Value()
		out.Value = strconv.AppendInt(nil, out.Counter, 10)
	case *crdt.Set:
		out.Type = TypeSet
		for _, m := range v.Members() {
			out.Members = append(out.Members, []byte(m))
		}
	case *crdt.Map:
		out.Type = TypeHash
		for _, f := range v.Fields() {
			val, _ := v.Get(f)
			out.Fields = append(out.Fields, Field{Name: []byte(f), Value: bytes.Clone(val)})
		}
	case *crdt.ZSet:
		out.Type = TypeZSet
		ms, scores := v.Members()
		for i, m := range ms {
			out.Members = append(out.Members, []byte(m))
			out.Scores = append(out.Scores, scores[i])
		}
	}
	return out, true, nil
}

// PlainRecord presents a record as the front ends know records: an active
// key's state (TypeActive) as the string, set or hash it reads as, a
// tombstone as absent; any other record as it is.
func PlainRecord(rec Record, found bool) (Record, bool, error) {
	if !found || rec.Type != TypeActive {
		return rec, found, nil
	}
	v, live, err := ActiveValueOf(rec)
	if err != nil || !live {
		return Record{}, false, err
	}
	switch v.Type {
	case TypeSet:
		return Record{Type: TypeSet, Payload: EncodeSet(v.Members)}, true, nil
	case TypeHash:
		return Record{Type: TypeHash, Payload: EncodeHash(v.Fields)}, true, nil
	case TypeZSet:
		return Record{Type: TypeZSet}, true, nil // read through the command engine
	}
	return Record{Type: TypeString, Payload: v.Value}, true, nil
}
