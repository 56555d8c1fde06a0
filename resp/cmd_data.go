package resp

import (
	"fmt"
	"math"

	"github.com/meridian-db/meridian/kv"
)

// --- strings ---

func cmdGet(c *client, args [][]byte) error {
	rec, ok, err := c.readTyped(args[1], kv.TypeString)
	if err != nil {
		return err
	}
	if !ok {
		c.w.null()
		return nil
	}
	c.w.bulk(rec.Payload)
	return nil
}

func cmdSet(c *client, args [][]byte) error {
	cmd, err := parseSet(args[1:], c.nowMS())
	if err != nil {
		return err
	}
	if c.noWait {
		// Only a SET without options is started so (node.WriteAsync):
		// one without GET.
		return c.writeAsync(cmd)
	}
	r, err := c.write(cmd)
	if err != nil {
		return err
	}
	replySet(c, cmd.Flags&kv.FlagGet != 0, r)
	return nil
}

// replySet writes a SET's reply (get: it had the GET option).
func replySet(c *client, get bool, r kv.Result) {
	switch {
	case get && r.Found:
		c.w.bulk(r.Value)
	case get || r.N == 0:
		c.w.null()
	default:
		c.w.simple("OK")
	}
}

func cmdGetDel(c *client, args [][]byte) error {
	r, err := c.write(kv.Command{Op: kv.OpGetDel, Args: args[1:2]})
	if err != nil {
		return err
	}
	if !r.Found {
		c.w.null()
		return nil
	}
	c.w.bulk(r.Value)
	return nil
}

func cmdMGet(c *client, args [][]byte) error {
	recs, found, a, err := c.node().MGet(c.ctx(), c.keyspace, args[1:], c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	c.w.array(len(recs))
	for i, rec := range recs {
		if found[i] && rec.Type == kv.TypeString {
			c.w.bulk(rec.Payload)
		} else {
			c.w.null() // absent, or not a string (as Redis)
		}
	}
	return nil
}

func cmdMSet(c *client, args [][]byte) error {
	if len(args)%2 != 1 {
		return errArity("mset")
	}
	a, err := c.node().MSet(c.ctx(), c.keyspace, args[1:])
	if err != nil {
		return err
	}
	c.setLast(a)
	c.w.simple("OK")
	return nil
}

// cmdIncr serves INCR/DECR (by sign) and INCRBY/DECRBY (withArg).
func cmdIncr(sign int64, withArg bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		delta := sign
		if withArg {
			v, err := parseInt(args[2])
			if err != nil {
				return err
			}
			if sign < 0 {
				if v == math.MinInt64 {
					return replyError("ERR decrement would overflow")
				}
				v = -v
			}
			delta = v
		}
		r, err := c.write(kv.Command{Op: kv.OpIncrBy, Int: delta, Args: args[1:2]})
		if err != nil {
			return err
		}
		c.w.integer(r.N)
		return nil
	}
}

// --- keys ---

func cmdDel(c *client, args [][]byte) error {
	n, a, err := c.node().DeleteKeys(c.ctx(), c.keyspace, args[1:])
	if err != nil {
		return err
	}
	c.setLast(a)
	c.w.integer(n)
	return nil
}

func cmdExists(c *client, args [][]byte) error {
	_, found, a, err := c.node().MGet(c.ctx(), c.keyspace, args[1:], c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	var n int64
	for _, f := range found {
		if f {
			n++
		}
	}
	c.w.integer(n)
	return nil
}

func cmdType(c *client, args [][]byte) error {
	rec, ok, err := c.read(args[1])
	if err != nil {
		return err
	}
	if !ok {
		c.w.simple("none")
		return nil
	}
	c.w.simple(rec.Type.String())
	return nil
}

// cmdTTL serves TTL/PTTL (time left) and EXPIRETIME/PEXPIRETIME
// (absolute), in units of unitMS: -2 for a missing key, -1 without expiry.
func cmdTTL(unitMS int64, absolute bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		rec, ok, err := c.read(args[1])
		if err != nil {
			return err
		}
		left, has := rec.TTL(c.nowMS())
		switch {
		case !ok:
			c.w.integer(-2)
		case !has:
			c.w.integer(-1)
		case absolute:
			c.w.integer(rec.ExpireAtMS / unitMS)
		default:
			c.w.integer((left + unitMS/2) / unitMS) // rounded, as Redis
		}
		return nil
	}
}

func cmdExpire(unitMS int64, absolute bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		name := commandName(args[0])
		cmd, err := parseExpire(name, args[1:], c.nowMS(), unitMS, absolute)
		if err != nil {
			return err
		}
		r, err := c.write(cmd)
		if err != nil {
			return err
		}
		c.w.integer(r.N)
		return nil
	}
}

func cmdPersist(c *client, args [][]byte) error {
	r, err := c.write(kv.Command{Op: kv.OpPersist, Args: args[1:2]})
	if err != nil {
		return err
	}
	c.w.integer(r.N)
	return nil
}

func cmdScan(c *client, args [][]byte) error {
	sa, err := parseScan(args[1:])
	if err != nil {
		return err
	}
	cursor := "0"
	if sa.cursor != 0 {
		var ok bool
		if cursor, ok = c.s.cursors.get(c.keyspace, sa.cursor); !ok {
			return errInvalidCursor
		}
	}
	match := sa.match
	if match == "*" {
		match = ""
	}
	keys, next, a, err := c.node().Scan(c.ctx(), c.keyspace, cursor, match, sa.count, c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	if sa.typ != "" && len(keys) > 0 {
		recs, found, _, err := c.node().MGet(c.ctx(), c.keyspace, keys, c.consistency())
		if err != nil {
			return err
		}
		kept := keys[:0]
		for i, k := range keys {
			if found[i] && recs[i].Type.String() == sa.typ {
				kept = append(kept, k)
			}
		}
		keys = kept
	}
	var id uint64
	if next != "0" {
		id = c.s.cursors.put(c.keyspace, next)
	}
	c.w.array(2)
	c.w.bulkString(fmt.Sprint(id))
	c.w.array(len(keys))
	for _, k := range keys {
		c.w.bulk(k)
	}
	return nil
}

// cmdKeys returns every matching key. The reply is built whole, so it is
// bounded by Config.MaxReplyBytes; past that, use SCAN.
func cmdKeys(c *client, args [][]byte) error {
	match := string(args[1])
	if match == "*" {
		match = ""
	}
	var keys [][]byte
	size := 0
	cursor := "0"
	for {
		page, next, a, err := c.node().Scan(c.ctx(), c.keyspace, cursor, match, 1000, c.consistency())
		if err != nil {
			return err
		}
		c.setLast(a)
		for _, k := range page {
			if size += len(k) + 16; size > c.s.cfg.MaxReplyBytes {
				return replyError(fmt.Sprintf("ERR KEYS reply would exceed %d bytes; use SCAN", c.s.cfg.MaxReplyBytes))
			}
		}
		keys = append(keys, page...)
		if cursor = next; cursor == "0" {
			break
		}
	}
	c.w.array(len(keys))
	for _, k := range keys {
		c.w.bulk(k)
	}
	return nil
}

func cmdDBSize(c *client, args [][]byte) error {
	n, a, err := c.node().DBSize(c.ctx(), c.keyspace, c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	c.w.integer(n)
	return nil
}

// --- sets ---

func cmdSetWrite(c *client, args [][]byte) error {
	op := kv.OpSAdd
	if commandName(args[0]) == "srem" {
		op = kv.OpSRem
	}
	r, err := c.write(kv.Command{Op: op, Args: args[1:]})
	if err != nil {
		return err
	}
	c.w.integer(r.N)
	return nil
}

// readSet returns the members of the set at key (none if absent).
func (c *client) readSet(key []byte) ([][]byte, error) {
	rec, ok, err := c.readTyped(key, kv.TypeSet)
	if err != nil || !ok {
		return nil, err
	}
	return kv.DecodeSet(rec.Payload)
}

func cmdSMembers(c *client, args [][]byte) error {
	members, err := c.readSet(args[1])
	if err != nil {
		return err
	}
	c.w.setHeader(len(members))
	for _, m := range members {
		c.w.bulk(m)
	}
	return nil
}

func cmdSIsMember(c *client, args [][]byte) error {
	members, err := c.readSet(args[1])
	if err != nil {
		return err
	}
	if kv.SetContains(members, args[2]) {
		c.w.integer(1)
	} else {
		c.w.integer(0)
	}
	return nil
}

func cmdSCard(c *client, args [][]byte) error {
	members, err := c.readSet(args[1])
	if err != nil {
		return err
	}
	c.w.integer(int64(len(members)))
	return nil
}

// --- hashes ---

func cmdHSet(replyOK bool) func(*client, [][]byte) error {
	return func(c *client, args [][]byte) error {
		if len(args)%2 != 0 {
			return errArity(commandName(args[0]))
		}
		r, err := c.write(kv.Command{Op: kv.OpHSet, Args: args[1:]})
		if err != nil {
			return err
		}
		if replyOK {
			c.w.simple("OK")
		} else {
			c.w.integer(r.N)
		}
		return nil
	}
}

func cmdHDel(c *client, args [][]byte) error {
	r, err := c.write(kv.Command{Op: kv.OpHDel, Args: args[1:]})
	if err != nil {
		return err
	}
	c.w.integer(r.N)
	return nil
}

// readHash returns the fields of the hash at key (none if absent).
func (c *client) readHash(key []byte) ([]kv.Field, error) {
	rec, ok, err := c.readTyped(key, kv.TypeHash)
	if err != nil || !ok {
		return nil, err
	}
	return kv.DecodeHash(rec.Payload)
}

func cmdHGet(c *client, args [][]byte) error {
	fields, err := c.readHash(args[1])
	if err != nil {
		return err
	}
	if v, ok := kv.HashGet(fields, args[2]); ok {
		c.w.bulk(v)
	} else {
		c.w.null()
	}
	return nil
}

func cmdHMGet(c *client, args [][]byte) error {
	fields, err := c.readHash(args[1])
	if err != nil {
		return err
	}
	c.w.array(len(args) - 2)
	for _, name := range args[2:] {
		if v, ok := kv.HashGet(fields, name); ok {
			c.w.bulk(v)
		} else {
			c.w.null()
		}
	}
	return nil
}

func cmdHGetAll(c *client, args [][]byte) error {
	fields, err := c.readHash(args[1])
	if err != nil {
		return err
	}
	c.w.mapHeader(len(fields))
	for _, f := range fields {
		c.w.bulk(f.Name)
		c.w.bulk(f.Value)
	}
	return nil
}

func cmdHLen(c *client, args [][]byte) error {
	fields, err := c.readHash(args[1])
	if err != nil {
		return err
	}
	c.w.integer(int64(len(fields)))
	return nil
}
