package pki

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// material is one loaded set of certificates: the CA bundle and this
// node's certificate and key.
type material struct {
	gen  uint64
	pool *x509.CertPool
	cas  []*x509.Certificate
	cert *tls.Certificate // Leaf set
	id   Identity
}

// fileStamp tells whether a file changed since it was last seen.
type fileStamp struct {
	size  int64
	mtime time.Time
	ok    bool
}

// Store holds a node's certificates and CA bundle and reloads them (see
// the package documentation). It is safe for concurrent use.
type Store struct {
	dir string
	log *slog.Logger

	reloadMu sync.Mutex // one Reload at a time
	seen     map[string]fileStamp
	cur      atomic.Pointer[material]

	chMu    sync.Mutex
	changed chan struct{}

	vmu    sync.Mutex
	vgen   uint64
	vcache map[[32]byte]verified
}

type verified struct {
	id  Identity
	err error
}

// DefaultPollInterval is how often Run looks at the files.
const DefaultPollInterval = 5 * time.Second

// OpenNode loads a node's certificates from dir: ca.crt, node.crt and
// node.key. The node certificate must chain to the bundle and name a
// node; a TLS handshake between it and the bundle is tried first.
func OpenNode(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: dir, log: log.With("component", "pki"), changed: make(chan struct{})}
	m, stamps, err := s.load()
	if err != nil {
		return nil, err
	}
	m.gen = 1
	s.cur.Store(m)
	s.seen = stamps
	return s, nil
}

// Dir returns the certificates directory.
func (s *Store) Dir() string { return s.dir }

// Identity returns what this node's certificate names.
func (s *Store) Identity() Identity { return s.cur.Load().id }

// NotAfter returns when this node's certificate expires.
func (s *Store) NotAfter() time.Time { return s.cur.Load().cert.Leaf.NotAfter }

// Generation counts the material swapped in (1 after OpenNode).
func (s *Store) Generation() uint64 { return s.cur.Load().gen }

// Changed returns a channel closed at the next successful reload.
func (s *Store) Changed() <-chan struct{} {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return s.changed
}

func (s *Store) files() []string {
	return []string{filepath.Join(s.dir, CACertFile), filepath.Join(s.dir, NodeCertFile), filepath.Join(s.dir, NodeKeyFile)}
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mtime: fi.ModTime(), ok: true}
}

// load reads and checks the files; it does not swap anything in.
func (s *Store) load() (*material, map[string]fileStamp, error) {
	stamps := map[string]fileStamp{}
	for _, f := range s.files() {
		stamps[f] = stampOf(f)
	}
	cas, err := readCerts(filepath.Join(s.dir, CACertFile))
	if err != nil {
		return nil, stamps, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, stamps, fmt.Errorf("%w: %s holds a certificate that is not a CA's (%q)", ErrFiles, CACertFile, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	certPEM, err := os.ReadFile(filepath.Join(s.dir, NodeCertFile))
	if err != nil {
		return nil, stamps, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	if _, err := readKey(filepath.Join(s.dir, NodeKeyFile)); err != nil { // modes
		return nil, stamps, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(s.dir, NodeKeyFile))
	if err != nil {
		return nil, stamps, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, stamps, fmt.Errorf("%w: %s and %s: %w", ErrFiles, NodeCertFile, NodeKeyFile, err)
	}
	m := &material{pool: pool, cas: cas, cert: &pair}
	id, err := verifyChain(m, pair.Leaf, intermediates(pair.Certificate), x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, stamps, fmt.Errorf("this node's certificate: %w", err)
	}
	if id.Kind != KindNode {
		return nil, stamps, fmt.Errorf("%w: %s names %s, not a node", ErrIdentity, NodeCertFile, id)
	}
	m.id = id
	if err := selfTest(m); err != nil {
		return nil, stamps, fmt.Errorf("%w: a TLS handshake with the new certificates failed: %w", ErrUntrusted, err)
	}
	return m, stamps, nil
}

// Reload reads the files again and swaps them in if they pass the
// checks: they load, this node's certificate chains to the bundle, names
// the same node and cluster as before, and a TLS handshake between the
// two succeeds. Otherwise the error (wrapping ErrRefused) is logged and
// returned, and the material in use stays.
func (s *Store) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	m, stamps, err := s.load()
	s.seen = stamps
	old := s.cur.Load()
	if err == nil && m.id != old.id {
		err = fmt.Errorf("%w: the new certificate names %s, the node is %s", ErrIdentity, m.id, old.id)
	}
	if err != nil {
		err = fmt.Errorf("%w (keeping the certificates in use, which expire %s): %w", ErrRefused, old.cert.Leaf.NotAfter.Format(time.RFC3339), err)
		s.log.Error("new certificates refused", "dir", s.dir, "err", err)
		return err
	}
	m.gen = old.gen + 1
	s.cur.Store(m)
	s.chMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.chMu.Unlock()
	s.log.Info("certificates reloaded", "identity", m.id.String(), "expires", m.cert.Leaf.NotAfter.Format(time.RFC3339),
		"cas", len(m.cas), "generation", m.gen)
	return nil
}

// Run reloads whenever a file changes (size or modification time), as
// seen every interval (DefaultPollInterval if 0), until ctx ends.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reloadMu.Lock()
		changed := false
		for _, f := range s.files() {
			if stampOf(f) != s.seen[f] {
				changed = true
			}
		}
		s.reloadMu.Unlock()
		if changed {
			_ = s.Reload() // logged
		}
	}
}

func intermediates(chain [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, der := range chain[min(1, len(chain)):] {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// verifyChain checks that leaf chains to m's bundle for usage and
// returns the identity it names.
func verifyChain(m *material, leaf *x509.Certificate, inter []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	opts := x509.VerifyOptions{Roots: m.pool, KeyUsages: []x509.ExtKeyUsage{usage}, Intermediates: x509.NewCertPool()}
	for _, c := range inter {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		return Identity{}, fmt.Errorf("%w: %q: %w", ErrUntrusted, leaf.Subject.CommonName, err)
	}
	return IdentityOf(leaf)
}

// peerCerts returns the leaf and the intermediates a connection's peer
// presented.
func peerCerts(cs tls.ConnectionState) (*x509.Certificate, []*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, nil, fmt.Errorf("%w: the peer presented no certificate", ErrUntrusted)
	}
	return cs.PeerCertificates[0], cs.PeerCertificates[1:], nil
}

// nodePeer checks that a connection's peer is a node of cluster (an id,
// or a name) trusted by m, and returns its identity.
func nodePeer(m *material, cs tls.ConnectionState, cluster string, usage x509.ExtKeyUsage) (Identity, error) {
	leaf, inter, err := peerCerts(cs)
	if err != nil {
		return Identity{}, err
	}
	id, err := verifyChain(m, leaf, inter, usage)
	if err != nil {
		return Identity{}, err
	}
	if id.Kind != KindNode {
		return Identity{}, fmt.Errorf("%w: the peer's certificate names %s, not a node", ErrIdentity, id)
	}
	if !id.InCluster(cluster) {
		return Identity{}, fmt.Errorf("%w: the peer's certificate names cluster %q, this node is in cluster %q", ErrIdentity, id.Cluster, cluster)
	}
	return id, nil
}

// selfTest runs a mutual TLS handshake, in memory, between m's node
// certificate on both sides and m's bundle.
func selfTest(m *material) error {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(5 * time.Second)
	_ = a.SetDeadline(deadline)
	_ = b.SetDeadline(deadline)
	cluster := m.id.Cluster
	server := tls.Server(a, &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*m.cert}, ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := nodePeer(m, cs, cluster, x509.ExtKeyUsageClientAuth)
			return err
		},
	})
	client := tls.Client(b, &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*m.cert},
		InsecureSkipVerify: true, // verified just below, against m's bundle
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := nodePeer(m, cs, cluster, x509.ExtKeyUsageServerAuth)
			return err
		},
	})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	cerr := client.Handshake()
	serr := <-errc
	return errors.Join(cerr, serr)
}

// NodeTLS secures a node's node-to-node traffic (it implements
// transport.Security): mutual TLS 1.3, where both ends present their node
// certificate and check that the other's chains to the bundle and names
// a node of the cluster.
type NodeTLS struct {
	s       *Store
	cluster string
	self    uint64
}

// ForNode returns the node-to-node security of node self in the cluster
// whose id is cluster; the node's certificate must name that node and
// cluster.
func (s *Store) ForNode(cluster string, self uint64) (*NodeTLS, error) {
	id := s.Identity()
	if id.Node != self {
		return nil, fmt.Errorf("%w: the certificate in %s names node %d, this node is %d", ErrIdentity, s.dir, id.Node, self)
	}
	if !id.InCluster(cluster) {
		return nil, fmt.Errorf("%w: the certificate in %s names cluster %q, this node's cluster is %q", ErrIdentity, s.dir, id.Cluster, cluster)
	}
	return &NodeTLS{s: s, cluster: cluster, self: self}, nil
}

// ServerConfig is the TLS configuration of the node-to-node listener.
func (t *NodeTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := t.s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequireAnyClientCert, // verified just below, against the bundle of the moment
				VerifyConnection: func(cs tls.ConnectionState) error {
					_, err := nodePeer(m, cs, t.cluster, x509.ExtKeyUsageClientAuth)
					return err
				},
			}, nil
		},
	}
}

// ClientConfig is the TLS configuration for dialling node peer: the
// server must present a certificate of that node.
func (t *NodeTLS) ClientConfig(peer uint64) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.s.cur.Load().cert, nil
		},
		// The host name is not what identifies a node: its certificate's
		// node id is, checked against the bundle just below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := nodePeer(t.s.cur.Load(), cs, t.cluster, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return err
			}
			if id.Node != peer {
				return fmt.Errorf("%w: dialled node %d, the server's certificate names node %d", ErrIdentity, peer, id.Node)
			}
			return nil
		},
	}
}

// PeerID returns the node id a connection's certificate names, checking
// it again against the bundle in use now (the result is kept until the
// material changes), so that a connection made before a CA was removed
// from the bundle is refused from then on.
func (t *NodeTLS) PeerID(cs tls.ConnectionState) (uint64, error) {
	leaf, _, err := peerCerts(cs)
	if err != nil {
		return 0, err
	}
	m := t.s.cur.Load()
	key := sha256.Sum256(leaf.Raw)
	s := t.s
	s.vmu.Lock()
	if s.vgen != m.gen || len(s.vcache) > 4096 {
		s.vgen, s.vcache = m.gen, map[[32]byte]verified{}
	}
	v, ok := s.vcache[key]
	s.vmu.Unlock()
	if !ok {
		id, err := nodePeer(m, cs, t.cluster, x509.ExtKeyUsageClientAuth)
		v = verified{id: id, err: err}
		s.vmu.Lock()
		if s.vgen == m.gen {
			s.vcache[key] = v
		}
		s.vmu.Unlock()
	}
	if v.err != nil {
		return 0, v.err
	}
	return v.id.Node, nil
}

// Generation counts the material swapped in; PeerID's answers hold
// while it stays the same.
func (t *NodeTLS) Generation() uint64 { return t.s.Generation() }

// Changed returns a channel closed when new material is swapped in.
func (t *NodeTLS) Changed() <-chan struct{} { return t.s.Changed() }

// ClientsConfig is the TLS configuration of a node's client listeners
// (RESP, HTTP): this node's certificate; a client certificate is
// optional, and one that is presented must chain to the bundle and name
// a user or node of the cluster (the front end maps it to its user).
// nextProtos are the ALPN protocols offered (nil for RESP).
func (s *Store) ClientsConfig(cluster string, nextProtos []string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   nextProtos,
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequestClientCert,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return nil // a password or token comes later
					}
					_, err := clientPeer(m, cs, cluster)
					return err
				},
			}, nil
		},
	}
}

func clientPeer(m *material, cs tls.ConnectionState, cluster string) (Identity, error) {
	leaf, inter, err := peerCerts(cs)
	if err != nil {
		return Identity{}, err
	}
	id, err := verifyChain(m, leaf, inter, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return Identity{}, err
	}
	if id.Kind != KindUser && id.Kind != KindNode {
		return Identity{}, fmt.Errorf("%w: the client's certificate names %s", ErrIdentity, id)
	}
	if !id.InCluster(cluster) {
		return Identity{}, fmt.Errorf("%w: the client's certificate names cluster %q, this node is in cluster %q", ErrIdentity, id.Cluster, cluster)
	}
	return id, nil
}

// ClientIdentity returns the identity of a client connection's verified
// certificate (ok false when it presented none).
func (s *Store) ClientIdentity(cs tls.ConnectionState, cluster string) (Identity, bool, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, false, nil
	}
	id, err := clientPeer(s.cur.Load(), cs, cluster)
	return id, err == nil, err
}

// NodeClientConfig is the TLS configuration of a node calling another
// node's HTTP API (a join): its node certificate as client certificate,
// the server verified against the bundle (host name included).
func (s *Store) NodeClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
		RootCAs: s.cur.Load().pool,
	}
}
