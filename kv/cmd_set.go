package kv

import (
	"bytes"
	"fmt"
)

// Set commands of the engine.

func init() {
	const r = ActiveRead
	register(
		&Spec{Name: "sadd", Arity: -3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: ActiveWrite,
			Summary: "Adds members to a set.", run: cmdSAdd},
		&Spec{Name: "srem", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: ActiveWrite,
			Summary: "Removes members from a set.", run: cmdSRem},
		&Spec{Name: "smembers", Arity: 2, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Returns the members of a set (in byte order).", run: cmdSMembers},
		&Spec{Name: "sismember", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Tells whether a member is in a set.", run: cmdSIsMember},
		&Spec{Name: "smismember", Arity: -3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Tells whether each member is in a set.", run: cmdSMIsMember},
		&Spec{Name: "scard", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Returns the number of members of a set.", run: cmdSCard},
		&Spec{Name: "spop", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "set", Active: notYetActive,
			Summary: "Removes and returns random members: [count].", run: cmdSPop},
		&Spec{Name: "srandmember", Arity: -2, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Returns random members: [count].", run: cmdSRandMember},
		&Spec{Name: "smove", Arity: 4, Write: true, Flags: []string{"fast"}, First: 1, Last: 2, Step: 1, Group: "set", Active: notYetActive,
			Summary: "Moves a member from one set to another (keys of one shard).", run: cmdSMove},
		&Spec{Name: "sinter", Arity: -2, First: 1, Last: -1, Step: 1, Group: "set", Active: r,
			Summary: "Returns the intersection of sets (keys of one shard).", run: cmdSetAlgebra(setInter, false)},
		&Spec{Name: "sunion", Arity: -2, First: 1, Last: -1, Step: 1, Group: "set", Active: r,
			Summary: "Returns the union of sets (keys of one shard).", run: cmdSetAlgebra(setUnion, false)},
		&Spec{Name: "sdiff", Arity: -2, First: 1, Last: -1, Step: 1, Group: "set", Active: r,
			Summary: "Returns the difference of the first set and the others (keys of one shard).", run: cmdSetAlgebra(setDiff, false)},
		&Spec{Name: "sinterstore", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: -1, Step: 1, Group: "set", Active: notYetActive,
			Summary: "Stores the intersection of sets (keys of one shard).", run: cmdSetAlgebra(setInter, true)},
		&Spec{Name: "sunionstore", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: -1, Step: 1, Group: "set", Active: notYetActive,
			Summary: "Stores the union of sets (keys of one shard).", run: cmdSetAlgebra(setUnion, true)},
		&Spec{Name: "sdiffstore", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: -1, Step: 1, Group: "set", Active: notYetActive,
			Summary: "Stores the difference of sets (keys of one shard).", run: cmdSetAlgebra(setDiff, true)},
		&Spec{Name: "sscan", Arity: -3, First: 1, Last: 1, Step: 1, Group: "set", Active: r,
			Summary: "Iterates over a set's members (the whole set in one call): MATCH, COUNT.", run: cmdSScan},
	)
}

// setAt loads the set at key (no members if it does not exist).
func (x *execCtx) setAt(key []byte) (entry, [][]byte, Reply, bool) {
	e := x.lookup(key)
	if _, r, ok := e.is(TypeSet); !ok {
		return e, nil, r, false
	}
	if !e.live {
		return e, nil, Reply{}, true
	}
	members, err := DecodeSet(e.rec.Payload)
	if err != nil {
		x.fail(corrupt(err, "set", key))
	}
	return e, members, Reply{}, true
}

func cmdSAdd(x *execCtx, args [][]byte) Reply {
	res := x.setOp(Command{Op: OpSAdd, Args: args[1:]})
	if r, bad := resultErr(res); bad {
		return r
	}
	return Int(res.N)
}

func cmdSRem(x *execCtx, args [][]byte) Reply {
	res := x.setOp(Command{Op: OpSRem, Args: args[1:]})
	if r, bad := resultErr(res); bad {
		return r
	}
	return Int(res.N)
}

func setReply(members [][]byte) Reply {
	out := make([]Reply, len(members))
	for i, m := range members {
		out[i] = Bulk(m)
	}
	return Reply{Kind: ReplySet, Elems: out}
}

func cmdSMembers(x *execCtx, args [][]byte) Reply {
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	return setReply(members)
}

func cmdSIsMember(x *execCtx, args [][]byte) Reply {
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	if SetContains(members, args[2]) {
		return Int(1)
	}
	return Int(0)
}

func cmdSMIsMember(x *execCtx, args [][]byte) Reply {
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	out := make([]Reply, len(args)-2)
	for i, m := range args[2:] {
		out[i] = Int(0)
		if SetContains(members, m) {
			out[i] = Int(1)
		}
	}
	return Array(out...)
}

func cmdSCard(x *execCtx, args [][]byte) Reply {
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	return Int(int64(len(members)))
}

func cmdSPop(x *execCtx, args [][]byte) Reply {
	if len(args) > 3 {
		return errArity(args[0])
	}
	count, hasCount := int64(1), len(args) == 3
	if hasCount {
		v, ok := intArg(args[2])
		if !ok {
			return errNotInteger
		}
		if v < 0 {
			return errNotPositive
		}
		count = v
	}
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	if len(members) == 0 {
		if hasCount {
			return setReply(nil)
		}
		return Nil()
	}
	var popped [][]byte
	for _, i := range randomPicks(x.random(args[1]), len(members), count) {
		popped = append(popped, members[i])
	}
	if len(popped) > 0 {
		x.setOp(Command{Op: OpSRem, Args: append([][]byte{args[1]}, popped...)})
	}
	if !hasCount {
		return Bulk(popped[0])
	}
	return setReply(sortedStrings(popped))
}

func cmdSRandMember(x *execCtx, args [][]byte) Reply {
	if len(args) > 3 {
		return errArity(args[0])
	}
	hasCount := len(args) == 3
	var count int64
	if hasCount {
		v, ok := intArg(args[2])
		if !ok {
			return errNotInteger
		}
		if v < -(1<<62) || v > 1<<62 {
			return Errorf("ERR value is out of range")
		}
		count = v
	}
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	if len(members) == 0 {
		if hasCount {
			return Array()
		}
		return Nil()
	}
	rng := x.random(args[1])
	if !hasCount {
		return Bulk(members[rng.IntN(len(members))])
	}
	picks := randomPicks(rng, len(members), count)
	out := make([]Reply, len(picks))
	for i, p := range picks {
		out[i] = Bulk(members[p])
	}
	return Array(out...)
}

func cmdSMove(x *execCtx, args [][]byte) Reply {
	src, dst, m := args[1], args[2], args[3]
	se, members, r, ok := x.setAt(src)
	if !ok {
		return r
	}
	if !se.live {
		return Int(0)
	}
	if _, _, r, ok := x.setAt(dst); !ok {
		return r
	}
	if bytes.Equal(src, dst) {
		if SetContains(members, m) {
			return Int(1)
		}
		return Int(0)
	}
	if !SetContains(members, m) {
		return Int(0)
	}
	// The member must fit in dst before anything changes.
	if res := x.setOp(Command{Op: OpSAdd, Args: [][]byte{dst, m}}); res.Err != nil {
		return ErrReply(res.Err)
	}
	x.setOp(Command{Op: OpSRem, Args: [][]byte{src, m}})
	return Int(1)
}

// Set algebra.
const (
	setInter = iota
	setUnion
	setDiff
)

func cmdSetAlgebra(op int, store bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		keys := args[1:]
		var dst []byte
		if store {
			dst, keys = args[1], args[2:]
		}
		sets := make([][][]byte, len(keys))
		present := make([]bool, len(keys))
		for i, k := range keys {
			e, members, r, ok := x.setAt(k)
			if !ok {
				return r
			}
			sets[i], present[i] = members, e.live
		}
		var out [][]byte
		switch op {
		case setInter:
			for i := range sets {
				if !present[i] {
					sets = nil
					break
				}
			}
			if len(sets) > 0 {
				out = sets[0]
				for _, s := range sets[1:] {
					var next [][]byte
					for _, m := range out {
						if SetContains(s, m) {
							next = append(next, m)
						}
					}
					out = next
				}
			}
		case setUnion:
			var all [][]byte
			for _, s := range sets {
				all = append(all, s...)
			}
			out = sortedStrings(all)
		case setDiff:
			for _, m := range sets[0] {
				in := false
				for _, s := range sets[1:] {
					if SetContains(s, m) {
						in = true
						break
					}
				}
				if !in {
					out = append(out, m)
				}
			}
		}
		if !store {
			return setReply(out)
		}
		d := x.lookup(dst)
		if len(out) == 0 {
			x.remove(dst, d)
			return Int(0)
		}
		p := EncodeSet(out)
		if len(p) > MaxCollectionBytes {
			return ErrReply(fmt.Errorf("%w: the set would take %d bytes (limit %d)", ErrTooLarge, len(p), MaxCollectionBytes))
		}
		x.put(dst, d, Record{Type: TypeSet, Payload: p})
		return Int(int64(len(out)))
	}
}

func cmdSScan(x *execCtx, args [][]byte) Reply {
	sa, r := parseCollectionScan(args[2:])
	if r.IsError() {
		return r
	}
	_, members, r, ok := x.setAt(args[1])
	if !ok {
		return r
	}
	var items []Reply
	if sa.cursor == 0 {
		for _, m := range members {
			if sa.match == nil || GlobMatch(sa.match, m) {
				items = append(items, Bulk(m))
			}
		}
	}
	return Array(BulkString("0"), Array(items...))
}
