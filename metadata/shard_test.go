package metadata

import (
	"slices"
	"testing"
)

// TestShardGroups: a shard's data groups are its one group, or each of its
// region-local groups (the primary's among them), in order.
func TestShardGroups(t *testing.T) {
	one := Shard{Group: 7}
	if got := one.Groups(); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("a shard of one group: %v", got)
	}
	regional := Shard{Group: 8, Regional: []RegionalGroup{{Region: "a", Group: 8}, {Region: "b", Group: 9}}}
	if got := regional.Groups(); !slices.Equal(got, []uint64{8, 9}) {
		t.Fatalf("a shard of regional groups: %v", got)
	}
}
