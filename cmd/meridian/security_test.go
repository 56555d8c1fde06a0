package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/config"
	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/resp"
)

// run runs the CLI with args and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := rootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestCertCommands: the cert commands write private files, name the
// node's id, cluster (its id when given the initial members) and hosts,
// refuse to overwrite, and rotate and prune a CA.
func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if out, err := run(t, "cert", "create-ca", "--certs-dir", dir, "--cluster", "prod"); err != nil || !strings.Contains(out, "CA of cluster prod") {
		t.Fatalf("create-ca: %v %s", err, out)
	}
	peers := "1=us-east@10.0.0.1:7400,2=eu-west@10.0.0.2:7400,3=ap-southeast@10.0.0.3:7400"
	ps, _ := parsePeers(peers)
	id := node.ClusterID("prod", ps)
	n1 := filepath.Join(t.TempDir(), "n1")
	out, err := run(t, "cert", "create-node", "--certs-dir", dir, "--out-dir", n1, "--id", "1", "--host", "10.0.0.1,db1.example.com", "--peers", peers)
	if err != nil || !strings.Contains(out, "meridian://"+id+"/node/1") {
		t.Fatalf("create-node: %v %s", err, out)
	}
	if _, err := run(t, "cert", "create-node", "--certs-dir", dir, "--id", "2"); err == nil {
		t.Fatal("a node certificate without --host")
	}
	if out, err := run(t, "cert", "create-client", "alice", "--certs-dir", dir); err != nil || !strings.Contains(out, "meridian://prod/user/alice") {
		t.Fatalf("create-client: %v %s", err, out)
	}
	if _, err := run(t, "cert", "create-client", "alice", "--certs-dir", dir); err == nil {
		t.Fatal("a client certificate overwritten without --overwrite")
	}
	for _, f := range []string{filepath.Join(dir, pki.CAKeyFile), filepath.Join(n1, pki.NodeKeyFile), filepath.Join(dir, pki.ClientKeyFile("alice"))} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	for _, d := range []string{dir, n1} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	out, err = run(t, "cert", "list", "--certs-dir", n1)
	if err != nil || !strings.Contains(out, "node.crt") || !strings.Contains(out, "10.0.0.1,db1.example.com") || !strings.Contains(out, "meridian://prod/ca") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := run(t, "cert", "create-ca", "--certs-dir", dir, "--rotate"); err != nil || !strings.Contains(out, "prune-ca") {
		t.Fatalf("rotate: %v %s", err, out)
	}
	if out, err := run(t, "cert", "prune-ca", "--certs-dir", dir); err != nil || !strings.Contains(out, "1 CA certificate(s) removed") {
		t.Fatalf("prune: %v %s", err, out)
	}
}

// TestStartRefusesPlaintextBeyondLoopback: without certificates, start
// refuses addresses other than loopback unless --insecure; the check
// comes before anything listens.
func TestStartRefusesPlaintextBeyondLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "0.0.0.0:1": false, ":1": false, "10.1.2.3:1": false, "example.com:1": false} {
		if loopback(addr) != want {
			t.Errorf("loopback(%q) = %v", addr, !want)
		}
	}
	f := config.Default()
	f.Node.ID, f.Node.Region, f.Node.DataDir = 1, "r", filepath.Join(t.TempDir(), "d")
	f.Addresses.Listen, f.Addresses.RESP, f.Addresses.HTTP = "127.0.0.1:0", "0.0.0.0:0", "127.0.0.1:0"
	f.Peers = []config.Peer{{ID: 1, Region: "r", Addr: "127.0.0.1:0"}}
	err := runStart(context.Background(), f, nil, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "refusing to listen on 0.0.0.0:0 without TLS") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("start on 0.0.0.0 without certificates: %v", err)
	}
	if _, err := os.Stat(f.Node.DataDir); !os.IsNotExist(err) {
		t.Fatalf("the data directory was made before the refusal: %v", err)
	}
}

// TestCLIPermissions runs every admin command of the CLI against a
// secure cluster as a reader, a keyspace admin, a cluster admin, the
// root user's certificate and no one, with credentials from flags, a
// file, the environment and a token, and checks which are refused.
func TestCLIPermissions(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Secure: true})
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	users := map[string][]string{
		"reader":  {"on", ">reader-pw", "~t", "+@read"},
		"ksadmin": {"on", ">ksadmin-pw", "~t", "+@admin"},
		"admin":   {"on", ">admin-pw", "~*", "+@all"},
	}
	for u, rules := range users {
		if _, err := c.Node(1).SetUser(ctx, u, rules); err != nil {
			t.Fatal(err)
		}
	}
	var addrs []string
	for _, id := range c.IDs() {
		n := c.Node(id)
		testutil.Eventually(t, 10*time.Second, "users everywhere", func() bool { return len(n.Users()) == 3 })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := httpapi.ServeWith(ln, httpapi.New(n, httpapi.Config{Certs: n.Certs()}),
			httpapi.ServeOptions{TLS: n.Certs().ClientsConfig(n.Cluster(), []string{"http/1.1"})})
		t.Cleanup(func() { _ = srv.Close() })
		addrs = append(addrs, ln.Addr().String())
	}
	pwFile := func(pw string) string {
		p := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	creds := map[string][]string{
		"anonymous": {"--certs-dir", c.CA},
		"reader":    {"--certs-dir", c.CA, "--user", "reader", "--password-file", pwFile("reader-pw")},
		"ksadmin":   {"--certs-dir", c.CA, "--user", "ksadmin", "--password", "ksadmin-pw"},
		"admin":     {"--certs-dir", c.CA, "--user", "admin", "--password-file", pwFile("admin-pw")},
		"root":      {"--certs-dir", c.CA, "--user", auth.RootUser},
	}
	// What each may do: "read" (status, keyspace list), "read t" (read
	// keyspace t), "ks" (administer keyspace t), "cluster" (administer
	// the cluster; another user's token).
	may := map[string][]string{
		"anonymous": {},
		"reader":    {"read", "read t"},
		"ksadmin":   {"read", "ks"},
		"admin":     {"read", "read t", "ks", "cluster"},
		"root":      {"read", "read t", "ks", "cluster"},
	}
	commands := []struct {
		class string
		args  []string
	}{
		{"read", []string{"status"}},
		{"read", []string{"keyspace", "list"}},
		{"read t", []string{"keyspace", "describe", "t"}},
		{"cluster", []string{"keyspace", "create", "x!"}},
		{"ks", []string{"keyspace", "alter", "t", "--add-region", "nowhere", "--placement-wait", "0s"}},
		{"ks", []string{"switchover", "t", "--to", "eu-west"}},
		{"ks", []string{"failover", "t", "--to", "eu-west"}},
		{"ks", []string{"lost-writes", "t"}},
		{"ks", []string{"conflicts", "t"}},
		{"cluster", []string{"user", "list"}},
		{"cluster", []string{"user", "get", "reader"}},
		{"cluster", []string{"user", "set", "scratch", "off"}},
		{"cluster", []string{"user", "del", "scratch"}},
		{"cluster", []string{"token", "create", "--for", "admin"}},
		{"cluster", []string{"audit", "--node-only"}},
	}
	checked := 0
	for who, cr := range creds {
		for i, cmd := range commands {
			args := append(append(append([]string{}, cmd.args...), "--addr", addrs[i%3]), cr...)
			out, err := run(t, args...)
			refused := err != nil && (strings.Contains(err.Error(), "forbidden") || strings.Contains(err.Error(), "unauthenticated"))
			want := false
			for _, cl := range may[who] {
				want = want || cl == cmd.class
			}
			if refused == want {
				t.Errorf("%s: meridian %s: refused %v (%v %s), want allowed %v", who, strings.Join(cmd.args, " "), refused, err, out, want)
			}
			checked++
		}
	}
	t.Logf("FIGURES: %d CLI runs checked against their permission", checked)

	// The environment, and a token.
	t.Setenv("MERIDIAN_CERTS_DIR", c.CA)
	t.Setenv("MERIDIAN_USER", "reader")
	t.Setenv("MERIDIAN_PASSWORD", "reader-pw")
	out, err := run(t, "token", "create", "--ttl", "1m", "--addr", addrs[0])
	if err != nil {
		t.Fatalf("token create from the environment: %v %s", err, out)
	}
	token := strings.TrimSpace(strings.Split(out, "\n")[0])
	t.Setenv("MERIDIAN_USER", "")
	t.Setenv("MERIDIAN_PASSWORD", "")
	testutil.Eventually(t, 10*time.Second, "the token accepted on node 2", func() bool {
		_, err := run(t, "keyspace", "describe", "t", "--addr", addrs[1], "--token", token)
		return err == nil
	})
	if _, err := run(t, "switchover", "t", "--to", "eu-west", "--addr", addrs[1], "--token", token); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("a reader's token switching over: %v", err)
	}
	if _, err := run(t, "status", "--addr", addrs[0], "--user", "reader"); err == nil || !strings.Contains(err.Error(), "needs a password") {
		t.Fatalf("a user without a password: %v", err)
	}
}

// TestBenchTLSTarget: bench speaks TLS and authenticates against a secure
// node's RESP port, and is refused without credentials.
func TestBenchTLSTarget(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Secure: true})
	t.Cleanup(c.Close)
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "default", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Node(1).SetUser(ctx, "bench", []string{"on", ">bench-pw", "~default", "+@read", "+@write"}); err != nil {
		t.Fatal(err)
	}
	n := c.Node(1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.Serve(ln, n, resp.Config{DefaultKeyspace: "default", Certs: n.Certs()})
	t.Cleanup(func() { _ = rs.Close() })
	f := benchFlags{workload: "A", records: 20, valueSize: 16, clients: 2, ops: 100, target: "resp://" + rs.Addr(), json: true, seed: 1,
		progressInterval: 50 * time.Millisecond, tlsCA: filepath.Join(c.CA, pki.CACertFile), user: "bench", password: "bench-pw"}
	out, errs, err := runBenchT(t, f)
	if err != nil {
		t.Fatalf("bench over TLS: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "resp+tls://"+rs.Addr()) || !strings.Contains(out, `"errors": 0`) {
		t.Fatalf("report:\n%s", out)
	}
	f.password = "wrong"
	if _, _, err := runBenchT(t, f); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("bench with a wrong password: %v", err)
	}
}
