package consistency

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/hlc"
)

// Errors returned (wrapped) by DecodeToken, Token.Merge and Token.Observe.
var (
	// ErrMalformedToken: the string is not a session token this version of
	// Meridian can read: empty, too long, not base64url, an unknown format
	// version, truncated, trailing bytes, a checksum mismatch, or contents
	// that no encoder produces.
	ErrMalformedToken = errors.New("malformed session token")
	// ErrForeignCluster: the token was issued by another cluster.
	ErrForeignCluster = errors.New("session token belongs to another cluster")
	// ErrForeignKeyspace: the token was issued for another keyspace of this
	// cluster.
	ErrForeignKeyspace = errors.New("session token belongs to another keyspace")
	// ErrTooManyMarks: the token would name more than MaxMarks replication
	// sources.
	ErrTooManyMarks = errors.New("session token has too many marks")
)

const (
	// MaxMarks is the largest number of marks (replication sources) a
	// token may carry. A keyspace with more shards than this cannot track
	// a session that touched all of them; Observe and Merge refuse to grow
	// a token past it rather than silently dropping a mark, which would
	// break read-your-writes.
	MaxMarks = 1024

	tokenVersion = 1
	hashLen      = 8
	crcLen       = 4
	headerLen    = 1 + 2*hashLen // version, cluster hash, keyspace hash
	// minBinaryLen: header, one-byte epoch, wall, logical, node and count,
	// checksum.
	minBinaryLen = headerLen + 5 + crcLen
	// maxBinaryLen: header, epoch, wall, logical, node, count, MaxMarks
	// marks of two maximal varints each, checksum.
	maxBinaryLen = headerLen + binary.MaxVarintLen64*2 + 5*2 + 2 +
		MaxMarks*2*binary.MaxVarintLen64 + crcLen

	// MaxTokenLen bounds the length, in characters, of an encoded token:
	// it would fit MaxMarks marks whose numbers all took the largest
	// varint. Typical tokens are a few dozen characters. DecodeToken refuses
	// anything longer before decoding it.
	MaxTokenLen = (maxBinaryLen*8 + 5) / 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Mark says that a session has written or observed a replication source
// (a group) up to a log position: a replica serving the session must have
// applied the group's log at least up to Index.
type Mark struct {
	Group uint64
	Index uint64
}

// Token is a session token: what one client session has written or
// observed in one keyspace of one cluster. Presenting it with a read gives
// read-your-writes and monotonic reads in any region.
//
// Token has value semantics: copies are independent, and mutating one
// (Observe, Merge) never changes another, even though copies may share
// memory until then. The zero Token is an empty token for cluster "" and
// keyspace "". A Token is not safe for concurrent mutation.
//
// Tokens are integrity-checked (CRC32C) but not authenticated: a client can
// forge one. A forged token can only name positions or times that do not
// exist yet; servers must bound how long they wait for a token's marks and
// feed its time through hlc.Clock.Update, whose offset check refuses
// timestamps from the far future.
type Token struct {
	cluster  string
	keyspace string
	epoch    uint64
	maxTime  hlc.Timestamp
	// marks is sorted by Group, holds each group at most once and never an
	// Index of zero. It is never modified in place once it may be shared.
	marks []Mark
}

// NewToken returns an empty token for a keyspace of a cluster.
func NewToken(cluster, keyspace string) Token {
	return Token{cluster: cluster, keyspace: keyspace}
}

// Cluster returns the id of the cluster the token belongs to.
func (t Token) Cluster() string { return t.cluster }

// Keyspace returns the name of the keyspace the token belongs to.
func (t Token) Keyspace() string { return t.keyspace }

// Epoch returns the highest replication epoch of the keyspace the session
// has seen.
func (t Token) Epoch() uint64 { return t.epoch }

// MaxTime returns the highest HLC timestamp the session has seen, or the
// zero Timestamp if none.
func (t Token) MaxTime() hlc.Timestamp { return t.maxTime }

// Len returns the number of marks in the token.
func (t Token) Len() int { return len(t.marks) }

// Marks returns a copy of the token's marks, sorted by group.
func (t Token) Marks() []Mark { return slices.Clone(t.marks) }

// Index returns the position the token names for group, if any.
func (t Token) Index(group uint64) (uint64, bool) {
	if i, ok := t.find(group); ok {
		return t.marks[i].Index, true
	}
	return 0, false
}

// Empty reports whether the token names nothing: no marks, epoch zero and
// no time. Any replica satisfies an empty token.
func (t Token) Empty() bool {
	return len(t.marks) == 0 && t.epoch == 0 && t.maxTime.IsZero()
}

// Equal reports whether t and u belong to the same cluster and keyspace and
// hold the same epoch, time and marks.
func (t Token) Equal(u Token) bool {
	return t.cluster == u.cluster && t.keyspace == u.keyspace && t.epoch == u.epoch &&
		t.maxTime == u.maxTime && slices.Equal(t.marks, u.marks)
}

// Clone returns a copy of t that shares no memory with it.
func (t Token) Clone() Token {
	t.marks = slices.Clone(t.marks)
	return t
}

func (t Token) find(group uint64) (int, bool) {
	return slices.BinarySearchFunc(t.marks, group, func(m Mark, g uint64) int {
		return cmp.Compare(m.Group, g)
	})
}

// Observe records that the session has written or read group up to log
// position index. It keeps the larger of index and the position already
// recorded for the group; an index of zero records nothing. It returns an
// error wrapping ErrTooManyMarks, and leaves t unchanged, if the token
// already holds MaxMarks other groups.
func (t *Token) Observe(group, index uint64) error {
	if index == 0 {
		return nil
	}
	i, found := t.find(group)
	if found {
		if index > t.marks[i].Index {
			marks := slices.Clone(t.marks)
			marks[i].Index = index
			t.marks = marks
		}
		return nil
	}
	if len(t.marks) >= MaxMarks {
		return fmt.Errorf("consistency: %w: cannot add group %d to a token of %d marks (limit %d)",
			ErrTooManyMarks, group, len(t.marks), MaxMarks)
	}
	marks := make([]Mark, 0, len(t.marks)+1)
	marks = append(marks, t.marks[:i]...)
	marks = append(marks, Mark{Group: group, Index: index})
	t.marks = append(marks, t.marks[i:]...)
	return nil
}

// ObserveTime records that the session has seen HLC timestamp ts; the token
// keeps the largest timestamp it was given. Servers merge it into their
// clock (hlc.Clock.Update) so that the session's next write is ordered
// after everything it has seen.
func (t *Token) ObserveTime(ts hlc.Timestamp) {
	if t.maxTime.Less(ts) {
		t.maxTime = ts
	}
}

// ObserveEpoch records that the session has seen the keyspace at
// replication epoch epoch; the token keeps the largest epoch it was given.
// A server whose keyspace epoch is older than the token's must learn the
// new epoch before it serves the session.
func (t *Token) ObserveEpoch(epoch uint64) {
	t.epoch = max(t.epoch, epoch)
}

// Merge folds other into t: for every group the larger position, the larger
// epoch and the larger time. It is commutative, associative and idempotent.
// It refuses, leaving t unchanged, a token of another cluster
// (ErrForeignCluster) or keyspace (ErrForeignKeyspace), and a result with
// more than MaxMarks marks (ErrTooManyMarks).
func (t *Token) Merge(other Token) error {
	if other.cluster != t.cluster {
		return fmt.Errorf("consistency: %w: cannot merge a token of cluster %s into one of cluster %s",
			ErrForeignCluster, quote(other.cluster), quote(t.cluster))
	}
	if other.keyspace != t.keyspace {
		return fmt.Errorf("consistency: %w: cannot merge a token of keyspace %s into one of keyspace %s",
			ErrForeignKeyspace, quote(other.keyspace), quote(t.keyspace))
	}
	a, b := t.marks, other.marks
	merged := make([]Mark, 0, max(len(a), len(b)))
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Group < b[0].Group):
			merged, a = append(merged, a[0]), a[1:]
		case len(a) == 0 || b[0].Group < a[0].Group:
			merged, b = append(merged, b[0]), b[1:]
		default:
			merged = append(merged, Mark{Group: a[0].Group, Index: max(a[0].Index, b[0].Index)})
			a, b = a[1:], b[1:]
		}
	}
	if len(merged) > MaxMarks {
		return fmt.Errorf("consistency: %w: merged token would have %d marks (limit %d)",
			ErrTooManyMarks, len(merged), MaxMarks)
	}
	t.marks = merged
	t.ObserveEpoch(other.epoch)
	t.ObserveTime(other.maxTime)
	return nil
}

// Satisfied compares the token with a replica's applied positions and
// returns the marks the replica has not reached yet, in group order, or nil
// if it has reached them all. positions reports the position the replica
// has applied for a source group, and false if the replica does not hold
// that group (its marks are then reported missing). Satisfied does not look
// at the epoch or the time; see ObserveEpoch and ObserveTime.
func (t Token) Satisfied(positions func(group uint64) (index uint64, ok bool)) (missing []Mark) {
	for _, m := range t.marks {
		if idx, ok := positions(m.Group); !ok || idx < m.Index {
			missing = append(missing, m)
		}
	}
	return missing
}

// String describes the token for logs and debugging. It is not the
// encoding; use Encode for that.
func (t Token) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "token{cluster=%s keyspace=%s epoch=%d time=%s marks=[",
		quote(t.cluster), quote(t.keyspace), t.epoch, t.maxTime)
	const shown = 8
	for i, m := range t.marks {
		if i == shown {
			fmt.Fprintf(&b, " ...%d more", len(t.marks)-shown)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(m.Group, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(m.Index, 10))
	}
	b.WriteString("]}")
	return b.String()
}

// Encode returns the token as a compact, opaque, URL-safe string (unpadded
// base64url, at most MaxTokenLen characters). The format is described in
// the package documentation. Encoding is deterministic: equal tokens encode
// to the same string.
func (t Token) Encode() string {
	b := make([]byte, 0, minBinaryLen+16+len(t.marks)*6)
	b = append(b, tokenVersion)
	b = binary.LittleEndian.AppendUint64(b, clusterHash(t.cluster))
	b = binary.LittleEndian.AppendUint64(b, keyspaceHash(t.keyspace))
	b = binary.AppendUvarint(b, t.epoch)
	b = binary.AppendVarint(b, t.maxTime.WallMS)
	b = binary.AppendUvarint(b, uint64(t.maxTime.Logical))
	b = binary.AppendUvarint(b, uint64(t.maxTime.Node))
	b = binary.AppendUvarint(b, uint64(len(t.marks)))
	var prev uint64
	for _, m := range t.marks {
		b = binary.AppendUvarint(b, m.Group-prev) // first: m.Group - 0
		b = binary.AppendUvarint(b, m.Index)
		prev = m.Group
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeToken parses a token produced by Encode and checks that it belongs
// to keyspace of cluster. Errors wrap ErrMalformedToken, ErrForeignCluster
// or ErrForeignKeyspace. Only the canonical encoding is accepted, so for
// every token it returns, Encode gives back s exactly.
func DecodeToken(s, cluster, keyspace string) (Token, error) {
	if s == "" {
		return Token{}, malformed("empty token")
	}
	if len(s) > MaxTokenLen {
		return Token{}, malformed("token is %d characters long, the limit is %d", len(s), MaxTokenLen)
	}
	// The base64 decoder skips CR and LF; refuse them (and everything else
	// outside the alphabet) up front so that each character of a token maps
	// to fixed bits of the binary form and any one changed character is
	// caught by the checksum.
	for i := 0; i < len(s); i++ {
		if !isBase64URL(s[i]) {
			return Token{}, malformed("invalid character %q at offset %d", s[i], i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Token{}, malformed("not unpadded base64url: %v", err)
	}
	if len(b) < minBinaryLen {
		return Token{}, malformed("truncated: %d bytes, need at least %d", len(b), minBinaryLen)
	}
	if b[0] != tokenVersion {
		return Token{}, malformed("unsupported format version %d (this node reads version %d)", b[0], tokenVersion)
	}
	body, sum := b[:len(b)-crcLen], binary.LittleEndian.Uint32(b[len(b)-crcLen:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return Token{}, malformed("checksum mismatch (corrupted or truncated token)")
	}
	if binary.LittleEndian.Uint64(body[1:]) != clusterHash(cluster) {
		return Token{}, fmt.Errorf("consistency: %w: it was not issued by cluster %s", ErrForeignCluster, quote(cluster))
	}
	if binary.LittleEndian.Uint64(body[1+hashLen:]) != keyspaceHash(keyspace) {
		return Token{}, fmt.Errorf("consistency: %w: it was not issued for keyspace %s", ErrForeignKeyspace, quote(keyspace))
	}

	r := reader{b: body[headerLen:]}
	t := Token{cluster: cluster, keyspace: keyspace}
	t.epoch = r.uvarint("epoch")
	t.maxTime.WallMS = r.varint("time")
	t.maxTime.Logical = r.uint32("logical time")
	t.maxTime.Node = r.uint32("time node")
	n := r.uvarint("mark count")
	if r.err == "" {
		switch {
		case n > MaxMarks:
			r.err = fmt.Sprintf("%d marks, the limit is %d", n, MaxMarks)
		case n > uint64(len(r.b)/2): // every mark takes at least two bytes
			r.err = fmt.Sprintf("truncated: %d marks in %d bytes", n, len(r.b))
		}
	}
	if r.err == "" && n > 0 {
		t.marks = make([]Mark, 0, n)
		var prev uint64
		for i := uint64(0); i < n && r.err == ""; i++ {
			delta := r.uvarint("mark group")
			index := r.uvarint("mark index")
			switch {
			case r.err != "":
			case i > 0 && delta == 0:
				r.err = "marks are not in strictly increasing group order"
			case delta > math.MaxUint64-prev:
				r.err = "mark group overflows 64 bits"
			case index == 0:
				r.err = "mark with index zero"
			default:
				prev += delta
				t.marks = append(t.marks, Mark{Group: prev, Index: index})
			}
		}
	}
	if r.err == "" && len(r.b) != 0 {
		r.err = fmt.Sprintf("%d trailing bytes", len(r.b))
	}
	if r.err != "" {
		return Token{}, malformed("%s", r.err)
	}
	return t, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("consistency: %w: %s", ErrMalformedToken, fmt.Sprintf(format, args...))
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// clusterHash and keyspaceHash identify the owner of a token with 64-bit
// FNV-1a hashes of the names, each in its own domain so that a cluster and
// a keyspace with the same name do not collide.
func clusterHash(name string) uint64 { return nameHash("meridian/token/cluster\x00", name) }

func keyspaceHash(name string) uint64 { return nameHash("meridian/token/keyspace\x00", name) }

// nameHash is 64-bit FNV-1a of domain then name, computed in place (the
// hash package's would allocate on every request).
func nameHash(domain, name string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(domain); i++ {
		h = (h ^ uint64(domain[i])) * prime
	}
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	return h
}

// reader decodes the varints of a token body. After the first problem it
// records a description in err and returns zeros.
type reader struct {
	b   []byte
	err string
}

// uvarint reads a minimally encoded unsigned varint.
func (r *reader) uvarint(what string) uint64 {
	if r.err != "" {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		r.err = "truncated " + what
		return 0
	case n < 0:
		r.err = what + " overflows 64 bits"
		return 0
	case n > 1 && r.b[n-1] == 0:
		r.err = "non-minimal encoding of " + what
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads a minimally encoded zig-zag signed varint, as written by
// binary.AppendVarint.
func (r *reader) varint(what string) int64 {
	u := r.uvarint(what)
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (r *reader) uint32(what string) uint32 {
	v := r.uvarint(what)
	if v > math.MaxUint32 && r.err == "" {
		r.err = what + " overflows 32 bits"
		return 0
	}
	return uint32(v)
}
