package syncks

import (
	"context"
	"time"

	"github.com/meridian-db/meridian/metadata"
)

// leaderLoop keeps each group's leader in its preferred region: a leader
// elsewhere hands leadership to a healthy, caught-up voter of the home
// region once one has been so for LeaderHysteresis. Without this, leaders
// stay wherever the last failure left them.
func (s *Strategy) leaderLoop(stop <-chan struct{}) {
	t := time.NewTicker(s.env.Settings().LeaderCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.checkLeaders()
		}
	}
}

func (s *Strategy) checkLeaders() {
	st := s.env.Meta().State()
	now := time.Now()
	region, hysteresis := s.env.Region(), s.env.Settings().LeaderHysteresis
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ks := range st.Keyspaces {
		if ks.Strategy != metadata.Sync || ks.HomeRegion == region {
			continue
		}
		for _, sh := range ks.Shards {
			target := s.betterLeader(st, ks.HomeRegion, sh.Group)
			if target == 0 {
				delete(s.eligibleAt, sh.Group)
				continue
			}
			since, ok := s.eligibleAt[sh.Group]
			if !ok {
				s.eligibleAt[sh.Group] = now
				continue
			}
			if now.Sub(since) >= hysteresis {
				delete(s.eligibleAt, sh.Group)
				s.env.Logger().Info("moving leader back to its home region", "keyspace", ks.Name, "group", sh.Group, "to", target, "home", ks.HomeRegion)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = s.env.Host().TransferLeader(ctx, sh.Group, target)
				cancel()
			}
		}
	}
}

// betterLeader returns a voter in the home region that is active and fully
// caught up, if this node leads the group from elsewhere; otherwise 0.
func (s *Strategy) betterLeader(st *metadata.State, home string, group uint64) uint64 {
	host, me := s.env.Host(), s.env.ID()
	if host.Leader(group) != me {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gs, err := host.FreshStatus(ctx, group)
	if err != nil || gs.Lead != me || gs.Match == nil {
		return 0
	}
	for _, id := range gs.Voters {
		if id == me || st.Nodes[id].Region != home {
			continue
		}
		// Caught up, and reachable now (a fresh ping): never hand the
		// leadership to a replica that cannot take it, since proposals
		// pause while a transfer is under way.
		if gs.Match[id] >= gs.Commit && s.env.Transport().Healthy(id) {
			return id
		}
	}
	return 0
}
