package kv

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/meridian-db/meridian/storage"
)

// Transactions (MULTI/EXEC). A transaction is one OpTxn: the commands a
// client queued, all of whose keys live in one shard, applied at once as
// one raft entry, in order, each seeing the previous ones' writes; as in
// Redis, a command that fails answers its error and the others still
// run.
//
// WATCH is optimistic. When a client watches a key, the front end reads
// the key's state with a strong read: whether it exists, and its record's
// version, the log index of the command that last wrote it (Record.
// Version). EXEC sends those along; the state machine compares them with
// the keys' states when it applies the transaction and, if any differs,
// runs nothing and answers a nil array. Every write of a key gives its
// record a new version, also one that leaves the value as it was, and an
// expiry makes a watched key absent, so a key written or expired since it
// was watched is seen as changed. A key that did not exist when watched,
// and was created and deleted again before EXEC, is not (Redis sees it).

// Watch is a watched key's state as read when the client watched it.
type Watch struct {
	Key     []byte
	Exists  bool
	Version uint64
}

// encodeWatches encodes watches: uvarint count, then for each the key
// (uvarint length, bytes), a byte (1 if it existed) and its version.
func encodeWatches(ws []Watch) []byte {
	b := binary.AppendUvarint(nil, uint64(len(ws)))
	for _, w := range ws {
		b = binary.AppendUvarint(b, uint64(len(w.Key)))
		b = append(b, w.Key...)
		exists := byte(0)
		if w.Exists {
			exists = 1
		}
		b = append(b, exists)
		b = binary.AppendUvarint(b, w.Version)
	}
	return b
}

func decodeWatches(b []byte) ([]Watch, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: watch count", ErrBadCommand)
	}
	b = b[w:]
	out := make([]Watch, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) || len(b) < w+int(l)+1 {
			return nil, fmt.Errorf("%w: watched key", ErrBadCommand)
		}
		ws := Watch{Key: b[w : w+int(l)], Exists: b[w+int(l)] == 1}
		b = b[w+int(l)+1:]
		if ws.Version, w = binary.Uvarint(b); w <= 0 {
			return nil, fmt.Errorf("%w: watched version", ErrBadCommand)
		}
		b = b[w:]
		out = append(out, ws)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the watches", ErrBadCommand, len(b))
	}
	return out, nil
}

// appendCommands appends each command as its argument count (decimal)
// followed by its arguments, so that every argument stays a command
// argument of its own (the node bounds each).
func appendCommands(args [][]byte, cmds [][][]byte) [][]byte {
	for _, c := range cmds {
		args = append(args, strconv.AppendInt(nil, int64(len(c)), 10))
		args = append(args, c...)
	}
	return args
}

// splitCommands undoes appendCommands.
func splitCommands(args [][]byte) ([][][]byte, error) {
	var out [][][]byte
	for len(args) > 0 {
		n, ok := ParseInt(args[0])
		if !ok || n < 1 || n > int64(len(args)-1) {
			return nil, fmt.Errorf("%w: transaction command count", ErrBadCommand)
		}
		out = append(out, args[1:1+n])
		args = args[1+n:]
	}
	return out, nil
}

// TxnCommand builds the OpTxn of a transaction routed by key: the
// watched keys' states and the queued commands (each as a client sent
// it, the name first).
func TxnCommand(key []byte, nowMS int64, watches []Watch, cmds [][][]byte) Command {
	args := [][]byte{key, encodeWatches(watches)}
	return Command{Op: OpTxn, NowMS: nowMS, Args: appendCommands(args, cmds)}
}

// applyTxn applies OpTxn (see the top of this file).
func (sm *StateMachine) applyTxn(b *storage.Batch, index uint64, c Command) Result {
	watches, err := decodeWatches(c.Args[1])
	if err != nil {
		return Result{Err: err}
	}
	cmds, err := splitCommands(c.Args[2:])
	if err != nil {
		return Result{Err: err}
	}
	x := &execCtx{src: batchSource{b}, b: b, group: sm.Group, now: c.NowMS, index: index, wake: sm.wakeFn()}
	for _, w := range watches {
		e := x.lookup(w.Key)
		if x.err != nil {
			return Result{Err: x.err}
		}
		if e.live != w.Exists || e.live && e.rec.Version != w.Version {
			return Result{Value: NilArray().Encode(), Found: true}
		}
	}
	replies := make([]Reply, len(cmds))
	for i, cmd := range cmds {
		replies[i] = x.exec(cmd)
		if x.err != nil {
			return Result{Err: x.err}
		}
	}
	return Result{Value: Array(replies...).Encode(), Found: true}
}

// WatchStateCommand is the read whose reply gives a key's state for
// WATCH: an array of 1 or 0 (exists) and the record's version.
func WatchStateCommand(key []byte) [][]byte {
	return [][]byte{[]byte(watchStateName), key}
}

const watchStateName = "meridian.watchstate"

func init() {
	register(&Spec{Name: watchStateName, Arity: 2, First: 1, Last: 1, Step: 1, Internal: true, Group: "transactions",
		Active: "WATCH is refused in active keyspaces", run: cmdWatchState})
}

func cmdWatchState(x *execCtx, args [][]byte) Reply {
	e := x.lookup(args[1])
	if !e.live {
		return Array(Int(0), Int(0))
	}
	return Array(Int(1), Int(int64(e.rec.Version)))
}

// ParseWatchState reads the reply of WatchStateCommand.
func ParseWatchState(key []byte, r Reply) (Watch, error) {
	if r.Kind != ReplyArray || len(r.Elems) != 2 || r.Elems[0].Kind != ReplyInt || r.Elems[1].Kind != ReplyInt {
		if err := r.Err(); err != nil {
			return Watch{}, err
		}
		return Watch{}, fmt.Errorf("%w: a watch state", ErrBadReply)
	}
	return Watch{Key: key, Exists: r.Elems[0].Int == 1, Version: uint64(r.Elems[1].Int)}, nil
}
