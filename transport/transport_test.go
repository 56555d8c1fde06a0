package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meridian-db/meridian/netsim"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

type snapReport struct {
	group, to uint64
	ok        bool
}

// recorder is a Handler that records everything and lets tests wait for a
// condition on what it recorded.
type recorder struct {
	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every event
	raft        map[uint64][]Envelope
	unreachable []groupTo
	snapshots   []snapReport
	onCall      func(ctx context.Context, from uint64, method string, req []byte) ([]byte, error)
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}), raft: map[uint64][]Envelope{}}
}

func (r *recorder) event(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) HandleRaft(from uint64, batch []Envelope) {
	r.event(func() { r.raft[from] = append(r.raft[from], batch...) })
}

// call serves the tests' typed service (testCalls): onCall answers.
func (r *recorder) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	r.mu.Lock()
	f := r.onCall
	r.mu.Unlock()
	from, ok := FromContext(ctx)
	if !ok {
		return nil, errors.New("no sender in the context")
	}
	if f == nil {
		return nil, fmt.Errorf("no such method %q", method)
	}
	return f(ctx, from, method, req)
}

// testCalls is a typed service for the tests, declared by hand: one
// method whose request is the method name, a zero byte, then the payload.
type testCaller interface {
	call(ctx context.Context, method string, req []byte) ([]byte, error)
}

var testCalls = grpc.ServiceDesc{
	ServiceName: "meridian.transport.test.Calls",
	HandlerType: (*testCaller)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			run := func(ctx context.Context, req any) (any, error) {
				method, payload, _ := bytes.Cut(req.(*wrapperspb.BytesValue).GetValue(), []byte{0})
				out, err := srv.(testCaller).call(ctx, string(method), payload)
				if err != nil {
					return nil, err
				}
				return &wrapperspb.BytesValue{Value: out}, nil
			}
			if interceptor == nil {
				return run(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/meridian.transport.test.Calls/Call"}, run)
		},
	}},
}

// testCall calls method of the tests' typed service on peer to.
func testCall(tr *Transport, ctx context.Context, to uint64, method string, req []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	in := &wrapperspb.BytesValue{Value: append(append([]byte(method), 0), req...)}
	if err := tr.Conn(to).Invoke(ctx, "/meridian.transport.test.Calls/Call", in, out); err != nil {
		return nil, err
	}
	return out.GetValue(), nil
}

func (r *recorder) ReportUnreachable(group, to uint64) {
	r.event(func() { r.unreachable = append(r.unreachable, groupTo{group, to}) })
}

func (r *recorder) ReportSnapshot(group, to uint64, ok bool) {
	r.event(func() { r.snapshots = append(r.snapshots, snapReport{group, to, ok}) })
}

// waitFor blocks until cond, evaluated under the recorder's lock, holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		r.mu.Lock()
		ok := cond()
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) received(from uint64) []Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.raft[from])
}

func (r *recorder) unreachableCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.unreachable)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

type node struct {
	tr  *Transport
	rec *recorder
	id  uint64
}

func (n node) peer(region string) Peer {
	return Peer{ID: n.id, Region: region, Addr: n.tr.Addr()}
}

// startNode starts a transport for id with a recorder, closed at cleanup.
func startNode(t *testing.T, cfg Config) node {
	t.Helper()
	rec := newRecorder()
	if cfg.ListenAddr == "" && cfg.Listener == nil {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "test"
	}
	cfg.Services = append(cfg.Services, Service{Desc: &testCalls, Impl: rec})
	tr, err := New(cfg, rec)
	if err != nil {
		t.Fatalf("New(node %d): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { tr.Close() })
	return node{tr: tr, rec: rec, id: cfg.NodeID}
}

// cluster starts one transport per region, ids 1..n, all knowing each other.
func cluster(t *testing.T, nw *netsim.Network, regions []string, tweak func(*Config)) []node {
	t.Helper()
	nodes := make([]node, len(regions))
	for i, r := range regions {
		cfg := Config{NodeID: uint64(i + 1), Region: r, Net: nw}
		if tweak != nil {
			tweak(&cfg)
		}
		nodes[i] = startNode(t, cfg)
	}
	for _, a := range nodes {
		for j, b := range nodes {
			if a.id != b.id {
				a.tr.SetPeer(b.peer(regions[j]))
			}
		}
	}
	return nodes
}

func newNet(t *testing.T, cfg netsim.Config) *netsim.Network {
	t.Helper()
	nw, err := netsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	return nw
}

func TestConfigErrors(t *testing.T) {
	rec := newRecorder()
	for name, cfg := range map[string]Config{
		"zero id":        {ListenAddr: "127.0.0.1:0", Cluster: "c"},
		"no cluster":     {NodeID: 1, ListenAddr: "127.0.0.1:0"},
		"no address":     {NodeID: 1, Cluster: "c"},
		"negative queue": {NodeID: 1, Cluster: "c", ListenAddr: "127.0.0.1:0", PeerQueueLen: -1},
		"small messages": {NodeID: 1, Cluster: "c", ListenAddr: "127.0.0.1:0", MaxMessageBytes: 1024},
	} {
		if _, err := New(cfg, rec); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := New(Config{NodeID: 1, Cluster: "c", ListenAddr: "127.0.0.1:0"}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("nil handler: New = %v", err)
	}
}

func TestBatchesKeepOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  func(t *testing.T) *netsim.Network
	}{
		{"identity", func(*testing.T) *netsim.Network { return nil }},
		{"netsim", func(t *testing.T) *netsim.Network {
			return newNet(t, netsim.Config{IntraRegionRTT: 4 * time.Millisecond, Jitter: 3 * time.Millisecond, Seed: 1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A small MaxBatchBytes forces many frames.
			nodes := cluster(t, tc.net(t), []string{"r", "r", "r"}, func(c *Config) {
				c.MaxBatchBytes = 16 << 10
				c.PingInterval = -1
			})
			const perGroup = 300
			groups := []uint64{1, 2, 3, 4, 5}
			sent := map[[2]uint64][]Envelope{}
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, from := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perGroup {
						var envs []Envelope
						for _, to := range nodes {
							if to.id == from.id {
								continue
							}
							for _, g := range groups {
								envs = append(envs, Envelope{Group: g, Msg: appMsg(from.id, to.id, uint64(i), i%4, 64*(int(g)))})
							}
						}
						mu.Lock()
						for _, e := range envs {
							k := [2]uint64{from.id, e.Msg.GetTo()}
							sent[k] = append(sent[k], e)
						}
						mu.Unlock()
						from.tr.Send(envs)
					}
				}()
			}
			wg.Wait()
			want := perGroup * len(groups)
			for _, to := range nodes {
				to.rec.waitFor(t, fmt.Sprintf("messages at node %d", to.id), func() bool {
					for _, from := range nodes {
						if from.id != to.id && len(to.rec.raft[from.id]) < want {
							return false
						}
					}
					return true
				})
				for _, from := range nodes {
					if from.id == to.id {
						continue
					}
					got := to.rec.received(from.id)
					exp := sent[[2]uint64{from.id, to.id}]
					if len(got) != len(exp) {
						t.Fatalf("%d->%d: got %d messages, want %d", from.id, to.id, len(got), len(exp))
					}
					for i := range exp {
						if got[i].Group != exp[i].Group || !proto.Equal(got[i].Msg, exp[i].Msg) {
							t.Fatalf("%d->%d: message %d differs", from.id, to.id, i)
						}
					}
				}
			}
			for _, n := range nodes {
				if c := n.rec.unreachableCount(); c != 0 {
					t.Errorf("node %d saw %d unreachable reports", n.id, c)
				}
			}
		})
	}
}

func TestCall(t *testing.T) {
	nodes := cluster(t, nil, []string{"r", "r"}, func(c *Config) { c.PingInterval = -1 })
	a, b := nodes[0], nodes[1]
	b.rec.onCall = func(ctx context.Context, from uint64, method string, req []byte) ([]byte, error) {
		switch method {
		case "echo":
			return append([]byte(fmt.Sprintf("%d:", from)), req...), nil
		case "fail":
			return nil, errors.New("bad request")
		}
		return nil, fmt.Errorf("unknown method %s", method)
	}
	ctx := context.Background()
	resp, err := testCall(a.tr, ctx, b.id, "echo", []byte("hello"))
	if err != nil || string(resp) != "1:hello" {
		t.Fatalf("Call echo = %q, %v", resp, err)
	}
	big := make([]byte, 6<<20) // above gRPC's default 4 MiB message limit
	if resp, err := testCall(a.tr, ctx, b.id, "echo", big); err != nil || len(resp) != len(big)+2 {
		t.Fatalf("large Call = %d bytes, %v", len(resp), err)
	}

	_, err = testCall(a.tr, ctx, b.id, "fail", nil)
	if st, ok := status.FromError(err); !ok || st.Message() != "bad request" || errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call fail = %v, want the handler's error", err)
	}
	if _, err := testCall(a.tr, ctx, 99, "echo", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call to unknown peer = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := testCall(a.tr, cctx, b.id, "echo", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with cancelled context = %v", err)
	}
	// A peer registered under the wrong id refuses the call.
	a.tr.SetPeer(Peer{ID: 7, Addr: b.tr.Addr()})
	if _, err := testCall(a.tr, ctx, 7, "echo", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call to a misaddressed peer = %v", err)
	}
	if got := a.tr.Peers(); len(got) != 2 || got[0].ID != 2 || got[1].ID != 7 {
		t.Fatalf("Peers() = %v", got)
	}
	a.tr.RemovePeer(7)
	if got := a.tr.Peers(); len(got) != 1 {
		t.Fatalf("Peers() after RemovePeer = %v", got)
	}

	a.tr.Close()
	if _, err := testCall(a.tr, ctx, b.id, "echo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close = %v", err)
	}
	a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, 1, 0, 0)}}) // no panic, no report
}

// TestRTTWorldMatrix checks that pings, calls and messages cost the emulated
// delays, both with one Network shared by all nodes (one process) and with a
// Network per node (one per process), where each only delays what it sends.
func TestRTTWorldMatrix(t *testing.T) {
	t.Run("shared network", func(t *testing.T) {
		nw := newNet(t, netsim.Config{Matrix: netsim.WorldMatrix()})
		testWorldRTT(t, func(*Config) {}, nw)
	})
	t.Run("network per node", func(t *testing.T) {
		testWorldRTT(t, func(c *Config) {
			c.Net = newNet(t, netsim.Config{Matrix: netsim.WorldMatrix()})
		}, nil)
	})
}

func testWorldRTT(t *testing.T, tweak func(*Config), nw *netsim.Network) {
	nodes := cluster(t, nw, []string{"us-east", "eu-west"}, func(c *Config) {
		c.PingInterval = 50 * time.Millisecond
		tweak(c)
	})
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.tr.WaitRTT(ctx, []uint64{b.id}); err != nil {
		t.Fatal(err)
	}
	if err := b.tr.WaitRTT(ctx, []uint64{a.id}); err != nil {
		t.Fatal(err)
	}
	const want, slack = 81 * time.Millisecond, 40 * time.Millisecond
	for _, n := range nodes {
		for id, rtt := range n.tr.RTTs() {
			t.Logf("measured RTT %d->%d: %v", n.id, id, rtt)
			if rtt < want || rtt > want+slack {
				t.Errorf("RTT %d->%d = %v, want [%v, %v]", n.id, id, rtt, want, want+slack)
			}
		}
	}
	if _, ok := a.tr.RTT(42); ok {
		t.Error("RTT of an unknown peer")
	}

	b.rec.onCall = func(context.Context, uint64, string, []byte) ([]byte, error) { return nil, nil }
	start := time.Now()
	if _, err := testCall(a.tr, ctx, b.id, "noop", nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < want || d > want+slack {
		t.Errorf("Call took %v, want about %v", d, want)
	}

	// A raft message takes one one-way delay.
	start = time.Now()
	a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, 1, 0, 0)}})
	b.rec.waitFor(t, "message", func() bool { return len(b.rec.raft[a.id]) == 1 })
	if d := time.Since(start); d < want/2 || d > want/2+slack {
		t.Errorf("message took %v, want about %v", d, want/2)
	}
}

func TestPartition(t *testing.T) {
	nw := newNet(t, netsim.Config{IntraRegionRTT: 2 * time.Millisecond})
	nodes := cluster(t, nw, []string{"r", "r", "r"}, func(c *Config) { c.PingInterval = -1 })
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		n.rec.onCall = func(context.Context, uint64, string, []byte) ([]byte, error) { return []byte("ok"), nil }
	}
	ctx := context.Background()

	nw.Split([]uint64{a.id}, []uint64{b.id, c.id})
	a.tr.Send([]Envelope{
		{Group: 4, Msg: appMsg(a.id, b.id, 1, 1, 10)},
		{Group: 5, Msg: appMsg(a.id, c.id, 1, 1, 10)},
	})
	a.rec.waitFor(t, "unreachable reports", func() bool {
		return slices.Contains(a.rec.unreachable, groupTo{4, b.id}) && slices.Contains(a.rec.unreachable, groupTo{5, c.id})
	})
	if _, err := testCall(a.tr, ctx, b.id, "x", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call across the split = %v, want ErrUnreachable", err)
	}
	// b and c still talk.
	if _, err := testCall(b.tr, ctx, c.id, "x", nil); err != nil {
		t.Fatalf("Call inside the majority = %v", err)
	}
	b.tr.Send([]Envelope{{Group: 4, Msg: appMsg(b.id, c.id, 1, 1, 10)}})
	c.rec.waitFor(t, "message inside the majority", func() bool { return len(c.rec.raft[b.id]) == 1 })

	// Only the response hop is cut: the call still fails.
	nw.Heal()
	nw.BlockLink(b.id, a.id)
	if _, err := testCall(a.tr, ctx, b.id, "x", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call with the response hop cut = %v, want ErrUnreachable", err)
	}

	nw.Heal()
	if resp, err := testCall(a.tr, ctx, b.id, "x", nil); err != nil || string(resp) != "ok" {
		t.Fatalf("Call after Heal = %q, %v", resp, err)
	}
	a.tr.Send([]Envelope{{Group: 4, Msg: appMsg(a.id, b.id, 2, 1, 10)}})
	b.rec.waitFor(t, "message after Heal", func() bool { return len(b.rec.raft[a.id]) == 1 })
	if got := b.rec.received(a.id); got[0].Msg.GetIndex() != 2 {
		t.Fatalf("b received index %d from a, want only the message sent after Heal", got[0].Msg.GetIndex())
	}
}

func snapMsg(from, to uint64, data []byte) *raftpb.Message {
	return &raftpb.Message{
		Type: raftpb.MessageType_MsgSnap.Enum(),
		From: proto.Uint64(from),
		To:   proto.Uint64(to),
		Term: proto.Uint64(5),
		Snapshot: &raftpb.Snapshot{
			Data: data,
			Metadata: &raftpb.SnapshotMetadata{
				Index:     proto.Uint64(1000),
				Term:      proto.Uint64(5),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
			},
		},
	}
}

func TestSnapshot(t *testing.T) {
	nw := newNet(t, netsim.Config{IntraRegionRTT: 10 * time.Millisecond})
	nodes := cluster(t, nw, []string{"r", "r"}, func(c *Config) {
		c.PingInterval = -1
		c.SnapshotChunkBytes = 1 << 20
		c.MaxSnapshotBytes = 8 << 20
	})
	a, b := nodes[0], nodes[1]
	data := make([]byte, 5<<20)
	rand.Read(data)
	snap := snapMsg(a.id, b.id, data)
	a.tr.Send([]Envelope{
		{Group: 7, Msg: snap},
		{Group: 8, Msg: appMsg(a.id, b.id, 1, 1, 10)},
	})
	// The ordinary message is not held up by the snapshot.
	b.rec.waitFor(t, "snapshot and message", func() bool { return len(b.rec.raft[a.id]) == 2 })
	a.rec.waitFor(t, "snapshot report", func() bool { return len(a.rec.snapshots) == 1 })
	if got := a.rec.snapshots[0]; got != (snapReport{7, b.id, true}) {
		t.Fatalf("ReportSnapshot = %+v", got)
	}
	got := b.rec.received(a.id)
	i := slices.IndexFunc(got, func(e Envelope) bool { return e.Msg.GetType() == raftpb.MessageType_MsgSnap })
	if i < 0 || got[i].Group != 7 || !proto.Equal(got[i].Msg, snap) {
		t.Fatal("snapshot did not arrive intact")
	}
	if !bytes.Equal(got[i].Msg.GetSnapshot().GetData(), data) {
		t.Fatal("snapshot data differs")
	}

	// A snapshot above the receiver's limit is refused.
	a.tr.Send([]Envelope{{Group: 9, Msg: snapMsg(a.id, b.id, make([]byte, 9<<20))}})
	a.rec.waitFor(t, "refused snapshot report", func() bool { return len(a.rec.snapshots) == 2 })
	if got := a.rec.snapshots[1]; got != (snapReport{9, b.id, false}) {
		t.Fatalf("ReportSnapshot = %+v", got)
	}

	// A snapshot across a partition fails, and so does one to an unknown
	// peer.
	nw.Isolate(b.id)
	a.tr.Send([]Envelope{{Group: 10, Msg: snapMsg(a.id, b.id, []byte("x"))}, {Group: 11, Msg: snapMsg(a.id, 99, nil)}})
	a.rec.waitFor(t, "failed snapshot reports", func() bool { return len(a.rec.snapshots) == 4 })
	for _, r := range a.rec.snapshots[2:] {
		if r.ok || (r.group != 10 && r.group != 11) {
			t.Fatalf("ReportSnapshot = %+v", r)
		}
	}
}

// reserveAddr returns a loopback address that nothing listens on.
func reserveAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// sendUntil keeps sending messages from a to peer to, one per tick, until
// done holds. It returns how many it sent.
func sendUntil(t *testing.T, a node, to uint64, what string, done func() bool) int {
	t.Helper()
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	deadline := time.After(waitTimeout)
	for i := 1; ; i++ {
		a.tr.Send([]Envelope{{Group: 3, Msg: appMsg(a.id, to, uint64(i), 0, 0)}})
		if done() {
			return i
		}
		select {
		case <-ticker.C:
		case <-deadline:
			t.Fatalf("timed out sending until %s", what)
		}
	}
}

func TestPeerDownThenBack(t *testing.T) {
	a := startNode(t, Config{NodeID: 1, PingInterval: 20 * time.Millisecond})
	addr := reserveAddr(t)
	a.tr.SetPeer(Peer{ID: 2, Addr: addr})

	// Never started: messages are reported, calls fail.
	a.tr.Send([]Envelope{{Group: 3, Msg: appMsg(1, 2, 1, 0, 0)}})
	a.rec.waitFor(t, "unreachable report", func() bool { return slices.Contains(a.rec.unreachable, groupTo{3, 2}) })
	if _, err := testCall(a.tr, context.Background(), 2, "x", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Call to a down peer = %v", err)
	}
	if _, ok := a.tr.RTT(2); ok {
		t.Fatal("RTT sample from a down peer")
	}

	for round := range 2 {
		// The peer comes up on the same address: once the redial backoff
		// has passed, messages get through and pings succeed.
		b := startNode(t, Config{NodeID: 2, ListenAddr: addr})
		b.tr.SetPeer(Peer{ID: 1, Addr: a.tr.Addr()})
		sendUntil(t, a, 2, fmt.Sprintf("round %d: the peer receives", round), func() bool {
			return len(b.rec.received(1)) > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := a.tr.WaitRTT(ctx, []uint64{2})
		cancel()
		if err != nil {
			t.Fatal(err)
		}

		// The peer goes down while connected: the broken stream is noticed
		// and reported.
		reported := a.rec.unreachableCount()
		b.tr.Close()
		sendUntil(t, a, 2, fmt.Sprintf("round %d: the loss is reported", round), func() bool {
			return a.rec.unreachableCount() > reported
		})
	}
}

// blackhole accepts TCP connections and never answers, like a hung peer.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

func TestSendNeverBlocks(t *testing.T) {
	const queueLen, total = 64, 20000
	a := startNode(t, Config{NodeID: 1, PeerQueueLen: queueLen, DialTimeout: time.Minute, PingInterval: -1})
	a.tr.SetPeer(Peer{ID: 2, Addr: blackhole(t)})
	msg := appMsg(1, 2, 1, 1, 100)
	start := time.Now()
	for range total {
		a.tr.Send([]Envelope{{Group: 1, Msg: msg}})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("%d Sends took %v", total, d)
	}
	// Everything beyond the queue and the batch in the sender's hands was
	// reported.
	if got := a.rec.unreachableCount(); got < total-queueLen-maxBatchForTest(msg) {
		t.Fatalf("%d unreachable reports for %d messages and a queue of %d", got, total, queueLen)
	}
	// Close does not wait for the hung dial.
	closed := make(chan struct{})
	go func() { a.tr.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close hung on a blackholed peer")
	}
}

// maxBatchForTest bounds how many copies of msg the sender can hold in one
// batch with the default MaxBatchBytes.
func maxBatchForTest(msg *raftpb.Message) int {
	return DefaultMaxBatchBytes/proto.Size(msg) + 1
}

func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		nw, err := netsim.New(netsim.Config{IntraRegionRTT: 2 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer nw.Close()
		var nodes []node
		for id := uint64(1); id <= 3; id++ {
			rec := newRecorder()
			rec.onCall = func(context.Context, uint64, string, []byte) ([]byte, error) { return nil, nil }
			tr, err := New(Config{NodeID: id, Cluster: "test", Region: "r", ListenAddr: "127.0.0.1:0", Net: nw, PingInterval: 10 * time.Millisecond,
				Services: []Service{{Desc: &testCalls, Impl: rec}}}, rec)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, node{tr: tr, rec: rec, id: id})
		}
		for _, a := range nodes {
			for _, b := range nodes {
				if a.id != b.id {
					a.tr.SetPeer(b.peer("r"))
				}
			}
			a.tr.SetPeer(Peer{ID: 9, Addr: reserveAddr(t)}) // a dead peer
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		for _, a := range nodes {
			others := slices.DeleteFunc([]uint64{1, 2, 3}, func(id uint64) bool { return id == a.id })
			if err := a.tr.WaitRTT(ctx, others); err != nil {
				t.Fatal(err)
			}
			for _, b := range nodes {
				if a.id == b.id {
					continue
				}
				a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(a.id, b.id, 1, 1, 10)}, {Group: 2, Msg: snapMsg(a.id, b.id, []byte("s"))}})
				if _, err := testCall(a.tr, ctx, b.id, "x", nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, b := range nodes {
			b.rec.waitFor(t, "messages", func() bool {
				n := 0
				for _, batch := range b.rec.raft {
					n += len(batch)
				}
				return n == 4
			})
		}
		for _, n := range nodes {
			n.tr.Close()
			n.tr.Close() // idempotent
		}
	}()
	deadline := time.Now().Add(waitTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRemovePeer(t *testing.T) {
	nodes := cluster(t, nil, []string{"r", "r"}, func(c *Config) { c.PingInterval = -1 })
	a, b := nodes[0], nodes[1]
	a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, 1, 0, 0)}})
	b.rec.waitFor(t, "message", func() bool { return len(b.rec.raft[1]) == 1 })
	a.tr.RemovePeer(2)
	a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, 2, 0, 0)}})
	a.rec.waitFor(t, "unreachable report", func() bool { return len(a.rec.unreachable) == 1 })
	// Re-adding the peer works.
	a.tr.SetPeer(b.peer("r"))
	a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, 3, 0, 0)}})
	b.rec.waitFor(t, "message after re-adding", func() bool { return len(b.rec.raft[1]) == 2 })
	if !strings.Contains(ErrUnreachable.Error(), "transport:") {
		t.Fatal("sentinel error without package prefix")
	}
}

func TestDuplicationAndLoss(t *testing.T) {
	nw := newNet(t, netsim.Config{IntraRegionRTT: 2 * time.Millisecond, DuplicateRate: 1, Seed: 5})
	nodes := cluster(t, nw, []string{"r", "r"}, func(c *Config) { c.PingInterval = -1 })
	a, b := nodes[0], nodes[1]

	// Every frame arrives twice; more frames than the in-flight bound go
	// through, so the duplicate deliveries do not upset the sender.
	const count = 3 * maxFramesInFlight
	for i := range count {
		a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, uint64(i), 0, 0)}})
	}
	b.rec.waitFor(t, "duplicated messages", func() bool { return len(b.rec.raft[1]) >= 2*count })
	// Whole frames are duplicated: each message arrives twice and the first
	// copies are in send order.
	seen := map[uint64]int{}
	var firsts []uint64
	for _, e := range b.rec.received(1) {
		idx := e.Msg.GetIndex()
		if seen[idx] == 0 {
			firsts = append(firsts, idx)
		}
		seen[idx]++
	}
	if len(firsts) != count || !slices.IsSorted(firsts) {
		t.Fatalf("first copies out of order or missing: %v", firsts)
	}
	for idx, n := range seen {
		if n != 2 {
			t.Fatalf("message %d arrived %d times", idx, n)
		}
	}

	// A snapshot survives duplicated chunks.
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	a.tr.Send([]Envelope{{Group: 2, Msg: snapMsg(1, 2, data)}})
	a.rec.waitFor(t, "snapshot report", func() bool { return len(a.rec.snapshots) == 1 })
	if got := a.rec.snapshots[0]; !got.ok {
		t.Fatalf("ReportSnapshot = %+v", got)
	}

	// Lost frames are just gone: later ones still arrive. Send one message
	// per tick until 50 got through; with half the frames lost some must be
	// missing.
	nw.SetDuplicateRate(0)
	nw.SetLossRate(0.5)
	before := len(b.rec.received(1))
	ticker := time.NewTicker(2 * time.Millisecond)
	defer ticker.Stop()
	timeout := time.After(waitTimeout)
	sent := 0
	for len(b.rec.received(1))-before < 50 {
		a.tr.Send([]Envelope{{Group: 1, Msg: appMsg(1, 2, uint64(1000+sent), 0, 0)}})
		sent++
		select {
		case <-ticker.C:
		case <-timeout:
			t.Fatalf("only %d of %d messages arrived", len(b.rec.received(1))-before, sent)
		}
	}
	got := b.rec.received(1)[before:]
	if !slices.IsSortedFunc(got, func(x, y Envelope) int { return int(x.Msg.GetIndex()) - int(y.Msg.GetIndex()) }) {
		t.Fatal("messages out of order after loss")
	}
	if lastIdx := int(got[len(got)-1].Msg.GetIndex()) - 1000; lastIdx+1 == len(got) {
		t.Fatalf("no message lost among %d with 50%% loss", len(got))
	}
}

// TestReachableAfterHeal: Reachable fires when a peer answers pings
// again after a partition, not on every ping.
func TestReachableAfterHeal(t *testing.T) {
	nw := newNet(t, netsim.Config{IntraRegionRTT: 2 * time.Millisecond})
	nodes := cluster(t, nw, []string{"r", "r"}, func(c *Config) {
		c.PingInterval = 10 * time.Millisecond
		c.DialTimeout = 40 * time.Millisecond
	})
	a, b := nodes[0], nodes[1]
	first := a.tr.Reachable()
	select {
	case <-first: // b answered for the first time
	case <-time.After(10 * time.Second):
		t.Fatal("no notice when the peer first answered")
	}
	steady := a.tr.Reachable()
	// While the peer stays healthy, pings go on and nothing fires.
	rtt := func() chan struct{} {
		a.tr.rttMu.Lock()
		defer a.tr.rttMu.Unlock()
		return a.tr.rttChanged
	}
	for range 5 {
		<-rtt()
	}
	select {
	case <-steady:
		t.Fatal("Reachable fired while the peer stayed healthy")
	default:
	}
	nw.Split([]uint64{a.id}, []uint64{b.id})
	for deadline := time.Now().Add(10 * time.Second); a.tr.Healthy(b.id); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the peer stayed healthy across the split")
		}
	}
	nw.Heal()
	select {
	case <-steady:
	case <-time.After(10 * time.Second):
		t.Fatal("no notice after the partition healed")
	}
	if !a.tr.Healthy(b.id) {
		t.Fatal("Reachable fired before the peer was healthy")
	}
}
