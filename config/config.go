// Package config is a node's configuration file: what `meridian start
// --config FILE` reads, mapped onto node.Config, resp.Config and
// httpapi.Config. A file is YAML (.yaml, .yml) or TOML (.toml); both hold
// the same keys. Keys left out keep their defaults (Default, the values
// node, resp and httpapi use when left unset); a key the file does not
// know is an error, as is a value that is negative or contradicts
// another. `meridian config example` prints a commented file with every
// key (Example).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"

	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
	"github.com/meridian-db/meridian/resp"
	"github.com/meridian-db/meridian/transport"
)

// ErrInvalid is wrapped by every error about a file's content.
var ErrInvalid = errors.New("config: invalid configuration")

// File is a node's configuration. The tags are the file's keys.
type File struct {
	// Cluster is the cluster's name (node.Config.Cluster); "" is
	// node.DefaultCluster, or for a joining node the cluster it joins.
	Cluster string `yaml:"cluster" toml:"cluster"`
	// Join is the HTTP address of a member to ask for admission.
	Join string `yaml:"join" toml:"join"`
	// Latency emulates inter-region latency between local processes.
	Latency string `yaml:"latency" toml:"latency"`
	// ClockOffset moves the node's clock (node.Config.ClockOffset): an
	// emulation of clock skew, set only by meridian start --clock-offset
	// and only with an emulated network (Latency), never from a file.
	ClockOffset time.Duration `yaml:"-" toml:"-"`
	Node        Node          `yaml:"node" toml:"node"`
	Addresses   Addresses     `yaml:"addresses" toml:"addresses"`
	Peers       []Peer        `yaml:"peers" toml:"peers"`
	Timings     Timings       `yaml:"timings" toml:"timings"`
	Limits      Limits        `yaml:"limits" toml:"limits"`
	Storage     Storage       `yaml:"storage" toml:"storage"`
	Raft        Raft          `yaml:"raft" toml:"raft"`
	Streams     Streams       `yaml:"streams" toml:"streams"`
	RESP        RESP          `yaml:"resp" toml:"resp"`
	HTTP        HTTP          `yaml:"http" toml:"http"`
	Security    Security      `yaml:"security" toml:"security"`
}

// Security is how the node is secured (SECURITY.md).
type Security struct {
	// CertsDir holds the node's certificates (ca.crt, node.crt,
	// node.key): mutual TLS between nodes, TLS for clients, and
	// authentication required. "": none.
	CertsDir string `yaml:"certs_dir" toml:"certs_dir"`
	// Insecure allows listening on addresses other than loopback without
	// certificates: plaintext, no authentication.
	Insecure bool `yaml:"insecure" toml:"insecure"`
	// ReloadInterval is how often the certificate files are checked for
	// changes (SIGHUP reloads at once).
	ReloadInterval time.Duration `yaml:"reload_interval" toml:"reload_interval"`
}

// Node places the node.
type Node struct {
	ID       uint64 `yaml:"id" toml:"id"`
	Region   string `yaml:"region" toml:"region"`
	Zone     string `yaml:"zone" toml:"zone"`
	DataDir  string `yaml:"data_dir" toml:"data_dir"`
	LogLevel string `yaml:"log_level" toml:"log_level"`
}

// Addresses are where the node listens and what it advertises.
type Addresses struct {
	Listen    string `yaml:"listen" toml:"listen"`
	Advertise string `yaml:"advertise" toml:"advertise"`
	RESP      string `yaml:"resp" toml:"resp"`
	HTTP      string `yaml:"http" toml:"http"`
}

// Peer is one initial member.
type Peer struct {
	ID     uint64 `yaml:"id" toml:"id"`
	Region string `yaml:"region" toml:"region"`
	Addr   string `yaml:"addr" toml:"addr"`
}

// Timings are the node's clocks. TickInterval and MinHeartbeatInterval
// are lease-critical: every node of a cluster must use the same.
type Timings struct {
	TickInterval         time.Duration `yaml:"tick_interval" toml:"tick_interval"`
	MinHeartbeatInterval time.Duration `yaml:"min_heartbeat_interval" toml:"min_heartbeat_interval"`
	LeaderCheckInterval  time.Duration `yaml:"leader_check_interval" toml:"leader_check_interval"`
	LeaderHysteresis     time.Duration `yaml:"leader_hysteresis" toml:"leader_hysteresis"`
	RequestTimeout       time.Duration `yaml:"request_timeout" toml:"request_timeout"`
	MaxClockOffset       time.Duration `yaml:"max_clock_offset" toml:"max_clock_offset"`
	PlacementWait        time.Duration `yaml:"placement_wait" toml:"placement_wait"`
	HealthCheckInterval  time.Duration `yaml:"health_check_interval" toml:"health_check_interval"`
}

// Limits bound what clients may write.
type Limits struct {
	MaxKeyBytes   int `yaml:"max_key_bytes" toml:"max_key_bytes"`
	MaxValueBytes int `yaml:"max_value_bytes" toml:"max_value_bytes"`
}

// Storage sizes the storage engine.
type Storage struct {
	CacheBytes    int64 `yaml:"cache_bytes" toml:"cache_bytes"`
	MemTableBytes int64 `yaml:"memtable_bytes" toml:"memtable_bytes"`
	RowCacheBytes int64 `yaml:"row_cache_bytes" toml:"row_cache_bytes"`
}

// Raft are the raft windows of every group.
type Raft struct {
	MaxInflightMsgs     int    `yaml:"max_inflight_msgs" toml:"max_inflight_msgs"`
	MaxSizePerMsgBytes  uint64 `yaml:"max_size_per_msg_bytes" toml:"max_size_per_msg_bytes"`
	MaxUncommittedBytes uint64 `yaml:"max_uncommitted_bytes" toml:"max_uncommitted_bytes"`
	CompactAfterEntries uint64 `yaml:"compact_after_entries" toml:"compact_after_entries"`
	// QuiesceAfter: idle groups stop ticking after this long; 0: never.
	QuiesceAfter time.Duration `yaml:"quiesce_after" toml:"quiesce_after"`
}

// Streams shape the streams of async and active keyspaces.
type Streams struct {
	BatchInterval     time.Duration `yaml:"batch_interval" toml:"batch_interval"`
	MaxBatchBytes     int           `yaml:"max_batch_bytes" toml:"max_batch_bytes"`
	MaxInFlight       int           `yaml:"max_in_flight" toml:"max_in_flight"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" toml:"heartbeat_interval"`
	RetryBackoff      time.Duration `yaml:"retry_backoff" toml:"retry_backoff"`
}

// RESP configures the Redis protocol front end (resp.Config).
type RESP struct {
	DefaultKeyspace    string        `yaml:"default_keyspace" toml:"default_keyspace"`
	MaxClients         int           `yaml:"max_clients" toml:"max_clients"`
	MaxArgs            int           `yaml:"max_args" toml:"max_args"`
	MaxBulkBytes       int           `yaml:"max_bulk_bytes" toml:"max_bulk_bytes"`
	MaxCommandBytes    int           `yaml:"max_command_bytes" toml:"max_command_bytes"`
	MaxInlineBytes     int           `yaml:"max_inline_bytes" toml:"max_inline_bytes"`
	OutputBufferBytes  int           `yaml:"output_buffer_bytes" toml:"output_buffer_bytes"`
	MaxReplyBytes      int           `yaml:"max_reply_bytes" toml:"max_reply_bytes"`
	WriteTimeout       time.Duration `yaml:"write_timeout" toml:"write_timeout"`
	IdleTimeout        time.Duration `yaml:"idle_timeout" toml:"idle_timeout"`
	ScanCursors        int           `yaml:"scan_cursors" toml:"scan_cursors"`
	ScanCursorTTL      time.Duration `yaml:"scan_cursor_ttl" toml:"scan_cursor_ttl"`
	AuthTimeout        time.Duration `yaml:"auth_timeout" toml:"auth_timeout"`
	MaxUnauthenticated int           `yaml:"max_unauthenticated" toml:"max_unauthenticated"`
	EventLoops         int           `yaml:"event_loops" toml:"event_loops"`
	PipelineHandOver   int           `yaml:"pipeline_hand_over" toml:"pipeline_hand_over"`
}

// HTTP configures the HTTP API (httpapi.Config).
type HTTP struct {
	MaxBodyBytes      int64 `yaml:"max_body_bytes" toml:"max_body_bytes"`
	MaxAdminBodyBytes int64 `yaml:"max_admin_body_bytes" toml:"max_admin_body_bytes"`
	MaxConns          int   `yaml:"max_conns" toml:"max_conns"`
}

// Default returns the configuration a node has when nothing is set: the
// defaults of node.Config, resp.Config and httpapi.Config. The node's id,
// region, data directory and peers (or join address) have none.
func Default() File {
	return File{
		Node: Node{LogLevel: "info"},
		Addresses: Addresses{
			Listen: "127.0.0.1:7400", RESP: "127.0.0.1:6379", HTTP: "127.0.0.1:8080",
		},
		Timings: Timings{
			TickInterval: node.DefaultTickInterval, MinHeartbeatInterval: node.DefaultMinHeartbeatInterval,
			LeaderCheckInterval: node.DefaultLeaderCheckInterval, LeaderHysteresis: node.DefaultLeaderHysteresis,
			RequestTimeout: node.DefaultRequestTimeout, MaxClockOffset: hlc.DefaultMaxOffset,
			PlacementWait: node.DefaultPlacementWait, HealthCheckInterval: node.DefaultHealthCheckInterval,
		},
		Limits:  Limits{MaxKeyBytes: node.DefaultMaxKeyBytes, MaxValueBytes: node.DefaultMaxValueBytes},
		Storage: Storage{CacheBytes: node.DefaultCacheBytes, MemTableBytes: node.DefaultMemTableBytes, RowCacheBytes: node.DefaultRowCacheBytes},
		Raft: Raft{
			MaxInflightMsgs: node.DefaultMaxInflightMsgs, MaxSizePerMsgBytes: node.DefaultMaxSizePerMsgBytes,
			MaxUncommittedBytes: node.DefaultMaxUncommittedBytes, CompactAfterEntries: node.DefaultCompactAfterEntries,
			QuiesceAfter: node.DefaultQuiesceAfter,
		},
		Streams: Streams{
			BatchInterval: node.DefaultStreamBatchInterval, MaxBatchBytes: node.DefaultStreamMaxBatchBytes,
			MaxInFlight: node.DefaultStreamMaxInFlight, HeartbeatInterval: node.DefaultStreamHeartbeatInterval,
			RetryBackoff: node.DefaultStreamRetryBackoff,
		},
		RESP: RESP{
			DefaultKeyspace: "default", MaxClients: 10000, MaxArgs: 1 << 20,
			MaxCommandBytes: 64 << 20, MaxInlineBytes: 64 << 10, OutputBufferBytes: 64 << 10,
			MaxReplyBytes: 64 << 20, WriteTimeout: 30 * time.Second, ScanCursors: 10000,
			ScanCursorTTL: 10 * time.Minute, AuthTimeout: 10 * time.Second, MaxUnauthenticated: 1000,
		},
		HTTP:     HTTP{MaxAdminBodyBytes: 64 << 10, MaxConns: 10000},
		Security: Security{ReloadInterval: pki.DefaultPollInterval},
	}
}

// Format is a file format.
type Format string

// The formats.
const (
	YAML Format = "yaml"
	TOML Format = "toml"
)

// FormatOf returns the format a file name's extension says.
func FormatOf(path string) (Format, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return YAML, nil
	case ".toml":
		return TOML, nil
	}
	return "", fmt.Errorf("%w: %s: the name must end in .yaml, .yml or .toml", ErrInvalid, path)
}

// Load reads a configuration file over the defaults. It does not
// validate: flags may still complete it (see Validate).
func Load(path string) (File, error) {
	format, err := FormatOf(path)
	if err != nil {
		return File{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(data, format)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse reads a configuration over the defaults. Unknown keys and values
// of the wrong type are errors.
func Parse(data []byte, format Format) (File, error) {
	f := Default()
	switch format {
	case YAML:
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		// An empty document (io.EOF) is all defaults.
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return File{}, fmt.Errorf("%w: %w", ErrInvalid, withLines(err, data))
		}
	case TOML:
		md, err := toml.Decode(string(data), &f)
		if err != nil {
			return File{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return File{}, fmt.Errorf("%w: unknown keys %s", ErrInvalid, strings.Join(keys, ", "))
		}
	default:
		return File{}, fmt.Errorf("%w: unknown format %q (yaml or toml)", ErrInvalid, format)
	}
	return f, nil
}

// Validate checks the configuration: what a node needs is there, no value
// is negative, zero where zero means nothing, or contradicts another.
// Every error wraps ErrInvalid and names the file's key.
func (f *File) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case f.Node.ID == 0:
		return bad("node.id (--id) is required (a positive number unique in the cluster)")
	case f.Node.Region == "":
		return bad("node.region (--region) is required")
	case f.Node.DataDir == "":
		return bad("node.data_dir (--data-dir) is required")
	case len(f.Peers) == 0 && f.Join == "":
		return bad("give peers (--peers, the initial members) or join (--join, a member's HTTP address)")
	case len(f.Peers) > 0 && f.Join != "":
		return bad("give peers (--peers) or join (--join), not both")
	case f.Addresses.Listen == "":
		return bad("addresses.listen is required")
	case f.Addresses.RESP == "":
		return bad("addresses.resp is required")
	case f.Addresses.HTTP == "":
		return bad("addresses.http is required")
	}
	if _, err := ParseLogLevel(f.Node.LogLevel); err != nil {
		return err
	}
	// Settings where zero means nothing useful: a zero tick, a zero
	// window. (In node.Config zero stands for the default; in a file the
	// defaults are filled in already, so a zero was written on purpose.)
	if f.Storage.RowCacheBytes < 0 {
		return fmt.Errorf("%w: storage.row_cache_bytes must not be negative (0: no row cache), got %d", ErrInvalid, f.Storage.RowCacheBytes)
	}
	if f.Raft.QuiesceAfter < 0 {
		return fmt.Errorf("%w: raft.quiesce_after must not be negative (0: groups never quiesce), got %v", ErrInvalid, f.Raft.QuiesceAfter)
	}
	positive := []struct {
		key string
		v   int64
	}{
		{"timings.tick_interval", int64(f.Timings.TickInterval)},
		{"timings.min_heartbeat_interval", int64(f.Timings.MinHeartbeatInterval)},
		{"timings.leader_check_interval", int64(f.Timings.LeaderCheckInterval)},
		{"timings.leader_hysteresis", int64(f.Timings.LeaderHysteresis)},
		{"timings.request_timeout", int64(f.Timings.RequestTimeout)},
		{"timings.max_clock_offset", int64(f.Timings.MaxClockOffset)},
		{"timings.placement_wait", int64(f.Timings.PlacementWait)},
		{"timings.health_check_interval", int64(f.Timings.HealthCheckInterval)},
		{"limits.max_key_bytes", int64(f.Limits.MaxKeyBytes)},
		{"limits.max_value_bytes", int64(f.Limits.MaxValueBytes)},
		{"storage.cache_bytes", f.Storage.CacheBytes},
		{"storage.memtable_bytes", f.Storage.MemTableBytes},
		{"raft.max_inflight_msgs", int64(f.Raft.MaxInflightMsgs)},
		{"raft.max_size_per_msg_bytes", int64(f.Raft.MaxSizePerMsgBytes)},
		{"raft.max_uncommitted_bytes", int64(f.Raft.MaxUncommittedBytes)},
		{"raft.compact_after_entries", int64(f.Raft.CompactAfterEntries)},
		{"streams.batch_interval", int64(f.Streams.BatchInterval)},
		{"streams.max_batch_bytes", int64(f.Streams.MaxBatchBytes)},
		{"streams.max_in_flight", int64(f.Streams.MaxInFlight)},
		{"streams.heartbeat_interval", int64(f.Streams.HeartbeatInterval)},
		{"streams.retry_backoff", int64(f.Streams.RetryBackoff)},
		{"resp.max_clients", int64(f.RESP.MaxClients)},
		{"resp.max_args", int64(f.RESP.MaxArgs)},
		{"resp.max_command_bytes", int64(f.RESP.MaxCommandBytes)},
		{"resp.max_inline_bytes", int64(f.RESP.MaxInlineBytes)},
		{"resp.output_buffer_bytes", int64(f.RESP.OutputBufferBytes)},
		{"resp.max_reply_bytes", int64(f.RESP.MaxReplyBytes)},
		{"resp.write_timeout", int64(f.RESP.WriteTimeout)},
		{"resp.scan_cursors", int64(f.RESP.ScanCursors)},
		{"resp.scan_cursor_ttl", int64(f.RESP.ScanCursorTTL)},
		{"http.max_admin_body_bytes", f.HTTP.MaxAdminBodyBytes},
		{"resp.auth_timeout", int64(f.RESP.AuthTimeout)},
		{"resp.max_unauthenticated", int64(f.RESP.MaxUnauthenticated)},
		{"http.max_conns", int64(f.HTTP.MaxConns)},
		{"security.reload_interval", int64(f.Security.ReloadInterval)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return bad("%s must be positive (got %s)", p.key, show(p.key, p.v))
		}
	}
	for _, z := range []struct {
		key string
		v   int64
	}{{"resp.idle_timeout", int64(f.RESP.IdleTimeout)}, {"resp.max_bulk_bytes", int64(f.RESP.MaxBulkBytes)}, {"http.max_body_bytes", f.HTTP.MaxBodyBytes}} {
		if z.v < 0 {
			return bad("%s must not be negative (got %s)", z.key, show(z.key, z.v))
		}
	}
	if f.Security.Insecure && f.Security.CertsDir != "" {
		return bad("security.insecure (--insecure) and security.certs_dir (--certs-dir): choose one")
	}
	if f.RESP.EventLoops < -1 {
		return bad("resp.event_loops must be -1 (none), 0 (the default) or a number of loops (got %d)", f.RESP.EventLoops)
	}
	if f.RESP.PipelineHandOver < -1 {
		return bad("resp.pipeline_hand_over must be -1 (never), 0 (the default) or a number of commands (got %d)", f.RESP.PipelineHandOver)
	}
	if f.RESP.MaxUnauthenticated > f.RESP.MaxClients {
		return bad("resp.max_unauthenticated (%d) is above resp.max_clients (%d)", f.RESP.MaxUnauthenticated, f.RESP.MaxClients)
	}
	if f.Timings.PlacementWait > httpapi.MaxPlacementWait {
		return bad("timings.placement_wait (%v) is above %v", f.Timings.PlacementWait, httpapi.MaxPlacementWait)
	}
	if f.RESP.MaxBulkBytes != 0 && f.RESP.MaxBulkBytes < f.Limits.MaxValueBytes {
		return bad("resp.max_bulk_bytes (%d) is below limits.max_value_bytes (%d): the largest value could not be sent", f.RESP.MaxBulkBytes, f.Limits.MaxValueBytes)
	}
	if f.HTTP.MaxBodyBytes != 0 && f.HTTP.MaxBodyBytes < int64(f.Limits.MaxValueBytes) {
		return bad("http.max_body_bytes (%d) is below limits.max_value_bytes (%d): the largest value could not be sent", f.HTTP.MaxBodyBytes, f.Limits.MaxValueBytes)
	}
	seen := map[uint64]bool{}
	for _, p := range f.Peers {
		if p.ID == 0 || p.Region == "" || p.Addr == "" {
			return bad("peers: %+v needs an id, a region and an addr", p)
		}
		if seen[p.ID] {
			return bad("peers: id %d listed twice", p.ID)
		}
		seen[p.ID] = true
	}
	if len(f.Peers) > 0 && !slices.Contains(f.Peers, Peer{ID: f.Node.ID, Region: f.Node.Region, Addr: f.advertise()}) {
		return bad("peers (--peers) must list this node as {id: %d, region: %s, addr: %s} (addr is addresses.advertise, or addresses.listen)", f.Node.ID, f.Node.Region, f.advertise())
	}
	// What node, resp and httpapi check themselves, named as in the file.
	nc := f.NodeConfig()
	if nc.Peers == nil {
		nc.Peers = []transport.Peer{{ID: nc.ID, Region: nc.Region, Addr: f.advertise()}} // a joining node's peers come later
	}
	if err := nc.Validate(); err != nil {
		return rename(err)
	}
	rc := f.RESPConfig()
	if err := rc.Validate(); err != nil {
		return rename(err)
	}
	hc := f.HTTPConfig()
	if err := hc.Validate(); err != nil {
		return rename(err)
	}
	return nil
}

// yamlLineRE finds the line numbers in yaml's errors.
var yamlLineRE = regexp.MustCompile(`line (\d+): ([^\n]*)`)

// withLines adds to each of yaml's "line N: ..." messages the text of
// line N, which names the key (yaml's own messages name only the type).
func withLines(err error, data []byte) error {
	lines := strings.Split(string(data), "\n")
	msg := yamlLineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := yamlLineRE.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[1])
		if n < 1 || n > len(lines) {
			return m
		}
		hint := ""
		if strings.Contains(sub[2], "time.Duration") {
			hint = `; durations are strings such as "10ms" or "1s"`
		}
		return fmt.Sprintf("%s (in %q%s)", m, strings.TrimSpace(lines[n-1]), hint)
	})
	return &renamed{msg: msg, err: err}
}

// ParseLogLevel reads a log level: debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: log level %q: want debug, info, warn or error", ErrInvalid, s)
	}
	return l, nil
}

// show prints a value of the key's kind.
func show(key string, v int64) string {
	if strings.Contains(key, "interval") || strings.Contains(key, "timeout") || strings.Contains(key, "wait") ||
		strings.Contains(key, "hysteresis") || strings.Contains(key, "offset") || strings.Contains(key, "backoff") ||
		strings.HasSuffix(key, "_ttl") {
		return time.Duration(v).String()
	}
	return fmt.Sprint(v)
}

func (f *File) advertise() string {
	if f.Addresses.Advertise != "" {
		return f.Addresses.Advertise
	}
	return f.Addresses.Listen
}

// TransportPeers returns the initial members as the node takes them.
func (f *File) TransportPeers() []transport.Peer {
	if len(f.Peers) == 0 {
		return nil
	}
	out := make([]transport.Peer, len(f.Peers))
	for i, p := range f.Peers {
		out[i] = transport.Peer{ID: p.ID, Region: p.Region, Addr: p.Addr}
	}
	return out
}

// NodeConfig maps the file onto node.Config. The caller adds what a file
// cannot hold: listener, logger, emulated network, Join and ClusterID.
func (f *File) NodeConfig() node.Config {
	return node.Config{
		ID: f.Node.ID, Region: f.Node.Region, Zone: f.Node.Zone, DataDir: f.Node.DataDir,
		ListenAddr: f.advertise(), Peers: f.TransportPeers(), Cluster: f.Cluster,
		TickInterval: f.Timings.TickInterval, MinHeartbeatInterval: f.Timings.MinHeartbeatInterval,
		LeaderCheckInterval: f.Timings.LeaderCheckInterval, LeaderHysteresis: f.Timings.LeaderHysteresis,
		RequestTimeout: f.Timings.RequestTimeout, MaxClockOffset: f.Timings.MaxClockOffset,
		PlacementWait: f.Timings.PlacementWait, HealthCheckInterval: f.Timings.HealthCheckInterval,
		MaxKeyBytes: f.Limits.MaxKeyBytes, MaxValueBytes: f.Limits.MaxValueBytes,
		CacheBytes: f.Storage.CacheBytes, MemTableBytes: f.Storage.MemTableBytes, RowCacheBytes: rowCacheBytes(f.Storage.RowCacheBytes),
		MaxInflightMsgs: f.Raft.MaxInflightMsgs, MaxSizePerMsgBytes: f.Raft.MaxSizePerMsgBytes,
		MaxUncommittedBytes: f.Raft.MaxUncommittedBytes, CompactAfterEntries: f.Raft.CompactAfterEntries,
		StreamBatchInterval: f.Streams.BatchInterval, StreamMaxBatchBytes: f.Streams.MaxBatchBytes,
		StreamMaxInFlight: f.Streams.MaxInFlight, StreamHeartbeatInterval: f.Streams.HeartbeatInterval,
		StreamRetryBackoff: f.Streams.RetryBackoff,
		QuiesceAfter:       f.quiesceAfter(),
	}
}

// quiesceAfter is the file's raft.quiesce_after as node.Config takes it:
// there zero means the default, and a negative duration never.
func (f *File) quiesceAfter() time.Duration {
	if f.Raft.QuiesceAfter == 0 {
		return -1
	}
	return f.Raft.QuiesceAfter
}

// RESPConfig maps the file onto resp.Config (the caller adds the logger
// and metrics).
func (f *File) RESPConfig() resp.Config {
	r := f.RESP
	return resp.Config{
		DefaultKeyspace: r.DefaultKeyspace, MaxClients: r.MaxClients, MaxArgs: r.MaxArgs,
		MaxBulkBytes: r.MaxBulkBytes, MaxCommandBytes: r.MaxCommandBytes, MaxInlineBytes: r.MaxInlineBytes,
		OutputBufferBytes: r.OutputBufferBytes, MaxReplyBytes: r.MaxReplyBytes, WriteTimeout: r.WriteTimeout,
		IdleTimeout: r.IdleTimeout, ScanCursors: r.ScanCursors, ScanCursorTTL: r.ScanCursorTTL,
		AuthTimeout: r.AuthTimeout, MaxUnauthenticated: r.MaxUnauthenticated,
		EventLoops: max(r.EventLoops, 0), NoEventLoop: r.EventLoops < 0,
		PipelineHandOver: pipelineHandOver(r.PipelineHandOver),
	}
}

// pipelineHandOver maps resp.pipeline_hand_over onto resp.Config's:
// -1 (never) is math.MaxInt; 0 leaves resp's default.
func pipelineHandOver(n int) int {
	if n < 0 {
		return math.MaxInt
	}
	return n
}

// HTTPConfig maps the file onto httpapi.Config (the caller adds the
// logger and metrics).
func (f *File) HTTPConfig() httpapi.Config {
	return httpapi.Config{MaxBodyBytes: f.HTTP.MaxBodyBytes, MaxAdminBodyBytes: f.HTTP.MaxAdminBodyBytes}
}

// fileKeys names the fields of node.Config, resp.Config and
// httpapi.Config by their keys in the file, so that their Validate errors
// speak the file's language.
var fileKeys = map[string]string{
	"ID": "node.id", "Region": "node.region", "DataDir": "node.data_dir", "ListenAddr": "addresses.listen",
	"Peers": "peers", "TickInterval": "timings.tick_interval", "MinHeartbeatInterval": "timings.min_heartbeat_interval",
	"LeaderCheckInterval": "timings.leader_check_interval", "LeaderHysteresis": "timings.leader_hysteresis",
	"RequestTimeout": "timings.request_timeout", "MaxClockOffset": "timings.max_clock_offset",
	"PlacementWait": "timings.placement_wait", "HealthCheckInterval": "timings.health_check_interval",
	"MaxKeyBytes": "limits.max_key_bytes", "MaxValueBytes": "limits.max_value_bytes",
	"CacheBytes": "storage.cache_bytes", "MemTableBytes": "storage.memtable_bytes", "RowCacheBytes": "storage.row_cache_bytes", "MaxInflightMsgs": "raft.max_inflight_msgs",
	"MaxSizePerMsgBytes": "raft.max_size_per_msg_bytes", "MaxUncommittedBytes": "raft.max_uncommitted_bytes",
	"QuiesceAfter":        "raft.quiesce_after",
	"CompactAfterEntries": "raft.compact_after_entries", "StreamBatchInterval": "streams.batch_interval",
	"StreamMaxBatchBytes": "streams.max_batch_bytes", "StreamMaxInFlight": "streams.max_in_flight",
	"StreamHeartbeatInterval": "streams.heartbeat_interval", "StreamRetryBackoff": "streams.retry_backoff",
	"MaxClients": "resp.max_clients", "MaxArgs": "resp.max_args", "MaxBulkBytes": "resp.max_bulk_bytes",
	"MaxCommandBytes": "resp.max_command_bytes", "MaxInlineBytes": "resp.max_inline_bytes",
	"OutputBufferBytes": "resp.output_buffer_bytes", "MaxReplyBytes": "resp.max_reply_bytes",
	"WriteTimeout": "resp.write_timeout", "IdleTimeout": "resp.idle_timeout", "ScanCursors": "resp.scan_cursors",
	"ScanCursorTTL": "resp.scan_cursor_ttl", "MaxBodyBytes": "http.max_body_bytes",
	"AuthTimeout": "resp.auth_timeout", "MaxUnauthenticated": "resp.max_unauthenticated",
	"EventLoops": "resp.event_loops", "PipelineHandOver": "resp.pipeline_hand_over",
	"MaxAdminBodyBytes": "http.max_admin_body_bytes",
}

var goNameRE = func() *regexp.Regexp {
	names := make([]string, 0, len(fileKeys))
	for k := range fileKeys {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	return regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
}()

// renamed is an error of another package's Validate, its Go field names
// replaced by the file's keys; it still wraps the original.
type renamed struct {
	msg string
	err error
}

func (r *renamed) Error() string { return r.msg }
func (r *renamed) Unwrap() []error {
	return []error{ErrInvalid, r.err}
}

func rename(err error) error {
	msg := goNameRE.ReplaceAllStringFunc(err.Error(), func(s string) string { return fileKeys[s] })
	return &renamed{msg: "config: " + msg, err: err}
}

// rowCacheBytes turns storage.row_cache_bytes into node.Config's
// RowCacheBytes: in a file 0 was written on purpose and means no row
// cache, which the node calls -1 (its 0 is the default).
func rowCacheBytes(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}
