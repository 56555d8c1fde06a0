package node_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// TestTimingsRefusedAtJoinAndStart: the cluster records its lease-critical
// timings when it forms; a node whose own differ is refused when it asks
// to join, and refused at start (its data holds the cluster's timings),
// with an error naming the setting, its value and the cluster's.
func TestTimingsRefusedAtJoinAndStart(t *testing.T) {
	var slowHeartbeat atomic.Bool
	c := testcluster.New(t, testcluster.Options{Tune: func(id uint64, cfg *node.Config) {
		if id == 3 && slowHeartbeat.Load() {
			cfg.MinHeartbeatInterval = 100 * time.Millisecond // the cluster's is 50ms
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := c.Node(1).Timings()
	if want.TickInterval != 5*time.Millisecond || want.MinHeartbeatInterval != 50*time.Millisecond || want.MinElectionTimeout != 500*time.Millisecond {
		t.Fatalf("node 1 runs with %+v, want the test cluster's 5ms tick, 50ms heartbeat, 500ms election timeout", want)
	}
	for _, n := range c.Running() {
		if err := c.WaitFor(ctx, func() bool { got, ok := n.ClusterTimings(); return ok && got == want }); err != nil {
			got, _ := n.ClusterTimings()
			t.Fatalf("node %d: cluster timings %+v, want %+v", n.ID(), got, want)
		}
	}

	// At join: a node ticking every 10ms is refused, named; one with the
	// cluster's timings is admitted.
	other := want
	other.TickInterval, other.MinElectionTimeout = 10*time.Millisecond, 500*time.Millisecond
	err := c.Node(2).Admit(ctx, metadata.NodeInfo{ID: 9, Region: "us-east", Addr: "127.0.0.1:1"}, &other)
	if !errors.Is(err, metadata.ErrTimingsDiffer) || node.ErrorCode(err) != "timings_differ" ||
		!strings.Contains(err.Error(), "timings.tick_interval is 10ms on this node but 5ms in the cluster") {
		t.Fatalf("join with another tick: %v, want ErrTimingsDiffer naming timings.tick_interval", err)
	}
	if _, ok := c.Node(1).Metadata().Nodes[9]; ok {
		t.Fatal("the refused node was recorded")
	}
	if err := c.Node(2).Admit(ctx, metadata.NodeInfo{ID: 9, Region: "us-east", Addr: "127.0.0.1:1"}, &want); err != nil {
		t.Fatalf("join with the cluster's timings: %v", err)
	}

	// At start: node 3 restarted with a 100ms heartbeat is refused.
	c.Kill(3)
	slowHeartbeat.Store(true)
	err = c.TryRestart(3)
	if !errors.Is(err, metadata.ErrTimingsDiffer) || !strings.Contains(err.Error(), "timings.min_heartbeat_interval is 100ms on this node but 50ms in the cluster") {
		t.Fatalf("restart with another heartbeat: %v, want ErrTimingsDiffer naming timings.min_heartbeat_interval", err)
	}
	t.Logf("refused at start: %v", err)
	// With the cluster's timings it starts again.
	slowHeartbeat.Store(false)
	c.Restart(3)
	if err := c.Node(3).WaitReady(ctx); err != nil {
		t.Fatalf("node 3 with the cluster's timings: %v", err)
	}
}

// TestTimingsLateInitialMemberStops: an initial member that starts late,
// with nothing on disk, learns the cluster's timings from the metadata and
// stops (Fatal) when its own differ.
func TestTimingsLateInitialMemberStops(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Held: []uint64{3}, Tune: func(id uint64, cfg *node.Config) {
		if id == 3 {
			cfg.TickInterval = 10 * time.Millisecond // the cluster's is 5ms
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func() bool { _, ok := c.Node(1).ClusterTimings(); return ok }); err != nil {
		t.Fatal("the cluster never recorded its timings")
	}
	if err := c.TryRestart(3); err != nil {
		t.Fatalf("node 3 has nothing on disk yet, so it starts: %v", err)
	}
	select {
	case err := <-c.Node(3).Fatal():
		if !errors.Is(err, metadata.ErrTimingsDiffer) || !strings.Contains(err.Error(), "timings.tick_interval is 10ms on this node but 5ms in the cluster") {
			t.Fatalf("node 3 stopped with %v, want ErrTimingsDiffer naming timings.tick_interval", err)
		}
		t.Logf("node 3 stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("node 3 runs with timings other than the cluster's")
	}
}
