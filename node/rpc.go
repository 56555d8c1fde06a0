package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/stream"
	"github.com/meridian-db/meridian/transport"
)

// Node-to-node requests: the typed service of node/nodepb/node.proto.
//
// Every request a node makes of another goes through one of its methods,
// on the transport's connections (identity, cluster and wire version
// checked on every call). A request's own failure comes back in the
// answer's Error, with a Code from one table (errorCodes, below) that
// also gives the front ends their stable codes; a gRPC error means the
// call itself failed. A request for a group's leader that reaches another
// node is answered NOT_LEADER with the leader that node knows, and the
// caller's next try goes there (leaders, below): a forwarded write
// reaches the leader in one hop once the leader is known.

// errorCodes maps sentinel errors to the wire's codes; the front ends show
// the codes' lower-cased names (ErrorCode).
var errorCodes = []struct {
	code nodepb.Code
	err  error
}{
	{nodepb.Code_UNKNOWN_KEYSPACE, metadata.ErrUnknownKeyspace},
	{nodepb.Code_KEYSPACE_EXISTS, metadata.ErrKeyspaceExists},
	{nodepb.Code_INVALID_SPEC, metadata.ErrInvalidSpec},
	{nodepb.Code_REGION_UNAVAILABLE, ErrRegionUnavailable},
	{nodepb.Code_PLACEMENT, metadata.ErrPlacement},
	{nodepb.Code_MEMBERS_DIFFER, metadata.ErrMembersDiffer},
	{nodepb.Code_TIMINGS_DIFFER, metadata.ErrTimingsDiffer},
	{nodepb.Code_EMPTY_KEY, ErrEmptyKey},
	{nodepb.Code_KEY_TOO_LARGE, ErrKeyTooLarge},
	{nodepb.Code_VALUE_TOO_LARGE, ErrValueTooLarge},
	{nodepb.Code_UNKNOWN_CONSISTENCY, ErrUnknownConsistency},
	{nodepb.Code_BAD_TOKEN, ErrBadToken},
	{nodepb.Code_NOT_ON_ACTIVE, ErrNotOnActive},
	{nodepb.Code_CLOCK_SKEW, kv.ErrClockSkew},
	{nodepb.Code_UNKNOWN_RESOLVER, kv.ErrUnknownResolver},
	{nodepb.Code_STRONG_ON_ACTIVE, ErrStrongOnActive},
	{nodepb.Code_STALE_ROUTE, ErrStaleRoute},
	{nodepb.Code_NO_REPLICA, ErrNoReplica},
	{nodepb.Code_NO_LEADER, raftgroup.ErrNoLeader},
	{nodepb.Code_NOT_LEADER, raftgroup.ErrNotLeader},
	{nodepb.Code_DROPPED, raftgroup.ErrDropped},
	{nodepb.Code_UNKNOWN_GROUP, raftgroup.ErrUnknownGroup},
	{nodepb.Code_OUTCOME_UNKNOWN, ErrOutcomeUnknown},
	{nodepb.Code_TIMEOUT, raftgroup.ErrTimeout},
	{nodepb.Code_STOPPED, raftgroup.ErrStopped},
	{nodepb.Code_WRONG_TYPE, kv.ErrWrongType},
	{nodepb.Code_NOT_INTEGER, kv.ErrNotInteger},
	{nodepb.Code_OVERFLOW, kv.ErrOverflow},
	{nodepb.Code_TOO_LARGE, kv.ErrTooLarge},
	{nodepb.Code_BAD_CURSOR, ErrBadCursor},
	{nodepb.Code_BAD_COMMAND, kv.ErrBadCommand},
	{nodepb.Code_UNREACHABLE, transport.ErrUnreachable},
	{nodepb.Code_STALE_EPOCH, kv.ErrStaleEpoch},
	{nodepb.Code_NOT_PRIMARY, kv.ErrNotPrimary},
	{nodepb.Code_FENCED, kv.ErrFenced},
	{nodepb.Code_IS_PRIMARY, kv.ErrIsPrimary},
	{nodepb.Code_EPOCH_AHEAD, kv.ErrEpochAhead},
	{nodepb.Code_STREAM_STALE_EPOCH, stream.ErrStaleEpoch},
	{nodepb.Code_WRONG_CLUSTER, stream.ErrWrongCluster},
	{nodepb.Code_STREAM_GAP, stream.ErrGap},
	{nodepb.Code_BAD_BATCH, stream.ErrBadBatch},
	{nodepb.Code_CHANGE_TOO_LARGE, stream.ErrChangeTooLarge},
	{nodepb.Code_PRIMARY_HEALTHY, ErrPrimaryHealthy},
	{nodepb.Code_NOT_DRAINED, ErrNotDrained},
	{nodepb.Code_RPO_BUDGET, ErrRPOBudget},
	{nodepb.Code_PRIMARY_LEASE, ErrPrimaryLease},
	{nodepb.Code_NOT_ASYNC, metadata.ErrNotAsync},
	{nodepb.Code_META_STALE_EPOCH, metadata.ErrStaleEpoch},
	{nodepb.Code_BAD_META_COMMAND, metadata.ErrBadCommand},
	{nodepb.Code_UNKNOWN_USER, auth.ErrUnknownUser},
	{nodepb.Code_BAD_RULE, auth.ErrBadRule},
	{nodepb.Code_ROOT_USER, auth.ErrRootUser},
	{nodepb.Code_CROSS_SHARD, ErrCrossShard},
	{nodepb.Code_BLOCKING_NOT_HERE, ErrBlockingNotHere},
	// Backups and restores (backup.go, restore.go).
	{nodepb.Code_RESTORING, metadata.ErrRestoring},
	{nodepb.Code_COMPACTED, raftgroup.ErrCompacted},
	{nodepb.Code_BACKUP_TARGET, backup.ErrTarget},
	{nodepb.Code_BACKUP_CORRUPT, backup.ErrCorrupt},
	{nodepb.Code_BACKUP_KEY, backup.ErrKey},
	{nodepb.Code_BACKUP_WINDOW, backup.ErrWindow},
	{nodepb.Code_RESTORE_GAP, kv.ErrRestoreGap},
	{nodepb.Code_BACKUP_REFUSED, ErrBackupRefused},
}

// codeOf returns the wire code of an error (INTERNAL if unknown).
func codeOf(err error) nodepb.Code {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nodepb.Code_TIMEOUT
	}
	return nodepb.Code_INTERNAL
}

// ErrorCode returns the stable code of an error, as the front ends show it
// ("internal" if unknown).
func ErrorCode(err error) string { return strings.ToLower(codeOf(err).String()) }

// toPB encodes an error for the wire (nil for none).
func toPB(err error) *nodepb.Error {
	if err == nil {
		return nil
	}
	return &nodepb.Error{Code: codeOf(err), Message: err.Error()}
}

// fromPB rebuilds an error that crossed the wire, so that errors.Is finds
// its sentinel (nil for none).
func fromPB(e *nodepb.Error) error {
	if e == nil || e.GetCode() == nodepb.Code_OK {
		return nil
	}
	for _, c := range errorCodes {
		if c.code == e.GetCode() {
			if e.GetMessage() == c.err.Error() {
				return c.err
			}
			return fmt.Errorf("%w (remote: %s)", c.err, e.GetMessage())
		}
	}
	return errors.New(e.GetMessage())
}

// notLeader answers a request for a group's leader that reached another
// node, naming the leader this node knows (0: none).
func notLeader(group, lead uint64) *nodepb.Error {
	return &nodepb.Error{Code: nodepb.Code_NOT_LEADER, Message: fmt.Sprintf("%v: group %d is led by %d", raftgroup.ErrNotLeader, group, lead), Leader: lead}
}

func answerToPB(a Answer) *nodepb.Answer {
	return &nodepb.Answer{Region: a.Region, Node: a.Node, Consistency: a.Consistency, Index: a.Index,
		Forwarded: a.Forwarded, Group: a.Group, StalenessMs: a.StalenessMS}
}

func answerFromPB(a *nodepb.Answer) Answer {
	return Answer{Region: a.GetRegion(), Node: a.GetNode(), Consistency: a.GetConsistency(), Index: a.GetIndex(),
		Forwarded: a.GetForwarded(), Group: a.GetGroup(), StalenessMS: a.GetStalenessMs()}
}

func resultToPB(r kv.Result) *nodepb.Result {
	return &nodepb.Result{Value: r.Value, Found: r.Found, N: r.N, Err: toPB(r.Err)}
}

func resultFromPB(r *nodepb.Result) kv.Result {
	return kv.Result{Value: r.GetValue(), Found: r.GetFound(), N: r.GetN(), Err: fromPB(r.GetErr())}
}

// levelText is a consistency as the wire carries it ("" for the keyspace's
// default).
func levelText(c Consistency) string {
	if c.Req.Level == 0 {
		return ""
	}
	return c.Req.String()
}

func levelFromText(level, token string) (Consistency, error) {
	c := Consistency{Token: token}
	if level == "" {
		return c, nil
	}
	r, err := consistency.Parse(level)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrUnknownConsistency, err)
	}
	c.Req = r
	return c, nil
}

// client returns the typed client of node id.
func (n *Node) client(id uint64) nodepb.NodeClient { return nodepb.NewNodeClient(n.tr.Conn(id)) }

// --- leaders of groups this node does not host ---

// leaders remembers who leads the groups this node sends requests to:
// what the answers said (the node that served a write or a proposal, the
// leader a NOT_LEADER named). For groups it hosts the raft status knows
// better.
type leaders struct {
	mu sync.Mutex
	m  map[uint64]uint64
}

func (l *leaders) get(group uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[group]
}

func (l *leaders) set(group, id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[uint64]uint64{}
	}
	if id == 0 {
		delete(l.m, group)
	} else {
		l.m[group] = id
	}
}

// leaderOf returns the node to send a request for group's leader to: the
// raft status's leader if this node hosts the group, the remembered one
// otherwise, else the nearest of replicas (which redirects).
func (n *Node) leaderOf(group uint64, replicas []uint64) uint64 {
	if st, ok := n.host.Status(group); ok && st.Lead != 0 {
		return st.Lead
	}
	if id := n.leaders.get(group); id != 0 && n.tr.Healthy(id) {
		return id
	}
	return n.nearestReplica(metadata.Shard{Group: group, Replicas: replicas})
}

// toLeader sends a request meant for group's leader, following NOT_LEADER
// redirects, until an answer that is not a redirect, a call that failed
// (the error), or ctx's end. call returns the answer's error; with
// NOT_LEADER, leaderHint is the leader the asked node knows.
func (n *Node) toLeader(ctx context.Context, group uint64, replicas []uint64, call func(id uint64) (served uint64, answer *nodepb.Error, err error)) error {
	id := n.leaderOf(group, replicas)
	for {
		if id == 0 {
			return fmt.Errorf("%w: group %d", ErrNoReplica, group)
		}
		served, answer, err := call(id)
		if err != nil {
			n.leaders.set(group, 0)
			return err
		}
		if answer.GetCode() != nodepb.Code_NOT_LEADER {
			if served != 0 && answer.GetCode() != nodepb.Code_NO_LEADER {
				n.leaders.set(group, served)
			}
			return fromPB(answer)
		}
		next := answer.GetLeader()
		n.leaders.set(group, next)
		if next == 0 || next == id {
			// The node asked knows no other leader: wait a moment for an
			// election, then ask the nearest replica again.
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("%w: group %d: %w", raftgroup.ErrNoLeader, group, ctx.Err())
			}
			next = n.nearestReplica(metadata.Shard{Group: group, Replicas: replicas})
		}
		id = next
	}
}

// --- the server side ---

// rpcServer serves nodepb.Node for this node.
type rpcServer struct {
	nodepb.UnimplementedNodeServer
	n *Node
}

func (s rpcServer) Write(ctx context.Context, req *nodepb.WriteRequest) (*nodepb.WriteResponse, error) {
	cmd, err := kv.DecodeCommand(req.GetCommand())
	if err != nil {
		return &nodepb.WriteResponse{Error: toPB(err)}, nil
	}
	res, a, lead, err := s.n.writeHere(ctx, req.GetKeyspace(), cmd)
	if lead != s.n.cfg.ID && errors.Is(err, raftgroup.ErrNotLeader) {
		return &nodepb.WriteResponse{Error: notLeader(req.GetGroup(), lead)}, nil
	}
	return &nodepb.WriteResponse{Error: toPB(err), Result: resultToPB(res), Answer: answerToPB(a)}, nil
}

func (s rpcServer) Read(ctx context.Context, req *nodepb.ReadRequest) (*nodepb.ReadResponse, error) {
	c, err := levelFromText(req.GetLevel(), req.GetToken())
	if err != nil {
		return &nodepb.ReadResponse{Error: toPB(err)}, nil
	}
	rec, found, a, err := s.n.GetRecord(ctx, req.GetKeyspace(), req.GetKey(), c)
	return &nodepb.ReadResponse{Error: toPB(err), Found: found, Type: uint32(rec.Type), ExpireAtMs: rec.ExpireAtMS,
		Payload: rec.Payload, Answer: answerToPB(a)}, nil
}

func (s rpcServer) Propose(ctx context.Context, req *nodepb.ProposeRequest) (*nodepb.ProposeResponse, error) {
	return s.n.servePropose(ctx, req), nil
}

func (s rpcServer) ConfChange(ctx context.Context, req *nodepb.ConfChangeRequest) (*nodepb.ConfChangeResponse, error) {
	cc := &pb.ConfChangeV2{}
	if err := proto.Unmarshal(req.GetChange(), cc); err != nil {
		return &nodepb.ConfChangeResponse{Error: toPB(fmt.Errorf("%w: conf change: %w", kv.ErrBadCommand, err))}, nil
	}
	err := s.n.host.ProposeConfChange(ctx, req.GetGroup(), cc)
	if errors.Is(err, raftgroup.ErrNotLeader) {
		return &nodepb.ConfChangeResponse{Error: notLeader(req.GetGroup(), s.n.host.Leader(req.GetGroup()))}, nil
	}
	return &nodepb.ConfChangeResponse{Error: toPB(err)}, nil
}

func (s rpcServer) Scan(ctx context.Context, req *nodepb.ScanRequest) (*nodepb.ScanResponse, error) {
	page, err := s.n.serveScan(ctx, req)
	if err != nil {
		return &nodepb.ScanResponse{Error: toPB(err)}, nil
	}
	return &nodepb.ScanResponse{Keys: page.Keys, Live: page.Live, Examined: int64(page.Examined), Last: page.Last, Full: page.Full, Index: page.Index}, nil
}

func (s rpcServer) Cursor(_ context.Context, req *nodepb.CursorRequest) (*nodepb.CursorResponse, error) {
	c, _, err := s.n.db.Cursor(req.GetGroup(), req.GetSource())
	return &nodepb.CursorResponse{Error: toPB(err), Index: c.Index}, nil
}

func (s rpcServer) Streams(context.Context, *nodepb.StreamsRequest) (*nodepb.StreamsResponse, error) {
	ss := s.n.Streams()
	out := &nodepb.StreamsResponse{Streams: make([]*nodepb.StreamStatus, len(ss))}
	for i, st := range ss {
		out.Streams[i] = streamStatusToPB(st)
	}
	return out, nil
}

// Closed takes a leader's closed timestamps. One further ahead of this
// node's clock than the maximum offset is dropped, and said loudly (at
// most every 30 s): the leader's clock runs ahead, and reads here would
// otherwise serve as fresh what it has not sent yet.
func (s rpcServer) Closed(ctx context.Context, req *nodepb.ClosedRequest) (*nodepb.ClosedResponse, error) {
	limit := s.n.NowMS() + s.n.cfg.MaxClockOffset.Milliseconds()
	for _, c := range req.GetSamples() {
		if c.GetTimeMs() > limit {
			if last := s.n.closedSkewLogged.Load(); time.Since(time.Unix(0, last)) > 30*time.Second &&
				s.n.closedSkewLogged.CompareAndSwap(last, time.Now().UnixNano()) {
				from, _ := transport.FromContext(ctx)
				s.n.log.Warn("dropped closed timestamps from a clock running ahead", "from", from,
					"group", c.GetGroup(), "ahead_ms", c.GetTimeMs()-s.n.NowMS(), "max_offset", s.n.cfg.MaxClockOffset)
			}
			continue
		}
		s.n.closed.add(closedSample{Group: c.GetGroup(), Index: c.GetIndex(), TimeMS: c.GetTimeMs(), Term: c.GetTerm()})
	}
	return &nodepb.ClosedResponse{}, nil
}

func (s rpcServer) RTT(context.Context, *nodepb.RTTRequest) (*nodepb.RTTResponse, error) {
	out := &nodepb.RTTResponse{RttUs: map[uint64]int64{}}
	for id, d := range s.n.tr.RTTs() {
		out.RttUs[id] = d.Microseconds()
	}
	return out, nil
}

func (s rpcServer) Ready(ctx context.Context, _ *nodepb.ReadyRequest) (*nodepb.ReadyResponse, error) {
	r := s.n.Ready(ctx)
	return &nodepb.ReadyResponse{Node: r.Node, Region: r.Region, Ready: r.Ready, Reasons: r.Reasons,
		MetadataApplied: r.MetadataApplied, Replicas: int32(r.Replicas), Hosted: int32(r.Hosted)}, nil
}

func (s rpcServer) Audit(_ context.Context, req *nodepb.AuditRequest) (*nodepb.AuditResponse, error) {
	return s.n.serveAudit(req), nil
}

func streamStatusToPB(s StreamStatus) *nodepb.StreamStatus {
	return &nodepb.StreamStatus{Keyspace: s.Keyspace, Shard: int32(s.Shard), FromRegion: s.FromRegion, ToRegion: s.ToRegion,
		Acked: s.Acked, Applied: s.Applied, LagEntries: s.LagEntries, LagMs: s.LagMS, Epoch: s.Epoch, Strategy: s.Strategy,
		Retries: s.Retries, Resyncs: s.Resyncs, Resyncing: s.Resyncing, ResyncKeys: s.ResyncKeys, ResyncBytes: s.ResyncBytes,
		GapRepairs: s.GapRepairs, Bytes: s.Bytes, BatchBytes: s.BatchBytes, Stalled: s.Stalled, StallReason: s.StallReason,
		StalledForMs: s.StalledForMS, LastError: s.LastError, Err: s.Err}
}

func streamStatusFromPB(s *nodepb.StreamStatus) StreamStatus {
	return StreamStatus{Keyspace: s.GetKeyspace(), Shard: int(s.GetShard()), FromRegion: s.GetFromRegion(), ToRegion: s.GetToRegion(),
		Acked: s.GetAcked(), Applied: s.GetApplied(), LagEntries: s.GetLagEntries(), LagMS: s.GetLagMs(), Epoch: s.GetEpoch(),
		Strategy: s.GetStrategy(), Retries: s.GetRetries(), Resyncs: s.GetResyncs(), Resyncing: s.GetResyncing(),
		ResyncKeys: s.GetResyncKeys(), ResyncBytes: s.GetResyncBytes(), GapRepairs: s.GetGapRepairs(), Bytes: s.GetBytes(),
		BatchBytes: s.GetBatchBytes(), Stalled: s.GetStalled(), StallReason: s.GetStallReason(), StalledForMS: s.GetStalledForMs(),
		LastError: s.GetLastError(), Err: s.GetErr()}
}
