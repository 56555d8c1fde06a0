package consistency

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-db/meridian/hlc"
	"pgregory.net/rapid"
)

const (
	testCluster  = "c-7f3a9e"
	testKeyspace = "orders"
)

// drawToken draws a token for cluster and keyspace with arbitrary contents.
func drawToken(t *rapid.T, cluster, keyspace string, label string) Token {
	tok := NewToken(cluster, keyspace)
	tok.ObserveEpoch(rapid.Uint64().Draw(t, label+".epoch"))
	if rapid.Bool().Draw(t, label+".hasTime") {
		tok.ObserveTime(hlc.Timestamp{
			WallMS:  rapid.Int64().Draw(t, label+".wall"),
			Logical: rapid.Uint32().Draw(t, label+".logical"),
			Node:    rapid.Uint32().Draw(t, label+".node"),
		})
	}
	// Small group ids collide often, which exercises the max-merge.
	group := rapid.OneOf(rapid.Uint64Range(0, 20), rapid.Uint64())
	n := rapid.IntRange(0, 40).Draw(t, label+".marks")
	for i := 0; i < n; i++ {
		if err := tok.Observe(group.Draw(t, label+".group"), rapid.Uint64().Draw(t, label+".index")); err != nil {
			t.Fatal(err)
		}
	}
	return tok
}

// fataler is what checkInvariants needs of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func checkInvariants(t fataler, tok Token) {
	t.Helper()
	if len(tok.marks) > MaxMarks {
		t.Fatalf("%d marks", len(tok.marks))
	}
	for i, m := range tok.marks {
		if m.Index == 0 {
			t.Fatalf("mark %d has index 0: %v", i, tok)
		}
		if i > 0 && tok.marks[i-1].Group >= m.Group {
			t.Fatalf("marks not strictly sorted: %v", tok.marks)
		}
	}
}

func TestTokenRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cluster := rapid.String().Draw(t, "cluster")
		keyspace := rapid.String().Draw(t, "keyspace")
		tok := drawToken(t, cluster, keyspace, "tok")
		checkInvariants(t, tok)
		s := tok.Encode()
		if len(s) > MaxTokenLen {
			t.Fatalf("encoded length %d > MaxTokenLen %d", len(s), MaxTokenLen)
		}
		for i := 0; i < len(s); i++ {
			if !isBase64URL(s[i]) {
				t.Fatalf("encoding %q is not URL-safe", s)
			}
		}
		got, err := DecodeToken(s, cluster, keyspace)
		if err != nil {
			t.Fatalf("DecodeToken(%q): %v", s, err)
		}
		if !got.Equal(tok) {
			t.Fatalf("round trip:\n got %v\nwant %v", got, tok)
		}
		if again := got.Encode(); again != s {
			t.Fatalf("re-encoding differs: %q vs %q", again, s)
		}
	})
}

func TestTokenObserve(t *testing.T) {
	tok := NewToken(testCluster, testKeyspace)
	if !tok.Empty() || tok.Len() != 0 {
		t.Fatalf("new token not empty: %v", tok)
	}
	must(t, tok.Observe(7, 10))
	must(t, tok.Observe(3, 5))
	must(t, tok.Observe(7, 4)) // lower: ignored
	must(t, tok.Observe(9, 0)) // zero: ignored
	must(t, tok.Observe(3, 6))
	want := []Mark{{3, 6}, {7, 10}}
	if got := tok.Marks(); !slices.Equal(got, want) {
		t.Fatalf("marks = %v, want %v", got, want)
	}
	if idx, ok := tok.Index(7); !ok || idx != 10 {
		t.Fatalf("Index(7) = %d, %v", idx, ok)
	}
	if _, ok := tok.Index(9); ok {
		t.Fatal("Index(9) should be absent")
	}
	ts := hlc.Timestamp{WallMS: 1700000000000, Logical: 3, Node: 2}
	tok.ObserveTime(ts)
	tok.ObserveTime(hlc.Timestamp{WallMS: 1600000000000})
	if tok.MaxTime() != ts {
		t.Fatalf("MaxTime = %v, want %v", tok.MaxTime(), ts)
	}
	tok.ObserveEpoch(4)
	tok.ObserveEpoch(2)
	if tok.Epoch() != 4 {
		t.Fatalf("Epoch = %d", tok.Epoch())
	}
	if tok.Cluster() != testCluster || tok.Keyspace() != testKeyspace || tok.Empty() {
		t.Fatalf("accessors: %v", tok)
	}
	// The returned marks are a copy.
	tok.Marks()[0].Index = 99
	if idx, _ := tok.Index(3); idx != 6 {
		t.Fatal("Marks() exposed the token's memory")
	}
	if s := tok.String(); !strings.Contains(s, "3:6 7:10") || !strings.Contains(s, `"orders"`) {
		t.Fatalf("String() = %s", s)
	}
}

func TestTokenValueSemantics(t *testing.T) {
	a := NewToken(testCluster, testKeyspace)
	for g := uint64(0); g < 10; g++ {
		must(t, a.Observe(g*2, 5))
	}
	b := a // copy shares memory until mutated
	must(t, b.Observe(4, 50))
	must(t, b.Observe(5, 50))
	if idx, _ := a.Index(4); idx != 5 {
		t.Fatalf("mutating a copy changed the original: %v", a)
	}
	if _, ok := a.Index(5); ok {
		t.Fatalf("mutating a copy changed the original: %v", a)
	}
	c := a
	must(t, c.Merge(b))
	if idx, _ := a.Index(4); idx != 5 || a.Len() != 10 {
		t.Fatalf("merging into a copy changed the original: %v", a)
	}
}

func TestTokenMaxMarks(t *testing.T) {
	tok := NewToken(testCluster, testKeyspace)
	for g := uint64(0); g < MaxMarks; g++ {
		must(t, tok.Observe(math.MaxUint64-g, math.MaxUint64))
	}
	tok.ObserveEpoch(math.MaxUint64)
	tok.ObserveTime(hlc.Timestamp{WallMS: math.MinInt64, Logical: math.MaxUint32, Node: math.MaxUint32})
	before := tok.Clone()
	if err := tok.Observe(1, 1); !errors.Is(err, ErrTooManyMarks) {
		t.Fatalf("Observe past the limit: %v", err)
	}
	must(t, tok.Observe(math.MaxUint64, 1)) // existing group: fine
	if !tok.Equal(before) {
		t.Fatal("refused Observe changed the token")
	}
	other := NewToken(testCluster, testKeyspace)
	must(t, other.Observe(1, 1))
	if err := tok.Merge(other); !errors.Is(err, ErrTooManyMarks) {
		t.Fatalf("Merge past the limit: %v", err)
	}
	if !tok.Equal(before) {
		t.Fatal("refused Merge changed the token")
	}

	// The largest possible token still fits in MaxTokenLen and decodes.
	s := tok.Encode()
	if len(s) > MaxTokenLen {
		t.Fatalf("largest token is %d characters, MaxTokenLen is %d", len(s), MaxTokenLen)
	}
	got, err := DecodeToken(s, testCluster, testKeyspace)
	if err != nil || !got.Equal(tok) {
		t.Fatalf("largest token: %v", err)
	}
	t.Logf("token with %d marks: %d characters (MaxTokenLen %d)", MaxMarks, len(s), MaxTokenLen)
}

func TestTokenCompact(t *testing.T) {
	tok := NewToken(testCluster, testKeyspace)
	tok.ObserveEpoch(3)
	tok.ObserveTime(hlc.Timestamp{WallMS: 1767225600123, Logical: 2, Node: 5})
	for g := uint64(1); g <= 16; g++ {
		must(t, tok.Observe(1000+g, 100000+g))
	}
	s := tok.Encode()
	// 16 shards: ~4 bytes per mark on top of a 33-byte fixed part.
	if len(s) > 140 {
		t.Fatalf("token for 16 groups is %d characters: %s", len(s), s)
	}
	empty := NewToken(testCluster, testKeyspace).Encode()
	if len(empty) > 40 {
		t.Fatalf("empty token is %d characters: %s", len(empty), empty)
	}
	t.Logf("16-group token: %d chars, empty token: %d chars", len(s), len(empty))
}

func TestTokenForeign(t *testing.T) {
	tok := NewToken(testCluster, testKeyspace)
	must(t, tok.Observe(1, 2))
	s := tok.Encode()
	tests := []struct {
		cluster, keyspace string
		want              error
	}{
		{"c-other", testKeyspace, ErrForeignCluster},
		{"", testKeyspace, ErrForeignCluster},
		{"C-7F3A9E", testKeyspace, ErrForeignCluster},
		{"c-other", "users", ErrForeignCluster},
		{testCluster, "users", ErrForeignKeyspace},
		{testCluster, "", ErrForeignKeyspace},
		{testCluster, "orders ", ErrForeignKeyspace},
		// The names are hashed in separate domains.
		{testKeyspace, testCluster, ErrForeignCluster},
	}
	for _, tt := range tests {
		_, err := DecodeToken(s, tt.cluster, tt.keyspace)
		if !errors.Is(err, tt.want) {
			t.Errorf("DecodeToken(cluster %q, keyspace %q) = %v, want %v", tt.cluster, tt.keyspace, err, tt.want)
		}
		for _, other := range []error{ErrMalformedToken, ErrForeignCluster, ErrForeignKeyspace} {
			if other != tt.want && errors.Is(err, other) {
				t.Errorf("error %v also wraps %v", err, other)
			}
		}
	}
	// Merge refuses tokens of another cluster or keyspace.
	for _, tt := range tests[:len(tests)-1] {
		other := NewToken(tt.cluster, tt.keyspace)
		before := tok.Clone()
		if err := tok.Merge(other); !errors.Is(err, tt.want) {
			t.Errorf("Merge(cluster %q, keyspace %q) = %v, want %v", tt.cluster, tt.keyspace, err, tt.want)
		}
		if !tok.Equal(before) {
			t.Errorf("refused Merge changed the token")
		}
	}
}

// rawToken builds a binary token body by hand and seals it with a valid
// checksum, to test what the checksum cannot catch.
func rawToken(fields ...[]byte) string {
	b := []byte{tokenVersion}
	b = binary.LittleEndian.AppendUint64(b, clusterHash(testCluster))
	b = binary.LittleEndian.AppendUint64(b, keyspaceHash(testKeyspace))
	for _, f := range fields {
		b = append(b, f...)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return base64.RawURLEncoding.EncodeToString(b)
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func TestDecodeTokenMalformed(t *testing.T) {
	valid := NewToken(testCluster, testKeyspace)
	must(t, valid.Observe(5, 9))
	must(t, valid.Observe(6, 1))
	s := valid.Encode()
	raw, _ := base64.RawURLEncoding.DecodeString(s)

	reseal := func(b []byte) string {
		b = slices.Clone(b[:len(b)-crcLen])
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
		return base64.RawURLEncoding.EncodeToString(b)
	}
	badVersion := slices.Clone(raw)
	badVersion[0] = 2
	zero := uv(0)
	time0 := []byte{0, 0, 0}

	tests := []struct {
		name, in, message string
	}{
		{"empty", "", "empty token"},
		{"too long", strings.Repeat("A", MaxTokenLen+1), "limit"},
		{"padding", s + "==", "invalid character"},
		{"standard base64", strings.Repeat("+", 40), "invalid character"},
		{"newline", s[:10] + "\n" + s[10:], "invalid character"},
		{"space", " " + s, "invalid character"},
		{"non-ASCII", s[:5] + "é" + s[5:], "invalid character"},
		{"impossible length", s + "A", "base64"},
		{"short", "AAAA", "truncated"},
		{"truncated", s[:len(s)-4], ""},
		{"trailing characters", s + "AAAA", "checksum"},
		{"bad version", base64.RawURLEncoding.EncodeToString(badVersion), "version 2"},
		{"bad version resealed", reseal(badVersion), "version 2"},
		{"checksum", reseal(raw)[:len(s)-1] + flipChar(s[len(s)-1]), ""},
		{"trailing bytes", rawToken(zero, time0, uv(0), []byte{0}), "1 trailing bytes"},
		{"truncated marks", rawToken(zero, time0, uv(2), uv(1), uv(1)), "truncated"},
		{"truncated mark", rawToken(zero, time0, uv(1), uv(1), []byte{}, []byte{0x80, 0x80}), "truncated"},
		{"too many marks", rawToken(zero, time0, uv(MaxMarks+1), make([]byte, 4000)), "limit"},
		{"unsorted marks", rawToken(zero, time0, uv(2), uv(5), uv(1), uv(0), uv(1)), "increasing"},
		{"group overflow", rawToken(zero, time0, uv(2), uv(math.MaxUint64), uv(1), uv(1), uv(1)), "overflows"},
		{"index zero", rawToken(zero, time0, uv(1), uv(5), uv(0)), "index zero"},
		{"non-minimal varint", rawToken([]byte{0x81, 0x00}, time0, uv(0)), "non-minimal"},
		{"varint overflow", rawToken(slices.Repeat([]byte{0xff}, 10), []byte{1}, time0, uv(0)), "overflows 64"},
		{"logical overflow", rawToken(zero, uv(0), uv(math.MaxUint32+1), uv(0), uv(0)), "overflows 32"},
		{"node overflow", rawToken(zero, uv(0), uv(0), uv(math.MaxUint32+1), uv(0)), "overflows 32"},
	}
	for _, tt := range tests {
		_, err := DecodeToken(tt.in, testCluster, testKeyspace)
		if !errors.Is(err, ErrMalformedToken) {
			t.Errorf("%s: DecodeToken(%q) = %v, want ErrMalformedToken", tt.name, tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.message) {
			t.Errorf("%s: error %q does not mention %q", tt.name, err, tt.message)
		}
	}
}

// flipChar returns a different character of the base64url alphabet.
func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestTokenTamperEveryCharacter changes every character of a few tokens to
// every other byte value: each change must be refused, never accepted and
// never panic.
func TestTokenTamperEveryCharacter(t *testing.T) {
	toks := []Token{NewToken(testCluster, testKeyspace)}
	tok := NewToken(testCluster, testKeyspace)
	tok.ObserveEpoch(2)
	tok.ObserveTime(hlc.Timestamp{WallMS: 1767225600123, Logical: 1, Node: 3})
	for g := uint64(1); g <= 5; g++ {
		must(t, tok.Observe(g*1000, g*77777))
	}
	toks = append(toks, tok)
	for _, tok := range toks {
		s := tok.Encode()
		for i := 0; i < len(s); i++ {
			for c := 0; c < 256; c++ {
				if byte(c) == s[i] {
					continue
				}
				mut := s[:i] + string([]byte{byte(c)}) + s[i+1:]
				if got, err := DecodeToken(mut, testCluster, testKeyspace); err == nil {
					t.Fatalf("changing character %d of %q to %q was not detected: %v", i, s, byte(c), got)
				} else if !errors.Is(err, ErrMalformedToken) && !errors.Is(err, ErrForeignCluster) && !errors.Is(err, ErrForeignKeyspace) {
					t.Fatalf("unexpected error %v", err)
				}
			}
		}
	}
}

// TestTokenTamperProperty flips bits of the binary form of random tokens,
// truncates them and appends to them.
func TestTokenTamperProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tok := drawToken(t, testCluster, testKeyspace, "tok")
		s := tok.Encode()
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}

		// Any one byte changed in the binary form.
		i := rapid.IntRange(0, len(raw)-1).Draw(t, "byte")
		x := rapid.Uint8Range(1, 255).Draw(t, "xor")
		mut := slices.Clone(raw)
		mut[i] ^= x
		if _, err := DecodeToken(base64.RawURLEncoding.EncodeToString(mut), testCluster, testKeyspace); err == nil {
			t.Fatalf("byte %d ^ %#x not detected", i, x)
		}

		// Any one character of the text replaced.
		j := rapid.IntRange(0, len(s)-1).Draw(t, "char")
		c := rapid.SampledFrom([]byte(alphabet)).Draw(t, "with")
		if c != s[j] {
			if _, err := DecodeToken(s[:j]+string(c)+s[j+1:], testCluster, testKeyspace); err == nil {
				t.Fatalf("character %d -> %q not detected", j, c)
			}
		}

		// Any proper prefix, any suffix.
		k := rapid.IntRange(0, len(s)-1).Draw(t, "prefix")
		if _, err := DecodeToken(s[:k], testCluster, testKeyspace); !errors.Is(err, ErrMalformedToken) {
			t.Fatalf("prefix of %d characters: %v", k, err)
		}
		tail := rapid.StringMatching(`[A-Za-z0-9_-]{1,8}`).Draw(t, "tail")
		if _, err := DecodeToken(s+tail, testCluster, testKeyspace); !errors.Is(err, ErrMalformedToken) {
			t.Fatalf("appending %q: %v", tail, err)
		}

		// Random corruption of several bytes: must not panic; if it is
		// accepted (only by checksum collision) it must still be canonical.
		n := rapid.IntRange(1, 8).Draw(t, "n")
		for range n {
			p := rapid.IntRange(0, len(mut)-1).Draw(t, "pos")
			mut[p] = rapid.Byte().Draw(t, "val")
		}
		ms := base64.RawURLEncoding.EncodeToString(mut)
		if got, err := DecodeToken(ms, testCluster, testKeyspace); err == nil && got.Encode() != ms {
			t.Fatalf("accepted a non-canonical token %q", ms)
		}
	})
}

func TestMergeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := drawToken(t, testCluster, testKeyspace, "a")
		b := drawToken(t, testCluster, testKeyspace, "b")
		c := drawToken(t, testCluster, testKeyspace, "c")
		orig := a.Clone()

		merge := func(x, y Token) Token {
			t.Helper()
			if err := x.Merge(y); err != nil {
				t.Fatalf("Merge: %v", err)
			}
			return x
		}
		ab, ba := merge(a, b), merge(b, a)
		if !ab.Equal(ba) {
			t.Fatalf("not commutative:\n a+b %v\n b+a %v", ab, ba)
		}
		if aa := merge(a, a); !aa.Equal(a) {
			t.Fatalf("not idempotent: %v vs %v", aa, a)
		}
		if abb := merge(ab, b); !abb.Equal(ab) {
			t.Fatalf("merging again changed the token: %v vs %v", abb, ab)
		}
		if l, r := merge(merge(a, b), c), merge(a, merge(b, c)); !l.Equal(r) {
			t.Fatalf("not associative:\n (a+b)+c %v\n a+(b+c) %v", l, r)
		}
		if !a.Equal(orig) {
			t.Fatalf("merging into copies changed the original")
		}
		checkInvariants(t, ab)

		// The merge dominates both sides and adds nothing else.
		for _, side := range []Token{a, b} {
			if ab.Epoch() < side.Epoch() || ab.MaxTime().Less(side.MaxTime()) {
				t.Fatalf("merge lost the epoch or time of %v", side)
			}
			for _, m := range side.Marks() {
				if idx, ok := ab.Index(m.Group); !ok || idx < m.Index {
					t.Fatalf("merge lost mark %v", m)
				}
			}
		}
		for _, m := range ab.Marks() {
			ia, _ := a.Index(m.Group)
			ib, _ := b.Index(m.Group)
			if m.Index != max(ia, ib) {
				t.Fatalf("merge invented mark %v", m)
			}
		}

		// Merging is the same as observing everything one after the other.
		seq := a.Clone()
		for _, m := range b.Marks() {
			if err := seq.Observe(m.Group, m.Index); err != nil {
				t.Fatal(err)
			}
		}
		seq.ObserveEpoch(b.Epoch())
		seq.ObserveTime(b.MaxTime())
		if !seq.Equal(ab) {
			t.Fatalf("Merge differs from Observe: %v vs %v", ab, seq)
		}
	})
}

func TestSatisfied(t *testing.T) {
	tok := NewToken(testCluster, testKeyspace)
	must(t, tok.Observe(1, 10))
	must(t, tok.Observe(2, 20))
	must(t, tok.Observe(3, 30))
	applied := map[uint64]uint64{1: 10, 2: 19, 4: 100}
	missing := tok.Satisfied(func(g uint64) (uint64, bool) {
		idx, ok := applied[g]
		return idx, ok
	})
	if want := []Mark{{2, 20}, {3, 30}}; !slices.Equal(missing, want) {
		t.Fatalf("missing = %v, want %v", missing, want)
	}
	applied[2], applied[3] = 25, 30
	if missing := tok.Satisfied(func(g uint64) (uint64, bool) {
		idx, ok := applied[g]
		return idx, ok
	}); missing != nil {
		t.Fatalf("missing = %v, want none", missing)
	}
	empty := NewToken(testCluster, testKeyspace)
	if missing := empty.Satisfied(func(uint64) (uint64, bool) { return 0, false }); missing != nil {
		t.Fatalf("empty token: missing %v", missing)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestNameHashIsFNV1a: the hashes tokens carry are 64-bit FNV-1a of the
// domain then the name, as the hash package computes them, so tokens
// issued before nameHash was computed in place still decode.
func TestNameHashIsFNV1a(t *testing.T) {
	for _, c := range []struct{ domain, name string }{
		{"meridian/token/cluster\x00", "meridian"}, {"meridian/token/keyspace\x00", "default"},
		{"", ""}, {"d", "ключ"}, {"meridian/token/keyspace\x00", string([]byte{0, 255, 128})},
	} {
		h := fnv.New64a()
		h.Write([]byte(c.domain))
		h.Write([]byte(c.name))
		if got, want := nameHash(c.domain, c.name), h.Sum64(); got != want {
			t.Errorf("nameHash(%q, %q) = %x, want %x", c.domain, c.name, got, want)
		}
	}
}
