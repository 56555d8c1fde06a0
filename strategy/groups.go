package strategy

import (
	"sync"

	"github.com/meridian-db/meridian/metadata"
)

// GroupIndex maps every data group of the metadata to what it is
// (GroupInfo). It is rebuilt when the metadata changes, so that the hot
// paths (a proposal's gate, closed timestamps) look a group up instead of
// scanning every keyspace and shard. The zero value is ready to use.
type GroupIndex struct {
	mu    sync.Mutex
	index uint64 // metadata index it was built from
	built bool
	m     map[uint64]GroupInfo
}

// Lookup returns what group id is, as of st.
func (gi *GroupIndex) Lookup(st *metadata.State, id uint64) (GroupInfo, bool) {
	gi.mu.Lock()
	defer gi.mu.Unlock()
	if !gi.built || gi.index != st.Index {
		gi.m = buildGroupIndex(st)
		gi.index, gi.built = st.Index, true
	}
	info, ok := gi.m[id]
	return info, ok
}

func buildGroupIndex(st *metadata.State) map[uint64]GroupInfo {
	m := map[uint64]GroupInfo{}
	for _, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			base := GroupInfo{Keyspace: ks.Name, Strategy: ks.Strategy, Shard: sh.Index}
			if len(sh.Regional) == 0 {
				base.Group = sh.Group
				m[sh.Group] = base
				continue
			}
			for _, rg := range sh.Regional {
				info := base
				info.Group, info.Region = rg.Group, rg.Region
				if ks.Strategy == metadata.Async && rg.Group == sh.Group {
					info.Primary, info.RPOBudgetMS = true, ks.RPOBudgetMS
				}
				m[rg.Group] = info
			}
		}
	}
	return m
}
