package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/internal/testcluster"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// runIn runs the CLI with args, stdin as its input, and returns what it
// printed.
func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	root := rootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestBackupCLI: backup create (progress, then the figures), list (the
// backups and windows), verify --restore (a scratch cluster, compared),
// restore --as and --replace (confirmed by typing the name), through a
// node's HTTP API. (Who may use the backup routes: httpapi's
// TestPermissionsOverEveryRoute.)
func TestBackupCLI(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	c.CreateKeyspace(metadata.KeyspaceSpec{Name: "orders", Shards: 2})
	n := c.Running()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 100 {
		if _, _, err := n.Write(ctx, "orders", kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{fmt.Appendf(nil, "o%d", i), []byte("v1")}}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(httpapi.New(n, httpapi.Config{}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := "file://" + filepath.Join(dir, "backups")

	out, err := runIn(t, "", "backup", "create", "--to", target, "--addr", addr, "--key-file", keyFile)
	if err != nil {
		t.Fatalf("backup create: %v\n%s", err, out)
	}
	if !strings.Contains(out, "(full): cut at") || !strings.Contains(out, "keys/s") {
		t.Fatalf("backup create printed:\n%s", out)
	}
	t.Logf("backup create:\n%s", out)
	out, err = runIn(t, "", "backup", "list", target, "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "orders") || !strings.Contains(out, "restorable windows") {
		t.Fatalf("backup list: %v\n%s", err, out)
	}
	if out, err := runIn(t, "", "backup", "list", target); err == nil {
		t.Fatalf("an encrypted target listed without its key:\n%s", out)
	}
	out, err = runIn(t, "", "backup", "verify", target, "--key-file", keyFile, "--restore")
	if err != nil || !strings.Contains(out, "identical") || !strings.Contains(out, "OK") {
		t.Fatalf("backup verify --restore: %v\n%s", err, out)
	}
	// Change the data, then restore the backup over it, confirmed.
	if _, _, err := n.Write(ctx, "orders", kv.Command{Op: kv.OpSet, NowMS: time.Now().UnixMilli(), Args: [][]byte{[]byte("o1"), []byte("v2")}}); err != nil {
		t.Fatal(err)
	}
	out, err = runIn(t, "wrong\n", "restore", "--from", target, "--keyspace", "orders", "--replace", "--addr", addr, "--key-file", keyFile)
	if err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Fatalf("restore --replace without confirmation: %v\n%s", err, out)
	}
	out, err = runIn(t, "orders\n", "restore", "--from", target, "--keyspace", "orders", "--replace", "--addr", addr, "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "restored orders as orders") {
		t.Fatalf("restore --replace: %v\n%s", err, out)
	}
	if v, ok, _, err := n.Get(ctx, "orders", []byte("o1"), node.Strong); err != nil || !ok || string(v) != "v1" {
		t.Fatalf("o1 after the restore: %q %v %v, want the backup's v1", v, ok, err)
	}
	out, err = runIn(t, "", "restore", "--from", target, "--keyspace", "orders", "--as", "orders_copy", "--addr", addr, "--key-file", keyFile)
	if err != nil {
		t.Fatalf("restore --as: %v\n%s", err, out)
	}
}
