package resp

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
)

// TestDifferential runs random sequences of commands, over every type the
// command engine supports, against a real Redis (Debian's redis-server,
// which CI installs) and against a one-region Meridian, and requires the
// same replies, in RESP2 and RESP3, but for the differences
// docs/commands.md lists:
//
//   - members of sets and fields of hashes come back in byte order
//     (Redis: the order of its hash table or listpack), so replies that
//     list them are compared sorted (in EXEC's reply too, each as the
//     command it answers);
//   - random commands (SRANDMEMBER, SPOP with a count below the size,
//     HRANDFIELD, ZRANDMEMBER, RANDOMKEY) and OBJECT are not generated.
//
// MERIDIAN_DIFF_CHECKS sets the number of sequences (default 200). A
// failing sequence is shrunk by rapid (which keeps it in testdata/rapid
// and replays it first until it passes); the counterexamples found so far
// are kept, readable, in testdata/differential-counterexamples.txt and
// replayed before the random sequences.
func TestDifferential(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (CI installs Debian's redis-server); the differential test needs it as its oracle")
	}
	redisAddr := startRedis(t, bin)
	c := testcluster.New(t, testcluster.Options{Regions: []string{"us-east"}})
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "d", Shards: 1, Replicas: 1})
	e := &env{c: c}
	srv := e.serve(t, c.Node(c.IDs()[0]), Config{DefaultKeyspace: "d"})

	checks := "200"
	if v, err := strconv.Atoi(os.Getenv("MERIDIAN_DIFF_CHECKS")); err == nil && v > 0 {
		checks = strconv.Itoa(v)
	}
	// rapid reads its number of checks from a flag only: set it for this
	// test, unless the command line did.
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		old := f.Value.String()
		_ = f.Value.Set(checks)
		t.Cleanup(func() { _ = f.Value.Set(old) })
	}
	var sequences, commands atomic.Int64
	conns := map[int][2]*rawClient{}
	for _, proto := range []int{2, 3} {
		r, m := dialRESP(t, redisAddr, proto), dialRESP(t, srv.Addr(), proto)
		conns[proto] = [2]*rawClient{r, m}
	}
	// First the sequences that once differed.
	regressions, err := os.ReadFile("testdata/differential-counterexamples.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range strings.Split(string(regressions), "\n\n") {
		var lines []string
		for _, l := range strings.Split(seq, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		for _, proto := range []int{2, 3} {
			redis, meridian := conns[proto][0], conns[proto][1]
			for _, c := range []*rawClient{redis, meridian} {
				c.do("DISCARD")
				c.do("UNWATCH")
			}
			redis.do("FLUSHDB")
			meridian.do("FLUSHDB", "CONFIRM", "d")
			var txn transaction
			for _, l := range lines {
				cmd := strings.Fields(l)
				if want, got := txn.normalize(cmd, redis.doReply(cmd...), meridian.doReply(cmd...)); got != want {
					t.Fatalf("counterexample %q, RESP%d: %s\nredis    %s\nmeridian %s", lines, proto, l, want, got)
				}
			}
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		proto := rapid.SampledFrom([]int{2, 3}).Draw(rt, "proto")
		redis, meridian := conns[proto][0], conns[proto][1]
		reset := func() {
			// A transaction or watch left by the previous sequence.
			redis.do("DISCARD")
			meridian.do("DISCARD")
			redis.do("UNWATCH")
			meridian.do("UNWATCH")
			if got := redis.do("FLUSHDB"); got != "+OK" {
				rt.Fatalf("redis FLUSHDB: %s", got)
			}
			if got := meridian.do("FLUSHDB", "CONFIRM", "d"); got != "+OK" {
				rt.Fatalf("meridian FLUSHDB: %s", got)
			}
		}
		reset()
		sequences.Add(1)
		var history []string
		var txn transaction
		inMulti := false
		for range rapid.IntRange(1, 60).Draw(rt, "length") {
			cmd := genCommand(rt)
			switch name := strings.ToUpper(cmd[0]); {
			case inMulti && (name == "DBSIZE" || name == "KEYS"):
				continue // not on keys: Meridian does not queue them (docs/commands.md)
			case !inMulti && name == "WATCH" && redis.do("EXISTS", cmd[1]) == ":0":
				// A key watched while absent, then created and deleted
				// again, is a change to Redis, not to Meridian
				// (docs/commands.md): only present keys are watched here.
				continue
			case name == "MULTI":
				inMulti = true
			case name == "EXEC" || name == "DISCARD":
				inMulti = false
			}
			commands.Add(1)
			want, got := txn.normalize(cmd, redis.doReply(cmd...), meridian.doReply(cmd...))
			history = append(history, strings.Join(cmd, " ")+" -> "+want)
			if got != want {
				rt.Fatalf("RESP%d %q:\nredis    %s\nmeridian %s\nafter:\n%s", proto, cmd, want, got, strings.Join(history, "\n"))
			}
		}
		if os.Getenv("MERIDIAN_DIFF_LOG") != "" {
			t.Logf("RESP%d sequence:\n%s", proto, strings.Join(history, "\n"))
		}
	})
	t.Logf("FIGURES: differential test: %d command sequences, %d commands, each answered the same by Redis %s and Meridian", sequences.Load(), commands.Load(), redisVersion(t, redisAddr))
}

// startRedis runs a redis-server without persistence on a free port.
func startRedis(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err := net.Dial("tcp", addr); err == nil {
			_ = conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start on %s", addr)
		}
		time.Sleep(20 * time.Millisecond) // polling a process's port: no event to wait on
	}
}

func redisVersion(t *testing.T, addr string) string {
	c := dialRESP(t, addr, 2)
	info, _ := strconv.Unquote(strings.TrimPrefix(c.do("INFO", "server"), "$"))
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// rawClient speaks RESP and renders replies as text, every detail of
// their types kept.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRESP(t testing.TB, addr string, proto int) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	if proto == 3 {
		if got := c.do("HELLO", "3"); !strings.HasPrefix(got, "%") {
			t.Fatalf("HELLO 3: %s", got)
		}
	}
	return c
}

func (c *rawClient) do(args ...string) string { return c.doReply(args...).text }

// rawReply is a reply as read renders it (text) and, for an aggregate,
// its elements.
type rawReply struct {
	text  string
	elems []rawReply
}

func (c *rawClient) doReply(args ...string) rawReply {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	out, err := c.readReply()
	if err != nil {
		c.t.Fatalf("%q: read: %v", args, err)
	}
	return out
}

// read reads one reply: simple types as their line ("+OK", ":1", "_",
// ",1.5", "-ERR ..."), bulk strings quoted ("$\"x\"", "$nil"), aggregates
// as their type and elements ("*[...]", "%{...}", "~[...]", ">[...]").
func (c *rawClient) read() (string, error) {
	r, err := c.readReply()
	return r.text, err
}

// readReply reads one reply, keeping an aggregate's elements apart.
func (c *rawClient) readReply() (rawReply, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return rawReply{}, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return rawReply{}, fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return rawReply{text: line}, nil
	case '$', '=':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return rawReply{}, err
		}
		if n < 0 {
			return rawReply{text: "$nil"}, nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(c.r, buf); err != nil {
			return rawReply{}, err
		}
		return rawReply{text: "$" + strconv.Quote(string(buf[:n]))}, nil
	case '*', '%', '~', '>':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return rawReply{}, err
		}
		if n < 0 {
			return rawReply{text: "*nil"}, nil
		}
		if line[0] == '%' {
			n *= 2
		}
		elems := make([]rawReply, n)
		parts := make([]string, n)
		for i := range elems {
			if elems[i], err = c.readReply(); err != nil {
				return rawReply{}, err
			}
			parts[i] = elems[i].text
		}
		return rawReply{text: string(line[0]) + "[" + strings.Join(parts, " ") + "]", elems: elems}, nil
	}
	return rawReply{}, fmt.Errorf("unknown reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// transaction follows the commands one connection queued since MULTI
// (as Redis answered them), so that EXEC's replies are normalized each
// as the command it answers.
type transaction struct {
	queued [][]string
}

// normalize normalizes the replies of Redis and of Meridian to cmd.
func (x *transaction) normalize(cmd []string, redis, meridian rawReply) (want, got string) {
	switch name := strings.ToUpper(cmd[0]); {
	case name == "EXEC":
		want, got = x.exec(redis), x.exec(meridian)
		x.queued = nil
		return want, got
	case name == "DISCARD":
		x.queued = nil
	case name == "MULTI" && redis.text == "+OK":
		x.queued = [][]string{}
	case redis.text == "+QUEUED":
		x.queued = append(x.queued, cmd)
	}
	return normalize(cmd, redis.text), normalize(cmd, meridian.text)
}

// exec normalizes EXEC's reply: each element as its queued command's.
func (x *transaction) exec(r rawReply) string {
	if !strings.HasPrefix(r.text, "*[") || len(r.elems) != len(x.queued) {
		return r.text
	}
	parts := make([]string, len(r.elems))
	for i, e := range r.elems {
		parts[i] = normalize(x.queued[i], e.text)
	}
	return "*[" + strings.Join(parts, " ") + "]"
}

// normalize sorts what the two servers may order differently: the
// members of sets and the fields of hashes (docs/commands.md).
func normalize(cmd []string, reply string) string {
	name := strings.ToUpper(cmd[0])
	switch name {
	case "SMEMBERS", "SINTER", "SUNION", "SDIFF", "HKEYS", "HVALS", "SPOP", "KEYS":
		return sortAggregate(reply, 1)
	case "HGETALL":
		return sortAggregate(reply, 2)
	case "SSCAN", "HSCAN":
		// [cursor [items]]: the items sorted (by pairs for HSCAN).
		if strings.HasPrefix(reply, "*[$\"0\" ") {
			inner := strings.TrimSuffix(strings.TrimPrefix(reply, "*[$\"0\" "), "]")
			group := 1
			if name == "HSCAN" {
				group = 2
			}
			return "*[$\"0\" " + sortAggregate(inner, group) + "]"
		}
	}
	return reply
}

// sortAggregate sorts the elements (taken group by group) of an
// aggregate reply whose elements are simple.
func sortAggregate(reply string, group int) string {
	if len(reply) < 3 || !strings.Contains("*~%", reply[:1]) || reply[1] != '[' {
		return reply
	}
	body := reply[2 : len(reply)-1]
	if body == "" {
		return reply
	}
	parts := splitTop(body)
	var groups []string
	for i := 0; i+group <= len(parts); i += group {
		groups = append(groups, strings.Join(parts[i:i+group], " "))
	}
	slices.Sort(groups)
	return reply[:2] + strings.Join(groups, " ") + "]"
}

// splitTop splits the elements of an aggregate's body (no nesting in the
// replies it sorts; quoted strings may hold spaces).
func splitTop(body string) []string {
	var out []string
	for len(body) > 0 {
		if strings.HasPrefix(body, "$\"") {
			// A quoted bulk string: up to its closing quote.
			s, err := strconv.QuotedPrefix(body[1:])
			if err != nil {
				return append(out, body)
			}
			out = append(out, "$"+s)
			body = strings.TrimPrefix(body[1+len(s):], " ")
			continue
		}
		i := strings.IndexByte(body, ' ')
		if i < 0 {
			return append(out, body)
		}
		out = append(out, body[:i])
		body = body[i+1:]
	}
	return out
}

// Generators of commands: a few keys of every type, small values, and
// arguments both valid and not, so that errors are compared too.

var (
	genKeys    = []string{"a", "b", "c", "d"}
	genValues  = []string{"", "x", "y", "10", "-3", "1.5", "hello world"}
	genMembers = []string{"m1", "m2", "m3", "10", "x"}
	genInts    = []string{"0", "1", "-1", "2", "5", "-7", "100", "x", "9223372036854775807"}
	genFloats  = []string{"0", "1.5", "-2.25", "10", "1e3", "0.1", "inf", "-inf", "x", "3.0"}
	genScores  = []string{"0", "1", "2", "-1", "0.5", "3", "inf", "-inf", "x"}
	genBounds  = []string{"0", "1", "(1", "2", "(2", "-inf", "+inf", "inf", "(0.5", "x"}
	genLex     = []string{"-", "+", "[m1", "(m1", "[m2", "(m3", "[x", "m1"}
	genIndexes = []string{"0", "1", "2", "-1", "-2", "3", "10", "-10", "x"}
)

func pick(t *rapid.T, label string, from []string) string {
	return rapid.SampledFrom(from).Draw(t, label)
}

func genCommand(t *rapid.T) []string {
	keyOf := func(keys ...string) func() string { return func() string { return pick(t, "key", keys) } }
	k := keyOf(genKeys...)
	v := func() string { return pick(t, "value", genValues) }
	m := func() string { return pick(t, "member", genMembers) }
	i := func() string { return pick(t, "int", genInts) }
	ix := func() string { return pick(t, "index", genIndexes) }
	opt := func(opts ...string) []string {
		if rapid.Bool().Draw(t, "with option") {
			return []string{pick(t, "option", opts)}
		}
		return nil
	}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	one := func(s ...string) []string { return s }
	family := rapid.IntRange(0, 99).Draw(t, "family")
	var gens []func() []string
	switch {
	case family < 14: // strings
		k = keyOf("a", "b", "s1")
		gens = []func() []string{
			func() []string { return cat(one("SET", k(), v()), opt("NX", "XX", "GET", "KEEPTTL")) },
			func() []string { return one("SET", k(), v(), "EX", pick(t, "ex", []string{"100", "0", "-1", "x"})) },
			func() []string { return one("GET", k()) },
			func() []string { return one("GETDEL", k()) },
			func() []string { return one("MGET", k(), k(), k()) },
			func() []string { return one("MSET", k(), v(), k(), v()) },
			func() []string { return one("MSETNX", k(), v(), k(), v()) },
			func() []string { return one(pick(t, "incr", []string{"INCR", "DECR"}), k()) },
			func() []string { return one(pick(t, "incrby", []string{"INCRBY", "DECRBY"}), k(), i()) },
			func() []string { return one("INCRBYFLOAT", k(), pick(t, "float", genFloats)) },
			func() []string { return one("APPEND", k(), v()) },
			func() []string { return one("STRLEN", k()) },
			func() []string { return one(pick(t, "getrange", []string{"GETRANGE", "SUBSTR"}), k(), ix(), ix()) },
			func() []string { return one("SETRANGE", k(), pick(t, "offset", []string{"0", "1", "3", "-1"}), v()) },
			func() []string { return one("SETNX", k(), v()) },
			func() []string { return one("GETSET", k(), v()) },
			func() []string { return one("SETEX", k(), pick(t, "secs", []string{"100", "0", "x"}), v()) },
			func() []string { return one("PSETEX", k(), pick(t, "ms", []string{"100000", "0"}), v()) },
			func() []string { return cat(one("GETEX", k()), opt("PERSIST")) },
		}
	case family < 24: // keys
		k = keyOf("a", "b", "s1", "l1", "z1", "h1", "t1")
		gens = []func() []string{
			func() []string { return one(pick(t, "del", []string{"DEL", "UNLINK", "EXISTS", "TOUCH"}), k(), k()) },
			func() []string { return one("TYPE", k()) },
			func() []string {
				return cat(one("EXPIRE", k(), pick(t, "secs", []string{"100", "200", "0"})), opt("NX", "XX", "GT", "LT"))
			},
			func() []string { return one("PERSIST", k()) },
			func() []string { return one("TTL", k()) },
			func() []string { return one(pick(t, "rename", []string{"RENAME", "RENAMENX"}), k(), k()) },
			func() []string { return cat(one("COPY", k(), k()), opt("REPLACE")) },
			func() []string { return one("DBSIZE") },
			func() []string { return one("KEYS", "*") },
		}
	case family < 38: // hashes
		k = keyOf("h1", "h2", "a")
		gens = []func() []string{
			func() []string { return one("HSET", k(), m(), v()) },
			func() []string { return one(pick(t, "hset", []string{"HSET", "HMSET"}), k(), m(), v(), m(), v()) },
			func() []string { return one("HSETNX", k(), m(), v()) },
			func() []string { return one("HGET", k(), m()) },
			func() []string { return one("HMGET", k(), m(), m()) },
			func() []string { return one("HDEL", k(), m(), m()) },
			func() []string { return one(pick(t, "hread", []string{"HGETALL", "HLEN", "HKEYS", "HVALS"}), k()) },
			func() []string { return one(pick(t, "hfield", []string{"HEXISTS", "HSTRLEN"}), k(), m()) },
			func() []string { return one("HINCRBY", k(), m(), i()) },
			func() []string { return one("HINCRBYFLOAT", k(), m(), pick(t, "float", genFloats)) },
			func() []string { return one("HSCAN", k(), "0") },
		}
	case family < 52: // sets
		k = keyOf("t1", "t2", "t3", "a")
		gens = []func() []string{
			func() []string { return one("SADD", k(), m(), m(), m()) },
			func() []string { return one(pick(t, "sadd", []string{"SADD", "SREM"}), k(), m(), m()) },
			func() []string { return one(pick(t, "sread", []string{"SMEMBERS", "SCARD"}), k()) },
			func() []string { return one("SISMEMBER", k(), m()) },
			func() []string { return one("SMISMEMBER", k(), m(), m()) },
			func() []string { return one("SMOVE", k(), k(), m()) },
			func() []string {
				return one(pick(t, "algebra", []string{"SINTER", "SUNION", "SDIFF"}), k(), k())
			},
			func() []string {
				return one(pick(t, "store", []string{"SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"}), k(), k(), k())
			},
			func() []string { return one("SPOP", k(), "100") },
			func() []string { return one("SSCAN", k(), "0") },
		}
	case family < 70: // lists
		k = keyOf("l1", "l2", "a")
		gens = []func() []string{
			func() []string { return one("RPUSH", k(), v(), v(), v()) },
			func() []string { return one("LPUSH", k(), v(), v()) },
			func() []string {
				return one(pick(t, "push", []string{"LPUSH", "RPUSH", "LPUSHX", "RPUSHX"}), k(), v(), v())
			},
			func() []string {
				return cat(one(pick(t, "pop", []string{"LPOP", "RPOP"}), k()), opt("0", "1", "2", "10", "-1"))
			},
			func() []string { return one("LRANGE", k(), ix(), ix()) },
			func() []string { return one("LLEN", k()) },
			func() []string { return one("LINDEX", k(), ix()) },
			func() []string { return one("LSET", k(), ix(), v()) },
			func() []string { return one("LREM", k(), pick(t, "count", []string{"0", "1", "-1", "2"}), v()) },
			func() []string { return one("LTRIM", k(), ix(), ix()) },
			func() []string {
				return one("LINSERT", k(), pick(t, "where", []string{"BEFORE", "AFTER", "x"}), v(), v())
			},
			func() []string {
				return cat(one("LPOS", k(), v()), opt("RANK", "COUNT", "MAXLEN"))
			},
			func() []string {
				return cat(one("LPOS", k(), v(), pick(t, "lposopt", []string{"RANK", "COUNT", "MAXLEN"}), pick(t, "lposval", []string{"1", "2", "-1", "0", "x"})))
			},
			func() []string {
				return one("LMOVE", k(), k(), pick(t, "from", []string{"LEFT", "RIGHT"}), pick(t, "to", []string{"LEFT", "RIGHT", "UP"}))
			},
			func() []string { return one("RPOPLPUSH", k(), k()) },
			func() []string { return one(pick(t, "bpop", []string{"BLPOP", "BRPOP"}), k(), k(), "0.01") },
		}
	case family < 93: // sorted sets
		k = keyOf("z1", "z2", "a")
		gens = []func() []string{
			func() []string {
				return one("ZADD", k(), pick(t, "score", genScores[:6]), m(), pick(t, "score", genScores[:6]), m())
			},
			func() []string { return one("ZADD", k(), pick(t, "score", genScores[:6]), m()) },
			func() []string {
				return cat(one("ZADD", k()), opt("NX", "XX", "GT", "LT", "CH", "INCR"), opt("CH", "XX"), one(pick(t, "score", genScores), m()))
			},
			func() []string {
				return one("ZADD", k(), pick(t, "score", genScores), m(), pick(t, "score", genScores), m())
			},
			func() []string { return one("ZINCRBY", k(), pick(t, "score", genScores), m()) },
			func() []string { return one("ZREM", k(), m(), m()) },
			func() []string { return one("ZSCORE", k(), m()) },
			func() []string { return one("ZMSCORE", k(), m(), m()) },
			func() []string { return one("ZCARD", k()) },
			func() []string { return one("ZCOUNT", k(), pick(t, "min", genBounds), pick(t, "max", genBounds)) },
			func() []string {
				return cat(one("ZRANGE", k(), ix(), ix()), opt("REV"), opt("WITHSCORES"))
			},
			func() []string {
				return cat(one("ZRANGE", k(), pick(t, "min", genBounds), pick(t, "max", genBounds), "BYSCORE"), opt("REV"), opt("WITHSCORES"))
			},
			func() []string {
				return cat(one(pick(t, "rangebyscore", []string{"ZRANGEBYSCORE", "ZREVRANGEBYSCORE"}), k(), pick(t, "min", genBounds), pick(t, "max", genBounds)), opt("WITHSCORES"),
					one("LIMIT", pick(t, "offset", []string{"0", "1", "-1"}), pick(t, "count", []string{"1", "2", "-1", "0"})))
			},
			func() []string { return cat(one("ZREVRANGE", k(), ix(), ix()), opt("WITHSCORES")) },
			func() []string { return one(pick(t, "rank", []string{"ZRANK", "ZREVRANK"}), k(), m()) },
			func() []string {
				return cat(one(pick(t, "zpop", []string{"ZPOPMIN", "ZPOPMAX"}), k()), opt("0", "1", "2", "-1"))
			},
			func() []string {
				return one("ZREMRANGEBYSCORE", k(), pick(t, "min", genBounds), pick(t, "max", genBounds))
			},
			func() []string { return one("ZREMRANGEBYRANK", k(), ix(), ix()) },
			func() []string { return one(pick(t, "bzpop", []string{"BZPOPMIN", "BZPOPMAX"}), k(), k(), "0.01") },
			func() []string { return one("ZSCAN", k(), "0") },
			func() []string { return one("ZADD", "lex", "0", m(), "0", m()) },
			func() []string {
				return one(pick(t, "bylex", []string{"ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZREMRANGEBYLEX"}), "lex", pick(t, "lexmin", genLex), pick(t, "lexmax", genLex))
			},
		}
	default: // transactions
		k = keyOf("a", "b", "l1", "z1")
		gens = []func() []string{
			func() []string { return one("MULTI") },
			func() []string { return one("EXEC") },
			func() []string { return one("DISCARD") },
			func() []string { return one("WATCH", k()) },
			func() []string { return one("UNWATCH") },
		}
	}
	return gens[rapid.IntRange(0, len(gens)-1).Draw(t, "command")]()
}
