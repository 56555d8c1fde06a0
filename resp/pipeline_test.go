package resp

import (
	"fmt"
	"strings"
	"testing"

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
