package backup

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
)

// Problem is something wrong with a backup target, naming the object.
type Problem struct {
	Object string `json:"object"`
	Backup string `json:"backup,omitempty"`
	Err    string `json:"error"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Backups  int       `json:"backups"`
	Objects  int       `json:"objects"`
	Bytes    int64     `json:"bytes"`
	Segments int       `json:"archive_segments"`
	Problems []Problem `json:"problems"`
}

// OK reports whether nothing was found wrong.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks a whole target: its format record; every manifest; every
// object each names (present, its size and SHA-256 as recorded, its
// envelope's checksum, its contents decoding as the manifest says: a
// base's parts complete, a log's segments contiguous from the base to
// past the cut, the entry after the cut stamped after it); and every
// archived segment no manifest names (its checksum, and holes in each
// group's archive after its newest backup). Each problem names the
// object. An encrypted target needs its key.
func Verify(ctx context.Context, s *Store) (VerifyReport, error) {
	var rep VerifyReport
	if _, err := s.ReadFormat(ctx); err != nil {
		return rep, err
	}
	ms, bad, err := s.Manifests(ctx)
	if err != nil {
		return rep, err
	}
	for id, err := range bad {
		rep.Problems = append(rep.Problems, Problem{Object: ManifestName(id), Backup: id, Err: err.Error()})
	}
	rep.Backups = len(ms)
	checked := map[string]error{}
	problem := func(m *Manifest, object string, err error) {
		rep.Problems = append(rep.Problems, Problem{Object: object, Backup: m.ID, Err: err.Error()})
	}
	newest := map[uint64]uint64{} // group -> highest seal index of a backup
	for _, m := range ms {
		for _, ks := range m.Keyspaces {
			for _, sh := range ks.Shards {
				for _, g := range sh.Groups {
					if g.SealIndex > newest[g.Group] {
						newest[g.Group] = g.SealIndex
					}
					for i, ref := range g.BaseParts {
						err, seen := checked[ref.Name]
						if !seen {
							err = s.checkBasePart(ctx, g, i, ref)
							checked[ref.Name] = err
							rep.Objects++
							rep.Bytes += ref.Size
						}
						if err != nil {
							problem(m, ref.Name, err)
						}
					}
					if err := s.checkLog(ctx, m, g, checked, &rep); err != nil {
						problem(m, err.object, err.err)
					}
				}
			}
		}
	}
	// The archive: segments no manifest names.
	objs, err := s.T.List(ctx, groupsPrefix)
	if err != nil {
		return rep, err
	}
	byGroup := map[uint64][]ObjectRef{}
	for _, o := range objs {
		g, first, last, ok := ParseSegmentName(o.Name)
		if !ok {
			continue
		}
		byGroup[g] = append(byGroup[g], ObjectRef{Name: o.Name, Size: o.Size, First: first, Last: last})
		if _, seen := checked[o.Name]; seen {
			continue
		}
		rep.Segments++
		if _, err := s.readSegment(ctx, g, ObjectRef{Name: o.Name, First: first, Last: last}); err != nil {
			rep.Problems = append(rep.Problems, Problem{Object: o.Name, Err: err.Error()})
		}
	}
	for g, refs := range byGroup {
		from, ok := newest[g]
		if !ok {
			continue
		}
		sortRefs(refs)
		// Contiguous from the newest backup's seal to the last segment?
		_, reach := Chain(refs, from)
		for _, r := range refs {
			if r.First > reach+1 {
				rep.Problems = append(rep.Problems, Problem{Object: SegmentPrefix(g),
					Err: fmt.Sprintf("%v: group %d's archive has a hole: entries %d..%d are in no segment (the next is %s)", ErrCorrupt, g, reach+1, r.First-1, r.Name)})
				break
			}
		}
	}
	sort.Slice(rep.Problems, func(i, j int) bool { return rep.Problems[i].Object < rep.Problems[j].Object })
	return rep, nil
}

func (s *Store) checkBasePart(ctx context.Context, g GroupBackup, i int, ref ObjectRef) error {
	b, err := s.get(ctx, ref.Name, kindBase, &ref)
	if err != nil {
		return err
	}
	p, err := decodeBasePart(ref.Name, b)
	if err != nil {
		return err
	}
	if p.Group != g.Group || p.Index != g.BaseIndex || p.Part != i || p.Final != (i == len(g.BaseParts)-1) {
		return fmt.Errorf("%w: %s: part %d of group %d at %d, where the manifest expects part %d of %d of group %d at %d",
			ErrCorrupt, ref.Name, p.Part, p.Group, p.Index, i, len(g.BaseParts), g.Group, g.BaseIndex)
	}
	return nil
}

type objectError struct {
	object string
	err    error
}

// checkLog checks a group's segments in a manifest: each object, and
// that together they hold every entry from the base to the seal, the
// seal stamped after the cut.
func (s *Store) checkLog(ctx context.Context, m *Manifest, g GroupBackup, checked map[string]error, rep *VerifyReport) *objectError {
	refs, reach := Chain(g.Segments, g.BaseIndex)
	if reach < g.SealIndex {
		// Name the missing piece by its neighbours.
		after := "the base"
		if len(refs) > 0 {
			after = refs[len(refs)-1].Name
		}
		next := "none"
		for _, r := range g.Segments {
			if r.First > reach {
				next = r.Name
				break
			}
		}
		return &objectError{object: SegmentName(g.Group, reach+1, g.SealIndex, "*"),
			err: fmt.Errorf("%w: missing segment: group %d's log after index %d (after %s; next listed: %s) up to %d is in no segment of the backup",
				ErrCorrupt, g.Group, reach, after, next, g.SealIndex)}
	}
	var sealStamp, cutStamp hlc.Timestamp
	for _, ref := range refs {
		if ref.First > g.SealIndex {
			break
		}
		err, seen := checked[ref.Name]
		var seg Segment
		if !seen || err == nil {
			seg, err = s.readSegment(ctx, g.Group, ref)
			if !seen {
				checked[ref.Name] = err
				rep.Objects++
				rep.Bytes += ref.Size
			}
		}
		if err != nil {
			return &objectError{object: ref.Name, err: err}
		}
		for _, e := range seg.Entries {
			if e.Index == g.SealIndex {
				sealStamp = e.Stamp
			}
			if e.Index == g.CutIndex {
				cutStamp = e.Stamp
			}
		}
	}
	if !m.Cut.Less(sealStamp) {
		return &objectError{object: SegmentName(g.Group, g.SealIndex, g.SealIndex, "*"),
			err: fmt.Errorf("%w: group %d: the seal (index %d) is stamped %s, not after the cut %s", ErrCorrupt, g.Group, g.SealIndex, sealStamp, m.Cut)}
	}
	if g.CutIndex > g.BaseIndex && m.Cut.Less(cutStamp) {
		return &objectError{object: SegmentName(g.Group, g.CutIndex, g.CutIndex, "*"),
			err: fmt.Errorf("%w: group %d: the cut's last entry (index %d) is stamped %s, after the cut %s", ErrCorrupt, g.Group, g.CutIndex, cutStamp, m.Cut)}
	}
	return nil
}

// Window is a span of time a backup can restore a keyspace to: from its
// bases' stamps to the last time every group's log (the backup's and the
// archive's, contiguous) is known up to.
type Window struct {
	Backup string        `json:"backup"`
	Kind   string        `json:"kind"`
	From   hlc.Timestamp `json:"from"`
	To     hlc.Timestamp `json:"to"`
}

// KeyspaceWindows returns, for each keyspace the target holds backups
// of, the windows its backups (oldest first) can restore it to. Only the
// last segment of each group's chain is read.
func KeyspaceWindows(ctx context.Context, s *Store, ms []*Manifest) (map[string][]Window, error) {
	out := map[string][]Window{}
	listed := map[uint64][]ObjectRef{}
	for _, m := range ms {
		for _, ks := range m.Keyspaces {
			w := Window{Backup: m.ID, Kind: m.Kind}
			first := true
			for _, sh := range ks.Shards {
				for _, g := range sh.Groups {
					if ks.Spec.Strategy == metadata.Async && !g.Primary {
						continue
					}
					if _, ok := listed[g.Group]; !ok {
						l, err := s.ListSegments(ctx, g.Group)
						if err != nil {
							return nil, err
						}
						listed[g.Group] = l
					}
					to, err := s.reach(ctx, g, listed[g.Group])
					if err != nil {
						return nil, err
					}
					if w.From.Less(g.BaseStamp) {
						w.From = g.BaseStamp
					}
					if first || to.Less(w.To) {
						w.To = to
					}
					first = false
				}
			}
			if !w.To.Less(w.From) {
				out[ks.Spec.Name] = append(out[ks.Spec.Name], w)
			}
		}
	}
	return out, nil
}

// reach returns the latest time a group's log is known up to: the stamp
// of the last stamped entry of its contiguous chain from the base.
func (s *Store) reach(ctx context.Context, g GroupBackup, listed []ObjectRef) (hlc.Timestamp, error) {
	refs, _ := Chain(append(append([]ObjectRef(nil), g.Segments...), listed...), g.BaseIndex)
	for i := len(refs) - 1; i >= 0; i-- {
		seg, err := s.readSegment(ctx, g.Group, refs[i])
		if err != nil {
			return hlc.Timestamp{}, err
		}
		for j := len(seg.Entries) - 1; j >= 0; j-- {
			if !seg.Entries[j].Stamp.IsZero() {
				return seg.Entries[j].Stamp, nil
			}
		}
	}
	return g.BaseStamp, nil
}

// Choose returns the backup to restore a keyspace from at time `at`: the
// newest whose bases are all at or before it. Zero `at` means the newest
// backup's cut. It fails with ErrNoBackup if none holds the keyspace,
// ErrWindow if none starts early enough.
func Choose(ms []*Manifest, keyspace string, at hlc.Timestamp) (*Manifest, hlc.Timestamp, error) {
	var found bool
	for i := len(ms) - 1; i >= 0; i-- {
		ks, ok := ms[i].Keyspace(keyspace)
		if !ok {
			continue
		}
		found = true
		if at.IsZero() {
			return ms[i], ms[i].Cut, nil
		}
		fits := true
		for _, sh := range ks.Shards {
			for _, g := range sh.Groups {
				if at.Less(g.BaseStamp) {
					fits = false
				}
			}
		}
		if fits {
			return ms[i], at, nil
		}
	}
	if !found {
		return nil, at, fmt.Errorf("%w: no backup holds keyspace %q", ErrNoBackup, keyspace)
	}
	return nil, at, fmt.Errorf("%w: %s is before the oldest backup of keyspace %q", ErrWindow, at, keyspace)
}

// IsNotFound reports whether err says an object is missing.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
