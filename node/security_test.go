package node_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/transport"
)

// TestSecureClusterUsersAndAudit: a cluster whose nodes talk mutual TLS
// replicates writes; a user made on one node (its password hashed there,
// only the hash proposed) logs in on every node, its token too; deleting
// it locks it out everywhere. Audit records are kept in order, survive a
// restart and are pruned to the retention.
func TestSecureClusterUsersAndAudit(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Secure: true, Tune: func(id uint64, cfg *node.Config) {
		cfg.AuditRetention = 10
	}})
	for _, n := range c.Running() {
		if !n.Secure() || !n.Guard().Required() {
			t.Fatalf("node %d: secure %v, authentication required %v", n.ID(), n.Secure(), n.Guard().Required())
		}
	}
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "ks", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Node(1).Put(ctx, "ks", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, ok, _, err := c.Node(3).Get(ctx, "ks", []byte("k"), node.Strong); err != nil || !ok || string(v) != "v" {
		t.Fatalf("read over mutual TLS: %q %v %v", v, ok, err)
	}

	// Users.
	u, err := c.Node(1).SetUser(ctx, "alice", []string{"on", ">pw", "~ks", "+@read"})
	if err != nil || !u.Enabled || !u.Allows(auth.Read, "ks", false) {
		t.Fatalf("SetUser: %+v %v", u, err)
	}
	for _, n := range c.Running() {
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("alice logging in on node %d", n.ID()), func() bool {
			p, err := n.Guard().Login(ctx, "alice", "pw")
			return err == nil && p.User == "alice"
		})
	}
	if _, err := c.Node(2).Guard().Login(ctx, "alice", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	tok, _, err := c.Node(2).IssueToken(ctx, "alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "alice's token accepted on node 3", func() bool {
		_, err := c.Node(3).Guard().LoginToken(tok, time.Now())
		return err == nil
	})
	for _, bad := range []string{auth.RootUser, "bad name"} {
		if _, err := c.Node(1).SetUser(ctx, bad, []string{"on"}); err == nil {
			t.Fatalf("SetUser(%q) accepted", bad)
		}
	}
	if _, err := c.Node(1).SetUser(ctx, "alice", []string{"+get"}); !errors.Is(err, auth.ErrBadRule) {
		t.Fatalf("a bad rule: %v", err)
	}
	if ok, err := c.Node(3).DeleteUser(ctx, "alice"); !ok || err != nil {
		t.Fatalf("DeleteUser: %v %v", ok, err)
	}
	for _, n := range c.Running() {
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("alice locked out of node %d", n.ID()), func() bool {
			_, err1 := n.Guard().Login(ctx, "alice", "pw")
			_, err2 := n.Guard().LoginToken(tok, time.Now())
			return err1 != nil && err2 != nil
		})
	}

	// The audit log.
	n1 := c.Node(1)
	for i := range 25 {
		if err := n1.Audit(node.AuditRecord{Who: "root", From: "127.0.0.1:1", Frontend: "resp", Action: "ACL SETUSER", Detail: fmt.Sprint(i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := n1.AuditLog(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Pruned every 10 records to the last 10: records 11 to 25 remain.
	if len(recs) != 15 || recs[0].Seq != 11 || recs[14].Seq != 25 || recs[14].Detail != "24" || recs[14].Node != 1 || recs[14].TimeMS == 0 {
		t.Fatalf("%d records, first %+v", len(recs), recs[0])
	}
	c.Kill(1)
	c.Restart(1)
	if err := c.Node(1).Audit(node.AuditRecord{Who: "root", Action: "after restart", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	recs, _ = c.Node(1).AuditLog(0, 3)
	if len(recs) != 3 || recs[2].Seq != 26 || recs[2].Action != "after restart" {
		t.Fatalf("after a restart: %+v", recs)
	}
}

// TestNodeCertificateMustNameTheNode: a node given another node's
// certificate does not start.
func TestNodeCertificateMustNameTheNode(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca")
	if _, err := pki.CreateCA(pki.CAOptions{Dir: ca}); err != nil {
		t.Fatal(err)
	}
	if _, err := pki.CreateNode(pki.CertOptions{Dir: ca, OutDir: filepath.Join(ca, "n2"), Hosts: []string{"127.0.0.1"}}, 2); err != nil {
		t.Fatal(err)
	}
	certs, err := pki.OpenNode(filepath.Join(ca, "n2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = node.Start(node.Config{ID: 1, Region: "r", DataDir: filepath.Join(t.TempDir(), "data"), ListenAddr: "127.0.0.1:0", Certs: certs,
		Peers: []transport.Peer{{ID: 1, Region: "r", Addr: "127.0.0.1:1"}}})
	if !errors.Is(err, pki.ErrIdentity) {
		t.Fatalf("start with node 2's certificate: %v, want pki.ErrIdentity", err)
	}
}

// TestUsersAndAuditAcrossNodes: the node service carries what users and
// the audit log need between nodes. A user change the metadata refuses
// comes back from the system group's leader with its own code
// (UNKNOWN_USER); any node gathers every node's audit records, merged by
// time and cut to the newest asked for, and names a node that did not
// answer; and a process holding a genuine certificate of another node
// cannot read the audit records by claiming a member's id.
func TestUsersAndAuditAcrossNodes(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Secure: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lead uint64
	if err := c.WaitFor(ctx, func() bool { lead = c.Leader(metadata.SystemGroup); return lead != 0 }); err != nil {
		t.Fatal(err)
	}
	follower := c.Others(lead)[0]

	// A token for a user that does not exist, proposed straight to the
	// leader (as a follower's IssueToken would after a concurrent
	// DeleteUser): refused by the metadata, with its code.
	tok := auth.Token{ID: "t1", Hash: "h", CreatedMS: 1, ExpiresMS: 2}
	cmd := metadata.Command{Op: "user", User: &metadata.UserCommand{Name: "ghost", AddToken: &tok, NowMS: 1}}.Encode()
	resp, err := nodepb.NewNodeClient(c.Node(follower).Transport().Conn(lead)).Propose(ctx,
		&nodepb.ProposeRequest{Group: metadata.SystemGroup, Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetError() != nil || resp.GetResult().GetErr().GetCode() != nodepb.Code_UNKNOWN_USER {
		t.Fatalf("a token for an unknown user: error %v, result %v; want the result's code UNKNOWN_USER", resp.GetError(), resp.GetResult())
	}
	if node.ErrorCode(auth.ErrBadRule) != "bad_rule" || node.ErrorCode(auth.ErrRootUser) != "root_user" {
		t.Fatalf("user errors' codes: %q %q", node.ErrorCode(auth.ErrBadRule), node.ErrorCode(auth.ErrRootUser))
	}

	// The audit log: three records on each node, in turn.
	ids := c.IDs()
	for i := range 3 {
		for _, id := range ids {
			if err := c.Node(id).Audit(node.AuditRecord{Who: "root", Action: "keyspace.create", Detail: fmt.Sprintf("%d/%d", id, i), Result: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var merged []node.AuditRecord
	for _, id := range ids {
		all, err := c.Node(id).ClusterAuditLog(ctx, 0, 0)
		if err != nil || len(all.Missing) != 0 || len(all.Truncated) != 0 {
			t.Fatalf("node %d: %v, missing %v, truncated %v", id, err, all.Missing, all.Truncated)
		}
		if len(all.Records) != 3*len(ids) {
			t.Fatalf("node %d gathered %d records, want %d", id, len(all.Records), 3*len(ids))
		}
		perNode := map[uint64]int{}
		for i, r := range all.Records {
			if i > 0 && r.TimeMS < all.Records[i-1].TimeMS {
				t.Fatalf("node %d: records out of time order at %d: %+v", id, i, all.Records)
			}
			if want := fmt.Sprintf("%d/%d", r.Node, perNode[r.Node]); r.Detail != want {
				t.Fatalf("node %d: record %d of node %d is %q, want %q", id, i, r.Node, r.Detail, want)
			}
			perNode[r.Node]++
		}
		if merged == nil {
			merged = all.Records
		} else if !slices.Equal(merged, all.Records) {
			t.Fatalf("node %d merged\n%+v\nnode %d merged\n%+v", ids[0], merged, id, all.Records)
		}
	}
	newest, err := c.Node(ids[1]).ClusterAuditLog(ctx, 0, 4)
	if err != nil || !slices.Equal(newest.Records, merged[len(merged)-4:]) {
		t.Fatalf("the newest 4: %+v %v, want %+v", newest.Records, err, merged[len(merged)-4:])
	}
	if last := newest.Records[3]; last.Detail != fmt.Sprintf("%d/2", ids[len(ids)-1]) {
		t.Fatalf("the newest record is %+v", last)
	}

	// A process with node 9's genuine certificate claiming to be node 2.
	dir := filepath.Join(t.TempDir(), "certs9")
	if _, err := pki.CreateNode(pki.CertOptions{Dir: c.CA, OutDir: dir, Hosts: []string{"127.0.0.1"}}, 9); err != nil {
		t.Fatal(err)
	}
	certs, err := pki.OpenNode(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := certs.ForNode(c.Node(1).Cluster(), 9)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := transport.New(transport.Config{NodeID: 2, Cluster: c.Node(1).Cluster(), Region: "x", ListenAddr: "127.0.0.1:0", Security: sec}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	impostor.SetPeer(transport.Peer{ID: 1, Region: c.RegionOf(1), Addr: c.Member(1).Addr})
	_, err = nodepb.NewNodeClient(impostor.Conn(1)).Audit(ctx, &nodepb.AuditRequest{})
	if !errors.Is(err, transport.ErrIdentity) {
		t.Fatalf("the audit records asked for by node 9 claiming to be node 2: %v, want transport.ErrIdentity", err)
	}

	// A node down: named, the others' records still there.
	down := ids[len(ids)-1]
	c.Kill(down)
	part, err := c.Node(ids[0]).ClusterAuditLog(ctx, 0, 0)
	if err != nil || len(part.Missing) != 1 || part.Missing[0].Node != down || part.Missing[0].Error == "" {
		t.Fatalf("with node %d down: %v, missing %+v", down, err, part.Missing)
	}
	if len(part.Records) != 3*(len(ids)-1) {
		t.Fatalf("with node %d down: %d records, want %d", down, len(part.Records), 3*(len(ids)-1))
	}
}

// nopHandler receives nothing worth keeping.
type nopHandler struct{}

func (nopHandler) HandleRaft(uint64, []transport.Envelope) {}
func (nopHandler) ReportUnreachable(uint64, uint64)        {}
func (nopHandler) ReportSnapshot(uint64, uint64, bool)     {}
