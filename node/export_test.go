package node

// BlockWakes returns how many times a blocking pop waiting on this node
// was told of a push by its replica's state machine.
func (n *Node) BlockWakes() uint64 {
	n.blocked.mu.Lock()
	defer n.blocked.mu.Unlock()
	return n.blocked.woken
}
