package metadata

import (
	"errors"
	"fmt"
	"slices"

	"github.com/meridian-db/meridian/hlc"
)

// Restores and backup schedules (package backup, docs/DESIGN.md 8).
//
// A restore builds a keyspace under a hidden name: a keyspace whose
// Restore is set, created by create_keyspace like any other (its groups
// are placed and created the same way), which clients cannot reach
// (Store.Keyspace does not return it; only code that reads the State
// itself sees it). Once its data is loaded, one command, finish_restore,
// gives it its name: the keyspace appears whole, or, if the restore is
// cancelled (cancel_restore) or never finishes, not at all. Replacing a
// keyspace by its restored self is the same command with Replace set: the
// old keyspace's groups are retired (their nodes delete them) in the same
// step.

// ErrRestoring is wrapped by the error about a keyspace being restored
// (hidden until the restore finishes), and by restore commands that do
// not fit the restore's state.
var ErrRestoring = errors.New("metadata: keyspace is being restored")

// RestoreInfo marks a keyspace being restored and says into what.
type RestoreInfo struct {
	// ID identifies the restore (to resume or cancel it).
	ID string `json:"id"`
	// Target is the name the keyspace takes when the restore finishes;
	// Replace allows it to replace a keyspace of that name.
	Target  string `json:"target"`
	Replace bool   `json:"replace,omitempty"`
	// Keyspace is the keyspace's name in the backup; Source the backup
	// target's URL (no credentials), Backup the manifest's id and At the
	// time restored (RFC 3339): what resuming the restore needs.
	Keyspace string `json:"keyspace,omitempty"`
	Source   string `json:"source,omitempty"`
	Backup   string `json:"backup,omitempty"`
	At       string `json:"at,omitempty"`
	// Cut is the exact time restored to.
	Cut hlc.Timestamp `json:"cut"`
}

// FinishRestore gives a restored keyspace its name (finish_restore).
type FinishRestore struct {
	// Name is the hidden keyspace's name, ID its restore's id.
	Name string `json:"name"`
	ID   string `json:"id"`
}

// CancelRestore drops a keyspace being restored (cancel_restore).
type CancelRestore struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// BackupSchedule is the cluster's backup schedule (backup_schedule): its
// nodes archive the logs of the keyspaces named (all if empty) to Target
// continuously, and take a full backup every FullEveryMS and an
// incremental one every IncrementalEveryMS (0: never), keeping what the
// retention allows. Credentials are never part of it: each node reads its
// own (configuration or environment).
type BackupSchedule struct {
	Target             string   `json:"target"`
	Keyspaces          []string `json:"keyspaces,omitempty"`
	Archive            bool     `json:"archive"`
	FullEveryMS        int64    `json:"full_every_ms,omitempty"`
	IncrementalEveryMS int64    `json:"incremental_every_ms,omitempty"`
	// RetainCount keeps the newest N backups (0: no limit by count);
	// RetainMS keeps those newer than this (0: no limit by age). A backup
	// either keeps is kept.
	RetainCount int   `json:"retain_count,omitempty"`
	RetainMS    int64 `json:"retain_ms,omitempty"`
}

// Covers reports whether the schedule covers a keyspace.
func (b *BackupSchedule) Covers(keyspace string) bool {
	return b != nil && (len(b.Keyspaces) == 0 || slices.Contains(b.Keyspaces, keyspace))
}

// restoreKeyspace returns the hidden keyspace name that restore id fills.
func restoreKeyspace(st *State, name, id string) (*Keyspace, error) {
	ks := st.Keyspaces[name]
	switch {
	case ks == nil:
		return nil, fmt.Errorf("%w: %q", ErrUnknownKeyspace, name)
	case ks.Restore == nil || ks.Restore.ID != id:
		return nil, fmt.Errorf("%w: %q is not restore %s's keyspace", ErrRestoring, name, id)
	}
	return ks, nil
}

// applyFinishRestore gives the hidden keyspace its name, replacing the
// keyspace of that name if the restore was told to (its groups retired).
func (s *Store) applyFinishRestore(st *State, c *FinishRestore) error {
	ks, err := restoreKeyspace(st, c.Name, c.ID)
	if err != nil {
		return err
	}
	target := ks.Restore.Target
	if old := st.Keyspaces[target]; old != nil {
		if !ks.Restore.Replace {
			return fmt.Errorf("%w: %q", ErrKeyspaceExists, target)
		}
		if old.Restore != nil {
			return fmt.Errorf("%w: %q is itself being restored", ErrRestoring, target)
		}
		retireGroups(st, old)
		delete(st.Keyspaces, target)
	}
	delete(st.Keyspaces, c.Name)
	ks.Name = target
	ks.Restore = nil
	st.Keyspaces[target] = ks
	return nil
}

// applyCancelRestore drops a hidden keyspace and retires its groups.
func (s *Store) applyCancelRestore(st *State, c *CancelRestore) error {
	ks, err := restoreKeyspace(st, c.Name, c.ID)
	if err != nil {
		return err
	}
	retireGroups(st, ks)
	delete(st.Keyspaces, c.Name)
	return nil
}

// retireGroups lists a keyspace's groups as retired: their nodes delete
// them.
func retireGroups(st *State, ks *Keyspace) {
	for _, sh := range ks.Shards {
		if !slices.Contains(st.Retired, sh.Group) {
			st.Retired = append(st.Retired, sh.Group)
		}
		for _, rg := range sh.Regional {
			if !slices.Contains(st.Retired, rg.Group) {
				st.Retired = append(st.Retired, rg.Group)
			}
		}
	}
}

// applySchedule sets (or, with an empty target, removes) the backup
// schedule.
func (s *Store) applySchedule(st *State, c *BackupSchedule) error {
	if c.Target == "" {
		st.Backup = nil
		return nil
	}
	if c.FullEveryMS < 0 || c.IncrementalEveryMS < 0 || c.RetainCount < 0 || c.RetainMS < 0 {
		return fmt.Errorf("%w: negative backup schedule values", ErrBadCommand)
	}
	b := *c
	st.Backup = &b
	return nil
}

// Restoring returns the keyspace being restored by restore id, if any.
func (s *State) Restoring(id string) *Keyspace {
	for _, ks := range s.Keyspaces {
		if ks.Restore != nil && ks.Restore.ID == id {
			return ks
		}
	}
	return nil
}
