package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/node"
)

// env is a live three-region cluster (one node per region, every node
// holding every shard of keyspace "t") with a RESP server on each node.
type env struct {
	c       *testcluster.Cluster
	servers []*Server // by member order: us-east, eu-west, ap-southeast
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := testcluster.New(t, testcluster.Options{})
	// Stop the nodes before the test's temporary directories are removed
	// (testcluster.New registers its own Close before it creates them, so
	// that one would run after the removal, under a running Pebble).
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 3})
	e := &env{c: c}
	for _, id := range c.IDs() {
		e.servers = append(e.servers, e.serve(t, c.Node(id), Config{DefaultKeyspace: "t"}))
	}
	return e
}

// serve starts a RESP server for n on a fresh port, as a node would:
// listener first, then Serve.
func (e *env) serve(t *testing.T, n *node.Node, cfg Config) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, n, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// client returns a go-redis client of a server speaking the given
// protocol (2 or 3).
func newRDB(t *testing.T, s *Server, proto int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: proto, ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// conn returns one dedicated connection (for per-connection state).
func newConn(t *testing.T, s *Server, proto int) *redis.Conn {
	t.Helper()
	cn := newRDB(t, s, proto).Conn()
	t.Cleanup(func() { _ = cn.Close() })
	return cn
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks that err is a server error starting with prefix.
func wantErr(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error %v, want one starting with %q", err, prefix)
	}
}

func check[T comparable](t *testing.T, what string, got T, err error, want T) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestRESP(t *testing.T) {
	e := newEnv(t)
	east, west, asia := e.servers[0], e.servers[1], e.servers[2]

	t.Run("Connection", func(t *testing.T) {
		ctx := ctxT(t)
		for _, proto := range []int{2, 3} {
			cn := newConn(t, west, proto)
			check(t, "PING", cn.Ping(ctx).Val(), cn.Ping(ctx).Err(), "PONG")
			check(t, "PING msg", cn.Do(ctx, "PING", "hi").Val(), nil, any("hi"))
			check(t, "ECHO", cn.Echo(ctx, "x y").Val(), nil, "x y")
			hello, err := cn.Hello(ctx, proto, "", "", "me").Result()
			if err != nil || hello["proto"] != int64(proto) || hello["server"] != "meridian" || hello["region"] != "eu-west" || hello["node"] != int64(2) {
				t.Fatalf("HELLO %d: %v %v", proto, hello, err)
			}
			check(t, "CLIENT GETNAME after HELLO SETNAME", cn.ClientGetName(ctx).Val(), nil, "me")
			check(t, "SELECT 0", cn.Select(ctx, 0).Val(), nil, "OK")
			wantErr(t, cn.Select(ctx, 1).Err(), "ERR DB index is out of range")
		}
		cn := newConn(t, west, 2)
		wantErr(t, cn.Do(ctx, "HELLO", "4").Err(), "NOPROTO")
		wantErr(t, cn.Do(ctx, "HELLO", "x").Err(), "ERR Protocol version is not an integer")
		wantErr(t, cn.Do(ctx, "HELLO", "3", "AUTH", "root", "pw").Err(), "WRONGPASS")
		if err := cn.Do(ctx, "HELLO", "3", "AUTH", "default", "any").Err(); err != nil {
			t.Fatalf("HELLO 3 AUTH default: %v", err)
		}
		wantErr(t, cn.Do(ctx, "AUTH", "pw").Err(), "ERR AUTH <password> called without any password")
		check(t, "AUTH default", cn.Do(ctx, "AUTH", "default", "pw").Val(), nil, any("OK"))
		// Replies are RESP3 on this connection now: a missing key is a null.
		if err := cn.Get(ctx, "no-such-key").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET of a missing key in RESP3: %v", err)
		}
		// CLIENT.
		id := cn.ClientID(ctx).Val()
		check(t, "CLIENT SETNAME", cn.ClientSetName(ctx, "worker-1").Val(), nil, true)
		check(t, "CLIENT GETNAME", cn.ClientGetName(ctx).Val(), nil, "worker-1")
		wantErr(t, cn.Do(ctx, "CLIENT", "SETNAME", "has space").Err(), "ERR Client names cannot contain spaces")
		check(t, "CLIENT SETINFO", cn.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "mylib").Val(), nil, any("OK"))
		info := cn.Do(ctx, "CLIENT", "INFO").String()
		if !strings.Contains(info, fmt.Sprintf("id=%d ", id)) || !strings.Contains(info, "name=worker-1") || !strings.Contains(info, "lib-name=mylib") {
			t.Fatalf("CLIENT INFO: %s", info)
		}
		if list := cn.ClientList(ctx).Val(); !strings.Contains(list, "name=worker-1") {
			t.Fatalf("CLIENT LIST: %s", list)
		}
		wantErr(t, cn.Do(ctx, "CLIENT", "SETINFO", "COLOR", "red").Err(), "ERR Unrecognized option")
		wantErr(t, cn.Do(ctx, "CLIENT", "FLY").Err(), "ERR unknown subcommand 'FLY'")
		wantErr(t, cn.Do(ctx, "CLIENT", "GETNAME", "x").Err(), "ERR wrong number of arguments for 'client|getname' command")
		// COMMAND, CONFIG, INFO.
		n, err := cn.Do(ctx, "COMMAND", "COUNT").Int64()
		check(t, "COMMAND COUNT", n, err, int64(len(commandTable)))
		docs, err := cn.Do(ctx, "COMMAND", "DOCS", "get", "nosuch").Result()
		if m, ok := docs.(map[any]any); err != nil || !ok || len(m) != 1 {
			t.Fatalf("COMMAND DOCS get nosuch: %#v %v", docs, err)
		}
		infos, err := cn.Command(ctx).Result()
		if err != nil || infos["set"] == nil || infos["set"].Arity != -3 || infos["mget"].LastKeyPos != -1 {
			t.Fatalf("COMMAND: %v %v", infos["set"], err)
		}
		cfg, err := cn.ConfigGet(ctx, "save").Result()
		if err != nil || len(cfg) != 1 || cfg["save"] != "" {
			t.Fatalf("CONFIG GET save: %v %v", cfg, err)
		}
		wantErr(t, cn.ConfigSet(ctx, "maxmemory", "1").Err(), "ERR CONFIG SET is not supported")
		all := cn.Info(ctx).Val()
		for _, want := range []string{"# Server", "redis_version:", "# Replication", "meridian_region:eu-west", "meridian_node:2",
			"shard_t_0:", "shard_t_2:", "role=", "# Keyspace", "keyspace_t:strategy=sync", "connection_keyspace:t"} {
			if !strings.Contains(all, want) {
				t.Fatalf("INFO lacks %q:\n%s", want, all)
			}
		}
		repl := cn.Info(ctx, "replication").Val()
		if strings.Contains(repl, "# Server") || !strings.Contains(repl, "# Replication") {
			t.Fatalf("INFO replication:\n%s", repl)
		}
		// Every shard has exactly one leader among the three nodes, as
		// their INFO reports it.
		leaders := 0
		for _, s := range e.servers {
			leaders += strings.Count(newRDB(t, s, 2).Info(ctx, "replication").Val(), "role=leader")
		}
		if leaders != 3 {
			t.Fatalf("INFO shows %d shard leaders across the nodes, want 3", leaders)
		}
	})

	t.Run("Strings", func(t *testing.T) {
		ctx := ctxT(t)
		rdb := newRDB(t, east, 3)
		check(t, "SET", rdb.Set(ctx, "s:a", "1", 0).Val(), nil, "OK")
		check(t, "GET", rdb.Get(ctx, "s:a").Val(), nil, "1")
		check(t, "SET NX on an existing key", rdb.SetNX(ctx, "s:a", "2", 0).Val(), nil, false)
		check(t, "SET XX on a missing key", rdb.SetXX(ctx, "s:none", "2", 0).Val(), nil, false)
		check(t, "SET XX", rdb.SetXX(ctx, "s:a", "3", 0).Val(), nil, true)
		check(t, "SET GET", rdb.SetArgs(ctx, "s:a", "4", redis.SetArgs{Get: true}).Val(), nil, "3")
		if err := rdb.SetArgs(ctx, "s:new", "x", redis.SetArgs{Get: true}).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("SET GET of a new key: %v", err)
		}
		check(t, "GETDEL", rdb.GetDel(ctx, "s:a").Val(), nil, "4")
		if err := rdb.GetDel(ctx, "s:a").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GETDEL of a deleted key: %v", err)
		}
		if err := rdb.Get(ctx, "s:a").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("GET after GETDEL: %v", err)
		}
		check(t, "INCR", rdb.Incr(ctx, "s:n").Val(), nil, int64(1))
		check(t, "INCRBY", rdb.IncrBy(ctx, "s:n", 41).Val(), nil, int64(42))
		check(t, "DECR", rdb.Decr(ctx, "s:n").Val(), nil, int64(41))
		check(t, "DECRBY", rdb.DecrBy(ctx, "s:n", 50).Val(), nil, int64(-9))
		check(t, "GET counter", rdb.Get(ctx, "s:n").Val(), nil, "-9")
		rdb.Set(ctx, "s:text", "abc", 0)
		wantErr(t, rdb.Incr(ctx, "s:text").Err(), "ERR value is not an integer or out of range")
		wantErr(t, rdb.Do(ctx, "INCRBY", "s:n", "1.5").Err(), "ERR value is not an integer or out of range")
		rdb.Set(ctx, "s:max", fmt.Sprint(int64(math.MaxInt64)), 0)
		wantErr(t, rdb.Incr(ctx, "s:max").Err(), "ERR increment or decrement would overflow")
		wantErr(t, rdb.Do(ctx, "DECRBY", "s:n", "-9223372036854775808").Err(), "ERR decrement would overflow")
		wantErr(t, rdb.Do(ctx, "SET", "s:a", "v", "NX", "XX").Err(), "ERR syntax error")
		wantErr(t, rdb.Do(ctx, "SET", "s:a", "v", "EX").Err(), "ERR syntax error")
		wantErr(t, rdb.Do(ctx, "SET", "s:a", "v", "EX", "0").Err(), "ERR invalid expire time in 'set' command")
		wantErr(t, rdb.Do(ctx, "SET", "s:a", "v", "EX", "soon").Err(), "ERR value is not an integer or out of range")
		// MSET/MGET over keys of every shard; MGET is nil for non-strings.
		var kvs []any
		var keys []string
		for i := range 12 {
			k := fmt.Sprintf("m:%d", i)
			keys = append(keys, k)
			kvs = append(kvs, k, fmt.Sprintf("v%d", i))
		}
		check(t, "MSET", rdb.MSet(ctx, kvs...).Val(), nil, "OK")
		rdb.SAdd(ctx, "m:set", "x")
		vals, err := rdb.MGet(ctx, append(keys, "m:missing", "m:set")...).Result()
		if err != nil || len(vals) != 14 || vals[0] != "v0" || vals[11] != "v11" || vals[12] != nil || vals[13] != nil {
			t.Fatalf("MGET: %v %v", vals, err)
		}
		wantErr(t, rdb.Do(ctx, "MSET", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")
		check(t, "EXISTS", rdb.Exists(ctx, "m:0", "m:0", "m:missing", "m:set").Val(), nil, int64(3))
		check(t, "DEL", rdb.Del(ctx, "m:0", "m:1", "m:1", "m:missing", "m:set").Val(), nil, int64(3))
		check(t, "EXISTS after DEL", rdb.Exists(ctx, "m:0", "m:1", "m:2").Val(), nil, int64(1))
		check(t, "UNLINK", rdb.Unlink(ctx, "m:2").Val(), nil, int64(1))
	})

	t.Run("Expiry", func(t *testing.T) {
		ctx := ctxT(t)
		rdb := newRDB(t, east, 2)
		other := newRDB(t, asia, 2)
		// A short PX expiry is honoured on every node: await it.
		check(t, "SET PX", rdb.Set(ctx, "e:short", "v", 300*time.Millisecond).Val(), nil, "OK")
		if ttl := rdb.PTTL(ctx, "e:short").Val(); ttl <= 0 || ttl > 300*time.Millisecond {
			t.Fatalf("PTTL right after SET PX 300 = %v", ttl)
		}
		testutil.Eventually(t, 20*time.Second, "the key to expire", func() bool { return errors.Is(rdb.Get(ctx, "e:short").Err(), redis.Nil) })
		testutil.Eventually(t, 20*time.Second, "the key to expire in another region", func() bool { return errors.Is(other.Get(ctx, "e:short").Err(), redis.Nil) })
		check(t, "TTL of an expired key", rdb.TTL(ctx, "e:short").Val(), nil, time.Duration(-2))
		check(t, "EXISTS of an expired key", rdb.Exists(ctx, "e:short").Val(), nil, int64(0))
		// Writes see it as absent too.
		check(t, "SET NX over an expired key", rdb.SetNX(ctx, "e:short", "again", 0).Val(), nil, true)

		rdb.Set(ctx, "e:k", "v", 0)
		check(t, "TTL without expiry", rdb.TTL(ctx, "e:k").Val(), nil, time.Duration(-1))
		check(t, "TTL of a missing key", rdb.TTL(ctx, "e:missing").Val(), nil, time.Duration(-2))
		check(t, "EXPIRE", rdb.Expire(ctx, "e:k", 100*time.Second).Val(), nil, true)
		if ttl := rdb.TTL(ctx, "e:k").Val(); ttl < 99*time.Second || ttl > 100*time.Second {
			t.Fatalf("TTL after EXPIRE 100 = %v", ttl)
		}
		check(t, "EXPIRE NX with an expiry", rdb.ExpireNX(ctx, "e:k", 5*time.Second).Val(), nil, false)
		check(t, "EXPIRE GT shorter", rdb.ExpireGT(ctx, "e:k", 5*time.Second).Val(), nil, false)
		check(t, "PEXPIRE", rdb.PExpire(ctx, "e:k", 50*time.Second).Val(), nil, true)
		if ttl := rdb.PTTL(ctx, "e:k").Val(); ttl < 49*time.Second || ttl > 50*time.Second {
			t.Fatalf("PTTL after PEXPIRE 50000 = %v", ttl)
		}
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		check(t, "EXPIREAT", rdb.ExpireAt(ctx, "e:k", at).Val(), nil, true)
		check(t, "EXPIRETIME", rdb.ExpireTime(ctx, "e:k").Val(), nil, time.Duration(at.Unix())*time.Second)
		check(t, "PERSIST", rdb.Persist(ctx, "e:k").Val(), nil, true)
		check(t, "PERSIST again", rdb.Persist(ctx, "e:k").Val(), nil, false)
		check(t, "TTL after PERSIST", rdb.TTL(ctx, "e:k").Val(), nil, time.Duration(-1))
		check(t, "EXPIRE of a missing key", rdb.Expire(ctx, "e:missing", time.Second).Val(), nil, false)
		// SET KEEPTTL keeps it; a plain SET clears it.
		rdb.Expire(ctx, "e:k", 100*time.Second)
		rdb.SetArgs(ctx, "e:k", "w", redis.SetArgs{KeepTTL: true})
		if ttl := rdb.TTL(ctx, "e:k").Val(); ttl <= 0 {
			t.Fatalf("SET KEEPTTL dropped the expiry: %v", ttl)
		}
		rdb.Set(ctx, "e:k", "w", 0)
		check(t, "TTL after a plain SET", rdb.TTL(ctx, "e:k").Val(), nil, time.Duration(-1))
		// An expiry in the past deletes.
		check(t, "PEXPIREAT in the past", rdb.PExpireAt(ctx, "e:k", time.UnixMilli(1)).Val(), nil, true)
		check(t, "EXISTS after PEXPIREAT in the past", rdb.Exists(ctx, "e:k").Val(), nil, int64(0))
		wantErr(t, rdb.Do(ctx, "EXPIRE", "e:k", "10", "NX", "XX").Err(), "ERR NX and XX, GT or LT options")
		wantErr(t, rdb.Do(ctx, "EXPIRE", "e:k", "ten").Err(), "ERR value is not an integer or out of range")
	})

	t.Run("SetsHashesTypes", func(t *testing.T) {
		ctx := ctxT(t)
		for _, proto := range []int{2, 3} {
			rdb := newRDB(t, west, proto)
			p := fmt.Sprintf("c%d:", proto)
			check(t, "SADD", rdb.SAdd(ctx, p+"set", "b", "a", "b").Val(), nil, int64(2))
			check(t, "SADD again", rdb.SAdd(ctx, p+"set", "a", "c").Val(), nil, int64(1))
			members, err := rdb.SMembers(ctx, p+"set").Result()
			if slices.Sort(members); err != nil || strings.Join(members, ",") != "a,b,c" {
				t.Fatalf("SMEMBERS: %v %v", members, err)
			}
			check(t, "SISMEMBER", rdb.SIsMember(ctx, p+"set", "b").Val(), nil, true)
			check(t, "SISMEMBER absent", rdb.SIsMember(ctx, p+"set", "z").Val(), nil, false)
			check(t, "SCARD", rdb.SCard(ctx, p+"set").Val(), nil, int64(3))
			check(t, "SREM", rdb.SRem(ctx, p+"set", "a", "z").Val(), nil, int64(1))
			check(t, "SREM the rest", rdb.SRem(ctx, p+"set", "b", "c").Val(), nil, int64(2))
			check(t, "EXISTS of an emptied set", rdb.Exists(ctx, p+"set").Val(), nil, int64(0))
			check(t, "SMEMBERS of a missing set", len(rdb.SMembers(ctx, p+"set").Val()), nil, 0)

			check(t, "HSET", rdb.HSet(ctx, p+"hash", "f1", "1", "f2", "2").Val(), nil, int64(2))
			check(t, "HSET update", rdb.HSet(ctx, p+"hash", "f1", "one", "f3", "3").Val(), nil, int64(1))
			check(t, "HMSET", rdb.HMSet(ctx, p+"hash", "f4", "4").Val(), nil, true)
			check(t, "HGET", rdb.HGet(ctx, p+"hash", "f1").Val(), nil, "one")
			if err := rdb.HGet(ctx, p+"hash", "nope").Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("HGET of a missing field: %v", err)
			}
			vals, err := rdb.HMGet(ctx, p+"hash", "f2", "nope", "f3").Result()
			if err != nil || len(vals) != 3 || vals[0] != "2" || vals[1] != nil || vals[2] != "3" {
				t.Fatalf("HMGET: %v %v", vals, err)
			}
			all, err := rdb.HGetAll(ctx, p+"hash").Result()
			if err != nil || len(all) != 4 || all["f1"] != "one" || all["f4"] != "4" {
				t.Fatalf("HGETALL: %v %v", all, err)
			}
			check(t, "HLEN", rdb.HLen(ctx, p+"hash").Val(), nil, int64(4))
			check(t, "HDEL", rdb.HDel(ctx, p+"hash", "f1", "nope").Val(), nil, int64(1))
			check(t, "HDEL the rest", rdb.HDel(ctx, p+"hash", "f2", "f3", "f4").Val(), nil, int64(3))
			check(t, "EXISTS of an emptied hash", rdb.Exists(ctx, p+"hash").Val(), nil, int64(0))
			wantErr(t, rdb.Do(ctx, "HSET", p+"hash", "f1").Err(), "ERR wrong number of arguments for 'hset' command")

			// TYPE and WRONGTYPE across types.
			rdb.Set(ctx, p+"str", "v", 0)
			rdb.SAdd(ctx, p+"set", "m")
			rdb.HSet(ctx, p+"hash", "f", "v")
			for k, typ := range map[string]string{"str": "string", "set": "set", "hash": "hash", "none": "none"} {
				check(t, "TYPE "+k, rdb.Type(ctx, p+k).Val(), nil, typ)
			}
			const wrong = "WRONGTYPE Operation against a key holding the wrong kind of value"
			wantErr(t, rdb.Get(ctx, p+"set").Err(), wrong)
			wantErr(t, rdb.Incr(ctx, p+"hash").Err(), wrong)
			wantErr(t, rdb.GetDel(ctx, p+"set").Err(), wrong)
			wantErr(t, rdb.SAdd(ctx, p+"str", "x").Err(), wrong)
			wantErr(t, rdb.SMembers(ctx, p+"hash").Err(), wrong)
			wantErr(t, rdb.SIsMember(ctx, p+"str", "x").Err(), wrong)
			wantErr(t, rdb.HSet(ctx, p+"set", "f", "v").Err(), wrong)
			wantErr(t, rdb.HGetAll(ctx, p+"str").Err(), wrong)
			wantErr(t, rdb.HLen(ctx, p+"set").Err(), wrong)
			wantErr(t, rdb.SetArgs(ctx, p+"hash", "v", redis.SetArgs{Get: true}).Err(), wrong)
			// A plain SET replaces any type.
			check(t, "SET over a hash", rdb.Set(ctx, p+"hash", "now a string", 0).Val(), nil, "OK")
			check(t, "TYPE after SET", rdb.Type(ctx, p+"hash").Val(), nil, "string")
		}
		// The WRONGTYPE of a write proposed through another node's leader
		// arrives as text and is still Redis's error.
		for _, s := range e.servers {
			wantErr(t, newRDB(t, s, 2).Incr(ctx, "c2:set").Err(), "WRONGTYPE")
			wantErr(t, newRDB(t, s, 2).Incr(ctx, "c2:str").Err(), "ERR value is not an integer or out of range")
		}
	})

	t.Run("AcrossRegions", func(t *testing.T) {
		ctx := ctxT(t)
		writer := newConn(t, east, 2)
		reader := newConn(t, asia, 2)
		check(t, "SET in us-east", writer.Set(ctx, "x:greeting", "hello", 0).Val(), nil, "OK")
		last, err := writer.Do(ctx, "MERIDIAN.LAST").Result()
		if m, ok := last.(map[any]any); err == nil && ok {
			t.Fatalf("MERIDIAN.LAST in RESP2 should be a flat array, got a map %v", m)
		}
		lastMap := func(cn *redis.Conn) map[string]any {
			t.Helper()
			v, err := cn.Do(ctx, "MERIDIAN.LAST").Slice()
			if err != nil || len(v) != 14 {
				t.Fatalf("MERIDIAN.LAST: %v %v", v, err)
			}
			m := map[string]any{}
			for i := 0; i < len(v); i += 2 {
				m[v[i].(string)] = v[i+1]
			}
			return m
		}
		if m := lastMap(writer); m["region"] != "us-east" || m["consistency"] != "strong" || m["index"] == "0" {
			t.Fatalf("MERIDIAN.LAST after a write: %v", m)
		}
		// A strong read in ap-southeast sees the write at once.
		check(t, "strong GET in ap-southeast", reader.Get(ctx, "x:greeting").Val(), nil, "hello")
		if m := lastMap(reader); m["region"] != "ap-southeast" || m["node"] != int64(3) || m["consistency"] != "strong" || m["index"] == "0" || m["forwarded"] != int64(0) {
			t.Fatalf("MERIDIAN.LAST after a strong read: %v", m)
		}
		// Eventual reads are served by the local replica; it catches up.
		check(t, "MERIDIAN.CONSISTENCY eventual", reader.Do(ctx, "MERIDIAN.CONSISTENCY", "eventual").Val(), nil, any("OK"))
		check(t, "MERIDIAN.CONSISTENCY", reader.Do(ctx, "MERIDIAN.CONSISTENCY").Val(), nil, any("eventual"))
		writer.Set(ctx, "x:later", "v2", 0)
		testutil.Eventually(t, 20*time.Second, "the eventual read to see the write", func() bool { return reader.Get(ctx, "x:later").Val() == "v2" })
		if m := lastMap(reader); m["consistency"] != "eventual" || m["index"] == "0" || m["session"] == "" {
			t.Fatalf("MERIDIAN.LAST after an eventual read: %v", m)
		}
		// MERIDIAN.WITH overrides the level for one command only.
		check(t, "MERIDIAN.WITH strong GET", reader.Do(ctx, "MERIDIAN.WITH", "strong", "GET", "x:greeting").Val(), nil, any("hello"))
		if m := lastMap(reader); m["consistency"] != "strong" {
			t.Fatalf("MERIDIAN.LAST after MERIDIAN.WITH strong: %v", m)
		}
		check(t, "level after MERIDIAN.WITH", reader.Do(ctx, "MERIDIAN.CONSISTENCY").Val(), nil, any("eventual"))
		wantErr(t, reader.Do(ctx, "MERIDIAN.WITH", "bounded", "GET", "x").Err(), "UNKNOWN_CONSISTENCY")
		wantErr(t, reader.Do(ctx, "MERIDIAN.WITH", "strong", "MERIDIAN.WITH", "eventual", "GET", "x").Err(), "ERR MERIDIAN.WITH cannot run inside")
		wantErr(t, reader.Do(ctx, "MERIDIAN.WITH", "strong", "NOPE").Err(), "ERR unknown command 'NOPE'")
		wantErr(t, reader.Do(ctx, "MERIDIAN.WITH", "strong", "GET").Err(), "ERR wrong number of arguments for 'get' command")
		wantErr(t, reader.Do(ctx, "MERIDIAN.CONSISTENCY", "sometimes").Err(), "UNKNOWN_CONSISTENCY")
		// Keyspaces.
		check(t, "MERIDIAN.KEYSPACE", reader.Do(ctx, "MERIDIAN.KEYSPACE").Val(), nil, any("t"))
		wantErr(t, reader.Do(ctx, "MERIDIAN.KEYSPACE", "nope").Err(), `UNKNOWN_KEYSPACE metadata: unknown keyspace: "nope"`)
		noKS := newRDB(t, e.serve(t, e.c.Node(1), Config{DefaultKeyspace: "absent"}), 2)
		wantErr(t, noKS.Get(ctx, "k").Err(), "UNKNOWN_KEYSPACE")
		wantErr(t, noKS.Set(ctx, "k", "v", 0).Err(), "UNKNOWN_KEYSPACE")
		wantErr(t, noKS.Do(ctx, "SCAN", "0").Err(), "UNKNOWN_KEYSPACE")
	})

	t.Run("Scan", func(t *testing.T) {
		ctx := ctxT(t)
		e.c.CreateKeyspace(metadata.KeyspaceSpec{Name: "scan", Shards: 4})
		w := newConn(t, east, 2)
		w.Do(ctx, "MERIDIAN.KEYSPACE", "scan")
		want := map[string]bool{}
		var pairs []any
		for i := range 250 {
			k := fmt.Sprintf("user:%03d", i)
			want[k] = true
			pairs = append(pairs, k, "v")
		}
		check(t, "MSET", w.MSet(ctx, pairs...).Val(), nil, "OK")
		w.SAdd(ctx, "group:a", "x")
		w.HSet(ctx, "profile:a", "f", "v")
		w.Set(ctx, "gone", "v", time.Millisecond)
		testutil.Eventually(t, 20*time.Second, "gone to expire", func() bool { return w.Exists(ctx, "gone").Val() == 0 })

		for _, level := range []string{"strong", "eventual"} {
			r := newConn(t, west, 2)
			r.Do(ctx, "MERIDIAN.KEYSPACE", "scan")
			r.Do(ctx, "MERIDIAN.CONSISTENCY", level)
			if level == "eventual" {
				testutil.Eventually(t, 20*time.Second, "west to have every key", func() bool { return r.DBSize(ctx).Val() == 252 })
			}
			seen := map[string]int{}
			var cursor uint64
			pages := 0
			for {
				keys, next, err := r.Scan(ctx, cursor, "user:*", 17).Result()
				if err != nil {
					t.Fatalf("SCAN %d: %v", cursor, err)
				}
				for _, k := range keys {
					seen[k]++
				}
				pages++
				if cursor = next; cursor == 0 {
					break
				}
				if pages > 1000 {
					t.Fatal("SCAN does not end")
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("%s SCAN returned %d distinct keys, want %d", level, len(seen), len(want))
			}
			for k, n := range seen {
				if !want[k] || n != 1 {
					t.Fatalf("%s SCAN returned %q %d times", level, k, n)
				}
			}
			if pages < 250/17 {
				t.Fatalf("SCAN COUNT 17 over 252 keys took only %d pages", pages)
			}
			check(t, "DBSIZE", r.DBSize(ctx).Val(), nil, int64(252))
		}
		// go-redis's iterator, no MATCH: every key once, the expired one not.
		r := newConn(t, asia, 3)
		r.Do(ctx, "MERIDIAN.KEYSPACE", "scan")
		var all []string
		it := r.Scan(ctx, 0, "", 0).Iterator()
		for it.Next(ctx) {
			all = append(all, it.Val())
		}
		if err := it.Err(); err != nil || len(all) != 252 || slices.Contains(all, "gone") {
			t.Fatalf("SCAN iterator: %d keys, %v", len(all), err)
		}
		keys, _, err := r.ScanType(ctx, 0, "", 1000, "hash").Result()
		check(t, "SCAN TYPE hash", strings.Join(keys, ","), err, "profile:a")
		ks, err := r.Keys(ctx, "user:00?").Result()
		if slices.Sort(ks); err != nil || strings.Join(ks, ",") != "user:000,user:001,user:002,user:003,user:004,user:005,user:006,user:007,user:008,user:009" {
			t.Fatalf("KEYS user:00?: %v %v", ks, err)
		}
		check(t, "KEYS *", len(r.Keys(ctx, "*").Val()), nil, 252)
		check(t, "KEYS [gp]*", len(r.Keys(ctx, "[gp]*").Val()), nil, 2)
		wantErr(t, r.Do(ctx, "SCAN", "12345").Err(), "ERR invalid cursor")
		wantErr(t, r.Do(ctx, "SCAN", "abc").Err(), "ERR invalid cursor")
		wantErr(t, r.Do(ctx, "SCAN", "0", "COUNT", "0").Err(), "ERR syntax error")
		// A cursor is bound to its keyspace.
		_, next, _ := r.Scan(ctx, 0, "", 5).Result()
		r.Do(ctx, "MERIDIAN.KEYSPACE", "t")
		wantErr(t, r.Scan(ctx, next, "", 5).Err(), "ERR invalid cursor")
	})

	t.Run("Pipeline", func(t *testing.T) {
		ctx := ctxT(t)
		rdb := newRDB(t, west, 2)
		cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 100 {
				p.Set(ctx, fmt.Sprintf("p:%d", i), i, 0)
			}
			for i := range 100 {
				p.Get(ctx, fmt.Sprintf("p:%d", i))
			}
			p.Do(ctx, "NOPE")
			p.Ping(ctx)
			return nil
		})
		if !strings.HasPrefix(fmt.Sprint(err), "ERR unknown command") || len(cmds) != 202 {
			t.Fatalf("pipeline: %d replies, %v", len(cmds), err)
		}
		for i := range 100 {
			if v := cmds[100+i].(*redis.StringCmd).Val(); v != fmt.Sprint(i) {
				t.Fatalf("pipelined GET p:%d = %q", i, v)
			}
		}
		check(t, "PING after a pipeline", cmds[201].(*redis.StatusCmd).Val(), nil, "PONG")
	})

	t.Run("Errors", func(t *testing.T) {
		ctx := ctxT(t)
		rdb := newRDB(t, asia, 2)
		wantErr(t, rdb.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
		wantErr(t, rdb.Do(ctx, "GET", "a", "b").Err(), "ERR wrong number of arguments for 'get' command")
		wantErr(t, rdb.Do(ctx, "sadd", "k").Err(), "ERR wrong number of arguments for 'sadd' command")
		wantErr(t, rdb.Do(ctx, "FOO", "bar").Err(), "ERR unknown command 'FOO', with args beginning with: 'bar'")
		wantErr(t, rdb.Do(ctx, "SET", "k", "v", "SOMETIMES").Err(), "ERR syntax error")
		wantErr(t, rdb.Do(ctx, "GET", "").Err(), "EMPTY_KEY")
		wantErr(t, rdb.Get(ctx, strings.Repeat("k", 16<<10+1)).Err(), "KEY_TOO_LARGE")
		wantErr(t, rdb.Set(ctx, "big", strings.Repeat("v", 4<<20+1), 0).Err(), "VALUE_TOO_LARGE")
		wantErr(t, rdb.Do(ctx, "COMMAND", "FLY").Err(), "ERR unknown subcommand")
		check(t, "still healthy", rdb.Ping(ctx).Val(), nil, "PONG")
	})

	t.Run("Limits", func(t *testing.T) {
		ctx := ctxT(t)
		s := e.serve(t, e.c.Node(2), Config{DefaultKeyspace: "t", MaxBulkBytes: 1024, MaxArgs: 8, MaxInlineBytes: 256})
		cn := newConn(t, s, 2)
		wantErr(t, cn.Set(ctx, "k", strings.Repeat("x", 2000), 0).Err(), "ERR argument of 2000 bytes exceeds the limit of 1024 bytes")
		check(t, "the same connection after an oversized argument", cn.Set(ctx, "k", "ok", 0).Val(), nil, "OK")
		wantErr(t, cn.Del(ctx, "a", "b", "c", "d", "e", "f", "g", "h").Err(), "ERR too many arguments: 9 (limit 8)")
		check(t, "the same connection after too many arguments", cn.Get(ctx, "k").Val(), nil, "ok")

		raw := dialRaw(t, s)
		raw.send("*1\r\n$2000\r\n" + strings.Repeat("y", 2000) + "\r\nPING\r\n")
		raw.expect("-ERR argument of 2000 bytes exceeds the limit of 1024 bytes")
		raw.expect("+PONG")
		raw.send("FOO bar\r\n")
		raw.expect("-ERR unknown command 'FOO', with args beginning with: 'bar' ")
		raw.send("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n")
		raw.expect("+PONG")
		raw.expect("+PONG")
		// Garbage framing: one protocol error, then the connection closes.
		for _, garbage := range []string{
			"*abc\r\n", "*1\r\n$9223372036854775807\r\n", "*1\r\n+PING\r\n", "\"open quote\r\n",
			strings.Repeat("z", 300) + "\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nkXX",
		} {
			g := dialRaw(t, s)
			g.send(garbage)
			g.expect("-ERR Protocol error")
			g.expectClosed()
		}
		// A huge declared argument that never arrives costs nothing and
		// blocks only its own connection.
		h := dialRaw(t, s)
		h.send("*1\r\n$1000000000\r\nabc")
		check(t, "another connection meanwhile", cn.Ping(ctx).Val(), nil, "PONG")
		// Random bytes: the node and the server stay healthy.
		junk := dialRaw(t, s)
		junk.send(string([]byte{0, 1, 2, '*', '9', 0xff, '\r', '\n', '$', '\n', 0x80}))
		_ = junk.c.Close()
		check(t, "a new connection after garbage", newConn(t, s, 2).Ping(ctx).Val(), nil, "PONG")
		check(t, "the node after garbage", newRDB(t, west, 2).Get(ctx, "k").Val(), nil, "ok")
	})

	t.Run("Metrics", func(t *testing.T) {
		ctx := ctxT(t)
		reg := metrics.ForNode(e.c.Node(1))
		cn := newConn(t, e.serve(t, e.c.Node(1), Config{DefaultKeyspace: "t", Metrics: reg}), 2)
		cn.Set(ctx, "metrics:k", "v", 0)
		cn.Get(ctx, "metrics:k")
		cn.Get(ctx, "metrics:k")
		cn.Do(ctx, "MERIDIAN.WITH", "eventual", "GET", "metrics:k")
		_ = cn.Incr(ctx, "metrics:k").Err()
		_ = cn.Do(ctx, "NO-SUCH-COMMAND").Err()
		_ = cn.Do(ctx, "SET", "metrics:k").Err()
		// The connection keeps the series of its last command and outcome:
		// the same command with another outcome, and back, counts apart.
		cn.Set(ctx, "metrics:k", "w", 0)
		cn.Get(ctx, "metrics:k")
		got := requestCounts(t, reg)
		want := map[string]float64{"set/ok": 2, "get/ok": 4, "incr/not_integer": 1, "unknown/bad_request": 1, "set/bad_request": 1}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("meridian_requests_total{resp} %s = %v, want %v (all: %v)", k, got[k], v, got)
			}
		}
		if _, ok := got["meridian.with/ok"]; ok {
			t.Fatalf("MERIDIAN.WITH was counted besides the command it ran: %v", got)
		}
	})

	t.Run("MaxClients", func(t *testing.T) {
		s := e.serve(t, e.c.Node(1), Config{DefaultKeyspace: "t", MaxClients: 1})
		first := dialRaw(t, s)
		first.send("PING\r\n")
		first.expect("+PONG")
		second := dialRaw(t, s)
		second.expect("-ERR max number of clients reached")
		second.expectClosed()
		_ = first.c.Close()
		testutil.Eventually(t, 20*time.Second, "the first connection to be gone", func() bool { return len(s.clientsSnapshot()) == 0 })
		third := dialRaw(t, s)
		third.send("PING\r\n")
		third.expect("+PONG")
	})

	t.Run("IdleTimeout", func(t *testing.T) {
		// A connection that sends nothing is closed, never before the
		// timeout; one that keeps sending, or is subscribed, is not.
		const idle = 300 * time.Millisecond
		s := e.serve(t, e.c.Node(1), Config{DefaultKeyspace: "t", IdleTimeout: idle})
		quiet, busy, sub := dialRaw(t, s), dialRaw(t, s), dialRaw(t, s)
		sub.send("SUBSCRIBE idle:ch\r\n")
		for _, l := range []string{"*3", "$9", "subscribe", "$7", "idle:ch", ":1"} {
			sub.expect(l)
		}
		quiet.send("PING\r\n")
		quiet.expect("+PONG")
		last := time.Now()
		closed := make(chan time.Duration, 1)
		go func() {
			_ = quiet.c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := quiet.br.ReadByte(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				closed <- time.Since(last)
			}
			close(closed)
		}()
		// The busy one sends a command every idle/3 for 4 idle periods.
		for range 12 {
			time.Sleep(idle / 3) // the time between commands is what is tested
			busy.send("PING\r\n")
			busy.expect("+PONG")
		}
		switch d, ok := <-closed; {
		case !ok:
			t.Fatal("an idle connection was still open after 20 s")
		case d < idle:
			t.Fatalf("an idle connection was closed after %v, before the timeout %v", d, idle)
		}
		// The subscriber, silent all along, still gets messages.
		if n := newRDB(t, east, 2).Publish(ctxT(t), "idle:ch", "hi").Val(); n != 1 {
			t.Fatalf("PUBLISH reached %d subscribers, want 1", n)
		}
		for _, l := range []string{"*3", "$7", "message", "$7", "idle:ch", "$2", "hi"} {
			sub.expect(l)
		}
	})

	t.Run("ClientThatDoesNotRead", func(t *testing.T) {
		ctx := ctxT(t)
		s := e.serve(t, e.c.Node(1), Config{DefaultKeyspace: "t", WriteTimeout: 300 * time.Millisecond, OutputBufferBytes: 4096})
		check(t, "SET a 1 MiB value", newRDB(t, east, 2).Set(ctx, "slow:big", strings.Repeat("b", 1<<20), 0).Val(), nil, "OK")
		raw := dialRaw(t, s)
		_ = raw.c.(*net.TCPConn).SetReadBuffer(4096)
		// 400 MiB of replies are asked for and never read.
		raw.send(strings.Repeat("*2\r\n$3\r\nGET\r\n$8\r\nslow:big\r\n", 400))
		testutil.Eventually(t, 20*time.Second, "the server to drop the connection that does not read", func() bool { return !s.hasClient(raw.c.LocalAddr().String()) })
		check(t, "the server after dropping it", newRDB(t, s, 2).Ping(ctx).Val(), nil, "PONG")
	})

	t.Run("QuitAndClose", func(t *testing.T) {
		ctx := ctxT(t)
		s := e.serve(t, e.c.Node(3), Config{DefaultKeyspace: "t"})
		raw := dialRaw(t, s)
		raw.send("QUIT\r\n")
		raw.expect("+OK")
		raw.expectClosed()
		other := dialRaw(t, s)
		other.send("PING\r\n")
		other.expect("+PONG")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		other.expectClosed()
		if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
			t.Fatal("a closed server still accepts connections")
		}
		check(t, "the node after a server closed", newRDB(t, asia, 2).Ping(ctx).Val(), nil, "PONG")
	})
}

// hasClient reports whether a connection from addr is open.
// requestCounts returns meridian_requests_total of the RESP front end by
// "command/code".
func requestCounts(t *testing.T, reg *metrics.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "meridian_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["frontend"] == "resp" {
				got[l["command"]+"/"+l["code"]] += m.GetCounter().GetValue()
			}
		}
	}
	return got
}

func (s *Server) hasClient(addr string) bool {
	return slices.ContainsFunc(s.clientsSnapshot(), func(c *client) bool { return c.addr == addr })
}

// rawConn speaks bytes to a server, for what a client library would not send.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// expect reads one reply line and checks it.
func (r *rawConn) expect(line string) {
	r.t.Helper()
	if err := r.tryExpect(line); err != nil {
		r.t.Fatal(err)
	}
}

// tryExpect is expect for another goroutine than the test's: it returns
// what is wrong.
func (r *rawConn) tryExpect(line string) error {
	_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := r.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(got, line) {
		return fmt.Errorf("read %q, %v; want a line starting with %q", got, err, line)
	}
	return nil
}

// expectClosed checks that the server closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if b, err := r.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		r.t.Fatalf("the connection is still open (read %q, %v)", b, err)
	}
}
