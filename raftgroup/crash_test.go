package raftgroup

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/meridian-db/meridian/internal/testutil"
	"github.com/meridian-db/meridian/storage"
)

// TestCrashAllNodesKeepsAcknowledgedWrites crashes every node at the same
// instant while writes are in flight, dropping whatever was not synced
// (Pebble's crashable in-memory filesystem), restarts them all from what
// survived, and checks that every write acknowledged before the crash is
// still there and that the nodes agree. MERIDIAN_CRASH_ROUNDS=N runs N
// rounds instead of 3. A failed round reports what names the layer that
// lost a write: each node's raft state before the crash, what it
// restarted from (read from a copy of its crashed filesystem), for each
// lost write whether the restart state already covered it, the reads
// after the restart, and the hosts' recent raft log.
func TestCrashAllNodesKeepsAcknowledgedWrites(t *testing.T) {
	rounds := int64(testutil.EnvInt(t, "MERIDIAN_CRASH_ROUNDS", 3))
	for seed := int64(1); seed <= rounds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { crashAllRound(t, seed) })
	}
}

// ringLog keeps the last lines the hosts logged (raft's elections,
// snapshots, rejections), printed only when a round fails. It is the
// writer of a slog text handler, which writes one line per record.
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRingLog(n int) *ringLog { return &ringLog{lines: make([]string, n)} }

func (r *ringLog) Write(p []byte) (int, error) {
	r.add(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (r *ringLog) add(s string) {
	r.mu.Lock()
	r.lines[r.next] = s
	r.next++
	if r.next == len(r.lines) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

func (r *ringLog) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if r.full {
		out = append(out, r.lines[r.next:]...)
	}
	out = append(out, r.lines[:r.next]...)
	return strings.Join(out, "\n")
}

func fmtStatus(st Status) string {
	return fmt.Sprintf("term=%d lead=%d state=%v commit=%d applied=%d log=[%d,%d] match=%v", st.Term, st.Lead, st.RaftState, st.Commit, st.Applied, st.FirstIndex, st.LastIndex, st.Match)
}

// restartState is what a crashed filesystem holds for group 7, read from
// a copy of it before a node restarts there.
type restartState struct {
	err              error
	term, vote, hard uint64 // hard state (hard: its commit index)
	applied          uint64
	first, last      uint64
	vals             map[string]string // value of each key asked for ("" if absent)
	logAt            map[string]string // the command at each key's index in the log, or why not
}

// readRestartState opens fs (a frozen copy of what a node restarted
// from) and reads the keys in keys and the log entries at their indexes.
func readRestartState(fs *vfs.MemFS, keys map[string]uint64) restartState {
	st := restartState{vals: map[string]string{}, logAt: map[string]string{}}
	db, err := storage.Open("/data", storage.Options{FS: fs})
	if err != nil {
		st.err = err
		return st
	}
	defer db.Close()
	ls, err := db.LoadLogStore(7)
	if err != nil {
		st.err = err
		return st
	}
	hs, _, _ := ls.InitialState()
	st.term, st.vote, st.hard = hs.GetTerm(), hs.GetVote(), hs.GetCommit()
	st.applied = ls.Applied().Index
	st.first, st.last = ls.Bounds()
	for k, idx := range keys {
		v, _, _ := db.Get(7, []byte(k))
		st.vals[k] = string(v)
		if ents, err := ls.Entries(idx, idx+1, math.MaxUint64); err == nil && len(ents) == 1 {
			env, _, _ := decodeEnvelope(ents[0].GetData())
			st.logAt[k] = fmt.Sprintf("term %d %q", ents[0].GetTerm(), env.cmd)
		} else {
			st.logAt[k] = fmt.Sprint(err)
		}
	}
	return st
}

func (st restartState) String() string {
	if st.err != nil {
		return st.err.Error()
	}
	return fmt.Sprintf("hard state term %d vote %d commit %d, applied %d, log [%d,%d]", st.term, st.vote, st.hard, st.applied, st.first, st.last)
}

// lossVerdict says which layer lost an acknowledged write (k=v at index
// idx) that node n lacks after the restart, from what n restarted with.
func lossVerdict(st restartState, k, v string, idx uint64) string {
	switch {
	case st.err != nil:
		return "restart state unreadable: " + st.err.Error()
	case idx <= st.applied && (st.vals[k] == "" || atoi(st.vals[k]) < atoi(v)):
		return fmt.Sprintf("the crash state is inconsistent: its applied index %d covers index %d but its data has %s=%q: storage recovery (not raft) lost an applied batch", st.applied, idx, k, st.vals[k])
	case idx <= st.applied:
		return fmt.Sprintf("the crash state had it (%s=%q, applied %d): it was lost after the restart (a snapshot or an apply overwrote it)", k, st.vals[k], st.applied)
	default:
		return fmt.Sprintf("the crash state had not applied it (applied %d, log[%d]: %s): raft or the host failed to apply it after the restart before answering the read", st.applied, idx, st.logAt[k])
	}
}

func crashAllRound(t *testing.T, seed int64) {
	n := newLocalNet()
	rl := newRingLog(4000)
	logger := slog.New(slog.NewTextHandler(rl, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(id uint64, fs vfs.FS) *testNode {
		return startNodeLogged(t, n, id, fs, 50, logger)
	}
	fss := []*vfs.MemFS{vfs.NewCrashableMem(), vfs.NewCrashableMem(), vfs.NewCrashableMem()}
	var nodes []*testNode
	for i, fs := range fss {
		nodes = append(nodes, start(uint64(i+1), fs))
	}
	waitLeader(t, nodes)
	ctx, cancel := context.WithCancel(context.Background())
	type ack struct {
		val   string
		index uint64 // the write's log index
	}
	var mu sync.Mutex
	acked := map[string]ack{}
	ackCount := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				k, v := fmt.Sprintf("w%d-k%d", w, i%20), fmt.Sprintf("%d", i)
				if r, err := propose(ctx, t, nodes, []byte(k+"="+v)); err == nil {
					mu.Lock()
					acked[k] = ack{v, r.Index}
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
	// writes so far must all be durable on a quorum). The filesystems are
	// cloned one after another while the hosts run on, so every link is
	// cut first: nothing a node does after its filesystem is frozen can
	// reach another node before that one's is frozen too, and the clones
	// are the state of one instant of the cluster (otherwise a node
	// restarts without acknowledgements or votes that the others, frozen
	// later, have seen, which no crash can do).
	mu.Lock()
	n.mu.Lock()
	for _, tn := range nodes {
		n.cut[tn.id] = true
	}
	n.mu.Unlock()
	snapshot := maps.Clone(acked)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	var clones []*vfs.MemFS
	var before []string
	for i, fs := range fss {
		st, _ := nodes[i].host.Status(7)
		pct := rng.IntN(60)
		clones = append(clones, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng}))
		before = append(before, fmt.Sprintf("node %d (unsynced kept %d%%): %s", i+1, pct, fmtStatus(st)))
	}
	mu.Unlock()
	rl.add("---- crash ----")
	cancel()
	wg.Wait()
	for _, tn := range nodes {
		tn.stop(n)
	}
	n.mu.Lock()
	clear(n.cut) // the restarted nodes talk again
	n.mu.Unlock()
	if len(snapshot) == 0 {
		t.Fatal("no write was acknowledged before the crash")
	}
	// Copies of what each node restarts from, for the report.
	var crashed []*vfs.MemFS
	for _, fs := range clones {
		crashed = append(crashed, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng}))
	}
	rl.add("---- restart ----")
	nodes = nodes[:0]
	for i, fs := range clones {
		nodes = append(nodes, start(uint64(i+1), fs))
	}
	defer func() {
		for _, tn := range nodes {
			tn.stop(n)
		}
	}()
	leaderAfter := waitLeader(t, nodes)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	var reads []string
	for _, tn := range nodes {
		idx, err := readIndex(rctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := tn.host.FreshStatus(rctx, 7)
		s := tn.host.Stats()
		reads = append(reads, fmt.Sprintf("node %d: read index %d, then %s; snapshots installed %d, lease reads %d, read-index requests %d",
			tn.id, idx, fmtStatus(st), s.SnapshotsApplied, s.LeaseReads, s.ReadIndexRequests))
	}
	type loss struct {
		node uint64
		key  string
	}
	var losses []loss
	lostAt := map[string]uint64{} // the lost keys, at their indexes
	for k, a := range snapshot {
		for _, tn := range nodes {
			got, ok, _ := tn.db.Get(7, []byte(k))
			// A later write to the same key may also have made it.
			if !ok || (string(got) != a.val && atoi(string(got)) < atoi(a.val)) {
				losses = append(losses, loss{tn.id, k})
				lostAt[k] = a.index
				t.Errorf("node %d: %s=%q after the crash, acknowledged %q (at index %d)", tn.id, k, got, a.val, a.index)
			}
		}
	}
	if len(losses) > 0 {
		t.Logf("before the crash:\n  %s", strings.Join(before, "\n  "))
		states := make([]restartState, len(crashed))
		for i, fs := range crashed {
			states[i] = readRestartState(fs, lostAt)
			t.Logf("node %d restarted from: %s", i+1, states[i])
		}
		for _, l := range losses {
			a := snapshot[l.key]
			t.Logf("node %d, %s=%s (index %d): %s", l.node, l.key, a.val, a.index, lossVerdict(states[l.node-1], l.key, a.val, a.index))
		}
		t.Logf("after the restart (leader %d):\n  %s", leaderAfter, strings.Join(reads, "\n  "))
		for _, tn := range nodes {
			st, _ := tn.host.FreshStatus(rctx, 7)
			t.Logf("node %d now: %s", tn.id, fmtStatus(st))
		}
		t.Logf("host log (its last %d lines at most):\n%s", len(rl.lines), rl.dump())
	}
	t.Logf("%d acknowledged keys before the crash of all 3 nodes, %d lost", len(snapshot), len(losses))
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
