package asyncks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/strategy"
)

// The roles of region-local groups.
//
// The metadata says which region is each async keyspace's primary and at
// which epoch; every region-local group records its own role (kv.Role),
// changed only through its raft log. The role loop brings the two
// together: a new group gets its role at once from the leader of the
// group; a group whose role is older than the metadata epoch for a while
// (a coordinator that died half way) is brought up to date the same way,
// a former primary only after its lost writes are reported. Switchover
// and failover (switchover.go) install the roles themselves.

// roleGrace is how long a group's role may lag the metadata epoch before
// the role loop fixes it (the coordinator normally does it first).
const roleGrace = 3 * time.Second

type roleState struct {
	mu     sync.Mutex
	behind map[uint64]time.Time // group -> when first seen behind
}

func (s *Strategy) roleLoop(stop <-chan struct{}) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.reconcileRoles()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// reconcileRoles gives the groups this node leads the role the metadata
// says they have.
func (s *Strategy) reconcileRoles() {
	now := time.Now()
	rs := &s.roles
	rs.mu.Lock()
	if rs.behind == nil {
		rs.behind = map[uint64]time.Time{}
	}
	rs.mu.Unlock()
	host, me := s.env.Host(), s.env.ID()
	for _, ks := range s.env.Meta().State().Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			for _, rg := range sh.Regional {
				if host.Leader(rg.Group) != me {
					continue
				}
				role, err := kv.LoadRole(s.env.DB(), rg.Group)
				if err != nil || role.Epoch >= ks.Epoch {
					rs.mu.Lock()
					delete(rs.behind, rg.Group)
					rs.mu.Unlock()
					continue
				}
				if role.Epoch > 0 && !(role.Primary && forkPending(ks, rg.Group, role.Epoch)) {
					// (A former primary with a fork to report is this
					// node's to handle: no coordinator will.)
					rs.mu.Lock()
					first, ok := rs.behind[rg.Group]
					if !ok {
						rs.behind[rg.Group] = now
					}
					rs.mu.Unlock()
					if !ok || now.Sub(first) < roleGrace {
						continue
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := s.catchUpRole(ctx, ks, sh, rg, role); err != nil {
					s.env.Logger().Warn("cannot update a group's role", "keyspace", ks.Name, "group", rg.Group, "err", err)
				}
				cancel()
			}
		}
	}
}

// forkPending reports whether a failover cut group's history at or after
// epoch and the group has not reported what it lost yet.
func forkPending(ks *metadata.Keyspace, group, epoch uint64) bool {
	for _, f := range ks.Forks {
		if f.Group == group && f.Epoch >= epoch && !f.Reported {
			return true
		}
	}
	return false
}

// catchUpRole installs the metadata's role in a group whose role is older.
func (s *Strategy) catchUpRole(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, rg metadata.RegionalGroup, cur kv.Role) error {
	primary := rg.Group == sh.Group
	if cur.Primary && !primary {
		// A former primary: fence it (clients with an old view of the
		// metadata could still be writing to it), then report what it has
		// that the new primary lacks before it takes the new primary's
		// data.
		if !cur.Fenced {
			if _, err := s.proposeRole(ctx, rg, kv.Role{Epoch: cur.Epoch, Primary: true, Fenced: true}, 0, 0, 0); err != nil {
				return err
			}
		}
		for _, f := range ks.Forks {
			if f.Group == rg.Group && f.Epoch >= cur.Epoch && !f.Reported {
				if err := s.reportLostWrites(ctx, ks, f); err != nil {
					return err
				}
			}
		}
	}
	s.env.Logger().Info("installing role", "keyspace", ks.Name, "group", rg.Group, "epoch", ks.Epoch, "primary", primary)
	_, err := s.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch, Primary: primary}, 0, 0, 0)
	return err
}

// proposeRole runs an OpRole command through a group and returns its
// result and log index.
func (s *Strategy) proposeRole(ctx context.Context, rg metadata.RegionalGroup, r kv.Role, watch, initSrc, initIdx uint64) (strategy.Proposal, error) {
	p, err := s.env.ProposeIn(ctx, rg, kv.RoleCommand(r, watch, initSrc, initIdx).Encode())
	if res, _ := p.Value.(kv.Result); err == nil && res.Err != nil {
		err = res.Err
	}
	return p, err
}

// reportLostWrites records, in the metadata, every write the group (a
// former primary, led by this node) applied after the fork point.
func (s *Strategy) reportLostWrites(ctx context.Context, ks *metadata.Keyspace, f metadata.Fork) error {
	host := s.env.Host()
	st, ok := host.Status(f.Group)
	if !ok {
		return fmt.Errorf("group %d not hosted", f.Group)
	}
	history, err := kv.RoleHistory(s.env.DB(), f.Group)
	if err != nil {
		return err
	}
	var lost []metadata.LostWrite
	send := func(final bool) error {
		cmd := metadata.Command{Op: "lost_writes", Lost: &metadata.LostWrites{Keyspace: ks.Name, Epoch: f.Epoch, Group: f.Group, Writes: lost, Final: final}}
		p, err := s.env.Propose(ctx, metadata.SystemGroup, cmd.Encode())
		if err == nil {
			if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
				err = res.Err
			}
		}
		lost = lost[:0]
		return err
	}
	for from := f.Index; from < st.Applied; {
		ents, err := host.ReadCommitted(f.Group, from, st.Applied, 1<<20)
		if err != nil {
			return fmt.Errorf("reading the log after the fork point %d: %w", f.Index, err)
		}
		for _, e := range ents {
			from = e.Index
			if len(e.Command) == 0 {
				continue
			}
			c, err := kv.DecodeCommand(e.Command)
			if err != nil || c.Epoch == 0 || len(c.Args) == 0 || !c.Op.Data() || !kv.Admitted(history, e.Index, c) {
				continue // not a client write, or one the group refused
			}
			lost = append(lost, metadata.LostWrite{
				Keyspace: ks.Name, Epoch: c.Epoch, Shard: f.Shard, Group: f.Group, Region: f.Region,
				Index: e.Index, TimeMS: c.NowMS, Op: c.Op.String(), Key: slices.Clone(c.Args[0]), Args: cloneArgs(c.Args[1:]),
			})
			if len(lost) >= 256 {
				if err := send(false); err != nil {
					return err
				}
			}
		}
	}
	s.env.Logger().Warn("reporting lost writes of a former primary", "keyspace", ks.Name, "group", f.Group, "fork", f.Index, "applied", st.Applied)
	return send(true)
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = slices.Clone(a)
	}
	return out
}

// LostWrites returns a keyspace's lost-writes report, as recorded in this
// node's copy of the metadata (see metadata.Store.LostReport).
func (s *Strategy) LostWrites(keyspace string) (metadata.LostReport, error) {
	return s.env.Meta().LostReport(keyspace)
}
