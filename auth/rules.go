package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// PasswordOps hashes and checks passwords for ApplyRules (HashPassword
// and VerifyPassword, or cheaper ones in tests).
type PasswordOps struct {
	Hash   func(pw string) (string, error)
	Verify func(hash, pw string) bool
}

// ApplyRules applies ACL rules, in Redis's syntax, to a copy of u and
// returns it (u is not changed). The rules Meridian knows:
//
//	on | off                      enable or disable the user
//	>password | <password         add a password | remove one
//	nopass | resetpass            any password authenticates | no password does
//	~pattern | allkeys | resetkeys  keyspace patterns of the root grant (allkeys is ~*)
//	+@read +@write +@admin +@all  classes of the root grant; -@... takes them away
//	allcommands | nocommands      +@all | -@all
//	(~pattern +@class ...)        a selector: one more grant
//	clearselectors                drop the selectors
//	reset                         off, no password, no token, no grant
//	resetchannels | allchannels   accepted, with no effect (Meridian has no channels)
//
// Other rules (single commands, key patterns inside keyspaces,
// channels, hashes given directly) are refused with ErrBadRule. An error
// never quotes a password.
func ApplyRules(u *User, rules []string, ops PasswordOps) (*User, error) {
	out := u.Clone()
	for _, r := range rules {
		if err := applyRule(out, r, ops); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Prepared password rules: "#+<hash>" adds a hash, "#-<hash>" removes
// one. Users cannot give them (ApplyRules refuses '#').
const (
	preparedAdd    = "#+"
	preparedRemove = "#-"
)

// PrepareRules checks rules against u (as ApplyRules) and returns them
// with every password rule replaced by the hash it adds or removes, so
// that applying them (ApplyPrepared) is deterministic and cheap: the
// metadata's replicas apply the result, and no password travels through
// the raft log.
func PrepareRules(u *User, rules []string, ops PasswordOps) ([]string, error) {
	work := u.Clone()
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		switch {
		case strings.HasPrefix(r, ">"):
			before := slices.Clone(work.Passwords)
			if err := applyRule(work, r, ops); err != nil {
				return nil, err
			}
			for _, h := range work.Passwords {
				if !slices.Contains(before, h) {
					out = append(out, preparedAdd+h)
				}
			}
			if len(work.Passwords) == len(before) {
				out = append(out, "-nopass-") // already a password: only nopass goes
			}
		case strings.HasPrefix(r, "<"):
			before := slices.Clone(work.Passwords)
			if err := applyRule(work, r, ops); err != nil {
				return nil, err
			}
			for _, h := range before {
				if !slices.Contains(work.Passwords, h) {
					out = append(out, preparedRemove+h)
				}
			}
		default:
			if err := applyRule(work, r, ops); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// ApplyPrepared applies rules made by PrepareRules to a copy of u.
func ApplyPrepared(u *User, rules []string) (*User, error) {
	out := u.Clone()
	for _, r := range rules {
		switch {
		case strings.HasPrefix(r, preparedAdd):
			h := r[len(preparedAdd):]
			out.NoPass = false
			if slices.Contains(out.Passwords, h) {
				continue
			}
			if len(out.Passwords) >= MaxPasswords {
				return nil, fmt.Errorf("%w: the user has %d passwords already", ErrBadRule, MaxPasswords)
			}
			out.Passwords = append(out.Passwords, h)
		case strings.HasPrefix(r, preparedRemove):
			if i := slices.Index(out.Passwords, r[len(preparedRemove):]); i >= 0 {
				out.Passwords = slices.Delete(out.Passwords, i, i+1)
			}
		case r == "-nopass-":
			out.NoPass = false
		case strings.HasPrefix(r, ">") || strings.HasPrefix(r, "<"):
			return nil, fmt.Errorf("%w: a password rule that was not prepared", ErrBadRule)
		default:
			if err := applyRule(out, r, PasswordOps{}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func badRule(rule, why string) error {
	if strings.HasPrefix(rule, ">") || strings.HasPrefix(rule, "<") {
		rule = rule[:1] + "***"
	}
	if len(rule) > 64 {
		rule = rule[:64] + "..."
	}
	return fmt.Errorf("%w: %q: %s", ErrBadRule, rule, why)
}

func applyRule(u *User, r string, ops PasswordOps) error {
	if r == "" {
		return badRule(r, "empty rule")
	}
	switch r[0] {
	case '>':
		pw := r[1:]
		switch {
		case pw == "":
			return badRule(r, "an empty password (use nopass for a user without one)")
		case len(pw) > MaxPasswordLength:
			return badRule(r, fmt.Sprintf("a password longer than %d bytes", MaxPasswordLength))
		}
		for _, h := range u.Passwords {
			if ops.Verify(h, pw) {
				u.NoPass = false
				return nil // already one of its passwords
			}
		}
		if len(u.Passwords) >= MaxPasswords {
			return badRule(r, fmt.Sprintf("the user has %d passwords already (remove one with <password)", MaxPasswords))
		}
		h, err := ops.Hash(pw)
		if err != nil {
			return err
		}
		u.Passwords = append(u.Passwords, h)
		u.NoPass = false
		return nil
	case '<':
		pw := r[1:]
		for i, h := range u.Passwords {
			if ops.Verify(h, pw) {
				u.Passwords = slices.Delete(u.Passwords, i, i+1)
				return nil
			}
		}
		return badRule(r, "the user has no such password")
	case '#', '!':
		return badRule(r, "passwords are given in clear (>password) and kept as argon2id hashes; SHA-256 hashes are not accepted")
	case '~':
		return addPattern(&u.Grants[0], r)
	case '%':
		return badRule(r, "read- and write-only key patterns are not supported: grant classes per keyspace with selectors, (~ks +@read)")
	case '&':
		return badRule(r, "Meridian has no channels")
	case '+', '-':
		return applyClass(&u.Grants[0], r)
	case '(':
		if !strings.HasSuffix(r, ")") {
			return badRule(r, "a selector ends with ')'")
		}
		if len(u.Grants) >= MaxGrants {
			return badRule(r, fmt.Sprintf("at most %d selectors", MaxGrants-1))
		}
		var g Grant
		for _, inner := range strings.Fields(r[1 : len(r)-1]) {
			var err error
			switch strings.ToLower(inner) {
			case "allkeys":
				err = addPattern(&g, "~*")
			case "resetkeys":
				g.Keyspaces = nil
			case "allcommands":
				g.Classes = CanAll
			case "nocommands":
				g.Classes = 0
			case "resetchannels", "allchannels":
			default:
				switch inner[0] {
				case '~':
					err = addPattern(&g, inner)
				case '+', '-':
					err = applyClass(&g, inner)
				default:
					err = badRule(inner, "a selector holds ~patterns and +@classes only")
				}
			}
			if err != nil {
				return err
			}
		}
		u.Grants = append(u.Grants, g)
		return nil
	}
	switch strings.ToLower(r) {
	case "on":
		u.Enabled = true
	case "off":
		u.Enabled = false
	case "nopass":
		u.NoPass, u.Passwords = true, nil
	case "resetpass":
		u.NoPass, u.Passwords = false, nil
	case "allkeys":
		return addPattern(&u.Grants[0], "~*")
	case "resetkeys":
		u.Grants[0].Keyspaces = nil
	case "allcommands":
		u.Grants[0].Classes = CanAll
	case "nocommands":
		u.Grants[0].Classes = 0
	case "clearselectors":
		u.Grants = u.Grants[:1]
	case "reset":
		u.Enabled, u.NoPass, u.Passwords, u.Tokens, u.Grants = false, false, nil, nil, []Grant{{}}
	case "resetchannels", "allchannels":
	default:
		return badRule(r, "unknown rule")
	}
	return nil
}

func addPattern(g *Grant, r string) error {
	p := r[1:]
	if p == "" || len(p) > 128 {
		return badRule(r, "a keyspace pattern of 1 to 128 characters")
	}
	if _, err := path.Match(p, ""); err != nil {
		return badRule(r, "malformed pattern")
	}
	if slices.Contains(g.Keyspaces, p) {
		return nil
	}
	if len(g.Keyspaces) >= MaxPatterns {
		return badRule(r, fmt.Sprintf("at most %d patterns a grant", MaxPatterns))
	}
	g.Keyspaces = append(g.Keyspaces, p)
	return nil
}

func applyClass(g *Grant, r string) error {
	cat, ok := strings.CutPrefix(r[1:], "@")
	if !ok {
		return badRule(r, "Meridian grants classes of commands (+@read, +@write, +@admin, +@all), not single commands")
	}
	var bits ClassSet
	switch strings.ToLower(cat) {
	case "read":
		bits = CanRead
	case "write":
		bits = CanWrite
	case "admin":
		bits = CanAdmin
	case "all":
		bits = CanAll
	default:
		return badRule(r, "unknown class (read, write, admin or all)")
	}
	if r[0] == '+' {
		g.Classes |= bits
	} else {
		g.Classes &^= bits
	}
	return nil
}

// Categories are the classes ACL CAT lists.
var Categories = []string{"read", "write", "admin"}
