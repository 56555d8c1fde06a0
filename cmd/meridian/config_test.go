package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/config"
)

// TestConfigExampleCommand: `meridian config example` prints a file that
// parses, validates and passes `meridian config check`, in both formats.
func TestConfigExampleCommand(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []config.Format{config.YAML, config.TOML} {
		var out bytes.Buffer
		root := rootCmd()
		root.SetOut(&out)
		root.SetArgs([]string{"config", "example", "--format", string(format)})
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "# Meridian node configuration") {
			t.Fatalf("%s example starts %q", format, out.String()[:min(80, out.Len())])
		}
		path := filepath.Join(dir, "node."+string(format))
		if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		var check bytes.Buffer
		root = rootCmd()
		root.SetOut(&check)
		root.SetArgs([]string{"config", "check", path})
		if err := root.Execute(); err != nil || !strings.Contains(check.String(), "ok (node 1 in us-east)") {
			t.Fatalf("config check of the %s example: %v %s", format, err, check.String())
		}
	}
	root := rootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"config", "example", "--format", "json"})
	if err := root.Execute(); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}

// TestStartFlagsOverrideTheFile: a flag given on the command line wins
// over the file's key; keys without a flag keep the file's value.
func TestStartFlagsOverrideTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.yaml")
	text := `
cluster: prod
node: {id: 1, region: us-east, data_dir: /d1, log_level: warn}
addresses: {listen: "127.0.0.1:7401"}
peers: [{id: 1, region: us-east, addr: "127.0.0.1:7401"}, {id: 2, region: eu-west, addr: "127.0.0.1:7402"}]
timings: {tick_interval: 20ms, min_heartbeat_interval: 200ms, placement_wait: 20s}
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := startFlags{config: path, dataDir: "/elsewhere", logLevel: "debug", placement: 5 * time.Second}
	given := []string{"data-dir", "log-level", "placement-wait"}
	f, err := flags.apply(func(name string) bool { return slices.Contains(given, name) })
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	nc := f.NodeConfig()
	if nc.DataDir != "/elsewhere" || f.Node.LogLevel != "debug" || nc.PlacementWait != 5*time.Second {
		t.Fatalf("flags did not override the file: %+v", f)
	}
	if nc.ID != 1 || nc.Cluster != "prod" || nc.TickInterval != 20*time.Millisecond || nc.MinHeartbeatInterval != 200*time.Millisecond || len(nc.Peers) != 2 {
		t.Fatalf("the file's keys were lost: %+v", nc)
	}
	// --join replaces the file's peers; both flags at once are refused.
	flags.join = "127.0.0.1:8401"
	f, err = flags.apply(func(name string) bool { return name == "join" })
	if err != nil || f.Join != "127.0.0.1:8401" || len(f.Peers) != 0 {
		t.Fatalf("--join over a file with peers: %v %+v", err, f)
	}
	if _, err := flags.apply(func(name string) bool { return name == "join" || name == "peers" }); err == nil {
		t.Fatal("--peers and --join together were accepted")
	}
	// A bad file is refused before anything starts, naming the key.
	if err := os.WriteFile(path, []byte("timings: {tick_interval: 0s}\n"+text[strings.Index(text, "node:"):strings.Index(text, "timings:")]), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = startFlags{config: path}.apply(func(string) bool { return false })
	if err == nil {
		err = f.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "timings.tick_interval must be positive") {
		t.Fatalf("a zero tick: %v", err)
	}
}

// TestClockOffsetOnlyWhenEmulated: --clock-offset is refused without an
// emulated network (before anything is opened), and never read from a
// configuration file.
func TestClockOffsetOnlyWhenEmulated(t *testing.T) {
	dir := t.TempDir()
	root := rootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"start", "--id", "1", "--region", "us-east", "--data-dir", filepath.Join(dir, "d"),
		"--listen", "127.0.0.1:7401", "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--peers", "1=us-east@127.0.0.1:7401", "--clock-offset", "100ms"})
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--clock-offset 100ms: only for emulated networks") {
		t.Fatalf("clock offset without --latency: %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "d")); !os.IsNotExist(statErr) {
		t.Fatalf("the data directory was made before the refusal: %v", statErr)
	}
	path := filepath.Join(dir, "n.yaml")
	if err := os.WriteFile(path, []byte("clock_offset: 10m\nnode: {id: 1, region: us-east}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil {
		t.Fatal("a file with clock_offset was accepted")
	}
}
