package strategy

import (
	"testing"

	"github.com/meridian-db/meridian/metadata"
)

// TestGroupIndex: every data group maps to its keyspace, shard, region
// and, for an async primary, the RPO budget; the index follows the
// metadata's index.
func TestGroupIndex(t *testing.T) {
	st := &metadata.State{Index: 7, Keyspaces: map[string]*metadata.Keyspace{
		"s": {KeyspaceSpec: metadata.KeyspaceSpec{Name: "s", Strategy: metadata.Sync}, Shards: []metadata.Shard{{Index: 0, Group: 100}}},
		"a": {KeyspaceSpec: metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Async, RPOBudgetMS: 500}, Shards: []metadata.Shard{{Index: 1, Group: 101,
			Regional: []metadata.RegionalGroup{{Region: "x", Group: 101}, {Region: "y", Group: 102}}}}},
		"c": {KeyspaceSpec: metadata.KeyspaceSpec{Name: "c", Strategy: metadata.Active}, Shards: []metadata.Shard{{Index: 0, Group: 103,
			Regional: []metadata.RegionalGroup{{Region: "x", Group: 103}, {Region: "y", Group: 104}}}}},
	}}
	var gi GroupIndex
	want := map[uint64]GroupInfo{
		100: {Group: 100, Keyspace: "s", Strategy: metadata.Sync},
		101: {Group: 101, Keyspace: "a", Strategy: metadata.Async, Shard: 1, Region: "x", Primary: true, RPOBudgetMS: 500},
		102: {Group: 102, Keyspace: "a", Strategy: metadata.Async, Shard: 1, Region: "y"},
		103: {Group: 103, Keyspace: "c", Strategy: metadata.Active, Region: "x"},
		104: {Group: 104, Keyspace: "c", Strategy: metadata.Active, Region: "y"},
	}
	for id, w := range want {
		if got, ok := gi.Lookup(st, id); !ok || got != w {
			t.Errorf("group %d: %+v %v, want %+v", id, got, ok, w)
		}
	}
	if _, ok := gi.Lookup(st, 1); ok {
		t.Error("the system group is a data group")
	}
	// A later metadata index rebuilds it.
	st2 := &metadata.State{Index: 8, Keyspaces: map[string]*metadata.Keyspace{}}
	if _, ok := gi.Lookup(st2, 100); ok {
		t.Error("a removed keyspace's group is still indexed")
	}
}
