package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is a command's operation.
type Op byte

// Operations. Args[0] is always the key the command is routed by; every
// key a command names lives in the same shard (the proposer groups them).
// Int is an absolute time in ms since the epoch where an op says so, never
// a duration: the proposer turns relative times into absolute ones, so
// every replica applies the same thing.
const (
	// OpSet sets Args[0] to the string Args[1]; Int is the absolute expiry
	// in ms (0: none; at or before NowMS: the key is removed at once).
	// Flags: FlagNX, FlagXX, FlagKeepTTL, FlagGet. Result: N is 1 if the
	// condition held (the write happened), Value/Found the previous value
	// with FlagGet.
	OpSet Op = 1
	// OpDelete deletes the keys in Args; the result's N counts the live
	// ones that existed.
	OpDelete Op = 2
	// OpGetDel deletes the string at Args[0] and returns it in Value/Found.
	OpGetDel Op = 3
	// OpIncrBy adds Int to the integer string at Args[0] (a missing key
	// counts as 0) and returns the new value in N. The expiry is kept.
	OpIncrBy Op = 4
	// OpMSet sets the pairs Args[0], Args[1], Args[2], Args[3], ... to
	// strings without expiry, all at once. N is the number of pairs.
	OpMSet Op = 5
	// OpSAdd adds the members Args[1:] to the set at Args[0]; N counts the
	// members that were not there.
	OpSAdd Op = 6
	// OpSRem removes the members Args[1:] from the set at Args[0]; N counts
	// the members removed. An emptied set is deleted.
	OpSRem Op = 7
	// OpHSet sets the fields Args[1], Args[3], ... of the hash at Args[0]
	// to Args[2], Args[4], ...; N counts the fields that were not there.
	OpHSet Op = 8
	// OpHDel removes the fields Args[1:] of the hash at Args[0]; N counts
	// the fields removed. An emptied hash is deleted.
	OpHDel Op = 9
	// OpExpire sets the expiry of Args[0] to Int (absolute ms; at or before
	// NowMS the key is removed). Flags: FlagNX, FlagXX, FlagGT, FlagLT as
	// in Redis's EXPIRE. N is 1 if the expiry was set (or the key removed).
	OpExpire Op = 10
	// OpPersist removes the expiry of Args[0]; N is 1 if it had one.
	OpPersist Op = 11
	// OpStreamApply applies a stream batch (Args[0], encoded by package
	// stream) from another region's group: its commands are applied in
	// order, at most once each, and the stream's cursor is recorded with
	// them. N is the cursor after the batch (the acknowledgement).
	OpStreamApply Op = 12
	// OpRole sets the region-local group's role in its keyspace's
	// replication (async keyspaces; see Role): Int is the epoch, Flags are
	// RolePrimary and RoleFenced. Args[0] is empty or a source stream id
	// (8 bytes, big-endian) whose cursor the result's N reports, read in
	// the same step. Args[1] and Args[2], if present, are a source stream
	// id and index (8 bytes each): the group's cursor for that stream is
	// raised to the index, for a destination known to hold everything that
	// stream's source had up to it. A role with a lower epoch than the
	// group's is refused.
	OpRole Op = 13
	// OpStreamChunk applies one chunk of a resync (Args[0], encoded by
	// package stream): the group's data is replaced by the source's. N is
	// the stream's cursor after the chunk.
	OpStreamChunk Op = 14

	// Active keyspaces (see active.go). Every local op's last argument is
	// its ActiveStamp (origin region and HLC time, filled in by the
	// proposer); NowMS is required, and the stamp may not be more than
	// MaxStampSkewMS ahead of it (ErrClockSkew). Counts in results are of
	// this region's view.

	// OpActiveSet writes the register Args[0] := Args[1]. Args[2] names the
	// keyspace's resolver for conflicts ("" or "lww": last writer wins),
	// Args[3] is the stamp. Flags: FlagNX, FlagXX, FlagGet (judged on this
	// region's view). Int (an expiry) must be 0. N is 1 if written.
	OpActiveSet Op = 15
	// OpActiveDel deletes the keys Args[:n-1] whatever their types
	// (tombstones); Args[n-1] is the stamp. N counts the live keys.
	OpActiveDel Op = 16
	// OpActiveIncr adds Int to the counter Args[0]; Args[1] is the stamp. N
	// is the counter's new value.
	OpActiveIncr Op = 17
	// OpActiveSAdd adds the members Args[1:n-1] to the set Args[0];
	// Args[n-1] is the stamp. N counts the members that were not there.
	OpActiveSAdd Op = 18
	// OpActiveSRem removes the members Args[1:n-1] from the set Args[0];
	// Args[n-1] is the stamp. N counts the members removed.
	OpActiveSRem Op = 19
	// OpActiveHSet sets the fields Args[1], Args[3], ... of the hash Args[0]
	// to Args[2], Args[4], ...; Args[n-1] is the stamp. N counts the new
	// fields.
	OpActiveHSet Op = 20
	// OpActiveHDel deletes the fields Args[1:n-1] of the hash Args[0];
	// Args[n-1] is the stamp. N counts the fields removed.
	OpActiveHDel Op = 21
	// OpActiveMerge merges other regions' states into this group: Args are
	// pairs of a key and its full encoded state (the payload of its
	// record, see ActiveChange). Conflicts found are written to the
	// group's ledger in the same batch; N counts them. Merges are
	// idempotent, commutative and associative.
	OpActiveMerge Op = 22
	// OpActiveKnow records what the region Args[0] had of every region's
	// writes (Args[1], an encoded crdt.VersionVector of log indexes) when
	// it proposed this; shipped as itself to the other regions (gc.go).
	OpActiveKnow Op = 23
	// OpActiveGC removes the tombstones every region of Args (the
	// keyspace's regions) is known to have seen (gc.go). N counts them.
	OpActiveGC Op = 24
	// OpStreamCursor raises the group's cursor for the stream Args[0] (8
	// bytes, big-endian) to the index Args[1] (8 bytes): the end of a
	// resync by merges (active keyspaces), whose data came as OpActiveMerge
	// commands. N is the cursor after it.
	OpStreamCursor Op = 25

	// OpRedis runs one command of the engine (engine.go): Args[0] is the
	// key it is routed by, Args[1:] the command as a client sent it, the
	// name first. NowMS is required. The result's Value is the encoded
	// Reply (Found is set); the command's own failure is an error reply,
	// Err is left for failures of the role or the replica.
	OpRedis Op = 26
	// OpTxn runs a transaction (txn.go): Args[0] is the routing key,
	// Args[1] the watched keys and their versions, then each command as
	// its argument count (decimal) followed by its arguments. The
	// commands apply at once, as one entry; the result's Value is the
	// encoded Reply (an array of the commands' replies, or a nil array
	// when a watched key changed and nothing ran).
	OpTxn Op = 27
	// OpActiveRedis runs commands of the engine in an active keyspace
	// (active_redis.go): Args[0] is the routing key, then the commands as
	// for OpTxn (one for a single command), then the stamp. The result's
	// Value is the encoded reply: the command's, or an array for a
	// transaction (Int 1).
	OpActiveRedis Op = 28
)

// Flags of OpRole.
const (
	RolePrimary uint64 = 1 << 0
	RoleFenced  uint64 = 1 << 1
)

var opNames = [...]string{
	OpSet: "set", OpDelete: "delete", OpGetDel: "getdel", OpIncrBy: "incrby", OpMSet: "mset",
	OpSAdd: "sadd", OpSRem: "srem", OpHSet: "hset", OpHDel: "hdel", OpExpire: "expire", OpPersist: "persist", OpStreamApply: "streamapply",
	OpRole: "role", OpStreamChunk: "streamchunk",
	// Active keyspaces (active.go).
	OpActiveSet: "activeset", OpActiveDel: "activedel", OpActiveIncr: "activeincr", OpActiveSAdd: "activesadd",
	OpActiveSRem: "activesrem", OpActiveHSet: "activehset", OpActiveHDel: "activehdel", OpActiveMerge: "activemerge",
	OpActiveKnow: "activeknow", OpActiveGC: "activegc", OpStreamCursor: "streamcursor",
	OpRedis: "redis", OpTxn: "txn", OpActiveRedis: "activeredis",
	OpRestoreChunk: "restorechunk", // restore.go
}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// Flags of OpSet and OpExpire.
const (
	FlagNX      uint64 = 1 << 0 // set: only if the key does not exist; expire: only if it has no expiry
	FlagXX      uint64 = 1 << 1 // set: only if the key exists; expire: only if it has an expiry
	FlagKeepTTL uint64 = 1 << 2 // set: keep the existing expiry
	FlagGet     uint64 = 1 << 3 // set: return the previous value
	FlagGT      uint64 = 1 << 4 // expire: only if the new expiry is later (no expiry counts as infinite)
	FlagLT      uint64 = 1 << 5 // expire: only if the new expiry is earlier (no expiry counts as infinite)
)

// Encoding versions. Version 1 is (op, flags, int, args); version 2 adds
// the proposer's clock (NowMS) after the integer; version 3 adds the
// replication epoch after the clock. All are decoded; Encode writes
// version 3.
const (
	commandV1      = 1
	commandV2      = 2
	commandV3      = 3
	commandVersion = commandV3
)

// PeekOp returns the op of an encoded command without decoding the rest
// (every version puts it second).
func PeekOp(b []byte) (Op, bool) {
	if len(b) < 2 || b[0] < commandV1 || b[0] > commandV3 {
		return 0, false
	}
	return Op(b[1]), true
}

// ErrBadCommand is returned when a command cannot be decoded or makes no
// sense (unknown op, wrong number of arguments).
var ErrBadCommand = errors.New("kv: malformed command")

// ErrUnsupported is wrapped, with ErrBadCommand, by the error about a
// command of an encoding version or an op this binary does not know: a
// newer binary wrote it. Applying it is fatal rather than a command error
// (see StateMachine.Apply), since replicas running the newer binary apply
// it.
var ErrUnsupported = errors.New("kv: command from a newer binary (unknown version or op)")

// Command is one write.
type Command struct {
	Op    Op
	Flags uint64
	Int   int64
	// NowMS is the proposer's clock (ms since the epoch) when it made the
	// command. Writes treat a record whose expiry is at or before NowMS as
	// absent. Zero (every version-1 command) means "unknown": records are
	// then treated as live, which is what version 1 did, so that replaying
	// an old log gives the state it gave before.
	NowMS int64
	// Epoch is the keyspace's replication epoch as the proposer saw it
	// (async keyspaces; zero elsewhere). A region-local group applies a
	// write only if it is the primary of exactly that epoch.
	Epoch uint64
	Args  [][]byte
}

// Encode returns the command's log encoding (version 3).
func (c Command) Encode() []byte {
	n := 2 + 3*binary.MaxVarintLen64
	for _, a := range c.Args {
		n += len(a) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, byte(c.Op))
	b = binary.AppendUvarint(b, c.Flags)
	b = binary.AppendVarint(b, c.Int)
	b = binary.AppendVarint(b, c.NowMS)
	b = binary.AppendUvarint(b, c.Epoch)
	b = binary.AppendUvarint(b, uint64(len(c.Args)))
	for _, a := range c.Args {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

// DecodeCommand parses an encoded command of version 1, 2 or 3. The
// arguments alias b. A later version fails with an error wrapping both
// ErrBadCommand and ErrUnsupported.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	version := b[0]
	if version > commandVersion {
		return c, fmt.Errorf("%w: %w: version %d", ErrBadCommand, ErrUnsupported, b[0])
	}
	if version < commandV1 {
		return c, fmt.Errorf("%w: unknown version %d", ErrBadCommand, b[0])
	}
	c.Op = Op(b[1])
	b = b[2:]
	var w int
	if c.Flags, w = binary.Uvarint(b); w <= 0 {
		return c, fmt.Errorf("%w: flags", ErrBadCommand)
	}
	b = b[w:]
	if c.Int, w = binary.Varint(b); w <= 0 {
		return c, fmt.Errorf("%w: integer", ErrBadCommand)
	}
	b = b[w:]
	if version >= commandV2 {
		if c.NowMS, w = binary.Varint(b); w <= 0 {
			return c, fmt.Errorf("%w: clock", ErrBadCommand)
		}
		b = b[w:]
	}
	if version >= commandV3 {
		if c.Epoch, w = binary.Uvarint(b); w <= 0 {
			return c, fmt.Errorf("%w: epoch", ErrBadCommand)
		}
		b = b[w:]
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return c, fmt.Errorf("%w: argument count", ErrBadCommand)
	}
	b = b[w:]
	c.Args = make([][]byte, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return c, fmt.Errorf("%w: argument length", ErrBadCommand)
		}
		c.Args = append(c.Args, b[w:w+int(l)])
		b = b[w+int(l):]
	}
	if len(b) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(b))
	}
	return c, nil
}
