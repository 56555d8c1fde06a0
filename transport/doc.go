// Package transport carries traffic between Meridian nodes over gRPC.
//
// A Transport serves one node. For every peer it keeps one gRPC client
// connection, dialled on first use and redialled with backoff after a
// failure, and one bounded queue drained by a single sender goroutine that
// packs everything queued into a batch frame and writes it on a long-lived
// client stream. Raft snapshots (MsgSnap) bypass the queue and are streamed in
// chunks on a stream of their own. The node's own typed services (request
// forwarding and the like, see Conn) run on the same connections, and a
// background pinger keeps a smoothed
// round-trip time per peer.
//
// All traffic goes through a *netsim.Network: batch frames and snapshot
// chunks via Network.SendNotify, and both hops of a typed call via Network.Wait. In
// production that network is netsim.Identity() and costs nothing; in tests and
// demos it adds the delays, losses and partitions of a multi-region
// deployment.
//
// BytesSent counts, per peer, the bytes this node sends: the sizes of the
// encoded frames it hands to gRPC (batch frames, snapshot headers and
// chunks), the encoded requests of the typed services it calls and the
// responses to those it serves. gRPC's and HTTP/2's own framing is not counted, nor is what the
// emulated network drops before gRPC sees it; what it duplicates is counted
// twice, as it crosses the wire twice.
//
// The wire service is generated from transportpb/transport.proto: a raft
// stream of batch frames, a snapshot stream of chunks (both in this
// package's own versioned framing, see frame.go) and a ping. A node's own
// services, generated from its .proto files, are served on the same
// server (Config.Services) and called through Conn (see rpc.go). Every
// call and stream carries, in gRPC metadata, the sending node's id, the
// addressee's id, the sender's cluster identity (Config.Cluster) and the
// wire version (WireVersion): a peer of another version is refused before
// anything of its request runs, with an error naming both (ErrVersion).
//
// Cluster identity. A node serves only its own cluster: a typed call, raft
// stream or snapshot stream whose cluster identity differs from the
// receiver's (or is missing) is refused before anything of it reaches the
// Handler, with gRPC status PermissionDenied naming both clusters, and the
// receiver logs a warning, at most once a minute per sending node and
// cluster. The sender sees ErrWrongCluster: wrapped by a typed call's error
// (with ErrUnreachable and ErrNotSent, since nothing ran), in the reason logged
// for a dropped raft stream, and in a failed snapshot's error. Two
// clusters thus never exchange a message, even when one is given the
// other's addresses.
//
// Security. With Config.Security (package pki's NodeTLS), every
// connection is mutual TLS 1.3: a peer without a certificate, with one of
// another CA, or naming another cluster is refused at the handshake, and
// a dialler refuses a server whose certificate is not the node it meant
// to reach. The sender of a request is then the node its certificate
// names: a request whose metadata claims another id is refused with
// gRPC status Unauthenticated and a rate-limited warning; the caller sees
// ErrIdentity (with ErrUnreachable and ErrNotSent). Certificates change
// without a restart: the transport drops its connections when they do
// (Security.Changed), and requests on connections made before are
// checked against the new CA bundle, a raft stream's at its next frame.
// Without Security the transport is plaintext and trusts the metadata's
// id, for loopback and trusted networks only.
//
// Ownership and limits:
//
//   - transport owns its listener, gRPC server, client connections and every
//     goroutine it starts; Close releases all of them.
//   - transport never interprets raft messages beyond routing by To and
//     spotting MsgSnap, never retries a raft message (raft does that) and
//     never blocks the caller of Send.
//   - transport does not own the netsim.Network it is given and never closes
//     it.
//   - transport never reads global configuration or logs through a global
//     logger; everything comes in through Config.
package transport
