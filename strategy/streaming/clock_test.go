package streaming

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/strategy"
	"github.com/meridian-db/meridian/stream"
)

// clockEnv is an Env with a clock set by the test.
type clockEnv struct {
	strategy.Env
	now time.Time
}

func (e clockEnv) Now() time.Time       { return e.now }
func (e clockEnv) ID() uint64           { return 4 }
func (e clockEnv) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (e clockEnv) Settings() strategy.Settings {
	return strategy.Settings{MaxClockOffset: 500 * time.Millisecond}
}

// TestCheckClockRefusesTheFuture: a batch whose change or closed
// timestamp is further ahead of this node's clock than the maximum
// offset is refused, naming what was ahead and by how much; within the
// offset it passes. The node's clock is its own (moved by an emulated
// offset), not the machine's.
func TestCheckClockRefusesTheFuture(t *testing.T) {
	now := time.Now().Add(10 * time.Minute) // this node's clock runs ahead
	in := NewInbox(clockEnv{now: now})
	ms := now.UnixMilli()
	for _, tc := range []struct {
		name string
		b    stream.Batch
		want string // "" passes
	}{
		{"within the offset", stream.Batch{Stream: 7, Prev: 1, ClosedMS: ms + 400, Changes: []stream.Change{{Index: 2, TimeMS: ms + 450}}}, ""},
		{"a heartbeat within", stream.Batch{Stream: 7, Prev: 2, ClosedMS: ms + 499}, ""},
		{"a change ahead", stream.Batch{Stream: 7, Prev: 1, ClosedMS: ms, Changes: []stream.Change{{Index: 2, TimeMS: ms}, {Index: 3, TimeMS: ms + 700}}}, "change 3 is stamped 700 ms ahead"},
		{"a closed timestamp ahead", stream.Batch{Stream: 7, Prev: 2, ClosedMS: ms + 600_000}, "closed timestamp is 600000 ms ahead"},
	} {
		err := in.CheckClock(tc.b)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, kv.ErrClockSkew) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "stream 7") {
			t.Errorf("%s: %v, want ErrClockSkew saying %q", tc.name, err, tc.want)
		}
	}
}

// TestCheckResyncClockRefusesTheFuture: a resync's merge stamped beyond
// the maximum offset is refused; one within it, and other commands, pass.
func TestCheckResyncClockRefusesTheFuture(t *testing.T) {
	now := time.Now()
	in := NewInbox(clockEnv{now: now})
	merge := func(ms int64) []byte { return kv.Command{Op: kv.OpActiveMerge, NowMS: ms}.Encode() }
	if err := in.CheckResyncClock(9, merge(now.UnixMilli()+400)); err != nil {
		t.Fatalf("within the offset: %v", err)
	}
	if err := in.CheckResyncClock(9, kv.Command{Op: kv.OpSet, NowMS: now.UnixMilli() + 600_000, Args: [][]byte{[]byte("k"), []byte("v")}}.Encode()); err != nil {
		t.Fatalf("a client write is not a resync's: %v", err)
	}
	err := in.CheckResyncClock(9, merge(now.UnixMilli()+600_000))
	if !errors.Is(err, kv.ErrClockSkew) || !strings.Contains(err.Error(), "group 9") || !strings.Contains(err.Error(), "600000 ms ahead") {
		t.Fatalf("ten minutes ahead: %v", err)
	}
}
