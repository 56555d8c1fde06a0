package transport

import "sync/atomic"

// sentCounter returns the byte counter of peer id, creating it if needed.
func (t *Transport) sentCounter(id uint64) *atomic.Uint64 {
	t.sentMu.RLock()
	c := t.sent[id]
	t.sentMu.RUnlock()
	if c != nil {
		return c
	}
	t.sentMu.Lock()
	defer t.sentMu.Unlock()
	if c = t.sent[id]; c == nil {
		c = new(atomic.Uint64)
		t.sent[id] = c
	}
	return c
}

// responseCounter returns the byte counter for a Call response to node
// from, or nil if from never was a peer (SetPeer): a caller must not be
// able to create counters at will.
func (t *Transport) responseCounter(from uint64) *atomic.Uint64 {
	t.sentMu.RLock()
	defer t.sentMu.RUnlock()
	return t.sent[from]
}

// BytesSent returns, per peer id, the bytes this node has sent to the peer
// since the Transport started: the encoded batch frames, snapshot chunks,
// Call requests and Call responses (see the package doc). Every peer ever
// added with SetPeer has an entry, possibly 0; entries are never removed,
// so each value only grows, across RemovePeer and SetPeer too. It is cheap
// enough to call on every metrics scrape.
func (t *Transport) BytesSent() map[uint64]uint64 {
	t.sentMu.RLock()
	defer t.sentMu.RUnlock()
	out := make(map[uint64]uint64, len(t.sent))
	for id, c := range t.sent {
		out[id] = c.Load()
	}
	return out
}
