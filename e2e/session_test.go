package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/check"
)

// Data requests over HTTP, where the session token and the consistency
// level travel in headers: each request is independent of any connection.

var dataClient = &http.Client{Timeout: 3 * time.Second}

// answer is what the tests read of a data answer.
type answer struct {
	found   bool
	value   string
	session string
	region  string
	node    string
	index   string
}

func (n *wnode) dataRequest(method, ks, key, level, token string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+n.http+"/v1/keyspaces/"+ks+"/keys/"+key, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if level != "" {
		req.Header.Set("Meridian-Consistency", level)
	}
	if token != "" {
		req.Header.Set("Meridian-Session", token)
	}
	resp, err := dataClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{session: resp.Header.Get("Meridian-Session"), region: resp.Header.Get("Meridian-Region"),
		node: resp.Header.Get("Meridian-Node"), index: resp.Header.Get("Meridian-Index")}
	switch {
	case resp.StatusCode == http.StatusNotFound && bytes.Contains(data, []byte("key_not_found")):
		return a, nil
	case resp.StatusCode != http.StatusOK:
		return a, fmt.Errorf("%s %s: %s: %s", method, key, resp.Status, bytes.TrimSpace(data))
	}
	if method == http.MethodGet {
		var v struct {
			Value *string `json:"value"`
		}
		if err := json.Unmarshal(data, &v); err != nil || v.Value == nil {
			return a, fmt.Errorf("GET %s: bad answer %s", key, data)
		}
		a.found, a.value = true, *v.Value
	}
	return a, nil
}

func (n *wnode) put(ks, key, value, token string) (answer, error) {
	return n.dataRequest(http.MethodPut, ks, key, "", token, map[string]string{"value": value})
}

func (n *wnode) get(ks, key, level, token string) (answer, error) {
	return n.dataRequest(http.MethodGet, ks, key, level, token, nil)
}

// sessionWorkload runs, until stop, sessions that each write increasing
// integers to a key of their own through one region and, after every
// acknowledged write, read it through another region with the token, then
// carry the token on: judged by check.Sessions.
func sessionWorkload(w *world, ks string, judge *check.Sessions, seed uint64, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	regions := w.cfg.regions
	for i := range 2 * len(regions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+i)))
			name := fmt.Sprintf("%s-sess-%d", ks, i)
			from, to := regions[i%len(regions)], regions[(i+1+i/len(regions))%len(regions)]
			token := ""
			next := int64(1)
			pick := func(region string) *wnode {
				ns := w.inRegion(region)
				return ns[rng.IntN(len(ns))]
			}
			for !stop.Load() {
				wn := pick(from)
				if !wn.running() {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				a, err := wn.put(ks, name, strconv.FormatInt(next, 10), token)
				if err != nil {
					next++ // it may still have happened: never reuse a value
					time.Sleep(20 * time.Millisecond)
					continue
				}
				judge.Wrote(name, next)
				next++
				token = a.session
				// Read it elsewhere with the token, until a read answers.
				for !stop.Load() {
					rn := pick(to)
					if !rn.running() {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					a, err := rn.get(ks, name, "session", token)
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					v := int64(0)
					if a.found {
						v, _ = strconv.ParseInt(a.value, 10, 64)
					}
					judge.Read(name, v, a.found, fmt.Sprintf("node %s (%s) index %s", a.node, a.region, a.index))
					if a.session != "" {
						token = a.session
					}
					break
				}
			}
		}()
	}
	return &wg
}

// TestSessionsUnderFaults hands session tokens from region to region after
// every write, for a keyspace of each strategy, while the nemesis kills,
// pauses and restarts nodes and cuts links: no read may miss its session's
// write or go back.
func TestSessionsUnderFaults(t *testing.T) {
	w := newWorld(t, worldConfig{regions: threeRegions})
	seed := seedFor(t)
	w.createKeyspace(map[string]any{"name": "ss", "strategy": "sync", "shards": 2, "home_region": "us-east"})
	w.createKeyspace(map[string]any{"name": "sa", "strategy": "async", "shards": 2, "home_region": "us-east"})
	w.createKeyspace(map[string]any{"name": "sc", "strategy": "active", "shards": 2})
	judges := map[string]*check.Sessions{}
	var stop atomic.Bool
	var wgs []*sync.WaitGroup
	for _, ks := range []string{"ss", "sa", "sc"} {
		judges[ks] = check.NewSessions()
		wgs = append(wgs, sessionWorkload(w, ks, judges[ks], seed, &stop))
	}
	nm := newNemesis(w, seed, []string{"kill", "restart", "pause", "isolate", "cut-region"}, w.leaderOf("sa", "us-east"))
	nm.run(faultSeconds(25))
	stop.Store(true)
	for _, wg := range wgs {
		wg.Wait()
	}
	faults, n := nm.summary()
	for _, ks := range []string{"ss", "sa", "sc"} {
		reads, ryw, mono, examples := judges[ks].Result()
		t.Logf("FIGURES: sessions on %s: %d reads with a token handed across regions, %d faults (%s): %d read-your-writes and %d monotonic-read violations",
			ks, reads, n, faults, ryw, mono)
		for _, e := range examples {
			t.Errorf("%s: %s", ks, e)
		}
		if reads < 20 {
			t.Errorf("%s: only %d session reads", ks, reads)
		}
	}
}
