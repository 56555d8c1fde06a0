package auth

import (
	"errors"
	"fmt"
	"path"
)

// Errors. Front ends map them to their protocol's answers (NOAUTH,
// NOPERM, WRONGPASS in RESP; 401 and 403 in HTTP).
var (
	// ErrUnauthenticated: the request needs an authenticated principal.
	ErrUnauthenticated = errors.New("auth: authentication required")
	// ErrDenied: the principal lacks the permission.
	ErrDenied = errors.New("auth: permission denied")
	// ErrBadCredentials: unknown user, wrong password or token, disabled
	// user. The error never says which.
	ErrBadCredentials = errors.New("auth: invalid username-password pair or user is disabled")
	// ErrBadRule: an ACL rule that does not parse or is not supported.
	ErrBadRule = errors.New("auth: bad ACL rule")
	// ErrBadToken: a bearer token that does not decode.
	ErrBadToken = errors.New("auth: malformed token")
	// ErrRootUser: the root user cannot be changed or removed.
	ErrRootUser = errors.New("auth: the root user is built in")
	// ErrUnknownUser: no such user (user management).
	ErrUnknownUser = errors.New("auth: no such user")
)

// RootUser is the built-in user holding every permission, reachable
// with a client certificate only.
const RootUser = "root"

// Class is what a permission is about.
type Class uint8

// Classes. The zero Class is no class at all: a Permission left zero is
// refused to everyone (but an open principal), so that a command or route
// whose permission was forgotten is not public.
const (
	Unset Class = iota
	Public
	Connected
	Read
	Write
	Admin
	Join
)

var classNames = [...]string{"unset", "public", "connected", "read", "write", "admin", "join"}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", c)
}

// Permission is what a command or route needs.
type Permission struct {
	Class Class
	// Keyspace: the permission is about the request's keyspace (Read,
	// Write, keyspace Admin); false for cluster Admin.
	Keyspace bool
}

// The permissions.
var (
	PublicAccess  = Permission{Class: Public}
	Authenticated = Permission{Class: Connected}
	ReadKeyspace  = Permission{Class: Read, Keyspace: true}
	WriteKeyspace = Permission{Class: Write, Keyspace: true}
	AdminKeyspace = Permission{Class: Admin, Keyspace: true}
	AdminCluster  = Permission{Class: Admin}
	NodeJoin      = Permission{Class: Join}
)

func (p Permission) String() string {
	if p.Class == Admin && !p.Keyspace {
		return "admin (cluster)"
	}
	if p.Keyspace {
		return p.Class.String() + " (keyspace)"
	}
	return p.Class.String()
}

// PrincipalKind tells principals apart.
type PrincipalKind uint8

// Kinds of principal.
const (
	// Anonymous: not authenticated (yet).
	Anonymous PrincipalKind = iota
	// Open: a node without security; everything is allowed.
	Open
	// UserPrincipal: a user (root included).
	UserPrincipal
	// NodePrincipal: a node, by its certificate.
	NodePrincipal
)

// Principal is who makes a request.
type Principal struct {
	Kind PrincipalKind
	User string // UserPrincipal
	Node uint64 // NodePrincipal
	// Via says how it was authenticated: "password", "token",
	// "certificate", or "" (anonymous, open).
	Via string
}

// Name is how logs and the audit log name the principal.
func (p Principal) Name() string {
	switch p.Kind {
	case Open:
		return "(insecure)"
	case UserPrincipal:
		return p.User
	case NodePrincipal:
		return fmt.Sprintf("node %d", p.Node)
	}
	return "(anonymous)"
}

// Authenticated reports whether the principal may do anything beyond
// authenticating.
func (p Principal) Authenticated() bool { return p.Kind != Anonymous }

// Users looks a user up (in the cluster's metadata).
type Users func(name string) (*User, bool)

// Authorize is the one check every front end makes before it runs a
// command or route: may p do what perm says on keyspace (ignored unless
// perm.Keyspace)? It returns nil, or an error wrapping
// ErrUnauthenticated or ErrDenied that names the principal and the
// permission (never a secret). A user's record is looked up at every
// call, so a change (a permission taken away, a user disabled or
// removed) applies to connections already open.
func Authorize(p Principal, perm Permission, keyspace string, users Users) error {
	if perm.Class == Public || p.Kind == Open {
		return nil
	}
	if perm.Class == Unset || perm.Class > Join {
		return fmt.Errorf("%w: no permission is recorded for this request", ErrDenied)
	}
	switch p.Kind {
	case Anonymous:
		return ErrUnauthenticated
	case NodePrincipal:
		if perm.Class == Connected || perm.Class == Join {
			return nil
		}
		return fmt.Errorf("%w: node %d holds no %s permission", ErrDenied, p.Node, perm)
	case UserPrincipal:
	default:
		return ErrUnauthenticated
	}
	if p.User == RootUser {
		return nil
	}
	u, ok := users(p.User)
	if !ok || !u.Enabled {
		return fmt.Errorf("%w: user %s no longer exists or is disabled", ErrUnauthenticated, p.User)
	}
	switch {
	case perm.Class == Connected:
		return nil
	case perm.Class == Join || (perm.Class == Admin && !perm.Keyspace):
		if u.Allows(Admin, "*", true) {
			return nil
		}
		return fmt.Errorf("%w: user %s is not a cluster admin (an admin grant on every keyspace, ~* +@admin)", ErrDenied, p.User)
	case perm.Keyspace:
		if u.Allows(perm.Class, keyspace, false) {
			return nil
		}
		return fmt.Errorf("%w: user %s has no %s permission on keyspace %q", ErrDenied, p.User, perm.Class, keyspace)
	}
	return fmt.Errorf("%w: user %s: %s", ErrDenied, p.User, perm)
}

// matchKeyspace reports whether a keyspace pattern matches a keyspace
// name (a malformed pattern matches nothing; patterns are checked when
// rules are applied).
func matchKeyspace(pattern, keyspace string) bool {
	ok, err := path.Match(pattern, keyspace)
	return err == nil && ok
}
