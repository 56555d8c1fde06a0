package kv

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Key commands of the engine, and the few commands without keys that may
// be queued in a transaction.

func init() {
	register(
		&Spec{Name: "del", Arity: -2, Write: true, First: 1, Last: -1, Step: 1, Group: "generic", Active: ActiveWrite,
			Summary: "Deletes keys (outside a transaction: one command per shard).", run: cmdDel},
		&Spec{Name: "unlink", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: -1, Step: 1, Group: "generic", Active: ActiveWrite,
			Summary: "Deletes keys (as DEL).", run: cmdDel},
		&Spec{Name: "exists", Arity: -2, Flags: []string{"fast"}, First: 1, Last: -1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Counts the keys that exist.", run: cmdExists},
		&Spec{Name: "touch", Arity: -2, Flags: []string{"fast"}, First: 1, Last: -1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Counts the keys that exist (no access time is kept).", run: cmdExists},
		&Spec{Name: "type", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Returns the type of a key's value.", run: cmdType},
		&Spec{Name: "ttl", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Returns a key's time to live in seconds.", run: cmdTTL(1000, false)},
		&Spec{Name: "pttl", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Returns a key's time to live in milliseconds.", run: cmdTTL(1, false)},
		&Spec{Name: "expiretime", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Returns a key's expiry as a Unix time in seconds.", run: cmdTTL(1000, true)},
		&Spec{Name: "pexpiretime", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "Returns a key's expiry as a Unix time in milliseconds.", run: cmdTTL(1, true)},
		&Spec{Name: "expire", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: noExpiry,
			Summary: "Sets a key's time to live in seconds: NX|XX|GT|LT.", run: cmdExpire(1000, false)},
		&Spec{Name: "pexpire", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: noExpiry,
			Summary: "Sets a key's time to live in milliseconds.", run: cmdExpire(1, false)},
		&Spec{Name: "expireat", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: noExpiry,
			Summary: "Sets a key's expiry as a Unix time in seconds.", run: cmdExpire(1000, true)},
		&Spec{Name: "pexpireat", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: noExpiry,
			Summary: "Sets a key's expiry as a Unix time in milliseconds.", run: cmdExpire(1, true)},
		&Spec{Name: "persist", Arity: 2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "generic", Active: noExpiry,
			Summary: "Removes a key's expiry.", run: cmdPersist},
		&Spec{Name: "rename", Arity: 3, Write: true, First: 1, Last: 2, Step: 1, Group: "generic", Active: notYetActive,
			Summary: "Renames a key (both keys in one shard: use a hash tag), replacing the destination.", run: cmdRename(false)},
		&Spec{Name: "renamenx", Arity: 3, Write: true, Flags: []string{"fast"}, First: 1, Last: 2, Step: 1, Group: "generic", Active: notYetActive,
			Summary: "Renames a key only if the new name does not exist (keys of one shard).", run: cmdRename(true)},
		&Spec{Name: "copy", Arity: -3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 2, Step: 1, Group: "generic", Active: notYetActive,
			Summary: "Copies a key's value to another key (keys of one shard): [DB 0] [REPLACE].", run: cmdCopy},
		&Spec{Name: "object", Arity: -2, First: 2, Last: 2, Step: 1, Group: "generic", Active: ActiveRead,
			Summary: "OBJECT ENCODING (the encoding Redis would use for the value), REFCOUNT, IDLETIME (0: not tracked).", run: cmdObject},
		&Spec{Name: "ping", Arity: -1, Flags: []string{"fast"}, Group: "connection", Active: ActiveRead,
			Summary: "Returns PONG, or the given message.", run: cmdPing},
		&Spec{Name: "echo", Arity: 2, Flags: []string{"fast"}, Group: "connection", Active: ActiveRead,
			Summary: "Returns the given string.", run: cmdEcho},
		// UNWATCH queued in a transaction: the watched keys were checked
		// when EXEC began.
		&Spec{Name: "unwatch", Arity: 1, Flags: []string{"fast"}, Group: "transactions", Active: ActiveRead,
			Summary: "Forgets the watched keys.", run: func(*execCtx, [][]byte) Reply { return OK() }},
	)
}

func cmdDel(x *execCtx, args [][]byte) Reply {
	return Int(x.delete(args[1:]).N)
}

func cmdExists(x *execCtx, args [][]byte) Reply {
	var n int64
	for _, k := range args[1:] {
		if x.lookup(k).live {
			n++
		}
	}
	return Int(n)
}

func cmdType(x *execCtx, args [][]byte) Reply {
	return Status(x.lookup(args[1]).typ().String())
}

func cmdTTL(unitMS int64, absolute bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		e := x.lookup(args[1])
		left, has := e.rec.TTL(x.now)
		switch {
		case !e.live:
			return Int(-2)
		case !has:
			return Int(-1)
		case absolute:
			return Int(e.rec.ExpireAtMS / unitMS)
		}
		return Int((left + unitMS/2) / unitMS) // rounded, as Redis
	}
}

func cmdExpire(unitMS int64, absolute bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		cmd, err := ParseExpire(strings.ToLower(string(args[0])), args[1:], x.now, unitMS, absolute)
		if err != nil {
			return ErrReply(err)
		}
		return Int(x.expire(cmd).N)
	}
}

func cmdPersist(x *execCtx, args [][]byte) Reply { return Int(x.persist(args[1]).N) }

func cmdRename(nx bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		src, dst := args[1], args[2]
		s := x.lookup(src)
		if !s.live {
			return errNoSuchKey
		}
		if bytes.Equal(src, dst) {
			if nx {
				return Int(0)
			}
			return OK()
		}
		d := x.lookup(dst)
		if nx && d.live {
			return Int(0)
		}
		// The record moves with its collection id: no element moves.
		x.put(dst, d, s.rec)
		x.b.DeleteData(x.group, src)
		if nx {
			return Int(1)
		}
		return OK()
	}
}

func cmdCopy(x *execCtx, args [][]byte) Reply {
	src, dst := args[1], args[2]
	replace := false
	for i := 3; i < len(args); i++ {
		switch strings.ToUpper(string(args[i])) {
		case "REPLACE":
			replace = true
		case "DB":
			if i+1 == len(args) {
				return errSyntax
			}
			i++
			db, ok := intArg(args[i])
			if !ok {
				return errNotInteger
			}
			if db != 0 {
				return Errorf("ERR DB index is out of range")
			}
		default:
			return errSyntax
		}
	}
	if bytes.Equal(src, dst) {
		return Errorf("ERR source and destination objects are the same")
	}
	s := x.lookup(src)
	if !s.live {
		return Int(0)
	}
	d := x.lookup(dst)
	if d.live && !replace {
		return Int(0)
	}
	rec := s.rec
	if hasElems(rec.Type) {
		rec = x.copyElems(rec)
	}
	x.put(dst, d, Record{Type: rec.Type, ExpireAtMS: rec.ExpireAtMS, Payload: rec.Payload})
	return Int(1)
}

// copyElems copies the elements of a list or sorted set under a new id
// and returns the record of the copy.
func (x *execCtx) copyElems(rec Record) Record {
	id, _ := collectionID(rec)
	nid := x.newID()
	it, err := x.src.elems(x.group, idPrefix(id), idPrefix(id+1))
	if err != nil {
		x.fail(err)
		return rec
	}
	type pair struct{ k, v []byte }
	var all []pair
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			x.fail(err)
			break
		}
		all = append(all, pair{bytes.Clone(it.Key()), bytes.Clone(v)})
	}
	x.fail(it.Close())
	for _, e := range all {
		k := append(idPrefix(nid), e.k[8:]...)
		x.b.SetElem(x.group, k, e.v)
	}
	return Record{Type: rec.Type, ExpireAtMS: rec.ExpireAtMS, Payload: withCollectionID(rec.Payload, nid)}
}

// withCollectionID returns a list or sorted set head payload with another
// id (the id follows the format byte).
func withCollectionID(p []byte, id uint64) []byte {
	_, w := uvarint(p[1:])
	out := binary.AppendUvarint([]byte{p[0]}, id)
	return append(out, p[1+w:]...)
}

func cmdObject(x *execCtx, args [][]byte) Reply {
	sub := strings.ToLower(string(args[1]))
	switch sub {
	case "encoding", "refcount", "idletime", "freq":
		if len(args) != 3 {
			return errArity([]byte("object|" + sub))
		}
	case "help":
		return Array(BulkString("OBJECT <subcommand> [<arg> ...]. Subcommands are:"),
			BulkString("ENCODING <key>"), BulkString("    Return the kind of internal representation Redis would use for the value of <key>."),
			BulkString("REFCOUNT <key>"), BulkString("    Return 1 for an existing <key>."),
			BulkString("IDLETIME <key>"), BulkString("    Return 0: Meridian does not track access times."))
	default:
		return Errorf("ERR unknown subcommand '%s'. Try OBJECT HELP.", printable(args[1]))
	}
	e := x.lookup(args[2])
	if !e.live {
		return Nil()
	}
	switch sub {
	case "refcount":
		return Int(1)
	case "idletime":
		return Int(0)
	case "freq":
		return Errorf("ERR OBJECT FREQ is not supported: Meridian does not track access frequencies")
	}
	return BulkString(x.encodingOf(e))
}

// encodingOf names the encoding Redis 7.0 would give the value: a client
// may ask, Meridian stores every value its own way.
func (x *execCtx) encodingOf(e entry) string {
	switch e.rec.Type {
	case TypeString:
		p := e.rec.Payload
		if _, ok := ParseInt(p); ok {
			return "int"
		}
		if len(p) <= 44 {
			return "embstr"
		}
		return "raw"
	case TypeList:
		return "quicklist"
	case TypeSet:
		members, _ := DecodeSet(e.rec.Payload)
		if len(members) > 512 {
			return "hashtable"
		}
		for _, m := range members {
			if _, ok := ParseInt(m); !ok {
				return "hashtable"
			}
		}
		return "intset"
	case TypeHash:
		fields, _ := DecodeHash(e.rec.Payload)
		if len(fields) > 128 {
			return "hashtable"
		}
		for _, f := range fields {
			if len(f.Name) > 64 || len(f.Value) > 64 {
				return "hashtable"
			}
		}
		return "listpack"
	case TypeZSet:
		z := x.zview(e)
		if z.card() > 128 {
			return "skiplist"
		}
		small := true
		z.scan(zFirst, false, func(m []byte, _ float64) bool {
			small = len(m) <= 64
			return small
		})
		if small {
			return "listpack"
		}
		return "skiplist"
	}
	return "raw"
}

func cmdPing(x *execCtx, args [][]byte) Reply {
	switch len(args) {
	case 1:
		return Status("PONG")
	case 2:
		return Bulk(args[1])
	}
	return errArity(args[0])
}

func cmdEcho(x *execCtx, args [][]byte) Reply { return Bulk(args[1]) }

// FlushShardCommand is the write that deletes every key of the shard it
// is routed to (FLUSHDB sends it to each shard).
func FlushShardCommand() [][]byte { return [][]byte{[]byte(flushShardName)} }

const flushShardName = "meridian.flushshard"

func init() {
	register(&Spec{Name: flushShardName, Arity: 1, Write: true, Internal: true, Group: "server",
		Active: "deleting in an active keyspace takes a tombstone per key", run: cmdFlushShard})
}

func cmdFlushShard(x *execCtx, args [][]byte) Reply {
	x.b.ClearData(x.group)
	return OK()
}
