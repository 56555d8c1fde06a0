package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The audit span holds this node's audit log (see node/audit.go): one
// record per sequence number, appended durably, never part of a group,
// so no snapshot or group removal touches it.
//
//	'a' seq(8, big endian)   an audit record
const prefixAudit = 'a'

func auditKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixAudit}, seq)
}

// AppendAudit writes the record of sequence number seq durably (synced
// before it returns), and removes the records below keepFrom in the same
// batch (0: none).
func (db *DB) AppendAudit(seq uint64, rec []byte, keepFrom uint64) error {
	b := db.NewBatch()
	b.Set(auditKey(seq), rec)
	if keepFrom > 0 {
		b.DeleteRange(auditKey(0), auditKey(keepFrom))
	}
	return b.Commit(true)
}

// LastAudit returns the highest sequence number of the audit log (0 if
// it is empty).
func (db *DB) LastAudit() (uint64, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: auditKey(0), UpperBound: []byte{prefixAudit + 1}})
	if err != nil {
		return 0, fmt.Errorf("%w: iterator: %w", ErrIO, err)
	}
	var last uint64
	if it.Last() {
		last = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("%w: audit: %w", ErrIO, err)
	}
	return last, nil
}

// ScanAudit calls fn for the audit records from sequence number from on,
// in order, until fn returns false. The value is only valid during the
// call.
func (db *DB) ScanAudit(from uint64, fn func(seq uint64, rec []byte) bool) error {
	return db.scan(auditKey(from), []byte{prefixAudit + 1}, func(k, v []byte) bool {
		return fn(binary.BigEndian.Uint64(k[1:]), v)
	})
}
