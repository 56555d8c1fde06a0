package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// ClassSet is a set of the classes a grant gives: read, write, admin.
type ClassSet uint8

// The classes a grant can give.
const (
	CanRead ClassSet = 1 << iota
	CanWrite
	CanAdmin
	CanAll = CanRead | CanWrite | CanAdmin
)

func classBit(c Class) ClassSet {
	switch c {
	case Read:
		return CanRead
	case Write:
		return CanWrite
	case Admin:
		return CanAdmin
	}
	return 0
}

// Grant gives its classes on the keyspaces its patterns match.
type Grant struct {
	Keyspaces []string `json:"keyspaces,omitempty"`
	Classes   ClassSet `json:"classes,omitempty"`
}

// Token is a bearer token's record: only the SHA-256 of its secret.
type Token struct {
	ID        string `json:"id"`
	Hash      string `json:"hash"` // hex SHA-256 of the secret
	CreatedMS int64  `json:"created_ms"`
	ExpiresMS int64  `json:"expires_ms"`
}

// User is a user as the cluster's metadata keeps it.
type User struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// NoPass: any password (or none) authenticates the user (Redis's
	// nopass).
	NoPass bool `json:"nopass,omitempty"`
	// Passwords are argon2id hashes (HashPassword); several during a
	// password rotation.
	Passwords []string `json:"passwords,omitempty"`
	// Grants: the first is the root grant (the ~patterns and +@classes
	// of the rules), the others the selectors' (pattern +@class).
	Grants []Grant `json:"grants"`
	Tokens []Token `json:"tokens,omitempty"`
	// Version is the metadata index of the user's last change (set by
	// the metadata when applied).
	Version uint64 `json:"version,omitempty"`
}

// Limits of one user.
const (
	MaxPasswords      = 8
	MaxGrants         = 16
	MaxPatterns       = 64
	MaxTokens         = 16
	MaxPasswordLength = 512
)

// NewUser returns a user as Redis's ACL SETUSER makes one: disabled, no
// password, no permission.
func NewUser(name string) *User {
	return &User{Name: name, Grants: []Grant{{}}}
}

// Clone returns a deep copy.
func (u *User) Clone() *User {
	c := *u
	c.Passwords = slices.Clone(u.Passwords)
	c.Tokens = slices.Clone(u.Tokens)
	c.Grants = make([]Grant, len(u.Grants))
	for i, g := range u.Grants {
		c.Grants[i] = Grant{Keyspaces: slices.Clone(g.Keyspaces), Classes: g.Classes}
	}
	if len(c.Grants) == 0 {
		c.Grants = []Grant{{}}
	}
	return &c
}

// Allows reports whether a grant of the user gives class on keyspace;
// with exact, the pattern must be keyspace itself (cluster
// administration asks for the pattern "*").
func (u *User) Allows(c Class, keyspace string, exact bool) bool {
	bit := classBit(c)
	for _, g := range u.Grants {
		if g.Classes&bit == 0 {
			continue
		}
		for _, p := range g.Keyspaces {
			if (exact && p == keyspace) || (!exact && matchKeyspace(p, keyspace)) {
				return true
			}
		}
	}
	return false
}

// Flags are the user's flags as ACL GETUSER shows them.
func (u *User) Flags() []string {
	f := []string{"off"}
	if u.Enabled {
		f[0] = "on"
	}
	if u.NoPass {
		f = append(f, "nopass")
	}
	return f
}

// PasswordFingerprints name the user's passwords without revealing
// anything of them: 8 hex digits of a SHA-256 of each stored hash.
func (u *User) PasswordFingerprints() []string {
	out := make([]string, len(u.Passwords))
	for i, h := range u.Passwords {
		sum := sha256.Sum256([]byte(h))
		out[i] = hex.EncodeToString(sum[:4])
	}
	return out
}

// CommandsString renders a grant's classes in ACL syntax ("+@read +@write",
// "+@all", "-@all").
func (g Grant) CommandsString() string {
	switch g.Classes {
	case CanAll:
		return "+@all"
	case 0:
		return "-@all"
	}
	var parts []string
	for _, c := range []struct {
		bit  ClassSet
		name string
	}{{CanRead, "read"}, {CanWrite, "write"}, {CanAdmin, "admin"}} {
		if g.Classes&c.bit != 0 {
			parts = append(parts, "+@"+c.name)
		}
	}
	return "-@all " + strings.Join(parts, " ")
}

// KeysString renders a grant's patterns in ACL syntax ("~a ~b").
func (g Grant) KeysString() string {
	parts := make([]string, len(g.Keyspaces))
	for i, p := range g.Keyspaces {
		parts[i] = "~" + p
	}
	return strings.Join(parts, " ")
}

// Describe renders the user as ACL LIST does: name, flags, password
// fingerprints (#), patterns, classes and selectors. It holds no secret.
func (u *User) Describe() string {
	parts := append([]string{"user", u.Name}, u.Flags()...)
	for _, f := range u.PasswordFingerprints() {
		parts = append(parts, "#"+f)
	}
	if len(u.Grants) > 0 {
		if k := u.Grants[0].KeysString(); k != "" {
			parts = append(parts, k)
		} else {
			parts = append(parts, "resetkeys")
		}
		parts = append(parts, u.Grants[0].CommandsString())
		for _, g := range u.Grants[1:] {
			parts = append(parts, "("+strings.TrimSpace(g.KeysString()+" "+g.CommandsString())+")")
		}
	}
	return strings.Join(parts, " ")
}
