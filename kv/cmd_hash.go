package kv

import (
	"strconv"
	"strings"
)

// Hash commands of the engine.

func init() {
	const r = ActiveRead
	register(
		&Spec{Name: "hset", Arity: -4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: ActiveWrite,
			Summary: "Sets fields of a hash; returns how many were new.", run: cmdHSet(false)},
		&Spec{Name: "hmset", Arity: -4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: ActiveWrite,
			Summary: "Sets fields of a hash (as HSET, replies OK).", run: cmdHSet(true)},
		&Spec{Name: "hsetnx", Arity: 4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: notYetActive,
			Summary: "Sets a field of a hash only if it does not exist.", run: cmdHSetNX},
		&Spec{Name: "hget", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the value of a hash field.", run: cmdHGet},
		&Spec{Name: "hmget", Arity: -3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the values of hash fields.", run: cmdHMGet},
		&Spec{Name: "hdel", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: ActiveWrite,
			Summary: "Deletes fields of a hash.", run: cmdHDel},
		&Spec{Name: "hgetall", Arity: 2, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns all fields and values of a hash (in field order).", run: cmdHGetAll},
		&Spec{Name: "hlen", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the number of fields of a hash.", run: cmdHLen},
		&Spec{Name: "hexists", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Tells whether a hash field exists.", run: cmdHExists},
		&Spec{Name: "hkeys", Arity: 2, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the fields of a hash (in field order).", run: cmdHKeys(true)},
		&Spec{Name: "hvals", Arity: 2, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the values of a hash (in field order).", run: cmdHKeys(false)},
		&Spec{Name: "hstrlen", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns the length of a hash field's value.", run: cmdHStrlen},
		&Spec{Name: "hincrby", Arity: 4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: notYetActive,
			Summary: "Adds an amount to an integer hash field.", run: cmdHIncrBy},
		&Spec{Name: "hincrbyfloat", Arity: 4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "hash", Active: floatCounter,
			Summary: "Adds a floating-point amount to a numeric hash field.", run: cmdHIncrByFloat},
		&Spec{Name: "hscan", Arity: -3, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Iterates over a hash's fields and values (the whole hash in one call): MATCH, COUNT.", run: cmdHScan},
		&Spec{Name: "hrandfield", Arity: -2, First: 1, Last: 1, Step: 1, Group: "hash", Active: r,
			Summary: "Returns random fields: [count [WITHVALUES]].", run: cmdHRandField},
	)
}

// hashAt loads the hash at key (no fields if it does not exist).
func (x *execCtx) hashAt(key []byte) (entry, []Field, Reply, bool) {
	e := x.lookup(key)
	if _, r, ok := e.is(TypeHash); !ok {
		return e, nil, r, false
	}
	if !e.live {
		return e, nil, Reply{}, true
	}
	fields, err := DecodeHash(e.rec.Payload)
	if err != nil {
		x.fail(corrupt(err, "hash", key))
	}
	return e, fields, Reply{}, true
}

func cmdHSet(replyOK bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		if len(args)%2 != 0 {
			return errArity(args[0])
		}
		res := x.hashOp(Command{Op: OpHSet, Args: args[1:]})
		if r, bad := resultErr(res); bad {
			return r
		}
		if replyOK {
			return OK()
		}
		return Int(res.N)
	}
}

func cmdHSetNX(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	if _, ok := HashGet(fields, args[2]); ok {
		return Int(0)
	}
	res := x.hashOp(Command{Op: OpHSet, Args: args[1:]})
	if r, bad := resultErr(res); bad {
		return r
	}
	return Int(1)
}

func cmdHGet(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	if v, ok := HashGet(fields, args[2]); ok {
		return Bulk(v)
	}
	return Nil()
}

func cmdHMGet(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	out := make([]Reply, 0, len(args)-2)
	for _, f := range args[2:] {
		if v, ok := HashGet(fields, f); ok {
			out = append(out, Bulk(v))
		} else {
			out = append(out, Nil())
		}
	}
	return Array(out...)
}

func cmdHDel(x *execCtx, args [][]byte) Reply {
	res := x.hashOp(Command{Op: OpHDel, Args: args[1:]})
	if r, bad := resultErr(res); bad {
		return r
	}
	return Int(res.N)
}

func cmdHGetAll(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	out := make([]Reply, 0, 2*len(fields))
	for _, f := range fields {
		out = append(out, Bulk(f.Name), Bulk(f.Value))
	}
	return Reply{Kind: ReplyMap, Elems: out}
}

func cmdHLen(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	return Int(int64(len(fields)))
}

func cmdHExists(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	if _, ok := HashGet(fields, args[2]); ok {
		return Int(1)
	}
	return Int(0)
}

func cmdHKeys(names bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		_, fields, r, ok := x.hashAt(args[1])
		if !ok {
			return r
		}
		out := make([]Reply, len(fields))
		for i, f := range fields {
			if names {
				out[i] = Bulk(f.Name)
			} else {
				out[i] = Bulk(f.Value)
			}
		}
		return Array(out...)
	}
}

func cmdHStrlen(x *execCtx, args [][]byte) Reply {
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	v, _ := HashGet(fields, args[2])
	return Int(int64(len(v)))
}

func cmdHIncrBy(x *execCtx, args [][]byte) Reply {
	delta, ok := intArg(args[3])
	if !ok {
		return errNotInteger
	}
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	var cur int64
	if v, ok := HashGet(fields, args[2]); ok {
		if cur, ok = ParseInt(v); !ok {
			return Errorf("ERR hash value is not an integer")
		}
	}
	sum, overflow := addInt(cur, delta)
	if overflow {
		return ErrReply(ErrOverflow)
	}
	res := x.hashOp(Command{Op: OpHSet, Args: [][]byte{args[1], args[2], strconv.AppendInt(nil, sum, 10)}})
	if r, bad := resultErr(res); bad {
		return r
	}
	return Int(sum)
}

func cmdHIncrByFloat(x *execCtx, args [][]byte) Reply {
	incr, ok := parseLongDouble(args[3])
	if !ok {
		return errNotFloat
	}
	if incr.IsInf() {
		return Errorf("ERR value is NaN or Infinity")
	}
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	cur := []byte("0")
	if v, ok := HashGet(fields, args[2]); ok {
		cur = v
	}
	a, ok := parseLongDouble(cur)
	if !ok || a.IsInf() {
		return Errorf("ERR hash value is not a float")
	}
	sum, ok := addLongDouble(a, incr)
	if !ok {
		return Errorf("ERR increment would produce NaN or Infinity")
	}
	out := formatLongDouble(sum)
	res := x.hashOp(Command{Op: OpHSet, Args: [][]byte{args[1], args[2], []byte(out)}})
	if r, bad := resultErr(res); bad {
		return r
	}
	return BulkString(out)
}

func cmdHScan(x *execCtx, args [][]byte) Reply {
	sa, r := parseCollectionScan(args[2:])
	if r.IsError() {
		return r
	}
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	var items []Reply
	if sa.cursor == 0 {
		for _, f := range fields {
			if sa.match == nil || GlobMatch(sa.match, f.Name) {
				items = append(items, Bulk(f.Name), Bulk(f.Value))
			}
		}
	}
	return Array(BulkString("0"), Array(items...))
}

func cmdHRandField(x *execCtx, args [][]byte) Reply {
	withValues, hasCount := false, len(args) >= 3
	var count int64
	if hasCount {
		v, ok := intArg(args[2])
		if !ok {
			return errNotInteger
		}
		count = v
		switch {
		case len(args) == 4 && strings.EqualFold(string(args[3]), "WITHVALUES"):
			withValues = true
		case len(args) >= 4:
			return errSyntax
		}
		if count < -(1<<62) || count > 1<<62 {
			return Errorf("ERR value is out of range")
		}
	}
	_, fields, r, ok := x.hashAt(args[1])
	if !ok {
		return r
	}
	if len(fields) == 0 {
		if hasCount {
			return Array()
		}
		return Nil()
	}
	rng := x.random(args[1])
	if !hasCount {
		return Bulk(fields[rng.IntN(len(fields))].Name)
	}
	var out []Reply
	for _, i := range randomPicks(rng, len(fields), count) {
		out = append(out, Bulk(fields[i].Name))
		if withValues {
			out = append(out, Bulk(fields[i].Value))
		}
	}
	if withValues {
		return Reply{Kind: ReplyPairs, Elems: out}
	}
	return Array(out...)
}
