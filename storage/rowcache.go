package storage

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
)

// The row cache keeps the values of recently read user keys (DB.Get) in
// memory in front of Pebble, whose point read costs several times a map
// lookup (an iterator over the memtables and levels, built and closed per
// read). It holds what Pebble holds, never anything older:
//
//   - A batch records a hash of every user key it sets or deletes, and
//     the groups whose whole data span a range deletion clears (it then
//     touches every key of those groups). Before Pebble commits it, each
//     shard of the cache it touches drops those keys' entries and counts
//     one more commit in progress; after the commit (or its failure), the
//     shard counts one fewer and moves its generation on. A batch that
//     clears groups touches every shard and drops only those groups'
//     entries (the keys it sets in them afterwards, a snapshot's, need no
//     hash); a range deletion of any other shape in the data spans, or
//     one clearing too many groups, counts as touching every key.
//   - A read that misses takes the shard's generation, reads Pebble, and
//     keeps what it read only if no commit touching the shard was in
//     progress at either end and the generation did not move: then no
//     batch touching the shard committed between, and the value read is
//     still Pebble's.
//
// So while a batch that writes a key commits, nothing serves or keeps that
// key's cached value, and every later read sees the commit. Other keys of
// the shard keep being served. The cache is bounded in bytes; a full shard
// drops entries at random.
type rowCache struct {
	seed     maphash.Seed
	budget   int64 // per shard
	capacity int64 // Options.RowCacheBytes, which the shards' budgets add up to at most
	shards   [rowShards]rowShard
}

const (
	rowShards = 64
	// rowOverhead approximates an entry's memory besides its key and value
	// (map slot, struct, slice and string headers).
	rowOverhead = 96
	// touchGroupsMax: a batch clearing more groups than this drops every
	// entry.
	touchGroupsMax = 16
)

// DefaultRowCacheBytes is the row cache's size when Options.RowCacheBytes is
// 0.
const DefaultRowCacheBytes = 16 << 20

type rowShard struct {
	mu      sync.Mutex
	m       map[uint64]rowEntry
	bytes   int64
	gen     uint64
	writing int    // commits touching the shard in progress
	hits    uint64 // reads served from the shard (RowCacheStats)
	misses  uint64 // reads that went to Pebble
	_       [64]byte
}

type rowEntry struct {
	group uint64
	key   string
	val   []byte // nil when the key was absent (or its value is empty)
	found bool
}

// size is what the entry counts against its shard's budget.
func (e rowEntry) size() int64 { return int64(len(e.key) + len(e.val) + rowOverhead) }

func newRowCache(bytes int64) *rowCache {
	c := &rowCache{seed: maphash.MakeSeed(), budget: max(bytes/rowShards, 1), capacity: bytes}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]rowEntry)
	}
	return c
}

func (c *rowCache) hash(group uint64, key []byte) uint64 {
	return maphash.Bytes(c.seed, key) ^ (group * 0x9e3779b97f4a7c15)
}

// get returns a copy of the cached value of the key, if cached; otherwise
// hit is false, and a read of Pebble may be kept (put, with gen) only if
// clean: no commit touching the shard was in progress.
func (c *rowCache) get(h, group uint64, key []byte) (val []byte, found, hit bool, gen uint64, clean bool) {
	s := &c.shards[h%rowShards]
	s.mu.Lock()
	e, ok := s.m[h]
	if ok && e.group == group && e.key == string(key) {
		s.hits++
		val = bytes.Clone(e.val)
		s.mu.Unlock()
		return val, e.found, true, 0, false
	}
	s.misses++
	gen, clean = s.gen, s.writing == 0
	s.mu.Unlock()
	return nil, false, false, gen, clean
}

// put keeps what a clean read that missed got from Pebble (val is
// retained), if no commit touching the shard overlapped the read (see
// above).
func (c *rowCache) put(h, group uint64, key, val []byte, found bool, gen uint64) {
	e := rowEntry{group: group, key: string(key), val: val, found: found}
	size := e.size()
	if size > c.budget/4 {
		return
	}
	s := &c.shards[h%rowShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen || s.writing != 0 {
		return
	}
	if old, ok := s.m[h]; ok { // another key of the hash, or this one kept by another read
		s.bytes -= old.size()
		delete(s.m, h)
	}
	for k, old := range s.m { // map order: entries dropped at random
		if s.bytes+size <= c.budget {
			break
		}
		s.bytes -= old.size()
		delete(s.m, k)
	}
	s.m[h] = e
	s.bytes += size
}

// rowTouch is what a batch changes of the cache's keys.
type rowTouch struct {
	hashes []uint64
	shards uint64   // bit i: shard i holds one of hashes
	groups []uint64 // groups whose every key the batch touches
	all    bool     // the batch touches every key
}

func (t *rowTouch) add(c *rowCache, key []byte) {
	if t.all || len(key) < 9 || key[0] != prefixData {
		return
	}
	group := binary.BigEndian.Uint64(key[1:9])
	if slices.Contains(t.groups, group) {
		return
	}
	h := c.hash(group, key[9:])
	t.hashes = append(t.hashes, h)
	t.shards |= 1 << (h % rowShards)
}

// addRange records a range deletion [start, end). One that clears a
// group's data span touches the group's keys; any other that reaches
// into the data spans touches every key.
func (t *rowTouch) addRange(start, end []byte) {
	lo, hi := []byte{prefixData}, []byte{prefixData + 1}
	if t.all || bytes.Compare(start, hi) >= 0 || bytes.Compare(end, lo) <= 0 {
		return
	}
	if len(start) == 9 && len(end) == 9 && start[0] == prefixData && end[0] == prefixData {
		g := binary.BigEndian.Uint64(start[1:])
		if g != ^uint64(0) && binary.BigEndian.Uint64(end[1:]) == g+1 {
			t.clearGroup(g)
			return
		}
	}
	t.touchAll()
}

// clearGroup records that the batch touches every key of the group.
func (t *rowTouch) clearGroup(g uint64) {
	switch {
	case t.all || slices.Contains(t.groups, g):
	case len(t.groups) == touchGroupsMax:
		t.touchAll()
	default:
		t.groups = append(t.groups, g)
	}
}

func (t *rowTouch) touchAll() {
	*t = rowTouch{all: true}
}

// begin runs before the batch commits: the touched keys' entries go, and
// their shards keep nothing until end.
func (c *rowCache) begin(t *rowTouch) {
	c.each(t, func(s *rowShard, i uint64) {
		s.writing++
		if t.all {
			clear(s.m)
			s.bytes = 0
			return
		}
		if len(t.groups) > 0 {
			for h, e := range s.m {
				if slices.Contains(t.groups, e.group) {
					s.bytes -= e.size()
					delete(s.m, h)
				}
			}
		}
		for _, h := range t.hashes {
			if h%rowShards != i {
				continue
			}
			if e, ok := s.m[h]; ok {
				s.bytes -= e.size()
				delete(s.m, h)
			}
		}
	})
}

// end runs after the batch committed or failed to.
func (c *rowCache) end(t *rowTouch) {
	c.each(t, func(s *rowShard, _ uint64) {
		s.writing--
		s.gen++
	})
}

// each calls fn with every shard the batch touches, under its lock.
func (c *rowCache) each(t *rowTouch, fn func(s *rowShard, i uint64)) {
	mask := t.shards
	if t.all || len(t.groups) > 0 {
		mask = ^uint64(0)
	}
	for mask != 0 {
		i := uint64(bits.TrailingZeros64(mask))
		mask &^= 1 << i
		s := &c.shards[i]
		s.mu.Lock()
		fn(s, i)
		s.mu.Unlock()
	}
}

// RowCacheStats describes the row cache (DB.RowCacheStats).
type RowCacheStats struct {
	Hits, Misses uint64 // point reads of user keys served by it, and not
	Entries      int    // keys it holds (absent ones included)
	Bytes        int64  // their accounted size: keys, values and overhead
	Capacity     int64  // what Bytes may reach (Options.RowCacheBytes); 0: no cache
}

func (c *rowCache) stats() RowCacheStats {
	st := RowCacheStats{Capacity: c.capacity}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Entries += len(s.m)
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
	return st
}

// len returns how many entries the cache holds (tests).
func (c *rowCache) len() int { return c.stats().Entries }
