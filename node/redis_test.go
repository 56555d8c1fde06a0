package node_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/node/nodepb"
)

func argv(words ...string) [][]byte {
	out := make([][]byte, len(words))
	for i, w := range words {
		out[i] = []byte(w)
	}
	return out
}

// redisWrite runs an engine write and returns its reply as text.
func redisWrite(ctx context.Context, t testing.TB, n *node.Node, ks string, words ...string) string {
	t.Helper()
	a := argv(words...)
	r, _, err := n.Write(ctx, ks, kv.RedisCommand(a[1], time.Now().UnixMilli(), a))
	if err != nil {
		t.Fatalf("%s %v: %v", n.Region(), words, err)
	}
	return replyText(t, r.Value)
}

// redisRead runs an engine read at consistency c.
func redisRead(ctx context.Context, t testing.TB, n *node.Node, ks string, c node.Consistency, words ...string) string {
	t.Helper()
	a := argv(words...)
	out, _, err := n.Query(ctx, ks, a[1], a, c)
	if err != nil {
		t.Fatalf("%s %v: %v", n.Region(), words, err)
	}
	return replyText(t, out)
}

func replyText(t testing.TB, b []byte) string {
	t.Helper()
	r, err := kv.DecodeReply(b)
	if err != nil {
		t.Fatal(err)
	}
	return show(r)
}

func show(r kv.Reply) string {
	switch r.Kind {
	case kv.ReplyNil, kv.ReplyNilArray:
		return "nil"
	case kv.ReplyInt:
		return fmt.Sprint(r.Int)
	case kv.ReplyDouble:
		return kv.FormatDouble(r.Float)
	case kv.ReplyBulk, kv.ReplyStatus:
		return string(r.Str)
	case kv.ReplyError:
		return "!" + string(r.Str)
	}
	var parts []string
	for _, e := range r.Elems {
		parts = append(parts, show(e))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestHashTags(t *testing.T) {
	for _, n := range []int{1, 4, 16, 256} {
		tagged := node.ShardOf([]byte("user42"), n)
		for _, k := range []string{"{user42}:cart", "{user42}:orders", "x{user42}", "{user42}{other}"} {
			if got := node.ShardOf([]byte(k), n); got != tagged {
				t.Fatalf("%s: shard %d, want the tag's %d", k, got, tagged)
			}
		}
	}
	for key, hashed := range map[string]string{"{}x": "{}x", "a{b": "a{b", "a}b{": "a}b{", "{{a}}": "{a", "x{}{y}": "x{}{y}"} {
		if got := string(node.HashTag([]byte(key))); got != hashed {
			t.Fatalf("HashTag(%q) = %q, want %q", key, got, hashed)
		}
	}
}

// TestEngineAcrossNodes: lists and sorted sets written in one region and
// read in another, a read forwarded from a region without a replica,
// blocking pops woken by a push in another region, FLUSHDB of every
// shard.
func TestEngineAcrossNodes(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 3})
	// An async keyspace without ap-southeast: its node holds no replica.
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "as", Strategy: metadata.Async, HomeRegion: "us-east", Regions: []string{"us-east", "eu-west"}, Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	east, west, asia := c.Node(c.InRegion("us-east")[0]), c.Node(c.InRegion("eu-west")[0]), c.Node(c.InRegion("ap-southeast")[0])

	if got := redisWrite(ctx, t, east, "s", "RPUSH", "{q}:jobs", "a", "b", "c"); got != "3" {
		t.Fatalf("RPUSH: %s", got)
	}
	if got := redisRead(ctx, t, west, "s", node.Strong, "LRANGE", "{q}:jobs", "0", "-1"); got != "[a b c]" {
		t.Fatalf("LRANGE in another region: %s", got)
	}
	if got := redisWrite(ctx, t, asia, "s", "ZADD", "board", "5", "ann", "7", "bob"); got != "2" {
		t.Fatalf("ZADD: %s", got)
	}
	if got := redisRead(ctx, t, east, "s", node.Strong, "ZRANGE", "board", "0", "-1", "WITHSCORES"); got != "[ann 5 bob 7]" {
		t.Fatalf("ZRANGE: %s", got)
	}
	if got := redisWrite(ctx, t, west, "as", "LPUSH", "l", "x"); got != "1" {
		t.Fatalf("LPUSH in the async keyspace: %s", got)
	}
	if got := redisRead(ctx, t, asia, "as", node.Strong, "LLEN", "l"); got != "1" {
		t.Fatalf("a read forwarded from a region without a replica: %s", got)
	}

	// Keys of one command must share a shard.
	if _, err := east.SameShard("s", argv("{user1}:a", "{user1}:b")); err != nil {
		t.Fatal(err)
	}
	var k1, k2 string
	for i := 0; k2 == ""; i++ {
		k := fmt.Sprint("k", i)
		switch s, _ := east.Shard("s", []byte(k)); {
		case k1 == "":
			k1 = k
		case s != node.ShardOf([]byte(k1), 3):
			k2 = k
		}
	}
	if _, err := east.SameShard("s", argv(k1, k2)); !errors.Is(err, node.ErrCrossShard) || !strings.Contains(err.Error(), k1) || !strings.Contains(err.Error(), k2) {
		t.Fatalf("keys of two shards: %v", err)
	}

	// A blocking pop in us-east wakes when eu-west pushes (BLPOP), or
	// when ap-southeast adds to a sorted set (BZPOPMIN).
	type popped struct {
		reply string
		took  time.Duration
		err   error
	}
	blockThenPush := func(key string, pop []string, push ...string) popped {
		t.Helper()
		done := make(chan popped, 1)
		start := time.Now()
		ks := east.Metadata().Keyspaces["s"]
		shard, _ := east.Shard("s", []byte(key))
		group := ks.Shards[shard].Group
		applied := func() uint64 { st, _ := east.Host().Status(group); return st.Applied }
		before, wakes := applied(), east.BlockWakes()
		go func() {
			r, _, err := east.BlockingWrite(ctx, "s", argv(key), argv(pop...), 0)
			text := ""
			if err == nil {
				text = replyText(t, r.Value)
			}
			done <- popped{text, time.Since(start), err}
		}()
		// Waiting: registered, and its first attempt (a raft entry) applied.
		if err := c.WaitFor(ctx, func() bool { return east.BlockedClients() == 1 && applied() > before }); err != nil {
			t.Fatalf("%v never waited", pop)
		}
		select {
		case p := <-done:
			t.Fatalf("%v returned before anything was pushed: %+v", pop, p)
		default:
		}
		pusher := west
		if push[0] == "ZADD" {
			pusher = asia
		}
		redisWrite(ctx, t, pusher, "s", push...)
		p := <-done
		if east.BlockedClients() != 0 {
			t.Fatalf("%v left a waiter behind", pop)
		}
		// The pop read the push on this node's replica, whose state
		// machine told the waiter of it.
		if east.BlockWakes() == wakes {
			t.Fatalf("%v: the replica's apply of %v woke nobody", pop, push)
		}
		return p
	}
	if p := blockThenPush("{q}:empty", []string{"BLPOP", "{q}:empty", "0"}, "RPUSH", "{q}:empty", "item"); p.err != nil || p.reply != "[{q}:empty item]" {
		t.Fatalf("blocking pop: %+v", p)
	}
	if p := blockThenPush("{q}:board", []string{"BZPOPMIN", "{q}:board", "0"}, "ZADD", "{q}:board", "3", "c", "1", "a"); p.err != nil || p.reply != "[{q}:board a 1]" {
		t.Fatalf("blocking pop of a sorted set: %+v", p)
	}
	if got := redisRead(ctx, t, east, "s", node.Strong, "ZRANGE", "{q}:board", "0", "-1"); got != "[c]" {
		t.Fatalf("after BZPOPMIN: %s", got)
	}
	// A timeout answers nil; async keyspaces pop in their primary region.
	r, _, err := east.BlockingWrite(ctx, "s", argv("{q}:none"), argv("BRPOP", "{q}:none", "0.05"), 50*time.Millisecond)
	if err != nil || replyText(t, r.Value) != "nil" {
		t.Fatalf("timeout: %v %v", r, err)
	}
	if _, _, err := west.BlockingWrite(ctx, "as", argv("l"), argv("BLPOP", "l", "1"), time.Second); !errors.Is(err, node.ErrBlockingNotHere) {
		t.Fatalf("a blocking pop outside the primary region: %v", err)
	}

	// FLUSHDB empties every shard.
	for i := range 20 {
		redisWrite(ctx, t, east, "s", "SET", fmt.Sprint("f", i), "v")
	}
	if _, err := west.FlushDB(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := asia.DBSize(ctx, "s", node.Strong); err != nil || n != 0 {
		t.Fatalf("after FLUSHDB: %d keys, %v", n, err)
	}
}

// TestPubSubAcrossRegions: messages published in one region reach the
// subscribers of every node, each publisher's in order, at most once,
// also when a region is cut off for a while (what it misses is lost).
func TestPubSubAcrossRegions(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.1), Jitter: 3 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type inbox struct {
		mu   sync.Mutex
		msgs map[string][]string // by channel
	}
	nodes := c.Running()
	gots := make([]*inbox, len(nodes))
	for i, n := range nodes {
		g := &inbox{msgs: map[string][]string{}}
		gots[i] = g
		remove := n.AddPubSubSink(func(ch, msg []byte) int {
			g.mu.Lock()
			g.msgs[string(ch)] = append(g.msgs[string(ch)], string(msg))
			g.mu.Unlock()
			return 1
		})
		t.Cleanup(remove)
	}
	// Every node publishes on its own channel, all at once.
	const count = 300
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for i := range count {
				if got := n.Publish([]byte(n.Region()), fmt.Appendf(nil, "%d", i)); got != 1 {
					t.Errorf("Publish counted %d local subscribers", got)
				}
			}
		})
	}
	wg.Wait()
	want := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}
	complete := func() bool {
		for _, g := range gots {
			g.mu.Lock()
			for _, n := range nodes {
				if len(g.msgs[n.Region()]) < count {
					g.mu.Unlock()
					return false
				}
			}
			g.mu.Unlock()
		}
		return true
	}
	if err := c.WaitFor(ctx, complete); err != nil {
		t.Fatalf("not every message arrived: %v", err)
	}
	for i, g := range gots {
		for _, n := range nodes {
			if got := g.msgs[n.Region()]; !slices.Equal(got, want(0, count)) {
				t.Fatalf("node %d got %s's messages out of order or twice: %v", nodes[i].ID(), n.Region(), got)
			}
		}
	}
	// A region cut off misses what is published meanwhile, then gets the
	// later messages, in order.
	asia := slices.IndexFunc(nodes, func(n *node.Node) bool { return n.Region() == "ap-southeast" })
	c.Net.CutRegion("ap-southeast")
	for i := range 20 {
		nodes[0].Publish([]byte("cut"), fmt.Appendf(nil, "%d", i))
	}
	time.Sleep(200 * time.Millisecond) // the cut lasts a while: the messages are sent meanwhile
	c.Heal()
	if err := c.WaitFor(ctx, func() bool { return nodes[asia].Transport().Healthy(nodes[0].ID()) }); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 40; i++ {
		nodes[0].Publish([]byte("cut"), fmt.Appendf(nil, "%d", i))
	}
	if err := c.WaitFor(ctx, func() bool {
		g := gots[asia]
		g.mu.Lock()
		defer g.mu.Unlock()
		msgs := g.msgs["cut"]
		return len(msgs) > 0 && msgs[len(msgs)-1] == "39"
	}); err != nil {
		t.Fatalf("the messages after the cut never arrived: %v", gots[asia].msgs["cut"])
	}
	gots[asia].mu.Lock()
	got := slices.Clone(gots[asia].msgs["cut"])
	gots[asia].mu.Unlock()
	var nums []int
	for _, m := range got {
		var i int
		fmt.Sscan(m, &i)
		nums = append(nums, i)
	}
	if !slices.IsSorted(nums) || len(slices.Compact(slices.Clone(nums))) != len(nums) || len(nums) < 20 || !slices.Equal(got[len(got)-20:], want(20, 40)) {
		t.Fatalf("after the cut, got %v: want what arrived of 0-19, then 20-39, in order and once", got)
	}
	t.Logf("FIGURES: pub/sub: %d messages from each of %d regions reached every node in order; %d of 20 published during a cut reached the cut region", count, len(nodes), len(got)-20)
}

// TestActiveSortedSetConvergence: three regions write one sorted set at
// once (ZADD, ZINCRBY, ZREM); every region ends with the same members
// and scores, and no increment is lost.
func TestActiveSortedSetConvergence(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := c.Running()
	const rounds = 40
	var wg sync.WaitGroup
	for r, n := range nodes {
		wg.Go(func() {
			for i := range rounds {
				// Every region increments "hits" (never reset), adds and
				// removes members others add too, and sets a score of
				// its own.
				redisWrite(ctx, t, n, "a", "ZINCRBY", "board", "1", "hits")
				redisWrite(ctx, t, n, "a", "ZADD", "board", fmt.Sprint(i), fmt.Sprintf("shared%d", i%3))
				if i%4 == r {
					redisWrite(ctx, t, n, "a", "ZREM", "board", fmt.Sprintf("shared%d", (i+1)%3))
				}
				redisWrite(ctx, t, n, "a", "ZADD", "board", fmt.Sprint(r*100+i), n.Region())
			}
		})
	}
	wg.Wait()
	read := func(n *node.Node) string {
		return redisRead(ctx, t, n, "a", node.Eventual, "ZRANGE", "board", "0", "-1", "WITHSCORES")
	}
	var views []string
	if err := c.WaitFor(ctx, func() bool {
		views = views[:0]
		for _, n := range nodes {
			views = append(views, read(n))
		}
		return views[0] == views[1] && views[1] == views[2]
	}); err != nil {
		t.Fatalf("the regions never converged: %q", views)
	}
	if got := redisRead(ctx, t, nodes[0], "a", node.Eventual, "ZSCORE", "board", "hits"); got != fmt.Sprint(rounds*len(nodes)) {
		t.Fatalf("hits = %s, want every region's %d increments", got, rounds)
	}
	for r, n := range nodes {
		if got := redisRead(ctx, t, nodes[(r+1)%3], "a", node.Eventual, "ZSCORE", "board", n.Region()); got != fmt.Sprint(r*100+rounds-1) {
			t.Fatalf("%s's own member: %s", n.Region(), got)
		}
	}
	// Commands without a merge are refused, saying why.
	if _, _, err := nodes[0].Write(ctx, "a", kv.RedisCommand([]byte("l"), time.Now().UnixMilli(), argv("LPUSH", "l", "x"))); !errors.Is(err, node.ErrNotOnActive) || !strings.Contains(err.Error(), "sequence CRDT") {
		t.Fatalf("LPUSH in an active keyspace: %v", err)
	}
	if _, _, err := nodes[0].BlockingWrite(ctx, "a", argv("board"), argv("BZPOPMIN", "board", "1"), time.Second); !errors.Is(err, node.ErrNotOnActive) || !strings.Contains(err.Error(), "ZREM") {
		t.Fatalf("BZPOPMIN in an active keyspace: %v", err)
	}
	t.Logf("FIGURES: active sorted set: 3 regions x %d rounds of concurrent ZINCRBY/ZADD/ZREM converged to %s", rounds, views[0])
}

// TestQueryAndPublishRPC: the node service's Query runs an engine read on
// the node asked, and answers what goes wrong with the request's own
// typed code; Publish delivers a batch to the node's subscribers and
// refuses one that calls itself done.
func TestQueryAndPublishRPC(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "q", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	east, west := c.Node(c.InRegion("us-east")[0]), c.Node(c.InRegion("eu-west")[0])
	redisWrite(ctx, t, east, "q", "RPUSH", "l", "a", "b")
	client := nodepb.NewNodeClient(east.Transport().Conn(west.ID()))

	query := func(req *nodepb.QueryRequest) *nodepb.QueryResponse {
		t.Helper()
		resp, err := client.Query(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := query(&nodepb.QueryRequest{Keyspace: "q", Key: []byte("l"), Level: "strong", Args: argv("LRANGE", "l", "0", "-1")})
	if resp.GetError() != nil || replyText(t, resp.GetReply()) != "[a b]" || resp.GetAnswer().GetNode() != west.ID() {
		t.Fatalf("a query served by node %d: %v", west.ID(), resp)
	}
	for _, tc := range []struct {
		req  *nodepb.QueryRequest
		code nodepb.Code
	}{
		{&nodepb.QueryRequest{Keyspace: "q", Key: []byte("l")}, nodepb.Code_BAD_COMMAND},
		{&nodepb.QueryRequest{Keyspace: "nope", Key: []byte("l"), Args: argv("LLEN", "l")}, nodepb.Code_UNKNOWN_KEYSPACE},
		{&nodepb.QueryRequest{Keyspace: "q", Key: []byte("l"), Level: "sometimes", Args: argv("LLEN", "l")}, nodepb.Code_UNKNOWN_CONSISTENCY},
		{&nodepb.QueryRequest{Keyspace: "q", Args: argv("LLEN", "")}, nodepb.Code_EMPTY_KEY},
	} {
		if got := query(tc.req).GetError().GetCode(); got != tc.code {
			t.Fatalf("%v: code %v, want %v", tc.req, got, tc.code)
		}
	}

	got := make(chan string, 4)
	defer west.AddPubSubSink(func(ch, msg []byte) int { got <- string(ch) + "=" + string(msg); return 1 })()
	pub, err := client.Publish(ctx, &nodepb.PublishRequest{Incarnation: 7, Seq: 0, Messages: []*nodepb.PubMessage{{Channel: []byte("ch"), Message: []byte("hi")}}})
	if err != nil || pub.GetError() != nil {
		t.Fatalf("a batch: %v %v", pub, err)
	}
	if m := <-got; m != "ch=hi" {
		t.Fatalf("delivered %q", m)
	}
	pub, err = client.Publish(ctx, &nodepb.PublishRequest{Incarnation: 7, Seq: 1, DoneBelow: 5, Messages: []*nodepb.PubMessage{{Channel: []byte("ch"), Message: []byte("no")}}})
	if err != nil || pub.GetError() == nil || !strings.Contains(pub.GetError().GetMessage(), "malformed") {
		t.Fatalf("a batch done below itself: %v %v", pub, err)
	}
	select {
	case m := <-got:
		t.Fatalf("a refused batch delivered %q", m)
	default:
	}
}
