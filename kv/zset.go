package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// Sorted sets. A sorted set is a record of TypeZSet (its head) and two
// elements per member in the group's element span:
//
//	head payload:  format(1) uvarint(id) uvarint(cardinality)
//	by member:     suffix id(8) 'm' member            value: score (8 bytes)
//	by score:      suffix id(8) 's' order(8) member   value: score (8 bytes)
//
// order is the score's IEEE 754 bits made to sort as numbers (the sign
// bit flipped for positives, every bit flipped for negatives; -0 as 0),
// so the score index is in Redis's order: by score, then by member. A
// score lookup is one read, a range by score or by rank is one range
// scan from a seek, and nothing loads the whole set; a rank is found by
// counting (O(rank), where Redis's skip list takes O(log n)).
//
// In an active keyspace a sorted set is a CRDT (crdt.ZSet) stored whole
// in its record, like the other active values; reads see it through the
// same interface (zview) as a plain one.

const zsetFormat = 1

type zsetHead struct {
	id uint64
	n  int64
}

func (z zsetHead) encode() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	b = append(b, zsetFormat)
	b = binary.AppendUvarint(b, z.id)
	return binary.AppendUvarint(b, uint64(z.n))
}

func decodeZSetHead(p []byte) (zsetHead, error) {
	if len(p) < 1 || p[0] != zsetFormat {
		return zsetHead{}, fmt.Errorf("%w: unknown sorted set format", ErrBadRecord)
	}
	id, w := uvarint(p[1:])
	if w <= 0 || id == 0 {
		return zsetHead{}, fmt.Errorf("%w: sorted set id", ErrBadRecord)
	}
	n, w2 := uvarint(p[1+w:])
	if w2 <= 0 || 1+w+w2 != len(p) || n == 0 || n > math.MaxInt64 {
		return zsetHead{}, fmt.Errorf("%w: sorted set cardinality", ErrBadRecord)
	}
	return zsetHead{id: id, n: int64(n)}, nil
}

// scoreOrder maps a score to 8 bytes that sort as the scores do.
func scoreOrder(f float64) uint64 {
	if f == 0 {
		f = 0 // -0 sorts as 0
	}
	b := math.Float64bits(f)
	if b>>63 == 0 {
		return b | 1<<63
	}
	return ^b
}

func (z zsetHead) memberKey(m []byte) []byte {
	return append(append(idPrefix(z.id), 'm'), m...)
}

func (z zsetHead) scoreKey(f float64, m []byte) []byte {
	k := binary.BigEndian.AppendUint64(append(idPrefix(z.id), 's'), scoreOrder(f))
	return append(k, m...)
}

func encodeScore(f float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)) }

func decodeScore(v []byte) (float64, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), true
}

// A zpos is a position among a sorted set's elements, ordered by (score,
// member): before the first element of the score (member nil), or before
// (score, member); with after, just after them instead. zFirst stands for
// the start of the set (a forward scan) or its end (a backward one).
type zpos struct {
	first  bool
	score  float64
	member []byte
	after  bool
}

var zFirst = zpos{first: true}

// atOrAfter reports whether the element (s, m) is at or after p.
func (p zpos) atOrAfter(s float64, m []byte) bool {
	if p.first {
		return true
	}
	switch {
	case s > p.score:
		return true
	case s < p.score:
		return false
	case p.member == nil:
		return !p.after
	}
	c := bytes.Compare(m, p.member)
	return c > 0 || (c == 0 && !p.after)
}

// zview reads a sorted set.
type zview interface {
	card() int64
	score(member []byte) (float64, bool)
	// scan calls fn for the elements from p on (a forward scan: the first
	// at or after p; a reverse one: the last before p, then down) until fn
	// returns false.
	scan(p zpos, reverse bool, fn func(member []byte, score float64) bool)
	// members calls fn for the members after `after` (all if nil) in
	// member order until fn returns false.
	members(after []byte, fn func(member []byte, score float64) bool)
}

// zsetStore is a sorted set in the element span.
type zsetStore struct {
	x *execCtx
	zsetHead
	key []byte
	e   entry
}

func (z *zsetStore) card() int64 { return z.n }

func (z *zsetStore) score(m []byte) (float64, bool) {
	if z.id == 0 {
		return 0, false
	}
	v, ok, err := z.x.src.getElem(z.x.group, z.memberKey(m))
	if err != nil || !ok {
		z.x.fail(err)
		return 0, false
	}
	f, ok := decodeScore(v)
	if !ok {
		z.x.fail(corrupt(fmt.Errorf("score of %d bytes", len(v)), "sorted set", z.key))
	}
	return f, ok
}

// seekKey returns the score-index suffix at p.
func (z *zsetStore) seekKey(p zpos) []byte {
	k := binary.BigEndian.AppendUint64(append(idPrefix(z.id), 's'), scoreOrder(p.score))
	switch {
	case p.member == nil && p.after:
		// After every member of the score: the next score's start.
		o := scoreOrder(p.score)
		if o == math.MaxUint64 {
			return append(idPrefix(z.id), 't')
		}
		return binary.BigEndian.AppendUint64(append(idPrefix(z.id), 's'), o+1)
	case p.member != nil:
		k = append(k, p.member...)
		if p.after {
			k = append(k, 0)
		}
	}
	return k
}

func (z *zsetStore) scan(p zpos, reverse bool, fn func([]byte, float64) bool) {
	if z.id == 0 {
		return
	}
	lo := append(idPrefix(z.id), 's')
	hi := append(idPrefix(z.id), 't')
	it, err := z.x.src.elems(z.x.group, lo, hi)
	if err != nil {
		z.x.fail(err)
		return
	}
	var ok bool
	switch {
	case p.first && !reverse:
		ok = it.First()
	case p.first:
		ok = it.Last()
	case !reverse:
		ok = it.SeekGE(z.x.group, z.seekKey(p))
	default:
		ok = it.SeekLT(z.x.group, z.seekKey(p))
	}
	for ; ok; ok = map[bool]func() bool{false: it.Next, true: it.Prev}[reverse]() {
		k := it.Key()
		v, err := it.Value()
		if err != nil {
			z.x.fail(err)
			break
		}
		f, good := decodeScore(v)
		if !good || len(k) < 17 {
			z.x.fail(corrupt(fmt.Errorf("score index entry of %d bytes", len(k)), "sorted set", z.key))
			break
		}
		if !fn(k[17:], f) {
			break
		}
	}
	z.x.fail(it.Close())
}

func (z *zsetStore) members(after []byte, fn func([]byte, float64) bool) {
	if z.id == 0 {
		return
	}
	it, err := z.x.src.elems(z.x.group, append(idPrefix(z.id), 'm'), append(idPrefix(z.id), 'n'))
	if err != nil {
		z.x.fail(err)
		return
	}
	ok := it.First()
	if after != nil {
		ok = it.SeekGE(z.x.group, append(z.memberKey(after), 0))
	}
	for ; ok; ok = it.Next() {
		v, err := it.Value()
		if err != nil {
			z.x.fail(err)
			break
		}
		f, good := decodeScore(v)
		if !good {
			z.x.fail(corrupt(fmt.Errorf("score of %d bytes", len(v)), "sorted set", z.key))
			break
		}
		if !fn(it.Key()[9:], f) {
			break
		}
	}
	z.x.fail(it.Close())
}

// add sets a member's score (old is its current one, if present).
func (z *zsetStore) add(m []byte, f float64, old float64, had bool) {
	x := z.x
	if z.id == 0 {
		z.id = x.newID()
	}
	if had {
		x.b.DeleteElem(x.group, z.scoreKey(old, m))
	} else {
		z.n++
	}
	x.b.SetElem(x.group, z.memberKey(m), encodeScore(f))
	x.b.SetElem(x.group, z.scoreKey(f, m), encodeScore(f))
}

// rem removes a member whose score is f.
func (z *zsetStore) rem(m []byte, f float64) {
	x := z.x
	x.b.DeleteElem(x.group, z.memberKey(m))
	x.b.DeleteElem(x.group, z.scoreKey(f, m))
	z.n--
}

// store writes the head back (the expiry kept), or removes the key once
// the set is empty.
func (z *zsetStore) store() {
	x := z.x
	if z.n == 0 {
		if z.e.stored {
			x.b.DeleteData(x.group, z.key) // its members are deleted already
		}
		return
	}
	var expire int64
	if z.e.live {
		expire = z.e.rec.ExpireAtMS
	}
	rec := Record{Type: TypeZSet, ExpireAtMS: expire, Payload: z.zsetHead.encode()}
	x.put(z.key, z.e, rec)
	z.e = entry{rec: rec, live: true, stored: true}
}

// zsetAt loads the sorted set at key for a command: a live key of another
// type is WRONGTYPE; a missing set is empty. In an active keyspace the
// view is the merged CRDT's.
func (x *execCtx) zsetAt(key []byte) (zview, Reply, bool) {
	e := x.lookup(key)
	if _, r, ok := e.is(TypeZSet); !ok {
		return nil, r, false
	}
	return x.zview(e), Reply{}, true
}

// zview returns the view of a sorted set entry (live or not).
func (x *execCtx) zview(e entry) zview {
	if e.az != nil {
		return e.az
	}
	return x.zstore(nil, e)
}

// zstore returns the plain sorted set of an entry, for writes.
func (x *execCtx) zstore(key []byte, e entry) *zsetStore {
	z := &zsetStore{x: x, key: key, e: e}
	if e.live && e.rec.Type == TypeZSet {
		h, err := decodeZSetHead(e.rec.Payload)
		if err != nil {
			x.fail(corrupt(err, "sorted set", key))
		}
		z.zsetHead = h
	}
	return z
}

// zsetMem is a sorted set held in memory: an active keyspace's, read
// from its CRDT state.
type zsetMem struct {
	elems  []zelem // by (score, member)
	scores map[string]float64
}

type zelem struct {
	member []byte
	score  float64
}

func compareZ(a, b zelem) int {
	switch {
	case a.score < b.score:
		return -1
	case a.score > b.score:
		return 1
	}
	return bytes.Compare(a.member, b.member)
}

func newZSetMem(elems []zelem) *zsetMem {
	z := &zsetMem{elems: elems, scores: make(map[string]float64, len(elems))}
	sort.Slice(z.elems, func(i, j int) bool { return compareZ(z.elems[i], z.elems[j]) < 0 })
	for _, e := range elems {
		z.scores[string(e.member)] = e.score
	}
	return z
}

func (z *zsetMem) card() int64 { return int64(len(z.elems)) }

func (z *zsetMem) score(m []byte) (float64, bool) {
	f, ok := z.scores[string(m)]
	return f, ok
}

func (z *zsetMem) members(after []byte, fn func([]byte, float64) bool) {
	ms := make([]zelem, 0, len(z.elems))
	for _, e := range z.elems {
		if after == nil || bytes.Compare(e.member, after) > 0 {
			ms = append(ms, e)
		}
	}
	sort.Slice(ms, func(i, j int) bool { return bytes.Compare(ms[i].member, ms[j].member) < 0 })
	for _, e := range ms {
		if !fn(e.member, e.score) {
			return
		}
	}
}

func (z *zsetMem) scan(p zpos, reverse bool, fn func([]byte, float64) bool) {
	i := sort.Search(len(z.elems), func(i int) bool { return p.atOrAfter(z.elems[i].score, z.elems[i].member) })
	if !reverse {
		for ; i < len(z.elems); i++ {
			if !fn(z.elems[i].member, z.elems[i].score) {
				return
			}
		}
		return
	}
	if p.first {
		i = len(z.elems)
	}
	for i--; i >= 0; i-- {
		if !fn(z.elems[i].member, z.elems[i].score) {
			return
		}
	}
}
