package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/transport"
)

// The demo's security: DIR/certs holds the CA (ca.crt, ca.key, and the
// root user's client certificate), DIR/certs/nodeN each node's
// certificate, DIR/admin.password the admin user's password. A demo run
// again on the same directory keeps them.

// AdminUser is the user the demo makes, with every permission.
const AdminUser = "admin"

type security struct {
	dir, ca, passwordFile string
	password              string
	certs                 map[uint64]*pki.Store
}

// newSecurity makes (or finds) the CA and every node's certificate.
func newSecurity(dir string, peers []transport.Peer, log *slog.Logger) (*security, error) {
	s := &security{dir: dir, ca: filepath.Join(dir, "certs"), passwordFile: filepath.Join(dir, "admin.password"), certs: map[uint64]*pki.Store{}}
	if _, err := os.Stat(filepath.Join(s.ca, pki.CACertFile)); errors.Is(err, fs.ErrNotExist) {
		if _, err := pki.CreateCA(pki.CAOptions{Dir: s.ca, Cluster: node.DefaultCluster}); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if _, err := pki.CreateClient(pki.CertOptions{Dir: s.ca}, auth.RootUser); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	for _, p := range peers {
		nd := filepath.Join(s.ca, fmt.Sprintf("node%d", p.ID))
		// A fresh certificate at every run: the demo picks its ports anew.
		if _, err := pki.CreateNode(pki.CertOptions{Dir: s.ca, OutDir: nd, Hosts: []string{"127.0.0.1", "localhost", "::1"}, Overwrite: true}, p.ID); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		st, err := pki.OpenNode(nd, log)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		s.certs[p.ID] = st
	}
	return s, nil
}

// certsOf returns a node's certificates (nil for an insecure demo).
func (s *security) certsOf(id uint64) *pki.Store {
	if s == nil {
		return nil
	}
	return s.certs[id]
}

// adminUser makes the admin user, with a random password, unless an
// earlier run on the same directory made it and kept its password.
func (s *security) adminUser(ctx context.Context, n *node.Node) error {
	if b, err := os.ReadFile(s.passwordFile); err == nil {
		if _, ok := n.User(AdminUser); ok {
			s.password = strings.TrimSpace(string(b))
			return nil
		}
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return err
	}
	s.password = base64.RawURLEncoding.EncodeToString(raw[:])
	if _, err := n.SetUser(ctx, AdminUser, []string{"reset", "on", ">" + s.password, "allkeys", "allcommands"}); err != nil {
		return fmt.Errorf("demo: the admin user: %w", err)
	}
	return os.WriteFile(s.passwordFile, []byte(s.password+"\n"), 0o600)
}

// redisCLI is the redis-cli command line to connect (without its port).
func (s *security) redisCLI() string {
	return fmt.Sprintf("redis-cli --tls --cacert %s --user %s --pass %s", filepath.Join(s.ca, pki.CACertFile), AdminUser, s.password)
}

func (s *security) printHeader(out io.Writer) {
	fmt.Fprintf(out, "Secure: mutual TLS between nodes, TLS for clients; user %s, password %s (in %s); CA in %s\n",
		AdminUser, s.password, s.passwordFile, s.ca)
}

func (s *security) printFooter(out io.Writer) {
	fmt.Fprintf(out, "The CLI: export MERIDIAN_CERTS_DIR=%s MERIDIAN_USER=%s MERIDIAN_PASSWORD_FILE=%s (then meridian status --addr HOST:PORT)\n",
		s.ca, AdminUser, s.passwordFile)
}
