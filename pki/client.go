package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ClientConfig is the TLS configuration of a client of a node (the CLI,
// tests, tools) with the certificates in dir: the CA bundle to verify the
// node, and user's client certificate if dir holds one (user "" or no
// such file: none). hasCert says whether a certificate was loaded.
func ClientConfig(dir, user string) (cfg *tls.Config, hasCert bool, err error) {
	cas, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, false, err
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	cfg = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if user == "" {
		return cfg, false, nil
	}
	certPath, keyPath := filepath.Join(dir, ClientCertFile(user)), filepath.Join(dir, ClientKeyFile(user))
	if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
		return cfg, false, nil
	}
	pair, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, false, err
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, true, nil
}

// LoadKeyPair loads a certificate and its key, refusing a key that group
// or others may read.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	if _, err := readKey(keyPath); err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", ErrFiles, err)
	}
	return pair, nil
}

// Describe lists the certificates of a directory: the bundle's CAs, the
// node certificate and the client certificates, each with its identity
// and expiry (for `meridian cert list`).
func Describe(dir string) ([]CertInfo, error) {
	var out []CertInfo
	add := func(file string, c *x509.Certificate) {
		ci := CertInfo{File: file, Subject: c.Subject.CommonName, NotAfter: c.NotAfter, IsCA: c.IsCA,
			DNSNames: c.DNSNames}
		for _, ip := range c.IPAddresses {
			ci.IPs = append(ci.IPs, ip.String())
		}
		if id, err := IdentityOf(c); err == nil {
			ci.Identity = id.String()
		}
		out = append(out, ci)
	}
	cas, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	for _, c := range cas {
		add(CACertFile, c)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return nil, err
	}
	for _, p := range names {
		if filepath.Base(p) == CACertFile {
			continue
		}
		certs, err := readCerts(p)
		if err != nil {
			return nil, err
		}
		add(filepath.Base(p), certs[0])
	}
	return out, nil
}

// CertInfo describes one certificate.
type CertInfo struct {
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	Identity string    `json:"identity"`
	IsCA     bool      `json:"is_ca"`
	DNSNames []string  `json:"dns_names,omitempty"`
	IPs      []string  `json:"ips,omitempty"`
	NotAfter time.Time `json:"not_after"`
}
