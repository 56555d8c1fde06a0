package kv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/crdt"
)

// The command engine in active keyspaces (docs/DESIGN.md 2.5).
//
// Reads run the engine's handlers on the region's merged states: each
// active record is presented as the plain value it reads as (a register
// or counter as a string, a set, a map as a hash, a ZSet as a sorted set
// held in memory). Writes that have a CRDT form run as OpActiveRedis,
// stamped by the proposer like the other active ops: the commands (one,
// or a transaction's, Int 1), applied to the region's states in one step
// (a transaction is atomic in its region; other regions merge its
// effects as they arrive, key by key) and shipped as the delta-states of
// every key they changed. A Spec says which commands have a CRDT form
// (Spec.Active); the others are refused with the reason.
//
// Sorted sets: ZADD writes a member's base score (a new tag: the member
// is added again, so that it survives a concurrent ZREM; flags judged on
// this region's view), ZADD INCR and ZINCRBY add to the member's counter
// of this region, ZREM removes what this region has seen. See crdt.ZSet.

// ActiveRedisCommand turns an engine write (OpRedis, or OpTxn without
// watched keys) into its active form: the same commands, stamped, with
// the keyspace's register resolver. A command without a CRDT form is
// refused, saying why.
func ActiveRedisCommand(c Command, s ActiveStamp, resolver string, nowMS int64) (Command, error) {
	var cmds [][][]byte
	txn := int64(0)
	switch c.Op {
	case OpRedis:
		cmds = [][][]byte{c.Args[1:]}
	case OpTxn:
		ws, err := decodeWatches(c.Args[1])
		if err != nil {
			return c, err
		}
		if len(ws) > 0 {
			return c, fmt.Errorf("%w: WATCH: regions write concurrently, so there is no single order in which a watched key could be checked", ErrNotActive)
		}
		if cmds, err = splitCommands(c.Args[2:]); err != nil {
			return c, err
		}
		txn = 1
	default:
		return c, fmt.Errorf("%w: %s", ErrNotActive, c.Op)
	}
	for _, cmd := range cmds {
		spec, ok := Lookup(cmd[0])
		if !ok {
			return c, fmt.Errorf("%w: unknown command %q", ErrBadCommand, printable(cmd[0]))
		}
		if spec.Active != ActiveWrite && spec.Active != ActiveRead {
			return c, fmt.Errorf("%w: %s: %s", ErrNotActive, strings.ToUpper(spec.Name), spec.Active)
		}
	}
	args := appendCommands([][]byte{c.Args[0], []byte(resolver)}, cmds)
	out := ActiveCommand(OpActiveRedis, s, nowMS, args...)
	out.Int = txn
	return out, nil
}

// activeRedisKeys returns the keys an OpActiveRedis may write.
func activeRedisKeys(c Command) [][]byte {
	cmds, err := splitCommands(c.Args[2 : len(c.Args)-1])
	if err != nil {
		return c.Args[:1]
	}
	var keys [][]byte
	for _, cmd := range cmds {
		if spec, ok := Lookup(cmd[0]); ok && spec.Write {
			keys = append(keys, spec.Keys(cmd)...)
		}
	}
	return keys
}

// redis applies an OpActiveRedis: args are its arguments without the
// stamp.
func (a activeOp) redis(sm *StateMachine, c Command, args [][]byte) Result {
	resolver := string(args[1])
	if _, err := crdt.LookupResolver(resolver); err != nil {
		return Result{Err: fmt.Errorf("kv: register write: %w", err)}
	}
	cmds, err := splitCommands(args[2:])
	if err != nil {
		return Result{Err: err}
	}
	x := &execCtx{group: sm.Group, now: c.NowMS, active: true, atxn: a.txn}
	x.src = batchSource{a.txn.b}
	seq := a.stamp.Seq
	replies := make([]Reply, len(cmds))
	for i, cmd := range cmds {
		spec, ok := Lookup(cmd[0])
		switch {
		case !ok:
			replies[i] = Errorf("ERR unknown command '%s'", printable(cmd[0]))
		case !spec.CheckArity(cmd):
			replies[i] = errArity(cmd[0])
		case spec.Active == ActiveRead:
			replies[i] = spec.run(x, cmd)
		case spec.Active == ActiveWrite:
			op := a
			op.stamp.Seq, seq = seq, 0 // the first write takes the op's index, the next ones the following dots
			replies[i] = op.write(x, resolver, cmd)
		default:
			replies[i] = Errorf("ERR %s is not available in active keyspaces: %s", strings.ToUpper(spec.Name), spec.Active)
		}
		if x.err != nil {
			return Result{Err: x.err}
		}
	}
	r := replies[0]
	if c.Int == 1 {
		r = Array(replies...)
	}
	return Result{Value: r.Encode(), Found: true}
}

// write runs one engine write as CRDT operations on the op's states.
func (a activeOp) write(x *execCtx, resolver string, args [][]byte) Reply {
	name := strings.ToLower(string(args[0]))
	res := func(r Result) (Result, bool) {
		if r.Err != nil && IsFatal(r.Err) {
			x.fail(r.Err)
		}
		return r, r.Err == nil
	}
	switch name {
	case "set":
		cmd, err := ParseSet(args[1:], x.now)
		if err != nil {
			return ErrReply(err)
		}
		if cmd.Int != 0 || cmd.Flags&FlagKeepTTL != 0 {
			return Errorf("ERR %s", noExpiry)
		}
		r, ok := res(a.set(cmd.Args[0], cmd.Args[1], resolver, cmd.Flags))
		switch {
		case !ok:
			return ErrReply(r.Err)
		case cmd.Flags&FlagGet != 0 && r.Found:
			return Bulk(r.Value)
		case cmd.Flags&FlagGet != 0 || r.N == 0:
			return Nil()
		}
		return OK()
	case "setnx":
		r, ok := res(a.set(args[1], args[2], resolver, FlagNX))
		if !ok {
			return ErrReply(r.Err)
		}
		return Int(r.N)
	case "getset":
		r, ok := res(a.set(args[1], args[2], resolver, FlagGet))
		switch {
		case !ok:
			return ErrReply(r.Err)
		case r.Found:
			return Bulk(r.Value)
		}
		return Nil()
	case "mset":
		if len(args)%2 != 1 {
			return errArity(args[0])
		}
		for i := 1; i < len(args); i += 2 {
			if r, ok := res(a.set(args[i], args[i+1], resolver, 0)); !ok {
				return ErrReply(r.Err)
			}
		}
		return OK()
	case "del", "unlink":
		r, _ := res(a.del(args[1:]))
		return Int(r.N)
	case "incr", "decr", "incrby", "decrby":
		delta := int64(1)
		if len(args) == 3 {
			v, ok := ParseInt(args[2])
			if !ok {
				return errNotInteger
			}
			delta = v
		}
		if strings.HasPrefix(name, "decr") {
			if delta == -1<<63 {
				return Errorf("ERR decrement would overflow")
			}
			delta = -delta
		}
		r, ok := res(a.incr(args[1], delta))
		if !ok {
			return ErrReply(r.Err)
		}
		return Int(r.N)
	case "sadd", "srem":
		op := OpActiveSAdd
		if name == "srem" {
			op = OpActiveSRem
		}
		r, ok := res(a.setOp(op, args[1], args[2:]))
		if !ok {
			return ErrReply(r.Err)
		}
		return Int(r.N)
	case "hset", "hmset", "hdel":
		op := OpActiveHSet
		if name == "hdel" {
			op = OpActiveHDel
		} else if len(args)%2 != 0 {
			return errArity(args[0])
		}
		r, ok := res(a.mapOp(op, args[1], args[2:]))
		switch {
		case !ok:
			return ErrReply(r.Err)
		case name == "hmset":
			return OK()
		}
		return Int(r.N)
	case "zadd":
		return a.zadd(x, args)
	case "zincrby":
		f, ok := ParseDouble(args[2])
		if !ok {
			return errNotFloat
		}
		return a.zaddPairs(x, args[1], zaddIncr, false, []float64{f}, [][]byte{args[2], args[3]})
	case "zrem":
		return a.zrem(x, args[1], args[2:])
	}
	return Errorf("ERR %s has no active form", strings.ToUpper(name))
}

func (a activeOp) zadd(x *execCtx, args [][]byte) Reply {
	// The same parsing as the plain ZADD's: replay it to get the flags.
	flags, ch := 0, false
	i := 2
	for ; i < len(args); i++ {
		switch strings.ToLower(string(args[i])) {
		case "nx":
			flags |= zaddNX
		case "xx":
			flags |= zaddXX
		case "gt":
			flags |= zaddGT
		case "lt":
			flags |= zaddLT
		case "ch":
			ch = true
		case "incr":
			flags |= zaddIncr
		default:
			goto pairs
		}
	}
pairs:
	rest := args[i:]
	switch {
	case len(rest) == 0 || len(rest)%2 != 0:
		return errSyntax
	case flags&zaddNX != 0 && flags&zaddXX != 0:
		return Errorf("ERR XX and NX options at the same time are not compatible")
	case flags&zaddGT != 0 && flags&zaddNX != 0 || flags&zaddLT != 0 && flags&zaddNX != 0 || flags&zaddGT != 0 && flags&zaddLT != 0:
		return Errorf("ERR GT, LT, and/or NX options at the same time are not compatible")
	case flags&zaddIncr != 0 && len(rest) > 2:
		return Errorf("ERR INCR option supports a single increment-element pair")
	}
	scores := make([]float64, len(rest)/2)
	for j := range scores {
		f, ok := ParseDouble(rest[2*j])
		if !ok {
			return errNotFloat
		}
		scores[j] = f
	}
	return a.zaddPairs(x, args[1], flags, ch, scores, rest)
}

// zaddPairs applies ZADD's pairs to the key's ZSet.
func (a activeOp) zaddPairs(x *execCtx, key []byte, flags int, ch bool, scores []float64, rest [][]byte) Reply {
	s, err := a.txn.load(key)
	if err != nil {
		x.fail(err)
		return Reply{}
	}
	if s, err = prepare(s, kindZSet); err != nil {
		return ErrReply(err)
	}
	z := s.val.(*crdt.ZSet)
	incr := flags&zaddIncr != 0
	var added, updated, processed int64
	var last float64
	seq := a.stamp.Seq
	changed := false
	for j, f := range scores {
		m := string(rest[2*j+1])
		cur, had := z.Score(m)
		if had && flags&zaddNX != 0 || !had && flags&zaddXX != 0 {
			continue
		}
		nf := f
		if incr {
			nf = cur + f
		}
		if had && (flags&zaddLT != 0 && nf >= cur || flags&zaddGT != 0 && nf <= cur) {
			continue
		}
		stamp := a.after(z.Versions(m))
		stamp.Seq, seq = seq, 0
		if incr {
			got, err := z.Incr(stamp, m, f)
			if errors.Is(err, crdt.ErrNaN) {
				return errNaNScore
			}
			nf = got
		} else {
			z.Add(stamp, m, nf)
		}
		changed = true
		processed++
		last = nf
		switch {
		case !had:
			added++
		case nf != cur:
			updated++
		}
	}
	if changed {
		a.done(key, s)
	}
	if incr {
		if processed == 0 {
			return Nil()
		}
		return Double(last)
	}
	if ch {
		return Int(added + updated)
	}
	return Int(added)
}

func (a activeOp) zrem(x *execCtx, key []byte, members [][]byte) Reply {
	s, err := a.txn.load(key)
	if err != nil {
		x.fail(err)
		return Reply{}
	}
	if s, err = existing(s, kindZSet); err != nil {
		return ErrReply(err)
	}
	if s == nil {
		return Int(0)
	}
	z := s.val.(*crdt.ZSet)
	var present []string
	for _, m := range sortedStrings(members) {
		if z.Contains(string(m)) {
			present = append(present, string(m))
		}
	}
	if len(present) == 0 {
		return Int(0)
	}
	var vs []crdt.Version
	for _, m := range present {
		vs = append(vs, z.Versions(m)...)
	}
	z.Remove(a.after(vs), present...)
	a.done(key, s)
	return Int(int64(len(present)))
}

// activeEntry presents an active key's state as the plain value it reads
// as (a tombstone, or another kind than the engine knows, is absent).
func (x *execCtx) activeEntry(key []byte, rec Record) entry {
	if !x.active {
		// A plain command on an active record: the state machine refuses
		// plain writes in active groups before they get here; a read sees
		// a value of no type it knows.
		return entry{rec: rec, stored: true, live: true}
	}
	s, err := decodeActiveState(rec.Payload)
	if err != nil {
		x.fail(corrupt(err, "active state", key))
		return entry{}
	}
	return x.activeStateEntry(s)
}

func (x *execCtx) activeStateEntry(s *activeState) entry {
	if s == nil || !s.val.Live() {
		return entry{}
	}
	e := entry{live: true, stored: true}
	switch v := s.val.(type) {
	case *crdt.Register:
		val, _ := v.Get()
		e.rec = Record{Type: TypeString, Payload: val}
	case *crdt.Counter:
		e.rec = Record{Type: TypeString, Payload: strconv.AppendInt(nil, v.Value(), 10)}
	case *crdt.Set:
		ms := v.Members()
		bs := make([][]byte, len(ms))
		for i, m := range ms {
			bs[i] = []byte(m)
		}
		e.rec = Record{Type: TypeSet, Payload: EncodeSet(bs)}
	case *crdt.Map:
		var fs []Field
		for _, f := range v.Fields() {
			val, _ := v.Get(f)
			fs = append(fs, Field{Name: []byte(f), Value: val})
		}
		e.rec = Record{Type: TypeHash, Payload: EncodeHash(fs)}
	case *crdt.ZSet:
		ms, scores := v.Members()
		elems := make([]zelem, len(ms))
		for i, m := range ms {
			elems[i] = zelem{member: []byte(m), score: scores[i]}
		}
		e.rec = Record{Type: TypeZSet}
		e.az = newZSetMem(elems)
	default:
		return entry{}
	}
	return e
}
