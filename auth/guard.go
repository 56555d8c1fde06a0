package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/meridian-db/meridian/pki"
)

// ValidUserName reports whether name can be a user's: 1 to 64 letters,
// digits, '.', '_', '-' and '@', not starting with '.' (the names client
// certificates can carry).
func ValidUserName(name string) bool { return pki.ValidUserName(name) }

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Required: requests must be authenticated. False: every principal
	// is Open (a node started without security).
	Required bool
	// Users looks users up.
	Users Users
	// MaxConcurrentVerifications bounds the argon2id verifications
	// running at once (each holds its memory cost). Default GOMAXPROCS,
	// at most 4.
	MaxConcurrentVerifications int
	// CacheTTL is how long a verified password is remembered. Default
	// 5 minutes; negative: never.
	CacheTTL time.Duration
}

// Guard authenticates principals and authorizes their requests for a
// node's front ends.
type Guard struct {
	cfg   GuardConfig
	sem   chan struct{}
	key   [32]byte
	dummy string // a hash verified for unknown users, so they take as long

	mu    sync.Mutex
	cache map[[32]byte]cachedLogin
}

type cachedLogin struct {
	version uint64
	until   time.Time
}

// maxCachedLogins bounds the cache (it is emptied when full).
const maxCachedLogins = 10000

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.MaxConcurrentVerifications <= 0 {
		cfg.MaxConcurrentVerifications = min(runtime.GOMAXPROCS(0), 4)
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Users == nil {
		cfg.Users = func(string) (*User, bool) { return nil, false }
	}
	g := &Guard{cfg: cfg, sem: make(chan struct{}, cfg.MaxConcurrentVerifications), cache: map[[32]byte]cachedLogin{}}
	if _, err := rand.Read(g.key[:]); err != nil {
		panic(fmt.Sprintf("auth: no randomness: %v", err))
	}
	return g
}

// Required reports whether requests must be authenticated.
func (g *Guard) Required() bool { return g.cfg.Required }

// Anonymous is the principal of a connection that has not
// authenticated: Anonymous, or Open when authentication is not required.
func (g *Guard) Anonymous() Principal {
	if !g.cfg.Required {
		return Principal{Kind: Open}
	}
	return Principal{Kind: Anonymous}
}

// Authorize applies Authorize with the guard's users.
func (g *Guard) Authorize(p Principal, perm Permission, keyspace string) error {
	return Authorize(p, perm, keyspace, g.cfg.Users)
}

// User looks a user up.
func (g *Guard) User(name string) (*User, bool) { return g.cfg.Users(name) }

// Login authenticates a user by password. It fails with
// ErrBadCredentials whatever the reason (unknown or disabled user, wrong
// password, the root user, which has no password).
func (g *Guard) Login(ctx context.Context, user, password string) (Principal, error) {
	u, ok := g.cfg.Users(user)
	if user == RootUser || !ok || !u.Enabled || len(password) > MaxPasswordLength {
		_ = g.verify(ctx, []string{g.dummyHash()}, password)
		return Principal{}, ErrBadCredentials
	}
	p := Principal{Kind: UserPrincipal, User: user, Via: "password"}
	if u.NoPass {
		return p, nil
	}
	key := g.cacheKey(user, password)
	now := time.Now()
	g.mu.Lock()
	c, hit := g.cache[key]
	g.mu.Unlock()
	if hit && c.version == u.Version && now.Before(c.until) {
		return p, nil
	}
	if !g.verify(ctx, u.Passwords, password) {
		if err := ctx.Err(); err != nil {
			return Principal{}, err
		}
		return Principal{}, ErrBadCredentials
	}
	if g.cfg.CacheTTL > 0 {
		g.mu.Lock()
		if len(g.cache) >= maxCachedLogins {
			g.cache = map[[32]byte]cachedLogin{}
		}
		g.cache[key] = cachedLogin{version: u.Version, until: now.Add(g.cfg.CacheTTL)}
		g.mu.Unlock()
	}
	return p, nil
}

// verify checks password against hashes, one verification slot at a
// time.
func (g *Guard) verify(ctx context.Context, hashes []string, password string) bool {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-g.sem }()
	for _, h := range hashes {
		if VerifyPassword(h, password) {
			return true
		}
	}
	return false
}

func (g *Guard) dummyHash() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dummy == "" {
		g.dummy, _ = HashPassword("no such user", DefaultHashParams)
	}
	return g.dummy
}

// cacheKey is a keyed hash of the user and password: the cache never
// holds a password, and its keys are worthless outside this process.
func (g *Guard) cacheKey(user, password string) [32]byte {
	m := hmac.New(sha256.New, g.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// LoginToken authenticates a bearer token (ErrBadToken when it does not
// decode, ErrBadCredentials when it is unknown, expired or its user
// disabled).
func (g *Guard) LoginToken(token string, now time.Time) (Principal, error) {
	user, id, secret, err := DecodeToken(token)
	if err != nil {
		return Principal{}, err
	}
	u, ok := g.cfg.Users(user)
	if !ok || !u.Enabled {
		return Principal{}, ErrBadCredentials
	}
	for _, t := range u.Tokens {
		if t.ID == id && now.UnixMilli() < t.ExpiresMS && t.matches(secret) {
			return Principal{Kind: UserPrincipal, User: user, Via: "token"}, nil
		}
	}
	return Principal{}, ErrBadCredentials
}

// LoginCertificate returns the principal of a verified client
// certificate: its user (root, or one that exists and is enabled), or
// its node.
func (g *Guard) LoginCertificate(id pki.Identity) (Principal, error) {
	switch id.Kind {
	case pki.KindNode:
		return Principal{Kind: NodePrincipal, Node: id.Node, Via: "certificate"}, nil
	case pki.KindUser:
		if id.User != RootUser {
			if u, ok := g.cfg.Users(id.User); !ok || !u.Enabled {
				return Principal{}, ErrBadCredentials
			}
		}
		return Principal{Kind: UserPrincipal, User: id.User, Via: "certificate"}, nil
	}
	return Principal{}, ErrBadCredentials
}
