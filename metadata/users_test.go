package metadata

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/storage"
)

// TestUserCommands: users are made by prepared rules, versioned by the
// index that changed them, kept across a reopen, given and relieved of
// tokens (expired ones dropped), and removed; the root user and bad names
// are refused.
func TestUserCommands(t *testing.T) {
	fs := vfs.NewMem()
	db, err := storage.Open("/d", storage.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(index uint64, c UserCommand) error {
		t.Helper()
		b := db.NewBatch()
		v, err := s.Apply(b, index, Command{Op: "user", User: &c}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		if err := s.Applied(index, false); err != nil {
			t.Fatal(err)
		}
		return v.(ApplyResult).Err
	}
	ops := auth.PasswordOps{
		Hash: func(pw string) (string, error) {
			return auth.HashPassword(pw, auth.HashParams{MemoryKiB: 64, Time: 1, Threads: 1})
		},
		Verify: auth.VerifyPassword,
	}
	rules, err := auth.PrepareRules(auth.NewUser("alice"), []string{"on", ">pw", "~orders", "+@read"}, ops)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(5, UserCommand{Name: "alice", Rules: rules}); err != nil {
		t.Fatal(err)
	}
	u, ok := s.State().User("alice")
	if !ok || !u.Enabled || u.Version != 5 || !u.Allows(auth.Read, "orders", false) || !auth.VerifyPassword(u.Passwords[0], "pw") {
		t.Fatalf("alice: %+v", u)
	}
	if strings.Contains(string(Command{Op: "user", User: &UserCommand{Name: "alice", Rules: rules}}.Encode()), `"pw"`) {
		t.Fatal("the command holds the password")
	}
	// Tokens: an expired one goes when another is added.
	if err := apply(6, UserCommand{Name: "alice", AddToken: &auth.Token{ID: "a", ExpiresMS: 100}, NowMS: 50}); err != nil {
		t.Fatal(err)
	}
	if err := apply(7, UserCommand{Name: "alice", AddToken: &auth.Token{ID: "b", ExpiresMS: 500}, NowMS: 200}); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.State().User("alice"); len(u.Tokens) != 1 || u.Tokens[0].ID != "b" || u.Version != 7 {
		t.Fatalf("tokens %+v", u.Tokens)
	}
	if err := apply(8, UserCommand{Name: "alice", RevokeToken: "b"}); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.State().User("alice"); len(u.Tokens) != 0 {
		t.Fatalf("token not revoked: %+v", u.Tokens)
	}
	// Kept across a reopen.
	s2, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := s2.State().User("alice"); !ok || u.Version != 8 {
		t.Fatalf("after a reopen: %+v", u)
	}
	// Refusals.
	for _, c := range []UserCommand{{Name: auth.RootUser}, {Name: "../x"}, {Name: "bob", AddToken: &auth.Token{ID: "x"}}} {
		if err := apply(9, c); err == nil {
			t.Fatalf("command %+v applied", c)
		}
	}
	if err := apply(10, UserCommand{Name: "alice", Rules: []string{">raw"}}); !errors.Is(err, auth.ErrBadRule) {
		t.Fatalf("an unprepared password: %v", err)
	}
	if err := apply(11, UserCommand{Name: "alice", Delete: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.State().User("alice"); ok {
		t.Fatal("alice not removed")
	}
	_ = db.Close()
}
