package transport

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestBytesSent checks that every kind of traffic is counted, per peer, as
// the size of its encoded frames, on the side that sends it.
func TestBytesSent(t *testing.T) {
	nodes := cluster(t, nil, []string{"r1", "r2"}, func(c *Config) { c.PingInterval = -1 })
	a, b := nodes[0], nodes[1]
	want := func(n node, peer uint64, bytes uint64) {
		t.Helper()
		if got := n.tr.BytesSent()[peer]; got != bytes {
			t.Fatalf("node %d: %d bytes sent to %d, want %d", n.id, got, peer, bytes)
		}
	}
	// Peers start at 0.
	if got := a.tr.BytesSent(); len(got) != 1 || got[b.id] != 0 {
		t.Fatalf("BytesSent before any traffic = %v", got)
	}

	// A call of a typed service: the request's encoded size on the
	// caller's side, the response's on the server's.
	b.rec.onCall = func(_ context.Context, _ uint64, _ string, req []byte) ([]byte, error) {
		return append(req, req...), nil
	}
	req := []byte("0123456789")
	if _, err := testCall(a.tr, context.Background(), b.id, "double", req); err != nil {
		t.Fatal(err)
	}
	var aToB, bToA uint64
	aToB += uint64(proto.Size(&wrapperspb.BytesValue{Value: append([]byte("double\x00"), req...)}))
	bToA += uint64(proto.Size(&wrapperspb.BytesValue{Value: append(req, req...)}))
	want(a, b.id, aToB)
	want(b, a.id, bToA)

	// A raft message travels alone in its batch frame.
	env := Envelope{Group: 3, Msg: appMsg(a.id, b.id, 1, 2, 100)}
	frame, err := appendBatch(nil, []Envelope{env})
	if err != nil {
		t.Fatal(err)
	}
	a.tr.Send([]Envelope{env})
	b.rec.waitFor(t, "the raft message", func() bool { return len(b.rec.raft[a.id]) == 1 })
	aToB += uint64(len(frame))
	want(a, b.id, aToB)

	// A snapshot: its header and its chunks.
	snap := snapMsg(a.id, b.id, make([]byte, 3000))
	data, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	a.tr.Send([]Envelope{{Group: 4, Msg: snap}})
	a.rec.waitFor(t, "the snapshot report", func() bool { return len(a.rec.snapshots) == 1 && a.rec.snapshots[0].ok })
	aToB += uint64(len(encodeSnapshotHeader(4, len(data))) + len(data))
	want(a, b.id, aToB)
	want(b, a.id, bToA) // b sent nothing more: acknowledgements are empty

	// A node that is not b's peer is answered but not counted, and the
	// counter of a removed peer stays.
	c := startNode(t, Config{NodeID: 3, Region: "r3", PingInterval: -1})
	c.tr.SetPeer(b.peer("r2"))
	if _, err := testCall(c.tr, context.Background(), b.id, "double", req); err != nil {
		t.Fatal(err)
	}
	if got := b.tr.BytesSent(); len(got) != 1 {
		t.Fatalf("b counted bytes to a node it does not know: %v", got)
	}
	a.tr.RemovePeer(b.id)
	want(a, b.id, aToB)
}
