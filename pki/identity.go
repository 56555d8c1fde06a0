package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Errors.
var (
	// ErrIdentity is wrapped by errors about a certificate that names no
	// Meridian identity, or not the one expected.
	ErrIdentity = errors.New("pki: certificate identity")
	// ErrUntrusted is wrapped by errors about a certificate that does not
	// chain to the CA bundle (another CA, expired, wrong usage).
	ErrUntrusted = errors.New("pki: certificate not trusted")
	// ErrFiles is wrapped by errors about the certificates directory: a
	// file missing, unreadable, malformed or with loose permissions.
	ErrFiles = errors.New("pki: certificate files")
	// ErrRefused is wrapped by the error of a Reload whose new material
	// was refused (the old stays in use).
	ErrRefused = errors.New("pki: new certificates refused")
)

// uriScheme is the scheme of the URI SANs that carry identities.
const uriScheme = "meridian"

// Kind is what a certificate stands for.
type Kind string

// Kinds of certificate.
const (
	KindCA   Kind = "ca"
	KindNode Kind = "node"
	KindUser Kind = "user"
)

// Identity is what a certificate names (its meridian:// URI).
type Identity struct {
	Kind    Kind
	Cluster string // the cluster's name or id
	Node    uint64 // KindNode
	User    string // KindUser
}

func (id Identity) String() string { return id.URI().String() }

// URI returns the identity's URI SAN.
func (id Identity) URI() *url.URL {
	u := &url.URL{Scheme: uriScheme, Host: id.Cluster}
	switch id.Kind {
	case KindNode:
		u.Path = "/node/" + strconv.FormatUint(id.Node, 10)
	case KindUser:
		u.Path = "/user/" + url.PathEscape(id.User)
	default:
		u.Path = "/ca"
	}
	return u
}

// ClusterName returns the cluster's name: the identity's cluster if it
// is a name, its name part if it is an id ("<name>-<16 hex digits>").
func (id Identity) ClusterName() string { return ClusterNameOf(id.Cluster) }

// ClusterNameOf returns the name part of a cluster id, or s itself when
// s is a name.
func ClusterNameOf(s string) string {
	i := strings.LastIndexByte(s, '-')
	if i < 0 || len(s)-i-1 != 16 {
		return s
	}
	for _, c := range s[i+1:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return s
		}
	}
	return s[:i]
}

// InCluster reports whether the identity's cluster is the cluster named
// clusterID (an id) or, when the certificate names only a cluster name,
// whether that is the id's name.
func (id Identity) InCluster(clusterID string) bool {
	if id.Cluster == clusterID {
		return true
	}
	name := ClusterNameOf(clusterID)
	return name != clusterID && id.Cluster == name
}

// validClusterLabel accepts what node.checkClusterName accepts (and ids,
// which add "-" and hex digits).
func validClusterLabel(s string) bool {
	if s == "" || len(s) > 64+17 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ValidUserName reports whether name can be a user's (and a client
// certificate file's) name: 1 to 64 letters, digits, '.', '_', '-' and
// '@', not starting with '.'.
func ValidUserName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '@') {
			return false
		}
	}
	return true
}

// ParseIdentity parses a meridian:// URI.
func ParseIdentity(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: %q: %s", ErrIdentity, u.String(), why)
	}
	if u.Scheme != uriScheme {
		return bad("not a meridian:// URI")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("unexpected parts")
	}
	if !validClusterLabel(u.Host) {
		return bad("bad cluster name")
	}
	id := Identity{Cluster: u.Host}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "ca":
		id.Kind = KindCA
	case len(parts) == 2 && parts[0] == "node":
		n, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil || n == 0 || strconv.FormatUint(n, 10) != parts[1] {
			return bad("bad node id")
		}
		id.Kind, id.Node = KindNode, n
	case len(parts) == 2 && parts[0] == "user":
		if !ValidUserName(parts[1]) {
			return bad("bad user name")
		}
		id.Kind, id.User = KindUser, parts[1]
	default:
		return bad("want /ca, /node/<id> or /user/<name>")
	}
	return id, nil
}

// IdentityOf returns the identity a certificate names: it must carry
// exactly one meridian:// URI SAN.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == uriScheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: certificate %q names no meridian:// identity", ErrIdentity, cert.Subject.CommonName)
	case 1:
		return ParseIdentity(found[0])
	}
	return Identity{}, fmt.Errorf("%w: certificate %q names %d meridian:// identities", ErrIdentity, cert.Subject.CommonName, len(found))
}
