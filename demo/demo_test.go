package demo

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDemoServesEveryRegion runs the demo on free ports without emulated
// latency, writes through the first region's port, reads through the
// last, and checks that Ctrl-C (context cancellation) stops it cleanly and
// removes its temporary data. The demo is secure: it prints redis-cli
// lines with TLS and the admin user's password, which the test uses; a
// client without them is refused over RESP and HTTP.
func TestDemoServesEveryRegion(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Latency: "none", BasePort: 0}, pw)
		pw.Close()
	}()
	portRE := regexp.MustCompile(`redis-cli --tls --cacert (\S+) --user (\S+) --pass (\S+) -p (\d+)`)
	httpRE := regexp.MustCompile(`(https://\S+)`)
	var cacert, user, pass string
	var httpURL string
	dataRE := regexp.MustCompile(`data in (\S+)`)
	var ports []string
	var dataDir string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if m := portRE.FindStringSubmatch(line); m != nil {
			cacert, user, pass = m[1], m[2], m[3]
			ports = append(ports, m[4])
		}
		if m := httpRE.FindStringSubmatch(line); m != nil && httpURL == "" {
			httpURL = m[1]
		}
		if m := dataRE.FindStringSubmatch(line); m != nil {
			dataDir = strings.TrimSuffix(m[1], ",")
		}
		if strings.Contains(line, "are ready") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if len(ports) != 3 {
		cancel()
		t.Fatalf("demo printed %d RESP ports, want 3 (err %v)", len(ports), <-done)
	}
	pem, err := os.ReadFile(cacert)
	if err != nil {
		cancel()
		t.Fatalf("the CA the demo printed: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsCfg := &tls.Config{RootCAs: pool}
	c1 := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + ports[0], Protocol: 2, TLSConfig: tlsCfg, Username: user, Password: pass})
	c3 := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + ports[2], Protocol: 2, TLSConfig: tlsCfg, Username: user, Password: pass})
	anon := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + ports[0], Protocol: 2, TLSConfig: tlsCfg})
	defer anon.Close()
	defer c1.Close()
	defer c3.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	if err := c1.Set(rctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c3.Get(rctx, "greeting").Result(); err != nil || v != "hello" {
		t.Fatalf("GET in the third region: %q %v", v, err)
	}
	if err := anon.Get(rctx, "greeting").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET without credentials: %v, want NOAUTH", err)
	}
	// The async keyspace: written in the primary region, read locally (and
	// eventually) in the third.
	w, r := c1.Conn(), c3.Conn()
	defer w.Close()
	defer r.Close()
	for _, cmd := range [][]any{{"MERIDIAN.KEYSPACE", "async"}} {
		if err := w.Do(rctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
		if err := r.Do(rctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Do(rctx, "MERIDIAN.CONSISTENCY", "eventual").Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.Set(rctx, "greeting", "async hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		v, err := r.Get(rctx, "greeting").Result()
		if err == nil && v == "async hello" {
			break
		}
		if rctx.Err() != nil {
			t.Fatalf("the async write never reached the third region: %q %v", v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The cluster status lists every node with its client addresses.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	if resp, err := hc.Get(httpURL + "/v1/cluster"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cluster status without credentials: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if err := func() error {
		req, _ := http.NewRequest(http.MethodGet, httpURL+"/v1/cluster", nil)
		req.SetBasicAuth(user, pass)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st struct {
			Nodes []struct {
				ID       int    `json:"id"`
				RESPAddr string `json:"resp_addr"`
				HTTPAddr string `json:"http_addr"`
			} `json:"nodes"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err
		}
		if len(st.Nodes) != 3 {
			return fmt.Errorf("%d nodes in the status", len(st.Nodes))
		}
		for _, n := range st.Nodes {
			if n.RESPAddr == "" || n.HTTPAddr == "" {
				return fmt.Errorf("node %d has no client addresses in the status: %+v", n.ID, n)
			}
		}
		return nil
	}(); err != nil {
		t.Fatalf("cluster status over HTTP: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after cancellation")
	}
	if dataDir == "" {
		t.Fatal("demo did not say where its data is")
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("temporary data directory %s still there (%v)", dataDir, err)
	}
}

func TestDemoBadInput(t *testing.T) {
	ctx := context.Background()
	if err := Run(ctx, Options{Latency: "/no/such/file.json"}, io.Discard); err == nil {
		t.Fatal("a missing latency file was accepted")
	}
	if err := Run(ctx, Options{Regions: []string{"us-east", "mars"}}, io.Discard); err == nil || !strings.Contains(err.Error(), "mars") {
		t.Fatalf("an unknown region: %v", err)
	}
}
