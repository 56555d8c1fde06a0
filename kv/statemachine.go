package kv

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/stream"
)

// Result is what applying a command returns to its proposer. Only Value,
// Found, N and Err exist, because they are what crosses the network when
// a command was proposed through another node.
type Result struct {
	// Value is the previous value (OpSet with FlagGet, OpGetDel).
	Value []byte
	// Found tells whether Value holds something.
	Found bool
	// N is the op's count or number (see each Op).
	N int64
	// Err is a command error (wrong type, not an integer, too large, bad
	// command); nothing was applied.
	Err error
}

// StateMachine applies kv commands to one group's data.
type StateMachine struct {
	Group uint64
	// Cluster is the cluster id; stream batches from another cluster are
	// refused.
	Cluster string
	// OnApplied, if set, is called after applied commands are durable.
	OnApplied func(index uint64)
	// Region, if set, is the region of this region-local group: local ops
	// of an active keyspace stamped with another region are refused
	// (ErrBadCommand), since two groups issuing the same region's dots
	// would corrupt the CRDTs. It is configuration, the same on every
	// replica, so the check is deterministic.
	Region string
	// OnPush, if set, is told of each key of the group that a command
	// left a non-empty list or sorted set (blocking pops wait for them).
	// It is called while the command applies, before it is durable, and
	// must not block; it has no effect on what is applied.
	OnPush func(group uint64, key []byte)
	// Admits is the set of ops the group applies (nil: every op): its
	// strategy's (see Admission). A command of another op fails with
	// ErrRefused; a stream batch carrying one fails whole.
	Admits *Admission

	// known: facts read through the batch now being applied (knownFacts).
	known knownFacts
}

// knownFacts are facts about a group's stored state that the plain data
// ops (OpSet to OpPersist, applyOp's) never change: the group's role, and
// whether it holds any list or sorted set (none of them creates one).
// Read once instead of once per command, they hold while the state
// machine applies plain ops through the batch numbered batch
// (storage.Batch.Seq) and, as below, the batches that follow on from it;
// any other op starts over. The host stages a group's snapshot into a
// batch before applying any of its entries there, so a snapshot never
// changes them under a batch either.
// They are this replica's cache and decide nothing another replica would
// decide differently: each is what a read through the batch would give.
//
// Once the batch is committed (Applied at the index of the last entry
// applied under the facts) they are the stored state's, and they carry
// over to the next batch if its first entry is the next index: nothing
// was applied in between (an entry that is not a command, a conf change
// say, leaves a gap and starts over), and no snapshot was installed (a
// snapshot's index is past the group's commit index, so it leaves a gap
// too; Applied after a restore drops the facts besides).
type knownFacts struct {
	batch  uint64
	role   Role
	roleOK bool
	// coll: 0 not read yet; 1 the group holds no list or sorted set (it
	// never allocated a collection id); 2 it may.
	coll int8
	// last is the index of the last entry applied under the facts;
	// committed, that its batch is committed (Applied reached last).
	last      uint64
	committed bool
	// reads counts the facts read from storage (kept across resets; for
	// tests).
	reads int
}

// reset forgets the facts.
func (k *knownFacts) reset() { *k = knownFacts{reads: k.reads} }

// plain reports whether o is one of applyOp's data ops.
func (o Op) plain() bool { return o >= OpSet && o <= OpPersist }

// Apply implements raftgroup.StateMachine. It is deterministic: a record
// whose expiry is at or before the command's NowMS is treated as absent
// (and removed when the command writes the key); the local clock is never
// read. A command that fails returns Result.Err and changes nothing.
//
// A failure that is not the command's is returned as the error instead,
// which the host treats as fatal (see IsFatal): a storage read that failed
// (storage.ErrIO), stored state that does not decode (storage.ErrCorrupt,
// also for records and reports this package stores), a command of a
// version or op this binary does not know (ErrUnsupported). b may then
// hold part of the command and must be discarded.
func (sm *StateMachine) Apply(b *storage.Batch, index uint64, cmd []byte) (any, error) {
	res := sm.applyCommand(b, index, cmd)
	if res.Err != nil && IsFatal(res.Err) {
		return nil, fmt.Errorf("kv: group %d: %w", sm.Group, res.Err)
	}
	return res, nil
}

// IsFatal reports whether err, met while applying a command, is this
// replica's failure rather than the command's: a storage error
// (storage.ErrIO), stored state that does not decode (storage.ErrCorrupt),
// or a command newer than this binary (ErrUnsupported). Another replica
// may apply the same command successfully, so such an error must never
// become the command's result.
func IsFatal(err error) bool {
	return errors.Is(err, storage.ErrIO) || errors.Is(err, storage.ErrCorrupt) || errors.Is(err, ErrUnsupported)
}

// corrupt wraps the error of decoding something this package stored.
func corrupt(err error, what string, key []byte) error {
	return fmt.Errorf("%w: %s %q: %w", storage.ErrCorrupt, what, key, err)
}

func (sm *StateMachine) applyCommand(b *storage.Batch, index uint64, cmd []byte) Result {
	c, err := DecodeCommand(cmd)
	if err != nil {
		return Result{Err: err}
	}
	if err := checkArgs(c); err != nil {
		return Result{Err: err}
	}
	if !sm.Admits.Admits(c.Op) {
		return Result{Err: sm.Admits.refuse(sm.Group, c.Op)}
	}
	plain := c.Op.plain()
	carry := sm.known.batch == b.Seq() || (sm.known.committed && index == sm.known.last+1)
	if !plain || !carry {
		// Another batch not following on from a committed one, or an op
		// that may change what is known: start over (only plain ops fill
		// the facts in again).
		sm.known.reset()
	}
	sm.known.batch, sm.known.last, sm.known.committed = b.Seq(), index, false
	switch c.Op {
	case OpStreamApply:
		return sm.streamApply(b, index, c.Args[0])
	case OpStreamChunk:
		return sm.streamChunk(b, c.Args[0])
	case OpRole:
		return sm.role(b, index, c)
	case OpRestoreChunk: // a restore's data, whatever the role (restore.go)
		return sm.restoreChunk(b, c)
	}
	role, err := sm.storedRole(b, plain)
	if err != nil {
		return Result{Err: err}
	}
	if err := checkWrite(role, c.Epoch); err != nil {
		return Result{Err: err}
	}
	switch c.Op { // tombstone collection: gc.go
	case OpActiveKnow:
		return sm.know(b, c)
	case OpActiveGC:
		return sm.collect(b, c)
	case OpStreamCursor:
		return sm.raiseCursor(b, c)
	}
	if c.Op.active() { // active keyspaces: active.go
		return sm.applyActive(b, index, c, 0, 0)
	}
	var known *knownFacts
	if plain {
		known = &sm.known
	}
	return sm.apply(b, index, c, known)
}

// storedRole returns the group's role as stored (through b): known, or
// read and, for a plain op, kept (applyCommand has made the facts b's).
func (sm *StateMachine) storedRole(b *storage.Batch, plain bool) (Role, error) {
	if sm.known.roleOK {
		return sm.known.role, nil
	}
	r, err := loadRole(b, sm.Group)
	sm.known.reads++
	if err == nil && plain {
		sm.known.role, sm.known.roleOK = r, true
	}
	return r, err
}

// apply applies a write at index, its role already checked (or, for a
// write arriving by stream, not applicable). known is what the state
// machine knows of the group through b, for a plain op applied from the
// log; nil otherwise (a stream batch mixes ops of every kind).
func (sm *StateMachine) apply(b *storage.Batch, index uint64, c Command, known *knownFacts) Result {
	switch c.Op {
	case OpRedis: // engine.go
		return sm.applyRedis(b, index, c)
	case OpTxn: // txn.go
		return sm.applyTxn(b, index, c)
	}
	a := &execCtx{src: batchSource{b}, b: b, group: sm.Group, now: c.NowMS, index: index, known: known}
	res := a.applyOp(c)
	if a.err != nil {
		return Result{Err: a.err}
	}
	return res
}

// applyOp applies one of the first data ops (OpSet ... OpPersist).
func (a *execCtx) applyOp(c Command) Result {
	switch c.Op {
	case OpSet:
		return a.set(c)
	case OpDelete:
		return a.delete(c.Args)
	case OpGetDel:
		return a.getDel(c.Args[0])
	case OpIncrBy:
		return a.incrBy(c.Args[0], c.Int)
	case OpMSet:
		for i := 0; i < len(c.Args); i += 2 {
			a.put(c.Args[i], a.replaced(c.Args[i]), Record{Type: TypeString, Payload: c.Args[i+1]})
		}
		return Result{N: int64(len(c.Args) / 2)}
	case OpSAdd, OpSRem:
		return a.setOp(c)
	case OpHSet, OpHDel:
		return a.hashOp(c)
	case OpExpire:
		return a.expire(c)
	case OpPersist:
		return a.persist(c.Args[0])
	}
	return Result{Err: fmt.Errorf("%w: %w: op %d", ErrBadCommand, ErrUnsupported, c.Op)}
}

// checkArgs checks the number of arguments of each op.
func checkArgs(c Command) error {
	n := len(c.Args)
	ok := false
	switch c.Op {
	case OpSet:
		ok = n == 2
	case OpDelete:
		ok = n >= 1
	case OpGetDel, OpIncrBy, OpExpire, OpPersist, OpStreamApply, OpStreamChunk:
		ok = n == 1
	case OpRole:
		ok = n == 1 || n == 3
	case OpMSet:
		ok = n >= 2 && n%2 == 0
	case OpSAdd, OpSRem, OpHDel:
		ok = n >= 2
	case OpHSet:
		ok = n >= 3 && n%2 == 1
	case OpActiveSet, OpActiveDel, OpActiveIncr, OpActiveSAdd, OpActiveSRem, OpActiveHSet, OpActiveHDel, OpActiveMerge, OpActiveRedis:
		ok = activeArgsOK(c.Op, n) // active.go
	case OpActiveKnow:
		ok = n == 2
	case OpActiveGC:
		ok = n >= 1
	case OpStreamCursor:
		ok = n == 2 && len(c.Args[0]) == 8 && len(c.Args[1]) == 8
	case OpRestoreChunk:
		ok = n == 3 && len(c.Args[1]) == 8
	case OpRedis:
		ok = n >= 2
	case OpTxn:
		ok = n >= 2
	default:
		return fmt.Errorf("%w: %w: op %d", ErrBadCommand, ErrUnsupported, c.Op)
	}
	if !ok {
		return fmt.Errorf("%w: %s with %d arguments", ErrBadCommand, c.Op, n)
	}
	return nil
}

// past reports whether an absolute expiry has already passed at the
// command's time. Without a time (version-1 commands) nothing has.
func (a *execCtx) past(expireAtMS int64) bool {
	return expireAtMS != 0 && a.now != 0 && expireAtMS <= a.now
}

func (a *execCtx) set(c Command) Result {
	key, val := c.Args[0], c.Args[1]
	var old entry
	if c.Flags != 0 || a.past(c.Int) {
		old = a.lookup(key) // the options look at it; removing needs it
	} else {
		old = a.replaced(key)
	}
	var res Result
	if c.Flags&FlagGet != 0 && old.live {
		if old.rec.Type != TypeString {
			return Result{Err: ErrWrongType}
		}
		res.Value, res.Found = old.rec.Payload, true
	}
	if (c.Flags&FlagNX != 0 && old.live) || (c.Flags&FlagXX != 0 && !old.live) {
		return res
	}
	expire := c.Int
	if c.Flags&FlagKeepTTL != 0 && old.live {
		expire = old.rec.ExpireAtMS
	}
	res.N = 1
	if a.past(expire) {
		a.remove(key, old)
		return res
	}
	a.put(key, old, Record{Type: TypeString, ExpireAtMS: expire, Payload: val})
	return res
}

func (a *execCtx) delete(keys [][]byte) Result {
	var n int64
	for _, k := range keys {
		e := a.lookup(k)
		if e.live {
			n++
		}
		a.remove(k, e)
	}
	return Result{N: n}
}

func (a *execCtx) getDel(key []byte) Result {
	e := a.lookup(key)
	if !e.live {
		a.remove(key, e)
		return Result{}
	}
	if e.rec.Type != TypeString {
		return Result{Err: ErrWrongType}
	}
	a.remove(key, e)
	return Result{Value: e.rec.Payload, Found: true, N: 1}
}

func (a *execCtx) incrBy(key []byte, delta int64) Result {
	e := a.lookup(key)
	var cur, expire int64
	if e.live {
		if e.rec.Type != TypeString {
			return Result{Err: ErrWrongType}
		}
		var ok bool
		if cur, ok = ParseInt(e.rec.Payload); !ok {
			return Result{Err: ErrNotInteger}
		}
		expire = e.rec.ExpireAtMS
	}
	sum, overflow := addInt(cur, delta)
	if overflow {
		return Result{Err: ErrOverflow}
	}
	a.put(key, e, Record{Type: TypeString, ExpireAtMS: expire, Payload: strconv.AppendInt(nil, sum, 10)})
	return Result{N: sum}
}

func (a *execCtx) setOp(c Command) Result {
	key := c.Args[0]
	e := a.lookup(key)
	var members [][]byte
	if e.live {
		if e.rec.Type != TypeSet {
			return Result{Err: ErrWrongType}
		}
		var err error
		if members, err = DecodeSet(e.rec.Payload); err != nil {
			return Result{Err: corrupt(err, "set", key)}
		}
	}
	var changed int
	if c.Op == OpSAdd {
		members, changed = setAdd(members, c.Args[1:])
	} else {
		members, changed = setRemove(members, c.Args[1:])
	}
	if changed == 0 {
		return Result{}
	}
	return a.storeCollection(key, e, TypeSet, len(members) == 0, func() []byte { return EncodeSet(members) }, changed)
}

// storeCollection writes back a set or hash after an operation changed n
// of its elements: an empty one is deleted, one over MaxCollectionBytes is
// refused (nothing is written), the expiry of a live one is kept.
func (a *execCtx) storeCollection(key []byte, old entry, typ Type, empty bool, encode func() []byte, n int) Result {
	if empty {
		a.remove(key, old)
		return Result{N: int64(n)}
	}
	p := encode()
	if len(p) > MaxCollectionBytes {
		return Result{Err: fmt.Errorf("%w: the %s would take %d bytes (limit %d)", ErrTooLarge, typ, len(p), MaxCollectionBytes)}
	}
	var expire int64
	if old.live {
		expire = old.rec.ExpireAtMS
	}
	a.put(key, old, Record{Type: typ, ExpireAtMS: expire, Payload: p})
	return Result{N: int64(n)}
}

func (a *execCtx) hashOp(c Command) Result {
	key := c.Args[0]
	e := a.lookup(key)
	var fields []Field
	if e.live {
		if e.rec.Type != TypeHash {
			return Result{Err: ErrWrongType}
		}
		var err error
		if fields, err = DecodeHash(e.rec.Payload); err != nil {
			return Result{Err: corrupt(err, "hash", key)}
		}
	}
	var n int
	if c.Op == OpHSet {
		// HSET rewrites values even when no field is new.
		fields, n = hashSet(fields, c.Args[1:])
	} else {
		if fields, n = hashDelete(fields, c.Args[1:]); n == 0 {
			return Result{}
		}
	}
	return a.storeCollection(key, e, TypeHash, len(fields) == 0, func() []byte { return EncodeHash(fields) }, n)
}

func (a *execCtx) expire(c Command) Result {
	key := c.Args[0]
	e := a.lookup(key)
	if !e.live {
		a.remove(key, e)
		return Result{}
	}
	rec := e.rec
	has, old, at := rec.ExpireAtMS != 0, rec.ExpireAtMS, c.Int
	switch {
	case c.Flags&FlagNX != 0 && has,
		c.Flags&FlagXX != 0 && !has,
		c.Flags&FlagGT != 0 && (!has || at <= old), // no expiry counts as infinite
		c.Flags&FlagLT != 0 && has && at >= old:
		return Result{}
	}
	if at <= 0 || a.past(at) {
		a.remove(key, e)
		return Result{N: 1}
	}
	rec.ExpireAtMS = at
	a.put(key, e, rec)
	return Result{N: 1}
}

func (a *execCtx) persist(key []byte) Result {
	e := a.lookup(key)
	if !e.live || e.rec.ExpireAtMS == 0 {
		return Result{}
	}
	rec := e.rec
	rec.ExpireAtMS = 0
	a.put(key, e, rec)
	return Result{N: 1}
}

// Applied implements raftgroup.StateMachine.
func (sm *StateMachine) Applied(index uint64, restored bool) error {
	if restored {
		sm.known.reset()
	} else if index == sm.known.last {
		sm.known.committed = true
	}
	if sm.OnApplied != nil {
		sm.OnApplied(index)
	}
	return nil
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

// streamApply applies a batch of another region's commands (see
// OpStreamApply). A command's own error (say WRONGTYPE) is part of the
// replicated history: it failed the same way at the source and changes
// nothing here either. A failure of this replica (see IsFatal) is not: it
// fails the batch and, through Apply, stops the node. Role changes and
// stream commands in the source's log concern the source group alone and
// are skipped.
func (sm *StateMachine) streamApply(b *storage.Batch, index uint64, enc []byte) Result {
	batch, err := stream.DecodeBatch(enc)
	if err != nil {
		return Result{Err: err}
	}
	role, err := loadRole(b, sm.Group)
	if err != nil {
		return Result{Err: err}
	}
	if err := CheckStream(role, batch.Epoch); err != nil {
		return Result{Err: err}
	}
	if err := sm.admitBatch(batch); err != nil {
		return Result{Err: err}
	}
	merges := newActiveTxn(b, sm.Group) // the batch's merges, committed once (active.go)
	ack, err := stream.Apply(b, sm.Group, sm.Cluster, batch, role.Epoch, func(b *storage.Batch, ch stream.Change) error {
		if len(ch.Data) == 0 {
			return nil
		}
		c, err := DecodeCommand(ch.Data)
		if err != nil {
			return err
		}
		switch c.Op {
		case OpStreamApply, OpStreamChunk, OpRole, OpStreamCursor, OpActiveGC:
			return nil // about the source group alone
		case OpRestoreChunk: // an async primary's restore (restore.go)
			if err := checkArgs(c); err != nil {
				return err
			}
			if res := sm.restoreData(b, c); res.Err != nil && IsFatal(res.Err) {
				return res.Err
			}
			return nil
		case OpActiveMerge: // active keyspaces (active.go): a failed merge stops the stream
			if err := checkArgs(c); err != nil {
				return err
			}
			return sm.mergeInto(merges, index, c, batch.Stream, ch.Index).Err
		case OpActiveKnow: // another region's report, in order after its writes
			if err := checkArgs(c); err != nil {
				return err
			}
			return sm.know(b, c).Err
		}
		if c.Op.active() {
			return nil // local active ops travel as merges (ActiveChange), never as themselves
		}
		if err := checkArgs(c); err != nil {
			if IsFatal(err) {
				return err // an op this binary does not know
			}
			return nil // failed at the source too
		}
		if res := sm.apply(b, index, c, nil); res.Err != nil && IsFatal(res.Err) {
			return res.Err
		}
		return nil // a command error: failed at the source too
	})
	if err == nil {
		_, err = merges.commit(0)
	}
	return Result{N: int64(ack.Applied), Err: err}
}

// admitBatch refuses, before anything of it is staged, a stream batch
// carrying a change whose op the group does not apply (see Admission):
// no source of the group's strategy ships one. Changes about the source
// group alone are skipped by streamApply, and an op this binary does not
// know is left to it (fatal).
func (sm *StateMachine) admitBatch(batch stream.Batch) error {
	if sm.Admits == nil {
		return nil
	}
	for _, ch := range batch.Changes {
		op, ok := PeekOp(ch.Data)
		if !ok || sm.Admits.Admits(op) {
			continue
		}
		switch op {
		case OpStreamApply, OpStreamChunk, OpRole, OpStreamCursor, OpActiveGC:
			continue // about the source group alone
		}
		if errors.Is(checkArgs(Command{Op: op}), ErrUnsupported) {
			continue
		}
		return fmt.Errorf("stream: change %d of stream %d: %w", ch.Index, batch.Stream, sm.Admits.refuse(sm.Group, op))
	}
	return nil
}

// streamChunk applies one chunk of a resync (see OpStreamChunk).
func (sm *StateMachine) streamChunk(b *storage.Batch, enc []byte) Result {
	chunk, err := stream.DecodeChunk(enc)
	if err != nil {
		return Result{Err: err}
	}
	role, err := loadRole(b, sm.Group)
	if err != nil {
		return Result{Err: err}
	}
	if err := CheckStream(role, chunk.Epoch); err != nil {
		return Result{Err: err}
	}
	ack, err := stream.ApplyChunk(b, sm.Group, sm.Cluster, chunk, role.Epoch)
	return Result{N: int64(ack.Applied), Err: err}
}
