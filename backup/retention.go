package backup

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Retention says which backups to keep: the newest KeepLast (0: no limit
// by count) and those taken within KeepWithin of now (0: no limit by
// age); a backup either rule keeps is kept, and the newest backup always
// is. Objects nothing kept refers to are deleted once older than Grace
// (default DefaultGrace): a backup being written refers to its objects
// only when its manifest is written, last.
type Retention struct {
	KeepLast   int
	KeepWithin time.Duration
	Grace      time.Duration
}

// DefaultGrace protects the objects of backups in progress.
const DefaultGrace = 6 * time.Hour

// PruneReport says what Prune deleted.
type PruneReport struct {
	Manifests []string `json:"manifests"`
	Kept      []string `json:"kept"`
	Objects   int      `json:"objects"`
	Bytes     int64    `json:"bytes"`
}

// Prune deletes the backups the retention does not keep, then every
// object no kept backup needs: a base part no kept manifest names, and a
// segment that ends at or below the oldest base a kept backup has of its
// group (the log after a kept base is never deleted: it is what restores
// to a time after that backup use). Objects of groups no kept backup
// names, and unreferenced bases, go once older than the grace period.
// Manifests go first: an interrupted prune leaves orphans, which the next
// removes, never a backup missing an object.
func Prune(ctx context.Context, s *Store, r Retention, now time.Time) (PruneReport, error) {
	var rep PruneReport
	if r.Grace == 0 {
		r.Grace = DefaultGrace
	}
	ms, _, err := s.Manifests(ctx)
	if err != nil {
		return rep, err
	}
	if len(ms) == 0 {
		return rep, nil
	}
	var kept []*Manifest
	for i, m := range ms {
		created, _ := time.Parse(time.RFC3339Nano, m.Created)
		keep := i == len(ms)-1 ||
			(r.KeepLast > 0 && i >= len(ms)-r.KeepLast) ||
			(r.KeepWithin > 0 && now.Sub(created) <= r.KeepWithin) ||
			(r.KeepLast == 0 && r.KeepWithin == 0)
		if keep {
			kept = append(kept, m)
			rep.Kept = append(rep.Kept, m.ID)
			continue
		}
		if err := s.T.Delete(ctx, ManifestName(m.ID)); err != nil {
			return rep, err
		}
		rep.Manifests = append(rep.Manifests, m.ID)
	}
	referenced := map[string]bool{}
	floor := map[uint64]uint64{} // group -> lowest base index of a kept backup
	for _, m := range kept {
		for _, o := range m.Objects() {
			referenced[o.Name] = true
		}
		for _, ks := range m.Keyspaces {
			for _, sh := range ks.Shards {
				for _, g := range sh.Groups {
					if f, ok := floor[g.Group]; !ok || g.BaseIndex < f {
						floor[g.Group] = g.BaseIndex
					}
				}
			}
		}
	}
	objs, err := s.T.List(ctx, groupsPrefix)
	if err != nil {
		return rep, err
	}
	for _, o := range objs {
		if referenced[o.Name] {
			continue
		}
		old := now.Sub(o.ModTime) > r.Grace
		del := false
		if g, _, last, ok := ParseSegmentName(o.Name); ok {
			f, named := floor[g]
			del = (named && last <= f) || (!named && old)
		} else if groupOf(o.Name) != 0 {
			del = old // a base part no kept backup names
		}
		if !del {
			continue
		}
		if err := s.T.Delete(ctx, o.Name); err != nil {
			return rep, err
		}
		rep.Objects++
		rep.Bytes += o.Size
	}
	return rep, nil
}

// groupOf returns the group an object name belongs to (0: none).
func groupOf(name string) uint64 {
	rest, ok := strings.CutPrefix(name, groupsPrefix)
	if !ok {
		return 0
	}
	g, _, _ := strings.Cut(rest, "/")
	id, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return 0
	}
	return id
}
