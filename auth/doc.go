// Package auth is who may do what in Meridian: users, their passwords
// and tokens, their permissions, and the one function every front end
// asks before it runs anything (Authorize).
//
// # Principals
//
// A request is made by a Principal: a user (authenticated by password,
// bearer token or client certificate), a node (its node certificate:
// only for the join route), the built-in root user (a client certificate
// naming "root" only: it holds every permission, has no password and
// cannot be changed or removed, which is how the first users of a cluster
// are made), an anonymous client (nothing yet but to authenticate), or,
// on a node started without security, an open principal allowed
// everything.
//
// # Permissions
//
// Every command and route needs one Permission (the front ends keep a
// table of them, and their tests check that none is missing):
//
//	Public      nothing (authenticating, health checks)
//	Connected   any authenticated principal (PING, INFO, cluster status, metrics)
//	Read(ks)    read keyspace ks
//	Write(ks)   write keyspace ks
//	Admin(ks)   administer keyspace ks (alter, switchover, failover, lost writes, conflicts)
//	Admin       administer the cluster (create keyspaces, users, pprof, the audit log, netsim)
//	Join        admit a node: that node's certificate, or cluster admin
//
// A user holds grants: keyspace patterns (globs over keyspace names, as
// path.Match reads them) times classes (read, write, admin). A keyspace
// permission needs a grant of its class whose patterns match the
// keyspace; cluster administration needs an admin grant with the pattern
// "*". The rules are Redis's ACL syntax (ApplyRules): "on >secret
// ~orders ~tenant-* +@read", with the root grant's patterns and classes
// and selectors "(~logs +@write)" for more grants.
//
// # Secrets
//
// Passwords are kept as argon2id hashes (HashPassword), never as text,
// and verified by a Guard, which bounds how many verifications run at
// once (each takes about 19 MiB for tens of milliseconds) and remembers a
// verified password for a few minutes under a keyed hash, so that HTTP
// Basic authentication does not pay argon2 on every request. Bearer
// tokens are random 256-bit secrets of which only a SHA-256 is kept; they
// expire. Nothing here logs, and no error quotes a secret.
package auth
