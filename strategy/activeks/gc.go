package activeks

import (
	"context"
	"fmt"
	"time"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
)

// How often an active group's leader reports what its region has seen,
// and how often it collects tombstones (kv/gc.go).
const (
	KnowInterval = time.Second
	GCEvery      = 5 // collections run every GCEvery reports
)

// gcLoop has the leader of every active group report its region's
// knowledge and, from time to time, collect the tombstones every region
// has seen.
func (s *Strategy) gcLoop(stop <-chan struct{}) {
	t := time.NewTicker(KnowInterval)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for _, ks := range s.env.Meta().State().Keyspaces {
			if ks.Strategy != metadata.Active {
				continue
			}
			for _, sh := range ks.Shards {
				rg, ok := sh.RegionalIn(s.env.Region())
				if !ok || s.env.Host().Leader(rg.Group) != s.env.ID() {
					continue
				}
				seen, err := s.regionKnowledge(sh, rg)
				if err != nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				now := s.env.Now().UnixMilli()
				if _, err := s.env.Propose(ctx, rg.Group, kv.KnowCommand(rg.Region, seen, now).Encode()); err != nil {
					s.env.Logger().Debug("cannot report knowledge", "group", rg.Group, "err", err)
				} else if round%GCEvery == 0 {
					p, err := s.env.Propose(ctx, rg.Group, kv.GCCommand(ks.Regions, now).Encode())
					if res, _ := p.Value.(kv.Result); err == nil && res.N > 0 {
						s.env.Logger().Debug("tombstones collected", "keyspace", ks.Name, "group", rg.Group, "count", res.N)
					}
				}
				cancel()
			}
		}
	}
}

// regionKnowledge is what this region's group has applied of each
// region's writes: its own log up to its applied index, and each other
// region's up to its stream cursor.
func (s *Strategy) regionKnowledge(sh metadata.Shard, local metadata.RegionalGroup) (crdt.VersionVector, error) {
	st, ok := s.env.Host().Status(local.Group)
	if !ok {
		return nil, fmt.Errorf("group %d not hosted", local.Group)
	}
	seen := crdt.VersionVector{local.Region: st.Applied}
	for _, rg := range sh.Regional {
		if rg.Group == local.Group {
			continue
		}
		c, _, err := s.env.DB().Cursor(local.Group, rg.Group)
		if err != nil {
			return nil, err
		}
		seen[rg.Region] = c.Index
	}
	return seen, nil
}
