package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
)

// Switchover, failover and the roles of region-local groups.
//
// The metadata says which region is each async keyspace's primary and at
// which epoch; every region-local group records its own role (kv.Role),
// changed only through its raft log. The two are brought together here:
//
//   - A new group gets its role at once from the leader of the group (role
//     loop). A group whose role is older than the metadata epoch for a
//     while (a coordinator that died half way) is brought up to date the
//     same way, a former primary only after its lost writes are reported.
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
//     after the fork point as lost, and becomes a replica.

// Errors of switchover and failover.
var (
	ErrPrimaryHealthy = errors.New("node: the primary region is reachable")
	ErrNotDrained     = errors.New("node: the target region did not catch up")
	ErrRPOBudget      = errors.New("node: RPO budget exceeded")
)

// roleGrace is how long a group's role may lag the metadata epoch before
// the role loop fixes it (the coordinator normally does it first).
const roleGrace = 3 * time.Second

type roleState struct {
	mu     sync.Mutex
	behind map[uint64]time.Time // group -> when first seen behind
}

func (n *Node) roleLoop() {
	defer n.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		n.reconcileRoles()
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// reconcileRoles gives the groups this node leads the role the metadata
// says they have.
func (n *Node) reconcileRoles() {
	now := time.Now()
	rs := &n.roles
	rs.mu.Lock()
	if rs.behind == nil {
		rs.behind = map[uint64]time.Time{}
	}
	rs.mu.Unlock()
	for _, ks := range n.meta.State().Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			for _, rg := range sh.Regional {
				if n.host.Leader(rg.Group) != n.cfg.ID {
					continue
				}
				role, err := kv.LoadRole(n.db, rg.Group)
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
				if err := n.catchUpRole(ctx, ks, sh, rg, role); err != nil {
					n.log.Warn("cannot update a group's role", "keyspace", ks.Name, "group", rg.Group, "err", err)
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
func (n *Node) catchUpRole(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, rg metadata.RegionalGroup, cur kv.Role) error {
	primary := rg.Group == sh.Group
	if cur.Primary && !primary {
		// A former primary: fence it (clients with an old view of the
		// metadata could still be writing to it), then report what it has
		// that the new primary lacks before it takes the new primary's
		// data.
		if !cur.Fenced {
			if _, err := n.proposeRole(ctx, rg, kv.Role{Epoch: cur.Epoch, Primary: true, Fenced: true}, 0, 0, 0); err != nil {
				return err
			}
		}
		for _, f := range ks.Forks {
			if f.Group == rg.Group && f.Epoch >= cur.Epoch && !f.Reported {
				if err := n.reportLostWrites(ctx, ks, f); err != nil {
					return err
				}
			}
		}
	}
	n.log.Info("installing role", "keyspace", ks.Name, "group", rg.Group, "epoch", ks.Epoch, "primary", primary)
	_, err := n.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch, Primary: primary}, 0, 0, 0)
	return err
}

// proposeRole runs an OpRole command through a group and returns its
// result and log index.
func (n *Node) proposeRole(ctx context.Context, rg metadata.RegionalGroup, r kv.Role, watch, initSrc, initIdx uint64) (proposal, error) {
	p, err := n.proposeIn(ctx, rg, kv.RoleCommand(r, watch, initSrc, initIdx).Encode())
	if res, _ := p.value.(kv.Result); err == nil && res.Err != nil {
		err = res.Err
	}
	return p, err
}

// reportLostWrites records, in the metadata, every write the group (a
// former primary, led by this node) applied after the fork point.
func (n *Node) reportLostWrites(ctx context.Context, ks *metadata.Keyspace, f metadata.Fork) error {
	st, ok := n.host.Status(f.Group)
	if !ok {
		return fmt.Errorf("group %d not hosted", f.Group)
	}
	history, err := kv.RoleHistory(n.db, f.Group)
	if err != nil {
		return err
	}
	var lost []metadata.LostWrite
	send := func(final bool) error {
		cmd := metadata.Command{Op: "lost_writes", Lost: &metadata.LostWrites{Keyspace: ks.Name, Epoch: f.Epoch, Group: f.Group, Writes: lost, Final: final}}
		p, err := n.propose(ctx, metadata.SystemGroup, cmd.Encode())
		if err == nil {
			if res, _ := p.value.(metadata.ApplyResult); res.Err != nil {
				err = res.Err
			}
		}
		lost = lost[:0]
		return err
	}
	for from := f.Index; from < st.Applied; {
		ents, err := n.host.ReadCommitted(f.Group, from, st.Applied, 1<<20)
		if err != nil {
			return fmt.Errorf("reading the log after the fork point %d: %w", f.Index, err)
		}
		for _, e := range ents {
			from = e.Index
			if len(e.Command) == 0 {
				continue
			}
			c, err := kv.DecodeCommand(e.Command)
			if err != nil || c.Epoch == 0 || len(c.Args) == 0 || !kv.Admitted(history, e.Index, c) {
				continue // not a client write, or one the group refused
			}
			switch c.Op {
			case kv.OpRole, kv.OpStreamApply, kv.OpStreamChunk:
				continue
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
	n.log.Warn("reporting lost writes of a former primary", "keyspace", ks.Name, "group", f.Group, "fork", f.Index, "applied", st.Applied)
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
// node's copy of the metadata.
func (n *Node) LostWrites(keyspace string) ([]metadata.LostWrite, error) {
	if _, err := n.meta.Keyspace(keyspace); err != nil {
		return nil, err
	}
	prefix := metadata.LostPrefix(keyspace)
	end := append(slices.Clone(prefix[:len(prefix)-1]), '/'+1)
	var out []metadata.LostWrite
	var bad error
	err := n.db.Scan(metadata.SystemGroup, prefix, end, func(_, v []byte) bool {
		var w metadata.LostWrite
		if bad = json.Unmarshal(v, &w); bad != nil {
			return false
		}
		out = append(out, w)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, err
}

// --- cursors, read from a group's replica ---

// groupCursor returns how far a group has applied a source's stream, as
// one of its replicas (the nearest) has it.
func (n *Node) groupCursor(ctx context.Context, rg metadata.RegionalGroup, source uint64) (uint64, error) {
	if slices.Contains(rg.Replicas, n.cfg.ID) {
		c, _, err := n.db.Cursor(rg.Group, source)
		return c.Index, err
	}
	id := n.nearestReplica(metadata.Shard{Group: rg.Group, Replicas: rg.Replicas})
	if id == 0 {
		return 0, ErrNoReplica
	}
	resp, err := n.client(id).Cursor(ctx, &nodepb.CursorRequest{Group: rg.Group, Source: source})
	if err != nil {
		return 0, err
	}
	return resp.GetIndex(), fromPB(resp.GetError())
}

// --- switchover ---

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
func (n *Node) Switchover(ctx context.Context, keyspace, to string) (SwitchoverResult, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	ks, err := n.meta.Keyspace(keyspace)
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
		p, err := n.proposeRole(ctx, old[i], kv.Role{Epoch: ks.Epoch, Primary: true, Fenced: true}, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("fencing shard %d: %w", i, err)
		}
		fence[i] = p.index
		return nil
	})
	if err != nil {
		n.unfence(ks, old)
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
				return n.waitCursor(wctx, rg, old[i].Group, fence[i])
			}) == nil
		}()
	}
	err = parallel(len(ks.Shards), func(i int) error {
		rg, _ := ks.Shards[i].RegionalIn(to)
		if err := n.waitCursor(ctx, rg, old[i].Group, fence[i]); err != nil {
			return fmt.Errorf("%w: region %s, shard %d: %w", ErrNotDrained, to, i, err)
		}
		return nil
	})
	close(targetDone)
	wg.Wait()
	if err != nil {
		n.unfence(ks, old)
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
	if err := n.switchMeta(ctx, ks, to, nil); err != nil {
		n.unfence(ks, old)
		return res, err
	}
	ks, _ = n.meta.Keyspace(keyspace)
	err = parallel(len(ks.Shards), func(i int) error {
		sh := ks.Shards[i]
		p, err := n.proposeRole(ctx, metadata.RegionalGroup{Group: sh.Group, Replicas: sh.Replicas}, kv.Role{Epoch: ks.Epoch, Primary: true}, 0, 0, 0)
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
				src, at = sh.Group, p.index
			}
			if _, err := n.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch}, 0, src, at); err != nil {
				n.log.Warn("cannot install a replica's role (the role loop will retry)", "group", rg.Group, "err", err)
			}
			return nil
		})
		return nil
	})
	if err != nil {
		return res, err
	}
	res.FencedMS = float64(time.Since(start).Microseconds()) / 1000
	n.log.Info("switchover done", "keyspace", keyspace, "from", res.From, "to", to, "epoch", ks.Epoch, "fenced_ms", res.FencedMS)
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
func (n *Node) unfence(ks *metadata.Keyspace, old []metadata.RegionalGroup) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, rg := range old {
		if rg.Group == 0 {
			continue
		}
		if _, err := n.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch, Primary: true}, 0, 0, 0); err != nil {
			n.log.Error("cannot lift a switchover fence", "group", rg.Group, "err", err)
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
func (n *Node) waitCursor(ctx context.Context, rg metadata.RegionalGroup, source, index uint64) error {
	for {
		at, err := n.groupCursor(ctx, rg, source)
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

func (n *Node) switchMeta(ctx context.Context, ks *metadata.Keyspace, to string, forks []metadata.Fork) error {
	cmd := metadata.Command{Op: "switch_primary", Switch: &metadata.SwitchPrimary{Keyspace: ks.Name, FromEpoch: ks.Epoch, ToRegion: to, Forks: forks}}
	p, err := n.propose(ctx, metadata.SystemGroup, cmd.Encode())
	if err != nil {
		return err
	}
	if res, _ := p.value.(metadata.ApplyResult); res.Err != nil {
		return res.Err
	}
	return n.waitMeta(ctx, func(st *metadata.State) bool {
		k := st.Keyspaces[ks.Name]
		return k != nil && k.Epoch > ks.Epoch
	})
}

// waitMeta waits until this node's metadata satisfies ok.
func (n *Node) waitMeta(ctx context.Context, ok func(*metadata.State) bool) error {
	for {
		changed := n.meta.Changed()
		if ok(n.meta.State()) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
func (n *Node) Failover(ctx context.Context, keyspace, to string, force bool) (FailoverResult, error) {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return FailoverResult{}, err
	}
	if err := checkTarget(ks, to); err != nil {
		return FailoverResult{}, err
	}
	if healthy := n.healthyIn(ks.HomeRegion); len(healthy) > 0 && !force {
		return FailoverResult{}, fmt.Errorf("%w: %s (nodes %v answer); use switchover, or force the failover", ErrPrimaryHealthy, ks.HomeRegion, healthy)
	}
	start := time.Now()
	res := FailoverResult{Keyspace: ks.Name, From: ks.HomeRegion, To: to, Epoch: ks.Epoch + 1}
	for i, sh := range ks.Shards {
		rg, _ := sh.RegionalIn(to)
		// Promote first: from here on the target takes nothing more from
		// the old primary, so its cursor is the fork point.
		p, err := n.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch + 1, Primary: true}, sh.Group, 0, 0)
		if err != nil {
			return res, fmt.Errorf("promoting shard %d in %s: %w", i, to, err)
		}
		fork, _ := p.value.(kv.Result)
		res.Forks = append(res.Forks, metadata.Fork{Epoch: ks.Epoch + 1, Shard: i, Group: sh.Group, Region: ks.HomeRegion, Index: uint64(fork.N)})
	}
	if err := n.switchMeta(ctx, ks, to, res.Forks); err != nil {
		return res, err
	}
	switched := time.Now()
	ks, _ = n.meta.Keyspace(keyspace)
	for _, sh := range ks.Shards {
		for _, rg := range sh.Regional {
			if rg.Group == sh.Group || rg.Region == res.From {
				continue // the old primary reports its lost writes first
			}
			if _, err := n.proposeRole(ctx, rg, kv.Role{Epoch: ks.Epoch}, 0, 0, 0); err != nil {
				n.log.Warn("cannot install a replica's role (the role loop will retry)", "group", rg.Group, "err", err)
			}
		}
	}
	res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	// The new primary takes writes once the old primary's lease has
	// surely run out (primarylease.go): wait for that, so that the
	// command returns when writes resume.
	select {
	case <-time.After(time.Until(switched.Add(failoverWait))):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.ServingMS = float64(time.Since(start).Microseconds()) / 1000
	n.log.Warn("failover done", "keyspace", keyspace, "from", res.From, "to", to, "epoch", ks.Epoch, "took_ms", res.TookMS, "serving_ms", res.ServingMS)
	return res, nil
}

// healthyIn lists the nodes of a region this node can reach.
func (n *Node) healthyIn(region string) []uint64 {
	var out []uint64
	for id, ni := range n.meta.State().Nodes {
		if ni.Region != region {
			continue
		}
		if id == n.cfg.ID || n.tr.Healthy(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// --- writes: epochs, retries, RPO budget ---

// retryableRole reports whether a write failed because the keyspace's
// primary is changing: nothing was applied and it may be sent again once
// the metadata has moved on.
func retryableRole(err error) bool {
	return errors.Is(err, kv.ErrStaleEpoch) || errors.Is(err, kv.ErrNotPrimary) || errors.Is(err, kv.ErrFenced) ||
		errors.Is(err, ErrStaleRoute) || errors.Is(err, ErrPrimaryLease)
}

// hostPropose proposes a command to a group this node leads. A client
// write to a group of an async keyspace passes the primary's gate first:
// the group must act as the keyspace's primary (its role and this node's
// primary lease, see primarylease.go), and the RPO budget must allow it.
func (n *Node) hostPropose(ctx context.Context, group uint64, cmd []byte) (raftgroup.Result, error) {
	if info, ok := n.group(group); ok && info.strategy == metadata.Async {
		if op, ok := kv.PeekOp(cmd); ok && op != kv.OpRole && op != kv.OpStreamApply && op != kv.OpStreamChunk {
			if err := n.primaryGate(ctx, info, group); err != nil {
				return raftgroup.Result{}, err
			}
		}
	}
	return n.host.Propose(ctx, group, cmd)
}

// primaryGate admits a client write to a group of an async keyspace. A
// group that is not its keyspace's unfenced primary is left to its state
// machine, which refuses the write with the reason.
func (n *Node) primaryGate(ctx context.Context, info groupInfo, group uint64) error {
	if _, err := n.asyncPrimary(info.keyspace, group, time.Now()); err != nil {
		if errors.Is(err, ErrPrimaryLease) {
			return err
		}
		return nil
	}
	if info.primary && info.rpoBudgetMS > 0 {
		ks, err := n.meta.Keyspace(info.keyspace)
		if err != nil {
			return err
		}
		return n.rpoCheck(ctx, ks, group)
	}
	return nil
}

// rpoCheck throttles or refuses a write at an async primary while one of
// its streams lags beyond the keyspace's RPO budget. It runs where the
// group's streams run: its leader.
func (n *Node) rpoCheck(ctx context.Context, ks *metadata.Keyspace, group uint64) error {
	worst, region := int64(0), ""
	for _, s := range n.Streams() {
		if s.Keyspace == ks.Name && s.LagMS > worst && ks.Shards[s.Shard].Group == group {
			worst, region = s.LagMS, s.ToRegion
		}
	}
	switch {
	case worst > ks.RPOBudgetMS:
		return fmt.Errorf("%w: region %s lags %d ms behind the primary (keyspace %q allows %d ms)", ErrRPOBudget, region, worst, ks.Name, ks.RPOBudgetMS)
	case worst > ks.RPOBudgetMS/2:
		// Slow writers down, more the closer the lag gets to the budget,
		// while the region catches up.
		select {
		case <-time.After(time.Duration(worst-ks.RPOBudgetMS/2) * time.Millisecond / 4):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// epochOf returns the epoch a write to the keyspace carries.
func epochOf(ks *metadata.Keyspace) uint64 {
	if ks.Strategy == metadata.Async {
		return ks.Epoch
	}
	return 0
}

// stampRole fills a write's epoch.
func stampRole(ks *metadata.Keyspace, cmd *kv.Command) { cmd.Epoch = epochOf(ks) }

// --- regions added and removed ---

// AlterKeyspace adds a region to an async keyspace (its new groups are
// seeded by a resync from the primary, then follow the stream) or removes
// a replica region (its groups are deleted). Exactly one of add and remove
// is set. An added region's replicas go on its live nodes; it waits up to
// Config.PlacementWait for one (see AlterKeyspaceWait).
func (n *Node) AlterKeyspace(ctx context.Context, keyspace, add, remove string) (*metadata.Keyspace, error) {
	return n.AlterKeyspaceWait(ctx, keyspace, add, remove, n.cfg.PlacementWait)
}

// AlterKeyspaceWait is AlterKeyspace waiting up to wait for a live node in
// the region added; then it fails with ErrRegionUnavailable naming the
// region's nodes. A region no member of the cluster is in is refused at
// once.
func (n *Node) AlterKeyspaceWait(ctx context.Context, keyspace, add, remove string, wait time.Duration) (*metadata.Keyspace, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, err
	}
	if (add == "") == (remove == "") {
		return nil, fmt.Errorf("%w: give exactly one region to add or to remove", metadata.ErrInvalidSpec)
	}
	alter := &metadata.AlterRegions{Keyspace: ks.Name, Add: add, Remove: remove}
	if add != "" {
		st := n.meta.State()
		if regions := n.clusterRegions(st); !slices.Contains(regions, add) {
			return nil, fmt.Errorf("%w: unknown region %q: no member of the cluster is in it (the cluster's regions: %v)", metadata.ErrInvalidSpec, add, regions)
		}
		// What the change itself would refuse, refused before any wait.
		if ks.Strategy != metadata.Async && ks.Strategy != metadata.Active {
			return nil, fmt.Errorf("%w: %q is %s; only async and active keyspaces change regions online", metadata.ErrNotAsync, ks.Name, ks.Strategy)
		}
		if slices.Contains(ks.Regions, add) {
			return nil, fmt.Errorf("%w: keyspace %q already has region %q", metadata.ErrInvalidSpec, ks.Name, add)
		}
		if err := n.awaitPlacement(ctx, wait, fmt.Sprintf("region %s of keyspace %q", add, ks.Name), []string{add}, func(live []metadata.NodeInfo) error {
			alter.AddVoters = alter.AddVoters[:0]
			for i := range ks.Shards {
				voters, err := metadata.PlaceRegional(add, live, i)
				if err != nil {
					return err
				}
				alter.AddVoters = append(alter.AddVoters, voters)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "alter_regions", Alter: alter}.Encode())
	if err != nil {
		return nil, err
	}
	if res, _ := p.value.(metadata.ApplyResult); res.Err != nil {
		return nil, res.Err
	}
	if err := n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.index }); err != nil {
		return nil, err
	}
	return n.meta.Keyspace(keyspace)
}
