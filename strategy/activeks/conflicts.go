package activeks

import (
	"fmt"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/strategy"
)

// Conflict is one conflict of an active keyspace, as recorded by the
// group of one region.
type Conflict struct {
	Shard  int    `json:"shard"`
	Group  uint64 `json:"group"`
	Region string `json:"region"`
	kv.LedgerEntry
}

// ConflictQuery selects conflicts. After holds, per group, the Seq of the
// last entry already seen (follow mode: pass back ConflictPage.After).
type ConflictQuery struct {
	Key     []byte            `json:"key,omitempty"`
	SinceMS int64             `json:"since_ms,omitempty"`
	After   map[uint64]uint64 `json:"after,omitempty"`
	Limit   int               `json:"limit,omitempty"`
}

// ConflictPage is an answer to Conflicts.
type ConflictPage struct {
	Conflicts []Conflict `json:"conflicts"`
	// After is where to continue from.
	After map[uint64]uint64 `json:"after"`
	// Recorded counts every conflict ever recorded by the groups read.
	Recorded uint64 `json:"recorded"`
}

// Conflicts reads the conflict ledger of an active keyspace as this
// node's region recorded it (every region records the conflicts it
// detects; entries with the same ID in several regions are one conflict).
func (s *Strategy) Conflicts(keyspace string, q ConflictQuery) (ConflictPage, error) {
	ks, err := s.env.Meta().Keyspace(keyspace)
	if err != nil {
		return ConflictPage{}, err
	}
	if ks.Strategy != metadata.Active {
		return ConflictPage{}, fmt.Errorf("%w: keyspace %q is %s; only active keyspaces have conflicts", metadata.ErrInvalidSpec, ks.Name, ks.Strategy)
	}
	page := ConflictPage{Conflicts: []Conflict{}, After: map[uint64]uint64{}}
	held := 0
	for _, sh := range ks.Shards {
		rg, ok := strategy.LocalGroup(sh, s.env.Region(), s.env.ID())
		if !ok {
			continue
		}
		held++
		after := q.After[rg.Group]
		entries, err := kv.ReadLedger(s.env.DB(), rg.Group, kv.LedgerQuery{AfterSeq: after, SinceMS: q.SinceMS, Key: q.Key, Limit: q.Limit})
		if err != nil {
			return ConflictPage{}, err
		}
		for _, e := range entries {
			page.Conflicts = append(page.Conflicts, Conflict{Shard: sh.Index, Group: rg.Group, Region: rg.Region, LedgerEntry: e})
			after = max(after, e.Seq)
		}
		page.After[rg.Group] = after
		info, err := kv.LedgerInfo(s.env.DB(), rg.Group)
		if err != nil {
			return ConflictPage{}, err
		}
		page.Recorded += info.Recorded
	}
	if held == 0 {
		return ConflictPage{}, fmt.Errorf("%w: node %d holds no replica of keyspace %q; ask a node in one of its regions %v", strategy.ErrNoReplica, s.env.ID(), ks.Name, ks.Regions)
	}
	return page, nil
}

// Tombstones counts the deleted keys of an active keyspace that this
// node's region still keeps (until every region has seen the delete).
func (s *Strategy) Tombstones(keyspace string) (int, error) {
	ks, err := s.env.Meta().Keyspace(keyspace)
	if err != nil {
		return 0, err
	}
	count := 0
	for _, sh := range ks.Shards {
		rg, ok := strategy.LocalGroup(sh, s.env.Region(), s.env.ID())
		if !ok {
			continue
		}
		err := s.env.DB().Scan(rg.Group, nil, nil, func(_, v []byte) bool {
			if rec, err := kv.DecodeRecord(v); err == nil && rec.Type == kv.TypeActive {
				if _, live, err := kv.ActiveValueOf(rec); err == nil && !live {
					count++
				}
			}
			return true
		})
		if err != nil {
			return 0, err
		}
	}
	return count, nil
}
