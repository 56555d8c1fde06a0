package transport

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture is a slog handler that keeps every record.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}

func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

// count counts the records at level whose message contains msg.
func (c *logCapture) count(level slog.Level, msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// TestOtherClusterRefused: a node given the address of a node of another
// cluster gets nothing through: its calls fail with ErrWrongCluster (the
// handler never runs), its raft messages and snapshots are never handed
// to the other node, and the refusing node warns once per sender and
// cluster, not once per request.
func TestOtherClusterRefused(t *testing.T) {
	logs := &logCapture{}
	b := startNode(t, Config{NodeID: 2, Cluster: "blue", Region: "r", Logger: slog.New(logs)})
	a := startNode(t, Config{NodeID: 1, Cluster: "green", Region: "r"})
	c := startNode(t, Config{NodeID: 3, Cluster: "blue", Region: "r"})
	var mu sync.Mutex
	served := 0
	b.rec.onCall = func(context.Context, uint64, string, []byte) ([]byte, error) {
		mu.Lock()
		served++
		mu.Unlock()
		return []byte("ok"), nil
	}
	for _, n := range []node{a, c} {
		n.tr.SetPeer(b.peer("r"))
		b.tr.SetPeer(n.peer("r"))
	}
	ctx := context.Background()

	// The same cluster: served.
	if resp, err := testCall(c.tr, ctx, b.id, "x", nil); err != nil || string(resp) != "ok" {
		t.Fatalf("call within the cluster: %q %v", resp, err)
	}
	// Another cluster: refused, every time.
	for range 5 {
		_, err := testCall(a.tr, ctx, b.id, "x", nil)
		if !errors.Is(err, ErrWrongCluster) || !errors.Is(err, ErrNotSent) || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call from another cluster: %v, want ErrWrongCluster (and ErrNotSent, ErrUnreachable)", err)
		}
		if !strings.Contains(err.Error(), `cluster "green"`) || !strings.Contains(err.Error(), `cluster "blue"`) {
			t.Fatalf("the error does not name both clusters: %v", err)
		}
	}
	mu.Lock()
	if served != 1 {
		t.Fatalf("the handler ran %d times, want once (the same cluster's call)", served)
	}
	mu.Unlock()

	// Raft messages and a snapshot from the other cluster never arrive;
	// the sender learns that they did not go through (a stream's refusal
	// shows on the writes after the first).
	sent := 0
	for deadline := time.Now().Add(waitTimeout); a.rec.unreachableCount() < 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages sent to another cluster, %d reported undelivered", sent, a.rec.unreachableCount())
		}
		sent++
		a.tr.Send([]Envelope{{Group: 7, Msg: appMsg(a.id, b.id, uint64(sent), 1, 10)}})
	}
	a.tr.Send([]Envelope{{Group: 8, Msg: snapMsg(a.id, b.id, []byte("state"))}})
	a.rec.waitFor(t, "the refused snapshot reported", func() bool { return len(a.rec.snapshots) == 1 })
	if r := a.rec.snapshots[0]; r.ok {
		t.Fatalf("snapshot to another cluster reported delivered: %+v", r)
	}
	// Meanwhile the same cluster's messages do arrive.
	c.tr.Send([]Envelope{{Group: 7, Msg: appMsg(c.id, b.id, 1, 1, 10)}})
	b.rec.waitFor(t, "the same cluster's message", func() bool { return len(b.rec.raft[c.id]) == 1 })
	if got := b.rec.received(a.id); len(got) != 0 {
		t.Fatalf("node %d of another cluster delivered %d messages", a.id, len(got))
	}

	// One warning for all of that.
	if n := logs.count(slog.LevelWarn, "another cluster"); n != 1 {
		t.Fatalf("%d warnings about the other cluster's node, want 1 (rate-limited)", n)
	}
}
