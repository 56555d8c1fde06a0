package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/strategy"
)

// Reads at every consistency level (docs/DESIGN.md section 3).
//
// A read is served by this region's replica of the shard when the level
// allows it, and otherwise as a strong read (by the shard's leader, or its
// primary region's group for async keyspaces), which satisfies every
// level:
//
//   - strong: ReadIndex at the group that takes the shard's writes (under
//     the leader's lease this crosses no network).
//   - eventual, prefix: the local replica at once. Each shard's replica
//     applies its log (or its stream) in order, so what it shows is a
//     prefix of the shard's history.
//   - bounded(D): the local replica if its closed timestamp is at most D
//     old; otherwise it waits a little for it to advance, then reads
//     strong. A leader with the lease has a closed timestamp of now; a
//     follower learns its leader's closed timestamps from the leader
//     (closed-timestamp messages, below); a replica region of an async
//     keyspace gets them with the stream (the cursor's closed time).
//   - session: the local replica once it has applied every mark of the
//     token for this shard, after a wait, strong otherwise.
//
// Every answer carries its staleness bound (now - closed timestamp of what
// served it; 0 for strong; -1 unknown) and the position it reflects, which
// Session folds into the caller's token.

// ErrBadToken: a session token that is malformed, or of another cluster
// or keyspace.
var ErrBadToken = errors.New("node: bad session token")

// How long a read waits for the local replica before reading strong.
const (
	boundedWait = 50 * time.Millisecond
	sessionWait = 250 * time.Millisecond
)

// resolve fills in the keyspace's default level and checks the request:
// the level must be one the keyspace's strategy serves (Strategy.Level).
func (n *Node) resolve(ks *metadata.Keyspace, c Consistency) (Consistency, error) {
	var err error
	if c.Req, err = n.strategyOf(ks).Level(ks, c.Req); err != nil {
		return c, err
	}
	if err := c.Req.Validate(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrUnknownConsistency, err)
	}
	tok, err := n.sessionOf(ks, c)
	if err != nil {
		return c, err
	}
	if c.Session == nil && c.Token != "" {
		t := tok       // (only here: &tok would allocate for every read)
		c.Session = &t // decoded once: read takes it from here
	}
	return c, nil
}

// sessionOf returns the session token c presents for ks (empty if none).
func (n *Node) sessionOf(ks *metadata.Keyspace, c Consistency) (consistency.Token, error) {
	if t := c.Session; t != nil {
		if t.Cluster() != n.cluster || t.Keyspace() != ks.Name {
			return consistency.Token{}, fmt.Errorf("%w: a token of keyspace %q of cluster %q, read in keyspace %q of cluster %q",
				ErrBadToken, t.Keyspace(), t.Cluster(), ks.Name, n.cluster)
		}
		return *t, nil
	}
	if c.Token == "" {
		return consistency.Token{}, nil
	}
	t, err := consistency.DecodeToken(c.Token, n.cluster, ks.Name)
	if err != nil {
		return consistency.Token{}, fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	return t, nil
}

// localGroup returns this region's group of the shard, if this node holds
// a replica of it.
func (n *Node) localGroup(sh metadata.Shard) (metadata.RegionalGroup, bool) {
	return strategy.LocalGroup(sh, n.cfg.Region, n.cfg.ID)
}

// offersStrong reports whether ks's strategy serves strong reads.
func (n *Node) offersStrong(ks *metadata.Keyspace) bool {
	_, err := n.strategyOf(ks).Level(ks, Strong.Req)
	return err == nil
}

// read serves a read at consistency c: local reads the local replica's
// group (nowMS: the node's time for expiry), remote asks another node
// (which applies the same rules).
func (n *Node) read(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard, c Consistency,
	local func(group uint64, nowMS int64) error, remote func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error)) (Answer, error) {
	// Only what may wait (the network, a quorum round) gets a deadline:
	// a lease read or a local read needs none, and a timer per read costs.
	timed := func() (context.Context, context.CancelFunc) { return n.withTimeout(ctx) }
	strong := func() (Answer, error) {
		for {
			a, err := n.strongOnce(ctx, ks, sh, local, remote, false)
			if !retryableRole(err) {
				return a, err
			}
			// The keyspace's primary is moving, or its lease is not
			// confirmed: read again once the metadata moved on (or a
			// moment later), where it then says the primary is.
			changed := n.meta.Changed()
			if k, kerr := n.meta.Keyspace(ks.Name); kerr == nil && k.Epoch != ks.Epoch {
				ks, sh = k, k.Shards[sh.Index]
				continue
			}
			tctx, cancel := timed()
			select {
			case <-changed:
			case <-time.After(20 * time.Millisecond):
			case <-tctx.Done():
				cancel()
				return a, err
			}
			cancel()
			if k, kerr := n.meta.Keyspace(ks.Name); kerr == nil {
				ks, sh = k, k.Shards[sh.Index]
			}
		}
	}
	// A read that must not wait (Consistency.NoWait) is served only where
	// this node can serve it alone and at once: strong where it leads the
	// group under its lease (strongOnce), eventual and prefix from a local
	// replica (whose position needs no confirmation). Bounded and session
	// reads may have to wait for the replica, so they never are.
	switch {
	case c.Req.Level == consistency.Strong && c.NoWait:
		return n.strongOnce(ctx, ks, sh, local, remote, true)
	case c.Req.Level == consistency.Strong:
		return strong()
	case c.NoWait && (c.Req.Level == consistency.Bounded || c.Req.Level == consistency.Session):
		return Answer{}, ErrWouldWait
	}
	rg, ok := n.localGroup(sh)
	if ok {
		n.host.Touch(rg.Group) // read here: the group must not quiesce (its closed timestamps)
	}
	if !ok && c.NoWait {
		return Answer{}, ErrWouldWait
	}
	if !ok {
		// No replica here: the nearest node with one in this region's
		// group (or the shard's) decides.
		tctx, cancel := timed()
		defer cancel()
		return remote(tctx, metadata.Shard{Index: sh.Index, Group: rg.Group, Replicas: rg.Replicas}, c)
	}
	tok, err := n.sessionOf(ks, c)
	if err != nil {
		return Answer{}, err
	}
	s := n.strategyOf(ks)
	// ready reports whether the local replica may serve the read now.
	ready := func(p strategy.Position) bool {
		switch c.Req.Level {
		case consistency.Bounded:
			ok, _ := consistency.CanServeLocally(c.Req, p.ClosedMS, n.NowMS())
			return p.ClosedMS > 0 && ok
		case consistency.Session:
			// A token from a later epoch names a primary this node's
			// metadata does not know yet: wait for it (or read strong).
			return tok.Epoch() <= ks.Epoch && n.sessionSatisfied(tok, sh, rg, p)
		}
		return true
	}
	wait := time.Duration(0)
	switch c.Req.Level {
	case consistency.Bounded:
		wait = min(boundedWait, c.Req.MaxStaleness)
	case consistency.Session:
		wait = sessionWait
	}
	deadline := time.Now().Add(wait)
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = timed()
		defer cancel()
	}
	for {
		p, err := s.Position(ctx, ks, sh, rg, c.Req.Level != consistency.Eventual && c.Req.Level != consistency.Prefix)
		if err != nil {
			return Answer{}, err
		}
		if ready(p) {
			if err := local(rg.Group, n.NowMS()); err != nil {
				return Answer{}, err
			}
			// The position after the read bounds what it saw from above,
			// which is what a session must never go back from.
			after, _ := s.Position(ctx, ks, sh, rg, false)
			a := n.answer(c, max(after.Index, p.Index))
			a.Group = p.Group // the log the position is in (per region for active keyspaces)
			a.StalenessMS = -1
			if p.ClosedMS > 0 {
				a.StalenessMS = max(n.NowMS()-p.ClosedMS, 0)
			}
			return a, nil
		}
		if time.Now().After(deadline) && n.offersStrong(ks) {
			return strong()
		}
		// A keyspace without strong reads (active: no single place is
		// always fresh) waits, bounded by the request's deadline, for
		// the local region to catch up.
		select {
		case <-ctx.Done():
			return Answer{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// strongOnce serves a strong read where the metadata says the shard's
// writes are taken: through the shard's group if this node holds a
// replica, otherwise by another node that does. A group of an async
// keyspace serves it only while it acts as the keyspace's primary (its
// role at or after the read point, and the primary lease: its
// strategy's Serves, see package asyncks), so a demoted, fenced or
// cut-off primary never answers a strong read with what it had. With
// noWait it serves the read only under the leader's lease, failing with
// ErrWouldWait having read nothing where it would ask another node, run
// a ReadIndex round or retry a role that is changing.
func (n *Node) strongOnce(ctx context.Context, ks *metadata.Keyspace, sh metadata.Shard,
	local func(group uint64, nowMS int64) error, remote func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error), noWait bool) (Answer, error) {
	if !slices.Contains(sh.Replicas, n.cfg.ID) {
		if noWait {
			return Answer{}, ErrWouldWait
		}
		tctx, cancel := n.withTimeout(ctx)
		defer cancel()
		return remote(tctx, sh, Strong)
	}
	// The host's clock is this node's (hostClock): the time the lease was
	// found valid at serves the fence check and the read's expiry too,
	// one clock read for the three.
	idx, now, ok := n.host.LeaseReadIndexAt(sh.Group)
	if !ok && noWait {
		return Answer{}, ErrWouldWait
	}
	if !ok {
		tctx, cancel := n.withTimeout(ctx)
		var err error
		idx, err = n.host.ReadIndex(tctx, sh.Group)
		cancel()
		if err != nil {
			return Answer{}, err
		}
		now = n.Now()
	}
	// After the read point: a fence committed before the read began is
	// applied here by now (async keyspaces, see Strategy.Serves).
	if _, err := n.strategyOf(ks).Serves(ks.Name, sh.Group, now); err != nil {
		if noWait && retryableRole(err) {
			return Answer{}, ErrWouldWait // the waiting read retries it
		}
		return Answer{}, err
	}
	if err := local(sh.Group, now.UnixMilli()); err != nil {
		return Answer{}, err
	}
	return n.strongAnswer(sh.Group, idx), nil
}

// sessionSatisfied reports whether the local replica has every write and
// read the token records for this shard. Marks of the shard's former
// primaries (async keyspaces) count too.
func (n *Node) sessionSatisfied(tok consistency.Token, sh metadata.Shard, rg metadata.RegionalGroup, p strategy.Position) bool {
	groups := []uint64{sh.Group}
	for _, r := range sh.Regional {
		if r.Group != sh.Group {
			groups = append(groups, r.Group)
		}
	}
	for _, g := range groups {
		mark, ok := tok.Index(g)
		if !ok {
			continue
		}
		var have uint64
		if g == rg.Group {
			st, _ := n.host.Status(g)
			have = max(st.Applied, p.Index)
		} else {
			c, _, _ := n.db.Cursor(rg.Group, g)
			have = c.Index
		}
		if have < mark {
			return false
		}
	}
	return true
}

// Session folds an answer into a session token (empty: a new one) and
// returns the new token: whoever presents it next reads what that answer
// reflected, or later.
func (n *Node) Session(keyspace, token string, a Answer) (string, error) {
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return "", err
	}
	tok := consistency.NewToken(n.cluster, ks.Name)
	if token != "" {
		if tok, err = consistency.DecodeToken(token, n.cluster, ks.Name); err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadToken, err)
		}
	}
	tok.ObserveEpoch(ks.Epoch)
	for _, m := range a.Marks() {
		if err := tok.Observe(m.Group, m.Index); err != nil {
			return "", err
		}
	}
	return tok.Encode(), nil
}

// --- closed timestamps of raft groups, from leaders to followers ---

const (
	closedInterval = 50 * time.Millisecond
	closedKeep     = 16
)

// closedSample says: every write acknowledged at or before TimeMS is at or
// below Index in the group's log. Only a leader under a valid lease makes
// one (raftgroup.Host.Closed), in the Term of that lease.
type closedSample struct {
	Group, Index uint64
	TimeMS       int64
	Term         uint64
}

// closedTimes holds the samples this node received, per group.
type closedTimes struct {
	mu      sync.Mutex
	samples map[uint64][]closedSample
	terms   map[uint64]uint64 // group -> highest term of a sample
}

// add keeps a sample. A sample from an older term than one already seen
// is ignored: its leader has been replaced (its promise, made under its
// lease, still held when it was made, but nothing newer can come from it).
func (c *closedTimes) add(s closedSample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == nil {
		c.samples, c.terms = map[uint64][]closedSample{}, map[uint64]uint64{}
	}
	if s.Term < c.terms[s.Group] {
		return
	}
	c.terms[s.Group] = s.Term
	l := c.samples[s.Group]
	if n := len(l); n > 0 && l[n-1].TimeMS >= s.TimeMS {
		return
	}
	l = append(l, s)
	if len(l) > closedKeep {
		l = l[len(l)-closedKeep:]
	}
	c.samples[s.Group] = l
}

// at returns the closed timestamp of a replica that has applied the
// group's log up to applied (0 if none is known).
func (c *closedTimes) at(group, applied uint64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	best := int64(0)
	for _, s := range c.samples[group] {
		if s.Index <= applied {
			best = max(best, s.TimeMS)
		}
	}
	return best
}

// closedFor returns a group's closed timestamp (Unix ms) if this node may
// give one: it leads the group under a raft lease, and its strategy lets
// it act for its shard (Strategy.Serves: an async keyspace's group only
// as its primary, whose log alone holds the keyspace's writes, and within
// the primary lease). 0 otherwise.
func (n *Node) closedFor(group uint64) (uint64, int64, uint64) {
	c, ok := n.host.Closed(group)
	if !ok {
		return 0, 0, 0
	}
	if info, ok := n.group(group); ok {
		until, err := n.strategyFor(info.Strategy).Serves(info.Keyspace, group, time.UnixMilli(c.TimeMS))
		if err != nil {
			return 0, 0, 0
		}
		if !until.IsZero() {
			c.TimeMS = min(c.TimeMS, until.UnixMilli()-1)
		}
	}
	return c.Index, c.TimeMS, c.Term
}

// closedLoop sends, from every group this node leads under a lease (and,
// for an async keyspace, acts as the primary of: see closedFor), its
// closed timestamp to the group's other replicas, one message per node.
// One sender per peer carries them (closedPeer): a peer that answers
// slowly is sent the latest samples when it has answered, never a queue
// of old ones, and no goroutine is started per round.
func (n *Node) closedLoop() {
	defer n.wg.Done()
	t := time.NewTicker(closedInterval)
	defer t.Stop()
	peers := map[uint64]*closedPeer{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		out := map[uint64][]*nodepb.ClosedSample{}
		for _, g := range n.host.Leading() {
			if g == metadata.SystemGroup {
				continue
			}
			index, closedMS, term := n.closedFor(g)
			if closedMS == 0 {
				continue // no lease (a quiesced group's has run out)
			}
			st, ok := n.host.Status(g)
			if !ok {
				continue
			}
			s := closedSample{Group: g, Index: index, TimeMS: closedMS, Term: term}
			n.closed.add(s) // the leader's own eventual reads report it too
			ps := &nodepb.ClosedSample{Group: g, Index: index, TimeMs: closedMS, Term: term}
			for _, id := range append(slices.Clone(st.Voters), st.Learners...) {
				if id != n.cfg.ID {
					out[id] = append(out[id], ps)
				}
			}
		}
		for id, samples := range out {
			p := peers[id]
			if p == nil {
				p = &closedPeer{next: make(chan []*nodepb.ClosedSample, 1)}
				peers[id] = p
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.run(n, id)
				}()
			}
			p.offer(samples)
		}
	}
}

// closedPeer sends closed timestamps to one peer, the latest first.
type closedPeer struct {
	next chan []*nodepb.ClosedSample // capacity 1: the samples not sent yet
}

// offer replaces what is waiting to be sent with samples.
func (p *closedPeer) offer(samples []*nodepb.ClosedSample) {
	select {
	case <-p.next:
	default:
	}
	p.next <- samples
}

func (p *closedPeer) run(n *Node, id uint64) {
	for {
		select {
		case <-n.stop:
			return
		case samples := <-p.next:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = n.client(id).Closed(ctx, &nodepb.ClosedRequest{Samples: samples})
			cancel()
		}
	}
}
