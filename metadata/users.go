package metadata

import (
	"fmt"
	"slices"

	"github.com/meridian-db/meridian/auth"
)

// Users are kept in the metadata, so that they are the same in every
// region (see package auth). Commands carry no password: the proposer
// turns password rules into the hashes they add or remove
// (auth.PrepareRules), and every replica applies the same result.

// UserCommand is a change of one user (op "user").
type UserCommand struct {
	Name string `json:"name"`
	// Rules are prepared ACL rules (auth.PrepareRules); the user is made
	// (disabled, without permission) if absent.
	Rules []string `json:"rules,omitempty"`
	// Delete removes the user (nothing if absent).
	Delete bool `json:"delete,omitempty"`
	// AddToken records a bearer token; tokens expired at NowMS are
	// dropped, and the oldest beyond auth.MaxTokens.
	AddToken *auth.Token `json:"add_token,omitempty"`
	// RevokeToken removes the token of that id.
	RevokeToken string `json:"revoke_token,omitempty"`
	NowMS       int64  `json:"now_ms,omitempty"`
}

// User returns a user by name (callers must not modify it).
func (s *State) User(name string) (*auth.User, bool) {
	u, ok := s.Users[name]
	return u, ok
}

func applyUser(st *State, index uint64, c *UserCommand) error {
	if c == nil || !auth.ValidUserName(c.Name) || c.Name == auth.RootUser {
		return fmt.Errorf("%w: user command without a valid user name", ErrBadCommand)
	}
	if st.Users == nil {
		st.Users = map[string]*auth.User{}
	}
	if c.Delete {
		delete(st.Users, c.Name)
		return nil
	}
	u, ok := st.Users[c.Name]
	if !ok {
		if c.AddToken != nil || c.RevokeToken != "" {
			return fmt.Errorf("%w: %q", auth.ErrUnknownUser, c.Name)
		}
		u = auth.NewUser(c.Name)
	}
	u, err := auth.ApplyPrepared(u, c.Rules)
	if err != nil {
		return err
	}
	if c.RevokeToken != "" {
		u.Tokens = slices.DeleteFunc(u.Tokens, func(t auth.Token) bool { return t.ID == c.RevokeToken })
	}
	if c.AddToken != nil {
		u.Tokens = slices.DeleteFunc(u.Tokens, func(t auth.Token) bool { return t.ExpiresMS <= c.NowMS })
		u.Tokens = append(u.Tokens, *c.AddToken)
		if n := len(u.Tokens); n > auth.MaxTokens {
			u.Tokens = u.Tokens[n-auth.MaxTokens:]
		}
	}
	u.Version = index
	st.Users[c.Name] = u
	return nil
}
