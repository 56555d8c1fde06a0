package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/node"
)

// TestExampleParsesAndRoundTrips: in both formats the example parses
// back to what it was rendered from, renders again to the same bytes,
// validates, and explains every key.
func TestExampleParsesAndRoundTrips(t *testing.T) {
	for _, format := range []Format{YAML, TOML} {
		t.Run(string(format), func(t *testing.T) {
			text, err := Example(format)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(text, format)
			if err != nil {
				t.Fatalf("the example does not parse: %v\n%s", err, text)
			}
			if !reflect.DeepEqual(f, exampleFile()) {
				t.Fatalf("the example parses to\n%+v\nwant\n%+v", f, exampleFile())
			}
			again, err := Render(f, format)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(text) {
				t.Fatalf("rendering the parsed example differs:\n%s\n---\n%s", again, text)
			}
			if err := f.Validate(); err != nil {
				t.Fatalf("the example does not validate: %v", err)
			}
			// Every key of the file is explained, and every explanation
			// is of a key of the file.
			keys := fileKeyPaths(reflect.TypeOf(File{}), "", format)
			if len(keys) != len(docs) {
				t.Fatalf("%d keys and sections in File, %d explained", len(keys), len(docs))
			}
			for _, k := range keys {
				if _, ok := docs[k]; !ok {
					t.Fatalf("key %s is not explained", k)
				}
				last := k[strings.LastIndex(k, ".")+1:]
				if !regexp.MustCompile(`(?m)^\s*(\[\[?)?` + last + `(\]\]?$|:| =)`).Match(text) {
					t.Fatalf("key %s is not in the example", k)
				}
			}
			t.Logf("%s example: %d lines, %d keys and sections", format, strings.Count(string(text), "\n"), len(keys))
		})
	}
}

// fileKeyPaths lists the keys of a File section by section, sections
// included, as the docs table names them.
func fileKeyPaths(t reflect.Type, prefix string, format Format) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if keyOf(f, format) == "-" {
			continue // not read from files
		}
		key := prefix + keyOf(f, format)
		out = append(out, key)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			out = append(out, fileKeyPaths(f.Type, key+".", format)...)
		}
	}
	return out
}

// TestExampleIsTheDefaults: what the example shows is what a node uses
// when nothing is set.
func TestExampleIsTheDefaults(t *testing.T) {
	f := Default()
	nc := f.NodeConfig()
	want := node.Config{
		TickInterval: 10 * time.Millisecond, MinHeartbeatInterval: 100 * time.Millisecond, RequestTimeout: 10 * time.Second,
		MaxKeyBytes: 16 << 10, MaxValueBytes: 4 << 20, LeaderCheckInterval: time.Second, LeaderHysteresis: 3 * time.Second,
		MaxClockOffset: 500 * time.Millisecond, PlacementWait: 30 * time.Second,
		HealthCheckInterval: 5 * time.Second, CompactAfterEntries: 10000, MaxInflightMsgs: 256,
		MaxSizePerMsgBytes: 1 << 20, MaxUncommittedBytes: 64 << 20, StreamBatchInterval: 2 * time.Millisecond,
		StreamMaxBatchBytes: 1 << 20, StreamMaxInFlight: 4, StreamHeartbeatInterval: 200 * time.Millisecond,
		StreamRetryBackoff: 50 * time.Millisecond, CacheBytes: 64 << 20, MemTableBytes: 32 << 20, RowCacheBytes: 16 << 20,
		ListenAddr:   "127.0.0.1:7400",
		QuiesceAfter: 2 * time.Second,
	}
	if !reflect.DeepEqual(nc, want) {
		t.Fatalf("default node configuration\n%+v\nwant\n%+v", nc, want)
	}
}

func TestParseAndOverride(t *testing.T) {
	yml := `
node: {id: 4, region: eu-west, data_dir: /d4}
join: 127.0.0.1:8401
timings:
  tick_interval: 20ms
  min_heartbeat_interval: 200ms
storage:
  cache_bytes: 1048576
  memtable_bytes: 2097152
  row_cache_bytes: 0
streams:
  max_batch_bytes: 65536
`
	toml := `
join = "127.0.0.1:8401"
[node]
id = 4
region = "eu-west"
data_dir = "/d4"
[timings]
tick_interval = "20ms"
min_heartbeat_interval = "200ms"
[storage]
cache_bytes = 1048576
memtable_bytes = 2097152
row_cache_bytes = 0
[streams]
max_batch_bytes = 65536
`
	dir := t.TempDir()
	for name, text := range map[string]string{"n.yaml": yml, "n.yml": yml, "n.toml": toml} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := f.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nc := f.NodeConfig()
		if nc.ID != 4 || nc.Region != "eu-west" || nc.TickInterval != 20*time.Millisecond || nc.MinHeartbeatInterval != 200*time.Millisecond ||
			nc.CacheBytes != 1<<20 || nc.MemTableBytes != 2<<20 || nc.RowCacheBytes != -1 || nc.StreamMaxBatchBytes != 65536 || f.Join != "127.0.0.1:8401" {
			t.Fatalf("%s: %+v", name, nc)
		}
		// Keys left out keep their defaults.
		if nc.LeaderHysteresis != 3*time.Second || nc.MaxInflightMsgs != 256 || f.RESP.DefaultKeyspace != "default" {
			t.Fatalf("%s: defaults lost: %+v", name, nc)
		}
	}
	if _, err := Load(filepath.Join(dir, "n.json")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a .json file: %v", err)
	}
	if f, err := Parse(nil, YAML); err != nil || !reflect.DeepEqual(f, Default()) {
		t.Fatalf("an empty file: %v", err)
	}
}

// TestBadFilesNameTheKey: unknown keys, wrong types, and negative, zero or
// contradictory values are refused, naming the key.
func TestBadFilesNameTheKey(t *testing.T) {
	const base = "node: {id: 1, region: us-east, data_dir: /d}\npeers: [{id: 1, region: us-east, addr: \"127.0.0.1:7400\"}]\n"
	for _, tc := range []struct{ text, want string }{
		{"timings: {tick_intervall: 10ms}", "tick_intervall"},
		{"timings: {tick_interval: 10}", `durations are strings such as "10ms"`},
		{"timings: {tick_interval: ten}", "tick_interval"},
		{"limits: {max_value_bytes: big}", "max_value_bytes"},
		{"nodes: {}", "nodes"},
		{"timings: {tick_interval: 0s}", "timings.tick_interval must be positive"},
		{"timings: {tick_interval: -5ms}", "timings.tick_interval must be positive (got -5ms)"},
		{"timings: {request_timeout: -1s}", "timings.request_timeout must be positive"},
		{"raft: {max_inflight_msgs: -1}", "raft.max_inflight_msgs must be positive (got -1)"},
		{"storage: {cache_bytes: -1}", "storage.cache_bytes must be positive"},
		{"storage: {memtable_bytes: 0}", "storage.memtable_bytes must be positive"},
		{"storage: {memtable_bytes: 65536}", "storage.memtable_bytes must be between 1 MiB and 4 GiB"},
		{"storage: {row_cache_bytes: -1}", "storage.row_cache_bytes must not be negative (0: no row cache)"},
		{"streams: {max_in_flight: 0}", "streams.max_in_flight must be positive"},
		{"resp: {idle_timeout: -1s}", "resp.idle_timeout must not be negative"},
		{"http: {max_body_bytes: -1}", "http.max_body_bytes must not be negative"},
		{"timings: {tick_interval: 50ms, min_heartbeat_interval: 20ms}", "timings.min_heartbeat_interval (20ms) is shorter than timings.tick_interval (50ms)"},
		{"timings: {leader_check_interval: 5s, leader_hysteresis: 1s}", "timings.leader_hysteresis (1s) is shorter than timings.leader_check_interval (5s)"},
		{"streams: {max_batch_bytes: 40000000}", "streams.max_batch_bytes (40000000) is above the stream limit"},
		{"streams: {batch_interval: 1s, heartbeat_interval: 100ms}", "streams.heartbeat_interval (100ms) is shorter than streams.batch_interval (1s)"},
		{"raft: {max_size_per_msg_bytes: 8388608, max_uncommitted_bytes: 1048576}", "raft.max_size_per_msg_bytes (8388608) is above raft.max_uncommitted_bytes (1048576)"},
		{"limits: {max_value_bytes: 20000000}\nresp: {max_bulk_bytes: 16777216}", "resp.max_bulk_bytes (16777216) is below limits.max_value_bytes"},
		{"resp: {max_bulk_bytes: -1}", "resp.max_bulk_bytes must not be negative"},
		{"resp: {max_bulk_bytes: 100000000}", "resp.max_bulk_bytes (100000000) is above resp.max_command_bytes"},
		{"timings: {placement_wait: 1m}", "timings.placement_wait (1m0s) is above 45s"},
		{"cluster: \"no spaces\"", "cluster name"},
		{"security: {insecure: true, certs_dir: /c}", "security.insecure (--insecure) and security.certs_dir (--certs-dir): choose one"},
		{"security: {reload_interval: 0s}", "security.reload_interval must be positive"},
		{"resp: {max_clients: 10, max_unauthenticated: 20}", "resp.max_unauthenticated (20) is above resp.max_clients (10)"},
		{"resp: {auth_timeout: -1s}", "resp.auth_timeout must be positive"},
		{"http: {max_conns: 0}", "http.max_conns must be positive"},
		{"resp: {event_loops: -2}", "resp.event_loops must be -1 (none), 0 (the default) or a number of loops (got -2)"},
		{"resp: {pipeline_hand_over: -2}", "resp.pipeline_hand_over must be -1 (never), 0 (the default) or a number of commands (got -2)"},
	} {
		f, err := Parse([]byte(base+tc.text), YAML)
		if err == nil {
			err = f.Validate()
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", tc.text, err, tc.want)
		}
	}
	// Missing and inconsistent node settings.
	for _, tc := range []struct{ text, want string }{
		{"node: {region: us-east, data_dir: /d}\njoin: h:1", "node.id (--id) is required"},
		{"node: {id: 1, data_dir: /d}\njoin: h:1", "node.region (--region) is required"},
		{"node: {id: 1, region: us-east}\njoin: h:1", "node.data_dir (--data-dir) is required"},
		{"node: {id: 1, region: us-east, data_dir: /d}", "give peers"},
		{"node: {id: 1, region: us-east, data_dir: /d, log_level: loud}\njoin: h:1", `log level "loud"`},
		{base + "join: h:1", "not both"},
		{"node: {id: 2, region: us-east, data_dir: /d}\npeers: [{id: 1, region: us-east, addr: \"h:1\"}]", "must list this node"},
		{"node: {id: 1, region: us-east, data_dir: /d}\npeers: [{id: 1, region: us-east, addr: \"127.0.0.1:7400\"}, {id: 1, region: x, addr: \"h:2\"}]", "listed twice"},
	} {
		f, err := Parse([]byte(tc.text), YAML)
		if err == nil {
			err = f.Validate()
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid saying %q", tc.text, err, tc.want)
		}
	}
	// TOML: unknown keys are named too.
	if _, err := Parse([]byte("[timings]\ntick = \"1s\"\n"), TOML); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "timings.tick") {
		t.Errorf("unknown TOML key: %v", err)
	}
}

// TestEventLoopsReachRESP: resp.event_loops maps onto resp.Config: a
// number of loops, 0 for the default, -1 for none.
func TestEventLoopsReachRESP(t *testing.T) {
	for _, tc := range []struct {
		n, loops int
		none     bool
	}{{0, 0, false}, {3, 3, false}, {-1, 0, true}} {
		f := Default()
		f.RESP.EventLoops = tc.n
		if c := f.RESPConfig(); c.EventLoops != tc.loops || c.NoEventLoop != tc.none {
			t.Fatalf("resp.event_loops %d: EventLoops %d NoEventLoop %v, want %d %v", tc.n, c.EventLoops, c.NoEventLoop, tc.loops, tc.none)
		}
	}
}

// TestPipelineHandOverReachesRESP: resp.pipeline_hand_over maps onto
// resp.Config: a number of commands, 0 for resp's default, -1 for never;
// the file's value is accepted and parsed.
func TestPipelineHandOverReachesRESP(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, 0}, {16, 16}, {-1, math.MaxInt}} {
		f, err := Parse(fmt.Appendf(nil, "resp: {pipeline_hand_over: %d}\n", tc.n), YAML)
		if err != nil {
			t.Fatalf("resp.pipeline_hand_over %d: %v", tc.n, err)
		}
		c := f.RESPConfig()
		if c.PipelineHandOver != tc.want {
			t.Fatalf("resp.pipeline_hand_over %d: PipelineHandOver %d, want %d", tc.n, c.PipelineHandOver, tc.want)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("resp.pipeline_hand_over %d: %v", tc.n, err)
		}
	}
}
