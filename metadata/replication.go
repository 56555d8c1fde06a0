package metadata

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/meridian-db/meridian/storage"
)

// Replication changes of async keyspaces: switchover, failover, lost
// writes and regions added or removed.
//
// A keyspace's Epoch starts at 1 and rises by one at every change of its
// primary region. Every write and every stream batch carries the epoch its
// sender saw, and region-local groups refuse anything older than the epoch
// they have been told about (see package kv, Role).

// Errors of replication changes.
var (
	ErrStaleEpoch = errors.New("metadata: keyspace epoch changed meanwhile")
	ErrNotAsync   = errors.New("metadata: keyspace is not async")
)

// Fork records where a failover cut the history of one shard: the old
// primary group's log up to Index reached the new primary; anything the old
// primary acknowledged after it is lost, and reported when the old primary
// returns.
type Fork struct {
	// Epoch is the epoch the failover started.
	Epoch uint64 `json:"epoch"`
	Shard int    `json:"shard"`
	// Group is the old primary's group, Region its region.
	Group  uint64 `json:"group"`
	Region string `json:"region"`
	// Index is the old primary's log index up to which the new primary
	// has everything.
	Index uint64 `json:"index"`
	// Reported is set once the old primary has recorded what it had after
	// Index (see LostWrite) and become a replica.
	Reported bool `json:"reported,omitempty"`
	// LostWrites counts the writes reported.
	LostWrites int `json:"lost_writes,omitempty"`
}

// SwitchPrimary moves an async keyspace's primary to another region.
type SwitchPrimary struct {
	Keyspace string `json:"keyspace"`
	// FromEpoch must be the keyspace's epoch when the command applies.
	FromEpoch uint64 `json:"from_epoch"`
	ToRegion  string `json:"to_region"`
	// Forks are set by a failover (one per shard), empty for a switchover.
	Forks []Fork `json:"forks,omitempty"`
}

// LostWrite is one write a former primary acknowledged that never reached
// the region that took over.
type LostWrite struct {
	Keyspace string `json:"keyspace"`
	// Epoch is the epoch the write was made in.
	Epoch  uint64 `json:"epoch"`
	Shard  int    `json:"shard"`
	Group  uint64 `json:"group"`
	Region string `json:"region"`
	// Index is the write's index in the old primary's log.
	Index uint64 `json:"index"`
	// TimeMS is when the write was proposed (Unix ms).
	TimeMS int64 `json:"time_ms"`
	// Op is the operation ("set", "delete", ...), Key its key and Args the
	// rest of its arguments (values, members, fields).
	Op   string   `json:"op"`
	Key  []byte   `json:"key"`
	Args [][]byte `json:"args,omitempty"`
}

// LostWrites records a former primary's lost writes for one fork; with
// Final, the fork is marked reported.
type LostWrites struct {
	Keyspace string      `json:"keyspace"`
	Epoch    uint64      `json:"epoch"`
	Group    uint64      `json:"group"`
	Writes   []LostWrite `json:"writes,omitempty"`
	Final    bool        `json:"final,omitempty"`
}

// AlterRegions adds a region to or removes one from an async keyspace.
type AlterRegions struct {
	Keyspace string `json:"keyspace"`
	// Add is the region to add with, per shard in shard order, the voters
	// of its new region-local group.
	Add       string     `json:"add,omitempty"`
	AddVoters [][]uint64 `json:"add_voters,omitempty"`
	// Remove is the region to remove (never the primary).
	Remove string `json:"remove,omitempty"`
}

// lostPrefix starts the keys of lost writes in the system group's data.
const lostPrefix = "lost/"

// LostKey returns the storage key of a lost write.
func LostKey(keyspace string, epoch, group, index uint64) []byte {
	k := append([]byte(lostPrefix+keyspace), '/')
	k = binary.BigEndian.AppendUint64(k, epoch)
	k = binary.BigEndian.AppendUint64(k, group)
	return binary.BigEndian.AppendUint64(k, index)
}

// LostReport is an async keyspace's lost-writes report as one replica of
// the metadata holds it: the forks its failovers made, and the writes
// reported for them so far.
type LostReport struct {
	Forks  []Fork
	Writes []LostWrite
}

// lostReportRead, when set (by tests), runs between reading a report's
// forks and scanning its writes.
var lostReportRead func()

// LostReport returns keyspace's lost-writes report (a keyspace unknown or
// being restored is an error, as for Keyspace). A fork marked
// Reported has every one of its writes in Writes; a fork not yet reported
// may have some of them. The forks are read first, then the writes: a
// report's writes are committed before the state that marks its fork
// reported is published (Applied), so whatever report finishes in
// between, the answer holds. (Scanned the other way round, a report
// finishing in between showed its fork reported without its last
// writes.)
func (s *Store) LostReport(keyspace string) (LostReport, error) {
	ks, err := s.Keyspace(keyspace)
	if err != nil {
		return LostReport{}, err
	}
	r := LostReport{Forks: slices.Clone(ks.Forks)}
	if lostReportRead != nil {
		lostReportRead()
	}
	prefix := append([]byte(lostPrefix+keyspace), '/')
	end := append([]byte(lostPrefix+keyspace), '/'+1)
	var bad error
	err = s.db.Scan(SystemGroup, prefix, end, func(_, v []byte) bool {
		var w LostWrite
		if bad = json.Unmarshal(v, &w); bad != nil {
			return false
		}
		r.Writes = append(r.Writes, w)
		return true
	})
	if err == nil {
		err = bad
	}
	return r, err
}

func (s *Store) applySwitch(st *State, c *SwitchPrimary) error {
	ks := st.Keyspaces[c.Keyspace]
	if ks == nil {
		return fmt.Errorf("%w: %q", ErrUnknownKeyspace, c.Keyspace)
	}
	if ks.Strategy != Async {
		return fmt.Errorf("%w: %q is %s", ErrNotAsync, ks.Name, ks.Strategy)
	}
	if ks.Epoch != c.FromEpoch {
		return fmt.Errorf("%w: %q is at epoch %d, the change was for %d", ErrStaleEpoch, ks.Name, ks.Epoch, c.FromEpoch)
	}
	if !slices.Contains(ks.Regions, c.ToRegion) {
		return fmt.Errorf("%w: region %q is not one of keyspace %q's regions %v", ErrInvalidSpec, c.ToRegion, ks.Name, ks.Regions)
	}
	for i := range ks.Shards {
		sh := &ks.Shards[i]
		rg, ok := sh.RegionalIn(c.ToRegion)
		if !ok {
			return fmt.Errorf("%w: shard %d has no group in %q", ErrInvalidSpec, i, c.ToRegion)
		}
		sh.Group, sh.Replicas, sh.Initial = rg.Group, slices.Clone(rg.Replicas), slices.Clone(rg.Initial)
	}
	ks.HomeRegion = c.ToRegion
	ks.Epoch++
	ks.Forks = append(ks.Forks, c.Forks...)
	return nil
}

func (s *Store) applyLost(b *storage.Batch, st *State, c *LostWrites) error {
	ks := st.Keyspaces[c.Keyspace]
	if ks == nil {
		return fmt.Errorf("%w: %q", ErrUnknownKeyspace, c.Keyspace)
	}
	i := slices.IndexFunc(ks.Forks, func(f Fork) bool { return f.Epoch == c.Epoch && f.Group == c.Group })
	if i < 0 {
		return fmt.Errorf("%w: keyspace %q has no fork of group %d at epoch %d", ErrBadCommand, c.Keyspace, c.Group, c.Epoch)
	}
	f := &ks.Forks[i]
	if f.Reported {
		return nil // a retried report: recorded already
	}
	for _, w := range c.Writes {
		v, err := json.Marshal(w)
		if err != nil {
			return fmt.Errorf("%w: lost write: %w", errEncode, err)
		}
		b.SetData(SystemGroup, LostKey(c.Keyspace, c.Epoch, c.Group, w.Index), v)
	}
	f.LostWrites += len(c.Writes)
	if c.Final {
		f.Reported = true
	}
	return nil
}

func (s *Store) applyAlter(st *State, c *AlterRegions) error {
	ks := st.Keyspaces[c.Keyspace]
	if ks == nil {
		return fmt.Errorf("%w: %q", ErrUnknownKeyspace, c.Keyspace)
	}
	if ks.Strategy != Async && ks.Strategy != Active {
		return fmt.Errorf("%w: %q is %s; only async and active keyspaces change regions online", ErrNotAsync, ks.Name, ks.Strategy)
	}
	switch {
	case c.Add != "" && c.Remove == "":
		if slices.Contains(ks.Regions, c.Add) {
			return fmt.Errorf("%w: keyspace %q already has region %q", ErrInvalidSpec, ks.Name, c.Add)
		}
		if len(c.AddVoters) != len(ks.Shards) {
			return fmt.Errorf("%w: %d voter lists for %d shards", ErrBadCommand, len(c.AddVoters), len(ks.Shards))
		}
		for i := range ks.Shards {
			for _, id := range c.AddVoters[i] {
				if n, ok := st.Nodes[id]; !ok || n.Region != c.Add {
					return fmt.Errorf("%w: node %d is not in region %q", ErrPlacement, id, c.Add)
				}
			}
			ks.Shards[i].Regional = append(ks.Shards[i].Regional, RegionalGroup{
				Region: c.Add, Group: st.NextGroup, Replicas: slices.Clone(c.AddVoters[i]), Initial: slices.Clone(c.AddVoters[i]),
			})
			st.NextGroup++
		}
		ks.Regions = append(ks.Regions, c.Add)
	case c.Remove != "" && c.Add == "":
		if !slices.Contains(ks.Regions, c.Remove) {
			return fmt.Errorf("%w: keyspace %q has no region %q", ErrInvalidSpec, ks.Name, c.Remove)
		}
		if c.Remove == ks.HomeRegion {
			return fmt.Errorf("%w: %q is the home region of %q (for async keyspaces its primary: switch over first)", ErrInvalidSpec, c.Remove, ks.Name)
		}
		for i := range ks.Shards {
			ks.Shards[i].Regional = slices.DeleteFunc(ks.Shards[i].Regional, func(rg RegionalGroup) bool {
				if rg.Region == c.Remove {
					st.Retired = append(st.Retired, rg.Group)
					return true
				}
				return false
			})
		}
		ks.Regions = slices.DeleteFunc(ks.Regions, func(r string) bool { return r == c.Remove })
	default:
		return fmt.Errorf("%w: alter adds or removes exactly one region", ErrBadCommand)
	}
	return nil
}
