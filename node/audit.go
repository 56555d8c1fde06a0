package node

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node/nodepb"
)

// The audit log: every admin action taken through this node (who, what,
// when, from where, and the result), allowed or refused, in the node's
// own storage (storage/audit.go), written durably before the answer
// goes back.
//
// Why per node and not in the metadata group: the record is written by
// the node that authorized the action, with the client's address it saw;
// writing it costs one local fsync, not a round of the system group's
// quorum across regions, so neither a burst of refused attempts nor a
// metadata group without quorum (when a failover is most needed) stops
// it. The price is that the cluster's whole log is the union of its
// nodes' logs: ClusterAuditLog asks every node for its records (the
// node service's Audit method) and merges them by time, naming the nodes
// that did not answer; and a node whose disk is lost loses its records
// (SECURITY.md).

// DefaultAuditRetention is how many records a node keeps.
const DefaultAuditRetention = 100_000

// auditPruneEvery is how often (in records) the oldest are removed.
const auditPruneEvery = 1024

// AuditRecord is one admin action.
type AuditRecord struct {
	Seq      uint64 `json:"seq"`
	TimeMS   int64  `json:"time_ms"`
	Node     uint64 `json:"node"`
	Region   string `json:"region"`
	Who      string `json:"who"`           // the principal (auth.Principal.Name)
	Via      string `json:"via,omitempty"` // how it authenticated
	From     string `json:"from"`          // the client's address
	Frontend string `json:"frontend"`      // resp or http
	// Action is the command or route: "ACL SETUSER", "keyspace.switchover".
	Action   string `json:"action"`
	Keyspace string `json:"keyspace,omitempty"`
	// Detail is what the action was asked to do, secrets removed.
	Detail string `json:"detail,omitempty"`
	// Result is "ok", "denied: ..." or "error: ...".
	Result string `json:"result"`
}

type auditLog struct {
	mu  sync.Mutex
	seq uint64
}

// Audit appends a record to this node's audit log, durably. The node
// sets Seq, Node, Region and (if zero) TimeMS.
func (n *Node) Audit(rec AuditRecord) error {
	n.audit.mu.Lock()
	defer n.audit.mu.Unlock()
	rec.Seq = n.audit.seq + 1
	rec.Node, rec.Region = n.cfg.ID, n.cfg.Region
	if rec.TimeMS == 0 {
		rec.TimeMS = time.Now().UnixMilli()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	keep := uint64(0)
	retention := uint64(n.auditRetention())
	if every := min(auditPruneEvery, retention); rec.Seq > retention && rec.Seq%every == 0 {
		keep = rec.Seq - retention + 1
	}
	if err := n.db.AppendAudit(rec.Seq, data, keep); err != nil {
		n.log.Error("cannot write the audit log", "action", rec.Action, "who", rec.Who, "err", err)
		return fmt.Errorf("node: audit log: %w", err)
	}
	n.audit.seq = rec.Seq
	return nil
}

func (n *Node) auditRetention() int {
	if n.cfg.AuditRetention > 0 {
		return n.cfg.AuditRetention
	}
	return DefaultAuditRetention
}

// AuditLog returns this node's audit records at or after sinceMS (Unix
// ms), oldest first, at most limit of them (the newest limit if there are
// more).
func (n *Node) AuditLog(sinceMS int64, limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	var decodeErr error
	err := n.db.ScanAudit(0, func(_ uint64, v []byte) bool {
		var r AuditRecord
		if err := json.Unmarshal(v, &r); err != nil {
			decodeErr = err
			return false
		}
		if r.TimeMS >= sinceMS {
			out = append(out, r)
		}
		return true
	})
	if err == nil && decodeErr != nil {
		err = fmt.Errorf("node: audit record: %w", decodeErr)
	}
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// maxAuditAnswerBytes bounds one node's answer to another's Audit request
// (well under the transport's message limit): the newest records that fit
// are sent, and the answer says how many older ones were left out.
const maxAuditAnswerBytes = 16 << 20

// ClusterAudit is the cluster's audit log as one node gathered it.
type ClusterAudit struct {
	// Records are every node's records, oldest first (by time, then
	// node, then sequence).
	Records []AuditRecord `json:"records"`
	// Missing are the nodes whose records are not in Records, and why
	// (unreachable, timed out).
	Missing []AuditMissing `json:"missing,omitempty"`
	// Truncated are the nodes that sent only their newest records (the
	// limit asked, or the size of one answer), and how many older ones
	// they left out for size.
	Truncated []AuditTruncated `json:"truncated,omitempty"`
}

// AuditMissing is a node whose audit records could not be read.
type AuditMissing struct {
	Node  uint64 `json:"node"`
	Error string `json:"error"`
}

// AuditTruncated is a node whose answer left out older records for size.
type AuditTruncated struct {
	Node    uint64 `json:"node"`
	Dropped int    `json:"dropped"`
}

// ClusterAuditLog gathers every node's audit records at or after sinceMS
// (each node's newest limit at most; limit 0: all) and merges them, the
// newest limit of the merge kept. A node that does not answer within the
// request timeout is named in Missing; the error is this node's own
// log's.
func (n *Node) ClusterAuditLog(ctx context.Context, sinceMS int64, limit int) (ClusterAudit, error) {
	own, err := n.AuditLog(sinceMS, limit)
	if err != nil {
		return ClusterAudit{}, err
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	out := ClusterAudit{Records: own}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ni := range n.clusterNodes(n.meta.State()) {
		if ni.ID == n.cfg.ID {
			continue
		}
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			resp, err := n.client(id).Audit(ctx, &nodepb.AuditRequest{SinceMs: sinceMS, Limit: int32(limit)})
			if err == nil {
				err = fromPB(resp.GetError())
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				out.Missing = append(out.Missing, AuditMissing{Node: id, Error: err.Error()})
				return
			}
			for _, r := range resp.GetRecords() {
				out.Records = append(out.Records, auditRecordFromPB(r))
			}
			if d := resp.GetDropped(); d > 0 {
				out.Truncated = append(out.Truncated, AuditTruncated{Node: id, Dropped: int(d)})
			}
		}(ni.ID)
	}
	wg.Wait()
	slices.SortFunc(out.Records, func(a, b AuditRecord) int {
		return cmp.Or(cmp.Compare(a.TimeMS, b.TimeMS), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Seq, b.Seq))
	})
	if limit > 0 && len(out.Records) > limit {
		out.Records = out.Records[len(out.Records)-limit:]
	}
	slices.SortFunc(out.Missing, func(a, b AuditMissing) int { return cmp.Compare(a.Node, b.Node) })
	slices.SortFunc(out.Truncated, func(a, b AuditTruncated) int { return cmp.Compare(a.Node, b.Node) })
	return out, nil
}

// serveAudit answers another node's Audit request: this node's newest
// records that fit in maxAuditAnswerBytes.
func (n *Node) serveAudit(req *nodepb.AuditRequest) *nodepb.AuditResponse {
	if req.GetLimit() < 0 {
		return &nodepb.AuditResponse{Error: toPB(fmt.Errorf("%w: audit limit %d", kv.ErrBadCommand, req.GetLimit()))}
	}
	recs, err := n.AuditLog(req.GetSinceMs(), int(req.GetLimit()))
	if err != nil {
		return &nodepb.AuditResponse{Error: toPB(err)}
	}
	resp := &nodepb.AuditResponse{}
	size := 0
	for i := len(recs) - 1; i >= 0; i-- {
		pb := auditRecordToPB(recs[i])
		if size += proto.Size(pb) + 8; size > maxAuditAnswerBytes {
			resp.Dropped = uint64(i + 1)
			break
		}
		resp.Records = append(resp.Records, pb)
	}
	slices.Reverse(resp.Records)
	return resp
}

func auditRecordToPB(r AuditRecord) *nodepb.AuditRecord {
	return &nodepb.AuditRecord{Seq: r.Seq, TimeMs: r.TimeMS, Node: r.Node, Region: r.Region, Who: r.Who, Via: r.Via,
		From: r.From, Frontend: r.Frontend, Action: r.Action, Keyspace: r.Keyspace, Detail: r.Detail, Result: r.Result}
}

func auditRecordFromPB(r *nodepb.AuditRecord) AuditRecord {
	return AuditRecord{Seq: r.GetSeq(), TimeMS: r.GetTimeMs(), Node: r.GetNode(), Region: r.GetRegion(), Who: r.GetWho(),
		Via: r.GetVia(), From: r.GetFrom(), Frontend: r.GetFrontend(), Action: r.GetAction(), Keyspace: r.GetKeyspace(),
		Detail: r.GetDetail(), Result: r.GetResult()}
}
