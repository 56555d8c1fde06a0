package asyncks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
)

// Primary leases of async keyspaces (docs/DESIGN.md 2.2).
//
// A group's role (kv.Role) says that it is its keyspace's primary at some
// epoch, but not that no other region has been made primary since: a
// failover promotes another region while the old primary is cut off, and
// nothing can tell the old one. So a group acts as the primary (takes
// client writes, serves strong reads, hands out closed timestamps that
// cover the keyspace's writes) only while its node holds a primary lease:
// a linearizable read of the metadata (ReadIndex on the system group)
// that began at S and showed the keyspace at the group's epoch holds
// until S + primaryLease, measured on this node's monotonic clock.
//
// A failover commits the new epoch, and the new primary's node first sees
// it in a confirmation that ends at F, after that commit. Every lease an
// old primary holds began before the commit (it read the old epoch), so
// it ends before F + primaryLease; the new primary acts only from
// F + failoverWait, a margin above that. A switchover needs no wait: the
// old primary was fenced (it refuses writes, strong reads and closed
// timestamps from the fence on) and drained before the epoch moved.
//
// A primary region cut off from the metadata quorum thus stops serving
// strong reads and closing timestamps within primaryLease, and the new
// primary of a failover starts taking writes primaryLease later than it
// could otherwise: the price of keeping strong reads linearizable and
// bounded reads within their bound across a failover. Writes at a cut-off
// primary whose lease has expired are refused too, which bounds what a
// failover can lose to what was acknowledged before the lease ran out.

const (
	// primaryLease is how long a confirmation of the metadata lets a
	// group act as its keyspace's primary.
	primaryLease = 2 * time.Second
	// primaryRenew is how often a node confirms the metadata while it
	// hosts groups of async keyspaces.
	primaryRenew = 400 * time.Millisecond
	// failoverWait is how long after first seeing a failover's epoch the
	// new primary waits before acting: primaryLease plus a margin for the
	// two nodes' clocks running at slightly different rates.
	failoverWait = primaryLease + primaryLease/10
)

type epochKey struct {
	keyspace string
	epoch    uint64
}

type primaryLeases struct {
	mu     sync.Mutex
	until  time.Time         // the last confirmation holds until then
	epochs map[string]uint64 // keyspace -> epoch at the last confirmation
	forked map[string]bool   // keyspace -> its epoch began with a failover
	first  map[epochKey]time.Time
}

// leaseLoop confirms the metadata every primaryRenew while this node
// hosts a group of an async keyspace, and at once when the metadata
// changes.
func (s *Strategy) leaseLoop(stop <-chan struct{}) {
	t := time.NewTicker(primaryRenew)
	defer t.Stop()
	meta := s.env.Meta()
	for {
		changed := meta.Changed()
		if s.hostsAsync() {
			ctx, cancel := context.WithTimeout(context.Background(), primaryLease)
			if err := s.confirmPrimaries(ctx); err != nil {
				s.env.Logger().Debug("cannot confirm the primary roles with the metadata quorum", "err", err)
			}
			cancel()
		}
		select {
		case <-stop:
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// hostsAsync reports whether this node hosts a group of an async keyspace.
// It looks the metadata's async groups (few) up among the hosted ones
// rather than every hosted group (thousands, on a node of many sync
// keyspaces) up in the metadata: every primaryRenew, on every node.
func (s *Strategy) hostsAsync() bool {
	h := s.env.Host()
	for _, ks := range s.env.Meta().State().Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		for _, sh := range ks.Shards {
			for _, g := range sh.Groups() {
				if _, ok := h.Status(g); ok {
					return true
				}
			}
		}
	}
	return false
}

// confirmPrimaries reads the metadata linearizably and records the epochs
// it shows, valid until the read's start plus primaryLease.
func (s *Strategy) confirmPrimaries(ctx context.Context) error {
	start := s.env.Now()
	if _, err := s.env.Host().ReadIndex(ctx, metadata.SystemGroup); err != nil {
		return err
	}
	seen := s.env.Now()
	st := s.env.Meta().State() // applied at least up to the read index
	l := &s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = start.Add(primaryLease)
	l.epochs, l.forked = map[string]uint64{}, map[string]bool{}
	if l.first == nil {
		l.first = map[epochKey]time.Time{}
	}
	for _, ks := range st.Keyspaces {
		if ks.Strategy != metadata.Async {
			continue
		}
		l.epochs[ks.Name] = ks.Epoch
		for _, f := range ks.Forks {
			if f.Epoch == ks.Epoch {
				l.forked[ks.Name] = true
			}
		}
		k := epochKey{ks.Name, ks.Epoch}
		if _, ok := l.first[k]; !ok {
			l.first[k] = seen
		}
	}
	return nil
}

// primaryUntil returns until when this node may act as keyspace's primary
// at epoch (at or after now), or ErrPrimaryLease.
func (s *Strategy) primaryUntil(keyspace string, epoch uint64, now time.Time) (time.Time, error) {
	l := &s.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.until.IsZero():
		return time.Time{}, fmt.Errorf("%w: the metadata quorum has not confirmed keyspace %q's primary yet (since this node started)", ErrPrimaryLease, keyspace)
	case !now.Before(l.until):
		return time.Time{}, fmt.Errorf("%w: the metadata quorum has not confirmed keyspace %q's primary for %v", ErrPrimaryLease, keyspace, (now.Sub(l.until) + primaryLease).Round(time.Millisecond))
	case l.epochs[keyspace] != epoch:
		return time.Time{}, fmt.Errorf("%w: keyspace %q is at epoch %d in the metadata, the group at %d", ErrPrimaryLease, keyspace, l.epochs[keyspace], epoch)
	case l.forked[keyspace]:
		if from := l.first[epochKey{keyspace, epoch}].Add(failoverWait); now.Before(from) {
			return time.Time{}, fmt.Errorf("%w: keyspace %q failed over; the new primary acts in %v, once the old primary's lease has expired",
				ErrPrimaryLease, keyspace, from.Sub(now).Round(time.Millisecond))
		}
	}
	return l.until, nil
}

// primary checks that group, a region-local group of an async keyspace,
// may act as the keyspace's primary now: it is the unfenced primary of its
// epoch, as its own applied state says, and this node holds the primary
// lease for that epoch. It returns until when.
func (s *Strategy) primary(keyspace string, group uint64, now time.Time) (time.Time, error) {
	role, err := kv.LoadRole(s.env.DB(), group)
	if err != nil {
		return time.Time{}, err
	}
	switch {
	case !role.Primary:
		return time.Time{}, fmt.Errorf("%w: group %d is %v", kv.ErrNotPrimary, group, role)
	case role.Fenced:
		return time.Time{}, fmt.Errorf("%w: group %d is %v", kv.ErrFenced, group, role)
	}
	return s.primaryUntil(keyspace, role.Epoch, now)
}
