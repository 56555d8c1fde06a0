package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/meridian-db/meridian/node/nodepb"
)

// TestErrorCodesRoundTrip: every error of the table crosses the wire as
// its own code and comes back as the same sentinel, wrapped or not; no
// two sentinels share a code.
func TestErrorCodesRoundTrip(t *testing.T) {
	seen := map[nodepb.Code]error{}
	for _, e := range errorCodes {
		if prev, ok := seen[e.code]; ok {
			t.Fatalf("code %v for %v and %v", e.code, prev, e.err)
		}
		seen[e.code] = e.err
		for _, err := range []error{e.err, fmt.Errorf("context: %w", e.err)} {
			pb := toPB(err)
			if pb.GetCode() != e.code {
				t.Fatalf("%v crossed as %v, want %v", err, pb.GetCode(), e.code)
			}
			if back := fromPB(pb); !errors.Is(back, e.err) {
				t.Fatalf("%v came back as %v", err, back)
			}
		}
	}
}
