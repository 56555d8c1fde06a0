package resp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/pki"
)

// BenchmarkSecurityCost measures RESP GET and SET (durable: a raft
// quorum of three nodes on loopback) through go-redis, 50 connections,
// on a cluster without security (plaintext, no authentication) and on a
// secure one (TLS, a user authenticated by password, every command
// authorized). The two clusters run in the same process, and the four
// cases alternate, so that the machine's other load weighs on both
// alike:
//
//	go test -run XXX -bench BenchmarkSecurityCost -benchtime 5s -count 5 ./resp/
//
// and compare the ops/s of plain/... with tls+auth/....
func BenchmarkSecurityCost(b *testing.B) {
	type setup struct {
		name string
		addr string
		opts func() *redis.Options
	}
	var setups []setup
	for _, secure := range []bool{false, true} {
		c := testcluster.New(b, testcluster.Options{Secure: secure})
		b.Cleanup(c.Close)
		c.CreateKeyspace(metadata.KeyspaceSpec{Name: "t", Shards: 4})
		n := c.Node(1)
		cfg := Config{DefaultKeyspace: "t"}
		var tlsCfg *tls.Config
		name := "plain"
		if secure {
			name = "tls+auth"
			cfg.Certs = n.Certs()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := n.SetUser(ctx, "bench", []string{"on", ">bench-pw", "~t", "+@read", "+@write"}); err != nil {
				b.Fatal(err)
			}
			cancel()
			var err error
			if tlsCfg, _, err = pki.ClientConfig(c.CA, ""); err != nil {
				b.Fatal(err)
			}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := Serve(ln, n, cfg)
		b.Cleanup(func() { _ = s.Close() })
		addr := s.Addr()
		setups = append(setups, setup{name: name, addr: addr, opts: func() *redis.Options {
			o := &redis.Options{Addr: addr, Protocol: 2, PoolSize: 1, MaxRetries: -1, DisableIdentity: true}
			if secure {
				o.TLSConfig, o.Username, o.Password = tlsCfg.Clone(), "bench", "bench-pw"
			}
			return o
		}})
		rdb := redis.NewClient(setups[len(setups)-1].opts())
		if err := rdb.Set(context.Background(), "k", "value-of-k", 0).Err(); err != nil {
			b.Fatal(err)
		}
		_ = rdb.Close()
	}
	for _, op := range []string{"get", "set"} {
		for _, s := range setups {
			b.Run(s.name+"/"+op, func(b *testing.B) {
				var next atomic.Int64
				b.SetParallelism(25) // 50 connections on 2 cores
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					rdb := redis.NewClient(s.opts())
					defer rdb.Close()
					ctx := context.Background()
					if err := rdb.Ping(ctx).Err(); err != nil { // connect and authenticate first
						b.Error(err)
						return
					}
					for pb.Next() {
						var err error
						if op == "get" {
							err = rdb.Get(ctx, "k").Err()
						} else {
							err = rdb.Set(ctx, fmt.Sprintf("k%d", next.Add(1)%1000), "v", 0).Err()
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			})
		}
	}
}
