package kv

import (
	"strings"
)

// String commands of the engine.

// MaxStringBytes bounds a string that APPEND or SETRANGE grows (SET and
// the other writes are bounded by the node's value limit).
const MaxStringBytes = MaxCollectionBytes

var errStringTooLarge = Errorf("ERR string exceeds maximum allowed size (proto-max-bulk-len)")

func init() {
	register(
		&Spec{Name: "get", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveRead,
			Summary: "Returns the string value of a key.", run: cmdGet},
		&Spec{Name: "set", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Sets a key to a string: NX|XX, GET, EX|PX|EXAT|PXAT|KEEPTTL (active keyspaces: no expiry).", run: cmdSet},
		&Spec{Name: "setnx", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Sets a key to a string only if it does not exist.", run: cmdSetNX},
		&Spec{Name: "setex", Arity: 4, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "string", Active: noExpiry,
			Summary: "Sets a key to a string with a time to live in seconds.", run: cmdSetEx(1000)},
		&Spec{Name: "psetex", Arity: 4, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "string", Active: noExpiry,
			Summary: "Sets a key to a string with a time to live in milliseconds.", run: cmdSetEx(1)},
		&Spec{Name: "getset", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Sets a key to a string and returns its previous string value.", run: cmdGetSet},
		&Spec{Name: "getex", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: noExpiry,
			Summary: "Returns a key's string value and sets or removes its expiry: EX|PX|EXAT|PXAT|PERSIST.", run: cmdGetEx},
		&Spec{Name: "getdel", Arity: 2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: notYetActive,
			Summary: "Returns a key's string value and deletes the key.", run: cmdGetDel},
		&Spec{Name: "append", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: registerWhole,
			Summary: "Appends a string to a key's value; returns the new length.", run: cmdAppend},
		&Spec{Name: "strlen", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveRead,
			Summary: "Returns the length of a key's string value.", run: cmdStrlen},
		&Spec{Name: "getrange", Arity: 4, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveRead,
			Summary: "Returns a substring of a key's string value.", run: cmdGetRange},
		&Spec{Name: "substr", Arity: 4, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveRead,
			Summary: "Returns a substring of a key's string value (as GETRANGE).", run: cmdGetRange},
		&Spec{Name: "setrange", Arity: 4, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "string", Active: registerWhole,
			Summary: "Overwrites part of a key's string value at an offset; returns the new length.", run: cmdSetRange},
		&Spec{Name: "incr", Arity: 2, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Adds 1 to an integer string.", run: cmdIncr(1, false)},
		&Spec{Name: "decr", Arity: 2, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Subtracts 1 from an integer string.", run: cmdIncr(-1, false)},
		&Spec{Name: "incrby", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Adds an amount to an integer string.", run: cmdIncr(1, true)},
		&Spec{Name: "decrby", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: ActiveWrite,
			Summary: "Subtracts an amount from an integer string.", run: cmdIncr(-1, true)},
		&Spec{Name: "incrbyfloat", Arity: 3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "string", Active: floatCounter,
			Summary: "Adds a floating-point amount to a numeric string.", run: cmdIncrByFloat},
		&Spec{Name: "mget", Arity: -2, Flags: []string{"fast"}, First: 1, Last: -1, Step: 1, Group: "string", Active: ActiveRead,
			Summary: "Returns the string values of keys.", run: cmdMGet},
		&Spec{Name: "mset", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: -1, Step: 2, Group: "string", Active: ActiveWrite,
			Summary: "Sets keys to strings (outside a transaction: atomic within a shard, not across shards).", run: cmdMSet},
		&Spec{Name: "msetnx", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: -1, Step: 2, Group: "string", Active: notYetActive,
			Summary: "Sets keys to strings only if none of them exists (keys of one shard).", run: cmdMSetNX},
	)
}

// Reasons some commands are refused in active keyspaces (Spec.Active).
const (
	noExpiry      = "keys of active keyspaces have no expiry: they live until deleted"
	notYetActive  = "it reads and writes in one step, which concurrent writes in other regions could not merge; use a sync keyspace"
	registerWhole = "a partial update of a string has no merge with a concurrent write in another region (only whole values do); use a sync keyspace or SET the whole value"
	floatCounter  = "active counters are integers (INCRBY never loses an increment); a float has no exact merge; use a sync keyspace"
)

// stringValue returns the live string at key: ok false (and a reply) for
// another type.
func (x *execCtx) stringValue(key []byte) (entry, Reply, bool) {
	e := x.lookup(key)
	if _, r, ok := e.is(TypeString); !ok {
		return e, r, false
	}
	return e, Reply{}, true
}

func cmdGet(x *execCtx, args [][]byte) Reply {
	e, r, ok := x.stringValue(args[1])
	if !ok {
		return r
	}
	if !e.live {
		return Nil()
	}
	return Bulk(e.rec.Payload)
}

func resultErr(res Result) (Reply, bool) {
	if res.Err != nil {
		return ErrReply(res.Err), true
	}
	return Reply{}, false
}

func cmdSet(x *execCtx, args [][]byte) Reply {
	cmd, err := ParseSet(args[1:], x.now)
	if err != nil {
		return ErrReply(err)
	}
	res := x.set(cmd)
	if r, bad := resultErr(res); bad {
		return r
	}
	switch {
	case cmd.Flags&FlagGet != 0 && res.Found:
		return Bulk(res.Value)
	case cmd.Flags&FlagGet != 0 || res.N == 0:
		return Nil()
	}
	return OK()
}

func cmdSetNX(x *execCtx, args [][]byte) Reply {
	res := x.set(Command{Op: OpSet, Flags: FlagNX, Args: args[1:3]})
	return Int(res.N)
}

func cmdSetEx(unitMS int64) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		name := strings.ToLower(string(args[0]))
		v, ok := intArg(args[2])
		if !ok {
			return errNotInteger
		}
		at, ok := ToAbsoluteMS(v, unitMS, x.now, false)
		if v <= 0 || !ok {
			return ErrReply(errInvalidExpire(name))
		}
		x.set(Command{Op: OpSet, Int: at, Args: [][]byte{args[1], args[3]}})
		return OK()
	}
}

func cmdGetSet(x *execCtx, args [][]byte) Reply {
	res := x.set(Command{Op: OpSet, Flags: FlagGet, Args: args[1:3]})
	if r, bad := resultErr(res); bad {
		return r
	}
	if !res.Found {
		return Nil()
	}
	return Bulk(res.Value)
}

func cmdGetEx(x *execCtx, args [][]byte) Reply {
	key := args[1]
	var expire int64 // -1: persist; 0: unchanged
	for i := 2; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		switch opt {
		case "PERSIST":
			if expire != 0 {
				return errSyntax
			}
			expire = -1
		case "EX", "PX", "EXAT", "PXAT":
			if expire != 0 || i+1 == len(args) {
				return errSyntax
			}
			i++
			v, ok := intArg(args[i])
			if !ok {
				return errNotInteger
			}
			unit := int64(1)
			if opt == "EX" || opt == "EXAT" {
				unit = 1000
			}
			at, ok := ToAbsoluteMS(v, unit, x.now, opt == "EXAT" || opt == "PXAT")
			if v <= 0 || !ok || at <= 0 {
				return ErrReply(errInvalidExpire("getex"))
			}
			expire = at
		default:
			return errSyntax
		}
	}
	e, r, ok := x.stringValue(key)
	if !ok {
		return r
	}
	if !e.live {
		return Nil()
	}
	val := Bulk(e.rec.Payload)
	switch {
	case expire == -1 && e.rec.ExpireAtMS != 0:
		rec := e.rec
		rec.ExpireAtMS = 0
		x.put(key, e, rec)
	case expire > 0 && x.past(expire):
		x.remove(key, e)
	case expire > 0:
		rec := e.rec
		rec.ExpireAtMS = expire
		x.put(key, e, rec)
	}
	return val
}

func cmdGetDel(x *execCtx, args [][]byte) Reply {
	res := x.getDel(args[1])
	if r, bad := resultErr(res); bad {
		return r
	}
	if !res.Found {
		return Nil()
	}
	return Bulk(res.Value)
}

func cmdAppend(x *execCtx, args [][]byte) Reply {
	key := args[1]
	e, r, ok := x.stringValue(key)
	if !ok {
		return r
	}
	var cur []byte
	var expire int64
	if e.live {
		cur, expire = e.rec.Payload, e.rec.ExpireAtMS
	}
	if len(cur)+len(args[2]) > MaxStringBytes {
		return errStringTooLarge
	}
	v := make([]byte, 0, len(cur)+len(args[2]))
	v = append(append(v, cur...), args[2]...)
	x.put(key, e, Record{Type: TypeString, ExpireAtMS: expire, Payload: v})
	return Int(int64(len(v)))
}

func cmdStrlen(x *execCtx, args [][]byte) Reply {
	e, r, ok := x.stringValue(args[1])
	if !ok {
		return r
	}
	if !e.live {
		return Int(0)
	}
	return Int(int64(len(e.rec.Payload)))
}

func cmdGetRange(x *execCtx, args [][]byte) Reply {
	start, ok1 := intArg(args[2])
	end, ok2 := intArg(args[3])
	if !ok1 || !ok2 {
		return errNotInteger
	}
	e, r, ok := x.stringValue(args[1])
	if !ok {
		return r
	}
	if !e.live {
		return BulkString("")
	}
	s := e.rec.Payload
	n := int64(len(s))
	if start < 0 && end < 0 && start > end {
		return BulkString("")
	}
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if start > end || n == 0 {
		return BulkString("")
	}
	return Bulk(s[start : end+1])
}

func cmdSetRange(x *execCtx, args [][]byte) Reply {
	key, val := args[1], args[3]
	off, ok := intArg(args[2])
	if !ok {
		return errNotInteger
	}
	if off < 0 {
		return Errorf("ERR offset is out of range")
	}
	e, r, ok := x.stringValue(key)
	if !ok {
		return r
	}
	var cur []byte
	var expire int64
	if e.live {
		cur, expire = e.rec.Payload, e.rec.ExpireAtMS
	}
	if len(val) == 0 {
		return Int(int64(len(cur)))
	}
	if off > int64(MaxStringBytes)-int64(len(val)) {
		return errStringTooLarge
	}
	end := int(off) + len(val)
	v := make([]byte, max(len(cur), end))
	copy(v, cur)
	copy(v[off:], val)
	x.put(key, e, Record{Type: TypeString, ExpireAtMS: expire, Payload: v})
	return Int(int64(len(v)))
}

func cmdIncr(sign int64, withArg bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		delta := sign
		if withArg {
			v, ok := intArg(args[2])
			if !ok {
				return errNotInteger
			}
			if sign < 0 {
				if v == -1<<63 {
					return Errorf("ERR decrement would overflow")
				}
				v = -v
			}
			delta = v
		}
		res := x.incrBy(args[1], delta)
		if r, bad := resultErr(res); bad {
			return r
		}
		return Int(res.N)
	}
}

func cmdIncrByFloat(x *execCtx, args [][]byte) Reply {
	key := args[1]
	e, r, ok := x.stringValue(key)
	if !ok {
		return r
	}
	cur := []byte("0")
	var expire int64
	if e.live {
		cur, expire = e.rec.Payload, e.rec.ExpireAtMS
	}
	a, ok1 := parseLongDouble(cur)
	b, ok2 := parseLongDouble(args[2])
	if !ok1 || !ok2 {
		return errNotFloat
	}
	sum, ok := addLongDouble(a, b)
	if !ok {
		return Errorf("ERR increment would produce NaN or Infinity")
	}
	out := formatLongDouble(sum)
	x.put(key, e, Record{Type: TypeString, ExpireAtMS: expire, Payload: []byte(out)})
	return BulkString(out)
}

func cmdMGet(x *execCtx, args [][]byte) Reply {
	out := make([]Reply, 0, len(args)-1)
	for _, k := range args[1:] {
		if e := x.lookup(k); e.live && e.rec.Type == TypeString {
			out = append(out, Bulk(e.rec.Payload))
		} else {
			out = append(out, Nil())
		}
	}
	return Array(out...)
}

func cmdMSet(x *execCtx, args [][]byte) Reply {
	if len(args)%2 != 1 {
		return errArity(args[0])
	}
	x.applyOp(Command{Op: OpMSet, Args: args[1:]})
	return OK()
}

func cmdMSetNX(x *execCtx, args [][]byte) Reply {
	if len(args)%2 != 1 {
		return errArity(args[0])
	}
	for i := 1; i < len(args); i += 2 {
		if x.lookup(args[i]).live {
			return Int(0)
		}
	}
	x.applyOp(Command{Op: OpMSet, Args: args[1:]})
	return Int(1)
}
