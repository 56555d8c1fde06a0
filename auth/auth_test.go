package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/pki"
)

// cheap are argon2id costs small enough for tests.
var cheap = HashParams{MemoryKiB: 64, Time: 1, Threads: 1}

var ops = PasswordOps{
	Hash:   func(pw string) (string, error) { return HashPassword(pw, cheap) },
	Verify: VerifyPassword,
}

func mustRules(t *testing.T, u *User, rules ...string) *User {
	t.Helper()
	out, err := ApplyRules(u, rules, ops)
	if err != nil {
		t.Fatalf("rules %q: %v", rules, err)
	}
	return out
}

func TestApplyRules(t *testing.T) {
	u := mustRules(t, NewUser("alice"), "on", ">s3cret", "~orders", "~tenant-*", "+@read", "(~logs +@write)")
	if !u.Enabled || len(u.Passwords) != 1 || strings.Contains(u.Passwords[0], "s3cret") {
		t.Fatalf("user %+v", u)
	}
	if got := u.Describe(); !strings.HasPrefix(got, "user alice on #") || !strings.HasSuffix(got, "~orders ~tenant-* -@all +@read (~logs -@all +@write)") || strings.Contains(got, "s3cret") {
		t.Fatalf("describe: %s", got)
	}
	for _, c := range []struct {
		class Class
		ks    string
		want  bool
	}{
		{Read, "orders", true}, {Read, "tenant-7", true}, {Write, "orders", false},
		{Write, "logs", true}, {Read, "logs", false}, {Read, "other", false}, {Admin, "orders", false},
	} {
		if got := u.Allows(c.class, c.ks, false); got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.class, c.ks, got, c.want)
		}
	}
	// The same password again changes nothing; another is added; one is
	// removed; removing an unknown one is an error that does not quote it.
	if v := mustRules(t, u, ">s3cret"); len(v.Passwords) != 1 {
		t.Fatalf("the same password twice: %d hashes", len(v.Passwords))
	}
	v := mustRules(t, u, ">n3w", "<s3cret")
	if len(v.Passwords) != 1 || !VerifyPassword(v.Passwords[0], "n3w") {
		t.Fatal("password rotation")
	}
	if _, err := ApplyRules(v, []string{"<wrong-one"}, ops); !errors.Is(err, ErrBadRule) || strings.Contains(err.Error(), "wrong-one") {
		t.Fatalf("removing an unknown password: %v", err)
	}
	if len(u.Passwords) != 1 || !VerifyPassword(u.Passwords[0], "s3cret") {
		t.Fatal("ApplyRules changed its input")
	}
	// nopass, resetpass, reset, clearselectors, allkeys, allcommands, -@.
	if v := mustRules(t, u, "nopass"); !v.NoPass || len(v.Passwords) != 0 {
		t.Fatal("nopass")
	}
	if v := mustRules(t, u, "clearselectors"); len(v.Grants) != 1 || v.Allows(Write, "logs", false) {
		t.Fatal("clearselectors")
	}
	if v := mustRules(t, u, "reset"); v.Enabled || len(v.Passwords) != 0 || len(v.Grants) != 1 || v.Grants[0].Classes != 0 || len(v.Grants[0].Keyspaces) != 0 {
		t.Fatalf("reset: %+v", v)
	}
	a := mustRules(t, NewUser("admin"), "on", "allkeys", "allcommands", "-@write")
	if !a.Allows(Admin, "*", true) || a.Allows(Write, "x", false) || !a.Allows(Read, "x", false) {
		t.Fatalf("allkeys allcommands -@write: %s", a.Describe())
	}
	for _, bad := range []string{"", "+get", "-set", "~", "~[", "%R~x", "&ch", "#abcd", "(~x +get)", "(~x", "+@keyspace", "bogus", ">"} {
		if _, err := ApplyRules(u, []string{bad}, ops); !errors.Is(err, ErrBadRule) {
			t.Errorf("rule %q: %v, want ErrBadRule", bad, err)
		}
	}
	if _, err := ApplyRules(u, []string{">" + strings.Repeat("x", MaxPasswordLength+1)}, ops); !errors.Is(err, ErrBadRule) || strings.Contains(err.Error(), "xxxx") {
		t.Fatalf("a long password: %v", err)
	}
	for _, ok := range []string{"resetchannels", "allchannels", "ON", "+@ALL"} {
		mustRules(t, u, ok)
	}
}

func TestAuthorize(t *testing.T) {
	users := map[string]*User{}
	add := func(name string, rules ...string) {
		users[name] = mustRules(t, NewUser(name), rules...)
	}
	add("reader", "on", "nopass", "~*", "+@read")
	add("orders", "on", "nopass", "~orders", "+@read", "+@write")
	add("ksadmin", "on", "nopass", "~tenant-*", "+@admin")
	add("admin", "on", "nopass", "~*", "+@all")
	add("off", "off", "nopass", "~*", "+@all")
	lookup := func(n string) (*User, bool) { u, ok := users[n]; return u, ok }
	user := func(n string) Principal { return Principal{Kind: UserPrincipal, User: n} }
	type check struct {
		p    Principal
		perm Permission
		ks   string
		want error
	}
	for i, c := range []check{
		{Principal{}, PublicAccess, "", nil},
		{user(RootUser), Permission{}, "", ErrDenied},
		{user("admin"), Permission{}, "", ErrDenied},
		{Principal{}, Authenticated, "", ErrUnauthenticated},
		{Principal{}, ReadKeyspace, "x", ErrUnauthenticated},
		{Principal{Kind: Open}, AdminCluster, "", nil},
		{Principal{Kind: NodePrincipal, Node: 2}, NodeJoin, "", nil},
		{Principal{Kind: NodePrincipal, Node: 2}, ReadKeyspace, "x", ErrDenied},
		{Principal{Kind: NodePrincipal, Node: 2}, AdminCluster, "", ErrDenied},
		{user(RootUser), AdminCluster, "", nil},
		{user("reader"), ReadKeyspace, "any", nil},
		{user("reader"), WriteKeyspace, "any", ErrDenied},
		{user("reader"), Authenticated, "", nil},
		{user("reader"), AdminKeyspace, "any", ErrDenied},
		{user("orders"), WriteKeyspace, "orders", nil},
		{user("orders"), ReadKeyspace, "other", ErrDenied},
		{user("ksadmin"), AdminKeyspace, "tenant-1", nil},
		{user("ksadmin"), AdminKeyspace, "orders", ErrDenied},
		{user("ksadmin"), AdminCluster, "", ErrDenied},
		{user("ksadmin"), NodeJoin, "", ErrDenied},
		{user("admin"), AdminCluster, "", nil},
		{user("admin"), NodeJoin, "", nil},
		{user("off"), Authenticated, "", ErrUnauthenticated},
		{user("gone"), ReadKeyspace, "x", ErrUnauthenticated},
	} {
		err := Authorize(c.p, c.perm, c.ks, lookup)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%d: %s %s on %q: %v, want %v", i, c.p.Name(), c.perm, c.ks, err, c.want)
		}
	}
}

func TestPasswordHashes(t *testing.T) {
	h, err := HashPassword("pw", cheap)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("pw", cheap)
	if h == h2 || !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hashes %s %s (salted, PHC format)", h, h2)
	}
	if !VerifyPassword(h, "pw") || VerifyPassword(h, "pW") || VerifyPassword(h, "") {
		t.Fatal("verification")
	}
	// A stored hash asking for absurd costs matches nothing (and costs
	// nothing).
	greedy := strings.Replace(h, "m=64,t=1,p=1", "m=4194304,t=1,p=1", 1)
	slow := strings.Replace(h, "m=64,t=1,p=1", "m=64,t=1000,p=1", 1)
	for _, bad := range []string{greedy, slow, "", "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", h + "$"} {
		if VerifyPassword(bad, "pw") {
			t.Fatalf("hash %q verified", bad)
		}
	}
	if _, err := HashPassword("x", HashParams{MemoryKiB: 1 << 30, Time: 1, Threads: 1}); err == nil {
		t.Fatal("hashing with absurd costs")
	}
}

func TestGuardLogins(t *testing.T) {
	users := map[string]*User{}
	set := func(u *User) { u.Version++; users[u.Name] = u }
	set(mustRules(t, NewUser("alice"), "on", ">pw1", "~*", "+@read"))
	set(mustRules(t, NewUser("bob"), "off", ">pw2"))
	set(mustRules(t, NewUser("nopw"), "on", "nopass"))
	g := NewGuard(GuardConfig{Required: true, Users: func(n string) (*User, bool) { u, ok := users[n]; return u, ok }})
	ctx := context.Background()
	if p, err := g.Login(ctx, "alice", "pw1"); err != nil || p.User != "alice" || p.Via != "password" {
		t.Fatalf("alice: %+v %v", p, err)
	}
	for _, c := range [][2]string{{"alice", "pw2"}, {"bob", "pw2"}, {"carol", "pw1"}, {RootUser, ""}, {"alice", ""}} {
		if _, err := g.Login(ctx, c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s: %v, want ErrBadCredentials", c[0], err)
		}
	}
	if _, err := g.Login(ctx, "nopw", "anything"); err != nil {
		t.Fatal(err)
	}
	// The password is changed: the remembered login of the old one no
	// longer counts.
	set(mustRules(t, users["alice"], "<pw1", ">pw3"))
	if _, err := g.Login(ctx, "alice", "pw1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := g.Login(ctx, "alice", "pw3"); err != nil {
		t.Fatal(err)
	}
	// Tokens.
	now := time.Now()
	tok, rec, err := NewToken("alice", now.UnixMilli(), time.Hour.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	a := users["alice"].Clone()
	a.Tokens = append(a.Tokens, rec)
	set(a)
	if p, err := g.LoginToken(tok, now); err != nil || p.User != "alice" || p.Via != "token" {
		t.Fatalf("token: %+v %v", p, err)
	}
	if _, err := g.LoginToken(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("expired token: %v", err)
	}
	forged := tok[:len(tok)-4] + "AAAA"
	if _, err := g.LoginToken(forged, now); !errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrBadToken) {
		t.Fatalf("forged token: %v", err)
	}
	if _, err := g.LoginToken("Bearer nonsense", now); !errors.Is(err, ErrBadToken) {
		t.Fatalf("nonsense token: %v", err)
	}
	// Certificates.
	if p, err := g.LoginCertificate(pki.Identity{Kind: pki.KindUser, User: RootUser}); err != nil || p.User != RootUser {
		t.Fatalf("root certificate: %+v %v", p, err)
	}
	if _, err := g.LoginCertificate(pki.Identity{Kind: pki.KindUser, User: "bob"}); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a disabled user's certificate: %v", err)
	}
	if p, err := g.LoginCertificate(pki.Identity{Kind: pki.KindNode, Node: 3}); err != nil || p.Kind != NodePrincipal || p.Node != 3 {
		t.Fatalf("node certificate: %+v %v", p, err)
	}
	if open := NewGuard(GuardConfig{}); open.Anonymous().Kind != Open || g.Anonymous().Kind != Anonymous {
		t.Fatal("anonymous principals")
	}
}

func TestTokenRoundTrip(t *testing.T) {
	tok, rec, err := NewToken("svc.backup@eu", 1000, 60000)
	if err != nil {
		t.Fatal(err)
	}
	user, id, secret, err := DecodeToken(tok)
	if err != nil || user != "svc.backup@eu" || id != rec.ID || !rec.matches(secret) || rec.ExpiresMS != 61000 {
		t.Fatalf("decode: %s %s %v", user, id, err)
	}
}

// FuzzDecodeToken: any input decodes or fails with ErrBadToken, never
// panics, and what decodes names a valid user, a 16-digit id and a
// 32-byte secret.
func FuzzDecodeToken(f *testing.F) {
	tok, _, _ := NewToken("alice", 0, 1)
	f.Add(tok)
	f.Add("mdt1.YWxpY2U.0011223344556677.AAAA")
	f.Add("mdt1...")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		user, id, secret, err := DecodeToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v is not ErrBadToken", err)
			}
			return
		}
		if !ValidUserName(user) || len(id) != 16 || len(secret) != 32 {
			t.Fatalf("decoded %q %q %d bytes", user, id, len(secret))
		}
	})
}

// FuzzApplyRules: rules never panic; an accepted set leaves a user
// within its limits, with a root grant and patterns that parse; a
// refused one leaves the input alone and its error quotes no password.
func FuzzApplyRules(f *testing.F) {
	f.Add("on >pw ~orders +@read (~logs +@write)")
	f.Add("reset nopass allkeys allcommands -@admin")
	f.Add("<pw ~[ +get %R~x")
	f.Add("(~a ~b +@all) clearselectors resetkeys")
	fast := PasswordOps{
		Hash:   func(pw string) (string, error) { return "h:" + pw, nil },
		Verify: func(h, pw string) bool { return h == "h:"+pw },
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules := strings.Fields(s)
		base := NewUser("u")
		base.Passwords = []string{"h:pw"}
		before := base.Describe()
		u, err := ApplyRules(base, rules, fast)
		if base.Describe() != before {
			t.Fatal("the input changed")
		}
		if err != nil {
			if !errors.Is(err, ErrBadRule) {
				t.Fatalf("error %v is not ErrBadRule", err)
			}
			for _, r := range rules {
				if (r[0] == '>' || r[0] == '<') && len(r) > 12 && strings.Contains(err.Error(), r[1:]) {
					t.Fatalf("the error %q quotes a password", err)
				}
			}
			return
		}
		if len(u.Grants) == 0 || len(u.Grants) > MaxGrants || len(u.Passwords) > MaxPasswords {
			t.Fatalf("limits: %+v", u)
		}
		for _, g := range u.Grants {
			if len(g.Keyspaces) > MaxPatterns || g.Classes&^CanAll != 0 {
				t.Fatalf("grant %+v", g)
			}
			for _, p := range g.Keyspaces {
				if p == "" {
					t.Fatal("empty pattern")
				}
			}
		}
	})
}

// TestPreparedRules: prepared rules carry hashes, not passwords, and
// applying them gives what ApplyRules gives.
func TestPreparedRules(t *testing.T) {
	base := mustRules(t, NewUser("alice"), "on", ">old", "~a", "+@read")
	rules := []string{">new", "<old", "~b", "(~c +@write)", ">new"}
	prepared, err := PrepareRules(base, rules, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range prepared {
		if strings.Contains(r, "new") || strings.Contains(r, "old") {
			t.Fatalf("prepared rule %q holds a password", r)
		}
	}
	got, err := ApplyPrepared(base, prepared)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Passwords) != 1 || !VerifyPassword(got.Passwords[0], "new") || !got.Allows(Read, "b", false) || !got.Allows(Write, "c", false) {
		t.Fatalf("applied: %s", got.Describe())
	}
	if _, err := ApplyPrepared(base, []string{">raw"}); !errors.Is(err, ErrBadRule) {
		t.Fatalf("an unprepared password rule: %v", err)
	}
	if _, err := PrepareRules(base, []string{"#+" + base.Passwords[0]}, ops); !errors.Is(err, ErrBadRule) {
		t.Fatalf("a user giving a prepared rule: %v", err)
	}
	// A nopass user given a password it already has... keeps one and
	// drops nopass.
	np := mustRules(t, base, "nopass")
	p2, _ := PrepareRules(np, []string{">x"}, ops)
	if got, _ := ApplyPrepared(np, p2); got.NoPass || len(got.Passwords) != 1 {
		t.Fatalf("nopass then a password: %s", got.Describe())
	}
}
