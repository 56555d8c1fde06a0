package resp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestPipelinedSets: a pipeline of plain SETs over several shards (a key
// written twice, a GET in the middle, a SET with options, a value over
// the limit) gets one reply per command, in order, as if each had run
// alone: the GET sees the SETs before it, the last write of a key wins,
// the too-large SET alone fails, and afterwards every key holds its value.
func TestPipelinedSets(t *testing.T) {
	e := newEnv(t)
	c := newRDB(t, e.servers[0], 2)
	ctx := ctxT(t)
	big := strings.Repeat("x", 5<<20) // over the 4 MiB value limit
	pipe := c.Pipeline()
	var sets []*redis.StatusCmd
	for i := range 40 {
		sets = append(sets, pipe.Set(ctx, fmt.Sprintf("p%d", i), fmt.Sprintf("v%d", i), 0))
	}
	again := pipe.Set(ctx, "p3", "again", 0)
	mid := pipe.Get(ctx, "p7")
	more := pipe.Set(ctx, "p40", "w40", 0)
	withTTL := pipe.Set(ctx, "p41", "w41", 3600e9)
	tooBig := pipe.Set(ctx, "p42", big, 0)
	after := pipe.Set(ctx, "p43", "w43", 0)
	_, _ = pipe.Exec(ctx)
	for i, s := range sets {
		if s.Err() != nil || s.Val() != "OK" {
			t.Fatalf("SET p%d: %q %v", i, s.Val(), s.Err())
		}
	}
	check(t, "SET p3 again", again.Val(), again.Err(), "OK")
	check(t, "GET p7 in the pipeline", mid.Val(), mid.Err(), "v7")
	check(t, "SET p40", more.Val(), more.Err(), "OK")
	check(t, "SET p41 EX", withTTL.Val(), withTTL.Err(), "OK")
	if tooBig.Err() == nil {
		t.Fatal("a SET over the value limit was acknowledged")
	}
	check(t, "SET p43 after the refused one", after.Val(), after.Err(), "OK")
	for i := range 44 {
		k := fmt.Sprintf("p%d", i)
		v, err := c.Get(ctx, k).Result()
		switch {
		case i == 3:
			check(t, k, v, err, "again")
		case i == 42:
			if err != redis.Nil {
				t.Fatalf("%s: %d bytes, %v", k, len(v), err)
			}
		case i < 40:
			check(t, k, v, err, fmt.Sprintf("v%d", i))
		default:
			check(t, k, v, err, fmt.Sprintf("w%d", i))
		}
	}
	if ttl, err := c.TTL(ctx, "p41").Result(); err != nil || ttl <= 0 {
		t.Fatalf("p41's TTL: %v %v", ttl, err)
	}
}

// TestPipelinedInlineSets: a run of inline SETs (telnet's form) that ends
// in half a command, whose other half comes a moment later, so that the
// reader's buffer is refilled (what is left of it moved to its front)
// while the run is being collected: every value is stored as sent (the
// run keeps the arguments the reader returned, which must not point into
// its buffer). So is a run of multibulk SETs split the same way.
func TestPipelinedInlineSets(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.servers[0])
	val := func(i int) string { return fmt.Sprintf("%03d%s", i, strings.Repeat(string(rune('a'+i%26)), 40)) }
	const n = 60
	var inline, multi strings.Builder
	for i := range n {
		fmt.Fprintf(&inline, "SET inl%d %s\r\n", i, val(i))
		fmt.Fprintf(&multi, "*3\r\n$3\r\nSET\r\n$%d\r\nmb%d\r\n$%d\r\n%s\r\n", len(fmt.Sprint(i))+2, i, len(val(i)), val(i))
	}
	for _, in := range []string{inline.String(), multi.String()} {
		cut := len(in) - 20 // inside the last command
		r.send(in[:cut])
		time.Sleep(50 * time.Millisecond) // (the first part read alone)
		r.send(in[cut:])
		for range n {
			r.expect("+OK")
		}
	}
	c := newRDB(t, e.servers[0], 2)
	ctx := ctxT(t)
	for i := range n {
		for _, k := range []string{fmt.Sprintf("inl%d", i), fmt.Sprintf("mb%d", i)} {
			v, err := c.Get(ctx, k).Result()
			check(t, k, v, err, val(i))
		}
	}
}
