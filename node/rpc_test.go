package node_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node/nodepb"
)

// TestForwardedWriteReachesTheLeader: a write through a node that holds
// no replica goes to the group's leader, not to the nearest replica that
// would have passed it on: the nearest replica (in the node's own region)
// answers NOT_LEADER naming the leader, and the leader serves the write;
// later writes go straight there.
func TestForwardedWriteReachesTheLeader(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{NodesPerRegion: 2, Matrix: netsim.WorldMatrix().Scaled(0.1)})
	ks := c.CreateKeyspace(metadata.KeyspaceSpec{Name: "f", Shards: 1, Replicas: 3, HomeRegion: "us-east"})
	sh := ks.Shards[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var leader uint64
	if err := c.WaitFor(ctx, func() bool { leader = c.Leader(sh.Group); return leader != 0 && c.RegionOf(leader) == "us-east" }); err != nil {
		t.Fatalf("no leader in the home region: %v", err)
	}
	// A node of eu-west without a replica: its nearest replica is the
	// eu-west voter, a follower.
	var from, follower uint64
	for _, id := range c.InRegion("eu-west") {
		if slices.Contains(sh.Replicas, id) {
			follower = id
		} else {
			from = id
		}
	}
	if from == 0 || follower == 0 {
		t.Fatalf("placement %v gives eu-west no replica-less node and a follower", sh.Replicas)
	}
	n := c.Node(from)
	for i := range 3 {
		a, err := n.Put(ctx, "f", []byte("k"), []byte{byte('a' + i)})
		if err != nil {
			t.Fatal(err)
		}
		if a.Node != leader || !a.Forwarded {
			t.Fatalf("write %d through node %d served by node %d (forwarded %v), want the leader %d", i, from, a.Node, a.Forwarded, leader)
		}
	}
	// A command that does not decode is refused with its code.
	resp, err := nodepb.NewNodeClient(n.Transport().Conn(follower)).Write(ctx, &nodepb.WriteRequest{Keyspace: "f", Group: sh.Group,
		Command: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError().GetCode() != nodepb.Code_BAD_COMMAND {
		t.Fatalf("a malformed command: %v", resp.GetError())
	}
	// A replica that is not the leader passes its own writes to the
	// leader (its raft status knows it).
	if a, err := c.Node(follower).Put(ctx, "f", []byte("k"), []byte("z")); err != nil || !a.Forwarded {
		t.Fatalf("a write at a follower: %+v, %v", a, err)
	}
}
