package metadata

import (
	"errors"

	"fmt"
	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/crdt"
	"regexp"
	"slices"
)

// Strategy is how a keyspace is replicated between regions.
type Strategy string

// Strategies (see docs/DESIGN.md section 2).
const (
	Sync   Strategy = "sync"
	Async  Strategy = "async"
	Active Strategy = "active"
)

// SystemGroup is the raft group id of the metadata group.
const SystemGroup uint64 = 1

// firstDataGroup is the first group id handed to keyspace shards.
const firstDataGroup uint64 = 100

// Errors.
var (
	ErrKeyspaceExists  = errors.New("metadata: keyspace already exists")
	ErrUnknownKeyspace = errors.New("metadata: unknown keyspace")
	ErrInvalidSpec     = errors.New("metadata: invalid keyspace specification")
	ErrPlacement       = errors.New("metadata: cannot place replicas")
	ErrBadCommand      = errors.New("metadata: malformed command")
	// ErrUnsupported is wrapped, with ErrBadCommand, by the error about a
	// command whose op this binary does not know (a newer one proposed it).
	// Applying it is fatal (see Store.Apply).
	ErrUnsupported = errors.New("metadata: command from a newer binary (unknown op)")
	// ErrMembersDiffer: a member proposed initial members other than
	// those the cluster was formed with (its --peers differ).
	ErrMembersDiffer = errors.New("metadata: initial members differ")
	// ErrTimingsDiffer: a node's lease-critical timings (Timings) are not
	// the cluster's.
	ErrTimingsDiffer = errors.New("metadata: timings differ from the cluster's")
)

// NodeInfo describes one node.
type NodeInfo struct {
	ID     uint64 `json:"id"`
	Region string `json:"region"`
	Zone   string `json:"zone,omitempty"`
	Addr   string `json:"addr"`
	// RESPAddr and HTTPAddr are where clients reach the node (may be empty).
	RESPAddr string `json:"resp_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Joined is set once the node itself has registered: it has run and
	// joined the cluster. An initial member recorded from the others'
	// --peers, or a node admitted that has not started yet, is known (its
	// region counts among the cluster's) but not joined, and holds no
	// replica until it is.
	Joined bool `json:"joined,omitempty"`
}

// KeyspaceSpec is what a user asks for when creating a keyspace.
type KeyspaceSpec struct {
	Name     string   `json:"name"`
	Strategy Strategy `json:"strategy"`
	// Regions that hold replicas. Empty means every region of the
	// cluster: of every member, initial or admitted, joined or not yet.
	Regions []string `json:"regions,omitempty"`
	// HomeRegion is where leaders are kept (sync) or the primary (async).
	// Empty means the first of Regions.
	HomeRegion string `json:"home_region,omitempty"`
	// Shards is the number of hash ranges. Zero means 4.
	Shards int `json:"shards,omitempty"`
	// Replicas is the number of voters of each shard's spanning group for
	// sync keyspaces. Zero means 3.
	Replicas int `json:"replicas,omitempty"`
	// RPOBudgetMS, for async keyspaces, bounds how far (in ms) a replica
	// region may lag: beyond half of it writes at the primary are slowed
	// down, beyond it they are refused. Zero means no budget.
	RPOBudgetMS int64 `json:"rpo_budget_ms,omitempty"`
	// Consistency is the default read level of the keyspace (see package
	// consistency): strong for sync and async keyspaces, session for
	// active ones, if empty.
	Consistency string `json:"consistency,omitempty"`
	// Resolver, for active keyspaces, names the function (registered with
	// crdt.RegisterResolver in every node's program) that picks the value
	// of a register written concurrently in several regions, instead of
	// last-writer-wins.
	Resolver string `json:"resolver,omitempty"`
}

// MaxShards bounds the shards of one keyspace.
const MaxShards = 256

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Normalize fills defaults and validates the spec against the cluster's regions.
func (s KeyspaceSpec) Normalize(clusterRegions []string) (KeyspaceSpec, error) {
	if !nameRE.MatchString(s.Name) {
		return s, fmt.Errorf("%w: name %q must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", ErrInvalidSpec, s.Name)
	}
	if s.Strategy == "" {
		s.Strategy = Sync
	}
	switch s.Strategy {
	case Sync, Async, Active:
	default:
		return s, fmt.Errorf("%w: unknown strategy %q (want sync, async or active)", ErrInvalidSpec, s.Strategy)
	}
	if len(s.Regions) == 0 {
		s.Regions = slices.Clone(clusterRegions)
	}
	seen := map[string]bool{}
	for _, r := range s.Regions {
		if !slices.Contains(clusterRegions, r) {
			return s, fmt.Errorf("%w: unknown region %q: no member of the cluster is in it (the cluster's regions: %v)", ErrInvalidSpec, r, clusterRegions)
		}
		if seen[r] {
			return s, fmt.Errorf("%w: region %q listed twice", ErrInvalidSpec, r)
		}
		seen[r] = true
	}
	if s.HomeRegion == "" {
		s.HomeRegion = s.Regions[0]
	} else if !seen[s.HomeRegion] {
		return s, fmt.Errorf("%w: home region %q is not one of the keyspace's regions %v", ErrInvalidSpec, s.HomeRegion, s.Regions)
	}
	if s.Shards == 0 {
		s.Shards = 4
	}
	if s.Shards < 1 || s.Shards > MaxShards {
		return s, fmt.Errorf("%w: shards must be between 1 and %d, got %d", ErrInvalidSpec, MaxShards, s.Shards)
	}
	if s.Replicas == 0 {
		s.Replicas = 3
	}
	if s.Replicas < 1 || s.Replicas > 7 {
		return s, fmt.Errorf("%w: replicas must be between 1 and 7, got %d", ErrInvalidSpec, s.Replicas)
	}
	if s.RPOBudgetMS < 0 || s.RPOBudgetMS > 24*3600*1000 {
		return s, fmt.Errorf("%w: RPO budget must be between 0 and 24h, got %dms", ErrInvalidSpec, s.RPOBudgetMS)
	}
	if s.Consistency != "" {
		r, err := consistency.Parse(s.Consistency)
		if err != nil {
			return s, fmt.Errorf("%w: default consistency: %w", ErrInvalidSpec, err)
		}
		if r.Level == consistency.Strong && s.Strategy == Active {
			return s, fmt.Errorf("%w: active keyspaces have no strong reads", ErrInvalidSpec)
		}
		s.Consistency = r.String()
	}
	if s.Resolver != "" {
		if s.Strategy != Active {
			return s, fmt.Errorf("%w: a resolver applies to active keyspaces only", ErrInvalidSpec)
		}
		if _, err := crdt.LookupResolver(s.Resolver); err != nil {
			return s, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
	}
	if s.RPOBudgetMS != 0 && s.Strategy != Async {
		return s, fmt.Errorf("%w: an RPO budget applies to async keyspaces only", ErrInvalidSpec)
	}
	return s, nil
}

// Shard is one hash range of a keyspace and the group that holds it.
type Shard struct {
	Index int    `json:"index"`
	Group uint64 `json:"group"`
	// Replicas are the voters, the preferred leader first.
	Replicas []uint64 `json:"replicas"`
	// Initial are the voters the group was created with; they bootstrap
	// it. Replicas added later start empty and are caught up by snapshot.
	Initial []uint64 `json:"initial"`
	// Regional lists, for async and active keyspaces, the shard's
	// region-local group in every region of the keyspace; Group, Replicas
	// and Initial above are then those of the primary (home) region's
	// group (for active keyspaces, where every region writes, the home
	// region's only names the shard).
	Regional []RegionalGroup `json:"regional,omitempty"`
}

// RegionalGroup is a shard's region-local group in one region.
type RegionalGroup struct {
	Region   string   `json:"region"`
	Group    uint64   `json:"group"`
	Replicas []uint64 `json:"replicas"`
	Initial  []uint64 `json:"initial"`
}

// Groups returns the shard's data groups: its one group, or its
// region-local groups (active and async keyspaces).
func (s Shard) Groups() []uint64 {
	if len(s.Regional) == 0 {
		return []uint64{s.Group}
	}
	out := make([]uint64, len(s.Regional))
	for i, rg := range s.Regional {
		out[i] = rg.Group
	}
	return out
}

// RegionalIn returns the shard's group in a region, if it has one.
func (s Shard) RegionalIn(region string) (RegionalGroup, bool) {
	for _, rg := range s.Regional {
		if rg.Region == region {
			return rg, true
		}
	}
	return RegionalGroup{}, false
}

// Keyspace is a keyspace as recorded in the metadata.
type Keyspace struct {
	KeyspaceSpec
	Shards []Shard `json:"shard_list"`
	// CreatedIndex is the metadata log index that created it.
	CreatedIndex uint64 `json:"created_index"`
	// Epoch is the replication epoch of an async keyspace: 1 at creation,
	// one more at every switchover or failover.
	Epoch uint64 `json:"epoch,omitempty"`
	// Forks are the failovers' cuts of history (see Fork).
	Forks []Fork `json:"forks,omitempty"`
	// Restore is set while the keyspace is being restored, under a hidden
	// name (backup.go).
	Restore *RestoreInfo `json:"restore,omitempty"`
}

// State is the whole cluster metadata.
type State struct {
	Nodes     map[uint64]NodeInfo  `json:"nodes"`
	Keyspaces map[string]*Keyspace `json:"keyspaces"`
	NextGroup uint64               `json:"next_group"`
	// Retired lists groups of regions removed from keyspaces; their nodes
	// delete them.
	Retired []uint64 `json:"retired,omitempty"`
	// InitialMembers are the ids of the cluster's initial members (the
	// --peers every one of them started with), sorted, recorded by the
	// first init_cluster command; they are in Nodes from then on, joined
	// or not.
	InitialMembers []uint64 `json:"initial_members,omitempty"`
	// Timings are the cluster's lease-critical timings, recorded with
	// the initial members (nil in a cluster formed before they were).
	Timings *Timings `json:"timings,omitempty"`
	// Users are the cluster's users (users.go).
	Users map[string]*auth.User `json:"users,omitempty"`
	// Backup is the cluster's backup schedule (nil: none; backup.go).
	Backup *BackupSchedule `json:"backup,omitempty"`
	Index  uint64          `json:"index"`
}

func newState() *State {
	return &State{Nodes: map[uint64]NodeInfo{}, Keyspaces: map[string]*Keyspace{}, NextGroup: firstDataGroup}
}

// Regions returns the sorted regions that have nodes (joined or not).
func (s *State) Regions() []string {
	var out []string
	for _, n := range s.Nodes {
		if !slices.Contains(out, n.Region) {
			out = append(out, n.Region)
		}
	}
	slices.Sort(out)
	return out
}
