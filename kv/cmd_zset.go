package kv

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Sorted set commands of the engine.

func init() {
	const (
		w = ActiveWrite
		r = ActiveRead
	)
	zsetOnly := "removes members by rank or range, which another region's concurrent adds could not merge with; use ZREM with the members in an active keyspace"
	register(
		&Spec{Name: "zadd", Arity: -4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: w,
			Summary: "Adds members with scores, or updates their scores: NX|XX, GT|LT, CH, INCR.", run: cmdZAdd},
		&Spec{Name: "zincrby", Arity: 4, Write: true, Flags: []string{"denyoom", "fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: w,
			Summary: "Adds an amount to a member's score.", run: cmdZIncrBy},
		&Spec{Name: "zrem", Arity: -3, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: w,
			Summary: "Removes members.", run: cmdZRem},
		&Spec{Name: "zscore", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns a member's score (one read).", run: cmdZScore},
		&Spec{Name: "zmscore", Arity: -3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns the scores of members.", run: cmdZMScore},
		&Spec{Name: "zcard", Arity: 2, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns the number of members.", run: cmdZCard},
		&Spec{Name: "zcount", Arity: 4, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Counts the members with scores in a range.", run: cmdZCount(false)},
		&Spec{Name: "zlexcount", Arity: 4, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Counts the members in a lexicographical range.", run: cmdZCount(true)},
		&Spec{Name: "zrange", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members by rank, score (BYSCORE) or name (BYLEX): [REV] [LIMIT offset count] [WITHSCORES].", run: cmdZRange(zrangeAuto, false)},
		&Spec{Name: "zrevrange", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members by rank, highest first: [WITHSCORES].", run: cmdZRange(zrangeRank, true)},
		&Spec{Name: "zrangebyscore", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members with scores in a range: [WITHSCORES] [LIMIT offset count].", run: cmdZRange(zrangeScore, false)},
		&Spec{Name: "zrevrangebyscore", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members with scores in a range, highest first.", run: cmdZRange(zrangeScore, true)},
		&Spec{Name: "zrangebylex", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members in a lexicographical range: [LIMIT offset count].", run: cmdZRange(zrangeLex, false)},
		&Spec{Name: "zrevrangebylex", Arity: -4, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns members in a lexicographical range, highest first.", run: cmdZRange(zrangeLex, true)},
		&Spec{Name: "zrank", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns a member's rank, lowest score first (counts: O(rank)).", run: cmdZRank(false)},
		&Spec{Name: "zrevrank", Arity: 3, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns a member's rank, highest score first (counts: O(rank)).", run: cmdZRank(true)},
		&Spec{Name: "zpopmin", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Removes and returns the members with the lowest scores: [count].", run: cmdZPop(false)},
		&Spec{Name: "zpopmax", Arity: -2, Write: true, Flags: []string{"fast"}, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Removes and returns the members with the highest scores: [count].", run: cmdZPop(true)},
		&Spec{Name: "bzpopmin", Arity: -3, Write: true, Flags: []string{"fast", "blocking"}, First: 1, Last: -2, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Pops the member with the lowest score of the first non-empty sorted set, waiting up to a timeout (keys of one shard; async: in the primary region).", run: cmdBZPop(false)},
		&Spec{Name: "bzpopmax", Arity: -3, Write: true, Flags: []string{"fast", "blocking"}, First: 1, Last: -2, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Pops the member with the highest score of the first non-empty sorted set, waiting up to a timeout (keys of one shard; async: in the primary region).", run: cmdBZPop(true)},
		&Spec{Name: "zremrangebyscore", Arity: 4, Write: true, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Removes the members with scores in a range.", run: cmdZRemRange(zrangeScore)},
		&Spec{Name: "zremrangebyrank", Arity: 4, Write: true, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Removes the members in a range of ranks.", run: cmdZRemRange(zrangeRank)},
		&Spec{Name: "zremrangebylex", Arity: 4, Write: true, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: zsetOnly,
			Summary: "Removes the members in a lexicographical range.", run: cmdZRemRange(zrangeLex)},
		&Spec{Name: "zscan", Arity: -3, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Iterates over members and scores: MATCH, COUNT.", run: cmdZScan},
		&Spec{Name: "zrandmember", Arity: -2, First: 1, Last: 1, Step: 1, Group: "sorted-set", Active: r,
			Summary: "Returns random members: [count [WITHSCORES]].", run: cmdZRandMember},
	)
}

var (
	errMinMaxFloat = Errorf("ERR min or max is not a float")
	errMinMaxLex   = Errorf("ERR min or max not valid string range item")
	errNaNScore    = Errorf("ERR resulting score is not a number (NaN)")
)

// ZADD flags.
const (
	zaddNX = 1 << iota
	zaddXX
	zaddGT
	zaddLT
	zaddIncr
)

func cmdZAdd(x *execCtx, args [][]byte) Reply {
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
	if len(rest) == 0 || len(rest)%2 != 0 {
		return errSyntax
	}
	if flags&zaddNX != 0 && flags&zaddXX != 0 {
		return Errorf("ERR XX and NX options at the same time are not compatible")
	}
	if flags&zaddGT != 0 && flags&zaddNX != 0 || flags&zaddLT != 0 && flags&zaddNX != 0 || flags&zaddGT != 0 && flags&zaddLT != 0 {
		return Errorf("ERR GT, LT, and/or NX options at the same time are not compatible")
	}
	if flags&zaddIncr != 0 && len(rest) > 2 {
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
	return x.zadd(args[1], flags, ch, scores, rest)
}

// zadd applies ZADD's pairs (rest alternates scores and members; scores
// holds them parsed).
func (x *execCtx) zadd(key []byte, flags int, ch bool, scores []float64, rest [][]byte) Reply {
	e := x.lookup(key)
	if _, r, ok := e.is(TypeZSet); !ok {
		return r
	}
	incr := flags&zaddIncr != 0
	z := x.zstore(key, e)
	if z.n == 0 && flags&zaddXX != 0 {
		if incr {
			return Nil()
		}
		return Int(0)
	}
	var added, updated, processed int64
	var last float64
	for j, f := range scores {
		m := rest[2*j+1]
		cur, had := z.score(m)
		switch {
		case had:
			if flags&zaddNX != 0 {
				continue
			}
			nf := f
			if incr {
				if nf = cur + f; math.IsNaN(nf) {
					return errNaNScore
				}
			}
			if flags&zaddLT != 0 && nf >= cur || flags&zaddGT != 0 && nf <= cur {
				continue
			}
			processed++
			last = nf
			if nf != cur {
				z.add(m, nf, cur, true)
				updated++
			}
		default:
			if flags&zaddXX != 0 {
				continue
			}
			z.add(m, f, 0, false)
			added++
			processed++
			last = f
		}
	}
	if added+updated > 0 {
		z.store()
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

func cmdZIncrBy(x *execCtx, args [][]byte) Reply {
	f, ok := ParseDouble(args[2])
	if !ok {
		return errNotFloat
	}
	return x.zadd(args[1], zaddIncr, false, []float64{f}, [][]byte{args[2], args[3]})
}

func cmdZRem(x *execCtx, args [][]byte) Reply {
	e := x.lookup(args[1])
	if _, r, ok := e.is(TypeZSet); !ok {
		return r
	}
	z := x.zstore(args[1], e)
	var n int64
	for _, m := range sortedStrings(args[2:]) {
		if f, ok := z.score(m); ok {
			z.rem(m, f)
			n++
		}
	}
	if n > 0 {
		z.store()
	}
	return Int(n)
}

func cmdZScore(x *execCtx, args [][]byte) Reply {
	z, r, ok := x.zsetAt(args[1])
	if !ok {
		return r
	}
	if f, ok := z.score(args[2]); ok {
		return Double(f)
	}
	return Nil()
}

func cmdZMScore(x *execCtx, args [][]byte) Reply {
	z, r, ok := x.zsetAt(args[1])
	if !ok {
		return r
	}
	out := make([]Reply, 0, len(args)-2)
	for _, m := range args[2:] {
		if f, ok := z.score(m); ok {
			out = append(out, Double(f))
		} else {
			out = append(out, Nil())
		}
	}
	return Array(out...)
}

func cmdZCard(x *execCtx, args [][]byte) Reply {
	z, r, ok := x.zsetAt(args[1])
	if !ok {
		return r
	}
	return Int(z.card())
}

// Range kinds of ZRANGE.
const (
	zrangeAuto = iota
	zrangeRank
	zrangeScore
	zrangeLex
)

// scoreRange is a range of scores, each end inclusive or not.
type scoreRange struct {
	min, max     float64
	minEx, maxEx bool
}

// parseScoreBound parses a score range end: "(1.5", "-inf", "3".
func parseScoreBound(b []byte) (float64, bool, bool) {
	ex := len(b) > 0 && b[0] == '('
	if ex {
		b = b[1:]
	}
	s := strings.TrimLeftFunc(string(b), unicode.IsSpace)
	if s == "" {
		return 0, false, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) || math.IsNaN(f) {
		return 0, false, false
	}
	return f, ex, true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func parseScoreRange(minArg, maxArg []byte) (scoreRange, bool) {
	var r scoreRange
	var ok1, ok2 bool
	r.min, r.minEx, ok1 = parseScoreBound(minArg)
	r.max, r.maxEx, ok2 = parseScoreBound(maxArg)
	return r, ok1 && ok2
}

func (r scoreRange) empty() bool {
	return r.min > r.max || (r.min == r.max && (r.minEx || r.maxEx))
}

func (r scoreRange) aboveMin(f float64) bool {
	if r.minEx {
		return f > r.min
	}
	return f >= r.min
}

func (r scoreRange) belowMax(f float64) bool {
	if r.maxEx {
		return f < r.max
	}
	return f <= r.max
}

// lexBound is an end of a lexicographical range: "-", "+", "[a", "(a".
type lexBound struct {
	neg, pos, ex bool
	v            []byte
}

func parseLexBound(b []byte) (lexBound, bool) {
	switch {
	case len(b) == 1 && b[0] == '-':
		return lexBound{neg: true}, true
	case len(b) == 1 && b[0] == '+':
		return lexBound{pos: true}, true
	case len(b) > 0 && b[0] == '[':
		return lexBound{v: b[1:]}, true
	case len(b) > 0 && b[0] == '(':
		return lexBound{v: b[1:], ex: true}, true
	}
	return lexBound{}, false
}

type lexRange struct{ min, max lexBound }

func (r lexRange) aboveMin(m []byte) bool {
	switch {
	case r.min.neg:
		return true
	case r.min.pos:
		return false
	case r.min.ex:
		return bytes.Compare(m, r.min.v) > 0
	}
	return bytes.Compare(m, r.min.v) >= 0
}

func (r lexRange) belowMax(m []byte) bool {
	switch {
	case r.max.pos:
		return true
	case r.max.neg:
		return false
	case r.max.ex:
		return bytes.Compare(m, r.max.v) < 0
	}
	return bytes.Compare(m, r.max.v) <= 0
}

func (r lexRange) empty() bool {
	switch {
	case r.min.pos || r.max.neg:
		return true
	case r.min.neg || r.max.pos:
		return false
	}
	c := bytes.Compare(r.min.v, r.max.v)
	return c > 0 || (c == 0 && (r.min.ex || r.max.ex))
}

// zrange is a parsed range of a sorted set.
type zrange struct {
	kind        int
	rev         bool
	start, stop int64 // ranks
	score       scoreRange
	lex         lexRange
	offset      int64
	limit       int64 // -1: all
}

// parseZRange parses the range arguments a and b (in the order given:
// for a reversed score or lex range, the max first).
func parseZRange(zr *zrange, a, b []byte) Reply {
	lo, hi := a, b
	if zr.rev && zr.kind != zrangeRank {
		lo, hi = b, a
	}
	switch zr.kind {
	case zrangeRank:
		var ok1, ok2 bool
		zr.start, ok1 = intArg(a)
		zr.stop, ok2 = intArg(b)
		if !ok1 || !ok2 {
			return errNotInteger
		}
	case zrangeScore:
		var ok bool
		if zr.score, ok = parseScoreRange(lo, hi); !ok {
			return errMinMaxFloat
		}
	case zrangeLex:
		var ok1, ok2 bool
		zr.lex.min, ok1 = parseLexBound(lo)
		zr.lex.max, ok2 = parseLexBound(hi)
		if !ok1 || !ok2 {
			return errMinMaxLex
		}
	}
	return Reply{}
}

// each calls fn for the range's members in order (after LIMIT's offset,
// up to its count) until fn returns false.
func (zr *zrange) each(z zview, fn func(m []byte, f float64) bool) {
	skip, left := zr.offset, zr.limit
	if skip < 0 {
		return // a negative offset selects nothing, as in Redis
	}
	emit := func(m []byte, f float64) bool {
		if skip > 0 {
			skip--
			return true
		}
		if left == 0 {
			return false
		}
		left--
		return fn(m, f)
	}
	switch zr.kind {
	case zrangeRank:
		a, b, ok := listRange(zr.start, zr.stop, z.card())
		if !ok {
			return
		}
		i := int64(0)
		z.scan(zFirst, zr.rev, func(m []byte, f float64) bool {
			if i > b {
				return false
			}
			i++
			if i-1 < a {
				return true
			}
			return fn(m, f)
		})
	case zrangeScore:
		r := zr.score
		if r.empty() {
			return
		}
		if !zr.rev {
			z.scan(zpos{score: r.min, after: r.minEx}, false, func(m []byte, f float64) bool {
				return r.belowMax(f) && emit(m, f)
			})
		} else {
			z.scan(zpos{score: r.max, after: !r.maxEx}, true, func(m []byte, f float64) bool {
				return r.aboveMin(f) && emit(m, f)
			})
		}
	case zrangeLex:
		r := zr.lex
		if r.empty() || z.card() == 0 {
			return
		}
		if !zr.rev {
			p := zFirst
			if !r.min.neg {
				s0 := zEnd(z, false)
				p = zpos{score: s0, member: r.min.v, after: r.min.ex}
			}
			z.scan(p, false, func(m []byte, f float64) bool {
				if !r.belowMax(m) {
					return false
				}
				return !r.aboveMin(m) || emit(m, f)
			})
		} else {
			p := zFirst
			if !r.max.pos {
				s0 := zEnd(z, true)
				p = zpos{score: s0, member: r.max.v, after: !r.max.ex}
			}
			z.scan(p, true, func(m []byte, f float64) bool {
				if !r.aboveMin(m) {
					return false
				}
				return !r.belowMax(m) || emit(m, f)
			})
		}
	}
}

// zEnd returns the lowest (or highest) score of a non-empty set: a
// lexicographical range assumes every member has the same score.
func zEnd(z zview, top bool) float64 {
	var s float64
	z.scan(zFirst, top, func(_ []byte, f float64) bool { s = f; return false })
	return s
}

func cmdZRange(kind int, rev bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		zr := &zrange{kind: kind, rev: rev, limit: -1}
		withScores, revGiven := false, false
		for i := 4; i < len(args); i++ {
			opt := strings.ToUpper(string(args[i]))
			switch {
			case opt == "WITHSCORES":
				withScores = true
			case opt == "LIMIT" && i+2 < len(args):
				o, ok1 := intArg(args[i+1])
				c, ok2 := intArg(args[i+2])
				if !ok1 || !ok2 {
					return errNotInteger
				}
				zr.offset, zr.limit = o, c
				i += 2
			case opt == "REV" && kind == zrangeAuto && !revGiven:
				zr.rev, revGiven = true, true
			case opt == "BYSCORE" && zr.kind == zrangeAuto:
				zr.kind = zrangeScore
			case opt == "BYLEX" && zr.kind == zrangeAuto:
				zr.kind = zrangeLex
			default:
				return errSyntax
			}
		}
		if zr.kind == zrangeAuto {
			zr.kind = zrangeRank
		}
		if zr.limit != -1 && zr.kind == zrangeRank {
			return Errorf("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
		}
		if withScores && zr.kind == zrangeLex {
			return Errorf("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
		}
		if r := parseZRange(zr, args[2], args[3]); r.IsError() {
			return r
		}
		z, r, ok := x.zsetAt(args[1])
		if !ok {
			return r
		}
		var out []Reply
		zr.each(z, func(m []byte, f float64) bool {
			out = append(out, Bulk(bytes.Clone(m)))
			if withScores {
				out = append(out, Double(f))
			}
			return true
		})
		if withScores {
			return Reply{Kind: ReplyPairs, Elems: out}
		}
		return Array(out...)
	}
}

func cmdZCount(lex bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		zr := &zrange{kind: zrangeScore, limit: -1}
		if lex {
			zr.kind = zrangeLex
		}
		if r := parseZRange(zr, args[2], args[3]); r.IsError() {
			return r
		}
		z, r, ok := x.zsetAt(args[1])
		if !ok {
			return r
		}
		var n int64
		zr.each(z, func([]byte, float64) bool { n++; return true })
		return Int(n)
	}
}

func cmdZRank(rev bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		z, r, ok := x.zsetAt(args[1])
		if !ok {
			return r
		}
		if _, ok := z.score(args[2]); !ok {
			return Nil()
		}
		var rank int64
		z.scan(zFirst, rev, func(m []byte, _ float64) bool {
			if bytes.Equal(m, args[2]) {
				return false
			}
			rank++
			return true
		})
		return Int(rank)
	}
}

func cmdZPop(max bool) func(*execCtx, [][]byte) Reply {
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
		e := x.lookup(args[1])
		if _, r, ok := e.is(TypeZSet); !ok {
			return r
		}
		z := x.zstore(args[1], e)
		var out []Reply
		type popped struct {
			m []byte
			f float64
		}
		var ps []popped
		if count > 0 {
			z.scan(zFirst, max, func(m []byte, f float64) bool {
				ps = append(ps, popped{bytes.Clone(m), f})
				return int64(len(ps)) < count
			})
		}
		for _, p := range ps {
			z.rem(p.m, p.f)
			out = append(out, Bulk(p.m), Double(p.f))
		}
		if len(ps) > 0 {
			z.store()
		}
		if hasCount {
			return Reply{Kind: ReplyPairs, Elems: out}
		}
		return Array(out...)
	}
}

// cmdBZPop pops from the first of the keys holding a sorted set, or
// answers a nil array, which the front end then waits on (see cmdBPop).
func cmdBZPop(max bool) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		if _, err := ParseTimeout(args[len(args)-1]); err != nil {
			return ErrReply(err)
		}
		for _, key := range args[1 : len(args)-1] {
			e := x.lookup(key)
			if _, r, ok := e.is(TypeZSet); !ok {
				return r
			}
			z := x.zstore(key, e)
			if z.n == 0 {
				continue
			}
			var m []byte
			var f float64
			z.scan(zFirst, max, func(member []byte, score float64) bool {
				m, f = bytes.Clone(member), score
				return false
			})
			z.rem(m, f)
			z.store()
			return Array(Bulk(key), Bulk(m), Double(f))
		}
		return NilArray()
	}
}

func cmdZRemRange(kind int) func(*execCtx, [][]byte) Reply {
	return func(x *execCtx, args [][]byte) Reply {
		zr := &zrange{kind: kind, limit: -1}
		if r := parseZRange(zr, args[2], args[3]); r.IsError() {
			return r
		}
		e := x.lookup(args[1])
		if _, r, ok := e.is(TypeZSet); !ok {
			return r
		}
		z := x.zstore(args[1], e)
		type member struct {
			m []byte
			f float64
		}
		var ms []member
		zr.each(z, func(m []byte, f float64) bool {
			ms = append(ms, member{bytes.Clone(m), f})
			return true
		})
		for _, m := range ms {
			z.rem(m.m, m.f)
		}
		if len(ms) > 0 {
			z.store()
		}
		return Int(int64(len(ms)))
	}
}

// ZSCAN's cursor: "0" starts, and a cursor the engine returns is "\x00"
// followed by the last member returned (the front end exchanges it for
// a number, as Redis cursors are). Members come in member order, COUNT
// at a time; a set of at most 128 members comes back whole.
func cmdZScan(x *execCtx, args [][]byte) Reply {
	sa, r := parseCollectionScan(args[2:])
	if r.IsError() {
		return r
	}
	z, r, ok := x.zsetAt(args[1])
	if !ok {
		return r
	}
	var after []byte
	switch {
	case len(args[2]) > 0 && args[2][0] == 0:
		after = args[2][1:]
	case sa.cursor != 0:
		return Array(BulkString("0"), Array()) // a cursor this engine did not make: nothing more
	}
	limit := int64(sa.count)
	if after == nil && z.card() <= 128 {
		// A small set comes back whole, in score order, as Redis answers
		// the sets it keeps as listpacks.
		var items []Reply
		z.scan(zFirst, false, func(m []byte, f float64) bool {
			if sa.match == nil || GlobMatch(sa.match, m) {
				items = append(items, Bulk(bytes.Clone(m)), BulkString(FormatDouble(f)))
			}
			return true
		})
		return Array(BulkString("0"), Array(items...))
	}
	var items []Reply
	var last []byte
	n := int64(0)
	more := false
	z.members(after, func(m []byte, f float64) bool {
		if n == limit {
			more = true
			return false
		}
		n++
		last = bytes.Clone(m)
		if sa.match == nil || GlobMatch(sa.match, m) {
			items = append(items, Bulk(last), BulkString(FormatDouble(f)))
		}
		return true
	})
	cursor := BulkString("0")
	if more {
		cursor = Bulk(append([]byte{0}, last...))
	}
	return Array(cursor, Array(items...))
}

func cmdZRandMember(x *execCtx, args [][]byte) Reply {
	withScores := false
	var count int64
	hasCount := len(args) >= 3
	if hasCount {
		v, ok := intArg(args[2])
		if !ok {
			return errNotInteger
		}
		count = v
		if len(args) == 4 {
			if !strings.EqualFold(string(args[3]), "WITHSCORES") {
				return errSyntax
			}
			withScores = true
		} else if len(args) > 4 {
			return errSyntax
		}
		if count < -math.MaxInt64/2 || count > math.MaxInt64/2 {
			return Errorf("ERR value is out of range")
		}
	}
	z, r, ok := x.zsetAt(args[1])
	if !ok {
		return r
	}
	n := z.card()
	if n == 0 {
		if hasCount {
			return Array()
		}
		return Nil()
	}
	var all []zelem
	z.scan(zFirst, false, func(m []byte, f float64) bool {
		all = append(all, zelem{bytes.Clone(m), f})
		return true
	})
	rng := x.random(args[1])
	if !hasCount {
		return Bulk(all[rng.IntN(len(all))].member)
	}
	picks := randomPicks(rng, len(all), count)
	var out []Reply
	for _, i := range picks {
		out = append(out, Bulk(all[i].member))
		if withScores {
			out = append(out, Double(all[i].score))
		}
	}
	if withScores {
		return Reply{Kind: ReplyPairs, Elems: out}
	}
	return Array(out...)
}
