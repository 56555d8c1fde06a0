package kv

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// redis runs an engine write in a simulated region as the node does:
// turned into its active form, stamped now.
func (r *simRegion) redis(words ...string) string {
	r.t.Helper()
	argv := bs(words...)
	c, err := ActiveRedisCommand(RedisCommand(argv[1], r.nowMS(), argv), ActiveStamp{Region: r.name, Time: r.clock.Now()}, "", r.nowMS())
	if err != nil {
		r.t.Fatalf("%v: %v", words, err)
	}
	res := r.applyRaw(c.Encode())
	if res.Err != nil {
		r.t.Fatalf("%s: %v: %v", r.name, words, res.Err)
	}
	rep, err := DecodeReply(res.Value)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	return show(rep)
}

// query runs an engine read on the region's merged states.
func (r *simRegion) query(words ...string) string {
	r.t.Helper()
	rep, err := Query(r.db, r.sm.Group, r.nowMS(), bs(words...), true)
	if err != nil {
		r.t.Fatalf("%v", err)
	}
	return show(rep)
}

func TestActiveSortedSets(t *testing.T) {
	now := int64(simEpochMS)
	rs := newSim(t, &now, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	if got := a.redis("ZADD", "board", "10", "ann", "20", "bob"); got != "2" {
		t.Fatalf("ZADD: %s", got)
	}
	exchange(rs)
	// Concurrently: increments in every region, a score written in one,
	// a member removed in another while a third adds to it.
	a.redis("ZINCRBY", "board", "1", "ann")
	b.redis("ZINCRBY", "board", "2", "ann")
	c.redis("ZADD", "board", "INCR", "3", "ann")
	now += 5
	b.redis("ZADD", "board", "100", "bob")
	c.redis("ZREM", "board", "bob")
	a.redis("ZADD", "board", "7", "cy")
	exchange(rs)
	for _, r := range rs {
		if got := r.query("ZRANGE", "board", "0", "-1", "WITHSCORES"); got != `p["cy" 7 "ann" 16 "bob" 100]` {
			t.Fatalf("%s: %s", r.name, got)
		}
		if !bytes.Equal(r.raw("board"), a.raw("board")) {
			t.Fatalf("%s stores the sorted set differently", r.name)
		}
		if got := r.query("TYPE", "board"); got != "zset" {
			t.Fatalf("TYPE %s", got)
		}
	}
	// A transaction applies at once in its region; another region sees
	// its effects merged.
	got := a.redis("ZADD", "t", "1", "x")
	if got != "1" {
		t.Fatalf("ZADD t: %s", got)
	}
	c2, err := ActiveRedisCommand(TxnCommand([]byte("t"), now, nil, [][][]byte{bs("ZINCRBY", "t", "2", "x"), bs("ZSCORE", "t", "x"), bs("SET", "s", "v")}),
		ActiveStamp{Region: "a", Time: a.clock.Now()}, "", now)
	if err != nil {
		t.Fatal(err)
	}
	res := a.applyRaw(c2.Encode())
	rep, _ := DecodeReply(res.Value)
	if show(rep) != `[3 3 OK]` {
		t.Fatalf("transaction: %s", show(rep))
	}
	exchange(rs)
	if got := c.query("ZSCORE", "t", "x"); got != "3" {
		t.Fatalf("merged transaction: %s", got)
	}
	// Lists and other commands without a merge are refused, saying why;
	// so is WATCH.
	for _, cmd := range [][]string{{"LPUSH", "l", "x"}, {"ZPOPMIN", "board"}, {"EXPIRE", "board", "10"}} {
		argv := bs(cmd...)
		_, err := ActiveRedisCommand(RedisCommand(argv[1], now, argv), ActiveStamp{Region: "a"}, "", now)
		if !errors.Is(err, ErrNotActive) || !strings.Contains(err.Error(), strings.ToUpper(cmd[0])) {
			t.Fatalf("%v in an active keyspace: %v", cmd, err)
		}
	}
	if _, err := ActiveRedisCommand(TxnCommand([]byte("k"), now, []Watch{{Key: []byte("k")}}, [][][]byte{bs("GET", "k")}), ActiveStamp{Region: "a"}, "", now); !errors.Is(err, ErrNotActive) {
		t.Fatalf("WATCH in an active keyspace: %v", err)
	}
}
