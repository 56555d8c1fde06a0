package backup

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// Every object of a backup (manifests, bases, log segments) is stored in
// an envelope that checks itself (docs/backup-format.md):
//
//	magic     "MRDNBKUP"
//	version   1 byte (objectVersion)
//	kind      1 byte ('m' manifest, 'b' base part, 's' log segment)
//	flags     1 byte (bit 0: encrypted)
//	nonce     12 bytes, if encrypted
//	body      the payload, or its AES-256-GCM sealing, the header and the
//	          object's name as additional data (an object renamed or moved
//	          to another place does not open)
//	sha256    32 bytes, of everything before it
//
// The trailing checksum finds a truncated or altered object without the
// key; the manifests also record each object's SHA-256 and size, so an
// object replaced by another whole one is found too.
const (
	objectMagic    = "MRDNBKUP"
	objectVersion  = 1
	objectHeadLen  = len(objectMagic) + 3
	flagEncrypted  = 1 << 0
	nonceLen       = 12
	checksumLen    = sha256.Size
	kindManifest   = 'm'
	kindBase       = 'b'
	kindSegment    = 's'
	keyLen         = 32
	keyCheckString = "meridian-backup key check"
)

// sealObject wraps a payload in its envelope.
func sealObject(name string, kind byte, payload, key []byte) ([]byte, error) {
	head := make([]byte, 0, objectHeadLen+nonceLen+len(payload)+16+checksumLen)
	head = append(head, objectMagic...)
	head = append(head, objectVersion, kind, 0)
	if len(key) == 0 {
		out := append(head, payload...)
		sum := sha256.Sum256(out)
		return append(out, sum[:]...), nil
	}
	head[objectHeadLen-1] |= flagEncrypted
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("backup: nonce: %w", err)
	}
	aad := append(append([]byte{}, head...), name...)
	out := append(head, nonce...)
	out = aead.Seal(out, nonce, payload, aad)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// checkObject checks an object's envelope and checksum (no key needed)
// and returns its kind and whether it is encrypted.
func checkObject(name string, data []byte) (kind byte, encrypted bool, err error) {
	if len(data) < objectHeadLen+checksumLen {
		return 0, false, fmt.Errorf("%w: %s: %d bytes, too short for an object (truncated?)", ErrCorrupt, name, len(data))
	}
	if string(data[:len(objectMagic)]) != objectMagic {
		return 0, false, fmt.Errorf("%w: %s: not a Meridian backup object", ErrCorrupt, name)
	}
	body, sum := data[:len(data)-checksumLen], data[len(data)-checksumLen:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return 0, false, fmt.Errorf("%w: %s: checksum mismatch (truncated or altered)", ErrCorrupt, name)
	}
	if v := data[len(objectMagic)]; v != objectVersion {
		return 0, false, fmt.Errorf("%w: %s: object version %d (this binary knows %d)", ErrFormat, name, v, objectVersion)
	}
	kind, flags := data[len(objectMagic)+1], data[len(objectMagic)+2]
	if flags&^flagEncrypted != 0 {
		return 0, false, fmt.Errorf("%w: %s: unknown flags %#x", ErrFormat, name, flags)
	}
	return kind, flags&flagEncrypted != 0, nil
}

// openObject checks an object and returns its payload.
func openObject(name string, want byte, data, key []byte) ([]byte, error) {
	kind, encrypted, err := checkObject(name, data)
	if err != nil {
		return nil, err
	}
	if kind != want {
		return nil, fmt.Errorf("%w: %s: a %q object where a %q was expected", ErrCorrupt, name, kind, want)
	}
	body := data[objectHeadLen : len(data)-checksumLen]
	switch {
	case !encrypted && len(key) == 0:
		return body, nil
	case !encrypted:
		return nil, fmt.Errorf("%w: %s is not encrypted but a key was given", ErrKey, name)
	case len(key) == 0:
		return nil, fmt.Errorf("%w: %s is encrypted: give the key", ErrKey, name)
	}
	if len(body) < nonceLen {
		return nil, fmt.Errorf("%w: %s: no room for a nonce", ErrCorrupt, name)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	aad := append(append([]byte{}, data[:objectHeadLen]...), name...)
	out, err := aead.Open(nil, body[:nonceLen], body[nonceLen:], aad)
	if err != nil {
		// The checksum held: the bytes are as written, so the key is not
		// the one they were sealed with (or the object was moved).
		return nil, fmt.Errorf("%w: %s does not open with this key (another key, or an object moved from elsewhere)", ErrKey, name)
	}
	return out, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != keyLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d (AES-256)", ErrKey, len(key), keyLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return cipher.NewGCM(block)
}

// keyCheck identifies a key without revealing it (recorded in the
// target's format record, so a wrong key is refused before any work).
func keyCheck(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(keyCheckString))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// ParseKey reads a 32-byte key written as 64 hex digits or base64, or
// given as the raw 32 bytes.
func ParseKey(s []byte) ([]byte, error) {
	t := strings.TrimSpace(string(s))
	if b, err := hex.DecodeString(t); err == nil && len(b) == keyLen {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(t); err == nil && len(b) == keyLen {
		return b, nil
	}
	if len(s) == keyLen {
		return append([]byte(nil), s...), nil
	}
	return nil, fmt.Errorf("%w: want 32 bytes, as 64 hex digits, base64 or raw", ErrKey)
}

// KeyFromFile reads a key from a file (see ParseKey). Nothing of the key
// appears in errors.
func KeyFromFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrKey, err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// KeyFromEnv reads a key from an environment variable (see ParseKey);
// nil, nil if it is not set.
func KeyFromEnv(name string) ([]byte, error) {
	v := os.Getenv(name)
	if v == "" {
		return nil, nil
	}
	k, err := ParseKey([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", name, err)
	}
	return k, nil
}

// Checksum is the hex SHA-256 of an object's stored bytes, as manifests
// record it.
func Checksum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
