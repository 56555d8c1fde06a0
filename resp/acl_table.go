package resp

import (
	"strings"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/kv"
)

// commandPermissions says which permission every command needs (see
// package auth): the one place RESP's authorization reads. A command
// missing here is refused to everyone but an open principal, and
// TestEveryCommandHasAPermission fails.
var commandPermissions = map[string]auth.Permission{
	// Connection: authenticating needs nothing, the rest an
	// authenticated client.
	"auth":  auth.PublicAccess,
	"hello": auth.PublicAccess, // HELLO without AUTH checks for itself
	"quit":  auth.PublicAccess,
	"ping":  auth.Authenticated, "echo": auth.Authenticated, "select": auth.Authenticated,
	"client": auth.Authenticated, "command": auth.Authenticated, "info": auth.Authenticated,
	"config": auth.Authenticated,
	"acl":    auth.AdminCluster, // subcommands below
	// Reads of the connection's keyspace.
	"dbsize": auth.ReadKeyspace, "get": auth.ReadKeyspace, "mget": auth.ReadKeyspace,
	"exists": auth.ReadKeyspace, "type": auth.ReadKeyspace, "ttl": auth.ReadKeyspace, "pttl": auth.ReadKeyspace,
	"expiretime": auth.ReadKeyspace, "pexpiretime": auth.ReadKeyspace, "scan": auth.ReadKeyspace,
	"keys": auth.ReadKeyspace, "smembers": auth.ReadKeyspace, "sismember": auth.ReadKeyspace,
	"scard": auth.ReadKeyspace, "hget": auth.ReadKeyspace, "hmget": auth.ReadKeyspace,
	"hgetall": auth.ReadKeyspace, "hlen": auth.ReadKeyspace,
	// Writes.
	"set": auth.WriteKeyspace, "getdel": auth.WriteKeyspace, "mset": auth.WriteKeyspace,
	"incr": auth.WriteKeyspace, "decr": auth.WriteKeyspace, "incrby": auth.WriteKeyspace,
	"decrby": auth.WriteKeyspace, "del": auth.WriteKeyspace, "unlink": auth.WriteKeyspace,
	"expire": auth.WriteKeyspace, "pexpire": auth.WriteKeyspace, "expireat": auth.WriteKeyspace,
	"pexpireat": auth.WriteKeyspace, "persist": auth.WriteKeyspace, "sadd": auth.WriteKeyspace,
	"srem": auth.WriteKeyspace, "hset": auth.WriteKeyspace, "hmset": auth.WriteKeyspace,
	"hdel": auth.WriteKeyspace,
	// Meridian's own: the connection's settings (what they lead to is
	// checked when it runs: MERIDIAN.WITH's command, the keyspace's
	// commands).
	"meridian.keyspace": auth.Authenticated, "meridian.consistency": auth.Authenticated,
	"meridian.session": auth.Authenticated, "meridian.last": auth.Authenticated,
	"meridian.with": auth.Authenticated,
	// Keys and the keyspace, beyond the command engine's (below).
	"touch": auth.ReadKeyspace, "randomkey": auth.ReadKeyspace,
	"flushdb": auth.AdminKeyspace, // every key of the keyspace, in every region
	// Transactions: each queued command is authorized when queued and
	// again at EXEC (cmd_txn.go).
	"multi": auth.Authenticated, "exec": auth.Authenticated, "discard": auth.Authenticated,
	"watch": auth.Authenticated, "unwatch": auth.Authenticated,
	// Pub/sub is the cluster's, not a keyspace's: channels have no
	// permissions of their own (yet).
	"subscribe": auth.Authenticated, "psubscribe": auth.Authenticated, "unsubscribe": auth.Authenticated,
	"punsubscribe": auth.Authenticated, "publish": auth.Authenticated, "pubsub": auth.Authenticated,
}

// The command engine's commands (package kv: lists, sorted sets, the
// other string, hash, set and key commands) need the keyspace's write
// permission if their spec says they write, its read permission
// otherwise, unless listed above.
func init() {
	for _, s := range kv.Specs() {
		if _, ok := commandPermissions[s.Name]; ok {
			continue
		}
		if s.Write {
			commandPermissions[s.Name] = auth.WriteKeyspace
		} else {
			commandPermissions[s.Name] = auth.ReadKeyspace
		}
	}
}

// subcommandPermissions override a command's permission for one of its
// subcommands ("command|subcommand").
var subcommandPermissions = map[string]auth.Permission{
	"client|list": auth.AdminCluster, // every connection's address and user
	"acl|whoami":  auth.Authenticated,
	"acl|cat":     auth.Authenticated,
	"acl|genpass": auth.Authenticated,
	"acl|help":    auth.Authenticated,
}

// subcommanded names the commands subcommandPermissions has entries for:
// only theirs build a "command|subcommand" key (every command asks).
var subcommanded = func() map[string]bool {
	m := map[string]bool{}
	for k := range subcommandPermissions {
		m[k[:strings.IndexByte(k, '|')]] = true
	}
	return m
}()

// permissionOf returns the permission a command needs (false: none is
// recorded, and the command is refused).
func permissionOf(name string, args [][]byte) (auth.Permission, bool) {
	if len(args) > 1 && subcommanded[name] {
		if p, ok := subcommandPermissions[name+"|"+strings.ToLower(string(args[1]))]; ok {
			return p, true
		}
	}
	p, ok := commandPermissions[name]
	return p, ok
}
