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
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/stream"
	"github.com/meridian-db/meridian/transport"
)

// Request errors. The front ends map these to protocol errors (one place:
// see ErrorCode).
var (
	ErrEmptyKey           = errors.New("node: empty key")
	ErrKeyTooLarge        = errors.New("node: key too large")
	ErrValueTooLarge      = errors.New("node: value too large")
	ErrUnknownConsistency = errors.New("node: unknown consistency level")
	ErrNoReplica          = errors.New("node: no reachable replica for the shard")
	// ErrStaleRoute: a forwarded request reached a node that no longer
	// (or not yet) holds the shard: the sender's metadata and the
	// receiver's differ. Nothing was done; the sender retries.
	ErrStaleRoute      = errors.New("node: request routed by other metadata")
	ErrUnknownKeyspace = metadata.ErrUnknownKeyspace
)

// Consistency is how fresh a read must be: a level (see package
// consistency) and, for session reads, the session token presented. The
// zero value means the keyspace's default level.
type Consistency struct {
	Req consistency.Requirement `json:"r"`
	// Token is an encoded session token (may be empty).
	Token string `json:"t,omitempty"`
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

func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
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
	for _, a := range cmd.Args[1:] {
		if len(a) > n.cfg.MaxValueBytes {
			return kv.Result{}, Answer{}, fmt.Errorf("%w: %d bytes (limit %d)", ErrValueTooLarge, len(a), n.cfg.MaxValueBytes)
		}
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	for {
		changed := n.meta.Changed()
		ks, sh, err := n.route(keyspace, cmd.Args[0])
		if err != nil {
			return kv.Result{}, Answer{}, err
		}
		stampRole(ks, &cmd)
		if isActive(ks) {
			sh = n.activeShard(sh)
		}
		var res kv.Result
		var a Answer
		if !slices.Contains(sh.Replicas, n.cfg.ID) {
			var resp rpcResponse
			resp, err = n.forward(ctx, sh, rpcRequest{Keyspace: keyspace, Write: true, Cmd: cmd.Encode()})
			res, a = resp.result(), resp.Answer
		} else {
			wcmd := cmd
			if isActive(ks) {
				if wcmd, err = n.activeCommand(ks, cmd); err != nil {
					return kv.Result{}, Answer{}, err
				}
			}
			res, a, err = n.writeGroup(ctx, sh.Group, wcmd)
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

// writeGroup runs a command through the group's leader.
func (n *Node) writeGroup(ctx context.Context, group uint64, cmd kv.Command) (kv.Result, Answer, error) {
	p, err := n.propose(ctx, group, cmd.Encode())
	if err != nil {
		return kv.Result{}, Answer{}, err
	}
	res, _ := p.value.(kv.Result)
	a := n.strongAnswer(group, p.index)
	a.Forwarded = p.node != n.cfg.ID
	return res, a, res.Err
}

// Put sets key to value.
func (n *Node) Put(ctx context.Context, keyspace string, key, value []byte) (Answer, error) {
	_, a, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{key, value}})
	return a, err
}

// Delete removes a key; it reports whether the key existed.
func (n *Node) Delete(ctx context.Context, keyspace string, key []byte) (bool, Answer, error) {
	r, a, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpDelete, NowMS: time.Now().UnixMilli(), Args: [][]byte{key}})
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
	a, err := n.read(ctx, ks, sh, c, func(group uint64) error {
		var err error
		if rec, found, err = kv.Get(n.db, group, key, time.Now().UnixMilli()); err != nil {
			return err
		}
		rec, found, err = activeRecord(rec, found)
		return err
	}, func(ctx context.Context, target metadata.Shard, c Consistency) (Answer, error) {
		resp, err := n.forward(ctx, target, rpcRequest{Keyspace: keyspace, Key: key, Consistency: c})
		rec, found = resp.record(), resp.Found
		return resp.Answer, err
	})
	return rec, found, a, err
}

// --- forwarding to a node that holds a replica ---

const methodKV = "kv"

type rpcRequest struct {
	Keyspace    string      `json:"ks"`
	Write       bool        `json:"w,omitempty"`
	Cmd         []byte      `json:"cmd,omitempty"`
	Key         []byte      `json:"key,omitempty"`
	Consistency Consistency `json:"c,omitempty"`
}

type rpcResponse struct {
	Value   []byte `json:"v,omitempty"`
	Found   bool   `json:"f,omitempty"`
	N       int64  `json:"n,omitempty"`
	Type    kv.Type
	Expire  int64  `json:"e,omitempty"`
	Answer  Answer `json:"a"`
	ErrCode string `json:"ec,omitempty"`
	ErrMsg  string `json:"em,omitempty"`
}

func (r rpcResponse) result() kv.Result {
	return kv.Result{Value: r.Value, Found: r.Found, N: r.N}
}

func (r rpcResponse) record() kv.Record {
	return kv.Record{Type: r.Type, ExpireAtMS: r.Expire, Payload: r.Value}
}

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

// callReplica calls a method on the nearest replica of a shard and decodes
// its JSON answer; errors returned by the remote handler keep their code.
func (n *Node) callReplica(ctx context.Context, sh metadata.Shard, method string, body []byte, out any) error {
	best := n.nearestReplica(sh)
	if best == 0 {
		return ErrNoReplica
	}
	return n.callNode(ctx, best, method, body, out)
}

// callNode calls a method on node best and decodes its JSON answer;
// errors returned by the remote handler keep their code.
func (n *Node) callNode(ctx context.Context, best uint64, method string, body []byte, out any) error {
	data, err := n.tr.Call(ctx, best, method, body)
	if err != nil {
		var re *transport.RemoteError
		if errors.As(err, &re) {
			if code, msg, ok := strings.Cut(re.Message, "|"); ok {
				return DecodeError(code, msg)
			}
			return fmt.Errorf("node %d: %s", best, re.Message)
		}
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("node: bad answer from node %d: %w", best, err)
	}
	return nil
}

// forward sends a request to the nearest replica of a shard.
func (n *Node) forward(ctx context.Context, sh metadata.Shard, req rpcRequest) (rpcResponse, error) {
	body, _ := json.Marshal(req)
	var resp rpcResponse
	if err := n.callReplica(ctx, sh, methodKV, body, &resp); err != nil {
		return rpcResponse{}, err
	}
	resp.Answer.Forwarded = true
	if resp.ErrCode != "" {
		return resp, DecodeError(resp.ErrCode, resp.ErrMsg)
	}
	return resp, nil
}

func (n *Node) handleCall(ctx context.Context, from uint64, method string, body []byte) ([]byte, error) {
	switch method {
	case methodKV:
		var req rpcRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, fmt.Errorf("node: bad request: %w", err)
		}
		var resp rpcResponse
		var err error
		if req.Write {
			var cmd kv.Command
			if cmd, err = kv.DecodeCommand(req.Cmd); err == nil {
				var r kv.Result
				r, resp.Answer, err = n.writeLocal(ctx, req.Keyspace, cmd)
				resp.Value, resp.Found, resp.N = r.Value, r.Found, r.N
			}
		} else {
			var rec kv.Record
			rec, resp.Found, resp.Answer, err = n.GetRecord(ctx, req.Keyspace, req.Key, req.Consistency)
			resp.Value, resp.Type, resp.Expire = rec.Payload, rec.Type, rec.ExpireAtMS
		}
		if err != nil {
			resp.ErrCode, resp.ErrMsg = ErrorCode(err), err.Error()
		}
		return json.Marshal(resp)
	case methodRTT:
		return json.Marshal(n.tr.RTTs())
	case methodPropose:
		return n.handlePropose(ctx, body)
	case methodConfChange:
		return n.handleConfChange(ctx, body)
	case methodScan:
		return n.handleScan(ctx, body)
	case methodCursor:
		return n.handleCursor(body)
	case methodStreams:
		return json.Marshal(n.Streams())
	case methodReady:
		return json.Marshal(n.Ready(ctx))
	case methodClosed:
		return n.handleClosed(body)
	case methodQuery: // query.go
		return n.handleQuery(ctx, body)
	case methodPublish: // pubsub.go
		return n.handlePublish(from, body)
	}
	return nil, fmt.Errorf("node: unknown method %q", method)
}

// writeLocal serves a forwarded write; it never forwards again (no loops).
func (n *Node) writeLocal(ctx context.Context, keyspace string, cmd kv.Command) (kv.Result, Answer, error) {
	if len(cmd.Args) == 0 {
		return kv.Result{}, Answer{}, ErrEmptyKey
	}
	ks, sh, err := n.route(keyspace, cmd.Args[0])
	if err != nil {
		return kv.Result{}, Answer{}, err
	}
	if isActive(ks) {
		// Written by this region's group, stamped here.
		sh = n.activeShard(sh)
		if !slices.Contains(sh.Replicas, n.cfg.ID) {
			return kv.Result{}, Answer{}, fmt.Errorf("%w: node %d holds no replica of group %d", ErrNoReplica, n.cfg.ID, sh.Group)
		}
		if cmd, err = n.activeCommand(ks, cmd); err != nil {
			return kv.Result{}, Answer{}, err
		}
		return n.writeGroup(ctx, sh.Group, cmd)
	}
	if !slices.Contains(sh.Replicas, n.cfg.ID) {
		// The sender's metadata is probably newer than this node's (a
		// primary just moved): give this node's a moment to catch up.
		wait, cancel := context.WithTimeout(ctx, time.Second)
		err := n.waitMeta(wait, func(*metadata.State) bool {
			ks, sh, _ = n.route(keyspace, cmd.Args[0])
			return ks != nil && slices.Contains(sh.Replicas, n.cfg.ID)
		})
		cancel()
		if err != nil {
			return kv.Result{}, Answer{}, fmt.Errorf("%w: %w: node %d holds no replica of group %d", ErrStaleRoute, ErrNoReplica, n.cfg.ID, sh.Group)
		}
	}
	if cmd.Epoch != epochOf(ks) {
		// The sender's view of the primary differs from this node's; the
		// group decides, with this node's (the newer, or the sender will
		// retry) epoch.
		stampRole(ks, &cmd)
	}
	return n.writeGroup(ctx, sh.Group, cmd)
}

// errorCodes maps sentinel errors to stable codes, used on the wire between
// nodes and by the front ends.
var errorCodes = []struct {
	code string
	err  error
}{
	{"unknown_keyspace", metadata.ErrUnknownKeyspace},
	{"keyspace_exists", metadata.ErrKeyspaceExists},
	{"invalid_spec", metadata.ErrInvalidSpec},
	{"region_unavailable", ErrRegionUnavailable},
	{"placement", metadata.ErrPlacement},
	{"members_differ", metadata.ErrMembersDiffer},
	{"timings_differ", metadata.ErrTimingsDiffer},
	{"empty_key", ErrEmptyKey},
	{"key_too_large", ErrKeyTooLarge},
	{"value_too_large", ErrValueTooLarge},
	{"unknown_consistency", ErrUnknownConsistency},
	{"bad_token", ErrBadToken},
	{"not_on_active", ErrNotOnActive},
	{"clock_skew", kv.ErrClockSkew},
	{"unknown_resolver", kv.ErrUnknownResolver},
	{"strong_on_active", ErrStrongOnActive},
	{"stale_route", ErrStaleRoute},
	{"no_replica", ErrNoReplica},
	{"no_leader", raftgroup.ErrNoLeader},
	{"not_leader", raftgroup.ErrNotLeader},
	{"dropped", raftgroup.ErrDropped},
	{"outcome_unknown", ErrOutcomeUnknown},
	{"timeout", raftgroup.ErrTimeout},
	{"stopped", raftgroup.ErrStopped},
	{"wrong_type", kv.ErrWrongType},
	{"not_integer", kv.ErrNotInteger},
	{"overflow", kv.ErrOverflow},
	{"too_large", kv.ErrTooLarge},
	{"bad_cursor", ErrBadCursor},
	{"bad_command", kv.ErrBadCommand},
	{"unreachable", transport.ErrUnreachable},
	{"stale_epoch", kv.ErrStaleEpoch},
	{"not_primary", kv.ErrNotPrimary},
	{"fenced", kv.ErrFenced},
	{"is_primary", kv.ErrIsPrimary},
	{"epoch_ahead", kv.ErrEpochAhead},
	{"stream_stale_epoch", stream.ErrStaleEpoch},
	{"wrong_cluster", stream.ErrWrongCluster},
	{"stream_gap", stream.ErrGap},
	{"bad_batch", stream.ErrBadBatch},
	{"primary_healthy", ErrPrimaryHealthy},
	{"not_drained", ErrNotDrained},
	{"rpo_budget", ErrRPOBudget},
	{"primary_lease", ErrPrimaryLease},
	{"not_async", metadata.ErrNotAsync},
	{"meta_stale_epoch", metadata.ErrStaleEpoch},
	{"bad_meta_command", metadata.ErrBadCommand},
}

// ErrorCode returns the stable code of an error ("internal" if unknown).
func ErrorCode(err error) string {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "timeout"
	}
	return "internal"
}

// remoteError encodes an error returned by a node-to-node handler as
// "code|message", so that callReplica can rebuild it with its identity.
func remoteError(err error) error {
	return errors.New(ErrorCode(err) + "|" + err.Error())
}

// DecodeError rebuilds an error from its code and message, so that
// errors.Is works on errors that crossed the network.
func DecodeError(code, msg string) error {
	for _, e := range errorCodes {
		if e.code == code {
			if msg == e.err.Error() {
				return e.err
			}
			return fmt.Errorf("%w (remote: %s)", e.err, msg)
		}
	}
	return errors.New(msg)
}
