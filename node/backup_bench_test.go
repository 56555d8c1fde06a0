package node_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/node"
)

// envInt reads a size from the environment (benchmarks scale up with it).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// loadKeyspace writes keys of size bytes to a keyspace in MSETs of 500.
func loadKeyspace(b testing.TB, ctx context.Context, n *node.Node, keyspace string, keys, size int) {
	val := []byte(strings.Repeat("v", size))
	// Keys are grouped by shard: an MSET is routed by its first key.
	ks := n.Metadata().Keyspaces[keyspace]
	byShard := map[int][][]byte{}
	for i := range keys {
		k := fmt.Appendf(nil, "key-%08d", i)
		s := node.ShardOf(k, len(ks.Shards))
		byShard[s] = append(byShard[s], k, val)
		if len(byShard[s]) == 1000 {
			if _, _, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpMSet, NowMS: time.Now().UnixMilli(), Args: byShard[s]}); err != nil {
				b.Fatal(err)
			}
			byShard[s] = nil
		}
	}
	for _, args := range byShard {
		if len(args) > 0 {
			if _, _, err := n.Write(ctx, keyspace, kv.Command{Op: kv.OpMSet, NowMS: time.Now().UnixMilli(), Args: args}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBackupRestore measures, on a three-region cluster (one node
// each, loopback) with a sync keyspace of MERIDIAN_BENCH_BACKUP_KEYS keys
// (default 100,000) of 256 bytes: a full backup to a local directory
// (MB/s and keys/s of what it wrote), an incremental one after 1% of the
// keys changed (its size against the full one's), and a restore of the
// full backup into a new keyspace (seconds per GiB of stored records,
// extrapolated from the measured size).
//
//	go test -run XXX -bench BackupRestore -benchtime 1x ./node/
func BenchmarkBackupRestore(b *testing.B) {
	keys := envInt("MERIDIAN_BENCH_BACKUP_KEYS", 100000)
	const size = 256
	c := testcluster.New(b, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "big", Shards: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	n := c.Running()[0]
	loadKeyspace(b, ctx, n, "big", keys, size)
	b.ResetTimer()
	for i := range b.N {
		target := "file://" + b.TempDir()
		start := time.Now()
		full, err := n.CreateBackup(ctx, node.BackupRequest{Target: target, Full: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.ReportMetric(float64(full.NewBytes)/(1<<20)/took.Seconds(), "backup-MB/s")
		b.ReportMetric(float64(full.Keys)/took.Seconds(), "backup-keys/s")
		// 1% of the keys change.
		changed := keys / 100
		loadKeyspace(b, ctx, n, "big", changed, size)
		incr, err := n.CreateBackup(ctx, node.BackupRequest{Target: target}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(full.NewBytes), "full-bytes")
		b.ReportMetric(float64(incr.NewBytes), "incremental-bytes")
		start = time.Now()
		st, err := n.Restore(ctx, node.RestoreRequest{From: target, Keyspace: "big", Backup: full.ID, As: fmt.Sprintf("restored%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		rtook := time.Since(start)
		recordBytes := float64(st.Keys) * float64(size+len("key-00000000")+9)
		b.ReportMetric(rtook.Seconds()/(recordBytes/(1<<30)), "restore-s/GiB")
		b.Logf("FIGURES: %d keys x %d B: full backup %.1f MiB in %v (%.1f MB/s, %.0f keys/s); after 1%% of keys changed, incremental %.1f KiB (%.2f%% of the full); restore of %d keys (%.1f MiB of records) in %v: %.0f s/GiB",
			keys, size, float64(full.NewBytes)/(1<<20), took.Round(time.Millisecond), float64(full.NewBytes)/(1<<20)/took.Seconds(), float64(full.Keys)/took.Seconds(),
			float64(incr.NewBytes)/1024, 100*float64(incr.NewBytes)/float64(full.NewBytes), st.Keys, recordBytes/(1<<20), rtook.Round(time.Millisecond), rtook.Seconds()/(recordBytes/(1<<30)))
	}
}

// BenchmarkArchiveLag measures the continuous archive's lag (the RPO) on
// the world matrix (x0.2) while writers in all three regions write to a
// sync and an active keyspace for MERIDIAN_BENCH_ARCHIVE_SECONDS (default
// 10): every 100 ms it samples, over every archived group, how long ago
// the newest archived entry was stamped, and reports the median, p99 and
// worst sample of the largest lag.
//
//	go test -run XXX -bench ArchiveLag -benchtime 1x ./node/
func BenchmarkArchiveLag(b *testing.B) {
	secs := envInt("MERIDIAN_BENCH_ARCHIVE_SECONDS", 10)
	c := testcluster.New(b, testcluster.Options{Matrix: netsim.WorldMatrix().Scaled(0.2)})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 4})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "a", Strategy: metadata.Active, Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.Running()[0].SetBackupSchedule(ctx, &metadata.BackupSchedule{Target: "file://" + b.TempDir(), Archive: true}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writes sync.Map
		for _, n := range c.Running() {
			for _, ks := range []string{"s", "a"} {
				for w := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						count := 0
						for i := 0; ; i++ {
							select {
							case <-stop:
								writes.Store(fmt.Sprintf("%d/%s/%d", n.ID(), ks, w), count)
								return
							default:
							}
							cmd := kv.Command{Op: kv.OpIncrBy, Int: 1, NowMS: time.Now().UnixMilli(), Args: [][]byte{fmt.Appendf(nil, "k%d-%d", w, i%50)}}
							if _, _, err := n.Write(ctx, ks, cmd); err == nil {
								count++
							}
						}
					}()
				}
			}
		}
		var lags []time.Duration
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		warm := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			if time.Now().Before(warm) {
				continue
			}
			var worst time.Duration
			groups := 0
			for _, n := range c.Running() {
				for _, a := range n.Archives() {
					if !a.LastStamp.IsZero() {
						groups++
						worst = max(worst, time.Duration(a.LagMS)*time.Millisecond)
					}
				}
			}
			if groups > 0 {
				lags = append(lags, worst)
			}
		}
		close(stop)
		wg.Wait()
		total := 0
		writes.Range(func(_, v any) bool { total += v.(int); return true })
		if len(lags) == 0 {
			b.Fatal("no archive reported a lag")
		}
		slices.Sort(lags)
		p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
		b.ReportMetric(float64(p(0.5).Milliseconds()), "lag-p50-ms")
		b.ReportMetric(float64(p(0.99).Milliseconds()), "lag-p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "lag-max-ms")
		b.Logf("FIGURES: archive lag (the RPO), the largest over every group, sampled every 100 ms for %ds under %d writes/s from 3 regions: p50 %v, p99 %v, max %v (archive interval %v, seal interval %v)",
			secs-2, total/secs, p(0.5), p(0.99), lags[len(lags)-1], node.DefaultBackupArchiveInterval, node.DefaultBackupSealInterval)
	}
}
