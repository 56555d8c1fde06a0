package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/metrics"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// streamID names a stream the way StreamStatus does.
type streamID struct {
	keyspace string
	shard    int
	from, to string
}

func idOf(s node.StreamStatus) streamID {
	return streamID{s.Keyspace, s.Shard, s.FromRegion, s.ToRegion}
}

// allStreams gathers the streams every running node sends.
func allStreams(c *testcluster.Cluster) map[streamID]node.StreamStatus {
	out := map[streamID]node.StreamStatus{}
	for _, n := range c.Running() {
		for _, s := range n.Streams() {
			out[idOf(s)] = s
		}
	}
	return out
}

// sourceApplied returns, for every stream of the keyspaces, the applied
// index of its source group now (on the source region's node).
func sourceApplied(t *testing.T, c *testcluster.Cluster, keyspaces ...string) map[streamID]uint64 {
	t.Helper()
	out := map[streamID]uint64{}
	for _, name := range keyspaces {
		ks := c.Running()[0].Metadata().Keyspaces[name]
		for _, sh := range ks.Shards {
			for _, src := range sh.Regional {
				if ks.Strategy == metadata.Async && src.Group != sh.Group {
					continue // only the home region's group ships
				}
				st, ok := c.Node(c.InRegion(src.Region)[0]).Host().Status(src.Group)
				if !ok {
					t.Fatalf("group %d not hosted in %s", src.Group, src.Region)
				}
				for _, dst := range sh.Regional {
					if dst.Group != src.Group {
						out[streamID{name, sh.Index, src.Region, dst.Region}] = st.Applied
					}
				}
			}
		}
	}
	return out
}

// TestStreamsRecoverAfterFaults: writers in every region, on an active
// keyspace (counters, a set, registers) and an async one, through rounds
// of faults (a region cut off, a 1|2 split, a node isolated). While a
// fault lasts, the streams it stops are reported stalled, the peer
// unreachable; after each heal every stream acknowledges everything its
// source had applied at the heal, and is no longer stalled; in the end
// every region holds the same values, with every acknowledged increment
// and add.
func TestStreamsRecoverAfterFaults(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "ac", Strategy: metadata.Active, Shards: 2})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "as", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := c.Running()

	var mu sync.Mutex
	incr := map[string]int64{}            // acknowledged increments per counter
	incrUnknown := map[string]int64{}     // increments of unknown outcome (timed out)
	incrBy := map[string]map[string]int{} // counter -> region -> acknowledged increments
	members := map[string]bool{}          // acknowledged adds
	asyncAcked, unknown := 0, 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				now := time.Now().UnixMilli()
				var cmd kv.Command
				keyspace := "ac"
				switch i % 4 {
				case 0:
					cmd = kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: now, Args: [][]byte{fmt.Appendf(nil, "c%d", i%3)}}
				case 1:
					cmd = kv.Command{Op: kv.OpSAdd, NowMS: now, Args: [][]byte{[]byte("s"), fmt.Appendf(nil, "%s-%d", n.Region(), i)}}
				case 2:
					cmd = kv.Command{Op: kv.OpSet, NowMS: now, Args: [][]byte{fmt.Appendf(nil, "r%d", i%3), fmt.Appendf(nil, "%s-%d", n.Region(), i)}}
				case 3:
					keyspace = "as"
					cmd = kv.Command{Op: kv.OpSet, NowMS: now, Args: [][]byte{fmt.Appendf(nil, "a%d", i%5), fmt.Appendf(nil, "%s-%d", n.Region(), i)}}
				}
				wctx, wcancel := context.WithTimeout(ctx, time.Second)
				_, _, err := n.Write(wctx, keyspace, cmd)
				wcancel()
				switch {
				case err != nil && keyspace == "ac" && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
					// A loaded machine (the race detector, other packages'
					// tests) can keep a local write past its second: its
					// outcome is unknown, which the checks below allow for.
					mu.Lock()
					unknown++
					if cmd.Op == kv.OpIncrBy {
						incrUnknown[string(cmd.Args[0])]++
					}
					mu.Unlock()
				case err != nil && keyspace == "ac":
					t.Errorf("active write in %s: %v", n.Region(), err) // local writes need no other region
					return
				case err != nil: // an async write from a region cut off from the home
				default:
					mu.Lock()
					switch cmd.Op {
					case kv.OpIncrBy:
						incr[string(cmd.Args[0])]++
						if incrBy[string(cmd.Args[0])] == nil {
							incrBy[string(cmd.Args[0])] = map[string]int{}
						}
						incrBy[string(cmd.Args[0])][n.Region()]++
					case kv.OpSAdd:
						members[string(cmd.Args[1])] = true
					default:
						if keyspace == "as" {
							asyncAcked++
						}
					}
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}

	const streams = 2*3*2 + 2*2 // active: all to all; async: home to the others
	await := func(what string, cond func(map[streamID]node.StreamStatus) bool) {
		t.Helper()
		var last map[streamID]node.StreamStatus
		if err := c.WaitFor(ctx, func() bool { last = allStreams(c); return cond(last) }); err != nil {
			for _, s := range last {
				t.Logf("%+v", s)
			}
			t.Fatalf("%s: %v", what, err)
		}
	}
	await("every stream running", func(ss map[streamID]node.StreamStatus) bool { return len(ss) == streams })
	rounds := []struct {
		name  string
		fault func()
	}{
		{"ap-southeast cut off", func() { c.Net.CutRegion("ap-southeast") }},
		{"us-east | eu-west, ap-southeast", func() {
			c.Net.Split(c.InRegion("us-east"), append(c.InRegion("eu-west"), c.InRegion("ap-southeast")...))
		}},
		{"eu-west's node isolated", func() { c.Net.Isolate(c.InRegion("eu-west")[0]) }},
	}
	var resumed []time.Duration
	for _, round := range rounds {
		time.Sleep(300 * time.Millisecond)
		round.fault()
		// The streams the fault stops are reported stalled, and why.
		var stalled node.StreamStatus
		await(round.name+": a stall reported", func(ss map[streamID]node.StreamStatus) bool {
			for _, s := range ss {
				if s.Stalled && strings.Contains(s.StallReason, "unreachable") {
					stalled = s
					return true
				}
			}
			return false
		})
		c.Heal()
		healed := time.Now()
		target := sourceApplied(t, c, "ac", "as")
		await(round.name+": every stream past what its source had at the heal", func(ss map[streamID]node.StreamStatus) bool {
			if len(ss) != streams {
				return false
			}
			for id, s := range ss {
				if s.Acked < target[id] || s.Stalled {
					return false
				}
			}
			return true
		})
		took := time.Since(healed)
		resumed = append(resumed, took)
		t.Logf("%s: %s %s -> %s was stalled (%s); every stream caught up with the heal %v after it",
			round.name, stalled.Keyspace, stalled.FromRegion, stalled.ToRegion, stalled.StallReason, took.Round(time.Millisecond))
	}
	close(stop)
	wg.Wait()
	quiet := time.Now()

	// Everything converges: the active keyspace's values, counters and set
	// everywhere, and the async keyspace's values as the home has them.
	home := c.Node(c.InRegion("us-east")[0])
	read := func(n *node.Node) string {
		var sb strings.Builder
		for _, k := range []string{"c0", "c1", "c2", "s", "r0", "r1", "r2"} {
			rec, ok, _, err := n.GetRecord(ctx, "ac", []byte(k), node.Eventual)
			switch {
			case err != nil || !ok:
				fmt.Fprintf(&sb, "%s=<%v %v> ", k, ok, err)
			case rec.Type == kv.TypeSet:
				// Its members, not their number: two nodes each missing a
				// different member have not converged.
				m, _ := kv.DecodeSet(rec.Payload)
				slices.SortFunc(m, bytes.Compare)
				fmt.Fprintf(&sb, "%s=%q ", k, m)
			default:
				fmt.Fprintf(&sb, "%s=%s ", k, rec.Payload)
			}
		}
		for i := range 5 {
			v, ok, _, err := n.Get(ctx, "as", fmt.Appendf(nil, "a%d", i), node.Eventual)
			fmt.Fprintf(&sb, "a%d=%s/%v/%v ", i, v, ok, err)
		}
		return sb.String()
	}
	var views []string
	if err := c.WaitFor(ctx, func() bool {
		views = views[:0]
		for _, n := range nodes {
			views = append(views, read(n))
		}
		return views[0] == views[1] && views[1] == views[2] && views[0] == read(home)
	}); err != nil {
		t.Fatalf("regions never converged:\n%s", strings.Join(views, "\n"))
	}
	converged := time.Since(quiet)
	for k, want := range incr {
		v, _, _, err := home.Get(ctx, "ac", []byte(k), node.Eventual)
		got, perr := strconv.ParseInt(string(v), 10, 64)
		if err != nil || perr != nil || got < want || got > want+incrUnknown[k] {
			t.Fatalf("counter %s = %s (%v), want the %d acknowledged increments (by region: %v), plus at most the %d of unknown outcome",
				k, v, err, want, incrBy[k], incrUnknown[k])
		}
	}
	rec, _, _, err := nodes[1].GetRecord(ctx, "ac", []byte("s"), node.Eventual)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := kv.DecodeSet(rec.Payload)
	for m := range members {
		if !slices.ContainsFunc(set, func(b []byte) bool { return string(b) == m }) {
			t.Fatalf("acknowledged add %s missing from the set", m)
		}
	}
	var repairs, retries uint64
	for _, s := range allStreams(c) {
		repairs += s.GapRepairs
		retries += s.Retries
	}
	t.Logf("FIGURES: every stream caught up with the heal after %v (world matrix x0.2, %d streams, %d rounds: %v); "+
		"converged %v after the writes stopped; %d adds, %d async writes acknowledged, %d active writes of unknown outcome (timed out); %d retries, %d gaps repaired",
		slices.Max(resumed).Round(time.Millisecond), streams, len(rounds), resumed, converged.Round(time.Millisecond),
		len(members), asyncAcked, unknown, retries, repairs)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines(substr ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if !slices.ContainsFunc(substr, func(x string) bool { return !strings.Contains(l, x) }) {
			out = append(out, l)
		}
	}
	return out
}

// TestRefusedStreamIsLoud: a destination that refuses the stream's
// batches (here its clock check: a change stamped an hour ahead) makes the
// stream stalled within a few heartbeats, with the refusal in the node's
// status, the cluster status (/v1/cluster), the meridian_stream_stalled
// metric, and one warning in the log.
func TestRefusedStreamIsLoud(t *testing.T) {
	logs := &syncBuffer{}
	c := testcluster.New(t, testcluster.Options{Regions: []string{"us-east", "eu-west"}, Logs: logs})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "as", Strategy: metadata.Async, HomeRegion: "us-east", Shards: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := c.Node(c.InRegion("us-east")[0])
	if _, err := home.Put(ctx, "as", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(ctx, func() bool {
		ss := home.Streams()
		return len(ss) == 1 && ss[0].Acked > 0 && ss[0].LagEntries == 0
	}); err != nil {
		t.Fatalf("the stream never caught up: %+v", home.Streams())
	}
	future := time.Now().Add(time.Hour).UnixMilli()
	if _, _, err := home.Write(ctx, "as", kv.Command{Op: kv.OpSet, NowMS: future, Args: [][]byte{[]byte("k2"), []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	wrote := time.Now()
	var st node.StreamStatus
	if err := c.WaitFor(ctx, func() bool {
		ss := home.Streams()
		if len(ss) != 1 || !ss[0].Stalled {
			return false
		}
		st = ss[0]
		return true
	}); err != nil {
		t.Fatalf("the stream never showed stalled: %+v", home.Streams())
	}
	t.Logf("FIGURES: stream reported stalled %v after the refused write (stall threshold %v + RTT)", time.Since(wrote).Round(time.Millisecond), node.StreamStallAfter)
	if !strings.Contains(st.StallReason, "refused batch (clock_skew") || st.StalledForMS < node.StreamStallAfter.Milliseconds() || st.Retries == 0 {
		t.Fatalf("stalled stream %+v", st)
	}
	// The cluster status, as /v1/cluster serves it, says so too.
	cs := home.Status(ctx)
	if i := slices.IndexFunc(cs.Streams, func(s node.StreamStatus) bool { return s.Keyspace == "as" && s.Stalled }); i < 0 ||
		!strings.Contains(cs.Streams[i].StallReason, "clock_skew") {
		t.Fatalf("cluster status streams %+v", cs.Streams)
	}
	// And the metric.
	families, err := metrics.ForNode(home).Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "meridian_stream_stalled" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("meridian_stream_stalled is not 1 for the stalled stream")
	}
	// One warning, with the refusal, however many retries (the next one is
	// due in 30 s).
	if err := c.WaitFor(ctx, func() bool { return len(logs.lines("level=WARN", "stream stalled")) > 0 }); err != nil {
		t.Fatal("no warning logged")
	}
	retries := st.Retries
	if err := c.WaitFor(ctx, func() bool { return home.Streams()[0].Retries > retries+3 }); err != nil {
		t.Fatal("the stream stopped retrying")
	}
	warns := logs.lines("level=WARN", "stream stalled")
	if len(warns) != 1 || !strings.Contains(warns[0], "clock_skew") || !strings.Contains(warns[0], "keyspace=as") {
		t.Fatalf("stall warnings:\n%s", strings.Join(warns, "\n"))
	}
	// The destination says it refuses, once too.
	if refused := logs.lines("level=WARN", "refused a stream batch"); len(refused) != 1 {
		t.Fatalf("destination warnings:\n%s", strings.Join(refused, "\n"))
	}
}
