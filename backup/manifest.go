package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
)

// FormatVersion is the version of the backup format this binary writes
// and reads (docs/backup-format.md).
const FormatVersion = 1

// Format is the target's format record (FormatName, plain JSON): what
// kind of target this is, and whether its objects are encrypted (with
// which key, by a check value that does not reveal it).
type Format struct {
	Format    string `json:"format"` // "meridian-backup"
	Version   int    `json:"version"`
	Cluster   string `json:"cluster"`
	Encrypted bool   `json:"encrypted"`
	KeyCheck  string `json:"key_check,omitempty"`
	Created   string `json:"created"`
}

const formatTag = "meridian-backup"

// Store is a backup target with the options to read and write it.
type Store struct {
	T   Target
	key []byte
}

// NewStore wraps a target; key, if set, encrypts and decrypts.
func NewStore(t Target, key []byte) *Store { return &Store{T: t, key: key} }

// OpenStore opens the target a URL names (see Open) with o.
func OpenStore(rawURL string, o Options) (*Store, error) {
	t, err := Open(rawURL, o)
	if err != nil {
		return nil, err
	}
	return NewStore(t, o.Key), nil
}

// Encrypted reports whether the store writes encrypted objects.
func (s *Store) Encrypted() bool { return len(s.key) > 0 }

// Init checks the target's format record against this store (cluster,
// encryption and key) and writes it if the target has none yet.
func (s *Store) Init(ctx context.Context, cluster string) error {
	f, err := s.ReadFormat(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		f = Format{Format: formatTag, Version: FormatVersion, Cluster: cluster, Encrypted: s.Encrypted(), KeyCheck: keyCheck(s.key),
			Created: time.Now().UTC().Format(time.RFC3339)}
		b, _ := json.MarshalIndent(f, "", "  ")
		return s.T.Put(ctx, FormatName, append(b, '\n'))
	case err != nil:
		return err
	}
	if cluster != "" && f.Cluster != "" && f.Cluster != cluster {
		return fmt.Errorf("%w: %s holds backups of cluster %s, not %s", ErrTarget, s.T, f.Cluster, cluster)
	}
	return nil
}

// ReadFormat reads and checks the target's format record (and the key
// against it).
func (s *Store) ReadFormat(ctx context.Context) (Format, error) {
	b, err := s.T.Get(ctx, FormatName)
	if err != nil {
		return Format{}, err
	}
	var f Format
	if err := json.Unmarshal(b, &f); err != nil || f.Format != formatTag {
		return Format{}, fmt.Errorf("%w: %s: %s is not a Meridian backup format record", ErrFormat, s.T, FormatName)
	}
	if f.Version > FormatVersion {
		return Format{}, fmt.Errorf("%w: %s: format version %d (this binary knows %d)", ErrFormat, s.T, f.Version, FormatVersion)
	}
	switch {
	case f.Encrypted && len(s.key) == 0:
		return Format{}, fmt.Errorf("%w: %s is encrypted: give the key", ErrKey, s.T)
	case !f.Encrypted && len(s.key) > 0:
		return Format{}, fmt.Errorf("%w: %s is not encrypted, but a key was given", ErrKey, s.T)
	case f.Encrypted && f.KeyCheck != keyCheck(s.key):
		return Format{}, fmt.Errorf("%w: %s was encrypted with another key", ErrKey, s.T)
	}
	return f, nil
}

// Put seals and stores an object, returning its reference.
func (s *Store) put(ctx context.Context, name string, kind byte, payload []byte) (ObjectRef, error) {
	data, err := sealObject(name, kind, payload, s.key)
	if err != nil {
		return ObjectRef{}, err
	}
	if err := s.T.Put(ctx, name, data); err != nil {
		return ObjectRef{}, err
	}
	return ObjectRef{Name: name, SHA256: Checksum(data), Size: int64(len(data))}, nil
}

// get reads and opens an object; with a reference, its checksum and size
// must be the recorded ones.
func (s *Store) get(ctx context.Context, name string, kind byte, ref *ObjectRef) ([]byte, error) {
	data, err := s.T.Get(ctx, name)
	if ref != nil && errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %s is missing: %w", ErrCorrupt, name, err)
	}
	if err != nil {
		return nil, err
	}
	if ref != nil {
		if int64(len(data)) != ref.Size {
			return nil, fmt.Errorf("%w: %s: %d bytes, the manifest records %d (truncated?)", ErrCorrupt, name, len(data), ref.Size)
		}
		if Checksum(data) != ref.SHA256 {
			return nil, fmt.Errorf("%w: %s: SHA-256 differs from the manifest's", ErrCorrupt, name)
		}
	}
	return openObject(name, kind, data, s.key)
}

// ObjectRef is an object as a manifest records it.
type ObjectRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// First and Last: the entries a segment holds.
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last,omitempty"`
}

// Manifest describes one backup: a cut of one or more keyspaces, and
// every object a restore of it needs. It is written last: a backup with
// no manifest does not exist.
type Manifest struct {
	Format int    `json:"format"`
	ID     string `json:"id"`
	// Kind is "full" (every group has a new base) or "incremental" (groups
	// keep their parent's base; only the log since it is new).
	Kind    string `json:"kind"`
	Parent  string `json:"parent,omitempty"`
	Cluster string `json:"cluster"`
	Created string `json:"created"`
	// Cut is the time of the backup: each group's state is the prefix of
	// its log stamped at or before it.
	Cut     hlc.Timestamp `json:"cut"`
	CutTime string        `json:"cut_time"`
	// Keyspaces backed up.
	Keyspaces []KeyspaceBackup `json:"keyspaces"`
	// Bytes is the size of every object the backup refers to; NewBytes
	// those this backup wrote itself; Keys the keys of the bases.
	Bytes    int64 `json:"bytes"`
	NewBytes int64 `json:"new_bytes"`
	Keys     int64 `json:"keys"`
	Entries  int64 `json:"entries"`
	// DurationMS is how long the backup took.
	DurationMS int64 `json:"duration_ms"`
}

// KeyspaceBackup is one keyspace of a backup.
type KeyspaceBackup struct {
	Spec metadata.KeyspaceSpec `json:"spec"`
	// Epoch of an async keyspace when the backup was taken.
	Epoch  uint64        `json:"epoch,omitempty"`
	Shards []ShardBackup `json:"shards"`
}

// ShardBackup is one shard: its group (sync), or its groups in every
// region (async, active).
type ShardBackup struct {
	Index  int           `json:"index"`
	Groups []GroupBackup `json:"groups"`
}

// GroupBackup is one group's part of a backup: a base, and the log after
// it up to and past the cut (to SealIndex, an entry stamped after the
// cut, which proves no entry at or before it can follow).
type GroupBackup struct {
	Group  uint64 `json:"group"`
	Region string `json:"region,omitempty"`
	// Primary: the shard's primary group in the metadata when the backup
	// was taken (async).
	Primary bool `json:"primary,omitempty"`
	// BaseIndex and BaseStamp: the group's applied index in the base, and
	// a bound on the stamps of every entry at or below it.
	BaseIndex uint64        `json:"base_index"`
	BaseStamp hlc.Timestamp `json:"base_stamp"`
	BaseParts []ObjectRef   `json:"base_parts"`
	BaseKeys  int64         `json:"base_keys"`
	// CutIndex is the last entry stamped at or before the cut; SealIndex
	// the entry whose stamp, after the cut, seals it.
	CutIndex  uint64      `json:"cut_index"`
	SealIndex uint64      `json:"seal_index"`
	Segments  []ObjectRef `json:"segments"`
}

// Group returns the manifest's record of a group.
func (m *Manifest) Group(id uint64) (*GroupBackup, bool) {
	for i := range m.Keyspaces {
		for j := range m.Keyspaces[i].Shards {
			for k := range m.Keyspaces[i].Shards[j].Groups {
				if g := &m.Keyspaces[i].Shards[j].Groups[k]; g.Group == id {
					return g, true
				}
			}
		}
	}
	return nil, false
}

// Keyspace returns the manifest's record of a keyspace.
func (m *Manifest) Keyspace(name string) (*KeyspaceBackup, bool) {
	for i := range m.Keyspaces {
		if m.Keyspaces[i].Spec.Name == name {
			return &m.Keyspaces[i], true
		}
	}
	return nil, false
}

// Objects lists every object the manifest refers to.
func (m *Manifest) Objects() []ObjectRef {
	var out []ObjectRef
	for _, ks := range m.Keyspaces {
		for _, sh := range ks.Shards {
			for _, g := range sh.Groups {
				out = append(out, g.BaseParts...)
				out = append(out, g.Segments...)
			}
		}
	}
	return out
}

// NewBackupID returns the id of a backup taken at t: sortable by time.
func NewBackupID(t time.Time) string {
	return t.UTC().Format("20060102T150405.000Z") + "-" + NewWriterTag()
}

// WriteManifest stores a manifest (last, after every object it names).
func (s *Store) WriteManifest(ctx context.Context, m *Manifest) (ObjectRef, error) {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return ObjectRef{}, fmt.Errorf("backup: encode manifest: %w", err)
	}
	return s.put(ctx, ManifestName(m.ID), kindManifest, b)
}

// ReadManifest reads a backup's manifest by id.
func (s *Store) ReadManifest(ctx context.Context, id string) (*Manifest, error) {
	name := ManifestName(id)
	b, err := s.get(ctx, name, kindManifest, nil)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, name, err)
	}
	if m.Format > FormatVersion {
		return nil, fmt.Errorf("%w: %s: format %d (this binary knows %d)", ErrFormat, name, m.Format, FormatVersion)
	}
	if m.ID != id {
		return nil, fmt.Errorf("%w: %s holds the manifest of %q", ErrCorrupt, name, m.ID)
	}
	return &m, nil
}

// ManifestIDs lists the ids of the target's backups, oldest first.
func (s *Store) ManifestIDs(ctx context.Context) ([]string, error) {
	objs, err := s.T.List(ctx, manifestPrefix)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, o := range objs {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Name, manifestPrefix), manifestSuffix); ok && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Manifests reads every manifest of the target, oldest first. A manifest
// that cannot be read is returned in bad (with its error), not skipped
// silently.
func (s *Store) Manifests(ctx context.Context) (good []*Manifest, bad map[string]error, err error) {
	ids, err := s.ManifestIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	bad = map[string]error{}
	for _, id := range ids {
		m, err := s.ReadManifest(ctx, id)
		if err != nil {
			if errors.Is(err, ErrKey) {
				return nil, nil, err
			}
			bad[id] = err
			continue
		}
		good = append(good, m)
	}
	return good, bad, nil
}

// Latest returns the newest readable manifest covering every keyspace of
// names (all of the cluster's if empty: any manifest), or nil.
func Latest(ms []*Manifest, names []string) *Manifest {
	for i := len(ms) - 1; i >= 0; i-- {
		ok := true
		for _, n := range names {
			if _, found := ms[i].Keyspace(n); !found {
				ok = false
			}
		}
		if ok {
			return ms[i]
		}
	}
	return nil
}

// KeyspaceNames lists the keyspaces of a manifest.
func (m *Manifest) KeyspaceNames() []string {
	var out []string
	for _, ks := range m.Keyspaces {
		out = append(out, ks.Spec.Name)
	}
	slices.Sort(out)
	return out
}
