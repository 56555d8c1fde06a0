package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// weedBinary finds SeaweedFS's weed: $MERIDIAN_WEED, then the PATH, then
// the cache .ci/weed.sh builds it into.
func weedBinary() string {
	if p := os.Getenv("MERIDIAN_WEED"); p != "" {
		return p
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	cache := os.Getenv("MERIDIAN_CACHE")
	if cache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(dir, "meridian")
		}
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "weed-*", "weed"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return m
		}
	}
	return ""
}

// freePort returns a port free on 127.0.0.1 whose gRPC twin (port +
// 10000, as weed uses) is free too.
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			_ = ln.Close()
			continue
		}
		twin, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = twin.Close()
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

// startWeed runs a SeaweedFS server with its S3 gateway for the test and
// returns the S3 endpoint (host:port); the test is skipped if weed is not
// installed.
func startWeed(t *testing.T) string {
	t.Helper()
	bin := weedBinary()
	if bin == "" {
		t.Skip("SeaweedFS's weed is not installed (run .ci/weed.sh, or set MERIDIAN_WEED): the S3 backup test needs a real S3 server")
	}
	dir := t.TempDir()
	s3 := freePort(t)
	args := []string{"server", "-dir=" + dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", freePort(t)), fmt.Sprintf("-volume.port=%d", freePort(t)), fmt.Sprintf("-filer.port=%d", freePort(t)),
		"-s3", fmt.Sprintf("-s3.port=%d", s3), "-master.volumeSizeLimitMB=32", "-volume.max=20", "-metricsPort=0"}
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start weed: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	endpoint := fmt.Sprintf("127.0.0.1:%d", s3)
	// Ready once a bucket can be made and an object written back.
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := func() error {
			tg, err := backup.Open("s3://probe/x", backup.Options{Endpoint: endpoint, Insecure: true})
			if err != nil {
				return err
			}
			if err := backup.EnsureBucket(ctx, tg); err != nil {
				return err
			}
			if err := tg.Put(ctx, "p", []byte("ok")); err != nil {
				return err
			}
			_, err = tg.Get(ctx, "p")
			return err
		}()
		cancel()
		if err == nil {
			return endpoint
		}
		if time.Now().After(deadline) {
			t.Fatalf("weed's S3 gateway never answered: %v\n%s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBackupToS3: a backup to an S3 bucket (SeaweedFS's gateway, through
// minio-go), encrypted, verified and restored; an object altered in the
// bucket is found by verify and refused by restore, naming it.
func TestBackupToS3(t *testing.T) {
	endpoint := startWeed(t)
	c := backupCluster(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "s", Shards: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := c.Running()[0]
	fill(t, ctx, n, "s", 300, 200)
	key := bytes.Repeat([]byte{0x5a}, 32)
	opts := backup.Options{Endpoint: endpoint, Insecure: true, Key: key}
	target := "s3://meridian-backups/cluster-a"
	m, err := n.CreateBackup(ctx, node.BackupRequest{Target: target, Options: opts, Full: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := backup.OpenStore(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := backup.Verify(ctx, store); err != nil || !rep.OK() || rep.Objects == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	// Nothing in the bucket is readable without the key.
	plain, _ := backup.OpenStore(target, backup.Options{Endpoint: endpoint, Insecure: true})
	if _, err := backup.Verify(ctx, plain); err == nil {
		t.Fatal("an encrypted backup verified without its key")
	}
	if _, err := n.Restore(ctx, node.RestoreRequest{From: target, Options: opts, Keyspace: "s", As: "s2"}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if v, ok, _, err := n.Get(ctx, "s2", fmt.Appendf(nil, "k%05d", i), node.Strong); err != nil || !ok || len(v) != 200 {
			t.Fatalf("k%05d restored as %d bytes %v %v", i, len(v), ok, err)
		}
	}
	// Alter one byte of a base part in the bucket.
	victim := m.Keyspaces[0].Shards[0].Groups[0].BaseParts[0].Name
	data, err := store.T.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := store.T.Put(ctx, victim, data); err != nil {
		t.Fatal(err)
	}
	rep, err := backup.Verify(ctx, store)
	if err != nil || rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), victim) {
		t.Fatalf("verify after the damage: %v %+v, want a problem naming %s", err, rep.Problems, victim)
	}
	_, err = n.Restore(ctx, node.RestoreRequest{From: target, Options: opts, Keyspace: "s", As: "s3"})
	if err == nil || !strings.Contains(err.Error(), victim) {
		t.Fatalf("restore of a damaged backup: %v, want a refusal naming %s", err, victim)
	}
	if n.Metadata().Keyspaces["s3"] != nil {
		t.Fatal("the refused restore created its keyspace")
	}
	t.Logf("S3 backup of %d bytes to %s verified and restored; a flipped byte in %s was found: %s", m.Bytes, endpoint, victim, rep.Problems[0].Err)
}
