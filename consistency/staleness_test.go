package consistency

import (
	"math"
	"testing"
	"time"

	"github.com/meridian-db/meridian/hlc"
	"pgregory.net/rapid"
)

func TestCanServeLocally(t *testing.T) {
	const now = int64(1767225600000)
	b5 := BoundedBy(5 * time.Second)
	tests := []struct {
		name      string
		req       Requirement
		closed    int64
		ok        bool
		staleness time.Duration
	}{
		{"bounded fresh", b5, now - 100, true, 100 * time.Millisecond},
		{"bounded at the limit", b5, now - 5000, true, 5 * time.Second},
		{"bounded 1ms over", b5, now - 5001, false, 5001 * time.Millisecond},
		{"bounded closed now", b5, now, true, 0},
		{"bounded closed ahead (skew)", b5, now + 300, true, 0},
		{"bounded sub-ms bound, same ms", BoundedBy(500 * time.Microsecond), now, true, 0},
		{"bounded sub-ms bound, 1ms behind", BoundedBy(500 * time.Microsecond), now - 1, false, time.Millisecond},
		{"bounded 1.5ms, 1ms behind", BoundedBy(1500 * time.Microsecond), now - 1, true, time.Millisecond},
		{"bounded 1.5ms, 2ms behind", BoundedBy(1500 * time.Microsecond), now - 2, false, 2 * time.Millisecond},
		{"bounded never closed", b5, 0, false, time.Duration(now) * time.Millisecond},
		{"bounded overflow", b5, math.MinInt64, false, math.MaxInt64},
		{"bounded 24h", BoundedBy(24 * time.Hour), now - 86400000, true, 24 * time.Hour},
		{"bounded zero bound", Requirement{Level: Bounded}, now, false, 0},
		{"bounded too large", BoundedBy(StalenessLimit + 1), now, false, 0},
		{"strong", Requirement{Level: Strong}, now, false, 0},
		{"session", Requirement{Level: Session}, now - 10, false, 10 * time.Millisecond},
		{"prefix", Requirement{Level: Prefix}, now - 60000, true, time.Minute},
		{"eventual", Requirement{Level: Eventual}, math.MinInt64, true, math.MaxInt64},
		{"unset", Requirement{}, now, false, 0},
	}
	for _, tt := range tests {
		ok, st := CanServeLocally(tt.req, tt.closed, now)
		if ok != tt.ok || st != tt.staleness {
			t.Errorf("%s: CanServeLocally(%v, %d, %d) = %v, %v; want %v, %v",
				tt.name, tt.req, tt.closed, now, ok, st, tt.ok, tt.staleness)
		}
	}
}

// TestCanServeLocallyNeverLooser: whenever a bounded read is served
// locally, the replica's lag is within the bound, at full precision, for
// any clock values.
func TestCanServeLocallyNeverLooser(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := time.Duration(rapid.Int64Range(1, int64(StalenessLimit)).Draw(t, "d"))
		now := rapid.Int64().Draw(t, "now")
		closed := rapid.Int64().Draw(t, "closed")
		ok, st := CanServeLocally(BoundedBy(d), closed, now)
		if st < 0 {
			t.Fatalf("negative staleness %v", st)
		}
		if ok != (st <= d) {
			t.Fatalf("ok = %v with staleness %v and bound %v", ok, st, d)
		}
		if ok && closed < now {
			// The exact lag in whole milliseconds (now > closed, so it fits
			// in a uint64) is within the bound.
			if lag := uint64(now) - uint64(closed); lag > uint64(d/time.Millisecond) {
				t.Fatalf("served with a lag of %d ms over bound %v", lag, d)
			}
		}
	})
}

func TestClosedMS(t *testing.T) {
	if got := ClosedMS(hlc.Timestamp{WallMS: 1000, Logical: 5}); got != 999 {
		t.Fatalf("ClosedMS = %d", got)
	}
	if got := ClosedMS(hlc.Timestamp{WallMS: math.MinInt64}); got != math.MinInt64 {
		t.Fatalf("ClosedMS saturates: %d", got)
	}
	// A closed timestamp of exactly now - 5s is then (conservatively) one
	// millisecond too old for bounded(5s).
	now := int64(1767225600000)
	if ok, _ := CanServeLocally(BoundedBy(5*time.Second), ClosedMS(hlc.Timestamp{WallMS: now - 5000}), now); ok {
		t.Fatal("a closed timestamp covering only up to now-5s-1ms served bounded(5s)")
	}
}
