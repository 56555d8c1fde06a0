package asyncks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/strategy"
)

// Switchover and failover.
//
//   - Switchover: fence the old primary (it refuses writes from then on),
//     wait until the target region has everything up to the fence, switch
//     the metadata (epoch+1), install the new primary's role, then tell
//     every replica that has drained where the new primary's stream starts
//     for it (a replica that has not drained is resynced).
//   - Failover: install the new primary's role first (which also stops
//     the old primary's stream into it and returns how far it got: the
//     fork point), switch the metadata with the fork points, and give the
//     other replicas the new epoch (they are resynced). The old primary,
//     when it returns, finds the fork in the metadata, reports every write
//     after the fork point as lost, and becomes a replica (roles.go).

// SwitchoverResult describes a finished switchover.
type SwitchoverResult struct {
	Keyspace string `json:"keyspace"`
	From     string `json:"from"`
	To       string `json:"to"`
	Epoch    uint64 `json:"epoch"`
	// FencedMS is how long writes were refused (fence to new primary).
	FencedMS float64 `json:"fenced_ms"`
	// DrainMS is the part of it spent waiting for the target to catch up.
	DrainMS float64 `json:"drain_ms"`
	// Resynced lists regions that had not caught up and are resynced.
	Resynced []string `json:"resynced,omitempty"`
}

// Switchover moves an async keyspace's primary to another region without
// losing a write: the old primary is fenced, the target drained, the
// epoch bumped. Writes are refused (and retried by the nodes) meanwhile.
func (s *Strategy) Switchover(ctx context.Context, keyspace, to string) (SwitchoverResult, error) {
	ctx, cancel := strategy.WithTimeout(ctx, s.env.Settings().RequestTimeout)
	defer cancel()
	ks, err := s.env.Meta().Keyspace(keyspace)
	if err != nil {
		return SwitchoverResult{}, err
	}
	if err := checkTarget(ks, to); err != nil {
		return SwitchoverResult{}, err
	}
	res := SwitchoverResult{Keyspace: ks.Name, From: ks.HomeRegion, To: to, Epoch: ks.Epoch + 1}
	start := time.Now()
	fence := make([]uint64, len(ks.Shards))
	old := make([]metadata.RegionalGroup, len(ks.Shards))
	for i, sh := range ks.Shards {
		old[i], _ = sh.RegionalIn(ks.HomeRegion)
	}
	// Every step runs for all shards (and regions) at once: each is a
	// round trip to another region.
	err = parallel(len(ks.Shards), func(i int) error {
		p, err := s.proposeRole(ctx, old[i], kv.Role{Epoch: ks.Epoch, Primary: true, Fenced: true}, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("fencing shard %d: %w", i, err)
		}
		fence[i] = p.Index
		return nil
	})
	if err != nil {
		s.unfence(ks, old)
		return res, err
	}
	// Drain: the target must catch up with every fence; the other regions
	// keep their data if they catch up while the target does (or within
	// drainGrace), and are resynced otherwise.
	drainStart := time.Now()
	var others []string
	for _, r := range ks.Regions {
		if r != ks.HomeRegion && r != to {
			others = append(others, r)
		}
	}
	targetDone := make(chan struct{})
	otherOK := make([]bool, len(others))
	var wg sync.WaitGroup
	for j, r := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-targetDone:
					select {
					case <-time.After(time.Until(drainStart.Add(drainGrace))):
					case <-wctx.Done():
					}
				case <-wctx.Done():
				}
				cancel()
			}()
			otherOK[j] = parallel(len(ks.Shards), func(i int) error {
				rg, _ := ks.Shards[i].RegionalIn(r)
				return s.waitCursor(wctx, rg, old[i].Group, fence[i])
			}) == nil
		}()
	}
	err = parallel(len(ks.Shards), func(i int) error {
		rg, _ := ks.Shards[i].RegionalIn(to)
		if err := s.waitCursor(ctx, rg, old[i].Group, fence[i]); err != nil {
			return fmt.Errorf("%w: region %s, shard %d: %w", ErrNotDrained, to, i, err)
		}
		return nil
	})
	close(targetDone)
	wg.Wait()
	if err != nil {
		s.unfence(ks, old)
		return res, err
	}
	drained := map[string]bool{to: true}
	for j, r := range others {
		drained[r] = otherOK[j]
		if !otherOK[j] {
			res.Resynced = append(res.Resynced, r)
		}
	}
	res.DrainMS = float64(time.Since(drainStart).Microseconds()) / 1000
	if err := s.switchMeta(ctx, ks, to, nil); err != nil {
		s.unfence(ks, old)
		return res, err
	}
	ks, _ = s.env.Meta().Keyspace(keyspace)
	err = parallel(len(ks.Shards), func(i int) error {
		sh := ks.Shards[i]
		p, err := s.proposeRole(ctx, metadata.RegionalGroup{Group: sh.Group, Replicas: sh.Replicas}, kv.Role{Epoch: ks.Epoch, Primary: true}, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("promoting shard %d (the role loop will retry): %w", i, err)
		}
		var replicas []metadata.RegionalGroup
		for _, rg := range sh.Regional {
			if rg.Group != sh.Group {
				replicas = append(replicas, rg)
			}
		}
		_ = parallel(len(replicas), func(j int) error {
			rg := replicas[j]
			var src, at uint64
			if drained[rg.Region] || rg.Region == res.From {
				src, at = sh.Group, p.Index
			}
			if _, err := s.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch}, 0, src, at); err != nil {
				s.env.Logger().Warn("cannot install a replica's role (the role loop will retry)", "group", rg.Group, "err", err)
			}
			return nil
		})
		return nil
	})
	if err != nil {
		return res, err
	}
	res.FencedMS = float64(time.Since(start).Microseconds()) / 1000
	s.env.Logger().Info("switchover done", "keyspace", keyspace, "from", res.From, "to", to, "epoch", ks.Epoch, "fenced_ms", res.FencedMS)
	return res, nil
}

func checkTarget(ks *metadata.Keyspace, to string) error {
	if ks.Strategy != metadata.Async {
		return fmt.Errorf("%w: keyspace %q is %s; only async keyspaces have a primary region", metadata.ErrNotAsync, ks.Name, ks.Strategy)
	}
	if !slices.Contains(ks.Regions, to) {
		return fmt.Errorf("%w: region %q is not one of keyspace %q's regions %v", metadata.ErrInvalidSpec, to, ks.Name, ks.Regions)
	}
	if to == ks.HomeRegion {
		return fmt.Errorf("%w: region %q is already the primary of %q", metadata.ErrInvalidSpec, to, ks.Name)
	}
	return nil
}

// unfence lifts a switchover's fence after a failure.
func (s *Strategy) unfence(ks *metadata.Keyspace, old []metadata.RegionalGroup) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, rg := range old {
		if rg.Group == 0 {
			continue
		}
		if _, err := s.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch, Primary: true}, 0, 0, 0); err != nil {
			s.env.Logger().Error("cannot lift a switchover fence", "group", rg.Group, "err", err)
		}
	}
}

// drainGrace is how long a switchover waits, at least, for replica
// regions other than the target to catch up before resyncing them.
const drainGrace = 500 * time.Millisecond

// parallel runs fn(0..n-1) at once and returns the first error.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitCursor waits until a group has applied a source up to index.
func (s *Strategy) waitCursor(ctx context.Context, rg metadata.RegionalGroup, source, index uint64) error {
	for {
		at, err := s.env.Cursor(ctx, rg, source)
		if err == nil && at >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("at %d of %d: %w", at, index, cmp.Or(err, ctx.Err()))
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (s *Strategy) switchMeta(ctx context.Context, ks *metadata.Keyspace, to string, forks []metadata.Fork) error {
	cmd := metadata.Command{Op: "switch_primary", Switch: &metadata.SwitchPrimary{Keyspace: ks.Name, FromEpoch: ks.Epoch, ToRegion: to, Forks: forks}}
	p, err := s.env.Propose(ctx, metadata.SystemGroup, cmd.Encode())
	if err != nil {
		return err
	}
	if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
		return res.Err
	}
	return s.env.WaitMeta(ctx, func(st *metadata.State) bool {
		k := st.Keyspaces[ks.Name]
		return k != nil && k.Epoch > ks.Epoch
	})
}

// --- failover ---

// FailoverResult describes a finished failover.
type FailoverResult struct {
	Keyspace string          `json:"keyspace"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Epoch    uint64          `json:"epoch"`
	Forks    []metadata.Fork `json:"forks"`
	// TookMS is the time to the new epoch in the metadata; ServingMS the
	// time until the new primary takes writes (after the old primary's
	// lease has run out).
	TookMS    float64 `json:"took_ms"`
	ServingMS float64 `json:"serving_ms"`
}

// Failover makes another region an async keyspace's primary when the
// primary region is unreachable. Writes the old primary acknowledged but
// had not shipped to the new one are reported when it returns (see
// LostWrites). With the primary region reachable it is refused unless
// forced.
func (s *Strategy) Failover(ctx context.Context, keyspace, to string, force bool) (FailoverResult, error) {
	ctx, cancel := strategy.WithTimeout(ctx, s.env.Settings().RequestTimeout)
	defer cancel()
	ks, err := s.env.Meta().Keyspace(keyspace)
	if err != nil {
		return FailoverResult{}, err
	}
	if err := checkTarget(ks, to); err != nil {
		return FailoverResult{}, err
	}
	if healthy := s.healthyIn(ks.HomeRegion); len(healthy) > 0 && !force {
		return FailoverResult{}, fmt.Errorf("%w: %s (nodes %v answer); use switchover, or force the failover", ErrPrimaryHealthy, ks.HomeRegion, healthy)
	}
	start := time.Now()
	res := FailoverResult{Keyspace: ks.Name, From: ks.HomeRegion, To: to, Epoch: ks.Epoch + 1}
	for i, sh := range ks.Shards {
		rg, _ := sh.RegionalIn(to)
		// Promote first: from here on the target takes nothing more from
		// the old primary, so its cursor is the fork point.
		p, err := s.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch + 1, Primary: true}, sh.Group, 0, 0)
		if err != nil {
			return res, fmt.Errorf("promoting shard %d in %s: %w", i, to, err)
		}
		fork, _ := p.Value.(kv.Result)
		res.Forks = append(res.Forks, metadata.Fork{Epoch: ks.Epoch + 1, Shard: i, Group: sh.Group, Region: ks.HomeRegion, Index: uint64(fork.N)})
	}
	if err := s.switchMeta(ctx, ks, to, res.Forks); err != nil {
		return res, err
	}
	switched := time.Now()
	ks, _ = s.env.Meta().Keyspace(keyspace)
	for _, sh := range ks.Shards {
		for _, rg := range sh.Regional {
			if rg.Group == sh.Group || rg.Region == res.From {
				continue // the old primary reports its lost writes first
			}
			if _, err := s.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch}, 0, 0, 0); err != nil {
				s.env.Logger().Warn("cannot install a replica's role (the role loop will retry)", "group", rg.Group, "err", err)
			}
		}
	}
	res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	// The new primary takes writes once the old primary's lease has
	// surely run out (lease.go): wait for that, so that the
	// command returns when writes resume.
	select {
	case <-time.After(time.Until(switched.Add(failoverWait))):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.ServingMS = float64(time.Since(start).Microseconds()) / 1000
	s.env.Logger().Warn("failover done", "keyspace", keyspace, "from", res.From, "to", to, "epoch", ks.Epoch, "took_ms", res.TookMS, "serving_ms", res.ServingMS)
	return res, nil
}

// healthyIn lists the nodes of a region this node can reach.
func (s *Strategy) healthyIn(region string) []uint64 {
	var out []uint64
	for id, ni := range s.env.Meta().State().Nodes {
		if ni.Region != region {
			continue
		}
		if id == s.env.ID() || s.env.Transport().Healthy(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
