package raftgroup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/internal/testutil"
)

// TestCrashAllNodesKeepsAcknowledgedWrites crashes every node at the same
// instant while writes are in flight, dropping whatever was not synced
// (Pebble's crashable in-memory filesystem), restarts them all from what
// survived, and checks that every write acknowledged before the crash is
// still there and that the nodes agree.
func TestCrashAllNodesKeepsAcknowledgedWrites(t *testing.T) {
	for seed := int64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			n := newLocalNet()
			fss := []*vfs.MemFS{vfs.NewCrashableMem(), vfs.NewCrashableMem(), vfs.NewCrashableMem()}
			var nodes []*testNode
			for i, fs := range fss {
				nodes = append(nodes, startNode(t, n, uint64(i+1), fs, 50))
			}
			waitLeader(t, nodes)
			ctx, cancel := context.WithCancel(context.Background())
			var mu sync.Mutex
			acked := map[string]string{}
			ackCount := 0
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						k, v := fmt.Sprintf("w%d-k%d", w, i%20), fmt.Sprintf("%d", i)
						if _, err := propose(ctx, t, nodes, []byte(k+"="+v)); err == nil {
							mu.Lock()
							acked[k] = v
							ackCount++
							mu.Unlock()
						}
					}
				}()
			}
			// Crash once a few hundred writes have been acknowledged.
			testutil.Eventually(t, 20*time.Second, "300 acknowledged writes", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return ackCount >= 300
			})
			// Crash: freeze every filesystem at this instant (acknowledged
			// writes so far must all be durable on a quorum).
			mu.Lock()
			snapshot := make(map[string]string, len(acked))
			for k, v := range acked {
				snapshot[k] = v
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			var clones []*vfs.MemFS
			for _, fs := range fss {
				clones = append(clones, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(60), RNG: rng}))
			}
			mu.Unlock()
			cancel()
			wg.Wait()
			for _, tn := range nodes {
				tn.stop(n)
			}
			if len(snapshot) == 0 {
				t.Fatal("no write was acknowledged before the crash")
			}
			nodes = nodes[:0]
			for i, fs := range clones {
				nodes = append(nodes, startNode(t, n, uint64(i+1), fs, 50))
			}
			defer func() {
				for _, tn := range nodes {
					tn.stop(n)
				}
			}()
			waitLeader(t, nodes)
			rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer rcancel()
			for _, tn := range nodes {
				if _, err := readIndex(rctx, tn); err != nil {
					t.Fatal(err)
				}
			}
			lost := 0
			for k, v := range snapshot {
				for _, tn := range nodes {
					got, ok, _ := tn.db.Get(7, []byte(k))
					// A later write to the same key may also have made it.
					if !ok || (string(got) != v && atoi(string(got)) < atoi(v)) {
						lost++
						t.Errorf("node %d: %s=%q after the crash, acknowledged %q", tn.id, k, got, v)
					}
				}
			}
			t.Logf("%d acknowledged keys before the crash of all 3 nodes, %d lost", len(snapshot), lost)
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
