package node

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
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
// nodes' logs: `meridian audit` reads every node's and merges them by
// time, and a node whose disk is lost loses its records (SECURITY.md).

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
