package backup

import (
	"context"
	"fmt"
	"sort"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/storage"
)

// ListSegments returns the segments of a group in the target, by first
// index (names that do not parse as a segment's are left out).
func (s *Store) ListSegments(ctx context.Context, group uint64) ([]ObjectRef, error) {
	objs, err := s.T.List(ctx, SegmentPrefix(group))
	if err != nil {
		return nil, err
	}
	var out []ObjectRef
	for _, o := range objs {
		g, first, last, ok := ParseSegmentName(o.Name)
		if !ok || g != group {
			continue
		}
		out = append(out, ObjectRef{Name: o.Name, Size: o.Size, First: first, Last: last})
	}
	sortRefs(out)
	return out, nil
}

func sortRefs(refs []ObjectRef) {
	sort.SliceStable(refs, func(i, j int) bool {
		if refs[i].First != refs[j].First {
			return refs[i].First < refs[j].First
		}
		return refs[i].Last > refs[j].Last
	})
}

// Chain returns segments that cover the log contiguously from after
// `from`, chosen among cands (a manifest's, which carry checksums, are
// preferred where they reach as far), and the last index they cover
// (from itself when none covers from+1).
func Chain(cands []ObjectRef, from uint64) ([]ObjectRef, uint64) {
	cands = append([]ObjectRef(nil), cands...)
	sortRefs(cands)
	var out []ObjectRef
	next := from + 1
	for {
		best := -1
		for i, c := range cands {
			if c.First > next || c.Last < next {
				continue
			}
			if best < 0 || c.Last > cands[best].Last || (c.Last == cands[best].Last && c.SHA256 != "" && cands[best].SHA256 == "") {
				best = i
			}
		}
		if best < 0 {
			return out, next - 1
		}
		out = append(out, cands[best])
		next = cands[best].Last + 1
	}
}

// readSegment reads a segment a chain chose and checks it against its
// name and reference.
func (s *Store) readSegment(ctx context.Context, group uint64, ref ObjectRef) (Segment, error) {
	var want *ObjectRef
	if ref.SHA256 != "" {
		want = &ref
	}
	b, err := s.get(ctx, ref.Name, kindSegment, want)
	if err != nil {
		return Segment{}, err
	}
	seg, err := decodeSegment(ref.Name, b)
	if err != nil {
		return Segment{}, err
	}
	n := uint64(len(seg.Entries))
	if seg.Group != group || n == 0 || seg.Entries[0].Index != ref.First || seg.Entries[n-1].Index != ref.Last {
		return Segment{}, fmt.Errorf("%w: %s: holds group %d entries %d..%d, its name says group %d entries %d..%d",
			ErrCorrupt, ref.Name, seg.Group, firstIndex(seg), firstIndex(seg)+n-1, group, ref.First, ref.Last)
	}
	return seg, nil
}

func firstIndex(s Segment) uint64 {
	if len(s.Entries) == 0 {
		return 0
	}
	return s.Entries[0].Index
}

// LoadBase stages a group's base into db (a scratch database), checking
// every part against the manifest.
func (s *Store) LoadBase(ctx context.Context, db *storage.DB, gb GroupBackup) (keys int64, err error) {
	if len(gb.BaseParts) == 0 {
		return 0, fmt.Errorf("%w: group %d has no base in the manifest", ErrCorrupt, gb.Group)
	}
	for i, ref := range gb.BaseParts {
		b, err := s.get(ctx, ref.Name, kindBase, &ref)
		if err != nil {
			return keys, err
		}
		p, err := decodeBasePart(ref.Name, b)
		if err != nil {
			return keys, err
		}
		if p.Group != gb.Group || p.Index != gb.BaseIndex || p.Part != i || p.Final != (i == len(gb.BaseParts)-1) {
			return keys, fmt.Errorf("%w: %s: part %d (final %v) of group %d at %d, the manifest expects part %d of %d of group %d at %d",
				ErrCorrupt, ref.Name, p.Part, p.Final, p.Group, p.Index, i, len(gb.BaseParts), gb.Group, gb.BaseIndex)
		}
		batch := db.NewBatch()
		for j := 0; j+1 < len(p.Pairs); j += 2 {
			batch.SetData(gb.Group, p.Pairs[j], p.Pairs[j+1])
			keys++
		}
		for _, c := range p.Cursors {
			batch.SetCursor(gb.Group, c.Source, c.Cursor)
		}
		for j := 0; j+1 < len(p.Ledger); j += 2 {
			batch.SetLedger(gb.Group, p.Ledger[j], p.Ledger[j+1])
		}
		for j := 0; j+1 < len(p.Elements); j += 2 {
			batch.SetElem(gb.Group, p.Elements[j], p.Elements[j+1])
		}
		if err := batch.Commit(false); err != nil {
			return keys, err
		}
	}
	return keys, nil
}

// ReplayResult is a group's state at a time, as Replay built it.
type ReplayResult struct {
	Group  uint64
	Region string
	// CutIndex is the last entry applied: the group's state at the time
	// is its log up to it.
	CutIndex uint64
	// CutStamp is the stamp of the last stamped entry applied.
	CutStamp hlc.Timestamp
	// SealStamp is the stamp of the first entry after the cut (after the
	// time: what proves nothing else belongs before it).
	SealStamp hlc.Timestamp
	Keys      int64
	Entries   int64
	Bytes     int64
	// Role is the group's replication role at the cut (async keyspaces).
	Role kv.Role
}

// Replay rebuilds a group's state at time `at` in db, a scratch database
// holding nothing of the group: its base from the manifest, then the
// entries of its log after the base, from the manifest's segments and
// any others the target holds (extra: ListSegments), applied by the kv
// state machine exactly as the group applied them, up to the last entry
// stamped at or before `at`. The state is exact only once an entry
// stamped after `at` is found (the log is sealed there): otherwise, or if
// the base is newer than `at`, it fails with ErrWindow.
func (s *Store) Replay(ctx context.Context, db *storage.DB, gb GroupBackup, extra []ObjectRef, at hlc.Timestamp, cluster string) (ReplayResult, error) {
	res := ReplayResult{Group: gb.Group, Region: gb.Region, CutIndex: gb.BaseIndex, CutStamp: gb.BaseStamp}
	if at.Less(gb.BaseStamp) {
		return res, fmt.Errorf("%w: group %d's base (index %d) holds entries stamped up to %s, after %s", ErrWindow, gb.Group, gb.BaseIndex, gb.BaseStamp, at)
	}
	keys, err := s.LoadBase(ctx, db, gb)
	if err != nil {
		return res, err
	}
	res.Keys = keys
	for _, p := range gb.BaseParts {
		res.Bytes += p.Size
	}
	refs, reach := Chain(append(append([]ObjectRef(nil), gb.Segments...), extra...), gb.BaseIndex)
	sm := &kv.StateMachine{Group: gb.Group, Cluster: cluster, Region: gb.Region}
	batch := db.NewBatch()
	pending := 0
	commit := func() error {
		if pending == 0 {
			return nil
		}
		err := batch.Commit(false)
		batch, pending = db.NewBatch(), 0
		return err
	}
	defer func() { batch.Close() }()
	next := gb.BaseIndex + 1
	sealed := false
	for _, ref := range refs {
		if sealed {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		seg, err := s.readSegment(ctx, gb.Group, ref)
		if err != nil {
			return res, err
		}
		res.Bytes += ref.Size
		for _, e := range seg.Entries {
			if e.Index < next {
				continue // overlap with the segment before
			}
			if !e.Stamp.IsZero() && at.Less(e.Stamp) {
				sealed, res.SealStamp = true, e.Stamp
				break
			}
			if e.Command != nil {
				if _, err := sm.Apply(batch, e.Index, e.Command); err != nil {
					return res, fmt.Errorf("%w: %s: group %d cannot replay entry %d: %w", ErrCorrupt, ref.Name, gb.Group, e.Index, err)
				}
				pending++
			}
			if !e.Stamp.IsZero() {
				res.CutStamp = e.Stamp
			}
			res.CutIndex = e.Index
			res.Entries++
			next = e.Index + 1
			if pending >= 512 || batch.Len() > 8<<20 {
				if err := commit(); err != nil {
					return res, err
				}
			}
		}
	}
	if err := commit(); err != nil {
		return res, err
	}
	if !sealed {
		return res, fmt.Errorf("%w: group %d: its log is kept up to index %d, stamped %s; nothing after %s is known yet", ErrWindow, gb.Group, reach, res.CutStamp, at)
	}
	role, err := kv.LoadRole(db, gb.Group)
	if err != nil {
		return res, err
	}
	res.Role = role
	return res, nil
}
