package node_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
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
