package transport

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meridian-db/meridian/pki"
)

const secureCluster = "sec-0123456789abcdef"

// newTestCA makes a CA for cluster "sec" and returns its directory.
func newTestCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if _, err := pki.CreateCA(pki.CAOptions{Dir: dir, Cluster: "sec"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeCerts issues node id's certificate from the CA in caDir into a
// directory of its own and opens it.
func nodeCerts(t *testing.T, caDir string, id uint64) *pki.Store {
	t.Helper()
	if _, err := pki.CreateNode(pki.CertOptions{Dir: caDir, Hosts: []string{"127.0.0.1"}, Overwrite: true}, id); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "node")
	if err := pki.EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.CACertFile, pki.NodeCertFile, pki.NodeKeyFile} {
		data, err := os.ReadFile(filepath.Join(caDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := pki.OpenNode(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func forNode(t *testing.T, s *pki.Store, id uint64) Security {
	t.Helper()
	sec, err := s.ForNode(secureCluster, id)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// TestMutualTLS: nodes with certificates of the cluster's CA exchange raft
// messages, pings and typed calls, and the sender a handler sees is the
// node the certificate names. A node without a certificate, one with a
// certificate of another CA, and one whose certificate names another node
// than the id it claims get nothing through: no message reaches the
// handler, typed calls fail, and the impostor's calls say why
// (ErrIdentity). A dialler given the wrong address for a node refuses the
// node it finds there.
func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	logs := &logCapture{}
	hs := &healthServer{}
	b := startNode(t, Config{NodeID: 2, Cluster: secureCluster, Region: "r", Logger: slog.New(logs),
		Security: forNode(t, nodeCerts(t, ca, 2), 2), Services: []Service{{Desc: &healthpb.Health_ServiceDesc, Impl: hs}}})
	a := startNode(t, Config{NodeID: 1, Cluster: secureCluster, Region: "r", Security: forNode(t, nodeCerts(t, ca, 1), 1)})
	plain := startNode(t, Config{NodeID: 3, Cluster: secureCluster, Region: "r"})
	foreign := startNode(t, Config{NodeID: 4, Cluster: secureCluster, Region: "r", Security: forNode(t, nodeCerts(t, newTestCA(t), 4), 4)})
	// Node 5's genuine certificate, used by a process claiming to be node 1.
	impostor := startNode(t, Config{NodeID: 1, Cluster: secureCluster, Region: "r", Security: forNode(t, nodeCerts(t, ca, 5), 5)})
	for _, n := range []node{a, plain, foreign, impostor} {
		n.tr.SetPeer(b.peer("r"))
	}
	b.tr.SetPeer(a.peer("r"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The genuine node: everything goes through.
	a.tr.Send([]Envelope{{Group: 7, Msg: appMsg(a.id, b.id, 1, 1, 10)}})
	b.rec.waitFor(t, "node 1's message", func() bool { return len(b.rec.raft[1]) == 1 })
	resp, err := healthpb.NewHealthClient(a.tr.Conn(b.id)).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("typed call from node 1: %v %v", resp, err)
	}
	if err := a.tr.WaitRTT(ctx, []uint64{b.id}); err != nil {
		t.Fatalf("no round trip measured over TLS: %v", err)
	}

	// The others: refused.
	for _, n := range []node{plain, foreign} {
		_, err := healthpb.NewHealthClient(n.tr.Conn(b.id)).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrNotSent) {
			t.Fatalf("typed call from node %d: %v, want a connection refused", n.id, err)
		}
	}
	_, err = healthpb.NewHealthClient(impostor.tr.Conn(b.id)).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if !errors.Is(err, ErrIdentity) || !errors.Is(err, ErrNotSent) || !strings.Contains(err.Error(), "certificate names node 5") {
		t.Fatalf("typed call from node 5 claiming to be node 1: %v, want ErrIdentity", err)
	}
	for i, n := range []node{plain, foreign, impostor} {
		sendUntil(t, n, b.id, "refused messages reported", func() bool { return n.rec.unreachableCount() >= 3 })
		n.tr.Send([]Envelope{{Group: 8, Msg: snapMsg(n.id, b.id, []byte("state"))}})
		n.rec.waitFor(t, "the refused snapshot reported", func() bool { return len(n.rec.snapshots) == 1 })
		if n.rec.snapshots[0].ok {
			t.Fatalf("sender %d: a snapshot went through", i)
		}
	}
	if got := len(b.rec.received(1)); got != 1 {
		t.Fatalf("node 2 received %d messages as node 1's, want the genuine one only", got)
	}
	for _, id := range []uint64{3, 4, 5} {
		if got := b.rec.received(id); len(got) != 0 {
			t.Fatalf("node 2 received %d messages from node %d", len(got), id)
		}
	}
	hs.mu.Lock()
	if len(hs.from) != 1 || hs.from[0] != 1 {
		t.Fatalf("the typed service served %v, want node 1 once", hs.from)
	}
	hs.mu.Unlock()
	if logs.count(slog.LevelWarn, "certificate does not back its sender") == 0 {
		t.Fatal("no warning about the impostor")
	}

	// Node 1 told that node 2 is where node 1 listens: it finds node 1
	// there, and refuses it.
	wrong := startNode(t, Config{NodeID: 6, Cluster: secureCluster, Region: "r", Security: forNode(t, nodeCerts(t, ca, 6), 6)})
	wrong.tr.SetPeer(Peer{ID: 2, Region: "r", Addr: a.tr.Addr()})
	_, err = healthpb.NewHealthClient(wrong.tr.Conn(2)).Check(ctx, &healthpb.HealthCheckRequest{Service: "ok"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("a call to node 2 answered by node 1: %v", err)
	}
}

// TestCertificatesRotatedUnderTraffic: node 1 and node 2 get certificates
// of a new CA while messages flow; then node 2 drops the old CA from its
// bundle. Node 1's messages keep arriving (its connection is made again
// with its new certificate), and a node still holding a certificate of
// the old CA is refused, on its open stream too.
func TestCertificatesRotatedUnderTraffic(t *testing.T) {
	ca := newTestCA(t)
	s1, s2, s3 := nodeCerts(t, ca, 1), nodeCerts(t, ca, 2), nodeCerts(t, ca, 3)
	b := startNode(t, Config{NodeID: 2, Cluster: secureCluster, Region: "r", Security: forNode(t, s2, 2)})
	a := startNode(t, Config{NodeID: 1, Cluster: secureCluster, Region: "r", Security: forNode(t, s1, 1)})
	c := startNode(t, Config{NodeID: 3, Cluster: secureCluster, Region: "r", Security: forNode(t, s3, 3)})
	a.tr.SetPeer(b.peer("r"))
	c.tr.SetPeer(b.peer("r"))
	b.tr.SetPeer(a.peer("r"))
	b.tr.SetPeer(c.peer("r"))
	deliver := func(n node, what string) {
		t.Helper()
		before := len(b.rec.received(n.id))
		sendUntil(t, n, b.id, what, func() bool { return len(b.rec.received(n.id)) > before })
	}
	deliver(a, "node 1 before the rotation")
	deliver(c, "node 3 before the rotation")

	install := func(s *pki.Store, files ...string) {
		t.Helper()
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(ca, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.Dir(), f), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	// A new CA in every bundle, then new certificates for nodes 1 and 2.
	if _, err := pki.CreateCA(pki.CAOptions{Dir: ca, Rotate: true}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*pki.Store{s1, s2, s3} {
		install(s, pki.CACertFile)
	}
	for id, s := range map[uint64]*pki.Store{1: s1, 2: s2} {
		if _, err := pki.CreateNode(pki.CertOptions{Dir: ca, Hosts: []string{"127.0.0.1"}, Overwrite: true}, id); err != nil {
			t.Fatal(err)
		}
		install(s, pki.NodeKeyFile, pki.NodeCertFile)
	}
	deliver(a, "node 1 with its new certificate")
	deliver(c, "node 3, still with the old certificate, before the old CA goes")
	// The old CA leaves node 2's bundle.
	if _, err := pki.PruneCA(ca, ""); err != nil {
		t.Fatal(err)
	}
	install(s2, pki.CACertFile)
	deliver(a, "node 1 after the old CA went")
	got := len(b.rec.received(3))
	sendUntil(t, c, b.id, "node 3's messages refused", func() bool { return c.rec.unreachableCount() >= 3 })
	if n := len(b.rec.received(3)); n != got {
		t.Fatalf("node 2 took %d messages from node 3's old certificate after its CA was removed", n-got)
	}
}
