// Package consistency defines Meridian's per-request consistency levels,
// the session tokens that carry read-your-writes across regions, and the
// report that tells a client how each answer was actually served (docs/DESIGN.md
// section 3).
//
// It is a leaf package: it depends only on hlc and the standard library,
// does no I/O and keeps no state, so the router, the HTTP and RESP
// frontends and clients can all share it.
//
// # Levels
//
// A request names a Requirement: a Level and, for bounded reads only, a
// maximum staleness. From strongest to weakest:
//
//	strong       linearizable. Served by the leaseholder (sync keyspaces)
//	             or the primary region (async); refused for active
//	             keyspaces, which have no single order.
//	bounded(D)   the answer reflects every write older than now - D. Served
//	             locally when the local replica's closed timestamp is at
//	             most D old (CanServeLocally); otherwise the server waits
//	             briefly, then forwards.
//	session      read-your-writes and monotonic reads for the holder of a
//	             session Token. Served locally once the local replica has
//	             applied every mark of the token (Token.Satisfied);
//	             otherwise the server waits, then forwards.
//	prefix       some state the origin really had: no gaps and no
//	             reordering per origin. Always served locally.
//	eventual     some replica's current value. Always served locally.
//
// Parse reads requirements as written in the Meridian-Consistency request
// header and in configuration: "strong", "bounded(5s)", "bounded:250ms",
// "bounded=2s", "session", "prefix", "eventual", case-insensitively.
// Requirement.String is the inverse of Parse. The zero Level and the zero
// Requirement are invalid ("unset"), so a forgotten field never silently
// means some level.
//
// A bounded staleness must be positive and at most StalenessLimit (24h);
// a zero bound is refused (ask for strong instead), as are larger ones,
// which are taken for unit mistakes. A bound is never loosened: digits
// beyond nanosecond precision are dropped, CanServeLocally compares at full
// precision, ClosedMS rounds a closed timestamp down to the last whole
// millisecond it covers, and reports round staleness up to the next
// millisecond. Staleness is measured on the serving node's clock; the clock
// offset between regions (hlc.DefaultMaxOffset) is not included.
//
// # Reports
//
// Every answer reports how it was served; over HTTP (package httpapi) in
// the headers named here: Meridian-Region and Meridian-Node of the node that
// served it, Meridian-Consistency with the level actually provided (which
// may be stronger than asked), Meridian-Staleness-Ms with an upper bound of
// its staleness in milliseconds ("0" for strong), and Meridian-Session with
// the session token to pass along.
//
// # Session tokens
//
// Every write and read returns a session token; a client that presents it
// with its next request, in any region, reads its own writes and never sees
// time go backwards. A token belongs to one keyspace of one cluster and
// holds:
//
//   - the highest replication epoch of the keyspace the session has seen;
//   - the highest HLC timestamp the session has seen, which the server
//     merges into its clock so the session's next write is ordered after
//     everything it saw;
//   - marks: for each replication source (a group id) the highest log
//     position the session has written or read there. A replica may serve
//     the session once it has applied every source up to its mark.
//
// Tokens combine with Merge (per group maximum, maximum epoch and time),
// which is commutative, associative and idempotent, so a client may merge
// tokens from concurrent requests in any order. A token holds at most
// MaxMarks (1024) marks; Observe and Merge refuse to go past that rather
// than drop a mark, which would silently break read-your-writes.
//
// # Token format
//
// A token is unpadded base64url (RFC 4648 section 5, no '=') of the binary
// form below, at most MaxTokenLen characters. All varints are the minimal
// unsigned LEB128 encoding of encoding/binary (signed ones zig-zag encoded
// first); only the canonical encoding is accepted, so a decoded token
// re-encodes to the same string.
//
//	version        1 byte, currently 1
//	cluster hash   8 bytes, little-endian 64-bit FNV-1a of
//	               "meridian/token/cluster\x00" + cluster id
//	keyspace hash  8 bytes, little-endian 64-bit FNV-1a of
//	               "meridian/token/keyspace\x00" + keyspace name
//	epoch          uvarint
//	time           varint WallMS, uvarint Logical, uvarint Node
//	count          uvarint, number of marks, at most MaxMarks
//	marks          count times: uvarint group delta, uvarint index.
//	               Groups are strictly increasing; the first delta is the
//	               group itself, the others the difference from the
//	               previous group (never zero). Indexes are never zero.
//	checksum       4 bytes, little-endian CRC-32C (Castagnoli) of all the
//	               preceding bytes
//
// The cluster and keyspace are stored as hashes: the receiving node knows
// which cluster it belongs to and which keyspace the request names, so the
// hashes only need to tell it whether the token is its own, and they keep
// the token small and free of names. DecodeToken reports a token of another
// cluster with ErrForeignCluster, of another keyspace with
// ErrForeignKeyspace, and everything else that is wrong with ErrMalformedToken:
// characters outside the base64url alphabet (including the CR and LF that
// Go's base64 decoder would otherwise skip), non-zero trailing bits, an
// unknown version, truncation, trailing bytes, a checksum mismatch, or
// non-canonical contents. Because each character maps to fixed bits and
// CRC-32C catches every error burst of up to 32 bits, any single changed
// character is always detected.
//
// Tokens are checked, not authenticated. A client can forge a token, but a
// forged token can only make its own reads wait or be forwarded: servers
// bound how long they wait for marks and pass the token's time through
// hlc.Clock.Update, which refuses timestamps beyond the maximum clock
// offset.
//
// After a failover the keyspace's epoch rises and marks of the old primary
// may name positions that were lost (they appear in the lost-writes
// report). A server that sees a token whose epoch is older than the
// keyspace's current one decides what to do with such marks; the token
// itself never drops them.
package consistency
