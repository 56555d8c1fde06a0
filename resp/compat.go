package resp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/kv"
)

// Compatibility with Redis 7.0, command by command: what docs/commands.md
// shows (generated from the command table by TestCommandsDoc). A command
// of the table with no entry here behaves as in Redis; an entry says how
// it differs. Commands Redis has and the table does not are listed with
// the reason (unsupported, by group or one by one).

// compatNote is how a supported command differs from Redis 7.0.
type compatNote struct {
	note string
}

var compat = map[string]compatNote{
	// Replies in another order.
	"smembers": {"members in byte order (Redis: its hash table's order)"},
	"sinter":   {"members in byte order; keys of one shard"},
	"sunion":   {"members in byte order; keys of one shard"},
	"sdiff":    {"members in byte order; keys of one shard"},
	"hgetall":  {"fields in byte order (Redis: insertion order for small hashes, its hash table's otherwise)"},
	"hkeys":    {"fields in byte order"},
	"hvals":    {"values in their fields' byte order"},
	"sscan":    {"the whole set in one reply (cursor 0), in byte order; COUNT is ignored"},
	"hscan":    {"the whole hash in one reply (cursor 0), in field order; COUNT is ignored"},
	"zscan":    {"up to 128 members: the whole set in score order, as Redis; larger sets: COUNT members at a time in member order, with a cursor valid on this server for 10 minutes"},
	// Random choices.
	"spop":        {"the members drawn are Meridian's random choice (deterministic in the replicated log), not Redis's; with a count, returned in byte order"},
	"srandmember": {"random choice"},
	"hrandfield":  {"random choice"},
	"zrandmember": {"random choice"},
	"randomkey":   {"random choice, not uniform: a random place in a random shard's key order"},
	// Several keys.
	"mget":        {"keys of several shards: one read per shard, at the connection's consistency"},
	"mset":        {"keys of several shards: one write per shard, atomic within a shard only (MSETNX and transactions need one shard)"},
	"del":         {"keys of several shards: one write per shard, atomic within a shard only"},
	"unlink":      {"as DEL (deletion is immediate)"},
	"exists":      {"keys of several shards: one read per shard"},
	"touch":       {"as EXISTS: no access time is kept"},
	"msetnx":      {"keys of one shard (hash tags), else CROSSSLOT"},
	"rename":      {"keys of one shard (hash tags), else CROSSSLOT"},
	"renamenx":    {"keys of one shard (hash tags), else CROSSSLOT"},
	"copy":        {"keys of one shard (hash tags), else CROSSSLOT; DB 0 only"},
	"smove":       {"keys of one shard, else CROSSSLOT"},
	"lmove":       {"keys of one shard, else CROSSSLOT"},
	"rpoplpush":   {"keys of one shard, else CROSSSLOT"},
	"sinterstore": {"keys of one shard, else CROSSSLOT"},
	"sunionstore": {"keys of one shard, else CROSSSLOT"},
	"sdiffstore":  {"keys of one shard, else CROSSSLOT"},
	// Blocking.
	"blpop":      {"keys of one shard; clients waiting on one key are not served in arrival order"},
	"brpop":      {"keys of one shard; clients waiting on one key are not served in arrival order"},
	"blmove":     {"keys of one shard; clients waiting on one key are not served in arrival order"},
	"brpoplpush": {"keys of one shard; clients waiting on one key are not served in arrival order"},
	"bzpopmin":   {"keys of one shard; clients waiting on one key are not served in arrival order"},
	"bzpopmax":   {"keys of one shard; clients waiting on one key are not served in arrival order"},
	// Sorted sets.
	"zrank":    {"O(rank): the rank is counted (Redis's skip list: O(log n))"},
	"zrevrank": {"O(rank): the rank is counted"},
	// Transactions.
	"multi": {"commands on keys of one shard (hash tags), else CROSSSLOT when queued; commands not on keys (SCAN, KEYS, DBSIZE, INFO, CONFIG, SUBSCRIBE, PUBLISH, ...) are refused when queued"},
	"exec":  {"one raft entry: atomic, as in Redis; always a write, even for a transaction of reads; permissions are checked again at EXEC, and a queued command no longer allowed refuses the whole transaction (Redis: that command's reply is NOPERM, the others run)"},
	"watch": {"a key watched while absent, then created and deleted again before EXEC, is not seen as changed; keys of one shard"},
	// Keys and server.
	"object":    {"ENCODING names the encoding Redis would choose for the value's size (Meridian stores every value its own way), REFCOUNT is 1, IDLETIME 0 (not tracked), FREQ refused"},
	"keys":      {"the reply is built whole and bounded (64 MiB by default): use SCAN"},
	"scan":      {"cursors are numbers valid on the server that issued them, for 10 minutes"},
	"flushdb":   {"deletes the connection's keyspace in every region and needs a confirmation: FLUSHDB [ASYNC|SYNC] CONFIRM <keyspace>; needs the keyspace's admin permission (+@admin), and is audited"},
	"select":    {"database 0 only: keyspaces take the place of databases (MERIDIAN.KEYSPACE)"},
	"auth":      {"Meridian's users (ACL SETUSER), a client certificate at the TLS handshake, or the default user when it is on and nopass; on a node without security, the default user with any password"},
	"hello":     {"AUTH as AUTH"},
	"acl":       {"WHOAMI, USERS, LIST, GETUSER, SETUSER, DELUSER, CAT, GENPASS; rules grant keyspaces (~pattern) classes of commands (+@read, +@write, +@admin, +@all), not single commands or key patterns"},
	"client":    {"SETNAME, GETNAME, ID, INFO, LIST, SETINFO"},
	"config":    {"GET of a few read-only parameters; SET refused (a node is configured when it starts)"},
	"info":      {"sections server, clients, replication (shards and streams), keyspace"},
	"command":   {"COUNT, LIST, INFO, DOCS (summary, group), GETKEYS"},
	"dbsize":    {"a scan of every shard's keys (Redis keeps a count)"},
	"expire":    {"the expiry is judged by the writer's clock, carried in the write"},
	"publish":   {"returns the number of subscribers of the node that received it (as Redis Cluster); subscribers of every node and region get the message; channels have no permissions (any authenticated client)"},
	"subscribe": {"channels have no permissions: any authenticated client may subscribe"},
	"pubsub":    {"CHANNELS, NUMSUB, NUMPAT about the subscriptions of the node asked (as Redis Cluster)"},
}

// strategyNotes overrides what a command means in a strategy.
var strategyNotes = map[string][3]string{
	"scan":       {"every shard, read at the leader", "every shard, at the connection's consistency (eventual, prefix: the local replicas)", "the region's replicas"},
	"keys":       {"as SCAN", "as SCAN", "as SCAN"},
	"dbsize":     {"as SCAN", "as SCAN", "the region's replicas"},
	"randomkey":  {"as SCAN", "as SCAN", "the region's replicas"},
	"flushdb":    {"every shard, in every region", "every shard at the primary, then in every region by the streams", "refused: deleting takes a tombstone per key, so that older writes arriving later stay deleted; delete the keys (SCAN and DEL)"},
	"watch":      {"as Redis (above)", "read at the primary", "refused: regions write concurrently, so there is no single order in which to check a watched key"},
	"multi":      {"one raft entry", "one raft entry at the primary, shipped to the other regions as one", "atomic in the writing region; the other regions merge its effects key by key"},
	"exec":       {"one raft entry", "one raft entry at the primary", "atomic in the writing region only"},
	"publish":    {"to every node", "to every node", "to every node"},
	"subscribe":  {"messages from every node", "messages from every node", "messages from every node"},
	"psubscribe": {"messages from every node", "messages from every node", "messages from every node"},
}

// activeNotes says what an engine write with a CRDT form does in an
// active keyspace.
var activeNotes = map[string]string{
	"set":     "register write, last writer wins (or the keyspace's resolver); no expiry",
	"setnx":   "register write if absent in this region",
	"getset":  "register write",
	"mset":    "register writes, atomic in the region",
	"del":     "tombstones (collected once every region has seen them)",
	"unlink":  "tombstones",
	"incr":    "counter: no increment is lost",
	"decr":    "counter",
	"incrby":  "counter",
	"decrby":  "counter",
	"sadd":    "add-wins set",
	"srem":    "removes the members this region has seen",
	"hset":    "fields last writer wins",
	"hmset":   "fields last writer wins",
	"hdel":    "field tombstones",
	"zadd":    "add-wins members, scores last writer wins (ZADD INCR: counter)",
	"zincrby": "the member's counter: no increment is lost, and one a concurrent ZADD did not see is added to its score",
	"zrem":    "removes the members this region has seen; a concurrent add wins",
}

// unsupportedGroups gives the reason for Redis's commands Meridian does
// not have, by group.
var unsupportedGroups = map[string]string{
	"bitmap":      "bitmaps are not implemented",
	"cluster":     "Meridian places its own shards (meridian keyspace, meridian status); clients see one server",
	"geo":         "geospatial indexes are not implemented",
	"hyperloglog": "HyperLogLog is not implemented",
	"scripting":   "scripting (Lua, functions) is not implemented",
	"stream":      "streams are not implemented",
	"server":      "administration is Meridian's own (meridian CLI, HTTP API): persistence, replication and memory are managed by the cluster",
}

// unsupportedCommands gives the reason for single commands.
var unsupportedCommands = map[string]string{
	"blmpop":       "not implemented yet (BLPOP/BRPOP are)",
	"lmpop":        "not implemented yet (LPOP/RPOP with a count are)",
	"bzmpop":       "not implemented yet",
	"zmpop":        "not implemented yet",
	"zdiff":        "not implemented yet",
	"zdiffstore":   "not implemented yet",
	"zinter":       "not implemented yet",
	"zinterstore":  "not implemented yet",
	"zintercard":   "not implemented yet",
	"zunion":       "not implemented yet",
	"zunionstore":  "not implemented yet",
	"zrangestore":  "not implemented yet",
	"sintercard":   "not implemented yet (SINTER is)",
	"sort":         "not implemented",
	"sort_ro":      "not implemented",
	"lcs":          "not implemented",
	"dump":         "values have Meridian's own encoding",
	"restore":      "values have Meridian's own encoding",
	"migrate":      "Meridian moves data between regions itself",
	"move":         "one database per keyspace: use MERIDIAN.KEYSPACE",
	"wait":         "writes are acknowledged once a quorum has them (sync) or at the primary (async): see the consistency levels",
	"ssubscribe":   "sharded pub/sub is not implemented (SUBSCRIBE reaches every region)",
	"sunsubscribe": "sharded pub/sub is not implemented",
	"spublish":     "sharded pub/sub is not implemented (PUBLISH reaches every region)",
	"reset":        "not implemented",
	"flushall":     "every keyspace at once is not offered: FLUSHDB, keyspace by keyspace",
	"swapdb":       "one database per keyspace",
	"time":         "not implemented",
	"monitor":      "not implemented",
}

// commandsDoc renders docs/commands.md from the command table, against
// Redis 7.0's commands (name, group, subcommands per line).
func commandsDoc(redis7 string) string {
	type redisCmd struct{ name, group string }
	var all []redisCmd
	for _, l := range strings.Split(strings.TrimSpace(redis7), "\n") {
		f := strings.Fields(l)
		all = append(all, redisCmd{f[0], f[1]})
	}
	full, partial := 0, 0
	var rows []string
	for _, rc := range all {
		cmd := commandTable[rc.name]
		status, meaning := "no", ""
		var strat [3]string
		if cmd == nil {
			meaning = unsupportedCommands[rc.name]
			if meaning == "" {
				meaning = unsupportedGroups[rc.group]
			}
			if meaning == "" {
				meaning = "not implemented"
			}
			strat = [3]string{"", "", ""}
		} else {
			note := compat[rc.name].note
			status, meaning = "supported", "as Redis"
			if note != "" {
				status, meaning = "partial", note
				partial++
			} else {
				full++
			}
			strat = strategies(cmd)
		}
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s | %s | %s | %s | %s |", strings.ToUpper(rc.name), rc.group, status, mdEscape(meaning), mdEscape(strat[0]), mdEscape(strat[1]), mdEscape(strat[2])))
	}
	var own []string
	for _, cmd := range sortedCommands() {
		if !slices.ContainsFunc(all, func(rc redisCmd) bool { return rc.name == cmd.name }) {
			own = append(own, fmt.Sprintf("| `%s` | %s |", strings.ToUpper(cmd.name), mdEscape(cmd.summary)))
		}
	}
	var b strings.Builder
	b.WriteString("# Redis commands in Meridian\n\n")
	b.WriteString("<!-- Generated from the command table (resp/commands.go, kv's command engine, resp/compat.go) by\n")
	b.WriteString("     MERIDIAN_UPDATE_DOCS=1 go test ./resp -run TestCommandsDoc; the test fails when this file is out of date. -->\n\n")
	fmt.Fprintf(&b, "Meridian answers %d of Redis 7.0's %d commands: %d as Redis does, %d with the differences below; %d are not offered. ",
		full+partial, len(all), full, partial, len(all)-full-partial)
	fmt.Fprintf(&b, "COMMAND COUNT reports %d: the %d, and %d of Meridian's own (end of this page).\n\n", len(commandTable), full+partial, len(commandTable)-full-partial)
	b.WriteString(`The replies of the commands marked "as Redis" are compared with a real Redis (Debian's redis-server 7.0) on random command sequences, in RESP2 and RESP3 (resp/diff_test.go); so are those marked "partial", but for the difference listed.

Strategies (docs/DESIGN.md 2):

- **sync**: every shard is one raft group spanning regions; a command behaves as in Redis (a write is acknowledged once a quorum has it).
- **async**: writes go to the primary region (forwarded from the others) and reach the other regions by streams; reads are served at the connection's consistency level (MERIDIAN.CONSISTENCY). Blocking pops are served in the primary region only.
- **active**: every region writes; a write with a merge (a CRDT) is applied in the region and merged everywhere; commands without a merge are refused with the reason. Reads see the region's merged state. Transactions are atomic in the writing region.

Keys of one command or transaction must live in one shard: keys with the same hash tag ({user42}:cart, {user42}:orders) do. Otherwise the reply is CROSSSLOT, naming the keys and their shards, as Redis Cluster answers.

| command | group | status | in Meridian | sync | async | active |
| --- | --- | --- | --- | --- | --- | --- |
`)
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	b.WriteString("\n## Meridian's own commands\n\n| command | what it does |\n| --- | --- |\n")
	for _, r := range own {
		b.WriteString(r + "\n")
	}
	return b.String()
}

// strategies says what a supported command means in each strategy.
func strategies(cmd *command) [3]string {
	if s, ok := strategyNotes[cmd.name]; ok {
		return s
	}
	spec := cmd.spec
	if spec == nil {
		return [3]string{"as Redis", "as Redis", "as Redis"}
	}
	sync := "as Redis"
	async := "at the connection's consistency"
	if spec.Write {
		async = "in the primary region (forwarded there)"
	}
	if slices.Contains(spec.Flags, "blocking") {
		async = "in the primary region only"
	}
	var active string
	switch spec.Active {
	case kv.ActiveRead:
		active = "reads the region's merged state"
		if spec.Write {
			active = "the region's merged state"
		}
	case kv.ActiveWrite:
		active = activeNotes[cmd.name]
		if active == "" {
			active = "a CRDT operation of the region"
		}
	default:
		active = "refused: " + spec.Active
	}
	return [3]string{sync, async, active}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
