package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testutil"
)

// Recovery at the speed of the network: writers in every region under a
// fault, the fault healed, the writers stopped, and the time until every
// node of every region holds the same data measured, round after round.
// Every acknowledged increment and add must be there in the end.

// activeLedger records what writers of an active keyspace were told.
type activeLedger struct {
	mu      sync.Mutex
	incr    map[string]int64           // counter -> acknowledged increments
	unknown map[string]int64           // counter -> increments of unknown outcome
	added   map[string]map[string]bool // set -> acknowledged members
	maybe   map[string]map[string]bool // set -> members of unknown outcome
}

func newActiveLedger() *activeLedger {
	return &activeLedger{incr: map[string]int64{}, unknown: map[string]int64{}, added: map[string]map[string]bool{}, maybe: map[string]map[string]bool{}}
}

func (l *activeLedger) record(key string, by int64, member string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	into := func(m map[string]map[string]bool) {
		if m[key] == nil {
			m[key] = map[string]bool{}
		}
		m[key][member] = true
	}
	switch {
	case member == "" && err == nil:
		l.incr[key] += by
	case member == "":
		l.unknown[key] += by
	case err == nil:
		into(l.added)
	default:
		into(l.maybe)
	}
}

// respClient is a connection pool to one node with a keyspace and level
// set on every connection.
func respClient(n *wnode, ks, level string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.resp, Protocol: 2, MaxRetries: -1, PoolSize: 4,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			if err := cn.Do(ctx, "MERIDIAN.KEYSPACE", ks).Err(); err != nil {
				return err
			}
			return cn.Do(ctx, "MERIDIAN.CONSISTENCY", level).Err()
		}})
}

// activeWriters run INCRBY on counters and SADD of unique members on sets
// through every node until stop.
func activeWriters(w *world, ks string, l *activeLedger, seed uint64, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i, n := range w.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(200+i)))
			c := respClient(n, ks, "session")
			defer c.Close()
			for j := 0; !stop.Load(); j++ {
				if !n.running() {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				ctx, cancel := ctxT(2 * time.Second)
				var err error
				if rng.IntN(2) == 0 {
					key, by := fmt.Sprintf("ctr-%d", rng.IntN(4)), int64(1+rng.IntN(9))
					err = c.IncrBy(ctx, key, by).Err()
					l.record(key, by, "", err)
				} else {
					key, member := fmt.Sprintf("set-%d", rng.IntN(2)), fmt.Sprintf("n%d-%d", n.id, j)
					err = c.SAdd(ctx, key, member).Err()
					l.record(key, 0, member, err)
				}
				cancel()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

// activeState reads, at eventual, every counter and set of the ledger
// through node n's own replicas, as one comparable string.
func activeState(c *redis.Client, l *activeLedger) (string, error) {
	l.mu.Lock()
	var ctrs, sets []string
	for k := range l.incr {
		ctrs = append(ctrs, k)
	}
	for k := range l.unknown {
		if _, ok := l.incr[k]; !ok {
			ctrs = append(ctrs, k)
		}
	}
	for k := range l.added {
		sets = append(sets, k)
	}
	l.mu.Unlock()
	sort.Strings(ctrs)
	sort.Strings(sets)
	ctx, cancel := ctxT(2 * time.Second)
	defer cancel()
	out := ""
	for _, k := range ctrs {
		v, err := c.Get(ctx, k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", err
		}
		out += k + "=" + v + ";"
	}
	for _, k := range sets {
		n, err := c.SCard(ctx, k).Result()
		if err != nil {
			return "", err
		}
		out += k + "#" + strconv.FormatInt(n, 10) + ";"
	}
	return out, nil
}

// waitConverged polls every node until all report the same state, and
// returns how long that took.
func waitConverged(t *testing.T, w *world, clients []*redis.Client, state func(c *redis.Client) (string, error)) time.Duration {
	t.Helper()
	start := time.Now()
	var last []string
	testutil.Eventually(w.t, 90*time.Second, "every node to converge", func() bool {
		last = last[:0]
		for _, c := range clients {
			s, err := state(c)
			if err != nil {
				return false
			}
			last = append(last, s)
		}
		for _, s := range last[1:] {
			if s != last[0] {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// faultRound injects one fault of kinds for hold and heals it.
func convergenceRounds(t *testing.T, w *world, nm *nemesis, rounds int, writers func(stop *atomic.Bool) *sync.WaitGroup,
	converged func() time.Duration) []time.Duration {
	t.Helper()
	var times []time.Duration
	for r := range rounds {
		var stop atomic.Bool
		wg := writers(&stop)
		time.Sleep(300 * time.Millisecond)
		hold := time.Duration(1500+nm.rng.IntN(1500)) * time.Millisecond
		desc := nm.one(hold)
		stop.Store(true)
		wg.Wait()
		d := converged()
		t.Logf("round %d: %s for %v; converged %v after the heal", r+1, desc, hold, d.Round(time.Millisecond))
		times = append(times, d)
	}
	return times
}

func durationStats(ds []time.Duration) (p50, worst time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// TestActiveConvergesAfterFaults: writers of counters and sets in every
// region of an active keyspace under one fault per round; after each heal
// the time until every node holds the same state, and in the end every
// acknowledged increment and add.
func TestActiveConvergesAfterFaults(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	r := activeFaultRounds(t, w, "cv", []string{"isolate", "cut-region", "majority-minority", "kill", "pause", "restart"}, 10)
	p50, worst := durationStats(r.times)
	faults, n := r.nm.summary()
	t.Logf("FIGURES: active convergence after heal over %d rounds (%s): p50 %v, max %v (target 2 s + largest round trip %v = %v); %d acknowledged increments summed, %d acknowledged adds, all present on every node",
		n, faults, p50.Round(time.Millisecond), worst.Round(time.Millisecond), w.maxRTT(), 2*time.Second+w.maxRTT(), r.incr, r.adds)
	data := dataBytes(r.clients[0], r.ledger)
	var rss []string
	for _, node := range w.nodes {
		if b, err := processRSS(node); err == nil {
			rss = append(rss, fmt.Sprintf("%d MB", b>>20))
		}
	}
	t.Logf("FIGURES: after the active workload, node RSS %v for %d KB of data", rss, data>>10)
}

// activeRun is what activeFaultRounds measured.
type activeRun struct {
	clients    []*redis.Client // one per node, on the keyspace at eventual
	ledger     *activeLedger
	nm         *nemesis
	times      []time.Duration // from each heal to convergence
	incr, adds int64           // acknowledged increments summed, acknowledged adds
}

// activeFaultRounds creates the active keyspace ks and runs writers of
// counters and sets in every region under one fault of kinds per round
// (rounds of them, more with MERIDIAN_E2E_SECONDS), timing each
// convergence after the heal; then it requires every acknowledged
// increment and add on every node.
func activeFaultRounds(t *testing.T, w *world, ks string, kinds []string, rounds int) activeRun {
	t.Helper()
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": ks, "strategy": "active", "shards": 2})
	r := activeRun{ledger: newActiveLedger(), nm: newNemesis(w, seed, kinds, nil)}
	for _, n := range w.nodes {
		c := respClient(n, ks, "eventual")
		t.Cleanup(func() { _ = c.Close() })
		r.clients = append(r.clients, c)
	}
	if d := faultSeconds(0); d > 0 {
		rounds = max(rounds, int(d/(4*time.Second)))
	}
	r.times = convergenceRounds(t, w, r.nm, rounds,
		func(stop *atomic.Bool) *sync.WaitGroup {
			return activeWriters(w, ks, r.ledger, seed+uint64(time.Now().UnixNano()), stop)
		},
		func() time.Duration {
			return waitConverged(t, w, r.clients, func(c *redis.Client) (string, error) { return activeState(c, r.ledger) })
		})
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	r.incr, r.adds = checkActiveLedger(t, r.clients, r.ledger)
	return r
}

// TestAsyncConvergesAfterFaults: writers in every region of an async
// keyspace (forwarded to the primary) under one fault per round; after
// each heal the time until every node holds every key acknowledged in the
// round, with the primary's value.
func TestAsyncConvergesAfterFaults(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": "cva", "strategy": "async", "shards": 2, "home_region": "us-east"})
	var clients []*redis.Client
	for _, n := range w.nodes {
		c := respClient(n, "cva", "eventual")
		defer c.Close()
		clients = append(clients, c)
	}
	nm := newNemesis(w, seed, []string{"isolate", "cut-region", "majority-minority", "kill", "pause", "restart"}, nil)
	rounds := 10
	if d := faultSeconds(0); d > 0 {
		rounds = max(10, int(d/(4*time.Second)))
	}
	total := 0
	var round *sync.Map
	times := convergenceRounds(t, w, nm, rounds,
		func(stop *atomic.Bool) *sync.WaitGroup {
			round = &sync.Map{}
			return uniqueWriters(w, "cva", round, stop)
		},
		func() time.Duration {
			var keys, want []string
			round.Range(func(k, v any) bool {
				keys, want = append(keys, k.(string)), append(want, v.(string))
				return true
			})
			total += len(keys)
			return waitConverged(t, w, clients, func(c *redis.Client) (string, error) {
				if len(keys) == 0 {
					return "", nil
				}
				ctx, cancel := ctxT(2 * time.Second)
				defer cancel()
				vs, err := c.MGet(ctx, keys...).Result()
				if err != nil {
					return "", err
				}
				for i, v := range vs {
					if s, _ := v.(string); s != want[i] {
						return "", fmt.Errorf("%s = %v, acknowledged %s", keys[i], v, want[i])
					}
				}
				return "ok", nil
			})
		})
	p50, worst := durationStats(times)
	faults, n := nm.summary()
	t.Logf("FIGURES: async convergence after heal over %d rounds (%s): p50 %v, max %v (target 2 s + largest round trip %v = %v); %d acknowledged writes, all on every node",
		n, faults, p50.Round(time.Millisecond), worst.Round(time.Millisecond), w.maxRTT(), 2*time.Second+w.maxRTT(), total)
}

// checkActiveLedger requires every acknowledged increment and add on
// every node (and no more increments than were sent), and returns the
// acknowledged increments summed and the acknowledged adds. l.mu is held.
func checkActiveLedger(t *testing.T, clients []*redis.Client, l *activeLedger) (incr, adds int64) {
	t.Helper()
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	for i, c := range clients {
		for k, want := range l.incr {
			got, err := c.Get(ctx, k).Int64()
			if err != nil || got < want || got > want+l.unknown[k] {
				t.Errorf("node %d: %s = %d (%v), acknowledged %d, unknown outcome %d", i+1, k, got, err, want, l.unknown[k])
			}
			if i == 0 {
				incr += want
			}
		}
		for k, members := range l.added {
			got, err := c.SMembers(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, m := range got {
				have[m] = true
			}
			for m := range members {
				if !have[m] {
					t.Errorf("node %d: acknowledged member %s of %s is missing", i+1, m, k)
				}
			}
			if i == 0 {
				adds += int64(len(members))
			}
		}
	}
	return incr, adds
}
