package resp

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node"
)

// The Redis version Meridian's command set and replies follow, reported
// where clients look for one (HELLO, INFO); Meridian's own version is
// reported next to it.
const (
	compatVersion   = "7.2.0"
	meridianVersion = "0.1.0"
)

func commandName(b []byte) string { return strings.ToLower(string(b)) }

func cmdPing(c *client, args [][]byte) error {
	switch len(args) {
	case 1:
		c.w.simple("PONG")
	case 2:
		c.w.bulk(args[1])
	default:
		return errArity("ping")
	}
	return nil
}

func cmdEcho(c *client, args [][]byte) error {
	c.w.bulk(args[1])
	return nil
}

func cmdQuit(c *client, args [][]byte) error {
	c.w.simple("OK")
	c.quit = true
	return nil
}

func cmdSelect(c *client, args [][]byte) error {
	db, err := parseInt(args[1])
	if err != nil {
		return err
	}
	if db != 0 {
		return replyError("ERR DB index is out of range")
	}
	c.w.simple("OK")
	return nil
}

// validName reports whether a client name or library attribute has only
// printable, non-blank ASCII (as Redis requires).
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

// cmdHello: HELLO [protover [AUTH user pass] [SETNAME name]]. Both RESP2
// and RESP3 are spoken; the reply is in the protocol just chosen.
func cmdHello(c *client, args [][]byte) error {
	h, err := parseHello(args[1:])
	if err != nil {
		return err
	}
	if h.auth {
		if err := c.login(h.user, h.pass); err != nil {
			return err
		}
	} else if !c.authenticated() {
		return errHelloNoAuth
	}
	proto := c.w.proto
	if h.proto != 0 {
		proto = h.proto
	}
	c.w.proto = proto
	if h.setName {
		c.mu.Lock()
		c.name = string(h.name)
		c.mu.Unlock()
	}
	c.w.mapHeader(11)
	c.w.bulkString("server")
	c.w.bulkString("meridian")
	c.w.bulkString("version")
	c.w.bulkString(compatVersion)
	c.w.bulkString("proto")
	c.w.integer(int64(proto))
	c.w.bulkString("id")
	c.w.integer(c.id)
	c.w.bulkString("mode")
	c.w.bulkString("standalone")
	c.w.bulkString("role")
	c.w.bulkString("master")
	c.w.bulkString("modules")
	c.w.array(0)
	c.w.bulkString("meridian_version")
	c.w.bulkString(meridianVersion)
	c.w.bulkString("region")
	c.w.bulkString(c.node().Region())
	c.w.bulkString("node")
	c.w.integer(int64(c.node().ID()))
	c.w.bulkString("keyspace")
	c.w.bulkString(c.keyspace)
	return nil
}

func cmdClient(c *client, args [][]byte) error {
	sub := commandName(args[1])
	arity := func(n int) error {
		if len(args) != n {
			return errArity("client|" + sub)
		}
		return nil
	}
	switch sub {
	case "setname":
		if err := arity(3); err != nil {
			return err
		}
		if !validName(args[2]) {
			return replyError("ERR Client names cannot contain spaces, newlines or special characters.")
		}
		c.mu.Lock()
		c.name = string(args[2])
		c.mu.Unlock()
		c.w.simple("OK")
	case "getname":
		if err := arity(2); err != nil {
			return err
		}
		if c.name == "" {
			c.w.null()
		} else {
			c.w.bulkString(c.name)
		}
	case "id":
		if err := arity(2); err != nil {
			return err
		}
		c.w.integer(c.id)
	case "info":
		if err := arity(2); err != nil {
			return err
		}
		c.w.bulkString(c.infoLine() + "\n")
	case "list":
		if err := arity(2); err != nil {
			return err
		}
		clients := c.s.clientsSnapshot()
		slices.SortFunc(clients, func(a, b *client) int { return int(a.id - b.id) })
		var b strings.Builder
		for _, o := range clients {
			b.WriteString(o.infoLine())
			b.WriteByte('\n')
		}
		c.w.bulkString(b.String())
	case "setinfo":
		if err := arity(4); err != nil {
			return err
		}
		attr := strings.ToUpper(string(args[2]))
		if attr != "LIB-NAME" && attr != "LIB-VER" {
			return replyError(fmt.Sprintf("ERR Unrecognized option '%s'", printable(args[2], 64)))
		}
		if !validName(args[3]) {
			return replyError(fmt.Sprintf("ERR %s cannot contain spaces, newlines or special characters.", attr))
		}
		c.mu.Lock()
		if attr == "LIB-NAME" {
			c.libName = string(args[3])
		} else {
			c.libVer = string(args[3])
		}
		c.mu.Unlock()
		c.w.simple("OK")
	default:
		return replyError(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", printable(args[1], 64)))
	}
	return nil
}

// infoLine describes a connection as CLIENT INFO and CLIENT LIST do.
func (c *client) infoLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d idle=%d flags=N db=0 cmd=%s user=%s lib-name=%s lib-ver=%s keyspace=%s",
		c.id, c.addr, c.laddr, c.name, int(now.Sub(c.created).Seconds()), int((mono() - time.Duration(c.lastAt.Load())).Seconds()),
		c.lastCmd, c.userName(), c.libName, c.libVer, c.keyspace)
}

func sortedCommands() []*command {
	out := make([]*command, 0, len(commandTable))
	for _, cmd := range commandTable {
		out = append(out, cmd)
	}
	slices.SortFunc(out, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return out
}

// cmdCommand: COMMAND [COUNT | LIST | INFO [name...] | DOCS [name...]].
func cmdCommand(c *client, args [][]byte) error {
	if len(args) == 1 {
		cmds := sortedCommands()
		c.w.array(len(cmds))
		for _, cmd := range cmds {
			c.writeCommandInfo(cmd)
		}
		return nil
	}
	sub := commandName(args[1])
	named := func() []*command {
		if len(args) == 2 {
			return sortedCommands()
		}
		out := make([]*command, 0, len(args)-2)
		for _, a := range args[2:] {
			out = append(out, commandTable[commandName(a)]) // nil if unknown
		}
		return out
	}
	switch sub {
	case "count":
		if len(args) != 2 {
			return errArity("command|count")
		}
		c.w.integer(int64(len(commandTable)))
	case "list":
		cmds := sortedCommands()
		c.w.array(len(cmds))
		for _, cmd := range cmds {
			c.w.bulkString(cmd.name)
		}
	case "info":
		cmds := named()
		c.w.array(len(cmds))
		for _, cmd := range cmds {
			if cmd == nil {
				c.w.null()
			} else {
				c.writeCommandInfo(cmd)
			}
		}
	case "docs":
		cmds := slices.DeleteFunc(named(), func(cmd *command) bool { return cmd == nil })
		c.w.mapHeader(len(cmds))
		for _, cmd := range cmds {
			c.w.bulkString(cmd.name)
			c.w.mapHeader(3)
			c.w.bulkString("summary")
			c.w.bulkString(cmd.summary)
			c.w.bulkString("since")
			c.w.bulkString(meridianVersion)
			c.w.bulkString("group")
			c.w.bulkString(cmd.group)
		}
	case "getkeys":
		if len(args) < 3 {
			return errArity("command|getkeys")
		}
		cmd := commandTable[commandName(args[2])]
		if cmd == nil {
			return replyError("ERR Invalid command specified")
		}
		sub := args[2:]
		if (cmd.arity > 0 && len(sub) != cmd.arity) || (cmd.arity < 0 && len(sub) < -cmd.arity) {
			return replyError("ERR Invalid number of arguments specified for command")
		}
		keys := commandKeys(cmd, sub)
		if len(keys) == 0 {
			return replyError("ERR The command has no key arguments")
		}
		c.w.array(len(keys))
		for _, k := range keys {
			c.w.bulk(k)
		}
	default:
		return replyError(fmt.Sprintf("ERR unknown subcommand '%s'. Try COMMAND HELP.", printable(args[1], 64)))
	}
	return nil
}

// writeCommandInfo writes one command as COMMAND INFO does: name, arity,
// flags, first key, last key, step, ACL categories, tips, key specs,
// subcommands.
func (c *client) writeCommandInfo(cmd *command) {
	c.w.array(10)
	c.w.bulkString(cmd.name)
	c.w.integer(int64(cmd.arity))
	c.w.setHeader(len(cmd.flags))
	for _, f := range cmd.flags {
		c.w.simple(f)
	}
	c.w.integer(int64(cmd.firstKey))
	c.w.integer(int64(cmd.lastKey))
	c.w.integer(int64(cmd.step))
	cats := aclCategories(cmd)
	c.w.setHeader(len(cats))
	for _, cat := range cats {
		c.w.simple(cat)
	}
	c.w.array(0) // tips
	c.writeKeySpecs(cmd)
	c.w.array(0) // subcommands
}

// aclCategories returns a command's ACL categories as Redis names them.
func aclCategories(cmd *command) []string {
	group := map[string]string{
		"generic": "@keyspace", "sorted_set": "@sortedset", "transactions": "@transaction",
		"server": "@admin", "meridian": "@meridian",
	}[cmd.group]
	if group == "" {
		group = "@" + cmd.group
	}
	out := []string{group}
	for _, f := range cmd.flags {
		switch f {
		case "write":
			out = append(out, "@write")
		case "readonly":
			out = append(out, "@read")
		case "blocking":
			out = append(out, "@blocking")
		}
	}
	if slices.Contains(cmd.flags, "fast") {
		out = append(out, "@fast")
	} else {
		out = append(out, "@slow")
	}
	if cmd.name == "flushdb" {
		out = append(out, "@dangerous")
	}
	return out
}

// writeKeySpecs writes a command's key specifications (Redis 7): where
// its keys begin (an index) and how far they go (a range).
func (c *client) writeKeySpecs(cmd *command) {
	if cmd.firstKey <= 0 {
		c.w.array(0)
		return
	}
	last := cmd.lastKey
	if last >= 0 {
		last -= cmd.firstKey // relative to the first key
	}
	access := "RO"
	if slices.Contains(cmd.flags, "write") {
		access = "RW"
	}
	c.w.array(1)
	c.w.mapHeader(3)
	c.w.bulkString("flags")
	c.w.setHeader(1)
	c.w.simple(access)
	c.w.bulkString("begin_search")
	c.w.mapHeader(2)
	c.w.bulkString("type")
	c.w.bulkString("index")
	c.w.bulkString("spec")
	c.w.mapHeader(1)
	c.w.bulkString("index")
	c.w.integer(int64(cmd.firstKey))
	c.w.bulkString("find_keys")
	c.w.mapHeader(2)
	c.w.bulkString("type")
	c.w.bulkString("range")
	c.w.bulkString("spec")
	c.w.mapHeader(3)
	c.w.bulkString("lastkey")
	c.w.integer(int64(last))
	c.w.bulkString("keystep")
	c.w.integer(int64(max(cmd.step, 1)))
	c.w.bulkString("limit")
	c.w.integer(0)
}

// commandKeys returns the keys of a command line as its table entry
// locates them.
func commandKeys(cmd *command, args [][]byte) [][]byte {
	if cmd.firstKey <= 0 || cmd.firstKey >= len(args) {
		return nil
	}
	last := cmd.lastKey
	if last < 0 {
		last += len(args)
	}
	var out [][]byte
	for i := cmd.firstKey; i <= min(last, len(args)-1); i += max(cmd.step, 1) {
		out = append(out, args[i])
	}
	return out
}

// cmdConfig: CONFIG GET pattern... over a few read-only parameters (what
// redis-benchmark and tools ask for); CONFIG SET is refused.
func cmdConfig(c *client, args [][]byte) error {
	switch commandName(args[1]) {
	case "get":
		if len(args) < 3 {
			return errArity("config|get")
		}
		cfg := c.s.cfg
		params := [][2]string{
			{"appendonly", "no"},
			{"databases", "1"},
			{"maxclients", strconv.Itoa(cfg.MaxClients)},
			{"maxmemory", "0"},
			{"proto-max-bulk-len", strconv.Itoa(cfg.MaxBulkBytes)},
			{"save", ""},
			{"timeout", strconv.Itoa(int(cfg.IdleTimeout.Seconds()))},
		}
		var out [][2]string
		for _, p := range params {
			for _, pat := range args[2:] {
				if kv.GlobMatch([]byte(strings.ToLower(string(pat))), []byte(p[0])) {
					out = append(out, p)
					break
				}
			}
		}
		c.w.mapHeader(len(out))
		for _, p := range out {
			c.w.bulkString(p[0])
			c.w.bulkString(p[1])
		}
	case "set":
		return replyError("ERR CONFIG SET is not supported: Meridian is configured when a node starts")
	case "resetstat":
		c.w.simple("OK")
	default:
		return replyError(fmt.Sprintf("ERR unknown subcommand '%s'. Try CONFIG HELP.", printable(args[1], 64)))
	}
	return nil
}

// cmdInfo: INFO [section...], sections server, clients, replication,
// keyspace (also "keyspaces"); none, "default", "all" or "everything"
// mean all.
func cmdInfo(c *client, args [][]byte) error {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[commandName(a)] = true
	}
	all := len(want) == 0 || want["default"] || want["all"] || want["everything"]
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !all && !want[strings.ToLower(name)] && !(name == "Keyspace" && want["keyspaces"]) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	n := c.node()
	uptime := time.Since(c.s.started)
	_, port, _ := net.SplitHostPort(c.s.Addr())
	section("Server",
		"redis_version:"+compatVersion,
		"meridian_version:"+meridianVersion,
		"redis_mode:standalone",
		"arch_bits:64",
		fmt.Sprintf("process_id:%d", os.Getpid()),
		"tcp_port:"+port,
		fmt.Sprintf("uptime_in_seconds:%d", int64(uptime.Seconds())),
		fmt.Sprintf("uptime_in_days:%d", int64(uptime.Hours()/24)),
		"meridian_region:"+n.Region(),
		fmt.Sprintf("meridian_node:%d", n.ID()))
	c.s.mu.Lock()
	nclients := len(c.s.clients)
	c.s.mu.Unlock()
	section("Clients",
		fmt.Sprintf("connected_clients:%d", nclients),
		fmt.Sprintf("maxclients:%d", c.s.cfg.MaxClients),
		fmt.Sprintf("blocked_clients:%d", n.BlockedClients()),
		fmt.Sprintf("loop_handovers:%d", c.s.handedOver.Load()),
		fmt.Sprintf("loop_writes:%d", c.s.loopWrites.Load()))
	shards := n.LocalShards()
	led, followed := 0, 0
	var shardLines []string
	for _, sh := range shards {
		switch sh.Role {
		case node.RoleLeader:
			led++
		case node.RoleFollower:
			followed++
		}
		reps := make([]string, len(sh.Replicas))
		for i, r := range sh.Replicas {
			reps[i] = strconv.FormatUint(r, 10)
		}
		shardLines = append(shardLines, fmt.Sprintf("shard_%s_%d:group=%d,role=%s,leader=%d,replicas=%s,applied=%d",
			sh.Keyspace, sh.Index, sh.Group, sh.Role, sh.Leader, strings.Join(reps, "|"), sh.Applied))
	}
	section("Replication", append([]string{
		"meridian_region:" + n.Region(),
		fmt.Sprintf("meridian_node:%d", n.ID()),
		fmt.Sprintf("shards_leader:%d", led),
		fmt.Sprintf("shards_follower:%d", followed),
	}, append(shardLines, streamLines(n)...)...)...)
	md := n.Metadata()
	names := make([]string, 0, len(md.Keyspaces))
	for name := range md.Keyspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	ksLines := []string{"connection_keyspace:" + c.keyspace}
	for _, name := range names {
		ks := md.Keyspaces[name]
		ksLines = append(ksLines, fmt.Sprintf("keyspace_%s:strategy=%s,home=%s,regions=%s,shards=%d,replicas=%d",
			name, ks.Strategy, ks.HomeRegion, strings.Join(ks.Regions, "|"), len(ks.Shards), ks.Replicas))
	}
	section("Keyspace", ksLines...)
	c.w.bulkString(b.String())
	return nil
}

// --- Meridian's own commands ---

func cmdKeyspace(c *client, args [][]byte) error {
	switch len(args) {
	case 1:
		c.w.bulkString(c.keyspace)
		return nil
	case 2:
		name := string(args[1])
		if c.node().Metadata().Keyspaces[name] == nil {
			return fmt.Errorf("%w: %q", node.ErrUnknownKeyspace, name)
		}
		c.setKeyspace(name)
		c.w.simple("OK")
		return nil
	}
	return errArity("meridian.keyspace")
}

func cmdConsistency(c *client, args [][]byte) error {
	switch len(args) {
	case 1:
		c.w.bulkString(c.level.String())
		return nil
	case 2:
		lvl, err := node.ParseConsistency(string(args[1]))
		if err != nil {
			return err
		}
		c.level = lvl
		c.w.simple("OK")
		return nil
	}
	return errArity("meridian.consistency")
}

// cmdSession: MERIDIAN.SESSION [token] shows the connection's session
// token for its keyspace, or adopts one (from another connection, or
// another region): session reads then see everything it records.
func cmdSession(c *client, args [][]byte) error {
	switch len(args) {
	case 1:
		c.w.bulkString(c.sessionToken())
		return nil
	case 2:
		if _, err := c.node().Session(c.keyspace, string(args[1]), node.Answer{}); err != nil {
			return err
		}
		t, err := consistency.DecodeToken(string(args[1]), c.node().Cluster(), c.keyspace)
		if err != nil {
			return fmt.Errorf("%w: %w", node.ErrBadToken, err)
		}
		c.setToken(&t)
		c.w.simple("OK")
		return nil
	}
	return errArity("meridian.session")
}

func cmdLast(c *client, args [][]byte) error {
	a := c.last
	c.w.mapHeader(7)
	c.w.bulkString("region")
	c.w.bulkString(a.Region)
	c.w.bulkString("node")
	c.w.integer(int64(a.Node))
	c.w.bulkString("consistency")
	c.w.bulkString(a.Consistency)
	c.w.bulkString("index")
	c.w.bulkString(strconv.FormatUint(a.Index, 10))
	c.w.bulkString("forwarded")
	if a.Forwarded {
		c.w.integer(1)
	} else {
		c.w.integer(0)
	}
	c.w.bulkString("staleness_ms")
	c.w.integer(a.StalenessMS)
	c.w.bulkString("session")
	c.w.bulkString(c.sessionToken())
	return nil
}

// cmdWith: MERIDIAN.WITH level command [arg...] runs one command at the
// given consistency, leaving the connection's own level as it was.
func cmdWith(c *client, args [][]byte) error {
	lvl, err := node.ParseConsistency(string(args[1]))
	if err != nil {
		return err
	}
	switch commandName(args[2]) {
	case "meridian.with", "meridian.consistency":
		return replyError(fmt.Sprintf("ERR %s cannot run inside MERIDIAN.WITH", strings.ToUpper(string(args[2]))))
	}
	saved := c.level
	c.level = lvl
	defer func() { c.level = saved }()
	c.exec(args[2:])
	return nil
}

// streamLines describes the streams this node sends, with their lag and,
// while one makes no progress, how long it has been stalled.
func streamLines(n Backend) []string {
	var out []string
	for _, s := range n.Streams() {
		line := fmt.Sprintf("stream_%s_%d_%s:from=%s,acked=%d,lag_entries=%d,lag_ms=%d",
			s.Keyspace, s.Shard, s.ToRegion, s.FromRegion, s.Acked, s.LagEntries, s.LagMS)
		if s.Stalled {
			line += fmt.Sprintf(",stalled_ms=%d", s.StalledForMS)
		}
		out = append(out, line)
	}
	return out
}
