package check

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// at records an operation with explicit times (ms) instead of the clock.
func (h *History) at(client int, in RegisterInput, out RegisterOutput, call, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call * 1e6, Return: ret * 1e6})
}

func TestLinearizableAndStaleReads(t *testing.T) {
	h := NewHistory()
	h.at(0, RegisterInput{Key: "k", Put: true, Value: "1"}, RegisterOutput{}, 0, 10)
	h.at(1, RegisterInput{Key: "k", Put: true, Value: "2"}, RegisterOutput{}, 20, 30)
	h.at(2, RegisterInput{Key: "k"}, RegisterOutput{Value: "2", Found: true}, 40, 50)
	if v := h.Linearizable(time.Second, t.TempDir(), "ok"); v.Result != porcupine.Ok || v.Violations() != 0 {
		t.Fatalf("a legal history judged %v", v.Result)
	}
	if s := h.StaleReads(5); len(s) != 0 {
		t.Fatalf("stale reads in a legal history: %+v", s)
	}
	// A read after both puts that returns the first value missed the second.
	h.at(3, RegisterInput{Key: "k"}, RegisterOutput{Value: "1", Found: true}, 60, 70)
	v := h.Linearizable(time.Second, t.TempDir(), "bad")
	if v.Result != porcupine.Illegal || v.Violations() != 1 || v.Timeline == "" {
		t.Fatalf("an illegal history judged %v (timeline %q)", v.Result, v.Timeline)
	}
	s := h.StaleReads(5)
	if len(s) != 1 || s[0].Client != 3 || s[0].Got != "1" || s[0].Missed != "2" || s[0].MissedBy != 30*time.Millisecond {
		t.Fatalf("stale reads: %+v", s)
	}
	keys, ops := h.IllegalKeys(time.Second)
	if len(keys) != 1 || keys[0] != "k" || len(ops) != 4 {
		t.Fatalf("illegal keys %v, ops %v", keys, ops)
	}
	// Removing the value read stale leaves a legal history.
	if n := h.Remove(map[string]bool{"1": true}); n != 2 {
		t.Fatalf("removed %d operations, want 2", n)
	}
	if v := h.Linearizable(time.Second, t.TempDir(), "removed"); v.Result != porcupine.Ok {
		t.Fatalf("after removal: %v", v.Result)
	}
}

func TestUnknownPutsMayTakeEffectLater(t *testing.T) {
	h := NewHistory()
	h.at(0, RegisterInput{Key: "k", Put: true, Value: "1"}, RegisterOutput{}, 0, 10)
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: 1, Input: RegisterInput{Key: "k", Put: true, Value: "2"}, Call: 20e6, Return: Unknown})
	h.mu.Unlock()
	h.at(2, RegisterInput{Key: "k"}, RegisterOutput{Value: "1", Found: true}, 30, 40)
	h.at(2, RegisterInput{Key: "k"}, RegisterOutput{Value: "2", Found: true}, 50, 60)
	if v := h.Linearizable(time.Second, t.TempDir(), "unknown"); v.Result != porcupine.Ok {
		t.Fatalf("a put of unknown outcome that lands late judged %v", v.Result)
	}
	final := map[string]RegisterOutput{"k": {Value: "2", Found: true}}
	if lost := h.LostAcknowledged(final); lost != 0 {
		t.Fatalf("lost %d", lost)
	}
	if lost := h.LostAcknowledged(map[string]RegisterOutput{"k": {}}); lost != 1 {
		t.Fatalf("a key found empty after an acknowledged put: lost %d, want 1", lost)
	}
}

func TestSessions(t *testing.T) {
	s := NewSessions()
	s.Wrote("a", 1)
	s.Read("a", 1, true, "n1")
	s.Wrote("a", 2)
	s.Read("a", 2, true, "n2")
	if reads, ryw, mono, ex := s.Result(); reads != 2 || ryw != 0 || mono != 0 || len(ex) != 0 {
		t.Fatalf("clean sessions: %d reads, %d ryw, %d mono, %v", reads, ryw, mono, ex)
	}
	s.Wrote("a", 3)
	s.Read("a", 1, true, "n3") // misses 3 and goes back from 2
	s.Read("b", 0, false, "n1")
	if reads, ryw, mono, ex := s.Result(); reads != 4 || ryw != 1 || mono != 1 || len(ex) != 2 {
		t.Fatalf("violations: %d reads, %d ryw, %d mono, %v", reads, ryw, mono, ex)
	}
}

func TestStaleness(t *testing.T) {
	s := NewStaleness(50 * time.Millisecond)
	t0 := time.Now()
	s.Acked(1, t0)
	s.Acked(2, t0.Add(100*time.Millisecond))
	s.Read(1, t0.Add(120*time.Millisecond), "n") // 2 acknowledged 20 ms before: within the bound
	s.Read(0, t0.Add(30*time.Millisecond), "n")  // 1 acknowledged 30 ms before
	s.Read(2, t0.Add(500*time.Millisecond), "n") // the newest
	if reads, bad, worst, _, _ := s.Result(); reads != 3 || bad != 0 || worst != 30*time.Millisecond {
		t.Fatalf("within the bound: %d reads, %d violations, worst %v", reads, bad, worst)
	}
	s.Read(1, t0.Add(190*time.Millisecond), "n") // 2 acknowledged 90 ms before
	reads, bad, worst, over, ex := s.Result()
	if reads != 4 || bad != 1 || worst != 90*time.Millisecond || over != 40*time.Millisecond || len(ex) != 1 {
		t.Fatalf("beyond the bound: %d reads, %d violations, worst %v, over %v, %v", reads, bad, worst, over, ex)
	}
}
