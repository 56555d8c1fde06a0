package resp

import (
	"container/list"
	"math/rand/v2"
	"sync"
	"time"
)

// Redis clients treat a SCAN cursor as an unsigned 64-bit number (go-redis
// parses it as one, redis-cli --scan too), while the node's cursor is a
// string (shard and last key, see node.Scan). The server keeps the node
// cursors of iterations in progress in a bounded table and hands out
// random numbers for them.
//
// Consequences, documented for users: a cursor is valid on the server
// that issued it, for cursorTable.ttl after it was issued, and while the
// table has not evicted it (it keeps the most recent ones, bounded in
// number and bytes); an unknown cursor is answered with "ERR invalid
// cursor", and the iteration must start again from 0. Reusing a cursor
// (a retry) is allowed.

// maxCursorBytes bounds the bytes of node cursors the table holds (a node
// cursor holds a key, up to the node's key limit).
const maxCursorBytes = 16 << 20

type cursorEntry struct {
	id       uint64
	keyspace string
	cursor   string
	issued   time.Time
}

type cursorTable struct {
	mu      sync.Mutex
	max     int
	ttl     time.Duration
	bytes   int
	byID    map[uint64]*list.Element
	byAge   *list.List // of *cursorEntry, oldest first
	nowFunc func() time.Time
}

func newCursorTable(max int, ttl time.Duration) *cursorTable {
	return &cursorTable{max: max, ttl: ttl, byID: map[uint64]*list.Element{}, byAge: list.New(), nowFunc: time.Now}
}

// put records a node cursor and returns its number (never 0).
func (t *cursorTable) put(keyspace, cursor string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := rand.Uint64()
	for id == 0 || t.byID[id] != nil {
		id = rand.Uint64()
	}
	e := &cursorEntry{id: id, keyspace: keyspace, cursor: cursor, issued: t.nowFunc()}
	t.byID[id] = t.byAge.PushBack(e)
	t.bytes += len(cursor)
	for t.byAge.Len() > t.max || t.bytes > maxCursorBytes {
		t.remove(t.byAge.Front())
	}
	return id
}

// get returns the node cursor of a number issued for the keyspace.
func (t *cursorTable) get(keyspace string, id uint64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.nowFunc()
	for f := t.byAge.Front(); f != nil && now.Sub(f.Value.(*cursorEntry).issued) > t.ttl; f = t.byAge.Front() {
		t.remove(f)
	}
	el := t.byID[id]
	if el == nil {
		return "", false
	}
	e := el.Value.(*cursorEntry)
	if e.keyspace != keyspace {
		return "", false
	}
	return e.cursor, true
}

func (t *cursorTable) remove(el *list.Element) {
	e := t.byAge.Remove(el).(*cursorEntry)
	delete(t.byID, e.id)
	t.bytes -= len(e.cursor)
}
