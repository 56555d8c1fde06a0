// Package resp serves the Redis protocol (RESP) on a node, so that
// redis-cli, redis-benchmark and every Redis client library talk to
// Meridian unchanged. Each connection has a keyspace and a default
// consistency level, chosen with Meridian's own commands:
//
//	MERIDIAN.KEYSPACE name          select the keyspace of this connection
//	MERIDIAN.CONSISTENCY level      strong | eventual
//	MERIDIAN.LAST                   how the last answer was served
//
// Internal errors are mapped to Redis-style error replies in one place
// (errorReply). The package never touches storage or raft directly: it
// calls the node's router.
package resp
