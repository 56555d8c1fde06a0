package storage

// The ledger span of a group is a small key space of its own, next to the
// data and cursor spans, for records the group's state machine keeps about
// its data that are not user keys (the conflict ledger of active
// keyspaces, see package kv):
//
//	'l' group suffix       a ledger record; the layout of suffix is the
//	                       state machine's
//
// User keys can never collide with ledger records, and scans of the data
// span (SCAN, resync, snapshots of the data) never see them. Ledger records
// are written in the same batch as the data they describe.
//
// The span travels in the group's snapshots (EncodeGroupData) and goes
// with the group (StageDestroy).
const prefixLedger = 'l'

// LedgerKey returns the storage key of a group's ledger record.
func LedgerKey(group uint64, suffix []byte) []byte {
	return append(groupKey(prefixLedger, group, len(suffix)), suffix...)
}

// ledgerSpan returns [start, end) of a group's ledger.
func ledgerSpan(group uint64) ([]byte, []byte) {
	return groupKey(prefixLedger, group, 0), groupKey(prefixLedger, group+1, 0)
}

// SetLedger stages a ledger record of a group.
func (b *Batch) SetLedger(group uint64, suffix, value []byte) { b.Set(LedgerKey(group, suffix), value) }

// ClearLedger stages the removal of every ledger record of a group.
func (b *Batch) ClearLedger(group uint64) {
	start, end := ledgerSpan(group)
	b.DeleteRange(start, end)
}

// GetLedger reads a committed ledger record of a group. The returned value
// is a copy.
func (db *DB) GetLedger(group uint64, suffix []byte) ([]byte, bool, error) {
	return db.get(LedgerKey(group, suffix))
}

// ScanLedger calls fn for the group's ledger records whose suffixes are in
// [start, end) (end nil means to the end of the group's ledger) in suffix
// order until fn returns false. The slices are only valid during the call.
func (db *DB) ScanLedger(group uint64, start, end []byte, fn func(suffix, value []byte) bool) error {
	lo := LedgerKey(group, start)
	var hi []byte
	if end == nil {
		_, hi = ledgerSpan(group)
	} else {
		hi = LedgerKey(group, end)
	}
	return db.scan(lo, hi, func(k, v []byte) bool { return fn(k[9:], v) })
}
