package metadata

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func worldRTT(a, b string) time.Duration {
	m := map[[2]string]time.Duration{
		{"us-east", "eu-west"}: 81, {"us-east", "us-west"}: 87, {"us-east", "ap-southeast"}: 217,
		{"us-east", "sa-east"}: 120, {"eu-west", "ap-southeast"}: 239, {"us-west", "ap-southeast"}: 161,
	}
	if d, ok := m[[2]string{a, b}]; ok {
		return d * time.Millisecond
	}
	return m[[2]string{b, a}] * time.Millisecond
}

func nodes(perRegion int, regions ...string) []NodeInfo {
	var out []NodeInfo
	id := uint64(1)
	for _, r := range regions {
		for range perRegion {
			out = append(out, NodeInfo{ID: id, Region: r})
			id++
		}
	}
	return out
}

func TestPlaceSync(t *testing.T) {
	ns := nodes(2, "us-east", "eu-west", "ap-southeast", "us-west", "sa-east")
	regionOf := map[uint64]string{}
	for _, n := range ns {
		regionOf[n.ID] = n.Region
	}
	all := []string{"us-east", "eu-west", "ap-southeast", "us-west", "sa-east"}
	spec, err := KeyspaceSpec{Name: "k", Replicas: 5, HomeRegion: "us-east"}.Normalize(all)
	if err != nil {
		t.Fatal(err)
	}
	v, err := PlaceSync(spec, ns, worldRTT, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, id := range v {
		count[regionOf[id]]++
	}
	// 2 in the home region, 2 in the nearest (eu-west, 81 ms), 1 next (us-west, 87 ms).
	if count["us-east"] != 2 || count["eu-west"] != 2 || count["us-west"] != 1 || regionOf[v[0]] != "us-east" {
		t.Fatalf("5 voters placed %v (%v)", v, count)
	}
	spec3, _ := KeyspaceSpec{Name: "k", HomeRegion: "eu-west", Regions: []string{"us-east", "eu-west", "ap-southeast"}}.Normalize(all)
	a, _ := PlaceSync(spec3, ns, worldRTT, 0)
	b, _ := PlaceSync(spec3, ns, worldRTT, 1)
	if len(a) != 3 || regionOf[a[0]] != "eu-west" || slices.Equal(a, b) {
		t.Fatalf("3 voters: shard 0 %v, shard 1 %v: want the home region first and shards spread over nodes", a, b)
	}
	spec2, _ := KeyspaceSpec{Name: "k", Regions: []string{"us-east", "eu-west"}}.Normalize(all)
	if _, err := PlaceSync(spec2, ns, worldRTT, 0); !errors.Is(err, ErrPlacement) {
		t.Fatalf("two regions: %v, want ErrPlacement", err)
	}
}

func TestNormalizeErrors(t *testing.T) {
	regions := []string{"a", "b", "c"}
	for _, s := range []KeyspaceSpec{
		{Name: ""}, {Name: "bad name"}, {Name: "k", Strategy: "quorum"},
		{Name: "k", Regions: []string{"zz"}}, {Name: "k", Regions: []string{"a", "a"}},
		{Name: "k", HomeRegion: "zz"}, {Name: "k", Shards: -1}, {Name: "k", Shards: 100000}, {Name: "k", Replicas: 9},
	} {
		if _, err := s.Normalize(regions); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%+v: %v, want ErrInvalidSpec", s, err)
		}
	}
}
