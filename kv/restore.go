package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meridian-db/meridian/storage"
)

// Restores (package backup; docs/DESIGN.md 8).
//
// A restore loads a keyspace's state, rebuilt from a backup, into the
// fresh groups of a hidden keyspace, through their logs: OpRestoreChunk
// commands, each a chunk of stored records (the data span: keys and their
// stored records as the backed-up group held them), of elements (the
// element span of lists and sorted sets, with the group's next collection
// id, so that collections made after the restore get ids of their own)
// and, for active keyspaces, of ledger records (the conflict ledger) and
// the ledger's counters. Chunks are numbered from 1; a group records in its restore
// slot (a reserved cursor) the last chunk it applied, applies only the
// next one, and answers with its position, so a restore interrupted at
// any point resumes by proposing its chunks again from the first: those
// applied already change nothing.
//
// Records are written as they are, after a check that those of the types
// this package stores decode (a record it could not read later would stop
// the node on the next write of its key; for lists and sorted sets, their
// heads); elements are written as they are. Nothing else of the group
// changes: its role, its stream cursors, its knowledge reports and delta
// records (which count in the old groups' log positions) are not part of
// a restore.
//
// An async keyspace is restored into its primary group; its replicas get
// the chunks through the stream like any write (Admitted, streamApply:
// applied in stream order, without the numbering, which a resync does not
// carry). An active keyspace is restored into every region's group (each
// gets the merged state of every region, and its own region's ledger);
// the chunks are not shipped between regions (ActiveChange).

// OpRestoreChunk loads a chunk of a restore: Args[0] is the restore's id,
// Args[1] the chunk's number (8 bytes, big-endian, from 1), Args[2] the
// chunk (EncodeRestoreChunk). N is the group's restore position after
// it: the number of the last chunk applied. Ops numbered 64 and above
// are backup's and restore's.
const OpRestoreChunk Op = 64

// restoreSlot is the cursor slot of a group's restore position (Index:
// the last chunk applied). It is not a stream source: group ids start at
// 100 (metadata), role slot 0 and the other reserved slots lie elsewhere.
const restoreSlot = 2

// ErrRestoreGap: a restore chunk arrived before the one it follows.
// Nothing was applied; the restorer sends the chunks in order.
var ErrRestoreGap = errors.New("kv: restore chunk out of order")

// RestoreChunk is what one OpRestoreChunk loads.
type RestoreChunk struct {
	// Pairs alternates keys and stored records (Record.Encode).
	Pairs [][]byte
	// Ledger alternates ledger suffixes and values: conflict ledger
	// records of an active keyspace's group.
	Ledger [][]byte
	// LedgerCounters, if set, are the ledger's counters (the number of
	// entries recorded and the log index of the last one).
	LedgerCounters *storage.Cursor
	// Elements alternates element suffixes and values: the group's
	// element span (list and sorted set elements, the next collection
	// id), written as they are.
	Elements [][]byte
}

// Size is about the encoded size of the chunk.
func (c RestoreChunk) Size() int {
	n := 32
	for _, p := range c.Pairs {
		n += len(p) + 4
	}
	for _, p := range c.Ledger {
		n += len(p) + 4
	}
	for _, p := range c.Elements {
		n += len(p) + 4
	}
	return n
}

// EncodeRestoreChunk encodes a chunk:
//
//	version 2 | pairs count uvarint | (uvarint length, bytes)... |
//	ledger count uvarint | (uvarint length, bytes)... |
//	elements count uvarint | (uvarint length, bytes)... |
//	counters flag (1 byte) | [entries uvarint | last index uvarint]
//
// (Version 1 has no elements.)
func EncodeRestoreChunk(c RestoreChunk) []byte {
	b := make([]byte, 0, c.Size())
	b = append(b, 2)
	for _, xs := range [][][]byte{c.Pairs, c.Ledger, c.Elements} {
		b = binary.AppendUvarint(b, uint64(len(xs)))
		for _, x := range xs {
			b = binary.AppendUvarint(b, uint64(len(x)))
			b = append(b, x...)
		}
	}
	if c.LedgerCounters == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, c.LedgerCounters.Index)
	return binary.AppendUvarint(b, uint64(c.LedgerCounters.ClosedMS))
}

// DecodeRestoreChunk parses EncodeRestoreChunk's output; the slices alias
// b. It never panics, and refuses varints longer than needed (a chunk has
// one encoding).
func DecodeRestoreChunk(b []byte) (RestoreChunk, error) {
	var c RestoreChunk
	bad := func(what string) (RestoreChunk, error) {
		return RestoreChunk{}, fmt.Errorf("%w: restore chunk: %s", ErrBadCommand, what)
	}
	if len(b) == 0 || b[0] != 1 && b[0] != 2 {
		return bad("unknown version")
	}
	sections := 1 + int(b[0]) // pairs, ledger[, elements]
	b = b[1:]
	for i := range sections {
		n, w := uvarint(b)
		if w <= 0 || n > uint64(len(b)) || n%2 != 0 {
			return bad("count")
		}
		b = b[w:]
		xs := make([][]byte, 0, n)
		for range n {
			l, w := uvarint(b)
			if w <= 0 || l > uint64(len(b)-w) {
				return bad("length")
			}
			xs = append(xs, b[w:w+int(l)])
			b = b[w+int(l):]
		}
		switch i {
		case 0:
			c.Pairs = xs
		case 1:
			c.Ledger = xs
		default:
			c.Elements = xs
		}
	}
	if len(b) == 0 {
		return bad("no counters flag")
	}
	flag := b[0]
	b = b[1:]
	switch flag {
	case 0:
	case 1:
		entries, w := uvarint(b)
		if w <= 0 {
			return bad("ledger counters")
		}
		last, w2 := uvarint(b[w:])
		if w2 <= 0 {
			return bad("ledger counters")
		}
		b = b[w+w2:]
		c.LedgerCounters = &storage.Cursor{Index: entries, ClosedMS: int64(last)}
	default:
		return bad("counters flag")
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return c, nil
}

// RestoreChunkCommand builds the OpRestoreChunk of chunk number seq.
func RestoreChunkCommand(id string, seq uint64, c RestoreChunk) Command {
	return Command{Op: OpRestoreChunk, Args: [][]byte{[]byte(id), binary.BigEndian.AppendUint64(nil, seq), EncodeRestoreChunk(c)}}
}

// restoreChunk applies OpRestoreChunk proposed to this group (see the top
// of the file): only the chunk after the group's position.
func (sm *StateMachine) restoreChunk(b *storage.Batch, c Command) Result {
	if len(c.Args[1]) != 8 {
		return Result{Err: fmt.Errorf("%w: restore chunk number of %d bytes", ErrBadCommand, len(c.Args[1]))}
	}
	seq := binary.BigEndian.Uint64(c.Args[1])
	cur, _, err := b.GetCursor(sm.Group, restoreSlot)
	if err != nil {
		return Result{Err: err}
	}
	switch {
	case seq <= cur.Index:
		return Result{N: int64(cur.Index)} // applied already
	case seq != cur.Index+1:
		return Result{N: int64(cur.Index), Err: fmt.Errorf("%w: chunk %d after %d", ErrRestoreGap, seq, cur.Index)}
	}
	if res := sm.restoreData(b, c); res.Err != nil {
		return res
	}
	b.SetCursor(sm.Group, restoreSlot, storage.Cursor{Index: seq})
	return Result{N: int64(seq)}
}

// restoreData writes a restore chunk's records (checked first: a chunk
// with a record that does not decode changes nothing).
func (sm *StateMachine) restoreData(b *storage.Batch, c Command) Result {
	chunk, err := DecodeRestoreChunk(c.Args[2])
	if err != nil {
		return Result{Err: err}
	}
	for i := 0; i+1 < len(chunk.Pairs); i += 2 {
		if len(chunk.Pairs[i]) == 0 {
			return Result{Err: fmt.Errorf("%w: restore chunk with an empty key", ErrBadCommand)}
		}
		rec, err := DecodeRecord(chunk.Pairs[i+1])
		if err == nil {
			// The payloads this file knows are checked; a type added
			// elsewhere goes as it is (a backup of this binary wrote it).
			switch rec.Type {
			case TypeSet:
				_, err = DecodeSet(rec.Payload)
			case TypeHash:
				_, err = DecodeHash(rec.Payload)
			case TypeActive:
				_, err = decodeActiveState(rec.Payload)
			case TypeList:
				_, err = decodeListHead(rec.Payload)
			case TypeZSet:
				_, err = decodeZSetHead(rec.Payload)
			}
		}
		if err != nil {
			return Result{Err: fmt.Errorf("%w: restore chunk: record of %q: %w", ErrBadCommand, chunk.Pairs[i], err)}
		}
	}
	for i := 0; i+1 < len(chunk.Ledger); i += 2 {
		if !RestorableLedger(chunk.Ledger[i]) {
			return Result{Err: fmt.Errorf("%w: restore chunk: ledger record %q is not a conflict's", ErrBadCommand, chunk.Ledger[i])}
		}
	}
	for i := 0; i+1 < len(chunk.Elements); i += 2 {
		if len(chunk.Elements[i]) == 0 {
			return Result{Err: fmt.Errorf("%w: restore chunk with an empty element suffix", ErrBadCommand)}
		}
	}
	for i := 0; i+1 < len(chunk.Pairs); i += 2 {
		b.SetData(sm.Group, chunk.Pairs[i], chunk.Pairs[i+1])
	}
	for i := 0; i+1 < len(chunk.Ledger); i += 2 {
		b.SetLedger(sm.Group, chunk.Ledger[i], chunk.Ledger[i+1])
	}
	for i := 0; i+1 < len(chunk.Elements); i += 2 {
		b.SetElem(sm.Group, chunk.Elements[i], chunk.Elements[i+1])
	}
	if chunk.LedgerCounters != nil {
		b.SetCursor(sm.Group, ledgerSource, *chunk.LedgerCounters)
	}
	return Result{}
}

// RestorableLedger reports whether a ledger record (by its suffix) goes
// into a restore: the conflict ledger's entries and their index by key.
// Knowledge reports and delta records count in the backed-up groups' log
// positions and are left out.
func RestorableLedger(suffix []byte) bool {
	return len(suffix) > 0 && (suffix[0] == 'e' || suffix[0] == 'k')
}

// LedgerCounters reads a group's ledger counters (entries recorded, log
// index of the last) from a database (a restore's scratch copy).
func LedgerCounters(db *storage.DB, group uint64) (storage.Cursor, bool, error) {
	return db.Cursor(group, ledgerSource)
}

// MergeActiveRecords merges two stored records of a key of an active
// keyspace (as regions' groups held them) into the record of their
// merge, as a stream would have merged them. Conflicts the merge finds
// are counted, not recorded.
func MergeActiveRecords(a, b []byte) ([]byte, int, error) {
	ra, err := DecodeRecord(a)
	if err != nil {
		return nil, 0, err
	}
	rb, err := DecodeRecord(b)
	if err != nil {
		return nil, 0, err
	}
	if ra.Type != TypeActive || rb.Type != TypeActive {
		return nil, 0, fmt.Errorf("%w: merge of a %s and a %s record", ErrNotActive, ra.Type, rb.Type)
	}
	sa, err := decodeActiveState(ra.Payload)
	if err != nil {
		return nil, 0, err
	}
	sb, err := decodeActiveState(rb.Payload)
	if err != nil {
		return nil, 0, err
	}
	out, cs, tc, err := mergeStates(sa, sb)
	if err != nil {
		return nil, 0, err
	}
	n := len(cs)
	if tc != nil {
		n++
	}
	return Record{Type: TypeActive, Payload: out.encode()}.Encode(), n, nil
}

// LiveActiveRecord reports whether a stored record of an active keyspace
// holds a live value (a tombstone does not: a restore leaves those out,
// since every region of the restored keyspace starts from the same state,
// which makes them causally stable at once).
func LiveActiveRecord(v []byte) (bool, error) {
	rec, err := DecodeRecord(v)
	if err != nil {
		return false, err
	}
	if rec.Type != TypeActive {
		return true, nil
	}
	s, err := decodeActiveState(rec.Payload)
	if err != nil {
		return false, err
	}
	return s.val.Live(), nil
}
