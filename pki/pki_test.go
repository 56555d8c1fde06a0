package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testutil"
)

// newCA makes a CA for cluster in a fresh directory and returns the
// directory.
func newCA(t *testing.T, cluster string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := CreateCA(CAOptions{Dir: dir, Cluster: cluster}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeDir issues node id's certificate in a copy of the CA directory
// (only ca.crt), as an operator hands each node its own directory.
func nodeDir(t *testing.T, caDir string, id uint64, cluster string) string {
	t.Helper()
	if _, err := CreateNode(CertOptions{Dir: caDir, Cluster: cluster, Hosts: []string{"127.0.0.1", "localhost"}, Overwrite: true}, id); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "node")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CACertFile, NodeCertFile, NodeKeyFile} {
		copyFile(t, filepath.Join(caDir, f), filepath.Join(dir, f))
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(from)
	if err := writeAtomic(to, data, fi.Mode().Perm(), true); err != nil {
		t.Fatal(err)
	}
}

func TestCreateWritesPrivateFilesAndIdentities(t *testing.T) {
	dir := newCA(t, "prod")
	if _, err := CreateNode(CertOptions{Dir: dir, Hosts: []string{"10.0.0.1", "db1.example.com"}}, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateClient(CertOptions{Dir: dir}, "alice"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	for _, f := range []string{CAKeyFile, NodeKeyFile, ClientKeyFile("alice")} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
	certs, err := readCerts(filepath.Join(dir, NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	id, err := IdentityOf(certs[0])
	if err != nil || id != (Identity{Kind: KindNode, Cluster: "prod", Node: 7}) || id.String() != "meridian://prod/node/7" {
		t.Fatalf("node identity %+v %v", id, err)
	}
	if len(certs[0].IPAddresses) != 1 || certs[0].IPAddresses[0].String() != "10.0.0.1" || len(certs[0].DNSNames) != 1 || certs[0].DNSNames[0] != "db1.example.com" {
		t.Fatalf("SANs %v %v", certs[0].IPAddresses, certs[0].DNSNames)
	}
	certs, _ = readCerts(filepath.Join(dir, ClientCertFile("alice")))
	if id, err := IdentityOf(certs[0]); err != nil || id.Kind != KindUser || id.User != "alice" {
		t.Fatalf("client identity %+v %v", id, err)
	}
	// Nothing is overwritten unless asked.
	if _, err := CreateCA(CAOptions{Dir: dir}); !errors.Is(err, ErrExists) {
		t.Fatalf("second CA: %v", err)
	}
	if _, err := CreateNode(CertOptions{Dir: dir, Hosts: []string{"x"}}, 7); !errors.Is(err, ErrExists) {
		t.Fatalf("second node certificate: %v", err)
	}
	if _, err := CreateNode(CertOptions{Dir: dir}, 8); err == nil {
		t.Fatal("a node certificate without hosts was made")
	}
	if _, err := CreateClient(CertOptions{Dir: dir}, "../x"); err == nil {
		t.Fatal("a client certificate for a bad user name was made")
	}
	if _, err := CreateNode(CertOptions{Dir: dir, Cluster: "other", Hosts: []string{"x"}, Overwrite: true}, 7); !errors.Is(err, ErrIdentity) {
		t.Fatalf("a certificate of another cluster from this CA: %v", err)
	}
	// A key others may read is refused.
	if err := os.Chmod(filepath.Join(dir, NodeKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenNode(dir, nil); !errors.Is(err, ErrFiles) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open with a readable key: %v", err)
	}
	// A directory others may enter is refused for a new CA.
	loose := filepath.Join(t.TempDir(), "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateCA(CAOptions{Dir: loose}); !errors.Is(err, ErrFiles) {
		t.Fatalf("CA in a 0755 directory: %v", err)
	}
}

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Identity
		ok   bool
	}{
		{"meridian://c/node/1", Identity{Kind: KindNode, Cluster: "c", Node: 1}, true},
		{"meridian://c-0123456789abcdef/node/12", Identity{Kind: KindNode, Cluster: "c-0123456789abcdef", Node: 12}, true},
		{"meridian://c/user/bob", Identity{Kind: KindUser, Cluster: "c", User: "bob"}, true},
		{"meridian://c/ca", Identity{Kind: KindCA, Cluster: "c"}, true},
		{"meridian://c/node/0", Identity{}, false},
		{"meridian://c/node/01", Identity{}, false},
		{"meridian://c/node/x", Identity{}, false},
		{"meridian://c/user/../x", Identity{}, false},
		{"meridian://c/user/", Identity{}, false},
		{"meridian:///node/1", Identity{}, false},
		{"spiffe://c/node/1", Identity{}, false},
		{"meridian://c/node/1?x=1", Identity{}, false},
		{"meridian://u@c/node/1", Identity{}, false},
	} {
		u, err := parseURL(tc.in)
		if err != nil {
			if tc.ok {
				t.Fatalf("%s: %v", tc.in, err)
			}
			continue
		}
		got, err := ParseIdentity(u)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	id := Identity{Kind: KindNode, Cluster: "c", Node: 3}
	for cluster, want := range map[string]bool{"c": true, "c-0123456789abcdef": true, "d-0123456789abcdef": false, "d": false} {
		if id.InCluster(cluster) != want {
			t.Errorf("a certificate of cluster name c in cluster %s: %v", cluster, !want)
		}
	}
	byID := Identity{Kind: KindNode, Cluster: "c-0123456789abcdef", Node: 3}
	for cluster, want := range map[string]bool{"c-0123456789abcdef": true, "c-1123456789abcdef": false, "c": false} {
		if byID.InCluster(cluster) != want {
			t.Errorf("a certificate of cluster id c-0123456789abcdef in cluster %s: %v", cluster, !want)
		}
	}
}

// serveTLS accepts TLS connections with cfg and completes their
// handshakes; errors go to the returned channel.
func serveTLS(t *testing.T, cfg *tls.Config) (string, <-chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errs := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			err = c.(*tls.Conn).Handshake()
			if err == nil {
				_, err = c.Write([]byte{1})
			}
			select {
			case errs <- err:
			default:
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), errs
}

// dial handshakes with addr and reads the byte the server writes once it
// accepted the handshake (TLS 1.3 clients finish before the server has
// checked their certificate).
func dial(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return err
}

func TestNodeHandshakes(t *testing.T) {
	const cluster = "prod-0123456789abcdef"
	ca := newCA(t, "prod")
	d1, d2, d3 := nodeDir(t, ca, 1, ""), nodeDir(t, ca, 2, cluster), nodeDir(t, ca, 3, "prod-1111111111111111")
	other := nodeDir(t, newCA(t, "prod"), 2, "") // the same names, another CA
	open := func(dir string) *Store {
		s, err := OpenNode(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1, s2, s3, so := open(d1), open(d2), open(d3), open(other)
	n1, err := s1.ForNode(cluster, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.ForNode(cluster, 2); !errors.Is(err, ErrIdentity) {
		t.Fatalf("node 1's certificate for node 2: %v", err)
	}
	if _, err := s3.ForNode(cluster, 3); !errors.Is(err, ErrIdentity) {
		t.Fatalf("a certificate of another cluster id: %v", err)
	}
	n2, _ := s2.ForNode(cluster, 2)
	n3 := &NodeTLS{s: s3, cluster: "prod-1111111111111111", self: 3}
	no := &NodeTLS{s: so, cluster: cluster, self: 2}
	addr, serverErrs := serveTLS(t, n1.ServerConfig())
	// Node 2 of this CA and cluster gets in; it dials node 1 and checks
	// that node 1 answers.
	if err := dial(addr, n2.ClientConfig(1)); err != nil {
		t.Fatalf("node 2 to node 1: %v", err)
	}
	if err := <-serverErrs; err != nil {
		t.Fatalf("node 1 refused node 2: %v", err)
	}
	// Node 2 dialling what it thinks is node 3 refuses node 1's answer.
	if err := dial(addr, n2.ClientConfig(3)); err == nil || !strings.Contains(err.Error(), "names node 1") {
		t.Fatalf("node 2 dialling node 3 reached node 1: %v", err)
	}
	<-serverErrs
	for name, cfg := range map[string]*tls.Config{
		"another CA":         no.ClientConfig(1),
		"another cluster id": n3.ClientConfig(1),
		"no certificate":     {InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
	} {
		if err := dial(addr, cfg); err == nil {
			t.Errorf("%s: handshake accepted", name)
		}
		if err := <-serverErrs; err == nil {
			t.Errorf("%s: the server accepted it", name)
		}
	}
	// PeerID takes the id from the certificate.
	conn, err := tls.Dial("tcp", addr, n2.ClientConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	cs := conn.ConnectionState()
	conn.Close()
	<-serverErrs
	if id, err := n2.PeerID(cs); err != nil || id != 1 {
		t.Fatalf("PeerID %d %v", id, err)
	}
}

func TestReloadSwapsGoodAndRefusesBad(t *testing.T) {
	ca := newCA(t, "prod")
	dir := nodeDir(t, ca, 1, "")
	s, err := OpenNode(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := s.cur.Load().cert.Leaf.SerialNumber
	changed := s.Changed()
	// A new certificate of the same node: swapped in.
	if _, err := CreateNode(CertOptions{Dir: ca, Hosts: []string{"127.0.0.1"}, Overwrite: true}, 1); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(ca, NodeKeyFile), filepath.Join(dir, NodeKeyFile))
	copyFile(t, filepath.Join(ca, NodeCertFile), filepath.Join(dir, NodeCertFile))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a reload")
	}
	if s.Generation() != 2 || s.cur.Load().cert.Leaf.SerialNumber.Cmp(first) == 0 {
		t.Fatalf("generation %d, serial unchanged", s.Generation())
	}
	good := s.cur.Load().cert.Leaf.SerialNumber
	// Each bad change is refused and the material in use stays.
	bad := []struct {
		name  string
		apply func()
	}{
		{"a certificate of another CA", func() {
			other := nodeDir(t, newCA(t, "prod"), 1, "")
			copyFile(t, filepath.Join(other, NodeKeyFile), filepath.Join(dir, NodeKeyFile))
			copyFile(t, filepath.Join(other, NodeCertFile), filepath.Join(dir, NodeCertFile))
		}},
		{"another node's certificate", func() {
			d := nodeDir(t, ca, 2, "")
			copyFile(t, filepath.Join(d, NodeKeyFile), filepath.Join(dir, NodeKeyFile))
			copyFile(t, filepath.Join(d, NodeCertFile), filepath.Join(dir, NodeCertFile))
		}},
		{"a key of another certificate", func() {
			d := nodeDir(t, ca, 1, "")
			copyFile(t, filepath.Join(d, NodeKeyFile), filepath.Join(dir, NodeKeyFile))
		}},
		{"a truncated bundle", func() {
			if err := writeAtomic(filepath.Join(dir, CACertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA"), 0o644, true); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, b := range bad {
		snapshot := map[string][]byte{}
		for _, f := range []string{CACertFile, NodeCertFile, NodeKeyFile} {
			snapshot[f], _ = os.ReadFile(filepath.Join(dir, f))
		}
		b.apply()
		if err := s.Reload(); !errors.Is(err, ErrRefused) {
			t.Fatalf("%s: reload %v", b.name, err)
		}
		if s.Generation() != 2 || s.cur.Load().cert.Leaf.SerialNumber.Cmp(good) != 0 {
			t.Fatalf("%s: the material in use changed", b.name)
		}
		for f, data := range snapshot {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(f, ".key") {
				mode = 0o600
			}
			if err := writeAtomic(filepath.Join(dir, f), data, mode, true); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCARotation: a new CA is added to the bundle, new certificates are
// issued from it, the old CA is pruned: a node's connection state of an
// old certificate is refused from then on, through PeerID and at the
// handshake. Run picks every step up by itself.
func TestCARotation(t *testing.T) {
	const cluster = "prod-0123456789abcdef"
	ca := newCA(t, "prod")
	d1, d2 := nodeDir(t, ca, 1, ""), nodeDir(t, ca, 2, "")
	s1, err := OpenNode(d1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := OpenNode(d2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s1.Run(ctx, 20*time.Millisecond)
	n1, _ := s1.ForNode(cluster, 1)
	n2, _ := s2.ForNode(cluster, 2)
	addr, serverErrs := serveTLS(t, n1.ServerConfig())
	conn, err := tls.Dial("tcp", addr, n1.ClientConfig(1)) // node 1 talking to itself: its own certificate as a client's
	if err != nil {
		t.Fatal(err)
	}
	oldState := conn.ConnectionState()
	conn.Close()
	<-serverErrs

	// Step 1: a new CA, both in the bundle.
	if _, err := CreateCA(CAOptions{Dir: ca, Rotate: true}); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(ca, CACertFile), filepath.Join(d1, CACertFile))
	testutil.Eventually(t, 10*time.Second, "the bundle of two CAs loaded", func() bool { return len(s1.cur.Load().cas) == 2 })
	// Step 2: node 1's certificate from the new CA.
	if _, err := CreateNode(CertOptions{Dir: ca, Hosts: []string{"127.0.0.1"}, Overwrite: true}, 1); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(ca, NodeKeyFile), filepath.Join(d1, NodeKeyFile))
	copyFile(t, filepath.Join(ca, NodeCertFile), filepath.Join(d1, NodeCertFile))
	fromNewCA := func() bool {
		return s1.cur.Load().cert.Leaf.Issuer.String() == s1.cur.Load().cas[0].Subject.String() &&
			s1.cur.Load().cert.Leaf.AuthorityKeyId != nil && string(s1.cur.Load().cert.Leaf.AuthorityKeyId) == string(s1.cur.Load().cas[0].SubjectKeyId)
	}
	testutil.Eventually(t, 10*time.Second, "node 1's certificate of the new CA loaded", fromNewCA)
	// The old certificate still passes (its CA is still trusted).
	if id, err := n1.PeerID(oldState); err != nil || id != 1 {
		t.Fatalf("old certificate before pruning: %d %v", id, err)
	}
	// Step 3: the old CA pruned.
	removed, err := PruneCA(ca, "")
	if err != nil || removed != 1 {
		t.Fatalf("prune: %d %v", removed, err)
	}
	copyFile(t, filepath.Join(ca, CACertFile), filepath.Join(d1, CACertFile))
	testutil.Eventually(t, 10*time.Second, "the pruned bundle loaded", func() bool { return len(s1.cur.Load().cas) == 1 })
	if _, err := n1.PeerID(oldState); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("old certificate after pruning: %v", err)
	}
	// Node 2 still holds an old certificate: refused at the handshake.
	if err := dial(addr, n2.ClientConfig(1)); err == nil {
		t.Fatal("node 2's old certificate was accepted")
	}
	if err := <-serverErrs; err == nil {
		t.Fatal("the server accepted node 2's old certificate")
	}
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

// TestCAIdentity: the identity of the CA whose key is given, the new one
// after a rotation (the bundle holds both), refused for a key no CA in
// the bundle has or a directory without a CA.
func TestCAIdentity(t *testing.T) {
	dir := newCA(t, "prod")
	id, err := CAIdentity(dir, "")
	if err != nil || id.Kind != KindCA || id.Cluster != "prod" || id.ClusterName() != "prod" {
		t.Fatalf("CAIdentity: %+v %v", id, err)
	}
	oldKey := filepath.Join(t.TempDir(), "old-ca.key")
	copyFile(t, filepath.Join(dir, CAKeyFile), oldKey)
	if _, err := CreateCA(CAOptions{Dir: dir, Rotate: true}); err != nil {
		t.Fatal(err)
	}
	newID, err := CAIdentity(dir, "")
	if err != nil || newID.Cluster != "prod" {
		t.Fatalf("after rotation: %+v %v", newID, err)
	}
	if id, err := CAIdentity(dir, oldKey); err != nil || id.Cluster != "prod" {
		t.Fatalf("the old key, still in the bundle: %+v %v", id, err)
	}
	other := newCA(t, "other")
	if _, err := CAIdentity(dir, filepath.Join(other, CAKeyFile)); !errors.Is(err, ErrFiles) {
		t.Fatalf("another CA's key: %v", err)
	}
	if id, err := CAIdentity(other, ""); err != nil || id.Cluster != "other" {
		t.Fatalf("the other CA: %+v %v", id, err)
	}
	if _, err := CAIdentity(t.TempDir(), ""); err == nil {
		t.Fatal("a directory without a CA")
	}
}
