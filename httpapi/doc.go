// Package httpapi serves one node over HTTP/JSON: the data routes, the
// admin routes, /metrics for Prometheus and a small web dashboard. It
// never touches storage or raft: it calls the node, and maps the node's
// errors to HTTP answers in one place (StatusOf).
//
// # Data
//
//	GET    /v1/keyspaces/{ks}/keys/{key}   read     200 ValueResponse | 404 key_not_found
//	PUT    /v1/keyspaces/{ks}/keys/{key}   write    200 WriteResponse  (body: PutRequest)
//	DELETE /v1/keyspaces/{ks}/keys/{key}   delete   200 DeleteResponse | 404 key_not_found
//
// The key is the rest of the path, percent-decoded: "user/42" and
// "user%2F42" name the same key. A key with empty or dot segments
// ("a//b", "a/./b") must be percent-encoded; such paths are refused with
// bad_path rather than redirected to another key.
//
// Request header Meridian-Consistency: strong (default) or eventual. Reads
// honour it; writes are always strong (the header is still checked). Every
// answer served by a node says how, in headers:
//
//	Meridian-Region       region of the node that served it
//	Meridian-Node         id of that node
//	Meridian-Consistency  the level provided (strong | eventual)
//	Meridian-Index        the raft index it reflects (writes: applied at; strong reads: read index; local reads: the replica's position)
//	Meridian-Forwarded    true if another node served it (a write proposed at a remote leader, a read forwarded to a replica)
//
// JSON shapes (typed values will add more "type" values):
//
//	PUT body   {"value": "text"} | {"value_base64": "AAEC"}, optional "type": "string", optional "ttl_ms": 60000
//	GET        {"key": "k", "type": "string", "value": "text", "found": true}
//	           ("value_base64" instead when the value is not UTF-8 or ?encoding=base64;
//	           "key_base64" too when the key is not UTF-8; "expires_at_ms" and "ttl_ms" for a key with a TTL)
//	PUT        {"key": "k", "written": true}
//	DELETE     {"key": "k", "deleted": true}
//
// # Admin
//
//	GET  /v1/cluster          node.ClusterStatus: regions, nodes (initial, joined, reachable or not), RTT matrix in ms, keyspaces with shard leaders,
//	                          members never joined, unreachable nodes, keyspaces under-replicated
//	GET  /v1/cluster/readiness node.ClusterReadiness of every member: 200 when all are ready, else 503 (who is not, and why)
//	GET  /healthz             Health: 200 while the process serves, 503 once its storage failed
//	GET  /readyz              node.Readiness: 200 once the node has joined, caught up with the metadata and created its replicas, else 503 with reasons
//	GET  /v1/keyspaces        [Keyspace, ...] sorted by name
//	POST /v1/keyspaces        body metadata.KeyspaceSpec; 201 Keyspace, Location /v1/keyspaces/{ks}; ?wait=true waits for every shard's leader;
//	                          ?placement_wait=D (0s to MaxPlacementWait; default the node's) bounds the wait for a live node in every region,
//	                          then 503 region_unavailable naming the regions and nodes (PATCH too, for an added region)
//	GET  /v1/keyspaces/{ks}   Keyspace: the spec, its shards ("shard_list") with replicas, leader, leader region, term, indexes
//	POST /v1/cluster/nodes    body JoinRequest (metadata.NodeInfo and the node's timings); admits the node (node.Admit: refused if its timings are not the cluster's); 200 JoinResponse with the cluster's peers, name, id and timings
//	GET  /metrics             the node's metrics registry, Prometheus text format (see package metrics)
//	GET  /                    the dashboard: regions, nodes, RTT matrix, keyspaces and leaders, refreshed from /v1/cluster
//	GET  /debug/pprof/...     Go's profiler
//	GET|POST /debug/netsim    the emulated network (see debug.go)
//
// # Users, tokens, audit (auth.go)
//
//	GET    /v1/auth/whoami        WhoAmI: the caller
//	POST   /v1/auth/tokens        body TokenRequest (optional); 201 TokenResponse: a bearer token, shown once
//	DELETE /v1/auth/tokens/{id}   revoke one of the caller's tokens (?user=U: a cluster admin, another's)
//	GET    /v1/users              [User, ...] (no password, no token secret)
//	GET    /v1/users/{user}       User
//	PUT    /v1/users/{user}       body UserRequest: ACL rules in Redis's syntax; 200 User
//	DELETE /v1/users/{user}       remove a user
//	GET    /v1/audit              ClusterAudit: every node's audit records merged, oldest first, and the nodes
//	                              that did not answer (?since=1h or RFC 3339, ?limit=N, ?scope=node: this node's)
//
// # Authentication and authorization
//
// On a node that requires authentication, every request is authenticated
// (a client certificate of the cluster's CA over HTTPS, Authorization:
// Basic with a user's password, or Authorization: Bearer with a token)
// and authorized by auth.Authorize with the permission routePermissions
// gives its route, on the keyspace its path names, before its body is
// read: 401 unauthenticated (with a Basic challenge), 403 forbidden.
// /healthz, /readyz and the dashboard's page are public; data routes need
// read or write on their keyspace; cluster status, keyspace lists and
// /metrics any authenticated caller; keyspace alter, switchover,
// failover, lost writes and conflicts admin on the keyspace; keyspace
// creation, users, the audit log, pprof and netsim cluster admin; a join
// the joining node's own certificate (or cluster admin). Admin routes are
// recorded in the node's audit log, allowed or refused, their bodies with
// passwords hidden. ServeWith serves HTTPS and bounds the connections.
//
// # Errors
//
// Every error is {"error": {"code": "...", "message": "..."}} with the
// status StatusOf gives its code: 400 bad input (bad_json, unknown_field,
// bad_value, bad_ttl, bad_query, bad_path, empty_key, key_too_large,
// unknown_consistency, invalid_spec, placement), 404 (unknown_keyspace,
// key_not_found, not_found), 405 method_not_allowed, 409 (keyspace_exists,
// wrong_type), 413 (body_too_large, value_too_large), 415
// unsupported_media_type, 503 with Retry-After (no_leader, timeout,
// unreachable, outcome_unknown, region_unavailable, ...), 500 internal
// (logged).
//
// # Limits
//
// Bodies must be sent as Content-Type: application/json (which also keeps
// browsers from sending them across origins without a preflight), are
// decoded strictly (unknown fields, trailing data and malformed JSON are
// refused) and capped with http.MaxBytesReader: Config.MaxBodyBytes for
// data (by default just above the node's largest value in base64) and
// Config.MaxAdminBodyBytes for admin bodies. Keys longer than the node's
// MaxKeyBytes are refused before they reach the router. NewServer and
// Serve set the server's timeouts and header limit.
package httpapi
