package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// docs explains every key of the file, by its path. Render refuses a key
// that has none, so a new setting cannot reach the example unexplained.
var docs = map[string]string{
	"cluster": "The cluster's name, the same on every node (1 to 64 letters, digits, '.', '_', '-';\n" +
		"\"\": \"meridian\", or for a joining node the name of the cluster it joins). Its id, derived\n" +
		"from the name and the initial peers, is recorded in the data directory; a node refuses\n" +
		"requests, streams and data of another cluster.",
	"join": "HTTP address of a member of a running cluster to join (instead of peers).",
	"latency": "Emulated inter-region latency for local multi-region runs: \"world\", a matrix file\n" +
		"(every process must use the same), or \"\" / \"none\" (no delay).",

	"node":           "Where this node is.",
	"node.id":        "The node's id: a positive number unique in the cluster (required).",
	"node.region":    "The node's region (required).",
	"node.zone":      "A failure domain inside the region (optional).",
	"node.data_dir":  "The data directory, created with mode 0700 (required).",
	"node.log_level": "debug, info, warn or error.",

	"addresses":           "Where the node listens.",
	"addresses.listen":    "Node-to-node listen address.",
	"addresses.advertise": "Node-to-node address other nodes use (\"\": the listen address).",
	"addresses.resp":      "Redis protocol listen address.",
	"addresses.http":      "HTTP API listen address.",

	"peers": "The initial members, this node included, the same list on every one of them\n" +
		"(the cluster records it when it forms). Leave it empty with join.",

	"timings": "Clocks. tick_interval and min_heartbeat_interval are lease-critical: the cluster\n" +
		"records them when it forms and refuses a node whose own differ, at join and at start.",
	"timings.tick_interval": "The raft tick.",
	"timings.min_heartbeat_interval": "The raft heartbeat on a LAN; on a WAN the heartbeat follows the slowest measured\n" +
		"round trip between a group's voters. The election timeout is ten heartbeats, and\n" +
		"leader leases last 0.8 x (ten minimum heartbeats - two ticks). At least one tick.",
	"timings.leader_check_interval": "How often leaders check that they are in their group's preferred region.",
	"timings.leader_hysteresis": "How long a better-placed replica must stay healthy and caught up before leadership\n" +
		"moves to it. At least leader_check_interval.",
	"timings.request_timeout":  "Bound of a request that carries no deadline of its own.",
	"timings.max_clock_offset": "How far ahead of this node's clock a remote timestamp may be.",
	"timings.placement_wait": "How long a keyspace change waits, by default, for a live node in every region it\n" +
		"needs (at most 45s; requests may ask for another wait).",
	"timings.health_check_interval": "How often the node checks the keyspaces' replication goals.",

	"limits":                 "What clients may write.",
	"limits.max_key_bytes":   "Largest key, in bytes.",
	"limits.max_value_bytes": "Largest value, in bytes (key and value together at most 32 MiB).",

	"storage":                 "The storage engine (Pebble).",
	"storage.cache_bytes":     "Size of the block cache, in bytes.",
	"storage.row_cache_bytes": "Size of the row cache, in bytes: the values of recently read keys, kept in memory in front of the storage engine (0: none).",
	"storage.memtable_bytes":  "Size the in-memory write buffers grow to before they are flushed to disk, in bytes (1 MiB to 4 GiB). Larger buffers flush and compact less often under write load and keep more of the last writes in the write-ahead log.",

	"raft": "The raft windows of every group.",
	"raft.max_inflight_msgs": "Append messages in flight per follower: the pipelining depth that keeps a WAN\n" +
		"link busy.",
	"raft.max_size_per_msg_bytes": "Bound of the entries in one append message, in bytes.",
	"raft.max_uncommitted_bytes": "Proposals a leader accepts beyond its commit index, in bytes (memory while a\n" +
		"quorum is unreachable). At least max_size_per_msg_bytes.",
	"raft.compact_after_entries": "Applied entries a log keeps before it is truncated; a follower further behind is\n" +
		"caught up by snapshot.",
	"raft.quiesce_after": "How long a raft group stays idle (nothing written, read or streamed) before it stops\n" +
		"ticking and heartbeating until used again; 0: groups never quiesce.",

	"streams":                "The streams of async and active keyspaces between regions.",
	"streams.batch_interval": "How long changes may wait for more to fill a batch.",
	"streams.max_batch_bytes": "Change data a batch is filled up to, in bytes (at most 32 MiB; one larger change\n" +
		"goes alone).",
	"streams.max_in_flight":      "Batches sent and not yet acknowledged, per stream.",
	"streams.heartbeat_interval": "How often an idle stream sends the source's closed timestamp (at least batch_interval).",
	"streams.retry_backoff":      "Pause after a failed send before the stream resumes from the destination's position.",

	"resp":                     "The Redis protocol front end.",
	"resp.default_keyspace":    "The keyspace of a new connection.",
	"resp.max_clients":         "Open connections; one more is refused.",
	"resp.max_args":            "Arguments of one command, its name included.",
	"resp.max_bulk_bytes":      "One argument, in bytes (0: the larger of 16 MiB and limits.max_value_bytes).",
	"resp.max_command_bytes":   "All arguments of one command together, in bytes.",
	"resp.max_inline_bytes":    "A command sent as a text line, in bytes.",
	"resp.output_buffer_bytes": "Replies to a pipeline gathered before they are written, in bytes.",
	"resp.max_reply_bytes":     "A reply built whole before it is sent (KEYS), in bytes.",
	"resp.write_timeout":       "How long writing replies may wait for a client that does not read them.",
	"resp.idle_timeout":        "Close a connection idle this long, or up to half as long again (\"0s\": never); subscribed connections stay.",
	"resp.scan_cursors":        "SCAN cursors remembered.",
	"resp.scan_cursor_ttl":     "How long a SCAN cursor stays valid.",
	"resp.auth_timeout": "How long a connection may take to authenticate (TLS handshake included) on a\n" +
		"secure node; it is closed then.",
	"resp.max_unauthenticated": "Connections not authenticated yet (within max_clients); one more is refused.",
	"resp.event_loops": "Event loops that serve plain-TCP connections until one sends a command that may\n" +
		"wait (0: one per four processors, at least one; -1: none, every connection has\n" +
		"its own goroutine).",
	"resp.pipeline_hand_over": "A connection in an event loop that sends this many commands in one go (a\n" +
		"pipeline) is handed over to a goroutine of its own once they are answered (0: the\n" +
		"default, 8, or never where the loops leave at most one processor per loop; -1:\n" +
		"never, pipelines of reads stay in the loop).",

	"http": "The HTTP API.",
	"http.max_body_bytes": "Body of a data request, in bytes (0: room for the largest value in base64 plus\n" +
		"64 KiB).",
	"http.max_admin_body_bytes": "Body of an admin request, in bytes.",
	"http.max_conns":            "Open connections; more wait to be accepted.",

	"security": "How the node is secured (SECURITY.md). Without certs_dir the node speaks plaintext and\n" +
		"asks no credentials, and refuses to listen on addresses other than loopback unless\n" +
		"insecure is set.",
	"security.certs_dir": "The node's certificates (ca.crt, node.crt, node.key; meridian cert create-node):\n" +
		"mutual TLS between nodes, TLS for RESP and HTTP, and every client authenticated.",
	"security.insecure": "Listen on any address without certificates: plaintext and no authentication,\n" +
		"for trusted networks only (the node warns).",
	"security.reload_interval": "How often the certificate files are checked for changes (SIGHUP reloads at once).",
}

// exampleFile is the example: the defaults, with the settings that have
// none filled in as for the first node of a three-region cluster.
func exampleFile() File {
	f := Default()
	f.Node.ID, f.Node.Region, f.Node.DataDir = 1, "us-east", "/var/lib/meridian"
	f.Addresses.Listen = "127.0.0.1:7401"
	f.Peers = []Peer{
		{ID: 1, Region: "us-east", Addr: "127.0.0.1:7401"},
		{ID: 2, Region: "eu-west", Addr: "127.0.0.1:7402"},
		{ID: 3, Region: "ap-southeast", Addr: "127.0.0.1:7403"},
	}
	return f
}

// Example returns a commented configuration file in the format: every
// key, explained, with today's defaults (and example values for the
// node's id, region, data directory and peers, which have none).
func Example(format Format) ([]byte, error) {
	return Render(exampleFile(), format)
}

const exampleHeader = `Meridian node configuration (meridian start --config FILE).
Every key is optional but node.id, node.region, node.data_dir and peers (or join);
a key left out keeps the default shown here. Flags given on the command line
override the file. Durations are strings such as "10ms", "1s", "1m30s"; sizes
are in bytes.`

// Render writes f as a commented file in the format.
func Render(f File, format Format) ([]byte, error) {
	if format != YAML && format != TOML {
		return nil, fmt.Errorf("%w: unknown format %q (yaml or toml)", ErrInvalid, format)
	}
	var b bytes.Buffer
	comment(&b, "", exampleHeader)
	v := reflect.ValueOf(f)
	t := v.Type()
	for i := range t.NumField() {
		key := keyOf(t.Field(i), format)
		if key == "-" {
			continue // not in files (ClockOffset: a flag only)
		}
		doc, ok := docs[key]
		if !ok {
			return nil, fmt.Errorf("config: key %s has no explanation", key)
		}
		fv := v.Field(i)
		b.WriteString("\n")
		switch {
		case fv.Kind() == reflect.Struct:
			comment(&b, "", doc)
			indent := "  "
			if format == YAML {
				fmt.Fprintf(&b, "%s:\n", key)
			} else {
				fmt.Fprintf(&b, "[%s]\n", key)
				indent = ""
			}
			st := fv.Type()
			for j := range st.NumField() {
				sub := key + "." + keyOf(st.Field(j), format)
				sdoc, ok := docs[sub]
				if !ok {
					return nil, fmt.Errorf("config: key %s has no explanation", sub)
				}
				comment(&b, indent, sdoc)
				val, err := scalar(fv.Field(j))
				if err != nil {
					return nil, fmt.Errorf("config: %s: %w", sub, err)
				}
				assign(&b, indent, keyOf(st.Field(j), format), val, format)
			}
		case fv.Kind() == reflect.Slice: // peers
			comment(&b, "", doc)
			peers := fv.Interface().([]Peer)
			if format == YAML {
				if len(peers) == 0 {
					fmt.Fprintf(&b, "%s: []\n", key)
				} else {
					fmt.Fprintf(&b, "%s:\n", key)
				}
				for _, p := range peers {
					fmt.Fprintf(&b, "  - {id: %d, region: %s, addr: %s}\n", p.ID, quote(p.Region), quote(p.Addr))
				}
			} else {
				for k, p := range peers {
					if k > 0 {
						b.WriteString("\n")
					}
					fmt.Fprintf(&b, "[[%s]]\nid = %d\nregion = %s\naddr = %s\n", key, p.ID, quote(p.Region), quote(p.Addr))
				}
			}
		default:
			comment(&b, "", doc)
			val, err := scalar(fv)
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", key, err)
			}
			assign(&b, "", key, val, format)
		}
	}
	return b.Bytes(), nil
}

// quote writes a double-quoted string both YAML and TOML read alike:
// backslash, quote and control characters escaped, the rest as is.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func keyOf(f reflect.StructField, format Format) string {
	name, _, _ := strings.Cut(f.Tag.Get(string(format)), ",")
	return name
}

func comment(b *bytes.Buffer, indent, text string) {
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(b, "%s# %s\n", indent, line)
	}
}

func assign(b *bytes.Buffer, indent, key, val string, format Format) {
	if format == YAML {
		fmt.Fprintf(b, "%s%s: %s\n", indent, key, val)
	} else {
		fmt.Fprintf(b, "%s%s = %s\n", indent, key, val)
	}
}

// scalar formats a value the same way in YAML and TOML: strings and
// durations quoted, numbers as they are.
func scalar(v reflect.Value) (string, error) {
	if d, ok := v.Interface().(time.Duration); ok {
		return quote(d.String()), nil
	}
	switch v.Kind() {
	case reflect.String:
		return quote(v.String()), nil
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	}
	return "", fmt.Errorf("no format for a %s", v.Kind())
}
