package storage

import "encoding/binary"

const (
	prefixRaft = 'r'
	prefixData = 'd'

	suffixHardState = 'h'
	suffixApplied   = 'a'
	suffixTruncated = 't'
	suffixLog       = 'l'
)

func groupKey(prefix byte, group uint64, extra int) []byte {
	k := make([]byte, 9, 9+extra)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], group)
	return k
}

func raftKey(group uint64, suffix byte) []byte {
	return append(groupKey(prefixRaft, group, 1), suffix)
}

func logKey(group, index uint64) []byte {
	k := append(groupKey(prefixRaft, group, 9), suffixLog)
	return binary.BigEndian.AppendUint64(k, index)
}

// DataKey is the storage key of a user key in a group's data span.
func DataKey(group uint64, key []byte) []byte {
	return append(groupKey(prefixData, group, len(key)), key...)
}

// dataSpan returns [start, end) of a group's data.
func dataSpan(group uint64) ([]byte, []byte) {
	return groupKey(prefixData, group, 0), groupKey(prefixData, group+1, 0)
}

// raftSpan returns [start, end) of everything raft keeps for a group.
func raftSpan(group uint64) ([]byte, []byte) {
	return groupKey(prefixRaft, group, 0), groupKey(prefixRaft, group+1, 0)
}
