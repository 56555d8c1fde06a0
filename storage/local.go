package storage

// Node-local records. A few facts belong to the node rather than to any
// raft group (the identity of the cluster its data belongs to, say):
//
//	'n' name               a node-local record
//
// No group's span contains them, so no snapshot carries them and removing
// a group leaves them alone.
const prefixLocal = 'n'

func localKey(name string) []byte { return append([]byte{prefixLocal}, name...) }

// GetLocal reads a node-local record. The returned value is a copy.
func (db *DB) GetLocal(name string) ([]byte, bool, error) {
	return db.get(localKey(name))
}

// SetLocal writes a node-local record durably (the write is synced
// before SetLocal returns).
func (db *DB) SetLocal(name string, value []byte) error {
	b := db.NewBatch()
	b.Set(localKey(name), value)
	return b.Commit(true)
}
