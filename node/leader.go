package node

import (
	"context"
	"time"

	"github.com/meridian-db/meridian/metadata"
)

// leaderLoop keeps each group's leader in its preferred region: a leader
// elsewhere hands leadership to a healthy, caught-up voter of the home
// region once one has been so for LeaderHysteresis. Without this, leaders
// stay wherever the last failure left them.
func (n *Node) leaderLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.LeaderCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.checkLeaders()
		}
	}
}

func (n *Node) checkLeaders() {
	st := n.meta.State()
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ks := range st.Keyspaces {
		if ks.Strategy != metadata.Sync || ks.HomeRegion == n.cfg.Region {
			continue
		}
		for _, sh := range ks.Shards {
			target := n.betterLeader(st, ks.HomeRegion, sh.Group)
			if target == 0 {
				delete(n.eligibleAt, sh.Group)
				continue
			}
			since, ok := n.eligibleAt[sh.Group]
			if !ok {
				n.eligibleAt[sh.Group] = now
				continue
			}
			if now.Sub(since) >= n.cfg.LeaderHysteresis {
				delete(n.eligibleAt, sh.Group)
				n.log.Info("moving leader back to its home region", "keyspace", ks.Name, "group", sh.Group, "to", target, "home", ks.HomeRegion)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = n.host.TransferLeader(ctx, sh.Group, target)
				cancel()
			}
		}
	}
}

// betterLeader returns a voter in the home region that is active and fully
// caught up, if this node leads the group from elsewhere; otherwise 0.
func (n *Node) betterLeader(st *metadata.State, home string, group uint64) uint64 {
	if n.host.Leader(group) != n.cfg.ID {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	gs, err := n.host.FreshStatus(ctx, group)
	if err != nil || gs.Lead != n.cfg.ID || gs.Match == nil {
		return 0
	}
	for _, id := range gs.Voters {
		if id == n.cfg.ID || st.Nodes[id].Region != home {
			continue
		}
		// Caught up, and reachable now (a fresh ping): never hand the
		// leadership to a replica that cannot take it, since proposals
		// pause while a transfer is under way.
		if gs.Match[id] >= gs.Commit && n.tr.Healthy(id) {
			return id
		}
	}
	return 0
}
