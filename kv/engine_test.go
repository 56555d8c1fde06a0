package kv

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/storage"
)

// engine runs commands as a node would: writes through the state machine
// (each at the next log index), reads on a view of the committed data.
type engine struct {
	t     testing.TB
	db    *storage.DB
	sm    *StateMachine
	index uint64
	now   int64
	woken []string
}

func newEngine(t testing.TB) *engine {
	t.Helper()
	db, err := storage.Open("/e", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &engine{t: t, db: db, now: 1_700_000_000_000}
	e.sm = &StateMachine{Group: 5, OnPush: func(g uint64, k []byte) { e.woken = append(e.woken, string(k)) }}
	return e
}

// run runs one command given as its words and returns the reply.
func (e *engine) run(words ...string) Reply {
	e.t.Helper()
	argv := args(words...)
	spec, ok := Lookup(argv[0])
	if ok && !spec.Write {
		r, err := Query(e.db, e.sm.Group, e.now, argv, false)
		if err != nil {
			e.t.Fatalf("%v: %v", words, err)
		}
		return r
	}
	return e.apply(RedisCommand(argv[1%len(argv)], e.now, argv))
}

func (e *engine) apply(c Command) Reply {
	e.t.Helper()
	e.index++
	b := e.db.NewBatch()
	v, err := e.sm.Apply(b, e.index, c.Encode())
	if err != nil {
		b.Close()
		e.t.Fatalf("fatal: %v", err)
	}
	if err := b.Commit(false); err != nil {
		e.t.Fatal(err)
	}
	res := v.(Result)
	if res.Err != nil {
		e.t.Fatalf("%s: result error %v", c.Op, res.Err)
	}
	r, err := DecodeReply(res.Value)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// do runs a command and returns its reply as text (see show).
func (e *engine) do(line string) string {
	e.t.Helper()
	return show(e.run(strings.Fields(line)...))
}

// expect runs commands and checks their replies.
func (e *engine) expect(pairs ...string) {
	e.t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := e.do(pairs[i]); got != pairs[i+1] {
			e.t.Fatalf("%s = %s, want %s", pairs[i], got, pairs[i+1])
		}
	}
}

// show writes a reply compactly: 5, "bulk", OK, (nil), (nil-array),
// [a b], {k v}, ~[set], 1.5 (a double), !ERR ... (an error).
func show(r Reply) string {
	switch r.Kind {
	case ReplyNil:
		return "(nil)"
	case ReplyNilArray:
		return "(nil-array)"
	case ReplyInt:
		return strconv.FormatInt(r.Int, 10)
	case ReplyBulk:
		return strconv.Quote(string(r.Str))
	case ReplyStatus:
		return string(r.Str)
	case ReplyError:
		return "!" + string(r.Str)
	case ReplyDouble:
		return FormatDouble(r.Float)
	}
	var parts []string
	for _, x := range r.Elems {
		parts = append(parts, show(x))
	}
	open, close := "[", "]"
	switch r.Kind {
	case ReplyMap:
		open, close = "{", "}"
	case ReplySet:
		open = "~["
	case ReplyPairs:
		open = "p["
	}
	return open + strings.Join(parts, " ") + close
}

// elements counts the group's element keys.
func (e *engine) elements() int {
	r := e.db.NewReader()
	defer r.Close()
	n := 0
	_ = r.ScanElements(e.sm.Group, func(k, v []byte) bool {
		if !bytes.Equal(k, nextIDSuffix) {
			n++
		}
		return true
	})
	return n
}

func TestEngineLists(t *testing.T) {
	e := newEngine(t)
	e.expect(
		"RPUSH l a b c", "3",
		"LPUSH l z y", "5",
		"LRANGE l 0 -1", `["y" "z" "a" "b" "c"]`,
		"LRANGE l -2 100", `["b" "c"]`,
		"LRANGE l 3 1", "[]",
		"LLEN l", "5",
		"LINDEX l 0", `"y"`, "LINDEX l -1", `"c"`, "LINDEX l 5", "(nil)",
		"LSET l 1 Z", "OK", "LSET l 9 Z", "!ERR index out of range", "LSET nope 0 x", "!ERR no such key",
		"LPOP l", `"y"`, "RPOP l 2", `["c" "b"]`, "LPOP l 0", "[]",
		"LRANGE l 0 -1", `["Z" "a"]`,
		"LPOP missing", "(nil)", "LPOP missing 2", "(nil-array)", "LPOP l -1", "!ERR value is out of range, must be positive",
		"TYPE l", "list",
		"SET s x", "OK", "LPUSH s a", "!WRONGTYPE Operation against a key holding the wrong kind of value",
		"LPUSHX nope a", "0", "RPUSHX l b", "3",
	)
	if e.elements() != 3 {
		t.Fatalf("%d elements for a list of 3", e.elements())
	}
	// LREM and LINSERT move the items of the shorter side.
	e.expect(
		"DEL l", "1",
		"RPUSH l a b a c a d", "6",
		"LREM l 2 a", "2", "LRANGE l 0 -1", `["b" "c" "a" "d"]`,
		"LREM l -1 d", "1", "LRANGE l 0 -1", `["b" "c" "a"]`,
		"LINSERT l BEFORE b x", "4", "LINSERT l AFTER a y", "5", "LINSERT l AFTER c m", "6",
		"LRANGE l 0 -1", `["x" "b" "c" "m" "a" "y"]`,
		"LINSERT l BEFORE nothere q", "-1", "LINSERT nope BEFORE a b", "0", "LINSERT l SIDEWAYS a b", "!ERR syntax error",
		"LREM l 0 b", "1", "LRANGE l 0 -1", `["x" "c" "m" "a" "y"]`,
		"LPOS l m", "2", "LPOS l zz", "(nil)", "LPOS l a COUNT 0", "[3]", "LPOS l a RANK -1", "3",
		"LPOS l a RANK 0", "!ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
		"LTRIM l 1 -2", "OK", "LRANGE l 0 -1", `["c" "m" "a"]`,
		"LTRIM l 5 9", "OK", "EXISTS l", "0",
	)
	if e.elements() != 0 {
		t.Fatalf("%d elements left after the list was emptied", e.elements())
	}
	// LMOVE, RPOPLPUSH, blocking pops when there is something to pop.
	e.expect(
		"RPUSH a 1 2 3", "3",
		"LMOVE a b LEFT RIGHT", `"1"`, "RPOPLPUSH a b", `"3"`,
		"LRANGE b 0 -1", `["3" "1"]`,
		"LMOVE a a RIGHT LEFT", `"2"`, "LMOVE empty b LEFT LEFT", "(nil)",
		"BLPOP empty b 0", `["b" "3"]`, "BRPOP empty 0.5", "(nil-array)", "BLPOP b -1", "!ERR timeout is negative",
		"BLPOP b x", "!ERR timeout is not a float or out of range",
		"BLMOVE b a LEFT LEFT 0", `"1"`, "BRPOPLPUSH empty a 1", "(nil-array)",
	)
	if !slices.Contains(e.woken, "a") || !slices.Contains(e.woken, "b") {
		t.Fatalf("pushes told the node of %v", e.woken)
	}
}

func TestEngineCollectionsAsKeys(t *testing.T) {
	e := newEngine(t)
	e.expect(
		"RPUSH l a b c", "3", "ZADD z 1 a 2 b", "2",
		"RENAME l l2", "OK", "LRANGE l2 0 -1", `["a" "b" "c"]`, "EXISTS l", "0",
		"RENAME z l2", "OK", "TYPE l2", "zset", "ZRANGE l2 0 -1", `["a" "b"]`,
		"COPY l2 z2", "1", "ZADD z2 3 c", "1", "ZCARD l2", "2", "ZCARD z2", "3",
		"COPY l2 z2", "0", "COPY l2 l2", "!ERR source and destination objects are the same",
		"RENAMENX z2 l2", "0", "RENAME nope x", "!ERR no such key",
		"SET l2 str", "OK", "TYPE l2", "string",
	)
	// The list's elements went with RENAME's overwrite, the first sorted
	// set's with SET: only the copy's are left.
	if n := e.elements(); n != 6 {
		t.Fatalf("%d elements, want the copy's 6", n)
	}
	e.expect("DEL z2", "1")
	if n := e.elements(); n != 0 {
		t.Fatalf("%d elements after deleting every collection", n)
	}
	// An expired list is gone for every command, and a write over it
	// drops its elements.
	e.expect("RPUSH old a b", "2", "PEXPIRE old 10", "1", "TTL old", "0")
	e.now += 11
	e.expect("LLEN old", "0", "TYPE old", "none", "SET old v", "OK")
	if n := e.elements(); n != 0 {
		t.Fatalf("%d elements of an expired, overwritten list", n)
	}
}

func TestEngineSortedSets(t *testing.T) {
	e := newEngine(t)
	e.expect(
		"ZADD z 1 a 2 b 3 c 3 d -inf m inf n", "6",
		"ZRANGE z 0 -1 WITHSCORES", `p["m" -inf "a" 1 "b" 2 "c" 3 "d" 3 "n" inf]`,
		"ZADD z XX CH 5 a 9 new", "1", "ZSCORE z a", "5", "ZSCORE z new", "(nil)",
		"ZADD z NX 7 a", "0", "ZADD z GT 4 a", "0", "ZADD z LT CH 4 a", "1", "ZADD z INCR 1.5 a", "5.5",
		"ZADD z NX XX 1 a", "!ERR XX and NX options at the same time are not compatible",
		"ZADD z GT LT 1 a", "!ERR GT, LT, and/or NX options at the same time are not compatible",
		"ZADD z INCR 1 a 2 b", "!ERR INCR option supports a single increment-element pair",
		"ZADD z 1 a 2", "!ERR syntax error", "ZADD z x a", "!ERR value is not a valid float",
		"ZINCRBY z -inf n", "!ERR resulting score is not a number (NaN)",
		"ZINCRBY z 0.25 b", "2.25",
		"ZRANGEBYSCORE z (2.25 3", `["c" "d"]`, "ZRANGEBYSCORE z -inf +inf LIMIT 1 2", `["b" "c"]`,
		"ZREVRANGEBYSCORE z 3 (2.25 WITHSCORES", `p["d" 3 "c" 3]`,
		"ZRANGE z 5.5 (1 BYSCORE REV LIMIT 0 2", `["a" "d"]`,
		"ZRANGE z 0 -1 LIMIT 0 1", "!ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
		"ZCOUNT z 2.25 3", "3", "ZCOUNT z x 3", "!ERR min or max is not a float",
		"ZRANK z c", "2", "ZREVRANK z c", "3", "ZRANK z nothere", "(nil)",
		"ZREVRANGE z 0 1", `["n" "a"]`,
		"ZMSCORE z a zz", "[5.5 (nil)]", "ZCARD z", "6",
		"ZPOPMIN z", `["m" -inf]`, "ZPOPMAX z 2", `p["n" inf "a" 5.5]`,
		"ZREM z b zz", "1", "ZRANGE z 0 -1", `["c" "d"]`,
		"ZREMRANGEBYSCORE z 3 3", "2", "EXISTS z", "0",
		"ZADD lex 0 a 0 b 0 c 0 d", "4",
		"ZRANGEBYLEX lex [b (d", `["b" "c"]`, "ZREVRANGEBYLEX lex + (b", `["d" "c"]`,
		"ZRANGE lex - + BYLEX LIMIT 1 1", `["b"]`, "ZLEXCOUNT lex - +", "4", "ZLEXCOUNT lex b c", "!ERR min or max not valid string range item",
		"ZREMRANGEBYLEX lex - [a", "1", "ZREMRANGEBYRANK lex 0 0", "1", "ZRANGE lex 0 -1", `["c" "d"]`,
		"ZSCAN lex 0", `["0" ["c" "0" "d" "0"]]`, "ZSCAN lex 0 MATCH c*", `["0" ["c" "0"]]`,
		"SET str x", "OK", "ZADD str 1 a", "!WRONGTYPE Operation against a key holding the wrong kind of value",
		"ZRANGE str 0 1", "!WRONGTYPE Operation against a key holding the wrong kind of value",
	)
	if n := e.elements(); n != 4 {
		t.Fatalf("%d elements for a sorted set of 2 (two each)", n)
	}
	// Blocking pops when there is something to pop; ZADD tells the node.
	e.woken = nil
	e.expect(
		"BZPOPMIN none lex 0", `["lex" "c" 0]`, "BZPOPMAX lex 0.5", `["lex" "d" 0]`,
		"EXISTS lex", "0", "BZPOPMIN lex none 0.1", "(nil-array)",
		"BZPOPMIN lex str 0", "!WRONGTYPE Operation against a key holding the wrong kind of value",
		"BZPOPMIN lex -1", "!ERR timeout is negative", "BZPOPMAX lex x", "!ERR timeout is not a float or out of range",
		"ZADD w 2 b 1 a 3 c", "3", "BZPOPMAX w 0", `["w" "c" 3]`, "ZRANGE w 0 -1", `["a" "b"]`,
	)
	if n := e.elements(); n != 4 {
		t.Fatalf("%d elements for a sorted set of 2 after its pops (two each)", n)
	}
	if !slices.Contains(e.woken, "w") {
		t.Fatalf("ZADD told the node of %v", e.woken)
	}
}

func TestEngineStringsHashesSets(t *testing.T) {
	e := newEngine(t)
	e.expect(
		"SETNX k a", "1", "SETNX k b", "0", "APPEND k bc", "3", "STRLEN k", "3", "GETRANGE k 1 -1", `"bc"`,
		"SETRANGE k 5 x", "6", "GET k", `"abc\x00\x00x"`, "SETRANGE k -1 x", "!ERR offset is out of range",
		"GETSET k new", `"abc\x00\x00x"`, "GETEX k PX 100", `"new"`, "PTTL k", "100", "GETEX k PERSIST", `"new"`, "TTL k", "-1",
		"SETEX k 0 v", "!ERR invalid expire time in 'setex' command", "PSETEX k 5000 v", "OK", "TTL k", "5",
		"INCRBYFLOAT f 10.5", `"10.5"`, "INCRBYFLOAT f 0.1", `"10.6"`, "INCRBYFLOAT f -5.6", `"5"`,
		"INCRBYFLOAT f 5e3", `"5005"`,
		"INCRBYFLOAT k 1", "!ERR value is not a valid float", "INCRBYFLOAT f inf", "!ERR increment would produce NaN or Infinity",
		"MSETNX a 1 b 2", "1", "MSETNX b 3 c 4", "0", "MGET a b c", `["1" "2" (nil)]`,
		"HSET h f 1 g x", "2", "HINCRBY h f 5", "6", "HINCRBY h g 1", "!ERR hash value is not an integer",
		"HINCRBYFLOAT h f 0.5", `"6.5"`, "HINCRBYFLOAT h g 1", "!ERR hash value is not a float",
		"HSETNX h f 9", "0", "HSETNX h n 9", "1", "HEXISTS h n", "1", "HKEYS h", `["f" "g" "n"]`, "HVALS h", `["6.5" "x" "9"]`,
		"HSTRLEN h f", "3", "HSCAN h 0 MATCH [fg]", `["0" ["f" "6.5" "g" "x"]]`,
		"SADD s1 a b c", "3", "SADD s2 b c d", "3",
		"SINTER s1 s2", `~["b" "c"]`, "SUNION s1 s2", `~["a" "b" "c" "d"]`, "SDIFF s1 s2", `~["a"]`,
		"SINTERSTORE s3 s1 s2", "2", "SMEMBERS s3", `~["b" "c"]`, "SINTERSTORE s3 s1 nope", "0", "EXISTS s3", "0",
		"SMISMEMBER s1 a z", "[1 0]", "SMOVE s1 s2 a", "1", "SMOVE s1 s2 a", "0", "SCARD s2", "4",
		"SPOP s2 10", `~["a" "b" "c" "d"]`, "EXISTS s2", "0",
		"OBJECT ENCODING a", `"int"`, "OBJECT ENCODING s1", `"hashtable"`, "OBJECT ENCODING h", `"listpack"`, "OBJECT ENCODING nope", "(nil)",
	)
	// Random members come from the set, and SPOP's draw is the same on
	// every replica: it depends on the log index, not on the replica.
	if r := e.do("SRANDMEMBER s1"); r != `"b"` && r != `"c"` {
		t.Fatalf("SRANDMEMBER: %s", r)
	}
	if r := e.do("SRANDMEMBER s1 -5"); strings.Count(r, `"`) != 10 {
		t.Fatalf("SRANDMEMBER -5: %s", r)
	}
	e2 := newEngine(t)
	for _, x := range []*engine{e, e2} {
		x.index = 100
		x.run("DEL", "p")
		x.run("SADD", "p", "1", "2", "3", "4", "5", "6", "7", "8")
	}
	if a, b := e.do("SPOP p 3"), e2.do("SPOP p 3"); a != b {
		t.Fatalf("SPOP differs between replicas: %s %s", a, b)
	}
}

func TestEngineTransactions(t *testing.T) {
	e := newEngine(t)
	txn := func(watches []Watch, cmds ...string) string {
		var cs [][][]byte
		for _, c := range cmds {
			cs = append(cs, args(strings.Fields(c)...))
		}
		return show(e.apply(TxnCommand([]byte("k"), e.now, watches, cs)))
	}
	watch := func(key string) Watch {
		r, err := Query(e.db, e.sm.Group, e.now, WatchStateCommand([]byte(key)), false)
		if err != nil {
			t.Fatal(err)
		}
		w, err := ParseWatchState([]byte(key), r)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	// Commands run in order, each seeing the previous ones; a failing one
	// answers its error and the others run.
	if got := txn(nil, "SET k 1", "INCR k", "LPUSH k x", "GET k", "RPUSH l a", "LRANGE l 0 -1"); got != `[OK 2 !WRONGTYPE Operation against a key holding the wrong kind of value "2" 1 ["a"]]` {
		t.Fatalf("transaction: %s", got)
	}
	w := watch("k")
	if !w.Exists || w.Version == 0 {
		t.Fatalf("watch state of a key: %+v", w)
	}
	if got := txn([]Watch{w}, "INCR k"); got != "[3]" {
		t.Fatalf("an unchanged watched key: %s", got)
	}
	// Any write changes the version, even one that leaves the value as it
	// was; so does an expiry.
	w = watch("k")
	e.run("SET", "k", "3")
	if got := txn([]Watch{w}, "INCR k"); got != "(nil-array)" {
		t.Fatalf("a rewritten watched key: %s", got)
	}
	if got := e.do("GET k"); got != `"3"` {
		t.Fatalf("an aborted transaction ran: %s", got)
	}
	absent := watch("nothere")
	e.run("SET", "e", "v", "PX", "5")
	we := watch("e")
	e.now += 10
	if got := txn([]Watch{absent, we}, "SET x 1"); got != "(nil-array)" {
		t.Fatalf("an expired watched key: %s", got)
	}
	if got := txn([]Watch{absent}, "SET x 1"); got != "[OK]" {
		t.Fatalf("an absent key still absent: %s", got)
	}
}

// TestListModel checks random list commands against a slice.
func TestListModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(t)
		var model []string
		val := rapid.SampledFrom([]string{"a", "b", "c"})
		idx := rapid.IntRange(-6, 6)
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			var cmd []string
			var want string
			switch rapid.IntRange(0, 8).Draw(rt, "op") {
			case 0:
				v := val.Draw(rt, "v")
				cmd, model = []string{"LPUSH", "l", v}, append([]string{v}, model...)
				want = strconv.Itoa(len(model))
			case 1:
				v := val.Draw(rt, "v")
				cmd, model = []string{"RPUSH", "l", v}, append(model, v)
				want = strconv.Itoa(len(model))
			case 2:
				cmd = []string{"LPOP", "l"}
				want = "(nil)"
				if len(model) > 0 {
					want, model = strconv.Quote(model[0]), model[1:]
				}
			case 3:
				i, v := idx.Draw(rt, "i"), val.Draw(rt, "v")
				cmd = []string{"LSET", "l", strconv.Itoa(i), v}
				j := i
				if j < 0 {
					j += len(model)
				}
				switch {
				case len(model) == 0:
					want = "!ERR no such key"
				case j < 0 || j >= len(model):
					want = "!ERR index out of range"
				default:
					model[j], want = v, "OK"
				}
			case 4:
				n, v := rapid.IntRange(-2, 2).Draw(rt, "n"), val.Draw(rt, "v")
				cmd = []string{"LREM", "l", strconv.Itoa(n), v}
				removed := 0
				drop := make([]bool, len(model))
				limit := n
				if limit < 0 {
					limit = -limit
				}
				for k := range model {
					i := k
					if n < 0 {
						i = len(model) - 1 - k
					}
					if model[i] == v && (limit == 0 || removed < limit) {
						drop[i] = true
						removed++
					}
				}
				var kept []string
				for i, m := range model {
					if !drop[i] {
						kept = append(kept, m)
					}
				}
				model, want = kept, strconv.Itoa(removed)
			case 5:
				where := rapid.SampledFrom([]string{"BEFORE", "AFTER"}).Draw(rt, "where")
				pivot, v := val.Draw(rt, "pivot"), val.Draw(rt, "v")
				cmd = []string{"LINSERT", "l", where, pivot, v + "!"}
				at := slices.Index(model, pivot)
				switch {
				case len(model) == 0:
					want = "0"
				case at < 0:
					want = "-1"
				default:
					if where == "AFTER" {
						at++
					}
					model = slices.Insert(model, at, v+"!")
					want = strconv.Itoa(len(model))
				}
			case 6:
				a, b := idx.Draw(rt, "a"), idx.Draw(rt, "b")
				cmd, want = []string{"LTRIM", "l", strconv.Itoa(a), strconv.Itoa(b)}, "OK"
				if s, t2, ok := listRange(int64(a), int64(b), int64(len(model))); ok {
					model = slices.Clone(model[s : t2+1])
				} else {
					model = nil
				}
			case 7:
				cmd = []string{"RPOP", "l", "2"}
				want = "(nil-array)"
				if len(model) > 0 {
					n := min(2, len(model))
					var got []string
					for i := range n {
						got = append(got, strconv.Quote(model[len(model)-1-i]))
					}
					want, model = "["+strings.Join(got, " ")+"]", model[:len(model)-n]
				}
			default:
				cmd = []string{"LMOVE", "l", "l", "LEFT", "RIGHT"}
				want = "(nil)"
				if len(model) > 0 {
					want = strconv.Quote(model[0])
					model = append(model[1:], model[0])
				}
			}
			if got := show(e.run(cmd...)); got != want {
				rt.Fatalf("%v = %s, want %s (model %q)", cmd, got, want, model)
			}
			var quoted []string
			for _, m := range model {
				quoted = append(quoted, strconv.Quote(m))
			}
			if got, want := e.do("LRANGE l 0 -1"), "["+strings.Join(quoted, " ")+"]"; got != want {
				rt.Fatalf("after %v: %s, want %s", cmd, got, want)
			}
			if n := e.elements(); n != len(model) {
				rt.Fatalf("after %v: %d elements for %d items", cmd, n, len(model))
			}
		}
	})
}

// TestZSetStoreModel checks random sorted set commands against a map.
func TestZSetStoreModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEngine(t)
		model := map[string]float64{}
		member := rapid.SampledFrom([]string{"a", "b", "c", "d"})
		score := rapid.SampledFrom([]float64{-1, 0, 0.5, 1, 2, math.Inf(1)})
		sorted := func() []zelem {
			var out []zelem
			for m, f := range model {
				out = append(out, zelem{[]byte(m), f})
			}
			slices.SortFunc(out, compareZ)
			return out
		}
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				m, f := member.Draw(rt, "m"), score.Draw(rt, "f")
				_, had := model[m]
				model[m] = f
				want := "1"
				if had {
					want = "0"
				}
				if got := show(e.run("ZADD", "z", FormatDouble(f), m)); got != want {
					rt.Fatalf("ZADD %v %s = %s, want %s", f, m, got, want)
				}
			case 1:
				m := member.Draw(rt, "m")
				_, had := model[m]
				delete(model, m)
				if got, want := show(e.run("ZREM", "z", m)), map[bool]string{true: "1", false: "0"}[had]; got != want {
					rt.Fatalf("ZREM %s = %s, want %s", m, got, want)
				}
			case 2:
				m := member.Draw(rt, "m")
				model[m] += 1
				if math.IsNaN(model[m]) {
					rt.Skip("NaN")
				}
				if got := show(e.run("ZINCRBY", "z", "1", m)); got != FormatDouble(model[m]) {
					rt.Fatalf("ZINCRBY 1 %s = %s, want %v", m, got, model[m])
				}
			default:
				all := sorted()
				i := rapid.IntRange(0, 4).Draw(rt, "rank")
				var want []string
				for k := i; k < len(all) && k < i+2; k++ {
					want = append(want, strconv.Quote(string(all[k].member)))
				}
				if got := e.do(fmt.Sprintf("ZRANGE z %d %d", i, i+1)); got != "["+strings.Join(want, " ")+"]" {
					rt.Fatalf("ZRANGE %d %d = %s, want %v", i, i+1, got, want)
				}
			}
			all := sorted()
			var members []string
			for _, z := range all {
				members = append(members, strconv.Quote(string(z.member)))
			}
			if got := e.do("ZRANGE z 0 -1"); got != "["+strings.Join(members, " ")+"]" {
				rt.Fatalf("members %s, want %v", got, members)
			}
			if n := e.elements(); n != 2*len(model) {
				rt.Fatalf("%d elements for %d members", n, len(model))
			}
		}
	})
}
