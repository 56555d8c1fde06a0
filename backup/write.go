package backup

import (
	"context"
	"fmt"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// Defaults of what one object holds.
const (
	DefaultPartBytes    = 8 << 20
	DefaultSegmentBytes = 4 << 20
)

// BaseResult is what writing a group's base produced.
type BaseResult struct {
	Parts []ObjectRef
	Keys  int64
	Bytes int64
}

// WriteBase stores the base of a group from a consistent view: its data
// span then its element span in parts of about partBytes, its cursor and
// ledger spans in part 0, all as of the view's applied index, which the
// caller passes (index) with a bound on the stamps of the entries at or
// below it (stamp). The parts are named by writer; nothing refers to them
// until a manifest does.
func (s *Store) WriteBase(ctx context.Context, r *storage.Reader, group, index uint64, stamp hlc.Timestamp, writer string, partBytes int) (BaseResult, error) {
	if partBytes <= 0 {
		partBytes = DefaultPartBytes
	}
	var res BaseResult
	cur := BasePart{Group: group, Index: index, Stamp: stamp}
	err := r.ScanCursors(group, func(source uint64, c storage.Cursor) bool {
		cur.Cursors = append(cur.Cursors, storage.SourceCursor{Source: source, Cursor: c})
		return true
	})
	if err != nil {
		return res, err
	}
	err = r.ScanLedger(group, func(suffix, value []byte) bool {
		cur.Ledger = append(cur.Ledger, append([]byte(nil), suffix...), append([]byte(nil), value...))
		return true
	})
	if err != nil {
		return res, err
	}
	size := 0
	flush := func(final bool) error {
		cur.Final = final
		ref, err := s.put(ctx, BasePartName(group, index, writer, cur.Part), kindBase, encodeBasePart(cur))
		if err != nil {
			return err
		}
		res.Parts = append(res.Parts, ref)
		res.Bytes += ref.Size
		cur = BasePart{Group: group, Index: index, Stamp: stamp, Part: cur.Part + 1}
		size = 0
		return nil
	}
	// added counts n more bytes in the part, writing it out once full; it
	// reports whether the scan goes on. scanned is the scan's outcome.
	var werr error
	added := func(n int) bool {
		if size += n; size >= partBytes {
			if werr = flush(false); werr != nil {
				return false
			}
		}
		return ctx.Err() == nil
	}
	scanned := func(err error) error {
		if err == nil {
			err = werr
		}
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	err = r.Scan(group, nil, func(key, value []byte) bool {
		cur.Pairs = append(cur.Pairs, append([]byte(nil), key...), append([]byte(nil), value...))
		res.Keys++
		return added(len(key) + len(value) + 8)
	})
	if err = scanned(err); err != nil {
		return res, err
	}
	err = r.ScanElements(group, func(suffix, value []byte) bool {
		cur.Elements = append(cur.Elements, append([]byte(nil), suffix...), append([]byte(nil), value...))
		return added(len(suffix) + len(value) + 8)
	})
	if err = scanned(err); err != nil {
		return res, err
	}
	if err := flush(true); err != nil {
		return res, err
	}
	return res, nil
}

// WriteSegments stores consecutive entries of a group's log as segments
// of about segBytes each, named by writer.
func (s *Store) WriteSegments(ctx context.Context, group uint64, entries []Entry, writer string, segBytes int) ([]ObjectRef, error) {
	if segBytes <= 0 {
		segBytes = DefaultSegmentBytes
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Index != entries[i-1].Index+1 {
			return nil, fmt.Errorf("backup: group %d: entries %d and %d are not consecutive", group, entries[i-1].Index, entries[i].Index)
		}
	}
	var out []ObjectRef
	for start := 0; start < len(entries); {
		end, size := start, 0
		for end < len(entries) && (end == start || size+len(entries[end].Command) < segBytes) {
			size += len(entries[end].Command) + 24
			end++
		}
		seg := Segment{Group: group, Entries: entries[start:end]}
		first, last := entries[start].Index, entries[end-1].Index
		ref, err := s.put(ctx, SegmentName(group, first, last, writer), kindSegment, encodeSegment(seg))
		if err != nil {
			return out, err
		}
		ref.First, ref.Last = first, last
		out = append(out, ref)
		start = end
	}
	return out, nil
}
