package consistency

import (
	"errors"
	"testing"

	"github.com/meridian-db/meridian/hlc"
)

// FuzzDecodeToken feeds arbitrary strings to DecodeToken. It must never
// panic, every error must be one of the three documented kinds, and every
// accepted token must be canonical (re-encode to its input) and well formed.
func FuzzDecodeToken(f *testing.F) {
	tok := NewToken(testCluster, testKeyspace)
	f.Add(tok.Encode())
	tok.ObserveEpoch(3)
	tok.ObserveTime(hlc.Timestamp{WallMS: 1767225600123, Logical: 2, Node: 5})
	for g := uint64(1); g <= 6; g++ {
		if err := tok.Observe(g*g*1000, 1<<(g*9)); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(tok.Encode())
	f.Add(NewToken("other", testKeyspace).Encode())
	f.Add(NewToken(testCluster, "users").Encode())
	f.Add("")
	f.Add("AAAA")
	f.Add("not a token")
	f.Add(rawToken(uv(0), []byte{0, 0, 0}, uv(1), uv(5), uv(0)))

	f.Fuzz(func(t *testing.T, s string) {
		got, err := DecodeToken(s, testCluster, testKeyspace)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) && !errors.Is(err, ErrForeignCluster) && !errors.Is(err, ErrForeignKeyspace) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		checkInvariants(t, got)
		if got.Cluster() != testCluster || got.Keyspace() != testKeyspace {
			t.Fatalf("decoded token names %q/%q", got.Cluster(), got.Keyspace())
		}
		if enc := got.Encode(); enc != s {
			t.Fatalf("accepted a non-canonical token: %q re-encodes to %q", s, enc)
		}
		// A decoded token is usable: merging it with itself changes nothing.
		merged := got.Clone()
		if err := merged.Merge(got); err != nil || !merged.Equal(got) {
			t.Fatalf("self-merge: %v", err)
		}
	})
}
