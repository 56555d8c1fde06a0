package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Bearer tokens: "mdt1." user (base64url) "." id (16 hex digits) "."
// secret (32 random bytes, base64url). The metadata keeps the id and the
// SHA-256 of the secret; the token itself is shown once, when made.
const tokenPrefix = "mdt1."

// maxTokenLen bounds what DecodeToken looks at.
const maxTokenLen = 256

// NewToken makes a token for user, valid from nowMS for ttlMS, and its
// record.
func NewToken(user string, nowMS, ttlMS int64) (string, Token, error) {
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, err
	}
	sum := sha256.Sum256(secret[:])
	rec := Token{ID: hex.EncodeToString(id[:]), Hash: hex.EncodeToString(sum[:]), CreatedMS: nowMS, ExpiresMS: nowMS + ttlMS}
	enc := base64.RawURLEncoding
	return tokenPrefix + enc.EncodeToString([]byte(user)) + "." + rec.ID + "." + enc.EncodeToString(secret[:]), rec, nil
}

// DecodeToken splits a token into its user, id and secret. Anything that
// is not such a token is ErrBadToken.
func DecodeToken(s string) (user, id string, secret []byte, err error) {
	if len(s) > maxTokenLen {
		return "", "", nil, fmt.Errorf("%w: too long", ErrBadToken)
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return "", "", nil, fmt.Errorf("%w: want %s<user>.<id>.<secret>", ErrBadToken, tokenPrefix)
	}
	enc := base64.RawURLEncoding
	u, err := enc.DecodeString(parts[0])
	if err != nil || !ValidUserName(string(u)) {
		return "", "", nil, fmt.Errorf("%w: bad user", ErrBadToken)
	}
	if b, err := hex.DecodeString(parts[1]); err != nil || len(b) != 8 || hex.EncodeToString(b) != parts[1] {
		return "", "", nil, fmt.Errorf("%w: bad id", ErrBadToken)
	}
	sec, err := enc.DecodeString(parts[2])
	if err != nil || len(sec) != 32 {
		return "", "", nil, fmt.Errorf("%w: bad secret", ErrBadToken)
	}
	return string(u), parts[1], sec, nil
}

// matches reports whether secret is the token's, in constant time.
func (t Token) matches(secret []byte) bool {
	sum := sha256.Sum256(secret)
	want, err := hex.DecodeString(t.Hash)
	return err == nil && subtle.ConstantTimeCompare(sum[:], want) == 1
}
