package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/stream"
	"github.com/meridian-db/meridian/transport"
)

func TestClusterID(t *testing.T) {
	peers := []transport.Peer{{ID: 1, Region: "a", Addr: "h1:1"}, {ID: 2, Region: "b", Addr: "h2:1"}, {ID: 3, Region: "c", Addr: "h3:1"}}
	id := node.ClusterID("prod", peers)
	if !strings.HasPrefix(id, "prod-") || len(id) != len("prod-")+16 {
		t.Fatalf("id %q", id)
	}
	reordered := []transport.Peer{peers[2], peers[0], peers[1]}
	if got := node.ClusterID("prod", reordered); got != id {
		t.Fatalf("the order of the peers changed the id: %s, %s", got, id)
	}
	for name, other := range map[string]string{
		"name":    node.ClusterID("prod2", peers),
		"address": node.ClusterID("prod", []transport.Peer{peers[0], peers[1], {ID: 3, Region: "c", Addr: "h3:2"}}),
		"region":  node.ClusterID("prod", []transport.Peer{peers[0], peers[1], {ID: 3, Region: "d", Addr: "h3:1"}}),
		"members": node.ClusterID("prod", peers[:2]),
	} {
		if other == id {
			t.Errorf("another %s gives the same id %s", name, id)
		}
	}
}

// startSolo starts a one-node cluster on fs.
func startSolo(fs vfs.FS, cfg node.Config) (*node.Node, error) {
	cfg.ID, cfg.Region, cfg.DataDir, cfg.FS, cfg.ListenAddr = 1, "r", "/data", fs, "127.0.0.1:0"
	if cfg.Peers == nil {
		cfg.Peers = []transport.Peer{{ID: 1, Region: "r", Addr: "127.0.0.1:1"}}
	}
	return node.Start(cfg)
}

// TestClusterIdentityRecorded: a node records the cluster's id at its
// first start and keeps it; it refuses data of another cluster and a
// malformed or missing identity.
func TestClusterIdentityRecorded(t *testing.T) {
	fs := vfs.NewMem()
	n, err := startSolo(fs, node.Config{Cluster: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	id := n.Cluster()
	if want := node.ClusterID("alpha", []transport.Peer{{ID: 1, Region: "r", Addr: "127.0.0.1:1"}}); id != want || n.ClusterName() != "alpha" {
		t.Fatalf("cluster %s (%s), want %s", id, n.ClusterName(), want)
	}
	n.Close()
	// Another peer list on a restart: the recorded id holds.
	n, err = startSolo(fs, node.Config{Cluster: "alpha", Peers: []transport.Peer{{ID: 1, Region: "r", Addr: "127.0.0.1:2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Cluster() != id {
		t.Fatalf("after a restart: %s, want the recorded %s", n.Cluster(), id)
	}
	n.Close()
	// Another name, or admission to another cluster: refused.
	if _, err := startSolo(fs, node.Config{Cluster: "beta"}); !errors.Is(err, node.ErrClusterMismatch) || !strings.Contains(err.Error(), `"alpha"`) {
		t.Fatalf("restart as another cluster: %v, want ErrClusterMismatch naming alpha", err)
	}
	if _, err := startSolo(fs, node.Config{Cluster: "alpha", Join: true, ClusterID: "alpha-0123456789abcdef"}); !errors.Is(err, node.ErrClusterMismatch) {
		t.Fatalf("restart admitted to another cluster id: %v", err)
	}
	// Joining needs the id; bad names and ids are refused.
	if _, err := startSolo(vfs.NewMem(), node.Config{Join: true}); !errors.Is(err, node.ErrBadClusterName) {
		t.Fatalf("join without the cluster id: %v", err)
	}
	for _, cfg := range []node.Config{{Cluster: "a b"}, {Cluster: strings.Repeat("x", 65)}, {Cluster: "alpha", Join: true, ClusterID: "beta-0123456789abcdef"}, {Cluster: "alpha", Join: true, ClusterID: "alpha-xyz"}} {
		if _, err := startSolo(vfs.NewMem(), cfg); !errors.Is(err, node.ErrBadClusterName) {
			t.Fatalf("%+v: %v, want ErrBadClusterName", cfg, err)
		}
	}
	// A joining node takes the id it is given.
	n, err = startSolo(vfs.NewMem(), node.Config{Cluster: "alpha", Join: true, ClusterID: "alpha-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Cluster() != "alpha-0123456789abcdef" {
		t.Fatalf("joined node's cluster %s", n.Cluster())
	}
}

// refusalCounter is a transport.Handler that counts the raft messages
// reported undelivered.
type refusalCounter struct {
	undelivered chan struct{}
}

func (r *refusalCounter) HandleRaft(uint64, []transport.Envelope) {}
func (r *refusalCounter) ReportUnreachable(uint64, uint64) {
	select {
	case r.undelivered <- struct{}{}:
	default:
	}
}
func (r *refusalCounter) ReportSnapshot(uint64, uint64, bool) {}

// TestTwoClustersStayApart runs two clusters with the same name and the
// same node ids: their ids differ, and neither takes the other's calls,
// raft messages, stream batches or session tokens.
func TestTwoClustersStayApart(t *testing.T) {
	a := testcluster.New(t, testcluster.Options{})
	b := testcluster.New(t, testcluster.Options{})
	a.CreateKeyspace(metadata.KeyspaceSpec{Name: "ks", Shards: 1})
	ks := b.CreateKeyspace(metadata.KeyspaceSpec{Name: "ks", Strategy: metadata.Async, Shards: 1})
	a1, b1 := a.Node(1), b.Node(1)
	if a1.Cluster() == b1.Cluster() || !strings.HasPrefix(a1.Cluster(), "meridian-") || a1.ClusterName() != "meridian" {
		t.Fatalf("clusters %s and %s", a1.Cluster(), b1.Cluster())
	}
	for _, n := range b.Running() {
		if n.Cluster() != b1.Cluster() {
			t.Fatalf("node %d of one cluster has id %s, node 1 %s", n.ID(), n.Cluster(), b1.Cluster())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Calls: a node of A given the address of a node of B.
	a1.Transport().SetPeer(transport.Peer{ID: 99, Region: "us-east", Addr: b.Member(1).Addr})
	if _, err := nodepb.NewNodeClient(a1.Transport().Conn(99)).Propose(ctx, &nodepb.ProposeRequest{Group: 1}); !errors.Is(err, transport.ErrWrongCluster) {
		t.Fatalf("call from cluster A to B: %v, want ErrWrongCluster", err)
	}

	// Raft messages: a heartbeat of a far higher term for B's system group,
	// from node 1 of A (B has a node 1 too), never reaches B's node 2.
	term := func() uint64 { st, _ := b.Node(2).Host().Status(metadata.SystemGroup); return st.Term }
	before := term()
	hb := &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(before + 1000)}
	send := func(cluster string) *refusalCounter {
		rec := &refusalCounter{undelivered: make(chan struct{}, 1)}
		tr, err := transport.New(transport.Config{NodeID: 1, Cluster: cluster, Region: "us-east", ListenAddr: "127.0.0.1:0", PingInterval: -1}, rec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		tr.SetPeer(transport.Peer{ID: 2, Region: b.RegionOf(2), Addr: b.Member(2).Addr})
		for refused := 0; refused < 3; {
			tr.Send([]transport.Envelope{{Group: metadata.SystemGroup, Msg: hb}})
			select {
			case <-rec.undelivered:
				refused++
			case <-time.After(5 * time.Millisecond):
				if cluster == b1.Cluster() && term() > before+999 {
					return rec // delivered (the control below)
				}
			case <-ctx.Done():
				t.Fatalf("sending as cluster %s: no answer", cluster)
			}
		}
		return rec
	}
	send(a1.Cluster())
	if got := term(); got > before+999 {
		t.Fatalf("B's node 2 took a heartbeat from cluster A: term %d -> %d", before, got)
	}
	// The control: the same heartbeat carrying B's id does land.
	send(b1.Cluster())
	if err := b.WaitFor(ctx, func() bool { return term() > before+999 }); err != nil {
		t.Fatalf("the control heartbeat from B's own cluster id never landed: term %d", term())
	}

	// Stream batches: B's replica group in eu-west refuses a batch that
	// carries A's id, and takes the same batch with B's.
	sh := ks.Shards[0]
	rg, _ := sh.RegionalIn("eu-west")
	w := kv.Command{Op: kv.OpSet, Epoch: ks.Epoch, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("streamed"), []byte("v")}}.Encode()
	proposeBatch := func(cluster string) kv.Result {
		t.Helper()
		enc, err := (&stream.Batch{Stream: 424242, Epoch: ks.Epoch, Cluster: cluster, Changes: []stream.Change{{Index: 1, Data: w}}}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		cmd := kv.Command{Op: kv.OpStreamApply, Args: [][]byte{enc}}.Encode()
		for {
			if lead := b.Leader(rg.Group); lead != 0 {
				r, err := b.Node(lead).Host().Propose(ctx, rg.Group, cmd)
				// Until the group has its role for the epoch it asks for
				// the batch again later (ErrEpochAhead).
				if res, ok := r.Value.(kv.Result); err == nil && ok && !errors.Is(res.Err, kv.ErrEpochAhead) {
					return res
				}
			}
			if ctx.Err() != nil {
				t.Fatal("no leader took the stream batch")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if res := proposeBatch(a1.Cluster()); !errors.Is(res.Err, stream.ErrWrongCluster) {
		t.Fatalf("stream batch from cluster A: %+v, want ErrWrongCluster", res)
	}
	if res := proposeBatch(b1.Cluster()); res.Err != nil || res.N != 1 {
		t.Fatalf("stream batch of cluster B: %+v", res)
	}

	// Session tokens: A's token for its keyspace "ks" is refused by B.
	ans, err := a1.Put(ctx, "ks", []byte("k"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := a1.Session("ks", "", ans)
	if err != nil {
		t.Fatal(err)
	}
	session := node.Consistency{Req: consistency.Requirement{Level: consistency.Session}, Token: tok}
	if _, _, _, err := b1.Get(ctx, "ks", []byte("k"), session); !errors.Is(err, node.ErrBadToken) || !errors.Is(err, consistency.ErrForeignCluster) {
		t.Fatalf("A's session token at B: %v, want ErrBadToken (another cluster)", err)
	}
	if _, _, _, err := a1.Get(ctx, "ks", []byte("k"), session); err != nil {
		t.Fatalf("A's session token at A: %v", err)
	}
}
