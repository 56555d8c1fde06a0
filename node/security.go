package node

import (
	"fmt"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/transport"
)

// Security (SECURITY.md): node-to-node traffic is mutual TLS when the
// node has certificates (Config.Certs, package pki); clients
// authenticate and are authorized through the node's Guard (package
// auth) when Config.RequireAuth is set; users live in the metadata
// (users.go); admin actions are recorded in the node's audit log
// (audit.go).

// initSecurity prepares what Start needs before the transport: the
// transport's credentials, the guard and the audit log's position.
func (n *Node) initSecurity() (transport.Security, error) {
	n.guard = auth.NewGuard(auth.GuardConfig{Required: n.cfg.RequireAuth, Users: n.lookupUser})
	last, err := n.db.LastAudit()
	if err != nil {
		return nil, fmt.Errorf("node: reading the audit log: %w", err)
	}
	n.audit.seq = last
	if n.cfg.Certs == nil {
		return nil, nil
	}
	sec, err := n.cfg.Certs.ForNode(n.cluster, n.cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("node %d refused to start: %w", n.cfg.ID, err)
	}
	return sec, nil
}

// Guard authenticates clients and authorizes their requests; the front
// ends ask it before they run anything.
func (n *Node) Guard() *auth.Guard { return n.guard }

// Secure reports whether node-to-node traffic is mutual TLS.
func (n *Node) Secure() bool { return n.cfg.Certs != nil }

// Certs returns the node's certificates (nil without).
func (n *Node) Certs() *pki.Store { return n.cfg.Certs }
