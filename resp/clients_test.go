package resp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestGoRedisScript runs what applications do with go-redis against a
// three-region cluster: pipelines, MULTI/EXEC with WATCH (an optimistic
// counter written from two regions at once), a job queue with blocking
// pops, a leaderboard in a sorted set, pub/sub across regions, and the
// errors a transaction across shards and an unconfirmed FLUSHDB get.
func TestGoRedisScript(t *testing.T) {
	e := newEnv(t)
	east, west, asia := e.servers[0], e.servers[1], e.servers[2]
	ctx := ctxT(t)
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			re, rw, ra := newRDB(t, east, proto), newRDB(t, west, proto), newRDB(t, asia, proto)
			p := fmt.Sprint("p", proto) // keys of this run

			// Pipelines.
			cmds, err := re.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, "{"+p+"u1}:name", "ann", 0)
				pipe.Incr(ctx, "{"+p+"u1}:visits")
				pipe.Expire(ctx, "{"+p+"u1}:visits", time.Hour)
				pipe.HSet(ctx, "{"+p+"u1}:prefs", "theme", "dark", "lang", "en")
				pipe.RPush(ctx, p+"log", "a", "b")
				pipe.Get(ctx, "{"+p+"u1}:name")
				return nil
			})
			if err != nil || len(cmds) != 6 || cmds[5].(*redis.StringCmd).Val() != "ann" || cmds[1].(*redis.IntCmd).Val() != 1 {
				t.Fatalf("pipeline: %v %v", cmds, err)
			}
			if v, err := rw.HGetAll(ctx, "{"+p+"u1}:prefs").Result(); err != nil || v["theme"] != "dark" {
				t.Fatalf("HGETALL in another region: %v %v", v, err)
			}

			// MULTI/EXEC with WATCH: an optimistic increment from two
			// regions at once loses no update.
			key := "{" + p + "acct}:balance"
			if err := re.Set(ctx, key, 0, 0).Err(); err != nil {
				t.Fatal(err)
			}
			const perClient = 15
			var wg sync.WaitGroup
			retries := make([]int, 2)
			for i, rdb := range []*redis.Client{re, rw} {
				wg.Go(func() {
					for range perClient {
						for {
							err := rdb.Watch(ctx, func(tx *redis.Tx) error {
								n, err := tx.Get(ctx, key).Int()
								if err != nil {
									return err
								}
								_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
									pipe.Set(ctx, key, n+1, 0)
									pipe.Incr(ctx, "{"+p+"acct}:ops")
									return nil
								})
								return err
							}, key)
							if errors.Is(err, redis.TxFailedErr) {
								retries[i]++
								continue
							}
							if err != nil {
								t.Errorf("transaction: %v", err)
								return
							}
							break
						}
					}
				})
			}
			wg.Wait()
			if n, err := ra.Get(ctx, key).Int(); err != nil || n != 2*perClient {
				t.Fatalf("balance %d (%v), want %d: an update was lost", n, err, 2*perClient)
			}
			t.Logf("WATCH retries: %v", retries)

			// A job queue: a consumer in ap-southeast blocks on BLPOP, a
			// producer in us-east pushes.
			queue := p + "jobs"
			got := make(chan string, 10)
			go func() {
				for range 5 {
					v, err := ra.BLPop(ctx, 10*time.Second, queue).Result()
					if err != nil {
						t.Errorf("BLPOP: %v", err)
						close(got)
						return
					}
					got <- v[1]
				}
				close(got)
			}()
			for i := range 5 {
				if err := re.RPush(ctx, queue, fmt.Sprint("job", i)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			var jobs []string
			for j := range got {
				jobs = append(jobs, j)
			}
			if !slices.Equal(jobs, []string{"job0", "job1", "job2", "job3", "job4"}) {
				t.Fatalf("jobs %v", jobs)
			}
			if v, err := rw.BLPop(ctx, 100*time.Millisecond, queue).Result(); !errors.Is(err, redis.Nil) {
				t.Fatalf("BLPOP of an empty queue: %v %v", v, err)
			}
			if err := re.LPush(ctx, p+"src", "x").Err(); err != nil {
				t.Fatal(err)
			}

			// A leaderboard.
			board := p + "board"
			re.ZAdd(ctx, board, redis.Z{Score: 10, Member: "ann"}, redis.Z{Score: 20, Member: "bob"}, redis.Z{Score: 15, Member: "cy"})
			if s, err := rw.ZIncrBy(ctx, board, 12.5, "ann").Result(); err != nil || s != 22.5 {
				t.Fatalf("ZINCRBY: %v %v", s, err)
			}
			top, err := ra.ZRevRangeWithScores(ctx, board, 0, 1).Result()
			if err != nil || len(top) != 2 || top[0].Member != "ann" || top[0].Score != 22.5 || top[1].Member != "bob" {
				t.Fatalf("top two: %v %v", top, err)
			}
			if r, err := ra.ZRevRank(ctx, board, "cy").Result(); err != nil || r != 2 {
				t.Fatalf("ZREVRANK: %v %v", r, err)
			}
			if ms, err := re.ZRangeByScore(ctx, board, &redis.ZRangeBy{Min: "(15", Max: "+inf"}).Result(); err != nil || !slices.Equal(ms, []string{"bob", "ann"}) {
				t.Fatalf("ZRANGEBYSCORE: %v %v", ms, err)
			}

			// Pub/sub: subscribers in eu-west and ap-southeast, a
			// publisher in us-east.
			subW := rw.Subscribe(ctx, p+"news")
			subA := ra.PSubscribe(ctx, p+"ne*")
			defer subW.Close()
			defer subA.Close()
			for _, s := range []*redis.PubSub{subW, subA} {
				if _, err := s.Receive(ctx); err != nil { // the subscription's confirmation
					t.Fatal(err)
				}
			}
			for i := range 10 {
				if err := re.Publish(ctx, p+"news", fmt.Sprint("m", i)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range []*redis.PubSub{subW, subA} {
				for i := range 10 {
					m, err := s.ReceiveMessage(ctx)
					if err != nil || m.Payload != fmt.Sprint("m", i) || m.Channel != p+"news" {
						t.Fatalf("message %d: %+v %v", i, m, err)
					}
				}
			}
			if n, err := rw.PubSubNumSub(ctx, p+"news").Result(); err != nil || n[p+"news"] != 1 {
				t.Fatalf("PUBSUB NUMSUB: %v %v", n, err)
			}

			// A transaction over two shards is refused, naming the keys;
			// FLUSHDB needs its confirmation.
			k1, k2 := twoShards(t, e)
			_, err = re.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, k1, 1, 0)
				pipe.Set(ctx, k2, 1, 0)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), "EXECABORT") {
				t.Fatalf("a transaction over two shards: %v", err)
			}
			if err := re.FlushDB(ctx).Err(); err == nil || !strings.Contains(err.Error(), "CONFIRM") {
				t.Fatalf("FLUSHDB without confirmation: %v", err)
			}
		})
	}
}

// twoShards returns two keys of keyspace t in different shards.
func twoShards(t *testing.T, e *env) (string, string) {
	n := e.c.Running()[0]
	first, err := n.Shard("t", []byte("key0"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		k := fmt.Sprint("key", i)
		if s, _ := n.Shard("t", []byte(k)); s != first {
			return "key0", k
		}
	}
}

// TestTransactionsAndPubSubRaw checks replies go-redis hides: MULTI's
// errors, EXEC's nil, the CROSSSLOT text, subscribed-mode rules in RESP2
// and push messages between replies in RESP3.
func TestTransactionsAndPubSubRaw(t *testing.T) {
	e := newEnv(t)
	c := dialRESP(t, e.servers[0].Addr(), 2)
	for _, x := range [][2]string{
		{"EXEC", "-ERR EXEC without MULTI"},
		{"DISCARD", "-ERR DISCARD without MULTI"},
		{"WATCH {k}a", "+OK"},
		{"MULTI", "+OK"},
		{"MULTI", "-ERR MULTI calls can not be nested"},
		{"WATCH {k}b", "-ERR WATCH inside MULTI is not allowed"},
		{"SET {k}a 1", "+QUEUED"},
		{"INCR {k}a", "+QUEUED"},
		{"LPUSH {k}a x", "+QUEUED"},
		{"EXEC", `*[+OK :2 -WRONGTYPE Operation against a key holding the wrong kind of value]`},
		{"WATCH {k}a", "+OK"},
		{"SET {k}a 5", "+OK"},
		{"MULTI", "+OK"},
		{"INCR {k}a", "+QUEUED"},
		{"EXEC", "*nil"},
		{"GET {k}a", `$"5"`},
		{"MULTI", "+OK"},
		{"SET {k}a 1 EX notanumber", "+QUEUED"},
		{"NOSUCHCOMMAND", "-ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "},
		{"EXEC", "-EXECABORT Transaction discarded because of previous errors."},
		{"MULTI", "+OK"},
		{"KEYS *", "-ERR KEYS cannot be queued in a transaction: Meridian transactions hold commands on keys (see docs/commands.md)"},
		{"DISCARD", "+OK"},
		{"MULTI", "+OK"},
		{"PING", "+QUEUED"},
		{"ECHO hi", "+QUEUED"},
		{"EXEC", `*[+PONG $"hi"]`},
		{"FLUSHDB CONFIRM other", "-ERR FLUSHDB CONFIRM names keyspace 'other', but this connection uses 't'"},
	} {
		if got := c.do(strings.Fields(x[0])...); got != x[1] {
			t.Fatalf("%s = %s, want %s", x[0], got, x[1])
		}
	}
	// Keys of two shards.
	k1, k2 := twoShards(t, e)
	if got := c.do("RENAME", k1, k2); !strings.HasPrefix(got, "-CROSSSLOT Keys in request don't hash to the same shard: '"+k1+"'") {
		t.Fatalf("RENAME across shards: %s", got)
	}
	c.do("MULTI")
	c.do("SET", k1, "1")
	if got := c.do("SET", k2, "1"); !strings.HasPrefix(got, "-CROSSSLOT") {
		t.Fatalf("queueing a key of another shard: %s", got)
	}
	if got := c.do("EXEC"); got != "-EXECABORT Transaction discarded because of previous errors." {
		t.Fatalf("EXEC after a CROSSSLOT: %s", got)
	}

	// RESP2: a subscribed connection may only (un)subscribe and ping.
	sub := dialRESP(t, e.servers[1].Addr(), 2)
	if got := sub.do("SUBSCRIBE", "ch1", "ch2"); got != `*[$"subscribe" $"ch1" :1]` {
		t.Fatalf("SUBSCRIBE: %s", got)
	}
	if got, _ := sub.read(); got != `*[$"subscribe" $"ch2" :2]` {
		t.Fatalf("second confirmation: %s", got)
	}
	if got := sub.do("GET", "x"); got != "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" {
		t.Fatalf("GET while subscribed: %s", got)
	}
	if got := sub.do("PING"); got != `*[$"pong" $""]` {
		t.Fatalf("PING while subscribed: %s", got)
	}
	pub := dialRESP(t, e.servers[2].Addr(), 2)
	if got := pub.do("PUBLISH", "ch2", "hello"); got != ":0" {
		t.Fatalf("PUBLISH in a region without local subscribers: %s", got)
	}
	_ = sub.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := sub.read(); err != nil || got != `*[$"message" $"ch2" $"hello"]` {
		t.Fatalf("message from another region: %s %v", got, err)
	}
	if got := sub.do("UNSUBSCRIBE"); got != `*[$"unsubscribe" $"ch1" :1]` {
		t.Fatalf("UNSUBSCRIBE: %s", got)
	}
	if got, _ := sub.read(); got != `*[$"unsubscribe" $"ch2" :0]` {
		t.Fatalf("UNSUBSCRIBE's second reply: %s", got)
	}
	if got := sub.do("GET", "x"); got != "$nil" {
		t.Fatalf("GET after unsubscribing: %s", got)
	}

	// RESP3: commands run while subscribed, messages are pushes.
	s3 := dialRESP(t, e.servers[0].Addr(), 3)
	if got := s3.do("PSUBSCRIBE", "n*"); got != `>[$"psubscribe" $"n*" :1]` {
		t.Fatalf("PSUBSCRIBE: %s", got)
	}
	if got := s3.do("SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET while subscribed: %s", got)
	}
	if got := pub.do("PUBLISH", "news", "x"); got != ":0" {
		t.Fatalf("PUBLISH: %s", got)
	}
	if got, err := s3.read(); err != nil || got != `>[$"pmessage" $"n*" $"news" $"x"]` {
		t.Fatalf("pattern message: %s %v", got, err)
	}
	if got := pub.do("PUBSUB", "NUMPAT"); got != ":0" {
		t.Fatalf("PUBSUB NUMPAT of another node: %s", got)
	}
	if got := s3.do("PUBSUB", "NUMPAT"); got != ":1" {
		t.Fatalf("PUBSUB NUMPAT: %s", got)
	}
	if got := dialRESP(t, e.servers[1].Addr(), 2).do("PUBSUB", "CHANNELS"); got != "*[]" {
		t.Fatalf("PUBSUB CHANNELS after every unsubscribe: %s", got)
	}
}

// TestBlockingPopClientGoesAway: a client that closes its connection
// while blocked stops waiting.
func TestBlockingPopClientGoesAway(t *testing.T) {
	e := newEnv(t)
	c := dialRESP(t, e.servers[0].Addr(), 2)
	_, _ = c.conn.Write([]byte("*3\r\n$5\r\nBLPOP\r\n$4\r\nwait\r\n$1\r\n0\r\n"))
	n := e.c.Running()[0]
	ctx := ctxT(t)
	if err := e.c.WaitFor(ctx, func() bool { return n.BlockedClients() == 1 }); err != nil {
		t.Fatal("the pop never blocked")
	}
	_ = c.conn.Close()
	if err := e.c.WaitFor(ctx, func() bool { return n.BlockedClients() == 0 }); err != nil {
		t.Fatal("the pop of a closed connection still waits")
	}
}
