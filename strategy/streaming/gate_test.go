package streaming

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-db/meridian/stream"
)

// TestStreamGateOrders: a batch that arrives before the one it follows
// waits for it to be proposed; one in order goes at once; one whose
// predecessor never comes goes after the wait.
func TestStreamGateOrders(t *testing.T) {
	ctx := context.Background()
	g := &gate{wait: time.Minute}
	first := stream.Batch{Stream: 3, Prev: 0, Changes: []stream.Change{{Index: 5}}}
	second := stream.Batch{Stream: 3, Prev: 5, Changes: []stream.Change{{Index: 9}}}
	order := make(chan string, 2)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done := g.enter(ctx, 1, second, 0) // arrives first
		order <- "second"
		done()
	}()
	// Once the second is waiting, the first arrives.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		_, waiting := g.pending[streamKey{1, 3}][9]
		g.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second batch never registered")
		}
	}
	done := g.enter(ctx, 1, first, 0) // follows the cursor: at once
	order <- "first"
	done()
	if a, b := <-order, <-order; a != "first" || b != "second" {
		t.Fatalf("proposed %s then %s", a, b)
	}
	// Nothing left behind.
	<-finished
	g.mu.Lock()
	left := len(g.pending)
	g.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d streams still pending", left)
	}
	// A batch whose predecessor was proposed and is over goes at once.
	g.enter(ctx, 1, stream.Batch{Stream: 3, Prev: 9, Changes: []stream.Change{{Index: 12}}}, 0)()
	// A batch whose predecessor never comes goes after the wait.
	g.wait = 20 * time.Millisecond
	start := time.Now()
	g.enter(ctx, 1, stream.Batch{Stream: 3, Prev: 20, Changes: []stream.Change{{Index: 21}}}, 9)()
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("an early batch did not wait for the one before it")
	}
}
