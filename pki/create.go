package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in a certificates directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// ClientCertFile and ClientKeyFile name a user's client certificate and
// key in a certificates directory.
func ClientCertFile(user string) string { return "client." + user + ".crt" }
func ClientKeyFile(user string) string  { return "client." + user + ".key" }

// Default lifetimes.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultCertLifetime = 365 * 24 * time.Hour
)

// ErrExists is returned when a file would be overwritten without
// Overwrite.
var ErrExists = errors.New("pki: file exists")

// CAOptions configure CreateCA.
type CAOptions struct {
	// Dir is the certificates directory (created with mode 0700).
	Dir string
	// KeyPath is where the CA key goes. Default Dir/ca.key.
	KeyPath string
	// Cluster is the cluster's name (or id). Default "meridian".
	Cluster string
	// Lifetime of the CA certificate. Default 10 years.
	Lifetime time.Duration
	// Rotate makes a new CA whose certificate is added to the bundle in
	// front of the CAs already there (which stay trusted until pruned,
	// see PruneCA); the old key is kept beside the new as
	// ca.key.<serial>. Without Rotate an existing ca.crt or key is an
	// error (ErrExists) unless Overwrite.
	Rotate    bool
	Overwrite bool
}

// CertOptions configure CreateNode and CreateClient.
type CertOptions struct {
	// Dir is the certificates directory; it holds ca.crt.
	Dir string
	// CAKeyPath is the CA key. Default Dir/ca.key.
	CAKeyPath string
	// Cluster the certificate names: the cluster's name or id. Default
	// the CA's.
	Cluster string
	// Lifetime of the certificate. Default one year (never beyond the
	// CA's expiry).
	Lifetime time.Duration
	// Overwrite replaces existing files.
	Overwrite bool
	// OutDir is where the certificate and key go (default Dir); the CA
	// bundle is copied there too, so that OutDir is all a node or client
	// needs (several nodes on one machine each get a directory).
	OutDir string
	// Hosts are the node's addresses and names (CreateNode): IP
	// addresses and DNS names, put in the certificate's SANs so that
	// clients verifying the host name (redis-cli --tls, browsers) accept
	// it.
	Hosts []string
}

// CreateCA makes a cluster's certificate authority: a new key and a
// self-signed certificate naming meridian://<cluster>/ca.
func CreateCA(o CAOptions) (*x509.Certificate, error) {
	if o.KeyPath == "" {
		o.KeyPath = filepath.Join(o.Dir, CAKeyFile)
	}
	bundlePath := filepath.Join(o.Dir, CACertFile)
	var old []*x509.Certificate
	if o.Rotate {
		var err error
		if old, err = readCerts(bundlePath); err != nil {
			return nil, err
		}
		id, err := IdentityOf(old[0])
		if err != nil {
			return nil, err
		}
		if o.Cluster == "" {
			o.Cluster = id.Cluster
		} else if ClusterNameOf(o.Cluster) != id.ClusterName() {
			return nil, fmt.Errorf("%w: the CA in use is cluster %q's, not %q's", ErrIdentity, id.Cluster, o.Cluster)
		}
	}
	if o.Cluster == "" {
		o.Cluster = "meridian"
	}
	if !validClusterLabel(o.Cluster) {
		return nil, fmt.Errorf("pki: bad cluster name %q", o.Cluster)
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultCALifetime
	}
	if err := EnsureDir(o.Dir); err != nil {
		return nil, err
	}
	if !o.Rotate && !o.Overwrite {
		for _, p := range []string{bundlePath, o.KeyPath} {
			if _, err := os.Stat(p); err == nil {
				return nil, fmt.Errorf("%w: %s (rotate the CA with --rotate, or replace it with --overwrite)", ErrExists, p)
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Meridian"}, CommonName: "Meridian CA " + o.Cluster},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(o.Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{Identity{Kind: KindCA, Cluster: o.Cluster}.URI()},
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	if o.Rotate {
		if prev, err := os.ReadFile(o.KeyPath); err == nil && len(old) > 0 {
			kept := fmt.Sprintf("%s.%x", o.KeyPath, old[0].SerialNumber.Bytes()[:4])
			if err := writeAtomic(kept, prev, 0o600, true); err != nil {
				return nil, err
			}
		}
	}
	bundle := pemCert(der)
	for _, c := range old {
		bundle = append(bundle, pemCert(c.Raw)...)
	}
	if err := writeAtomic(o.KeyPath, keyPEM, 0o600, true); err != nil {
		return nil, err
	}
	if err := writeAtomic(bundlePath, bundle, 0o644, true); err != nil {
		return nil, err
	}
	return cert, nil
}

// PruneCA keeps in the bundle only the CA whose key is at keyPath
// (default Dir/ca.key): after a CA rotation, once every node and client
// has a certificate of the new CA, the old one is no longer trusted.
// It returns how many CA certificates it removed.
func PruneCA(dir, keyPath string) (int, error) {
	if keyPath == "" {
		keyPath = filepath.Join(dir, CAKeyFile)
	}
	ca, _, err := loadCA(dir, keyPath)
	if err != nil {
		return 0, err
	}
	all, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return 0, err
	}
	if err := writeAtomic(filepath.Join(dir, CACertFile), pemCert(ca.Raw), 0o644, true); err != nil {
		return 0, err
	}
	return len(all) - 1, nil
}

// CreateNode issues node id's certificate (meridian://<cluster>/node/<id>,
// usable as server and client) into Dir/node.crt and node.key.
func CreateNode(o CertOptions, id uint64) (*x509.Certificate, error) {
	if id == 0 {
		return nil, errors.New("pki: a node id must not be 0")
	}
	if len(o.Hosts) == 0 {
		return nil, errors.New("pki: a node certificate needs the node's addresses or host names (--host)")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Meridian"}, CommonName: fmt.Sprintf("node %d", id)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range o.Hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(o, tmpl, Identity{Kind: KindNode, Node: id}, NodeCertFile, NodeKeyFile)
}

// CreateClient issues user's client certificate
// (meridian://<cluster>/user/<user>) into Dir/client.<user>.crt and .key.
func CreateClient(o CertOptions, user string) (*x509.Certificate, error) {
	if !ValidUserName(user) {
		return nil, fmt.Errorf("pki: bad user name %q (1 to 64 letters, digits, '.', '_', '-', '@')", user)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"Meridian"}, CommonName: user},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(o, tmpl, Identity{Kind: KindUser, User: user}, ClientCertFile(user), ClientKeyFile(user))
}

func issue(o CertOptions, tmpl *x509.Certificate, id Identity, certFile, keyFile string) (*x509.Certificate, error) {
	if o.CAKeyPath == "" {
		o.CAKeyPath = filepath.Join(o.Dir, CAKeyFile)
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultCertLifetime
	}
	ca, caKey, err := loadCA(o.Dir, o.CAKeyPath)
	if err != nil {
		return nil, err
	}
	caID, err := IdentityOf(ca)
	if err != nil {
		return nil, err
	}
	id.Cluster = o.Cluster
	if id.Cluster == "" {
		id.Cluster = caID.Cluster
	}
	if !validClusterLabel(id.Cluster) {
		return nil, fmt.Errorf("pki: bad cluster %q", id.Cluster)
	}
	if ClusterNameOf(id.Cluster) != caID.ClusterName() {
		return nil, fmt.Errorf("%w: the CA is cluster %q's, not %q's", ErrIdentity, caID.Cluster, id.Cluster)
	}
	out := o.OutDir
	if out == "" {
		out = o.Dir
	}
	if err := EnsureDir(out); err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(out, certFile), filepath.Join(out, keyFile)
	if !o.Overwrite {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Stat(p); err == nil {
				return nil, fmt.Errorf("%w: %s (replace it with --overwrite)", ErrExists, p)
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-time.Hour)
	tmpl.NotAfter = now.Add(o.Lifetime)
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	tmpl.URIs = []*url.URL{id.URI()}
	tmpl.AuthorityKeyId = ca.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a reloading node that sees the new certificate
	// beside the old key refuses the pair and tries again.
	if err := writeAtomic(keyPath, keyPEM, 0o600, true); err != nil {
		return nil, err
	}
	if err := writeAtomic(certPath, pemCert(der), 0o644, true); err != nil {
		return nil, err
	}
	if filepath.Clean(out) != filepath.Clean(o.Dir) {
		bundle, err := os.ReadFile(filepath.Join(o.Dir, CACertFile))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFiles, err)
		}
		if err := writeAtomic(filepath.Join(out, CACertFile), bundle, 0o644, true); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// loadCA returns the CA certificate of the bundle in dir whose public
// key is the key at keyPath, and the key.
func loadCA(dir, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	key, err := readKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	certs, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, err
	}
	for _, c := range certs {
		if pk, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pk.Equal(key.Public()) {
			if !c.IsCA {
				break
			}
			return c, key, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: no CA certificate in %s matches the key %s", ErrFiles, filepath.Join(dir, CACertFile), keyPath)
}

// EnsureDir creates a certificates directory with mode 0700 (a directory
// that exists keeps its mode, but one that group or others may enter is
// refused).
func EnsureDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: no certificates directory given", ErrFiles)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%w: %w", ErrFiles, err)
		}
		return os.Chmod(dir, 0o700) // whatever the umask
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFiles, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrFiles, dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o: make it private (chmod 700 %s)", ErrFiles, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory and a rename, so that a reader never sees half of it.
func writeAtomic(path string, data []byte, mode os.FileMode, overwrite bool) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFiles, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(b)
	return sum[:20]
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readCerts reads every certificate of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFiles, path, err)
	}
	return certs, nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) > 0 && len(out) == 0 {
		return nil, errors.New("not PEM")
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

// readKey reads a private key, refusing one that group or others may
// read.
func readKey(path string) (crypto.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key %s has mode %04o: it must not be readable by group or others (chmod 600 %s)",
			ErrFiles, path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%w: %s holds no PEM key", ErrFiles, path)
	}
	var k any
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		err = fmt.Errorf("unknown PEM type %q", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFiles, path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: not a signing key", ErrFiles, path)
	}
	return s, nil
}

// CAIdentity returns the identity of the CA of dir whose key is keyPath
// (default dir/ca.key): the cluster it names.
func CAIdentity(dir, keyPath string) (Identity, error) {
	if keyPath == "" {
		keyPath = filepath.Join(dir, CAKeyFile)
	}
	ca, _, err := loadCA(dir, keyPath)
	if err != nil {
		return Identity{}, err
	}
	return IdentityOf(ca)
}
