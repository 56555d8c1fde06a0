package resp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/pki"
)

// TestEveryCommandHasAPermission: every command of the table has an
// entry in commandPermissions, every subcommand entry belongs to a
// command, and the entries agree with the commands' flags (a write is
// never classed as a read, nor the reverse).
func TestEveryCommandHasAPermission(t *testing.T) {
	for name, cmd := range commandTable {
		p, ok := commandPermissions[name]
		if !ok || p.Class == auth.Unset {
			t.Errorf("command %q has no entry in commandPermissions", name)
			continue
		}
		switch stronger, ok := strongerPermissions[name]; {
		case ok && p != stronger:
			t.Errorf("command %q needs %s, want %s", name, p, stronger)
		case ok:
		case slices.Contains(cmd.flags, "write") && p != auth.WriteKeyspace:
			t.Errorf("command %q is flagged write but needs %s", name, p)
		case slices.Contains(cmd.flags, "readonly") && p != auth.ReadKeyspace:
			t.Errorf("command %q is flagged readonly but needs %s", name, p)
		case p == auth.WriteKeyspace && !slices.Contains(cmd.flags, "write"), p == auth.ReadKeyspace && !slices.Contains(cmd.flags, "readonly"):
			t.Errorf("command %q needs %s but is not flagged so", name, p)
		}
	}
	for name := range commandPermissions {
		if commandTable[name] == nil {
			t.Errorf("commandPermissions names %q, which is no command", name)
		}
	}
	for sub := range subcommandPermissions {
		name, _, _ := strings.Cut(sub, "|")
		if commandTable[name] == nil {
			t.Errorf("subcommandPermissions names %q, of no command", sub)
		}
	}
	for name := range commandTable {
		if sampleCommands[name] == nil {
			t.Errorf("command %q has no sample in sampleCommands (TestPermissionsOverEveryCommand runs every command)", name)
		}
	}
}

// strongerPermissions are the commands that need more than their flags
// say, on purpose: FLUSHDB writes (Redis flags it so), but deletes every
// key of the keyspace in every region, which is its admins' to do.
var strongerPermissions = map[string]auth.Permission{"flushdb": auth.AdminKeyspace}

// sampleCommands holds, for every command, invocations the permission
// test runs (subcommands with permissions of their own included).
var sampleCommands = map[string][][]string{
	"auth": {{"AUTH", "nobody", "wrong"}}, "hello": {{"HELLO", "3"}}, "quit": {{"QUIT"}},
	"ping": {{"PING"}}, "echo": {{"ECHO", "x"}}, "select": {{"SELECT", "0"}},
	"client":  {{"CLIENT", "ID"}, {"CLIENT", "LIST"}},
	"command": {{"COMMAND", "COUNT"}}, "info": {{"INFO", "server"}}, "config": {{"CONFIG", "GET", "maxclients"}},
	"acl": {{"ACL", "WHOAMI"}, {"ACL", "CAT"}, {"ACL", "GENPASS"}, {"ACL", "HELP"}, {"ACL", "USERS"}, {"ACL", "LIST"},
		{"ACL", "GETUSER", "reader"}, {"ACL", "SETUSER", "scratch", "on"}, {"ACL", "DELUSER", "scratch"}},
	"dbsize": {{"DBSIZE"}}, "get": {{"GET", "k"}}, "mget": {{"MGET", "k", "k2"}}, "exists": {{"EXISTS", "k"}},
	"type": {{"TYPE", "k"}}, "ttl": {{"TTL", "k"}}, "pttl": {{"PTTL", "k"}}, "expiretime": {{"EXPIRETIME", "k"}},
	"pexpiretime": {{"PEXPIRETIME", "k"}}, "scan": {{"SCAN", "0"}}, "keys": {{"KEYS", "*"}},
	"smembers": {{"SMEMBERS", "s"}}, "sismember": {{"SISMEMBER", "s", "m"}}, "scard": {{"SCARD", "s"}},
	"hget": {{"HGET", "h", "f"}}, "hmget": {{"HMGET", "h", "f"}}, "hgetall": {{"HGETALL", "h"}}, "hlen": {{"HLEN", "h"}},
	"set": {{"SET", "k", "v"}}, "getdel": {{"GETDEL", "k2"}}, "mset": {{"MSET", "k2", "v"}}, "incr": {{"INCR", "n"}},
	"decr": {{"DECR", "n"}}, "incrby": {{"INCRBY", "n", "2"}}, "decrby": {{"DECRBY", "n", "2"}}, "del": {{"DEL", "k3"}},
	"unlink": {{"UNLINK", "k3"}}, "expire": {{"EXPIRE", "k", "1000"}}, "pexpire": {{"PEXPIRE", "k", "1000000"}},
	"expireat": {{"EXPIREAT", "k", "99999999999"}}, "pexpireat": {{"PEXPIREAT", "k", "99999999999000"}},
	"persist": {{"PERSIST", "k"}}, "sadd": {{"SADD", "s", "m"}}, "srem": {{"SREM", "s", "x"}},
	"hset": {{"HSET", "h", "f", "v"}}, "hmset": {{"HMSET", "h", "f", "v"}}, "hdel": {{"HDEL", "h", "x"}},
	"meridian.keyspace": {{"MERIDIAN.KEYSPACE"}}, "meridian.consistency": {{"MERIDIAN.CONSISTENCY"}},
	"meridian.session": {{"MERIDIAN.SESSION"}}, "meridian.last": {{"MERIDIAN.LAST"}},
	"meridian.with": {{"MERIDIAN.WITH", "strong", "GET", "k"}, {"MERIDIAN.WITH", "strong", "SET", "k", "v"}},
	// Keys and the keyspace.
	"touch": {{"TOUCH", "k"}}, "randomkey": {{"RANDOMKEY"}}, "flushdb": {{"FLUSHDB", "CONFIRM", "t"}},
	"copy": {{"COPY", "{c}a", "{c}b"}}, "rename": {{"RENAME", "{c}a", "{c}b"}}, "renamenx": {{"RENAMENX", "{c}a", "{c}b"}},
	"object": {{"OBJECT", "ENCODING", "k"}},
	// Strings.
	"append": {{"APPEND", "k", "x"}}, "getex": {{"GETEX", "k"}}, "getrange": {{"GETRANGE", "k", "0", "1"}},
	"getset": {{"GETSET", "k", "v"}}, "incrbyfloat": {{"INCRBYFLOAT", "f", "1.5"}}, "msetnx": {{"MSETNX", "{c}a", "1"}},
	"psetex": {{"PSETEX", "k", "100000", "v"}}, "setex": {{"SETEX", "k", "100", "v"}}, "setnx": {{"SETNX", "k", "v"}},
	"setrange": {{"SETRANGE", "k", "0", "v"}}, "strlen": {{"STRLEN", "k"}}, "substr": {{"SUBSTR", "k", "0", "1"}},
	// Hashes.
	"hexists": {{"HEXISTS", "h", "f"}}, "hincrby": {{"HINCRBY", "h", "n", "1"}}, "hincrbyfloat": {{"HINCRBYFLOAT", "h", "x", "1.5"}},
	"hkeys": {{"HKEYS", "h"}}, "hvals": {{"HVALS", "h"}}, "hrandfield": {{"HRANDFIELD", "h"}}, "hscan": {{"HSCAN", "h", "0"}},
	"hsetnx": {{"HSETNX", "h", "g", "v"}}, "hstrlen": {{"HSTRLEN", "h", "f"}},
	// Sets.
	"sdiff": {{"SDIFF", "{c}s", "{c}t"}}, "sdiffstore": {{"SDIFFSTORE", "{c}d", "{c}s"}}, "sinter": {{"SINTER", "{c}s", "{c}t"}},
	"sinterstore": {{"SINTERSTORE", "{c}d", "{c}s"}}, "sunion": {{"SUNION", "{c}s", "{c}t"}}, "sunionstore": {{"SUNIONSTORE", "{c}d", "{c}s"}},
	"smismember": {{"SMISMEMBER", "s", "m"}}, "smove": {{"SMOVE", "{c}s", "{c}t", "m"}}, "spop": {{"SPOP", "s2"}},
	"srandmember": {{"SRANDMEMBER", "s"}}, "sscan": {{"SSCAN", "s", "0"}},
	// Lists.
	"lpush": {{"LPUSH", "l", "a"}}, "rpush": {{"RPUSH", "l", "b"}}, "lpushx": {{"LPUSHX", "l", "c"}}, "rpushx": {{"RPUSHX", "l", "d"}},
	"lpop": {{"LPOP", "l2"}}, "rpop": {{"RPOP", "l2"}}, "lrange": {{"LRANGE", "l", "0", "-1"}}, "llen": {{"LLEN", "l"}},
	"lindex": {{"LINDEX", "l", "0"}}, "lset": {{"LSET", "l", "0", "x"}}, "lrem": {{"LREM", "l", "0", "zz"}},
	"ltrim": {{"LTRIM", "l", "0", "-1"}}, "linsert": {{"LINSERT", "l", "BEFORE", "x", "y"}}, "lpos": {{"LPOS", "l", "x"}},
	"lmove": {{"LMOVE", "{c}l", "{c}m", "LEFT", "RIGHT"}}, "rpoplpush": {{"RPOPLPUSH", "{c}l", "{c}m"}},
	"blpop": {{"BLPOP", "l3", "0.01"}}, "brpop": {{"BRPOP", "l3", "0.01"}},
	"blmove": {{"BLMOVE", "{c}l3", "{c}m", "LEFT", "RIGHT", "0.01"}}, "brpoplpush": {{"BRPOPLPUSH", "{c}l3", "{c}m", "0.01"}},
	// Sorted sets.
	"zadd": {{"ZADD", "z", "1", "a"}}, "zincrby": {{"ZINCRBY", "z", "1", "b"}}, "zrem": {{"ZREM", "z", "zz"}},
	"zscore": {{"ZSCORE", "z", "a"}}, "zmscore": {{"ZMSCORE", "z", "a"}}, "zcard": {{"ZCARD", "z"}},
	"zcount": {{"ZCOUNT", "z", "-inf", "+inf"}}, "zlexcount": {{"ZLEXCOUNT", "z", "-", "+"}},
	"zrange": {{"ZRANGE", "z", "0", "-1"}}, "zrevrange": {{"ZREVRANGE", "z", "0", "-1"}},
	"zrangebyscore": {{"ZRANGEBYSCORE", "z", "-inf", "+inf"}}, "zrevrangebyscore": {{"ZREVRANGEBYSCORE", "z", "+inf", "-inf"}},
	"zrangebylex": {{"ZRANGEBYLEX", "z", "-", "+"}}, "zrevrangebylex": {{"ZREVRANGEBYLEX", "z", "+", "-"}},
	"zrank": {{"ZRANK", "z", "a"}}, "zrevrank": {{"ZREVRANK", "z", "a"}}, "zpopmin": {{"ZPOPMIN", "z2"}}, "zpopmax": {{"ZPOPMAX", "z2"}},
	"bzpopmin": {{"BZPOPMIN", "z3", "0.01"}}, "bzpopmax": {{"BZPOPMAX", "z3", "0.01"}},
	"zremrangebyscore": {{"ZREMRANGEBYSCORE", "z2", "0", "1"}}, "zremrangebyrank": {{"ZREMRANGEBYRANK", "z2", "0", "0"}},
	"zremrangebylex": {{"ZREMRANGEBYLEX", "z2", "-", "+"}}, "zscan": {{"ZSCAN", "z", "0"}}, "zrandmember": {{"ZRANDMEMBER", "z"}},
	// Transactions: a queued command is checked when queued (below, in
	// TestTransactionsAndPermissions).
	"multi": {{"MULTI"}}, "exec": {{"EXEC"}}, "discard": {{"DISCARD"}}, "watch": {{"WATCH", "k"}}, "unwatch": {{"UNWATCH"}},
	// Pub/sub.
	"subscribe": {{"SUBSCRIBE", "ch"}}, "psubscribe": {{"PSUBSCRIBE", "c*"}}, "unsubscribe": {{"UNSUBSCRIBE"}},
	"punsubscribe": {{"PUNSUBSCRIBE"}}, "publish": {{"PUBLISH", "ch", "x"}}, "pubsub": {{"PUBSUB", "CHANNELS"}},
}

// secureEnv is a secure three-node cluster (mutual TLS, authentication
// required) with a TLS RESP server on every node, and users:
//
//	admin    on >admin-pw ~* +@all
//	reader   on >reader-pw ~t +@read
//	writer   on >writer-pw ~t +@read +@write
//	other    on >other-pw ~o +@all    (another keyspace only)
//	ksadmin  on >ksadmin-pw ~t +@admin (administers t, not the cluster)
type secureEnv struct {
	c       *testcluster.Cluster
	servers []*Server
	tls     *tls.Config
	logs    *syncBuffer
}

var testUsers = map[string][]string{
	"admin":   {"on", ">admin-pw", "~*", "+@all"},
	"reader":  {"on", ">reader-pw", "~t", "+@read"},
	"writer":  {"on", ">writer-pw", "~t", "+@read", "+@write"},
	"other":   {"on", ">other-pw", "~o", "+@all"},
	"ksadmin": {"on", ">ksadmin-pw", "~t", "+@admin"},
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSecureEnv(t *testing.T, cfg Config) *secureEnv {
	t.Helper()
	logs := &syncBuffer{}
	c := testcluster.New(t, testcluster.Options{Secure: true, Logs: logs})
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 3})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "o", Shards: 1})
	e := &secureEnv{c: c, logs: logs}
	ctx := ctxT(t)
	for name, rules := range testUsers {
		if _, err := c.Node(1).SetUser(ctx, name, rules); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Running() {
		testutil.Eventually(t, 10*time.Second, "the users everywhere", func() bool { return len(n.Users()) == len(testUsers) })
	}
	var err error
	if e.tls, _, err = pki.ClientConfig(c.CA, ""); err != nil {
		t.Fatal(err)
	}
	cfg.DefaultKeyspace = "t"
	for _, id := range c.IDs() {
		n := c.Node(id)
		cfg.Certs = n.Certs()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := Serve(ln, n, cfg)
		t.Cleanup(func() { _ = s.Close() })
		e.servers = append(e.servers, s)
	}
	return e
}

// client returns a go-redis client of server i logged in as user (""
// for none), with the user's client certificate if withCert.
func (e *secureEnv) client(t *testing.T, i int, user string, proto int) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: e.servers[i].Addr(), Protocol: proto, TLSConfig: e.tls.Clone(),
		ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second, MaxRetries: -1}
	if user != "" {
		o.Username, o.Password = user, user+"-pw"
	}
	rdb := redis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestPermissionsOverEveryCommand runs every command (and the
// subcommands with permissions of their own) as every kind of user, and
// checks that each is refused exactly when its permission says so: a
// read-only user cannot write, a user of another keyspace cannot read
// this one, a keyspace admin or a non-admin cannot manage users, an
// anonymous connection can only authenticate.
func TestPermissionsOverEveryCommand(t *testing.T) {
	e := newSecureEnv(t, Config{})
	ctx := ctxT(t)
	// What each user may do, written out here rather than derived.
	may := map[string]func(p auth.Permission) bool{
		"":        func(p auth.Permission) bool { return p.Class == auth.Public },
		"admin":   func(p auth.Permission) bool { return true },
		"reader":  func(p auth.Permission) bool { return p.Class <= auth.Read },
		"writer":  func(p auth.Permission) bool { return p.Class <= auth.Write },
		"other":   func(p auth.Permission) bool { return p.Class <= auth.Connected },
		"ksadmin": func(p auth.Permission) bool { return p.Class <= auth.Connected || p == auth.AdminKeyspace },
	}
	checked := 0
	for user, allowed := range may {
		for name, samples := range sampleCommands {
			for _, sample := range samples {
				args := make([]any, len(sample))
				for i, a := range sample {
					args[i] = a
				}
				perm, ok := permissionOf(name, toBytes(sample))
				if !ok {
					t.Fatalf("%s: no permission", name)
				}
				want := allowed(perm)
				switch {
				case name == "hello" && user == "":
					want = false // HELLO without AUTH asks for authentication itself
				case name == "meridian.with":
					inner, _ := permissionOf(strings.ToLower(sample[2]), toBytes(sample[2:]))
					want = want && allowed(inner)
				}
				rdb := e.client(t, checked%3, user, 2)
				err := rdb.Do(ctx, args...).Err()
				_ = rdb.Close()
				refused := err != nil && (strings.HasPrefix(err.Error(), "NOPERM") || strings.HasPrefix(err.Error(), "NOAUTH"))
				if refused == want {
					t.Errorf("user %q: %v: refused %v (%v), want allowed %v (permission %s)", user, sample, refused, err, want, perm)
				}
				checked++
			}
		}
	}
	t.Logf("FIGURES: %d command runs checked against their permission over RESP", checked)
}

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// TestTLSAndUsersWithGoRedis: go-redis over TLS, RESP2 and RESP3, with
// ACL users; a wrong password is refused; a client certificate logs its
// user in without a password; a user disabled while connected is asked
// to authenticate again; ACL SETUSER and DELUSER work through RESP and
// are audited without their passwords; no secret shows in INFO, CLIENT
// LIST, ACL LIST or GETUSER, an error or the logs.
func TestTLSAndUsersWithGoRedis(t *testing.T) {
	e := newSecureEnv(t, Config{})
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		w := e.client(t, 0, "writer", proto)
		r := e.client(t, 2, "reader", proto)
		key := fmt.Sprintf("greeting%d", proto)
		check(t, "SET over TLS", w.Set(ctx, key, "hello", 0).Val(), w.Set(ctx, key, "hello", 0).Err(), "OK")
		v, err := r.Get(ctx, key).Result()
		check(t, "GET over TLS in another region", v, err, "hello")
		wantErr(t, r.Set(ctx, key, "x", 0).Err(), "NOPERM")
		who, err := r.Do(ctx, "ACL", "WHOAMI").Text()
		check(t, "ACL WHOAMI", who, err, "reader")
	}
	bad := redis.NewClient(&redis.Options{Addr: e.servers[0].Addr(), TLSConfig: e.tls.Clone(), Username: "reader", Password: "nope", MaxRetries: -1})
	defer bad.Close()
	wantErr(t, bad.Ping(ctx).Err(), "WRONGPASS")
	plain := redis.NewClient(&redis.Options{Addr: e.servers[0].Addr(), MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Fatal("a plaintext client was answered by a TLS server")
	}

	// The root user's client certificate: in without a password.
	rootTLS, hasCert, err := pki.ClientConfig(e.c.CA, auth.RootUser)
	if err != nil || !hasCert {
		t.Fatalf("root's certificate: %v %v", hasCert, err)
	}
	root := redis.NewClient(&redis.Options{Addr: e.servers[1].Addr(), TLSConfig: rootTLS, MaxRetries: -1})
	defer root.Close()
	who, err := root.Do(ctx, "ACL", "WHOAMI").Text()
	check(t, "ACL WHOAMI with root's certificate", who, err, auth.RootUser)

	// User management through RESP, audited without the password.
	const secret = "Sup3r-Secret-Passw0rd"
	check(t, "ACL SETUSER", root.Do(ctx, "ACL", "SETUSER", "carol", "on", ">"+secret, "~t", "+@read").Val(), nil, any("OK"))
	carol := redis.NewClient(&redis.Options{Addr: e.servers[1].Addr(), TLSConfig: e.tls.Clone(), Username: "carol", Password: secret, MaxRetries: -1})
	defer carol.Close()
	check(t, "carol's PING", carol.Ping(ctx).Val(), carol.Ping(ctx).Err(), "PONG")
	readerConn := e.client(t, 1, "reader", 2).Conn()
	defer readerConn.Close()
	wantErr(t, readerConn.Do(ctx, "ACL", "SETUSER", "mallory", "on", ">x", "~*", "+@all").Err(), "NOPERM")
	// Disabled while connected: the next command asks for authentication.
	carolConn := carol.Conn()
	defer carolConn.Close()
	check(t, "carol on a dedicated connection", carolConn.Ping(ctx).Val(), nil, "PONG")
	check(t, "ACL SETUSER off", root.Do(ctx, "ACL", "SETUSER", "carol", "off").Val(), nil, any("OK"))
	wantErr(t, carolConn.Get(ctx, "k").Err(), "NOAUTH")
	n, err := root.Do(ctx, "ACL", "DELUSER", "carol", "nobody").Int()
	check(t, "ACL DELUSER", n, err, 1)

	recs, err := e.c.Node(2).AuditLog(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var setuser, denied bool
	for _, r := range recs {
		if strings.Contains(r.Detail, secret) {
			t.Fatalf("the audit log holds the password: %+v", r)
		}
		if r.Action == "ACL SETUSER" && r.Who == auth.RootUser && r.Result == "ok" && strings.Contains(r.Detail, "carol on >*** ~t +@read") && r.Frontend == "resp" && r.From != "" {
			setuser = true
		}
		if r.Action == "ACL SETUSER" && r.Who == "reader" && strings.HasPrefix(r.Result, "denied") {
			denied = true
		}
	}
	if !setuser || !denied {
		t.Fatalf("audit log without root's SETUSER (%v) or reader's refused one (%v): %+v", setuser, denied, recs)
	}
	// No secret anywhere a client or an operator looks.
	_ = root.Do(ctx, "ACL", "SETUSER", "dave", "on", ">"+secret).Err()
	_ = redis.NewClient(&redis.Options{Addr: e.servers[1].Addr(), TLSConfig: e.tls.Clone(), Username: "dave", Password: secret + "-wrong", MaxRetries: -1}).Ping(ctx).Err()
	var seen []string
	for _, cmd := range [][]any{{"INFO"}, {"CLIENT", "LIST"}, {"ACL", "LIST"}, {"ACL", "GETUSER", "dave"}, {"AUTH", "dave", secret + "x"}} {
		v, err := root.Do(ctx, cmd...).Result()
		seen = append(seen, fmt.Sprint(v, err))
	}
	seen = append(seen, e.logs.String())
	for _, s := range seen {
		if strings.Contains(s, secret) {
			t.Fatalf("a secret shows: %.300s", s)
		}
	}
}

// TestUnauthenticatedLimits: before it authenticates, a connection that
// declares a huge argument count or bulk length is cut off at once, and
// the server's memory does not grow with what such clients send or
// declare; a connection that does not authenticate in time is closed;
// connections beyond MaxUnauthenticated are refused.
func TestUnauthenticatedLimits(t *testing.T) {
	e := newSecureEnv(t, Config{AuthTimeout: 500 * time.Millisecond, MaxUnauthenticated: 8})
	s := e.servers[0]
	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", s.Addr(), e.tls)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	closed := func(br *bufio.Reader, want string) {
		t.Helper()
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, want) {
			t.Fatalf("read %q, want %q", line, want)
		}
		if _, err := br.ReadByte(); err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the connection is still open: %v", err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 40 {
		c, br := dial()
		var hdr string
		if i%2 == 0 {
			hdr = "*2000000000\r\n"
		} else {
			hdr = "*2\r\n$4\r\nAUTH\r\n$1073741824\r\n"
		}
		// The header, then 1 MiB of what it announced: the server must
		// not wait for (or keep) any of it.
		go func() {
			_, _ = io.WriteString(c, hdr)
			_, _ = c.Write(make([]byte, 1<<20))
		}()
		if i%2 == 0 {
			closed(br, "-ERR Protocol error: unauthenticated multibulk length")
		} else {
			closed(br, "-ERR Protocol error: unauthenticated bulk length")
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("FIGURES: heap in use %+d KiB after 40 unauthenticated clients declared 2e9 arguments or 1 GiB bulks and sent 1 MiB each", grew>>10)
	if grew > 16<<20 {
		t.Fatalf("the heap grew by %d MiB", grew>>20)
	}

	// A pre-auth command within the limits but of a command too large for
	// them (an AUTH of 20 KiB) is cut off too.
	c, br := dial()
	fmt.Fprintf(c, "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$%d\r\n%s\r\n", 20<<10, strings.Repeat("x", 20<<10))
	closed(br, "-ERR Protocol error: unauthenticated bulk length")

	// Silent: closed after AuthTimeout. Authenticated: kept.
	silent, silentBR := dial()
	_ = silent
	ok, okBR := dial()
	fmt.Fprintf(ok, "*3\r\n$4\r\nAUTH\r\n$6\r\nreader\r\n$9\r\nreader-pw\r\n")
	if line, err := okBR.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("AUTH: %q %v", line, err)
	}
	if _, err := silentBR.ReadByte(); err == nil {
		t.Fatal("a silent unauthenticated connection was not closed")
	}
	fmt.Fprintf(ok, "*1\r\n$4\r\nPING\r\n")
	if line, err := okBR.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Fatalf("the authenticated connection after the deadline: %q %v", line, err)
	}
	// After authentication, the server's own limits: a 20 KiB value is fine.
	fmt.Fprintf(ok, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n", 20<<10, strings.Repeat("x", 20<<10))
	if line, err := okBR.ReadString('\n'); err != nil || !strings.HasPrefix(line, "-NOPERM") {
		t.Fatalf("a large command after AUTH (as a reader): %q %v", line, err)
	}

	// At most 8 unauthenticated connections at once.
	var held []*tls.Conn
	for range 8 {
		c, _ := dial()
		held = append(held, c)
	}
	testutil.Eventually(t, 10*time.Second, "8 unauthenticated connections counted", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.unauth == 8
	})
	if c, err := tls.Dial("tcp", s.Addr(), e.tls); err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == nil {
			t.Fatal("a ninth unauthenticated connection was served")
		}
	}
	for _, c := range held {
		c.Close()
	}
}

// TestRedisCLITLS drives a secure node with redis-cli --tls, when it is
// installed (and built with TLS).
func TestRedisCLITLS(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not on PATH")
	}
	if out, _ := exec.Command(cli, "--help").CombinedOutput(); !bytes.Contains(out, []byte("--tls")) {
		t.Skip("redis-cli is built without TLS")
	}
	e := newSecureEnv(t, Config{})
	_, port, _ := net.SplitHostPort(e.servers[0].Addr())
	run := func(args ...string) string {
		t.Helper()
		base := []string{"--tls", "--cacert", e.c.CA + "/" + pki.CACertFile, "-h", "127.0.0.1", "-p", port}
		out, err := exec.Command(cli, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run("--user", "writer", "--pass", "writer-pw", "SET", "cli", "v"); !strings.HasSuffix(out, "OK") {
		t.Fatalf("redis-cli --tls SET: %q", out)
	}
	if out := run("--user", "reader", "--pass", "reader-pw", "GET", "cli"); !strings.HasSuffix(out, "v") {
		t.Fatalf("redis-cli --tls GET: %q", out)
	}
	if out := run("--user", "reader", "--pass", "reader-pw", "SET", "cli", "x"); !strings.Contains(out, "NOPERM") {
		t.Fatalf("redis-cli --tls SET as a reader: %q", out)
	}
	if out := run("GET", "cli"); !strings.Contains(out, "NOAUTH") {
		t.Fatalf("redis-cli --tls without a user: %q", out)
	}
}

// FuzzParseHello: HELLO's arguments never panic the parser, and what it
// accepts is a protocol of 2 or 3 with whole options.
func FuzzParseHello(f *testing.F) {
	f.Add("3 AUTH alice pw SETNAME app")
	f.Add("2 SETNAME a AUTH")
	f.Add("x")
	f.Add("3 auth a")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHello(toBytes(strings.Fields(s)))
		if err != nil {
			return
		}
		if len(strings.Fields(s)) > 0 && h.proto != 2 && h.proto != 3 {
			t.Fatalf("protocol %d accepted", h.proto)
		}
		if h.auth && (h.user == nil || h.pass == nil) {
			t.Fatal("AUTH without its arguments")
		}
		if h.setName && !validName(h.name) {
			t.Fatalf("name %q accepted", h.name)
		}
	})
}

// FuzzPreAuthReader: whatever an unauthenticated client sends, the reader
// under the pre-authentication limits never returns a command beyond
// them, and fails rather than skip what is too large.
func FuzzPreAuthReader(f *testing.F) {
	f.Add([]byte("*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n"))
	f.Add([]byte("*99\r\n"))
	f.Add([]byte("*1\r\n$99999999\r\n"))
	f.Add([]byte("AUTH u p\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newReader(bytes.NewReader(data), preAuthLimits())
		for {
			args, err := r.readCommand()
			if err != nil {
				var rej *rejectedError
				if errors.As(err, &rej) {
					t.Fatalf("a command was skipped instead of cutting the connection off: %v", err)
				}
				return
			}
			total := 0
			for _, a := range args {
				total += len(a)
				if len(a) > preAuthMaxBulk {
					t.Fatalf("an argument of %d bytes", len(a))
				}
			}
			if len(args) > preAuthMaxArgs || total > preAuthMaxCommand {
				t.Fatalf("%d arguments, %d bytes", len(args), total)
			}
		}
	})
}

// TestTransactionsAndPermissions: a command the user may not run is
// refused when queued, and EXEC then aborts; a permission taken away
// between queueing and EXEC refuses the whole transaction, nothing
// written; FLUSHDB is for the keyspace's admins, and audited either way;
// a blocking pop needs the write permission.
func TestTransactionsAndPermissions(t *testing.T) {
	e := newSecureEnv(t, Config{})
	ctx := ctxT(t)
	admin := e.client(t, 0, "admin", 2)

	reader := e.client(t, 0, "reader", 2).Conn()
	defer reader.Close()
	check(t, "reader's MULTI", reader.Do(ctx, "MULTI").Val(), nil, any("OK"))
	check(t, "a read queued", reader.Do(ctx, "GET", "{x}a").Val(), nil, any("QUEUED"))
	wantErr(t, reader.Do(ctx, "SET", "{x}a", "1").Err(), "NOPERM")
	wantErr(t, reader.Do(ctx, "EXEC").Err(), "EXECABORT")

	check(t, "ACL SETUSER tx", admin.Do(ctx, "ACL", "SETUSER", "tx", "on", ">tx-pw", "~t", "+@read", "+@write").Val(), nil, any("OK"))
	txc := redis.NewClient(&redis.Options{Addr: e.servers[0].Addr(), TLSConfig: e.tls.Clone(), Username: "tx", Password: "tx-pw", MaxRetries: -1})
	defer txc.Close()
	tx := txc.Conn()
	defer tx.Close()
	check(t, "tx's MULTI", tx.Do(ctx, "MULTI").Val(), nil, any("OK"))
	check(t, "SET queued", tx.Do(ctx, "SET", "{x}a", "1").Val(), nil, any("QUEUED"))
	check(t, "INCR queued", tx.Do(ctx, "INCR", "{x}b").Val(), nil, any("QUEUED"))
	check(t, "write taken away", admin.Do(ctx, "ACL", "SETUSER", "tx", "-@write").Val(), nil, any("OK"))
	wantErr(t, tx.Do(ctx, "EXEC").Err(), "NOPERM")
	for _, k := range []string{"{x}a", "{x}b"} {
		if err := admin.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("%s after the refused EXEC: %v", k, err)
		}
	}
	check(t, "a transaction of reads still runs", fmt.Sprint(tx.Do(ctx, "MULTI").Val(), tx.Do(ctx, "GET", "{x}a").Val(), tx.Do(ctx, "EXEC").Val()), nil, "OKQUEUED[<nil>]")

	writer := e.client(t, 1, "writer", 2)
	check(t, "SET", writer.Set(ctx, "doomed", "v", 0).Val(), nil, "OK")
	wantErr(t, writer.Do(ctx, "FLUSHDB", "CONFIRM", "t").Err(), "NOPERM")
	wantErr(t, e.client(t, 1, "reader", 2).BLPop(ctx, 10*time.Millisecond, "q").Err(), "NOPERM")
	ksadmin := e.client(t, 1, "ksadmin", 2)
	check(t, "FLUSHDB by the keyspace's admin", ksadmin.Do(ctx, "FLUSHDB", "CONFIRM", "t").Val(), nil, any("OK"))
	if err := admin.Get(ctx, "doomed").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a key after FLUSHDB: %v", err)
	}
	recs, err := e.c.Node(e.c.IDs()[1]).AuditLog(0, 0) // server 1's node
	if err != nil {
		t.Fatal(err)
	}
	var flushed, denied bool
	for _, r := range recs {
		flushed = flushed || (r.Action == "FLUSHDB" && r.Who == "ksadmin" && r.Result == "ok")
		denied = denied || (r.Action == "FLUSHDB" && r.Who == "writer" && strings.HasPrefix(r.Result, "denied"))
	}
	if !flushed || !denied {
		t.Fatalf("audit log without ksadmin's FLUSHDB (%v) or writer's refused one (%v): %+v", flushed, denied, recs)
	}
}
