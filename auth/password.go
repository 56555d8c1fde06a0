package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// HashParams are argon2id's costs.
type HashParams struct {
	MemoryKiB uint32 `json:"memory_kib"`
	Time      uint32 `json:"time"`
	Threads   uint8  `json:"threads"`
}

// DefaultHashParams follow OWASP's argon2id minimum: 19 MiB, two passes,
// one lane (tens of milliseconds a verification).
var DefaultHashParams = HashParams{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// Bounds on the costs a stored hash may ask for: a hash is data, and one
// that asks for gigabytes must not take the node down.
const (
	maxMemoryKiB = 1 << 20
	maxTime      = 16
	saltBytes    = 16
	keyBytes     = 32
)

func (p HashParams) valid() bool {
	return p.MemoryKiB >= 8*uint32(max(p.Threads, 1)) && p.MemoryKiB <= maxMemoryKiB &&
		p.Time >= 1 && p.Time <= maxTime && p.Threads >= 1
}

// HashPassword returns the argon2id hash of pw in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash). Zero params mean
// DefaultHashParams.
func HashPassword(pw string, p HashParams) (string, error) {
	if p == (HashParams{}) {
		p = DefaultHashParams
	}
	if !p.valid() {
		return "", fmt.Errorf("auth: argon2id parameters out of range: %+v", p)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyBytes)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether pw is the password of the hash. A hash
// that does not parse, or asks for costs out of bounds, matches nothing.
func VerifyPassword(hash, pw string) bool {
	p, salt, key, ok := parseHash(hash)
	if !ok {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

func parseHash(h string) (HashParams, []byte, []byte, bool) {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return HashParams{}, nil, nil, false
	}
	var p HashParams
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); n != 3 || err != nil || threads > 255 {
		return HashParams{}, nil, nil, false
	}
	p.Threads = uint8(threads)
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	key, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 || !p.valid() {
		return HashParams{}, nil, nil, false
	}
	return p, salt, key, true
}
