package metadata

import (
	"fmt"
	"testing"
)

// TestLostReportWhileReportFinishes: a failover's lost-writes report
// arrives in several commands, the last one marking its fork reported. A
// reader of the report that races the last command must never see the
// fork reported with writes missing. The race is forced: the last
// command is applied between the reader's two reads.
func TestLostReportWhileReportFinishes(t *testing.T) {
	s, db := openStore(t)
	apply := func(c Command) {
		t.Helper()
		if res := applyAll(t, s, db, c)[0]; res.Err != nil {
			t.Fatalf("%s: %v", c.Op, res.Err)
		}
	}
	apply(Command{Op: "add_node", Node: &NodeInfo{ID: 1, Region: "a"}})
	apply(Command{Op: "add_node", Node: &NodeInfo{ID: 2, Region: "b"}})
	apply(Command{Op: "create_keyspace", Keyspace: &Keyspace{
		KeyspaceSpec: KeyspaceSpec{Name: "k", Strategy: Async, Regions: []string{"a", "b"}, HomeRegion: "a", Shards: 1},
		Shards: []Shard{{Replicas: []uint64{1}, Regional: []RegionalGroup{
			{Region: "a", Replicas: []uint64{1}}, {Region: "b", Replicas: []uint64{2}},
		}}},
	}})
	ks := s.State().Keyspaces["k"]
	old := ks.Shards[0].Group
	apply(Command{Op: "switch_primary", Switch: &SwitchPrimary{Keyspace: "k", FromEpoch: 1, ToRegion: "b",
		Forks: []Fork{{Epoch: 2, Group: old, Region: "a", Index: 10}}}})
	writes := func(from, n int) []LostWrite {
		var out []LostWrite
		for i := from; i < from+n; i++ {
			out = append(out, LostWrite{Keyspace: "k", Epoch: 1, Group: old, Region: "a", Index: uint64(10 + i), Op: "set", Key: fmt.Appendf(nil, "k%d", i)})
		}
		return out
	}
	apply(Command{Op: "lost_writes", Lost: &LostWrites{Keyspace: "k", Epoch: 2, Group: old, Writes: writes(1, 3)}})

	lostReportRead = func() {
		lostReportRead = nil
		apply(Command{Op: "lost_writes", Lost: &LostWrites{Keyspace: "k", Epoch: 2, Group: old, Writes: writes(4, 2), Final: true}})
	}
	defer func() { lostReportRead = nil }()
	consistent := func(r LostReport) {
		t.Helper()
		for _, f := range r.Forks {
			n := 0
			for _, w := range r.Writes {
				if w.Epoch < f.Epoch && w.Group == f.Group {
					n++
				}
			}
			if f.Reported && n != f.LostWrites {
				t.Fatalf("fork %+v is reported with %d writes, the report has %d", f, f.LostWrites, n)
			}
		}
	}
	r, err := s.LostReport("k")
	if err != nil {
		t.Fatal(err)
	}
	consistent(r)
	if lostReportRead != nil {
		t.Fatal("the report was not read in two steps")
	}
	r, err = s.LostReport("k")
	if err != nil {
		t.Fatal(err)
	}
	consistent(r)
	if len(r.Forks) != 1 || !r.Forks[0].Reported || len(r.Writes) != 5 {
		t.Fatalf("the finished report: %+v", r)
	}
	if _, err := s.LostReport("nope"); err == nil {
		t.Fatal("the report of a keyspace that does not exist")
	}
}
