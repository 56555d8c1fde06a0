package resp

import (
	"fmt"
	"strings"
)

// FLUSHDB and RANDOMKEY: commands on a whole keyspace.

func addKeyspaceCommands(add func(name string, arity int, flags string, first, last, step int, group, summary string, fn func(*client, [][]byte) error)) {
	add("flushdb", -1, "write", 0, 0, 0, "server", "Deletes every key of the keyspace in every region; needs CONFIRM and the keyspace's name: FLUSHDB [ASYNC|SYNC] CONFIRM <keyspace>.", cmdFlushDB)
	add("randomkey", 1, "readonly", 0, 0, 0, "generic", "Returns a random key of the keyspace.", cmdRandomKey)
}

// cmdFlushDB: FLUSHDB [ASYNC|SYNC] CONFIRM <keyspace>. Deleting a whole
// keyspace in every region is one mistyped command away in Redis;
// Meridian asks the client to name the keyspace it means.
//
// Permissions: FLUSHDB needs the keyspace's admin permission
// (acl_table.go), checked before it runs, and is audited.
func cmdFlushDB(c *client, args [][]byte) error {
	confirmed := false
	for i := 1; i < len(args); i++ {
		switch strings.ToUpper(string(args[i])) {
		case "ASYNC", "SYNC":
		case "CONFIRM":
			if i+1 == len(args) {
				return errSyntax
			}
			i++
			if string(args[i]) != c.keyspace {
				return replyError(fmt.Sprintf("ERR FLUSHDB CONFIRM names keyspace '%s', but this connection uses '%s'", printable(args[i], 64), c.keyspace))
			}
			confirmed = true
		default:
			return errSyntax
		}
	}
	if !confirmed {
		return replyError(fmt.Sprintf("ERR FLUSHDB deletes every key of keyspace '%s' in every region; to confirm, send FLUSHDB CONFIRM %s", c.keyspace, c.keyspace))
	}
	a, err := c.node().FlushDB(c.ctx(), c.keyspace)
	if err != nil {
		return err
	}
	c.setLast(a)
	c.w.simple("OK")
	return nil
}

func cmdRandomKey(c *client, args [][]byte) error {
	k, a, err := c.node().RandomKey(c.ctx(), c.keyspace, c.consistency())
	if err != nil {
		return err
	}
	c.setLast(a)
	if k == nil {
		c.w.null()
		return nil
	}
	c.w.bulk(k)
	return nil
}
