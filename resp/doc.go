// Package resp serves the Redis protocol (RESP2 and RESP3) on a node, so
// that redis-cli, redis-benchmark and every Redis client library talk to
// Meridian unchanged. The package never touches storage or raft: it calls
// the node's router.
//
// Commands: docs/commands.md lists them against Redis 7.0's, with how
// each differs and what it means in each replication strategy (the file
// is generated from the command table; TestCommandsDoc checks it). The
// table (commands.go) holds connection and server commands (ACL among
// them: WHOAMI, USERS, LIST, GETUSER, SETUSER, DELUSER, CAT, GENPASS;
// cmd_auth.go), strings,
// keys, sets and hashes served here, and every command of the node's
// command engine (package kv: lists, sorted sets, the other string, hash,
// set and key commands), whose replies come back as kv.Reply and are
// written as they are (cmd_engine.go). A command's keys must live in one
// shard (hash tags); MGET, MSET, DEL, UNLINK, EXISTS and TOUCH are split
// by shard instead. Transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH:
// cmd_txn.go), pub/sub across regions (cmd_pubsub.go), blocking pops
// (waiting while the client stays connected), FLUSHDB with a
// confirmation and RANDOMKEY (cmd_keyspace.go). Each connection has a
// keyspace and a consistency level, chosen with Meridian's own commands:
//
//	MERIDIAN.KEYSPACE [name]          select (show) the keyspace of this connection
//	MERIDIAN.CONSISTENCY [level]      strong | bounded(D) | session | prefix | eventual (show the current one)
//	MERIDIAN.SESSION [token]          show the connection's session token, or adopt one
//	MERIDIAN.LAST                     how the last answer was served
//	MERIDIAN.WITH level command ...   run one command at another level
//
// Replies are compared with a real Redis's on random command sequences
// (diff_test.go, when redis-server is installed), and go-redis and
// ioredis run application scripts against three regions (clients_test.go,
// ioredis_test.go).
//
// Semantics worth knowing:
//   - Writes always go through the shard's raft leader; the level applies
//     to reads. Every write carries this node's clock, against which
//     expiries are judged (see package kv).
//   - MSET, DEL and EXISTS on keys of several shards: one command per
//     shard, atomic within a shard, not across shards.
//   - SCAN cursors are numbers standing for node cursors that this server
//     remembers for a while (see cursor.go); they are valid on this
//     server only. SCAN and KEYS need a local replica of every shard.
//   - KEYS builds its whole reply; it is bounded by Config.MaxReplyBytes.
//   - A blocking pop waits on the node that received it, woken when its
//     replica applies a push (node/blocking.go); PUBLISH counts that node's
//     subscribers, and the message reaches every node's (node/pubsub.go).
//
// Robustness: the command reader is bounded (arguments, argument size,
// command size, inline line), never allocates what a client merely
// declares, and refuses an oversized command while keeping the connection;
// a malformed stream gets one protocol error and is closed, as in Redis.
// Replies go through a bounded buffer and every write has a deadline, so
// a client that does not read its replies loses its connection instead of
// growing the server's memory. A panic in a command closes that
// connection, not the node.
//
// Connections (loop_linux.go, docs/DESIGN.md section 5.7): plain-TCP
// connections start in an epoll event loop that runs GET and the
// connection commands itself, one read and one write per batch of
// commands, and starts the plain SETs its node can propose alone without
// waiting (asyncwrite.go), writing each reply once its write is applied;
// the first command that may wait, a pipeline, or a client slow to take
// its replies hands the connection to a goroutine of its own for good.
//
// Security (auth.go, SECURITY.md): with Config.Certs the server speaks
// TLS, as redis-cli --tls and client libraries expect; a client
// certificate of the cluster's CA logs its user in. On a node that
// requires authentication, a connection authenticates (certificate, AUTH
// or HELLO ... AUTH, Redis's ACL users) before anything else; until then
// its commands are capped far below the limits above (beyond them it is
// closed at once, reading no further), it has a deadline, and the
// connections in that state are bounded. Every command is authorized by
// auth.Authorize with the permission acl_table.go gives it (a command
// without an entry is refused), on the connection's keyspace; admin
// commands go to the node's audit log, passwords hidden.
//
// Internal errors are mapped to Redis-style error replies in one place
// (errorReply).
package resp
