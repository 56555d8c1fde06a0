package kv

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// collectionScan holds the options of HSCAN, SSCAN and ZSCAN.
type collectionScan struct {
	cursor uint64
	match  []byte // nil: everything
	count  int
}

// parseCollectionScan parses "cursor [MATCH pattern] [COUNT n]". A
// cursor starting with a zero byte is one the engine made (ZSCAN).
func parseCollectionScan(args [][]byte) (collectionScan, Reply) {
	sa := collectionScan{count: 10}
	if len(args[0]) == 0 || args[0][0] != 0 {
		c, err := strconv.ParseUint(string(args[0]), 10, 64)
		if err != nil {
			return sa, Errorf("ERR invalid cursor")
		}
		sa.cursor = c
	}
	for i := 1; i < len(args); i += 2 {
		if i+1 == len(args) {
			return sa, errSyntax
		}
		switch strings.ToUpper(string(args[i])) {
		case "MATCH":
			sa.match = args[i+1]
			if string(sa.match) == "*" {
				sa.match = nil
			}
		case "COUNT":
			n, ok := intArg(args[i+1])
			if !ok {
				return sa, errNotInteger
			}
			if n < 1 {
				return sa, errSyntax
			}
			sa.count = int(min(n, 1<<20))
		default:
			return sa, errSyntax
		}
	}
	return sa, Reply{}
}

// randomPicks returns indexes into n items as SRANDMEMBER, HRANDFIELD and
// ZRANDMEMBER choose them: for count > 0, min(count, n) distinct ones;
// for count < 0, -count of them, repeats allowed.
func randomPicks(rng *rand.Rand, n int, count int64) []int {
	if n == 0 || count == 0 {
		return nil
	}
	if count < 0 {
		out := make([]int, -count)
		for i := range out {
			out[i] = rng.IntN(n)
		}
		return out
	}
	if count >= int64(n) {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	perm := rng.Perm(n)
	return perm[:count]
}

// GlobMatch reports whether s matches the Redis-style glob pattern: '*'
// matches any run of bytes, '?' any one byte, "[abc]", "[a-z]" and
// "[^abc]" a byte of (not of) a class, and '\' makes the next byte
// literal. It runs in O(len(pattern) * len(s)) at worst: a mismatch after
// a '*' only moves the last '*' on.
func GlobMatch(pattern, s []byte) bool {
	p, i := 0, 0
	star, starI := -1, 0
	for i < len(s) || p < len(pattern) {
		if p < len(pattern) {
			if pattern[p] == '*' {
				star, starI = p, i
				p++
				continue
			}
			if i < len(s) {
				if w, ok := globOne(pattern[p:], s[i]); ok {
					p += w
					i++
					continue
				}
			}
		}
		if star >= 0 && starI < len(s) {
			starI++
			p, i = star+1, starI
			continue
		}
		return false
	}
	return true
}

// globOne matches one byte against the pattern element at the start of p
// (not '*') and returns the element's width.
func globOne(p []byte, c byte) (int, bool) {
	switch p[0] {
	case '?':
		return 1, true
	case '\\':
		if len(p) >= 2 {
			return 2, p[1] == c
		}
		return 1, c == '\\'
	case '[':
		i := 1
		negate := i < len(p) && p[i] == '^'
		if negate {
			i++
		}
		found := false
		for i < len(p) && p[i] != ']' {
			switch {
			case p[i] == '\\' && i+1 < len(p):
				found = found || p[i+1] == c
				i += 2
			case i+2 < len(p) && p[i+1] == '-':
				lo, hi := p[i], p[i+2]
				if lo > hi {
					lo, hi = hi, lo
				}
				found = found || (c >= lo && c <= hi)
				i += 3
			default:
				found = found || p[i] == c
				i++
			}
		}
		if i < len(p) {
			i++
		}
		return i, found != negate
	}
	return 1, p[0] == c
}
