package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/storage"
)

// The command engine (docs/DESIGN.md 5.5) runs Redis commands, given as
// their arguments (the name first, as a client sends them), against one
// group's data, and answers with a Reply. Writes run inside the state machine as OpRedis
// (one command) or OpTxn (a transaction, txn.go), so that every replica
// computes the same reply; reads run on a consistent view of a replica's
// committed data (Query). Each command is one handler, used for both, and
// inside transactions.
//
// Commands that fail (a wrong type, a syntax error, a value out of range)
// answer an error reply and change nothing: a handler checks everything
// before its first write. A failure of the replica (a storage error, a
// stored record that does not decode) is not a reply: it is returned as
// the error, which the host treats as fatal for writes (see IsFatal).
//
// The arguments reach the engine as the client sent them; the only thing
// the proposer adds is its clock (Command.NowMS), against which relative
// times ("EXPIRE k 10") and expiries are judged, so that every replica
// applies the same thing.

// Spec describes a command of the engine: what COMMAND reports about it
// and how the front end routes it.
type Spec struct {
	Name string
	// Arity counts the name: n > 0 exactly n arguments, n < 0 at least -n.
	Arity int
	// Write: the command may change data (it is proposed); otherwise it
	// reads (it runs on a replica's view).
	Write bool
	// Flags are further COMMAND flags ("fast", "denyoom", "blocking", ...).
	Flags []string
	// First, Last, Step locate the keys among the arguments as COMMAND
	// reports them: Last -1 is the last argument, -2 the one before.
	First, Last, Step int
	// Group is the command's group ("string", "list", ...).
	Group string
	// Summary says what the command does.
	Summary string
	// Active says whether and how the command runs in an active keyspace
	// (ActiveRead, ActiveWrite, or the reason it is refused).
	Active string
	// Internal commands are the front end's own (not Redis commands).
	Internal bool

	run func(x *execCtx, args [][]byte) Reply
}

// How a command runs in an active keyspace (Spec.Active); anything else
// is the reason it is refused there.
const (
	ActiveRead  = "read"  // reads the region's merged state
	ActiveWrite = "write" // a CRDT operation of the region (active_redis.go)
)

// Keys returns the keys among args (the name first), as First, Last and
// Step locate them.
func (s *Spec) Keys(args [][]byte) [][]byte {
	if s.First <= 0 || s.First >= len(args) {
		return nil
	}
	last := s.Last
	if last < 0 {
		last = len(args) + last
	}
	last = min(last, len(args)-1)
	step := max(s.Step, 1)
	var out [][]byte
	for i := s.First; i <= last; i += step {
		out = append(out, args[i])
	}
	return out
}

// CheckArity reports whether args (the name first) have the number of
// arguments the command takes.
func (s *Spec) CheckArity(args [][]byte) bool {
	return (s.Arity > 0 && len(args) == s.Arity) || (s.Arity < 0 && len(args) >= -s.Arity)
}

// specs holds every engine command by lower-case name.
var specs = map[string]*Spec{}

// register adds commands to the engine (each command file's init).
func register(ss ...*Spec) {
	for _, s := range ss {
		if specs[s.Name] != nil {
			panic("kv: command registered twice: " + s.Name)
		}
		specs[s.Name] = s
	}
}

// Lookup returns the engine's command of that (any case) name.
func Lookup(name []byte) (*Spec, bool) {
	s, ok := specs[strings.ToLower(string(name))]
	return s, ok
}

// Specs returns every engine command but the internal ones, by name.
func Specs() []*Spec {
	out := make([]*Spec, 0, len(specs))
	for _, s := range specs {
		if !s.Internal {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// errArity is Redis's reply to a command with the wrong number of
// arguments.
func errArity(name []byte) Reply {
	return Errorf("ERR wrong number of arguments for '%s' command", strings.ToLower(string(name)))
}

// Replies shared by many commands, with Redis's texts.
var (
	errSyntax      = Errorf("ERR syntax error")
	errNotInteger  = ErrReply(ErrNotInteger)
	errWrongType   = ErrReply(ErrWrongType)
	errNotFloat    = Errorf("ERR value is not a valid float")
	errNoSuchKey   = Errorf("ERR no such key")
	errOutOfRange  = Errorf("ERR index out of range")
	errNotPositive = Errorf("ERR value is out of range, must be positive")
)

// source is what the engine reads: a batch (writes, transactions) or a
// consistent view (reads).
type source interface {
	get(group uint64, key []byte) ([]byte, bool, error)
	getElem(group uint64, suffix []byte) ([]byte, bool, error)
	elems(group uint64, lo, hi []byte) (*storage.ElemIter, error)
}

type batchSource struct{ b *storage.Batch }

func (s batchSource) get(g uint64, k []byte) ([]byte, bool, error)     { return s.b.GetData(g, k) }
func (s batchSource) getElem(g uint64, k []byte) ([]byte, bool, error) { return s.b.GetElem(g, k) }
func (s batchSource) elems(g uint64, lo, hi []byte) (*storage.ElemIter, error) {
	return s.b.Elems(g, lo, hi)
}

type viewSource struct{ r *storage.Reader }

func (s viewSource) get(g uint64, k []byte) ([]byte, bool, error)     { return s.r.Get(g, k) }
func (s viewSource) getElem(g uint64, k []byte) ([]byte, bool, error) { return s.r.GetElem(g, k) }
func (s viewSource) elems(g uint64, lo, hi []byte) (*storage.ElemIter, error) {
	return s.r.Elems(g, lo, hi)
}

// execCtx runs commands against one group's data.
type execCtx struct {
	src   source
	b     *storage.Batch // nil when reading
	group uint64
	now   int64  // ms since the epoch: the proposer's clock, or the reader's
	index uint64 // the command's log index (records' versions); 0 when reading
	// err is the first failure of the replica met (sticky): handlers go on
	// with zero values, and the caller returns it instead of the reply.
	err error
	rng *rand.Rand
	// wake, if set, is told of keys written as non-empty lists or sorted
	// sets (blocking pops wait for them).
	wake func(key []byte)
	// active is set in active keyspaces: records hold CRDT states, read
	// as the plain values they stand for (active_redis.go).
	active bool
	// atxn, in an active write, holds the states the op has loaded and
	// changed so far: reads see them.
	atxn *activeTxn
	// known, for a plain data op applied from the log, is what the state
	// machine knows of the group through this batch (knownFacts).
	known *knownFacts
}

// replaced returns what put needs of the record a write replaces: the
// stored entry, or nothing when the group holds no list or sorted set
// (put reads the old record only to drop such a collection's elements).
// A string SET on a node with millions of keys spent most of its apply
// time looking up the record it overwrites.
func (x *execCtx) replaced(key []byte) entry {
	if x.noCollections() {
		return entry{}
	}
	return x.lookup(key)
}

// noCollections reports whether the group is known to hold no list or
// sorted set: it never allocated a collection id (newID), read once for a
// run of batches (knownFacts).
func (x *execCtx) noCollections() bool {
	k := x.known
	if k == nil {
		return false
	}
	if k.coll == 0 {
		_, ok, err := x.src.getElem(x.group, nextIDSuffix)
		k.reads++
		switch {
		case err != nil:
			return false // lookup meets the failure
		case ok:
			k.coll = 2
		default:
			k.coll = 1
		}
	}
	return k.coll == 1
}

func (x *execCtx) fail(err error) {
	if x.err == nil && err != nil {
		x.err = err
	}
}

// random returns the command's random source: seeded from the command's
// position and key when writing, so that every replica draws the same
// numbers; from the runtime's source when reading.
func (x *execCtx) random(key []byte) *rand.Rand {
	if x.rng == nil {
		if x.b == nil {
			x.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		} else {
			h := fnv.New64a()
			_, _ = h.Write(key)
			x.rng = rand.New(rand.NewPCG(x.index, h.Sum64()^uint64(x.now)))
		}
	}
	return x.rng
}

// entry is a key as a command sees it.
type entry struct {
	rec    Record // the stored record (also when it has expired)
	live   bool   // stored and not expired
	stored bool
	// az is the sorted set of an active keyspace (reads only).
	az *zsetMem
}

// typ returns the live key's type, TypeNone if it does not exist.
func (e entry) typ() Type {
	if !e.live {
		return TypeNone
	}
	return e.rec.Type
}

// is reports whether the key is live with type t; a live key of another
// type is ErrWrongType.
func (e entry) is(t Type) (bool, Reply, bool) {
	if !e.live {
		return false, Reply{}, true
	}
	if e.rec.Type != t {
		return false, errWrongType, false
	}
	return true, Reply{}, true
}

// lookup loads a key.
func (x *execCtx) lookup(key []byte) entry {
	if x.atxn != nil {
		s, err := x.atxn.load(key)
		if err != nil {
			x.fail(err)
			return entry{}
		}
		return x.activeStateEntry(s)
	}
	v, ok, err := x.src.get(x.group, key)
	if err != nil || !ok {
		x.fail(err)
		return entry{}
	}
	rec, err := DecodeRecord(v)
	if err != nil {
		x.fail(corrupt(err, "record", key))
		return entry{}
	}
	e := entry{rec: rec, stored: true, live: !(x.now != 0 && rec.Expired(x.now))}
	if rec.Type == TypeActive {
		return x.activeEntry(key, rec)
	}
	return e
}

// put stores rec at key, which held old: the elements of a list or sorted
// set that rec replaces are dropped, and the record gets the command's
// index as its version.
func (x *execCtx) put(key []byte, old entry, rec Record) {
	if old.stored && hasElems(old.rec.Type) && !sameCollection(old.rec, rec) {
		x.dropElems(old.rec)
	}
	rec.Version = x.index
	x.b.SetData(x.group, key, rec.Encode())
	if hasElems(rec.Type) && x.wake != nil {
		x.wake(key)
	}
}

// remove deletes the key, which held old, with its elements.
func (x *execCtx) remove(key []byte, old entry) {
	if !old.stored {
		return
	}
	if hasElems(old.rec.Type) {
		x.dropElems(old.rec)
	}
	x.b.DeleteData(x.group, key)
}

// hasElems reports whether records of type t own elements.
func hasElems(t Type) bool { return t == TypeList || t == TypeZSet }

// Element suffixes. Each list or sorted set has an id, unique in its
// group, and its elements' suffixes start with it (8 bytes, big-endian),
// so that a collection's elements are one range, renaming a key moves no
// element, and a replaced collection's elements can be dropped with one
// range deletion. Id 0 holds the group's next id.
var nextIDSuffix = make([]byte, 8)

func idPrefix(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 24), id) }

// collectionID returns the id of a list or sorted set record.
func collectionID(rec Record) (uint64, bool) {
	if !hasElems(rec.Type) || len(rec.Payload) < 2 {
		return 0, false
	}
	id, w := uvarint(rec.Payload[1:])
	return id, w > 0 && id != 0
}

func sameCollection(a, b Record) bool {
	ia, oka := collectionID(a)
	ib, okb := collectionID(b)
	return oka && okb && a.Type == b.Type && ia == ib
}

// dropElems deletes the elements of a list or sorted set record.
func (x *execCtx) dropElems(rec Record) {
	if id, ok := collectionID(rec); ok {
		x.b.DeleteElems(x.group, idPrefix(id), idPrefix(id+1))
	}
}

// newID allocates a collection id.
func (x *execCtx) newID() uint64 {
	id := uint64(1)
	v, ok, err := x.src.getElem(x.group, nextIDSuffix)
	x.fail(err)
	if ok {
		n, w := binary.Uvarint(v)
		if w <= 0 {
			x.fail(fmt.Errorf("%w: the group's next collection id", storage.ErrCorrupt))
		}
		id = max(n, 1)
	}
	x.b.SetElem(x.group, nextIDSuffix, binary.AppendUvarint(nil, id+1))
	return id
}

// run runs one command; it must be an engine command of the right arity
// (see exec).
func (x *execCtx) run(spec *Spec, args [][]byte) Reply {
	if !spec.CheckArity(args) {
		return errArity(args[0])
	}
	if spec.Write && x.b == nil {
		return Errorf("ERR %s writes and cannot run as a read", spec.Name)
	}
	return spec.run(x, args)
}

// exec looks a command up and runs it.
func (x *execCtx) exec(args [][]byte) Reply {
	if len(args) == 0 {
		return Errorf("ERR empty command")
	}
	spec, ok := Lookup(args[0])
	if !ok {
		return Errorf("ERR unknown command '%s'", printable(args[0]))
	}
	return x.run(spec, args)
}

// printable shortens b for an error message and replaces control bytes.
func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	out := bytes.Clone(b)
	for i, ch := range out {
		if ch < ' ' || ch == 0x7f {
			out[i] = ' '
		}
	}
	return string(out)
}

// applyRedis applies OpRedis: Args[0] is the routing key, Args[1:] the
// command. The result's Value is the encoded reply.
func (sm *StateMachine) applyRedis(b *storage.Batch, index uint64, c Command) Result {
	x := &execCtx{src: batchSource{b}, b: b, group: sm.Group, now: c.NowMS, index: index, wake: sm.wakeFn()}
	r := x.exec(c.Args[1:])
	if x.err != nil {
		return Result{Err: x.err}
	}
	return Result{Value: r.Encode(), Found: true}
}

// wakeFn returns the function telling the node that a key was written as
// a non-empty list or sorted set (nil if nobody listens).
func (sm *StateMachine) wakeFn() func([]byte) {
	if sm.OnPush == nil {
		return nil
	}
	return func(key []byte) { sm.OnPush(sm.Group, key) }
}

// RedisCommand builds the command that runs a Redis write: args are the
// command as the client sent it (the name first), routed by key.
func RedisCommand(key []byte, nowMS int64, args [][]byte) Command {
	a := make([][]byte, 0, len(args)+1)
	return Command{Op: OpRedis, NowMS: nowMS, Args: append(append(a, key), args...)}
}

// Query runs a read-only command on a consistent view of a group's
// committed data, judging expiry at nowMS, and returns its reply. The
// error is a failure of the replica (storage, decoding), never the
// command's.
func Query(db *storage.DB, group uint64, nowMS int64, args [][]byte, active bool) (Reply, error) {
	view := db.NewReader()
	defer view.Close()
	x := &execCtx{src: viewSource{view}, group: group, now: nowMS, active: active}
	r := x.exec(args)
	return r, x.err
}

// sortedStrings returns the distinct byte strings of in, sorted.
func sortedStrings(in [][]byte) [][]byte {
	out := slices.Clone(in)
	slices.SortFunc(out, bytes.Compare)
	return slices.CompactFunc(out, bytes.Equal)
}
