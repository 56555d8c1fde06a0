package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/storage"
)

// The conflict ledger of an active keyspace's group.
//
// Every conflict a merge finds (OpActiveMerge) is recorded in the group's
// ledger span (package storage: 'l' group suffix) in the same batch as the
// merged data, so a merge and its ledger entries are durable together,
// and, being decided by the applied command alone, identical on every
// replica of the group. Layout of the suffixes:
//
//	'e' seq (8 bytes BE)                        the entry, JSON (LedgerEntry)
//	'k' uvarint(len(key)) key seq (8 bytes BE)  empty: the entries of a key
//
// The span also holds, under other suffixes, the regions' knowledge
// reports ('K', gc.go) and what each local op ships ('D', active.go).
//
// seq numbers the group's entries from 1 in the order they were recorded.
// The number of entries recorded and the log index of the last one are
// kept in the group's cursor span, in the reserved slot ledgerSource, which
// travels in raft snapshots: a replica that caught up through a snapshot
// lacks the entries recorded before it (storage's snapshots do not carry
// the ledger span yet), which LedgerInfo reports as Oldest > 1. Entries are
// never removed yet.

// ledgerSource is the cursor slot holding the ledger's counters: Index is
// the number of entries recorded, ClosedMS the log index of the last one.
// It is not a group id (ids grow from 1) nor a resync slot (high bit set).
const ledgerSource = math.MaxInt64

// Ledger entry kinds.
const (
	LedgerRegister = "register" // concurrent writes of a register
	LedgerField    = "field"    // concurrent writes of a map field
	LedgerType     = "type"     // states of different kinds or generations
)

// LedgerVersion is one side of a conflict.
type LedgerVersion struct {
	// Value is the version's value (register and field conflicts).
	Value []byte `json:"value,omitempty"`
	// Deleted: the version is a deletion.
	Deleted bool `json:"deleted,omitempty"`
	// Region and Time are the write's origin region and HLC time; Seq
	// is its number in the region (with Region, its dot).
	Region string        `json:"region,omitempty"`
	Time   hlc.Timestamp `json:"time"`
	Seq    uint64        `json:"seq,omitempty"`
	// Resolver is the resolver the write named ("" for last writer wins).
	Resolver string `json:"resolver,omitempty"`
	// Type conflicts: the kind of the state ("register", "counter", "set",
	// "map"), its generation, and the state itself, as an active record's
	// payload (ActiveValueOf(Record{Type: TypeActive, Payload: State})).
	// A state larger than MaxLedgerStateBytes is left out (StateOmitted).
	Kind         string `json:"kind,omitempty"`
	Gen          uint64 `json:"gen,omitempty"`
	State        []byte `json:"state,omitempty"`
	StateOmitted bool   `json:"state_omitted,omitempty"`
}

// MaxLedgerStateBytes bounds the states a type conflict's entry carries.
const MaxLedgerStateBytes = 64 << 10

// LedgerEntry is one recorded conflict.
type LedgerEntry struct {
	// Seq numbers the group's entries from 1.
	Seq uint64 `json:"seq"`
	// Index is the log index of the command that recorded the conflict.
	Index uint64 `json:"index"`
	// Source and SourceIndex name the stream change that brought the
	// merge (0 when the merge was not received through a stream).
	Source      uint64 `json:"source,omitempty"`
	SourceIndex uint64 `json:"source_index,omitempty"`
	// ID identifies the conflict: every region that records the same
	// concurrent versions of a register or field meeting gives it the
	// same ID, so that the regions' ledgers can be deduplicated.
	ID string `json:"id"`
	// Kind is LedgerRegister, LedgerField or LedgerType.
	Kind  string `json:"kind"`
	Key   []byte `json:"key"`
	Field []byte `json:"field,omitempty"`
	// Versions are the concurrent versions in last-writer-wins order
	// (oldest first); for a type conflict, the losing state then the
	// winning one.
	Versions []LedgerVersion `json:"versions"`
	// Winner is what reads return.
	Winner LedgerVersion `json:"winner"`
	// Rule is "lww", a resolver's name, or "type" (the higher generation,
	// then kind, wins).
	Rule string `json:"rule"`
	// TimeMS is the wall time of the newest version (register and field
	// conflicts) or of the write that shipped the state (type conflicts).
	TimeMS int64 `json:"time_ms"`
}

// ledgerConflict is a conflict found by a merge, before it is recorded.
type ledgerConflict struct {
	key  []byte
	kind string        // the merged value's kind, for crdt conflicts
	c    crdt.Conflict // register or field conflict
	t    *typeConflict // or a type conflict
}

func ledgerVersion(v crdt.Version) LedgerVersion {
	return LedgerVersion{Value: v.Value, Deleted: v.Deleted, Region: v.Region, Time: v.Time, Seq: v.Seq, Resolver: v.Resolver}
}

func stateVersion(s *activeState) LedgerVersion {
	v := LedgerVersion{Kind: s.val.Type(), Gen: s.gen, State: s.encode()}
	if len(v.State) > MaxLedgerStateBytes {
		v.State, v.StateOmitted = nil, true
	}
	return v
}

// entry describes the conflict; Seq, Index and the source are the
// caller's.
func (lc ledgerConflict) entry(nowMS int64) LedgerEntry {
	h := sha256.New()
	put := func(b []byte) {
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	put(lc.key)
	e := LedgerEntry{Key: lc.key}
	if lc.t != nil {
		e.Kind, e.Rule, e.TimeMS = LedgerType, LedgerType, nowMS
		e.Versions = []LedgerVersion{stateVersion(lc.t.loser), stateVersion(lc.t.winner)}
		e.Winner = e.Versions[1]
		put([]byte(LedgerType))
		put(lc.t.loser.seen.Encode())
		h.Write(binary.AppendUvarint(nil, lc.t.winner.gen))
		put([]byte(lc.t.winner.val.Type()))
	} else {
		e.Kind = LedgerRegister
		if lc.kind == kindMap || lc.kind == kindZSet {
			e.Kind, e.Field = LedgerField, []byte(lc.c.Field)
		}
		e.Rule = lc.c.Rule
		put([]byte(e.Kind))
		put(e.Field)
		for _, v := range lc.c.Versions {
			e.Versions = append(e.Versions, ledgerVersion(v))
			put([]byte(v.Region))
			h.Write(binary.AppendUvarint(nil, v.Seq))
			e.TimeMS = max(e.TimeMS, v.Time.WallMS)
		}
		e.Winner = ledgerVersion(lc.c.Winner)
	}
	e.ID = hex.EncodeToString(h.Sum(nil)[:16])
	return e
}

func ledgerEntryKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'e'}, seq)
}

func ledgerKeyPrefix(key []byte) []byte {
	p := binary.AppendUvarint([]byte{'k'}, uint64(len(key)))
	return append(p, key...)
}

// recordConflicts stages the ledger entries of the conflicts a merge
// found at index, and the ledger's counters.
func recordConflicts(b *storage.Batch, group, index, source, sourceIndex uint64, nowMS int64, found []ledgerConflict) error {
	if len(found) == 0 {
		return nil
	}
	cur, _, err := b.GetCursor(group, ledgerSource)
	if err != nil {
		return err
	}
	seq := cur.Index
	for _, lc := range found {
		seq++
		e := lc.entry(nowMS)
		e.Seq, e.Index, e.Source, e.SourceIndex = seq, index, source, sourceIndex
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("kv: ledger entry: %w", err)
		}
		b.SetLedger(group, ledgerEntryKey(seq), v)
		b.SetLedger(group, binary.BigEndian.AppendUint64(ledgerKeyPrefix(lc.key), seq), nil)
	}
	b.SetCursor(group, ledgerSource, storage.Cursor{Index: seq, ClosedMS: int64(index)})
	return nil
}

// LedgerQuery selects ledger entries.
type LedgerQuery struct {
	// AfterSeq: only entries with a higher Seq. To follow the ledger, pass
	// the Seq of the last entry seen.
	AfterSeq uint64
	// FromIndex: only entries recorded at or after this log index.
	FromIndex uint64
	// SinceMS: only entries whose TimeMS is at or after this time.
	SinceMS int64
	// Key: only the entries of this key (nil: every key).
	Key []byte
	// Limit bounds the number of entries returned; 0 means
	// DefaultLedgerLimit.
	Limit int
}

// DefaultLedgerLimit is the number of entries ReadLedger returns when the
// query sets no limit.
const DefaultLedgerLimit = 100

// ReadLedger returns committed entries of a group's conflict ledger that
// match q, in Seq order.
func ReadLedger(db *storage.DB, group uint64, q LedgerQuery) ([]LedgerEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLedgerLimit
	}
	if q.AfterSeq == math.MaxUint64 {
		return nil, nil
	}
	var out []LedgerEntry
	var bad error
	keep := func(v []byte) bool {
		var e LedgerEntry
		if err := json.Unmarshal(v, &e); err != nil {
			bad = fmt.Errorf("%w: ledger entry of group %d: %w", ErrBadRecord, group, err)
			return false
		}
		if e.Index >= q.FromIndex && e.TimeMS >= q.SinceMS {
			out = append(out, e)
		}
		return len(out) < limit
	}
	var err error
	if q.Key == nil {
		start := ledgerEntryKey(q.AfterSeq + 1)
		err = db.ScanLedger(group, start, []byte{'e' + 1}, func(_, v []byte) bool { return keep(v) })
	} else {
		prefix := ledgerKeyPrefix(q.Key)
		start := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), q.AfterSeq+1)
		end := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), math.MaxUint64)
		end = append(end, 0)
		err = db.ScanLedger(group, start, end, func(k, _ []byte) bool {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			v, ok, gerr := db.GetLedger(group, ledgerEntryKey(seq))
			if gerr != nil {
				bad = gerr
				return false
			}
			if !ok {
				return true // recorded before this replica's snapshot
			}
			return keep(v)
		})
	}
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LedgerStatus summarizes a group's conflict ledger.
type LedgerStatus struct {
	// Recorded is the number of conflicts the group has recorded (the Seq
	// of the last entry).
	Recorded uint64
	// LastIndex is the log index at which the last one was recorded.
	LastIndex uint64
	// Oldest is the Seq of the oldest entry this replica holds (0 if none).
	// Oldest > 1 means this replica caught up through a snapshot and lacks
	// the earlier entries, which other replicas of the group may hold.
	Oldest uint64
}

// LedgerInfo returns the committed status of a group's conflict ledger.
func LedgerInfo(db *storage.DB, group uint64) (LedgerStatus, error) {
	c, _, err := db.Cursor(group, ledgerSource)
	if err != nil {
		return LedgerStatus{}, err
	}
	st := LedgerStatus{Recorded: c.Index, LastIndex: uint64(c.ClosedMS)}
	err = db.ScanLedger(group, []byte{'e'}, []byte{'e' + 1}, func(k, _ []byte) bool {
		if len(k) == 9 {
			st.Oldest = binary.BigEndian.Uint64(k[1:])
		}
		return false
	})
	return st, err
}
