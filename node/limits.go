package node

import "time"

// Limits are the bounds a node puts on client requests; front ends use
// them to refuse oversized input before it reaches the router.
type Limits struct {
	MaxKeyBytes, MaxValueBytes int
	// RequestTimeout bounds a request whose context has no deadline.
	RequestTimeout time.Duration
	// PlacementWait is how long a keyspace change waits, by default, for
	// live nodes where it needs replicas (see Config.PlacementWait).
	PlacementWait time.Duration
}

// Limits returns the node's request limits (its configuration, with the
// defaults applied).
func (n *Node) Limits() Limits {
	return Limits{MaxKeyBytes: n.cfg.MaxKeyBytes, MaxValueBytes: n.cfg.MaxValueBytes, RequestTimeout: n.cfg.RequestTimeout, PlacementWait: n.cfg.PlacementWait}
}
