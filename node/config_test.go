package node_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/stream"
	"github.com/meridian-db/meridian/transport"
)

// TestConfigValidateNamesTheField: negative and contradictory settings
// are refused, each error naming the field it is about.
func TestConfigValidateNamesTheField(t *testing.T) {
	base := func() node.Config {
		return node.Config{ID: 1, Region: "us-east", DataDir: "/d", ListenAddr: "127.0.0.1:1",
			Peers: []transport.Peer{{ID: 1, Region: "us-east", Addr: "127.0.0.1:1"}}}
	}
	if c := base(); c.Validate() != nil {
		t.Fatalf("the base configuration is refused: %v", c.Validate())
	}
	for _, tc := range []struct {
		field string
		edit  func(c *node.Config)
	}{
		{"TickInterval", func(c *node.Config) { c.TickInterval = -time.Millisecond }},
		{"MinHeartbeatInterval", func(c *node.Config) { c.MinHeartbeatInterval = -time.Second }},
		{"RequestTimeout", func(c *node.Config) { c.RequestTimeout = -1 }},
		{"LeaderCheckInterval", func(c *node.Config) { c.LeaderCheckInterval = -1 }},
		{"LeaderHysteresis", func(c *node.Config) { c.LeaderHysteresis = -1 }},
		{"MaxClockOffset", func(c *node.Config) { c.MaxClockOffset = -1 }},
		{"PlacementWait", func(c *node.Config) { c.PlacementWait = -1 }},
		{"HealthCheckInterval", func(c *node.Config) { c.HealthCheckInterval = -1 }},
		{"MaxKeyBytes", func(c *node.Config) { c.MaxKeyBytes = -1 }},
		{"MaxValueBytes", func(c *node.Config) { c.MaxValueBytes = -5 }},
		{"MaxInflightMsgs", func(c *node.Config) { c.MaxInflightMsgs = -1 }},
		{"CacheBytes", func(c *node.Config) { c.CacheBytes = -1 }},
		{"MemTableBytes", func(c *node.Config) { c.MemTableBytes = -1 }},
		{"MemTableBytes", func(c *node.Config) { c.MemTableBytes = 64 << 10 }},
		{"MemTableBytes", func(c *node.Config) { c.MemTableBytes = 4 << 30 }},
		{"RowCacheBytes", func(c *node.Config) { c.RowCacheBytes = -2 }},
		{"StreamBatchInterval", func(c *node.Config) { c.StreamBatchInterval = -1 }},
		{"StreamMaxBatchBytes", func(c *node.Config) { c.StreamMaxBatchBytes = -1 }},
		{"StreamMaxInFlight", func(c *node.Config) { c.StreamMaxInFlight = -1 }},
		{"StreamHeartbeatInterval", func(c *node.Config) { c.StreamHeartbeatInterval = -1 }},
		{"StreamRetryBackoff", func(c *node.Config) { c.StreamRetryBackoff = -1 }},
		// Contradictions.
		{"MinHeartbeatInterval", func(c *node.Config) {
			c.TickInterval, c.MinHeartbeatInterval = 50*time.Millisecond, 20*time.Millisecond
		}},
		{"LeaderHysteresis", func(c *node.Config) { c.LeaderCheckInterval, c.LeaderHysteresis = 5*time.Second, time.Second }},
		{"StreamMaxBatchBytes", func(c *node.Config) { c.StreamMaxBatchBytes = stream.MaxEncodedBytes/2 + 1 }},
		{"MaxValueBytes", func(c *node.Config) { c.MaxValueBytes = stream.MaxEncodedBytes / 2 }},
		{"StreamHeartbeatInterval", func(c *node.Config) {
			c.StreamBatchInterval, c.StreamHeartbeatInterval = time.Second, 100*time.Millisecond
		}},
		{"MaxSizePerMsgBytes", func(c *node.Config) { c.MaxSizePerMsgBytes, c.MaxUncommittedBytes = 8<<20, 1<<20 }},
	} {
		c := base()
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, node.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
	}
}

// TestCacheBytesReachStorage: the node's CacheBytes, MemTableBytes and
// RowCacheBytes size its storage's block cache, memtables and row cache
// (-1: none); unset, the defaults do.
func TestCacheBytesReachStorage(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Regions: []string{"us-east", "eu-west", "ap-southeast"},
		Tune: func(id uint64, cfg *node.Config) {
			switch id {
			case 1:
				cfg.CacheBytes = 24 << 20
				cfg.MemTableBytes = 8 << 20
				cfg.RowCacheBytes = 4 << 20
			case 3:
				cfg.RowCacheBytes = -1
			}
		}})
	if got := c.Node(1).Storage().CacheBytes(); got != 24<<20 {
		t.Fatalf("node 1's block cache holds %d bytes, want %d (its CacheBytes)", got, 24<<20)
	}
	if got := c.Node(2).Storage().CacheBytes(); got != node.DefaultCacheBytes {
		t.Fatalf("node 2's block cache holds %d bytes, want the default %d", got, node.DefaultCacheBytes)
	}
	if got := c.Node(1).Storage().MemTableBytes(); got != 8<<20 {
		t.Fatalf("node 1's memtables grow to %d bytes, want %d (its MemTableBytes)", got, 8<<20)
	}
	if got := c.Node(2).Storage().MemTableBytes(); got != node.DefaultMemTableBytes {
		t.Fatalf("node 2's memtables grow to %d bytes, want the default %d", got, node.DefaultMemTableBytes)
	}
	for id, want := range map[uint64]int64{1: 4 << 20, 2: node.DefaultRowCacheBytes, 3: 0} {
		if got := c.Node(id).Storage().RowCacheStats().Capacity; got != want {
			t.Fatalf("node %d's row cache holds up to %d bytes, want %d", id, got, want)
		}
	}
}
