package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
)

// Users are kept in the metadata (metadata/users.go): the same in every
// region, changed through the system group. Passwords are hashed here,
// by the node that takes the change, and only their hashes are proposed.

// DefaultTokenTTL is a bearer token's lifetime when none is asked for;
// MaxTokenTTL the longest one.
const (
	DefaultTokenTTL = 12 * time.Hour
	MaxTokenTTL     = 90 * 24 * time.Hour
)

func (n *Node) lookupUser(name string) (*auth.User, bool) { return n.meta.State().User(name) }

// User returns a user (nil, false if there is none). Callers must not
// modify it.
func (n *Node) User(name string) (*auth.User, bool) { return n.lookupUser(name) }

// Users returns every user, sorted by name.
func (n *Node) Users() []*auth.User {
	st := n.meta.State()
	out := make([]*auth.User, 0, len(st.Users))
	for _, u := range st.Users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b *auth.User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (n *Node) passwordOps() auth.PasswordOps {
	return auth.PasswordOps{
		Hash:   func(pw string) (string, error) { return auth.HashPassword(pw, n.cfg.PasswordHash) },
		Verify: auth.VerifyPassword,
	}
}

func checkUserName(name string) error {
	switch {
	case name == auth.RootUser:
		return auth.ErrRootUser
	case !auth.ValidUserName(name):
		return fmt.Errorf("%w: bad user name %q (1 to 64 letters, digits, '.', '_', '-', '@')", auth.ErrBadRule, name)
	}
	return nil
}

// SetUser applies ACL rules (auth.ApplyRules) to a user, making it if
// absent (disabled, without permission, as Redis does), and returns the
// user once this node's metadata holds the change.
func (n *Node) SetUser(ctx context.Context, name string, rules []string) (*auth.User, error) {
	if err := checkUserName(name); err != nil {
		return nil, err
	}
	if err := n.freshUsers(ctx); err != nil {
		return nil, err
	}
	cur, ok := n.lookupUser(name)
	if !ok {
		cur = auth.NewUser(name)
	}
	prepared, err := auth.PrepareRules(cur, rules, n.passwordOps())
	if err != nil {
		return nil, err
	}
	if err := n.proposeUser(ctx, metadata.UserCommand{Name: name, Rules: prepared}); err != nil {
		return nil, err
	}
	u, _ := n.lookupUser(name)
	return u, nil
}

// DeleteUser removes a user; it reports whether there was one.
func (n *Node) DeleteUser(ctx context.Context, name string) (bool, error) {
	if err := checkUserName(name); err != nil {
		return false, err
	}
	if err := n.freshUsers(ctx); err != nil {
		return false, err
	}
	if _, ok := n.lookupUser(name); !ok {
		return false, nil
	}
	return true, n.proposeUser(ctx, metadata.UserCommand{Name: name, Delete: true})
}

// IssueToken makes a bearer token for user, valid for ttl (0:
// DefaultTokenTTL), and returns it: the only time it is shown.
func (n *Node) IssueToken(ctx context.Context, user string, ttl time.Duration) (string, auth.Token, error) {
	if err := checkUserName(user); err != nil {
		return "", auth.Token{}, err
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Second || ttl > MaxTokenTTL {
		return "", auth.Token{}, fmt.Errorf("%w: a token lives between 1s and %v", auth.ErrBadRule, MaxTokenTTL)
	}
	if err := n.freshUsers(ctx); err != nil {
		return "", auth.Token{}, err
	}
	if _, ok := n.lookupUser(user); !ok {
		return "", auth.Token{}, fmt.Errorf("%w: %q", auth.ErrUnknownUser, user)
	}
	now := time.Now().UnixMilli()
	tok, rec, err := auth.NewToken(user, now, ttl.Milliseconds())
	if err != nil {
		return "", auth.Token{}, err
	}
	if err := n.proposeUser(ctx, metadata.UserCommand{Name: user, AddToken: &rec, NowMS: now}); err != nil {
		return "", auth.Token{}, err
	}
	return tok, rec, nil
}

// RevokeToken removes a user's token; it reports whether there was one.
func (n *Node) RevokeToken(ctx context.Context, user, id string) (bool, error) {
	if err := n.freshUsers(ctx); err != nil {
		return false, err
	}
	u, ok := n.lookupUser(user)
	if !ok || !slices.ContainsFunc(u.Tokens, func(t auth.Token) bool { return t.ID == id }) {
		return false, nil
	}
	return true, n.proposeUser(ctx, metadata.UserCommand{Name: user, RevokeToken: id})
}

// freshUsers brings this node's metadata up to the latest committed
// change (a read index confirmed by the metadata group's leader), so
// that a change of a user starts from what every node agrees on.
func (n *Node) freshUsers(ctx context.Context) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if _, err := n.host.ReadIndex(ctx, metadata.SystemGroup); err != nil {
		return fmt.Errorf("node: reading the users: %w", err)
	}
	return nil
}

// proposeUser commits a user change and waits until this node's
// metadata holds it, so that the next request here sees it.
func (n *Node) proposeUser(ctx context.Context, c metadata.UserCommand) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "user", User: &c}.Encode())
	if err != nil {
		return err
	}
	if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
		return res.Err
	}
	if err := n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.Index }); err != nil {
		return fmt.Errorf("%w: the change is committed but not yet applied here: %w", raftgroup.ErrTimeout, err)
	}
	return nil
}
