package resp

import (
	"strings"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/kv"
)

// command describes one command: how to run it and what COMMAND reports
// about it.
type command struct {
	name string
	// arity counts the name: n > 0 exactly n arguments, n < 0 at least -n.
	arity int
	flags []string
	// firstKey, lastKey, step locate the keys among the arguments, as
	// COMMAND reports them (lastKey -1: up to the last argument).
	firstKey, lastKey, step int
	group                   string
	summary                 string
	fn                      func(c *client, args [][]byte) error
	// spec is the command's form in the command engine, if it has one:
	// what a transaction queues.
	spec *kv.Spec
	// loop: the event loop may run it (loopCommands).
	loop bool
}

// loopCommands never wait, so the event loop runs them itself
// (loop_linux.go): their reads ask the node not to wait
// (node.Consistency.NoWait) and, when it would have to, are run again from
// the connection's own goroutine. Each writes nothing before its one
// read. HELLO is one unless it authenticates (a password hash is slow
// work the loop must not do), CLIENT unless its form is an admin command
// (CLIENT LIST: audited, and the audit log's record is a synced write):
// loopRuns. SET is one when its node can start it without waiting
// (asyncwrite.go); the loop writes its reply once it is applied.
var loopCommands = []string{"get", "set", "ping", "echo", "select", "hello", "client", "quit", "command",
	"meridian.keyspace", "meridian.consistency", "meridian.last"}

// loopRuns reports whether the event loop may run cmd with args, whose
// permission is perm.
func loopRuns(cmd *command, perm auth.Permission, args [][]byte) bool {
	if !cmd.loop || perm.Class == auth.Admin {
		return false
	}
	if cmd.name == "hello" {
		for _, a := range args[1:] {
			if strings.EqualFold(string(a), "auth") {
				return false
			}
		}
	}
	return true
}

// maxCommandName bounds the names lookup tries: no command's name is
// longer (TestCommandNamesFitLookup).
const maxCommandName = 32

// commandTable holds every command by lower-case name (filled in init,
// because COMMAND's handler reads it).
var commandTable map[string]*command

func init() {
	commandTable = map[string]*command{}
	add := func(name string, arity int, flags string, first, last, step int, group, summary string, fn func(*client, [][]byte) error) {
		commandTable[name] = &command{name: name, arity: arity, flags: strings.Fields(flags),
			firstKey: first, lastKey: last, step: step, group: group, summary: summary, fn: fn}
	}
	// Connection and server.
	add("ping", -1, "fast", 0, 0, 0, "connection", "Returns PONG, or the given message.", cmdPing)
	add("echo", 2, "fast", 0, 0, 0, "connection", "Returns the given string.", cmdEcho)
	add("quit", -1, "fast", 0, 0, 0, "connection", "Closes the connection.", cmdQuit)
	add("select", 2, "fast", 0, 0, 0, "connection", "Selects the database (only 0 exists).", cmdSelect)
	add("auth", -2, "fast", 0, 0, 0, "connection", "Authenticates: AUTH [user] password.", cmdAuth)
	add("acl", -2, "", 0, 0, 0, "server", "Users: ACL WHOAMI|USERS|LIST|GETUSER|SETUSER|DELUSER|CAT|GENPASS.", cmdACL)
	add("hello", -1, "fast", 0, 0, 0, "connection", "Handshakes: protocol version 2 or 3, client name.", cmdHello)
	add("client", -2, "", 0, 0, 0, "connection", "CLIENT SETNAME|GETNAME|ID|INFO|LIST|SETINFO.", cmdClient)
	add("command", -1, "", 0, 0, 0, "server", "Describes the commands: COUNT, DOCS, INFO, LIST.", cmdCommand)
	add("info", -1, "", 0, 0, 0, "server", "Server, clients, replication and keyspace information.", cmdInfo)
	add("config", -2, "", 0, 0, 0, "server", "CONFIG GET of a few read-only parameters.", cmdConfig)
	add("dbsize", 1, "readonly", 0, 0, 0, "server", "Counts the keys of the keyspace.", cmdDBSize)
	// Strings.
	add("get", 2, "readonly fast", 1, 1, 1, "string", "Returns the string value of a key.", cmdGet)
	add("set", -3, "write", 1, 1, 1, "string", "Sets a key to a string: NX|XX, GET, EX|PX|EXAT|PXAT|KEEPTTL.", cmdSet)
	add("getdel", 2, "write fast", 1, 1, 1, "string", "Returns a key's string value and deletes the key.", cmdGetDel)
	add("mget", -2, "readonly fast", 1, -1, 1, "string", "Returns the string values of keys.", cmdMGet)
	add("mset", -3, "write", 1, -1, 2, "string", "Sets keys to strings (atomic within a shard, not across shards).", cmdMSet)
	add("incr", 2, "write fast", 1, 1, 1, "string", "Adds 1 to an integer string.", cmdIncr(1, false))
	add("decr", 2, "write fast", 1, 1, 1, "string", "Subtracts 1 from an integer string.", cmdIncr(-1, false))
	add("incrby", 3, "write fast", 1, 1, 1, "string", "Adds an amount to an integer string.", cmdIncr(1, true))
	add("decrby", 3, "write fast", 1, 1, 1, "string", "Subtracts an amount from an integer string.", cmdIncr(-1, true))
	// Keys.
	add("del", -2, "write", 1, -1, 1, "generic", "Deletes keys.", cmdDel)
	add("unlink", -2, "write fast", 1, -1, 1, "generic", "Deletes keys (as DEL).", cmdDel)
	add("exists", -2, "readonly fast", 1, -1, 1, "generic", "Counts the keys that exist.", cmdExists)
	add("type", 2, "readonly fast", 1, 1, 1, "generic", "Returns the type of a key's value.", cmdType)
	add("ttl", 2, "readonly fast", 1, 1, 1, "generic", "Returns a key's time to live in seconds.", cmdTTL(1000, false))
	add("pttl", 2, "readonly fast", 1, 1, 1, "generic", "Returns a key's time to live in milliseconds.", cmdTTL(1, false))
	add("expiretime", 2, "readonly fast", 1, 1, 1, "generic", "Returns a key's expiry as a Unix time in seconds.", cmdTTL(1000, true))
	add("pexpiretime", 2, "readonly fast", 1, 1, 1, "generic", "Returns a key's expiry as a Unix time in milliseconds.", cmdTTL(1, true))
	add("expire", -3, "write fast", 1, 1, 1, "generic", "Sets a key's time to live in seconds: NX|XX|GT|LT.", cmdExpire(1000, false))
	add("pexpire", -3, "write fast", 1, 1, 1, "generic", "Sets a key's time to live in milliseconds.", cmdExpire(1, false))
	add("expireat", -3, "write fast", 1, 1, 1, "generic", "Sets a key's expiry as a Unix time in seconds.", cmdExpire(1000, true))
	add("pexpireat", -3, "write fast", 1, 1, 1, "generic", "Sets a key's expiry as a Unix time in milliseconds.", cmdExpire(1, true))
	add("persist", 2, "write fast", 1, 1, 1, "generic", "Removes a key's expiry.", cmdPersist)
	add("scan", -2, "readonly", 0, 0, 0, "generic", "Iterates over the keys: MATCH, COUNT, TYPE.", cmdScan)
	add("keys", 2, "readonly", 0, 0, 0, "generic", "Returns the keys matching a pattern (bounded; prefer SCAN).", cmdKeys)
	// Sets.
	add("sadd", -3, "write fast", 1, 1, 1, "set", "Adds members to a set.", cmdSetWrite)
	add("srem", -3, "write fast", 1, 1, 1, "set", "Removes members from a set.", cmdSetWrite)
	add("smembers", 2, "readonly", 1, 1, 1, "set", "Returns the members of a set.", cmdSMembers)
	add("sismember", 3, "readonly fast", 1, 1, 1, "set", "Tells whether a member is in a set.", cmdSIsMember)
	add("scard", 2, "readonly fast", 1, 1, 1, "set", "Returns the number of members of a set.", cmdSCard)
	// Hashes.
	add("hset", -4, "write fast", 1, 1, 1, "hash", "Sets fields of a hash; returns how many were new.", cmdHSet(false))
	add("hmset", -4, "write fast", 1, 1, 1, "hash", "Sets fields of a hash (as HSET, replies OK).", cmdHSet(true))
	add("hget", 3, "readonly fast", 1, 1, 1, "hash", "Returns the value of a hash field.", cmdHGet)
	add("hmget", -3, "readonly fast", 1, 1, 1, "hash", "Returns the values of hash fields.", cmdHMGet)
	add("hdel", -3, "write fast", 1, 1, 1, "hash", "Deletes fields of a hash.", cmdHDel)
	add("hgetall", 2, "readonly", 1, 1, 1, "hash", "Returns all fields and values of a hash.", cmdHGetAll)
	add("hlen", 2, "readonly fast", 1, 1, 1, "hash", "Returns the number of fields of a hash.", cmdHLen)
	// Meridian.
	add("meridian.keyspace", -1, "fast", 0, 0, 0, "meridian", "Selects (or shows) the keyspace of the connection.", cmdKeyspace)
	add("meridian.consistency", -1, "fast", 0, 0, 0, "meridian", "Sets (or shows) the connection's consistency: strong|bounded(D)|session|prefix|eventual.", cmdConsistency)
	add("meridian.session", -1, "fast", 0, 0, 0, "meridian", "Shows the connection's session token, or adopts one: MERIDIAN.SESSION [token].", cmdSession)
	add("meridian.last", 1, "fast", 0, 0, 0, "meridian", "How the last answer was served: region, node, consistency, index, forwarded.", cmdLast)
	add("meridian.with", -3, "", 0, 0, 0, "meridian", "Runs one command at a consistency level: MERIDIAN.WITH level command ...", cmdWith)
	add("touch", -2, "readonly fast", 1, -1, 1, "generic", "Counts the keys that exist (no access time is kept).", cmdExists)
	addKeyspaceCommands(add) // cmd_keyspace.go
	addTxnCommands(add)      // cmd_txn.go
	addPubSubCommands(add)   // cmd_pubsub.go
	// Every command of the engine the table does not have yet (lists,
	// sorted sets, the other string, hash, set and key commands).
	registerEngineCommands(add) // cmd_engine.go
	for _, name := range loopCommands {
		commandTable[name].loop = true
	}
}
