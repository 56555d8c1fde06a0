package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"
)

// Lists. A list is a record of TypeList (its head) and one element per
// item in the group's element span:
//
//	head payload:  format(1) uvarint(id) varint(first) uvarint(length)
//	element:       suffix id(8) position(8), value the item
//
// Items sit at consecutive positions first ... first+length-1 (a
// position is an int64, stored with its sign bit flipped so that
// positions sort as numbers). A push at the left takes position first-1,
// one at the right first+length; a pop deletes the end's element. An
// index is a point read, LRANGE reads one range, LTRIM deletes two
// ranges: nothing loads the whole list. Removing or inserting in the
// middle (LREM, LINSERT) moves the items on the shorter side by one
// position, O(n) as in Redis.
//
// Lists exist in sync and async keyspaces; active keyspaces refuse them
// (see ActiveLists).

const listFormat = 1

// ActiveLists says why lists are refused in active keyspaces.
const ActiveLists = "lists have no merge for concurrent writes in several regions (two regions pushing at once would need a sequence CRDT, which Meridian does not have): use a sync or async keyspace for lists, or a sorted set (a leaderboard, a queue ordered by time) in an active one"

type listHead struct {
	id    uint64
	first int64
	n     int64
}

func (l listHead) encode() []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64)
	b = append(b, listFormat)
	b = binary.AppendUvarint(b, l.id)
	b = binary.AppendVarint(b, l.first)
	return binary.AppendUvarint(b, uint64(l.n))
}

func decodeListHead(p []byte) (listHead, error) {
	if len(p) < 1 || p[0] != listFormat {
		return listHead{}, fmt.Errorf("%w: unknown list format", ErrBadRecord)
	}
	p = p[1:]
	id, w := uvarint(p)
	if w <= 0 || id == 0 {
		return listHead{}, fmt.Errorf("%w: list id", ErrBadRecord)
	}
	p = p[w:]
	first, w := binary.Varint(p)
	if w <= 0 {
		return listHead{}, fmt.Errorf("%w: list start", ErrBadRecord)
	}
	p = p[w:]
	n, w := uvarint(p)
	if w <= 0 || w != len(p) || n == 0 || n > math.MaxInt64 || first > math.MaxInt64-int64(n) {
		return listHead{}, fmt.Errorf("%w: list length", ErrBadRecord)
	}
	return listHead{id: id, first: first, n: int64(n)}, nil
}

// pos returns the suffix of the item at index i.
func (l listHead) pos(i int64) []byte {
	return binary.BigEndian.AppendUint64(idPrefix(l.id), uint64(l.first+i)^(1<<63))
}

// list is a list key as a command sees it.
type list struct {
	key []byte
	e   entry
	listHead
}

// listAt loads the list at key; a live key of another type is WRONGTYPE.
// A missing list has length 0.
func (x *execCtx) listAt(key []byte) (*list, Reply, bool) {
	e := x.lookup(key)
	l := &list{key: key, e: e}
	if !e.live {
		return l, Reply{}, true
	}
	if e.rec.Type != TypeList {
		return nil, errWrongType, false
	}
	h, err := decodeListHead(e.rec.Payload)
	if err != nil {
		x.fail(corrupt(err, "list", key))
		return l, Reply{}, true
	}
	l.listHead = h
	return l, Reply{}, true
}

// item reads the item at index i.
func (x *execCtx) item(l *list, i int64) []byte {
	v, ok, err := x.src.getElem(x.group, l.pos(i))
	x.fail(err)
	if !ok && err == nil {
		x.fail(corrupt(fmt.Errorf("item %d missing", i), "list", l.key))
	}
	return v
}

// items reads the items at indexes [from, to).
func (x *execCtx) items(l *list, from, to int64) [][]byte {
	if from >= to {
		return nil
	}
	it, err := x.src.elems(x.group, l.pos(from), l.pos(to))
	if err != nil {
		x.fail(err)
		return nil
	}
	out := make([][]byte, 0, min(to-from, 1024))
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			x.fail(err)
			break
		}
		out = append(out, bytes.Clone(v))
	}
	x.fail(it.Close())
	if int64(len(out)) != to-from && x.err == nil {
		x.fail(corrupt(fmt.Errorf("%d items in [%d, %d)", len(out), from, to), "list", l.key))
	}
	return out
}

// ensure gives a missing list an id before it is written.
func (x *execCtx) ensure(l *list) {
	if l.id == 0 {
		l.id = x.newID()
	}
}

// pushLeft and pushRight add items at an end.
func (x *execCtx) pushLeft(l *list, vs ...[]byte) {
	x.ensure(l)
	for _, v := range vs {
		l.first--
		l.n++
		x.b.SetElem(x.group, l.pos(0), v)
	}
}

func (x *execCtx) pushRight(l *list, vs ...[]byte) {
	x.ensure(l)
	for _, v := range vs {
		x.b.SetElem(x.group, l.pos(l.n), v)
		l.n++
	}
}

// popEnd removes and returns up to count items from an end.
func (x *execCtx) popEnd(l *list, left bool, count int64) [][]byte {
	count = min(count, l.n)
	if count <= 0 {
		return nil
	}
	from := int64(0)
	if !left {
		from = l.n - count
	}
	var out [][]byte
	if count <= smallPop {
		// Point reads and deletes: a range deletion per pop would leave a
		// range tombstone per pop for every later read to step over.
		for i := from; i < from+count; i++ {
			out = append(out, x.item(l, i))
			x.b.DeleteElem(x.group, l.pos(i))
		}
	} else {
		out = x.items(l, from, from+count)
		x.b.DeleteElems(x.group, l.pos(from), l.pos(from+count))
	}
	if left {
		l.first += count
	} else {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i] // the last item first
		}
	}
	l.n -= count
	return out
}

// smallPop is the most items a pop deletes one by one.
const smallPop = 64

// deleteItems deletes the items at indexes [from, to): one by one when
// they are few (see popEnd), as a range otherwise.
func (x *execCtx) deleteItems(l *list, from, to int64) {
	if to-from > smallPop {
		x.b.DeleteElems(x.group, l.pos(from), l.pos(to))
		return
	}
	for i := from; i < to; i++ {
		x.b.DeleteElem(x.group, l.pos(i))
	}
}

// store writes the list's head back, or removes the key if it is empty;
// the expiry is kept.
func (x *execCtx) store(l *list) {
	if l.n == 0 {
		if l.e.stored {
			x.b.DeleteData(x.group, l.key) // its items are deleted already
		}
		return
	}
	var expire int64
	if l.e.live {
		expire = l.e.rec.ExpireAtMS
	}
	x.put(l.key, l.e, Record{Type: TypeList, ExpireAtMS: expire, Payload: l.listHead.encode()})
	// The entry now holds this list (a second write in one transaction).
	l.e = entry{rec: Record{Type: TypeList, ExpireAtMS: expire, Payload: l.listHead.encode()}, live: true, stored: true}
}

func init() {
	register(
		&Spec{Name: "lpush", Arity: -3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Adds items at the head of a list; returns its length.", run: cmdPush(true, false)},
		&Spec{Name: "rpush", Arity: -3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Adds items at the tail of a list; returns its length.", run: cmdPush(false, false)},
		&Spec{Name: "lpushx", Arity: -3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Adds items at the head of a list only if it exists.", run: cmdPush(true, true)},
		&Spec{Name: "rpushx", Arity: -3, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Adds items at the tail of a list only if it exists.", run: cmdPush(false, true)},
		&Spec{Name: "lpop", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Removes and returns items from the head of a list: [count].", run: cmdPop(true)},
		&Spec{Name: "rpop", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Removes and returns items from the tail of a list: [count].", run: cmdPop(false)},
		&Spec{Name: "lrange", Arity: 4, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Returns a range of a list's items (one range read).", run: cmdLRange},
		&Spec{Name: "llen", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Returns the length of a list.", run: cmdLLen},
		&Spec{Name: "lindex", Arity: 3, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Returns the item at an index of a list (one read).", run: cmdLIndex},
		&Spec{Name: "lset", Arity: 4, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Sets the item at an index of a list.", run: cmdLSet},
		&Spec{Name: "lrem", Arity: 4, Write: true, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Removes occurrences of an item from a list.", run: cmdLRem},
		&Spec{Name: "ltrim", Arity: 4, Write: true, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Keeps only a range of a list's items.", run: cmdLTrim},
		&Spec{Name: "linsert", Arity: 5, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Inserts an item before or after another in a list.", run: cmdLInsert},
		&Spec{Name: "lpos", Arity: -3, First: 1, Last: 1, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Returns the index of matching items of a list: [RANK r] [COUNT n] [MAXLEN len].", run: cmdLPos},
		&Spec{Name: "lmove", Arity: 5, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Moves an item from one end of a list to an end of another (keys of one shard).", run: cmdLMove(false)},
		&Spec{Name: "rpoplpush", Arity: 3, Write: true, Flags: []string{"denyoom"}, First: 1, Last: 2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Moves the tail item of a list to the head of another (keys of one shard).", run: cmdRPopLPush},
		&Spec{Name: "blpop", Arity: -3, Write: true, Flags: []string{"blocking"}, First: 1, Last: -2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Pops the head item of the first non-empty list, waiting up to a timeout (keys of one shard; async: in the primary region).", run: cmdBPop(true)},
		&Spec{Name: "brpop", Arity: -3, Write: true, Flags: []string{"blocking"}, First: 1, Last: -2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "Pops the tail item of the first non-empty list, waiting up to a timeout (keys of one shard; async: in the primary region).", run: cmdBPop(false)},
		&Spec{Name: "blmove", Arity: 6, Write: true, Flags: []string{"denyoom", "blocking"}, First: 1, Last: 2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "LMOVE, waiting up to a timeout for the source (keys of one shard; async: in the primary region).", run: cmdLMove(true)},
		&Spec{Name: "brpoplpush", Arity: 4, Write: true, Flags: []string{"denyoom", "blocking"}, First: 1, Last: 2, Step: 1, Group: "list", Active: ActiveLists,
			Summary: "RPOPLPUSH, waiting up to a timeout for the source (keys of one shard; async: in the primary region).", run: cmdBRPopLPush},
	)
}

func cmdPush(left, onlyIfExists bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		l, r, ok := x.listAt(args[1])
		if !ok {
			return r
		}
		if onlyIfExists && l.n == 0 {
			return Int(0)
		}
		if left {
			x.pushLeft(l, args[2:]...)
		} else {
			x.pushRight(l, args[2:]...)
		}
		x.store(l)
		return Int(l.n)
	}
}

func cmdPop(left bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
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
		l, r, ok := x.listAt(args[1])
		if !ok {
			return r
		}
		if l.n == 0 {
			if hasCount {
				return NilArray()
			}
			return Nil()
		}
		if hasCount && count == 0 {
			return Array()
		}
		vs := x.popEnd(l, left, count)
		x.store(l)
		if !hasCount {
			return Bulk(vs[0])
		}
		return bulks(vs)
	}
}

// bulks returns an array of byte strings.
func bulks(vs [][]byte) Reply {
	out := make([]Reply, len(vs))
	for i, v := range vs {
		out[i] = Bulk(v)
	}
	return Array(out...)
}

// listRange normalizes a start/stop pair as LRANGE does; ok is false for
// an empty range.
func listRange(start, stop, n int64) (int64, int64, bool) {
	if start < 0 {
		start += n
	}
	if stop < 0 {
		stop += n
	}
	start = max(start, 0)
	if start > stop || start >= n {
		return 0, 0, false
	}
	return start, min(stop, n-1), true
}

func cmdLRange(x *execCtx, args [][]byte) Reply {
	start, ok1 := intArg(args[2])
	stop, ok2 := intArg(args[3])
	if !ok1 || !ok2 {
		return errNotInteger
	}
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	a, b, ok := listRange(start, stop, l.n)
	if !ok {
		return Array()
	}
	return bulks(x.items(l, a, b+1))
}

func cmdLLen(x *execCtx, args [][]byte) Reply {
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	return Int(l.n)
}

func cmdLIndex(x *execCtx, args [][]byte) Reply {
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	if l.n == 0 {
		return Nil()
	}
	i, ok := intArg(args[2])
	if !ok {
		return errNotInteger
	}
	if i < 0 {
		i += l.n
	}
	if i < 0 || i >= l.n {
		return Nil()
	}
	return Bulk(x.item(l, i))
}

func cmdLSet(x *execCtx, args [][]byte) Reply {
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	if l.n == 0 {
		return errNoSuchKey
	}
	i, ok := intArg(args[2])
	if !ok {
		return errNotInteger
	}
	if i < 0 {
		i += l.n
	}
	if i < 0 || i >= l.n {
		return errOutOfRange
	}
	x.b.SetElem(x.group, l.pos(i), args[3])
	x.store(l) // a new version
	return OK()
}

func cmdLRem(x *execCtx, args [][]byte) Reply {
	count, ok := intArg(args[2])
	if !ok {
		return errNotInteger
	}
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	if l.n == 0 {
		return Int(0)
	}
	all := x.items(l, 0, l.n)
	drop := make([]bool, len(all))
	removed := int64(0)
	limit := count
	if limit < 0 {
		limit = -limit
	}
	visit := func(i int) bool {
		if bytes.Equal(all[i], args[3]) {
			drop[i] = true
			removed++
		}
		return limit == 0 || removed < limit
	}
	if count >= 0 {
		for i := 0; i < len(all) && visit(i); i++ {
		}
	} else {
		for i := len(all) - 1; i >= 0 && visit(i); i-- {
		}
	}
	if removed == 0 {
		return Int(0)
	}
	x.rewrite(l, all, drop, nil, -1)
	x.store(l)
	return Int(removed)
}

// rewrite changes the list's items to all without those dropped and with
// extra inserted before index at (at < 0: none), moving the items of the
// shorter side only.
func (x *execCtx) rewrite(l *list, all [][]byte, drop []bool, extra []byte, at int) {
	var kept [][]byte
	// The old items that move are those from lo on (moving the tail) or
	// up to hi (moving the head).
	lo, hi := len(all), -1
	for i, v := range all {
		if i == at {
			kept = append(kept, extra)
			lo, hi = min(lo, i), max(hi, i-1)
		}
		if drop != nil && drop[i] {
			lo, hi = min(lo, i), max(hi, i)
			continue
		}
		kept = append(kept, v)
	}
	if at == len(all) {
		kept = append(kept, extra)
		lo, hi = min(lo, at), max(hi, at-1)
	}
	delta := int64(len(kept) - len(all)) // +1 for an insertion, -k for removals
	if int64(len(all))-int64(lo) <= int64(hi)+1 {
		// Move the tail: items from lo on are rewritten at lo, lo+1, ...
		x.deleteItems(l, int64(lo), l.n)
		for i := lo; i < len(kept); i++ {
			x.b.SetElem(x.group, l.pos(int64(i)), kept[i])
		}
	} else {
		// Move the head: items up to hi are rewritten ending at the same
		// place, the start moving by -delta.
		x.deleteItems(l, 0, int64(hi)+1)
		end := hi + int(delta) // the index in kept of the last rewritten item
		l.first -= delta
		for i := 0; i <= end; i++ {
			x.b.SetElem(x.group, l.pos(int64(i)), kept[i])
		}
	}
	l.n = int64(len(kept))
}

func cmdLTrim(x *execCtx, args [][]byte) Reply {
	start, ok1 := intArg(args[2])
	stop, ok2 := intArg(args[3])
	if !ok1 || !ok2 {
		return errNotInteger
	}
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	if l.n == 0 {
		return OK()
	}
	a, b, ok := listRange(start, stop, l.n)
	if !ok {
		a, b = l.n, l.n-1 // nothing kept
	}
	x.deleteItems(l, 0, a)
	x.deleteItems(l, b+1, l.n)
	l.first += a
	l.n = b - a + 1
	x.store(l)
	return OK()
}

func cmdLInsert(x *execCtx, args [][]byte) Reply {
	var after bool
	switch strings.ToUpper(string(args[2])) {
	case "BEFORE":
	case "AFTER":
		after = true
	default:
		return errSyntax
	}
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	if l.n == 0 {
		return Int(0)
	}
	all := x.items(l, 0, l.n)
	at := -1
	for i, v := range all {
		if bytes.Equal(v, args[3]) {
			at = i
			break
		}
	}
	if at < 0 {
		return Int(-1)
	}
	if after {
		at++
	}
	x.rewrite(l, all, nil, args[4], at)
	x.store(l)
	return Int(l.n)
}

func cmdLPos(x *execCtx, args [][]byte) Reply {
	rank, count, maxlen := int64(1), int64(-1), int64(0)
	for i := 3; i < len(args); i += 2 {
		if i+1 == len(args) {
			return errSyntax
		}
		v, ok := intArg(args[i+1])
		switch strings.ToUpper(string(args[i])) {
		case "RANK":
			switch {
			case !ok:
				return errNotInteger
			case v == math.MinInt64:
				return Errorf("ERR value is out of range, value must between %d and %d", -math.MaxInt64, int64(math.MaxInt64))
			case v == 0:
				return Errorf("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
			}
			rank = v
		case "COUNT":
			if !ok || v < 0 {
				return Errorf("ERR COUNT can't be negative")
			}
			count = v
		case "MAXLEN":
			if !ok || v < 0 {
				return Errorf("ERR MAXLEN can't be negative")
			}
			maxlen = v
		default:
			return errSyntax
		}
	}
	l, r, ok := x.listAt(args[1])
	if !ok {
		return r
	}
	var found []int64
	if l.n > 0 {
		limit := l.n
		if maxlen > 0 {
			limit = min(limit, maxlen)
		}
		var from, to int64 = 0, limit
		if rank < 0 {
			from, to = l.n-limit, l.n
		}
		all := x.items(l, from, to)
		skip := rank
		if skip < 0 {
			skip = -skip
		}
		skip--
		match := func(i int64) bool {
			if !bytes.Equal(all[i-from], args[2]) {
				return true
			}
			if skip > 0 {
				skip--
				return true
			}
			found = append(found, i)
			return count == 0 || (count > 0 && int64(len(found)) < count)
		}
		if rank > 0 {
			for i := from; i < to && match(i); i++ {
			}
		} else {
			for i := to - 1; i >= from && match(i); i-- {
			}
		}
	}
	if count < 0 {
		if len(found) == 0 {
			return Nil()
		}
		return Int(found[0])
	}
	out := make([]Reply, len(found))
	for i, p := range found {
		out[i] = Int(p)
	}
	return Array(out...)
}

// parseWhere parses LEFT or RIGHT.
func parseWhere(b []byte) (left bool, ok bool) {
	switch strings.ToUpper(string(b)) {
	case "LEFT":
		return true, true
	case "RIGHT":
		return false, true
	}
	return false, false
}

func cmdLMove(blocking bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		from, ok1 := parseWhere(args[3])
		to, ok2 := parseWhere(args[4])
		if !ok1 || !ok2 {
			return errSyntax
		}
		if blocking {
			if _, err := ParseTimeout(args[5]); err != nil {
				return ErrReply(err)
			}
		}
		return x.move(args[1], args[2], from, to, blocking)
	}
}

func cmdRPopLPush(x *execCtx, args [][]byte) Reply {
	return x.move(args[1], args[2], false, true, false)
}

func cmdBRPopLPush(x *execCtx, args [][]byte) Reply {
	if _, err := ParseTimeout(args[3]); err != nil {
		return ErrReply(err)
	}
	return x.move(args[1], args[2], false, true, true)
}

// move pops an item from src and pushes it to dst. Nothing to move is nil
// (a nil array for a blocking command, which the front end then waits
// on).
func (x *execCtx) move(srcKey, dstKey []byte, fromLeft, toLeft, blocking bool) Reply {
	src, r, ok := x.listAt(srcKey)
	if !ok {
		return r
	}
	if src.n == 0 {
		if blocking {
			return NilArray()
		}
		return Nil()
	}
	dst := src
	if !bytes.Equal(srcKey, dstKey) {
		if dst, r, ok = x.listAt(dstKey); !ok {
			return r
		}
	}
	v := x.popEnd(src, fromLeft, 1)[0]
	if toLeft {
		x.pushLeft(dst, v)
	} else {
		x.pushRight(dst, v)
	}
	if dst != src {
		x.store(src)
	}
	x.store(dst)
	return Bulk(v)
}

func cmdBPop(left bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		if _, err := ParseTimeout(args[len(args)-1]); err != nil {
			return ErrReply(err)
		}
		for _, key := range args[1 : len(args)-1] {
			l, r, ok := x.listAt(key)
			if !ok {
				return r
			}
			if l.n == 0 {
				continue
			}
			v := x.popEnd(l, left, 1)[0]
			x.store(l)
			return Array(Bulk(key), Bulk(v))
		}
		return NilArray()
	}
}

// ParseTimeout parses a blocking command's timeout (seconds, a float, 0
// for none) as Redis does.
func ParseTimeout(b []byte) (time.Duration, error) {
	f, ok := parseLongDouble(b)
	if !ok {
		return 0, RedisError("ERR timeout is not a float or out of range")
	}
	v, _ := f.Float64()
	if v < 0 {
		return 0, RedisError("ERR timeout is negative")
	}
	ms := v * 1000
	if ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0, RedisError("ERR timeout is out of range")
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
