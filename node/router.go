package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/transport"
)

// Request errors. The front ends map these to protocol errors (one place:
// see ErrorCode).
var (
	ErrEmptyKey           = errors.New("node: empty key")
	ErrKeyTooLarge        = errors.New("node: key too large")
	ErrValueTooLarge      = errors.New("node: value too large")
	ErrUnknownConsistency = errors.New("node: unknown consistency level")
	ErrNoReplica          = strategy.ErrNoReplica
	// ErrStaleRoute: a forwarded request reached a node that no longer
	// (or not yet) holds the shard: the sender's metadata and the
	// receiver's differ. Nothing was done; the sender retries.
	ErrStaleRoute      = errors.New("node: request routed by other metadata")
	ErrUnknownKeyspace = metadata.ErrUnknownKeyspace
	// ErrWouldWait: a read asked not to wait (Consistency.NoWait) could
	// not be served at once. Nothing was read; the caller asks again
	// without NoWait, from a goroutine that may wait.
	ErrWouldWait = errors.New("node: the read would have to wait")
)

// Consistency is how fresh a read must be: a level (see package
// consistency) and, for session reads, the session token presented. The
// zero value means the keyspace's default level.
type Consistency struct {
	Req consistency.Requirement `json:"r"`
	// Token is an encoded session token (may be empty).
	Token string `json:"t,omitempty"`
	// Session, if set, is Token already decoded, by a caller in this
	// process (a front end that keeps a connection's token) or by the
	// node when it first checked the request: it is read instead of
	// parsing Token again, once checked to be this cluster's token for
	// the keyspace read. Token must still be its encoding, which is what
	// a read forwarded to another node carries. The node reads it only
	// during the call.
	Session *consistency.Token `json:"-"`
	// NoWait, set by a caller that must not block (the RESP server's
	// event loop), serves the read only if it can be served at once from
	// this node, without the network, a quorum round or a wait for the
	// local replica: strong under the leader's lease, eventual and prefix
	// from a local replica. Otherwise the read fails with ErrWouldWait.
	NoWait bool `json:"-"`
}

// The two levels every keyspace supports in their simplest form.
var (
	// Strong reads are linearizable: they reflect every write acknowledged
	// before the read began.
	Strong = Consistency{Req: consistency.Requirement{Level: consistency.Strong}}
	// Eventual reads return the local replica's current value at once.
	Eventual = Consistency{Req: consistency.Requirement{Level: consistency.Eventual}}
)

// consistencyJSON is how a Consistency crosses the network: the level as
// text ("" for the keyspace's default) and the token.
type consistencyJSON struct {
	Level string `json:"l,omitempty"`
	Token string `json:"t,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (c Consistency) MarshalJSON() ([]byte, error) {
	j := consistencyJSON{Token: c.Token}
	if c.Req.Level != 0 {
		j.Level = c.Req.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Consistency) UnmarshalJSON(b []byte) error {
	var j consistencyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = Consistency{Token: j.Token}
	if j.Level != "" {
		r, err := consistency.Parse(j.Level)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnknownConsistency, err)
		}
		c.Req = r
	}
	return nil
}

// Level returns the consistency of a level alone (no session token).
func Level(r consistency.Requirement) Consistency { return Consistency{Req: r} }

func (c Consistency) String() string {
	if c.Req.Level == 0 {
		return "default"
	}
	return c.Req.String()
}

// ParseConsistency parses a level: strong, bounded(D), session, prefix or
// eventual ("linearizable" is read as strong).
func ParseConsistency(s string) (Consistency, error) {
	if strings.EqualFold(s, "linearizable") {
		return Strong, nil
	}
	r, err := consistency.Parse(s)
	if err != nil {
		return Consistency{}, fmt.Errorf("%w: %w", ErrUnknownConsistency, err)
	}
	return Consistency{Req: r}, nil
}

// Answer describes how a request was served.
type Answer struct {
	// Region and Node that served the request.
	Region string `json:"region"`
	Node   uint64 `json:"node"`
	// Consistency actually provided.
	Consistency string `json:"consistency"`
	// Index is the raft log index the answer reflects (writes: where the
	// write was applied; strong reads: the read index).
	Index uint64 `json:"index,omitempty"`
	// Forwarded is true when another node served the request.
	Forwarded bool `json:"forwarded,omitempty"`
	// Group is the raft group whose log Index refers to (the shard's
	// primary or only group): with it a session token records the
	// answer (see Node.Session).
	Group uint64 `json:"group,omitempty"`
	// StalenessMS bounds how stale the answer may be, in ms: 0 for strong
	// answers and writes, -1 when unknown.
	StalenessMS int64 `json:"staleness_ms"`
	// Written is, for a request that wrote to several groups (MSET, DEL
	// of keys in several shards), each group's position (Index is then
	// zero): a session token records them all (see Marks).
	Written []consistency.Mark `json:"-"`
}

// Marks returns the log positions the answer reflects, for session
// tokens: Written, or the one group's.
func (a Answer) Marks() []consistency.Mark {
	if len(a.Written) > 0 {
		return a.Written
	}
	if a.Group != 0 && a.Index != 0 {
		return []consistency.Mark{{Group: a.Group, Index: a.Index}}
	}
	return nil
}

// ShardOf returns the shard index of a key in a keyspace of n shards:
// FNV-1a of the key, or of its hash tag if it has one, as Redis Cluster
// hashes: the bytes between the first '{' and the first '}' after it, if
// there are any ("{user42}:cart" and "{user42}:orders" share a shard).
func ShardOf(key []byte, n int) int {
	h := fnv.New64a()
	_, _ = h.Write(HashTag(key))
	return int(h.Sum64() % uint64(n))
}

// HashTag returns the part of key that decides its shard: its hash tag
// if it has a non-empty one, else the whole key.
func HashTag(key []byte) []byte {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func (n *Node) route(keyspace string, key []byte) (*metadata.Keyspace, metadata.Shard, error) {
	if len(key) == 0 {
		return nil, metadata.Shard{}, ErrEmptyKey
	}
	if len(key) > n.cfg.MaxKeyBytes {
		return nil, metadata.Shard{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrKeyTooLarge, len(key), n.cfg.MaxKeyBytes)
	}
	ks, err := n.meta.Keyspace(keyspace)
	if err != nil {
		return nil, metadata.Shard{}, err
	}
	return ks, ks.Shards[ShardOf(key, len(ks.Shards))], nil
}

// untilStop returns a context that ends when the node stops (or when
// cancel is called): for background work that must not outlive it.
func (n *Node) untilStop() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.RequestTimeout)
}

// writeContext is withTimeout for a single write, which leaves no work
// behind when it returns: without a deadline of its own, it shares one
// with the writes of the same instant (deadline.go), and its cancel does
// nothing.
func (n *Node) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	if c, ok := n.deadlines.get(ctx, n.cfg.RequestTimeout); ok {
		return c, noCancel
	}
	return context.WithTimeout(ctx, n.cfg.RequestTimeout)
}

func (n *Node) answer(c Consistency, index uint64) Answer {
	return Answer{Region: n.cfg.Region, Node: n.cfg.ID, Consistency: c.String(), Index: index}
}

// strongAnswer describes a write or strong read at a group's index.
func (n *Node) strongAnswer(group, index uint64) Answer {
	a := n.answer(Strong, index)
	a.Group = group
	return a
}

// Write applies a kv command (its first argument is the routing key).
func (n *Node) Write(ctx context.Context, keyspace string, cmd kv.Command) (kv.Result, Answer, error) {
	if len(cmd.Args) == 0 {
		return kv.Result{}, Answer{}, ErrEmptyKey
	}
	if err := n.valuesFit(cmd); err != nil {
		return kv.Result{}, Answer{}, err
	}
	ctx, cancel := n.writeContext(ctx)
	defer cancel()
	for {
		changed := n.meta.Changed()
		ks, sh, err := n.route(keyspace, cmd.Args[0])
		if err != nil {
			return kv.Result{}, Answer{}, err
		}
		// The keyspace's strategy says which group takes the write (the
		// shard's, or this region's for an active keyspace) and, on a node
		// holding a replica of it, what the group applies (Prepare: an
		// epoch, a CRDT op stamped here). Elsewhere the write goes to that
		// group's leader, which prepares it.
		s := n.strategyOf(ks)
		target := s.WriteGroup(sh)
		var res kv.Result
		var a Answer
		if !slices.Contains(target.Replicas, n.cfg.ID) {
			res, a, err = n.writeRemote(ctx, keyspace, target, cmd)
		} else {
			wcmd, perr := s.Prepare(ks, cmd)
			if perr != nil {
				return kv.Result{}, Answer{}, perr
			}
			res, a, err = n.writeGroup(ctx, target.Group, wcmd)
		}
		if !retryableRole(err) {
			return res, a, err
		}
		// The keyspace's primary is changing and nothing was applied: wait
		// for the metadata to move on (or a moment, for the new primary's
		// role to be installed) and send the write again.
		select {
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return res, a, err
		}
	}
}

// WriteAsync starts a write that needs nothing but this node, without
// waiting for it: a plain SET or MSET (kv.Command with no options) of a
// sync keyspace whose group this node leads, which joins the group's open
// batch of writes (combine.go). done is called with the outcome, as Write
// would return it, on another goroutine, at most once the node's request
// timeout has passed. WriteAsync returns false, having done nothing and
// calling nothing, for any other write (another strategy or node, a
// command with options, a key or value out of bounds, combining turned
// off): the caller runs it with Write. The event loop of package resp
// writes this way, so that it never waits.
func (n *Node) WriteAsync(keyspace string, cmd kv.Command, done func(kv.Result, Answer, error)) bool {
	if n.cfg.NoCombine || len(cmd.Args) == 0 || n.valuesFit(cmd) != nil {
		return false
	}
	ks, sh, err := n.route(keyspace, cmd.Args[0])
	if err != nil || ks.Strategy != metadata.Sync { // (a sync group's Gate lets everything through)
		return false
	}
	s := n.strategyOf(ks)
	target := s.WriteGroup(sh)
	if !slices.Contains(target.Replicas, n.cfg.ID) || n.host.Leader(target.Group) != n.cfg.ID {
		return false
	}
	wcmd, err := s.Prepare(ks, cmd)
	if err != nil {
		return false
	}
	enc := wcmd.Encode()
	c, ok := combinable(enc)
	if !ok {
		return false
	}
	group := target.Group
	n.proposeSetAsync(group, enc, c, func(p raftgroup.Result, err error) {
		var res kv.Result
		var a Answer
		if err == nil {
			res, a, err = n.written(group, proposal{Index: p.Index, Value: p.Value, Node: n.cfg.ID})
		}
		if noEffect(err) || retryableRole(err) {
			// Nothing took effect (leadership or the route moved since the
			// checks): the write goes the waiting way, which waits for the
			// new leader or route. c is the command as encoded (cmd's
			// arguments belong to the caller, which may reuse them now).
			go func() { done(n.Write(context.Background(), keyspace, c)) }()
			return
		}
		done(res, a, err)
	})
	return true
}

// valuesFit checks the sizes of a write's values (its arguments after the
// key).
func (n *Node) valuesFit(cmd kv.Command) error {
	for _, a := range cmd.Args[1:] {
		if len(a) > n.cfg.MaxValueBytes {
			return fmt.Errorf("%w: %d bytes (limit %d)", ErrValueTooLarge, len(a), n.cfg.MaxValueBytes)
		}
	}
	return nil
}

// writeGroup runs a command through the group's leader.
func (n *Node) writeGroup(ctx context.Context, group uint64, cmd kv.Command) (kv.Result, Answer, error) {
	p, err := n.propose(ctx, group, cmd.Encode())
	if err != nil {
		return kv.Result{}, Answer{}, err
	}
	return n.written(group, p)
}

// written is the outcome of a write whose proposal p was applied.
func (n *Node) written(group uint64, p proposal) (kv.Result, Answer, error) {
	res, _ := p.Value.(kv.Result)
	a := n.strongAnswer(group, p.Index)
	a.Forwarded = p.Node != n.cfg.ID
	return res, a, res.Err
}

// Put sets key to value.
func (n *Node) Put(ctx context.Context, keyspace string, key, value []byte) (Answer, error) {
	_, a, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpSet, NowMS: n.NowMS(), Args: [][]byte{key, value}})
	return a, err
}

// Delete removes a key; it reports whether the key existed.
func (n *Node) Delete(ctx context.Context, keyspace string, key []byte) (bool, Answer, error) {
	r, a, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpDelete, NowMS: n.NowMS(), Args: [][]byte{key}})
	return r.N > 0, a, err
}

// Get reads a key at the given consistency.
func (n *Node) Get(ctx context.Context, keyspace string, key []byte, c Consistency) ([]byte, bool, Answer, error) {
	rec, ok, a, err := n.GetRecord(ctx, keyspace, key, c)
	if err != nil || !ok {
		return nil, false, a, err
	}
	if rec.Type != kv.TypeString {
		return nil, false, a, kv.ErrWrongType
	}
	return rec.Payload, true, a, nil
}

// GetRecord reads a key's stored record at the given consistency (see
// reads.go).
func (n *Node) GetRecord(ctx context.Context, keyspace string, key []byte, c Consistency) (kv.Record, bool, Answer, error) {
	ks, sh, err := n.route(keyspace, key)
	if err != nil {
		return kv.Record{}, false, Answer{}, err
	}
	if c, err = n.resolve(ks, c); err != nil {
		return kv.Record{}, false, Answer{}, err
	}
	var rec kv.Record
	var found bool
	a, err := n.read(ctx, ks, sh, c, func(group uint64, nowMS int64) error {
		var err error
		if rec, found, err = kv.Get(n.db, group, key, nowMS); err != nil {
			return err
		}
		rec, found, err = kv.PlainRecord(rec, found)
		return err
	}, func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error) {
		var a Answer
		var err error
		rec, found, a, err = n.readRemote(ctx, target, keyspace, key, c)
		return a, err
	})
	return rec, found, a, err
}

// --- forwarding to a node that holds a replica ---

// nearestReplica returns the best replica of a shard to ask: one in this
// region if any, otherwise the one with the shortest round trip; replicas
// that do not answer pings (transport.Healthy) come after the others.
func (n *Node) nearestReplica(sh metadata.Shard) uint64 {
	st := n.meta.State()
	best := uint64(0)
	var bestRTT time.Duration
	for _, id := range sh.Replicas {
		rtt, ok := n.tr.RTT(id)
		if !ok {
			rtt = time.Hour
		}
		if st.Nodes[id].Region == n.cfg.Region {
			rtt = 0
		}
		if id != n.cfg.ID && !n.tr.Healthy(id) {
			rtt += 2 * time.Hour // known RTTs stay after a node went away
		}
		if best == 0 || rtt < bestRTT {
			best, bestRTT = id, rtt
		}
	}
	return best
}

// writeRemote sends a write to the leader of the group that takes it
// (target: the shard's group, or this region's for an active keyspace),
// where it is prepared and proposed: one hop once the leader is known.
func (n *Node) writeRemote(ctx context.Context, keyspace string, target metadata.Shard, cmd kv.Command) (kv.Result, Answer, error) {
	req := &nodepb.WriteRequest{Keyspace: keyspace, Group: target.Group, Command: cmd.Encode()}
	var resp *nodepb.WriteResponse
	err := n.toLeader(ctx, target.Group, target.Replicas, func(id uint64) (uint64, *nodepb.Error, error) {
		var err error
		if resp, err = n.client(id).Write(ctx, req); err != nil {
			if errors.Is(err, transport.ErrNotSent) {
				return 0, nil, fmt.Errorf("%w: %w", raftgroup.ErrDropped, err)
			}
			return 0, nil, fmt.Errorf("%w: node %d: %w", ErrOutcomeUnknown, id, err)
		}
		return resp.GetAnswer().GetNode(), resp.GetError(), nil
	})
	if resp == nil {
		return kv.Result{}, Answer{}, err
	}
	a := answerFromPB(resp.GetAnswer())
	a.Forwarded = true
	res := resultFromPB(resp.GetResult())
	if err == nil {
		err = res.Err
	}
	return res, a, err
}

// readRemote asks the nearest replica of target to serve a read (by its
// own rules at level c).
func (n *Node) readRemote(ctx context.Context, target metadata.Shard, keyspace string, key []byte, c Consistency) (kv.Record, bool, Answer, error) {
	id := n.nearestReplica(target)
	if id == 0 {
		return kv.Record{}, false, Answer{}, ErrNoReplica
	}
	resp, err := n.client(id).Read(ctx, &nodepb.ReadRequest{Keyspace: keyspace, Key: key, Level: levelText(c), Token: c.Token})
	if err != nil {
		return kv.Record{}, false, Answer{}, err
	}
	a := answerFromPB(resp.GetAnswer())
	a.Forwarded = true
	rec := kv.Record{Type: kv.Type(resp.GetType()), ExpireAtMS: resp.GetExpireAtMs(), Payload: resp.GetPayload()}
	return rec, resp.GetFound(), a, fromPB(resp.GetError())
}

// writeHere serves a write forwarded by another node: only as the leader
// of the group that takes it, never forwarded again (no loops). Any other
// replica answers raftgroup.ErrNotLeader with the leader it knows (lead),
// for the sender to go there.
func (n *Node) writeHere(ctx context.Context, keyspace string, cmd kv.Command) (kv.Result, Answer, uint64, error) {
	if len(cmd.Args) == 0 {
		return kv.Result{}, Answer{}, 0, ErrEmptyKey
	}
	ks, sh, err := n.route(keyspace, cmd.Args[0])
	if err != nil {
		return kv.Result{}, Answer{}, 0, err
	}
	s := n.strategyOf(ks)
	target := s.WriteGroup(sh)
	if !slices.Contains(target.Replicas, n.cfg.ID) {
		// The sender's metadata is probably newer than this node's (a
		// primary just moved, a region was just added): give this node's
		// a moment to catch up.
		wait, cancel := context.WithTimeout(ctx, time.Second)
		err := n.waitMeta(wait, func(*metadata.State) bool {
			ks, sh, _ = n.route(keyspace, cmd.Args[0])
			if ks == nil {
				return false
			}
			s = n.strategyOf(ks)
			target = s.WriteGroup(sh)
			return slices.Contains(target.Replicas, n.cfg.ID)
		})
		cancel()
		if err != nil {
			return kv.Result{}, Answer{}, 0, fmt.Errorf("%w: %w: node %d holds no replica of group %d", ErrStaleRoute, ErrNoReplica, n.cfg.ID, target.Group)
		}
	}
	if lead := n.host.Leader(target.Group); lead != n.cfg.ID {
		return kv.Result{}, Answer{}, lead, fmt.Errorf("%w: group %d is led by %d", raftgroup.ErrNotLeader, target.Group, lead)
	}
	// Prepared here, with this node's view of the keyspace: the sender's
	// may differ (an older epoch); the group decides, with this node's
	// (the newer, or the sender will retry).
	if cmd, err = s.Prepare(ks, cmd); err != nil {
		return kv.Result{}, Answer{}, n.cfg.ID, err
	}
	res, a, err := n.writeGroup(ctx, target.Group, cmd)
	return res, a, n.cfg.ID, err
}

// retryableRole reports whether a write failed because the keyspace's
// primary is changing: nothing was applied and it may be sent again once
// the metadata has moved on.
func retryableRole(err error) bool {
	return errors.Is(err, kv.ErrStaleEpoch) || errors.Is(err, kv.ErrNotPrimary) || errors.Is(err, kv.ErrFenced) ||
		errors.Is(err, ErrStaleRoute) || errors.Is(err, ErrPrimaryLease)
}
