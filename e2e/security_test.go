package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/pki"
)

// mustCLI runs the meridian binary and fails the test if it fails.
func mustCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("meridian %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyInto copies files of dir from into dir to, keeping their modes.
func copyInto(t *testing.T, from, to string, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(from, f))
		tmp := filepath.Join(to, "."+f+".tmp")
		if err := os.WriteFile(tmp, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(to, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// logCount counts the lines of a process's log holding s.
func logCount(p *proc, s string) int {
	b, _ := os.ReadFile(p.log.Name())
	return strings.Count(string(b), s)
}

// bundleTLS verifies servers against the CA bundle in dir as it is on
// disk at each handshake, as a client whose bundle is updated during a CA
// rotation would.
func bundleTLS(dir string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // verified below against the bundle of the moment
		VerifyConnection: func(cs tls.ConnectionState) error {
			pem, err := os.ReadFile(filepath.Join(dir, pki.CACertFile))
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			opts := x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", Intermediates: x509.NewCertPool()}
			_, err = cs.PeerCertificates[0].Verify(opts)
			return err
		},
	}
}

// refusedHandshake dials addr with TLS presenting cert and reports
// whether the server refused it (an accepted handshake leaves the
// connection waiting for the client's first bytes).
func refusedHandshake(addr string, cert tls.Certificate) bool {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return true
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestSecureClusterAndCertificateRotation runs a three-process cluster
// with certificates made by `meridian cert`: mutual TLS between the
// nodes, TLS and users for clients. A node with a certificate of another
// CA, one without any, and one whose certificate names another node are
// refused when they try to join. Then, with writes going on, the CA is
// rotated (a new CA in every bundle, new certificates for every node and
// for root, the old CA pruned), through SIGHUP on two nodes and the file
// watch on the third: replication goes on, no write fails, and the old
// certificates are refused afterwards, by the nodes' transport and by
// their client ports. A bad certificate installed on a node is refused and
// logged, and the node keeps serving with the one it had.
func TestSecureClusterAndCertificateRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	bin := meridianBinary(t)
	root := t.TempDir()
	ca := filepath.Join(root, "ca")
	mustCLI(t, bin, "cert", "create-ca", "--certs-dir", ca, "--cluster", "sec")
	mustCLI(t, bin, "cert", "create-client", "root", "--certs-dir", ca)
	procs := newProcs(t, root, writeMatrix(t, root), "us-east", "eu-west", "ap-southeast")
	var peers []string
	for _, p := range procs {
		peers = append(peers, fmt.Sprintf("%d=%s@%s", p.id, p.region, p.raft))
	}
	certsOf := func(p *proc) string { return p.dir + "-certs" }
	for _, p := range procs {
		out := mustCLI(t, bin, "cert", "create-node", "--certs-dir", ca, "--out-dir", certsOf(p), "--id", fmt.Sprint(p.id),
			"--host", "127.0.0.1,localhost", "--peers", strings.Join(peers, ","))
		if !strings.Contains(out, fmt.Sprintf("/node/%d", p.id)) || !strings.Contains(out, "meridian://sec-") {
			t.Fatalf("create-node: %s", out)
		}
		p.args = []string{"start", "--id", fmt.Sprint(p.id), "--region", p.region, "--data-dir", p.dir,
			"--listen", p.raft, "--resp", p.resp, "--http", p.http, "--peers", strings.Join(peers, ","),
			"--cluster", "sec", "--certs-dir", certsOf(p), "--log-level", "info"}
		p.start(t, bin)
	}
	reap(t, procs...)
	asRoot := []string{"--certs-dir", ca, "--user", "root"}
	admin := func(args ...string) string {
		t.Helper()
		return mustCLI(t, bin, append(append(args, "--addr", procs[0].http), asRoot...)...)
	}
	admin("status", "--wait-ready", "--timeout", "60s")
	admin("keyspace", "create", "default", "--shards", "2", "--home", "us-east")
	admin("user", "set", "app", "on", ">app-pw", "~default", "+@read", "+@write")
	if out := admin("status"); !strings.Contains(out, "default") {
		t.Fatalf("status: %s", out)
	}

	// Nodes that must not get in.
	other := filepath.Join(root, "other-ca")
	mustCLI(t, bin, "cert", "create-ca", "--certs-dir", other, "--cluster", "sec")
	mustCLI(t, bin, "cert", "create-node", "--certs-dir", other, "--out-dir", filepath.Join(root, "n4-foreign"), "--id", "4", "--host", "127.0.0.1")
	mustCLI(t, bin, "cert", "create-node", "--certs-dir", ca, "--out-dir", filepath.Join(root, "n4"), "--id", "4", "--host", "127.0.0.1")
	for _, c := range []struct {
		name  string
		id    string
		certs string
		want  string
	}{
		{"a certificate of another CA", "4", filepath.Join(root, "n4-foreign"), "certificate signed by unknown authority"},
		{"no certificate", "4", "", "join through"},
		{"a certificate naming another node", "2", filepath.Join(root, "n4"), "cannot ask to admit node 2"},
	} {
		args := []string{"start", "--id", c.id, "--region", "us-east", "--data-dir", filepath.Join(root, "intruder-"+strings.ReplaceAll(c.name, " ", "-")),
			"--listen", freeAddr(t), "--resp", freeAddr(t), "--http", freeAddr(t), "--join", procs[0].http}
		if c.certs != "" {
			args = append(args, "--certs-dir", c.certs)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("a node with %s: %v, output %s (want it refused, saying %q)", c.name, err, out, c.want)
		}
	}
	if out := admin("status", "--json"); strings.Contains(out, `"id": 4`) {
		t.Fatalf("an intruder is in the cluster:\n%s", out)
	}

	// Writes go on through the rotation.
	app := redis.NewClient(&redis.Options{Addr: procs[0].resp, TLSConfig: bundleTLS(ca), Username: "app", Password: "app-pw", MaxRetries: -1,
		ReadTimeout: 20 * time.Second, WriteTimeout: 20 * time.Second})
	defer app.Close()
	var written, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := app.Set(ctx, fmt.Sprintf("w%d", i), i, 0).Err()
			cancel()
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			} else {
				written.Add(1)
			}
		}
	}()
	progress := func(what string) {
		t.Helper()
		before := written.Load()
		testutil.Eventually(t, 30*time.Second, "writes after "+what, func() bool { return written.Load() >= before+20 })
	}
	progress("the start")
	oldNode1, err := pki.LoadKeyPair(filepath.Join(certsOf(procs[0]), pki.NodeCertFile), filepath.Join(certsOf(procs[0]), pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	oldRoot, err := pki.LoadKeyPair(filepath.Join(ca, pki.ClientCertFile("root")), filepath.Join(ca, pki.ClientKeyFile("root")))
	if err != nil {
		t.Fatal(err)
	}
	// install copies files into every node's directory, signals nodes 1
	// and 2 (node 3 finds the change by itself), and waits until every
	// node has reloaded.
	install := func(what string, files func(p *proc) (string, []string)) {
		t.Helper()
		counts := make([]int, len(procs))
		for i, p := range procs {
			counts[i] = logCount(p, "certificates reloaded")
			from, fs := files(p)
			copyInto(t, from, certsOf(p), fs...)
		}
		for _, p := range procs[:2] {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		for i, p := range procs {
			testutil.Eventually(t, 30*time.Second, fmt.Sprintf("node %d reloading %s", p.id, what), func() bool {
				return logCount(p, "certificates reloaded") > counts[i]
			})
		}
		progress(what)
	}
	mustCLI(t, bin, "cert", "create-ca", "--certs-dir", ca, "--rotate")
	install("the bundle of both CAs", func(*proc) (string, []string) { return ca, []string{pki.CACertFile} })
	newNodes := filepath.Join(root, "new")
	for _, p := range procs {
		mustCLI(t, bin, "cert", "create-node", "--certs-dir", ca, "--out-dir", filepath.Join(newNodes, fmt.Sprint(p.id)), "--id", fmt.Sprint(p.id),
			"--host", "127.0.0.1,localhost", "--peers", strings.Join(peers, ","))
	}
	install("new node certificates", func(p *proc) (string, []string) {
		return filepath.Join(newNodes, fmt.Sprint(p.id)), []string{pki.NodeKeyFile, pki.NodeCertFile}
	})
	mustCLI(t, bin, "cert", "create-client", "root", "--certs-dir", ca, "--overwrite")
	mustCLI(t, bin, "cert", "prune-ca", "--certs-dir", ca)
	install("the new CA alone", func(*proc) (string, []string) { return ca, []string{pki.CACertFile} })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d writes failed during the rotation (last: %v)", failed.Load(), written.Load()+failed.Load(), lastErr.Load())
	}
	t.Logf("FIGURES: %d writes through the CA rotation, 0 failed", written.Load())
	// Replication went on: the last write is read in ap-southeast.
	reader := redis.NewClient(&redis.Options{Addr: procs[2].resp, TLSConfig: bundleTLS(ca), Username: "app", Password: "app-pw"})
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	last := fmt.Sprintf("w%d", written.Load()-1)
	if v, err := reader.Get(ctx, last).Result(); err != nil || v == "" {
		t.Fatalf("the last write %s read in ap-southeast: %q %v", last, v, err)
	}

	// The old certificates are refused: node 1's by every other node's
	// transport, root's by the client ports; the new ones work.
	for _, p := range procs[1:] {
		if !refusedHandshake(p.raft, oldNode1) {
			t.Fatalf("node %d's transport accepted node 1's old certificate", p.id)
		}
	}
	oldClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{oldRoot}}}}
	if resp, err := oldClient.Get("https://" + procs[0].http + "/v1/auth/whoami"); err == nil {
		resp.Body.Close()
		t.Fatalf("root's old certificate got an answer: %s", resp.Status)
	}
	if out := admin("status"); !strings.Contains(out, "answered by node 1") {
		t.Fatalf("status with root's new certificate: %s", out)
	}

	// A bad certificate (another CA's) on node 3: refused and logged; the
	// node serves on.
	refusals := logCount(procs[2], "new certificates refused")
	good := filepath.Join(root, "n3-good")
	if err := os.MkdirAll(good, 0o700); err != nil {
		t.Fatal(err)
	}
	copyInto(t, certsOf(procs[2]), good, pki.NodeKeyFile, pki.NodeCertFile)
	mustCLI(t, bin, "cert", "create-node", "--certs-dir", other, "--out-dir", filepath.Join(root, "n3-foreign"), "--id", "3", "--host", "127.0.0.1")
	copyInto(t, filepath.Join(root, "n3-foreign"), certsOf(procs[2]), pki.NodeKeyFile, pki.NodeCertFile)
	if err := procs[2].cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "node 3 refusing a certificate of another CA", func() bool {
		return logCount(procs[2], "new certificates refused") > refusals
	})
	if err := app.Set(ctx, "after-bad-cert", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, "node 3 still serving", func() bool {
		v, err := reader.Get(ctx, "after-bad-cert").Result()
		return err == nil && v == "v"
	})
	copyInto(t, good, certsOf(procs[2]), pki.NodeKeyFile, pki.NodeCertFile)

	// The audit log, merged from every node, shows root's admin actions.
	if out := admin("audit", "--since", "1h"); !strings.Contains(out, "root (certificate)") || !strings.Contains(out, "user.set") || !strings.Contains(out, "keyspace.create") {
		t.Fatalf("audit:\n%s", out)
	}
}
