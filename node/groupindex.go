package node

import (
	"sync"

	"github.com/meridian-db/meridian/metadata"
)

// groupInfo says what a data group is: the keyspace and shard it holds,
// and for async keyspaces whether it is the shard's primary group as the
// metadata says.
type groupInfo struct {
	keyspace string
	strategy metadata.Strategy
	shard    int
	region   string
	primary  bool
	// rpoBudgetMS is the keyspace's RPO budget (async primaries only).
	rpoBudgetMS int64
}

// groupIndex maps every data group of the metadata to what it is. It is
// rebuilt when the metadata changes, so the hot paths (a proposal's RPO
// and lease gate, closed timestamps) look a group up instead of scanning
// every keyspace and shard.
type groupIndex struct {
	mu    sync.Mutex
	index uint64 // metadata index it was built from
	built bool
	m     map[uint64]groupInfo
}

// group returns what a group is, as of the current metadata.
func (n *Node) group(id uint64) (groupInfo, bool) {
	st := n.meta.State()
	gi := &n.groups
	gi.mu.Lock()
	defer gi.mu.Unlock()
	if !gi.built || gi.index != st.Index {
		gi.m = buildGroupIndex(st)
		gi.index, gi.built = st.Index, true
	}
	info, ok := gi.m[id]
	return info, ok
}

func buildGroupIndex(st *metadata.State) map[uint64]groupInfo {
	m := map[uint64]groupInfo{}
	for _, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			base := groupInfo{keyspace: ks.Name, strategy: ks.Strategy, shard: sh.Index}
			if len(sh.Regional) == 0 {
				m[sh.Group] = base
				continue
			}
			for _, rg := range sh.Regional {
				info := base
				info.region = rg.Region
				if ks.Strategy == metadata.Async && rg.Group == sh.Group {
					info.primary, info.rpoBudgetMS = true, ks.RPOBudgetMS
				}
				m[rg.Group] = info
			}
		}
	}
	return m
}
