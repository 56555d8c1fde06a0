package crdt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/hlc"
)

// A ZSet is a sorted set: members with scores. Membership is an
// observed-remove set, as Set: Add and Incr tag the member with the
// operation's dot, Remove drops the tags it has seen, so an add wins
// over a concurrent remove. A member's score has two parts:
//
//   - a base, written by Add (the score given) and Remove (0), kept as
//     last-writer-wins versions like a map field: a write replaces the
//     versions it has seen, concurrent versions stay side by side, and
//     the newest by (HLC time, region) decides, except that a Remove's
//     base never wins over a concurrent Add's (an add wins, with its
//     score);
//   - increments, a counter per region: each region's running total of
//     its Incr deltas for the member, with the dot of the region's latest
//     Incr; merges keep each region's latest. No increment is lost.
//
// Every base records the totals its writer had seen (each region's
// latest), and an increment counts until a write of the base has seen it:
//
//	score = base.score + sum over regions r of (total[r] - absorbed[r])
//
// where absorbed[r] is the latest total of r that one of the current
// bases had seen. So Add sets the score, an Incr that the Add did not see
// is added on top of it, and after a Remove increments start again from
// 0. Sums are taken in region order, so every region computes the same
// float. A removed member whose score has increments keeps its removal
// base (a tombstone of its score, gone with the key's tombstone); one
// without increments is dropped.
//
// Concurrent Adds of one member (neither saw the other) are a conflict,
// reported by Merge with the member as Field and the scores as values.
//
// Like a Set, a member may carry a context of its own (a delta's: what
// its writer had seen of it).
//
// The zero value is an empty sorted set, ready to use.
type ZSet struct {
	ctx     dotSet
	members map[string]*zmember
	mctx    map[string]dotSet // per member, what it has seen beyond ctx (never empty)
}

// zmember is a member's state: present while it has a tag.
type zmember struct {
	tags []Dot           // sorted
	base []zbase         // in last-writer-wins order, oldest first
	incs map[string]zinc // per region
}

// zbase is one write of a member's base score.
type zbase struct {
	Time    hlc.Timestamp
	Region  string
	Seq     uint64
	Score   float64
	Removed bool            // written by Remove
	Seen    map[string]zinc // each region's latest increments its writer had seen
}

func (b zbase) dot() Dot { return Dot{b.Region, b.Seq} }

// zinc is a region's increments of a member: the total and the dot of
// the region's latest one.
type zinc struct {
	Seq   uint64
	Total float64
}

// ErrNaN is returned (wrapped) by ZSet.Incr when the score would not be
// a number (an infinity plus the opposite one).
var ErrNaN = errors.New("crdt: score would not be a number")

// Type returns "zset".
func (*ZSet) Type() string { return "zset" }

func (z *ZSet) record(s Stamp) Dot {
	if z.ctx == nil {
		z.ctx = dotSet{}
	}
	d := z.ctx.next(s)
	z.trim()
	return d
}

// writable returns a member's state to change: a copy, put in place of
// the old one, which a Snapshot may share.
func (z *ZSet) writable(m string) *zmember {
	if z.members == nil {
		z.members = map[string]*zmember{}
	}
	zm := &zmember{}
	if old := z.members[m]; old != nil {
		zm = old.clone()
	}
	z.members[m] = zm
	return zm
}

// totals returns a copy of a member's increments.
func (zm *zmember) totals() map[string]zinc {
	if len(zm.incs) == 0 {
		return nil
	}
	return maps.Clone(zm.incs)
}

// Add sets member's score at s (and adds it). The score must not be NaN.
func (z *ZSet) Add(s Stamp, member string, score float64) {
	d := z.record(s)
	zm := z.writable(member)
	zm.tags = []Dot{d}
	zm.base = []zbase{{Time: s.Time, Region: d.Region, Seq: d.Seq, Score: score, Seen: zm.totals()}}
}

// Incr adds delta to member's score at s (adding the member) and returns
// the new score. It fails with ErrNaN, changing nothing, if the score
// would not be a number.
func (z *ZSet) Incr(s Stamp, member string, delta float64) (float64, error) {
	zm := &zmember{}
	if old := z.members[member]; old != nil {
		zm = old.clone()
	}
	if zm.incs == nil {
		zm.incs = map[string]zinc{}
	}
	total := zm.incs[s.Region].Total + delta
	zm.incs[s.Region] = zinc{Seq: 1, Total: total}
	if sc := zm.score(); math.IsNaN(sc) {
		return 0, fmt.Errorf("%w: adding %v", ErrNaN, delta)
	}
	d := z.record(s)
	zm.incs[s.Region] = zinc{Seq: d.Seq, Total: total}
	zm.tags = []Dot{d}
	if z.members == nil {
		z.members = map[string]*zmember{}
	}
	z.members[member] = zm
	return zm.score(), nil
}

// Remove removes members at s. Adds and increments that s has not seen
// survive it.
func (z *ZSet) Remove(s Stamp, members ...string) {
	z.remove(z.record(s), s, members)
}

func (z *ZSet) remove(d Dot, s Stamp, members []string) {
	for _, m := range members {
		if zm := z.members[m]; zm == nil {
			continue
		} else if len(zm.incs) == 0 {
			delete(z.members, m)
			continue
		}
		zm := z.writable(m)
		zm.tags = nil
		zm.base = []zbase{{Time: s.Time, Region: d.Region, Seq: d.Seq, Removed: true, Seen: zm.totals()}}
	}
}

// Clear removes every member at s, as Remove does.
func (z *ZSet) Clear(s Stamp) {
	z.remove(z.record(s), s, slices.Collect(maps.Keys(z.members)))
}

// winner returns the base that decides a member's score, false if none.
func (zm *zmember) winner() (zbase, bool) {
	var w zbase
	found := false
	for _, b := range zm.base {
		switch {
		case !found, w.Removed && !b.Removed:
			w, found = b, true
		case w.Removed == b.Removed && compareBases(b, w) > 0:
			w = b
		}
	}
	return w, found
}

// score computes a member's score (see ZSet).
func (zm *zmember) score() float64 {
	w, _ := zm.winner()
	s := w.Score
	for _, r := range slices.Sorted(maps.Keys(zm.incs)) {
		var absorbed zinc
		for _, b := range zm.base {
			if x, ok := b.Seen[r]; ok && x.Seq > absorbed.Seq {
				absorbed = x
			}
		}
		s += zm.incs[r].Total - absorbed.Total
	}
	return s
}

// Score returns member's score and true if it is a member.
func (z *ZSet) Score(member string) (float64, bool) {
	zm := z.members[member]
	if zm == nil || len(zm.tags) == 0 {
		return 0, false
	}
	return zm.score(), true
}

// Contains reports whether member is in the set.
func (z *ZSet) Contains(member string) bool {
	zm := z.members[member]
	return zm != nil && len(zm.tags) > 0
}

// Members returns the members and their scores, in member order.
func (z *ZSet) Members() ([]string, []float64) {
	var ms []string
	for m, zm := range z.members {
		if len(zm.tags) > 0 {
			ms = append(ms, m)
		}
	}
	slices.Sort(ms)
	scores := make([]float64, len(ms))
	for i, m := range ms {
		scores[i] = z.members[m].score()
	}
	return ms, scores
}

// Len returns the number of members.
func (z *ZSet) Len() int {
	n := 0
	for _, zm := range z.members {
		if len(zm.tags) > 0 {
			n++
		}
	}
	return n
}

// Live reports whether the set has a member.
func (z *ZSet) Live() bool { return z.Len() > 0 }

// Versions returns the base writes of member as Versions (the score as
// its value), oldest first, for a writer to time its write after them.
func (z *ZSet) Versions(member string) []Version {
	zm := z.members[member]
	if zm == nil {
		return nil
	}
	out := make([]Version, len(zm.base))
	for i, b := range zm.base {
		out[i] = b.version()
	}
	return out
}

func (b zbase) version() Version {
	v := Version{Time: b.Time, Region: b.Region, Seq: b.Seq, Deleted: b.Removed}
	if !b.Removed {
		v.Value = []byte(strconv.FormatFloat(b.Score, 'g', 17, 64))
	}
	return v
}

// Context returns the set's causal context, its members' included.
func (z *ZSet) Context() VersionVector {
	all := z.ctx
	for _, mc := range z.mctx {
		all = all.union(mc)
	}
	return all.upper()
}

func (z *ZSet) seen(m string) dotSet {
	mc := z.mctx[m]
	if len(mc) == 0 {
		return z.ctx
	}
	return z.ctx.union(mc)
}

func (z *ZSet) trim() {
	for m, mc := range z.mctx {
		if mc = mc.minus(z.ctx); len(mc) == 0 {
			delete(z.mctx, m)
		} else {
			z.mctx[m] = mc
		}
	}
}

func (zm *zmember) clone() *zmember {
	out := &zmember{tags: slices.Clone(zm.tags), incs: maps.Clone(zm.incs)}
	for _, b := range zm.base {
		b.Seen = maps.Clone(b.Seen)
		out.base = append(out.base, b)
	}
	return out
}

func (zm *zmember) empty() bool {
	return len(zm.tags) == 0 && len(zm.base) == 0 && len(zm.incs) == 0
}

func (z *ZSet) clone() Value {
	out := &ZSet{ctx: z.ctx.clone(), members: make(map[string]*zmember, len(z.members))}
	for m, zm := range z.members {
		out.members[m] = zm.clone()
	}
	for m, mc := range z.mctx {
		if out.mctx == nil {
			out.mctx = make(map[string]dotSet, len(z.mctx))
		}
		out.mctx[m] = mc.clone()
	}
	return out
}

func compareBases(a, b zbase) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// mergeBases merges the base writes of one member as mergeVersions does:
// a write survives if both sides hold it or the other has not seen it.
func mergeBases(as []zbase, aSeen dotSet, bs []zbase, bSeen dotSet) (out []zbase, conflict bool) {
	inB := make(map[Dot]int, len(bs))
	for i, b := range bs {
		inB[b.dot()] = i
	}
	kept := make([]bool, len(bs))
	newA, newB := false, false
	for _, x := range as {
		if i, ok := inB[x.dot()]; ok {
			kept[i] = true
			out = append(out, x)
		} else if !bSeen.contains(x.dot()) {
			out = append(out, x)
			newA = true
		}
	}
	for i, y := range bs {
		if !kept[i] && !aSeen.contains(y.dot()) {
			out = append(out, y)
			newB = true
		}
	}
	slices.SortFunc(out, compareBases)
	return out, newA && newB
}

// mergeIncs merges the increments of one member: an entry survives if
// both sides hold it or the other has not seen its dot (a Clear drops
// what it saw), and of a region's surviving entries the latest, which
// includes the earlier ones, is kept.
func mergeIncs(as map[string]zinc, aSeen dotSet, bs map[string]zinc, bSeen dotSet) map[string]zinc {
	var out map[string]zinc
	keep := func(r string, x zinc) {
		if cur, ok := out[r]; !ok || x.Seq > cur.Seq {
			if out == nil {
				out = map[string]zinc{}
			}
			out[r] = x
		}
	}
	for r, x := range as {
		if y, ok := bs[r]; ok && y == x || !bSeen.contains(Dot{r, x.Seq}) {
			keep(r, x)
		}
	}
	for r, y := range bs {
		if x, ok := as[r]; ok && x == y || !aSeen.contains(Dot{r, y.Seq}) {
			keep(r, y)
		}
	}
	return out
}

func (z *ZSet) merge(v Value) (Value, []Conflict, error) {
	o := v.(*ZSet)
	out := &ZSet{ctx: z.ctx.union(o.ctx), members: make(map[string]*zmember, max(len(z.members), len(o.members)))}
	names := map[string]bool{}
	for _, s := range []*ZSet{z, o} {
		for m := range s.members {
			names[m] = true
		}
		for m := range s.mctx {
			names[m] = true
		}
	}
	var cs []Conflict
	for _, m := range slices.Sorted(maps.Keys(names)) {
		a, b := z.members[m], o.members[m]
		if a == nil {
			a = &zmember{}
		}
		if b == nil {
			b = &zmember{}
		}
		sa, sb := z.seen(m), o.seen(m)
		zm := &zmember{tags: mergeDots(a.tags, sa, b.tags, sb)}
		var fresh bool
		zm.base, fresh = mergeBases(a.base, sa, b.base, sb)
		zm.incs = mergeIncs(a.incs, sa, b.incs, sb)
		if !zm.empty() {
			out.members[m] = zm
		}
		if mc := z.mctx[m].union(o.mctx[m]); len(mc) > 0 {
			if out.mctx == nil {
				out.mctx = map[string]dotSet{}
			}
			out.mctx[m] = mc
		}
		if fresh {
			var vs []Version
			for _, b := range zm.base {
				if !b.Removed {
					vs = append(vs, b.version())
				}
			}
			if len(vs) > 1 {
				w, _ := zm.winner()
				cs = append(cs, Conflict{Field: m, Versions: vs, Winner: w.version(), Rule: lwwRule})
			}
		}
	}
	out.trim()
	return out, cs, nil
}

// delta returns what the local operations that turned prev into z
// produced (see Delta): the members they wrote, each with its whole
// state and everything z has seen of it, and as the set's context only
// the dots the operations took.
func (z *ZSet) delta(prev *ZSet) *ZSet {
	d := &ZSet{ctx: z.ctx.minus(prev.ctx), members: map[string]*zmember{}}
	changed := map[string]bool{}
	for m, zm := range z.members {
		if p := prev.members[m]; p == nil || !sameMember(p, zm) {
			changed[m] = true
		}
	}
	for m := range prev.members {
		if z.members[m] == nil {
			changed[m] = true
		}
	}
	for m := range changed {
		if zm := z.members[m]; zm != nil {
			d.members[m] = zm.clone()
		}
		if mc := z.seen(m).minus(d.ctx); len(mc) > 0 {
			if d.mctx == nil {
				d.mctx = map[string]dotSet{}
			}
			d.mctx[m] = mc
		}
	}
	return d
}

func sameMember(a, b *zmember) bool {
	return slices.Equal(a.tags, b.tags) && maps.Equal(a.incs, b.incs) &&
		slices.EqualFunc(a.base, b.base, func(x, y zbase) bool {
			return compareBases(x, y) == 0 && x.Removed == y.Removed && math.Float64bits(x.Score) == math.Float64bits(y.Score) && maps.Equal(x.Seen, y.Seen)
		})
}

// Encoding of a sorted set: after the header, its members in order, each
// with its tags (region, seq), its bases (flags, time, region, seq,
// score, then the seen increments: region, seq and total), its
// increments (region, seq, total), and in formatRanges its own context. Floats are their 8
// IEEE 754 bytes, big-endian; NaN is refused.

const zbaseRemoved = 1

func (e *encoder) float(f float64) { e.b = binary.BigEndian.AppendUint64(e.b, math.Float64bits(f)) }

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	if math.IsNaN(f) {
		d.fail("NaN score")
	}
	return f
}

// Encode returns the canonical binary form of the sorted set.
func (z *ZSet) Encode() []byte {
	refs := map[string]bool{}
	for _, zm := range z.members {
		for _, t := range zm.tags {
			refs[t.Region] = true
		}
		for _, b := range zm.base {
			refs[b.Region] = true
			for r := range b.Seen {
				refs[r] = true
			}
		}
		for r := range zm.incs {
			refs[r] = true
		}
	}
	for _, mc := range z.mctx {
		for r := range mc {
			refs[r] = true
		}
	}
	ranges := len(z.mctx) > 0 || !z.ctx.isVV()
	e := newEncoder(tagZSet, z.ctx, refs, ranges)
	names := slices.Collect(maps.Keys(z.members))
	if ranges {
		for m := range z.mctx {
			if z.members[m] == nil {
				names = append(names, m)
			}
		}
	}
	slices.Sort(names)
	e.uvarint(uint64(len(names)))
	for _, m := range names {
		e.string(m)
		zm := z.members[m]
		if zm == nil {
			zm = &zmember{}
		}
		e.uvarint(uint64(len(zm.tags)))
		for _, t := range zm.tags {
			e.region(t.Region)
			e.uvarint(t.Seq)
		}
		e.uvarint(uint64(len(zm.base)))
		for _, b := range zm.base {
			var flags byte
			if b.Removed {
				flags = zbaseRemoved
			}
			e.b = append(e.b, flags)
			e.time(b.Time)
			e.region(b.Region)
			e.uvarint(b.Seq)
			e.float(b.Score)
			rs := slices.Sorted(maps.Keys(b.Seen))
			e.uvarint(uint64(len(rs)))
			for _, r := range rs {
				e.region(r)
				e.uvarint(b.Seen[r].Seq)
				e.float(b.Seen[r].Total)
			}
		}
		rs := slices.Sorted(maps.Keys(zm.incs))
		e.uvarint(uint64(len(rs)))
		for _, r := range rs {
			e.region(r)
			e.uvarint(zm.incs[r].Seq)
			e.float(zm.incs[r].Total)
		}
		if ranges {
			e.dotSet(z.mctx[m])
		}
	}
	return e.b
}

// DecodeZSet parses the output of ZSet.Encode.
func DecodeZSet(b []byte) (*ZSet, error) { return decodeAs[*ZSet](b) }

func decodeZSet(d *decoder, ctx dotSet, ranges bool) *ZSet {
	z := &ZSet{ctx: ctx}
	n := d.count()
	z.members = make(map[string]*zmember, n)
	prev := ""
	for i := range n {
		m := d.string()
		if i > 0 && m <= prev {
			d.fail("sorted set members out of order")
		}
		prev = m
		zm := &zmember{}
		k := d.count()
		for j := range k {
			t := Dot{d.region(), d.seq()}
			if d.err == nil && j > 0 && compareDots(zm.tags[j-1], t) >= 0 {
				d.fail("tags out of order")
			}
			zm.tags = append(zm.tags, t)
		}
		k = d.count()
		for j := range k {
			flags := d.byte()
			if flags&^zbaseRemoved != 0 {
				d.fail("bad base flags %#x", flags)
			}
			b := zbase{Removed: flags&zbaseRemoved != 0, Time: d.time(), Region: d.region(), Seq: d.seq(), Score: d.float()}
			if d.err == nil && b.Removed && b.Score != 0 {
				d.fail("a removal with a score")
			}
			seen := d.count()
			var prevR uint64
			for s := range seen {
				r := d.regionIndex()
				x := zinc{Seq: d.seq(), Total: d.float()}
				if d.err != nil {
					return nil
				}
				if s > 0 && r <= prevR {
					d.fail("seen totals out of order")
				}
				prevR = r
				if b.Seen == nil {
					b.Seen = map[string]zinc{}
				}
				b.Seen[d.regions[r]] = x
			}
			if d.err == nil && j > 0 && compareBases(zm.base[j-1], b) >= 0 {
				d.fail("bases out of order")
			}
			zm.base = append(zm.base, b)
		}
		k = d.count()
		var prevR uint64
		for j := range k {
			r := d.regionIndex()
			in := zinc{Seq: d.seq(), Total: d.float()}
			if d.err != nil {
				return nil
			}
			if j > 0 && r <= prevR {
				d.fail("increments out of order")
			}
			prevR = r
			if zm.incs == nil {
				zm.incs = map[string]zinc{}
			}
			zm.incs[d.regions[r]] = in
		}
		if d.err != nil {
			return nil
		}
		if !zm.empty() {
			z.members[m] = zm
		}
		if !ranges {
			if zm.empty() {
				d.fail("an empty member")
			}
			continue
		}
		mc := d.dotSet()
		if d.err != nil {
			return nil
		}
		switch {
		case len(mc) == 0 && zm.empty():
			d.fail("a member without state or context")
			return nil
		case len(mc) > 0 && !mc.minus(ctx).equal(mc):
			d.fail("member context overlaps the set's")
			return nil
		case len(mc) > 0:
			if z.mctx == nil {
				z.mctx = map[string]dotSet{}
			}
			z.mctx[m] = mc
		}
	}
	if ranges && len(z.mctx) == 0 && ctx.isVV() {
		d.fail("needless format version %d", formatRanges)
	}
	return z
}
