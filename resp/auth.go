package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// Authentication and authorization of RESP connections (package auth,
// SECURITY.md).
//
// A connection starts anonymous (or open, on a node that does not require
// authentication). It authenticates with a client certificate during the
// TLS handshake, AUTH, or HELLO ... AUTH; a user named "default" that is
// on and nopass lets every connection in as itself, as in Redis. Until it
// has authenticated, a connection is held to tight limits: a command of
// at most preAuthMaxArgs arguments and preAuthMaxCommand bytes (beyond
// them the connection is closed at once, reading nothing more), a
// deadline (Config.AuthTimeout) from its acceptance, and at most
// Config.MaxUnauthenticated such connections at once.
//
// Every command is authorized before it runs (client.authorize, with the
// permission commandPermissions gives it), and every admin command is
// recorded in the node's audit log, allowed or not.

// Limits before authentication (Redis caps unauthenticated commands at
// 10 arguments and 16 KiB bulks).
const (
	preAuthMaxArgs    = 16
	preAuthMaxBulk    = 16 << 10
	preAuthMaxCommand = 64 << 10
	preAuthMaxInline  = 16 << 10
)

func preAuthLimits() limits {
	return limits{maxArgs: preAuthMaxArgs, maxBulk: preAuthMaxBulk, maxCommand: preAuthMaxCommand,
		maxInline: preAuthMaxInline, maxHeaderLen: 64, strict: true}
}

// secure wraps an accepted connection in TLS when the server has
// certificates.
func (s *Server) secure(conn net.Conn) net.Conn {
	if s.tlsConfig == nil {
		return conn
	}
	return tls.Server(conn, s.tlsConfig)
}

// refuseUnauthenticated answers and closes a connection beyond
// MaxUnauthenticated.
func (s *Server) refuseUnauthenticated(conn net.Conn) {
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if s.tlsConfig == nil {
		_, _ = io.WriteString(conn, "-ERR max number of unauthenticated clients reached\r\n")
	}
	_ = conn.Close()
}

// start prepares an accepted connection: its TLS handshake (a verified
// client certificate authenticates its user), the default user, and the
// limits and deadline of a connection that has not authenticated. It
// reports false when the connection should be closed.
func (c *client) start() bool {
	g := c.node().Guard()
	c.principal = g.Anonymous()
	deadline := time.Now().Add(c.s.cfg.AuthTimeout)
	if tc, ok := c.conn.(*tls.Conn); ok {
		ctx, cancel := context.WithDeadline(c.ctx(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.s.log.Debug("TLS handshake failed", "client", c.addr, "err", err)
			return false
		}
		id, has, err := c.s.cfg.Certs.ClientIdentity(tc.ConnectionState(), c.node().Cluster())
		if has && err == nil {
			if p, err := g.LoginCertificate(id); err == nil {
				c.mu.Lock()
				c.setPrincipal(p)
				c.mu.Unlock()
			}
		}
	}
	if !c.authenticated() {
		if u, ok := g.User("default"); ok && u.Enabled && u.NoPass {
			c.mu.Lock()
			c.setPrincipal(auth.Principal{Kind: auth.UserPrincipal, User: "default", Via: "nopass"})
			c.mu.Unlock()
		}
	}
	if !c.authenticated() {
		c.r.lim = preAuthLimits()
		c.setReadDeadline(deadline)
	}
	return true
}

func (c *client) authenticated() bool { return c.principal.Authenticated() }

// setPrincipal makes p the connection's principal (the caller holds c.mu:
// CLIENT LIST reads it from other connections); a connection that
// becomes authenticated gets the server's limits and loses its deadline.
func (c *client) setPrincipal(p auth.Principal) {
	was := c.principal.Authenticated()
	c.principal = p
	c.memo = authzMemo{}
	if was || !p.Authenticated() {
		return
	}
	c.r.lim = c.s.cfg.limits()
	c.setReadDeadline(time.Time{})
	if c.counted {
		c.s.mu.Lock()
		c.s.unauth--
		c.counted = false
		c.s.mu.Unlock()
	}
}

// authzMemo remembers which permissions the connection was found to hold
// on a keyspace, for one version of the metadata: while neither changes,
// a command of a class already allowed skips the lookup.
type authzMemo struct {
	st       *metadata.State
	keyspace string
	allowed  uint32 // bit (Class*2 + keyspace-scoped)
}

func memoBit(p auth.Permission) uint32 {
	b := uint32(p.Class) * 2
	if p.Keyspace {
		b++
	}
	return 1 << b
}

// authorize checks that the connection may run a command (with
// auth.Authorize) and returns the permission it needs.
func (c *client) authorize(name string, args [][]byte) (auth.Permission, error) {
	var perm auth.Permission
	var ok bool
	if c.perm.name == name && name != "" {
		perm, ok = c.perm.p, c.perm.ok
	} else {
		perm, ok = permissionOf(name, args)
		if !subcommanded[name] { // (else it depends on the arguments)
			c.perm.name, c.perm.p, c.perm.ok = name, perm, ok
		}
	}
	if c.principal.Kind == auth.Open {
		return perm, nil
	}
	if !ok {
		c.s.log.Error("a command has no permission entry: refused", "command", name)
		return auth.AdminCluster, replyError(fmt.Sprintf("NOPERM the '%s' command has no permission entry (a bug)", name))
	}
	if perm.Class == auth.Public {
		return perm, nil
	}
	st := c.node().Metadata()
	if c.memo.st == st && c.memo.keyspace == c.keyspace && c.memo.allowed&memoBit(perm) != 0 {
		return perm, nil
	}
	err := c.node().Guard().Authorize(c.principal, perm, c.keyspace)
	if err == nil {
		if c.memo.st != st || c.memo.keyspace != c.keyspace {
			c.memo = authzMemo{st: st, keyspace: c.keyspace}
		}
		c.memo.allowed |= memoBit(perm)
		return perm, nil
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		if c.authenticated() {
			// Its user was removed or disabled meanwhile: it starts over.
			c.principal = auth.Principal{Kind: auth.Anonymous}
			c.memo = authzMemo{}
			c.r.lim = preAuthLimits()
			c.setReadDeadline(time.Now().Add(c.s.cfg.AuthTimeout))
		}
		return perm, errNoAuth
	}
	what := ""
	if perm.Keyspace {
		what = fmt.Sprintf(" on keyspace '%s'", printable([]byte(c.keyspace), 64))
	}
	return perm, replyError(fmt.Sprintf("NOPERM User %s has no permissions to run the '%s' command%s", c.principal.Name(), commandLabel(name, args), what))
}

var (
	errNoAuth    = replyError("NOAUTH Authentication required.")
	errWrongPass = replyError("WRONGPASS invalid username-password pair or user is disabled.")
)

// commandLabel names a command for replies and the audit log: the name,
// and the subcommand of commands that have them.
func commandLabel(name string, args [][]byte) string {
	if len(args) > 1 {
		if _, ok := subcommandPermissions[name+"|"+strings.ToLower(string(args[1]))]; ok || name == "acl" || name == "client" {
			return name + "|" + strings.ToLower(printable(args[1], 32))
		}
	}
	return name
}

// auditCommand records an admin command of an authenticated connection
// in the node's audit log (secrets removed).
func (c *client) auditCommand(name string, args [][]byte, err error) {
	if !c.authenticated() {
		return
	}
	result := "ok"
	switch {
	case err != nil && (strings.HasPrefix(err.Error(), "NOPERM") || strings.HasPrefix(err.Error(), "NOAUTH")):
		result = "denied: " + errorReply(err)
	case err != nil:
		result = "error: " + errorReply(err)
	}
	first := 1
	if name == "acl" || name == "client" {
		first = 2
	}
	var detail []string
	for i := first; i < len(args) && len(strings.Join(detail, " ")) < 512; i++ {
		detail = append(detail, redact(args[i]))
	}
	_ = c.node().Audit(node.AuditRecord{
		Who: c.principal.Name(), Via: c.principal.Via, From: c.addr, Frontend: "resp",
		Action: strings.ToUpper(strings.ReplaceAll(commandLabel(name, args), "|", " ")),
		Detail: strings.Join(detail, " "), Result: result,
	})
}

// redact shows an argument in the audit log, passwords hidden.
func redact(arg []byte) string {
	if len(arg) > 0 && (arg[0] == '>' || arg[0] == '<') {
		return string(arg[0]) + "***"
	}
	return printable(arg, 128)
}
