package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// TestMultiShardWriteSessionCoversEveryShard: an MSET whose keys fall in
// several shards answers with every written group's position, and a
// session token made from the answer records them all, so a session read
// of any of the keys, anywhere, sees the write. (The answer used to
// carry one group and no index: the token recorded nothing.)
func TestMultiShardWriteSessionCoversEveryShard(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "m", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	east, far := c.Node(1), c.Node(3)
	var pairs [][]byte
	shards := map[int]bool{}
	for i := range 16 {
		k := []byte(fmt.Sprintf("k%d", i))
		pairs = append(pairs, k, []byte(fmt.Sprintf("v%d", i)))
		shards[node.ShardOf(k, len(ks.Shards))] = true
	}
	a, err := east.MSet(ctx, "m", pairs)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) < 2 {
		t.Fatalf("the keys fell in %d shard", len(shards))
	}
	marks := a.Marks()
	if len(marks) != len(shards) {
		t.Fatalf("the answer reflects %d groups (%+v), the keys fell in %d shards", len(marks), marks, len(shards))
	}
	token, err := east.Session("m", "", a)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := consistency.DecodeToken(token, east.Cluster(), "m")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range marks {
		if at, ok := tok.Index(m.Group); !ok || at < m.Index || m.Index == 0 {
			t.Fatalf("the token has group %d at %d (%v), the write was at %d", m.Group, at, ok, m.Index)
		}
	}
	session := node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: token}
	for i := 0; i < len(pairs); i += 2 {
		v, ok, _, err := far.Get(ctx, "m", pairs[i], session)
		if err != nil || !ok || string(v) != string(pairs[i+1]) {
			t.Fatalf("session read of %s in ap-southeast: %q %v %v", pairs[i], v, ok, err)
		}
	}
}
