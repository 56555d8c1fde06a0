// Package netsim models the wide-area network between Meridian nodes so that
// a single machine can stand in for a multi-region deployment in tests and
// demos.
//
// A Network knows which region every node lives in and a Matrix of round-trip
// times between regions. Each message handed to Send is held back for the
// one-way delay of its link (half the region round trip, plus optional
// jitter) and then delivered on a goroutine dedicated to that directed link,
// so messages on one link keep their send order, like a TCP connection.
// Loss, duplication and partitions of any shape (single directed links,
// isolated nodes, cut regions, splits, bridges, rings) can be switched on and
// off while the network is in use.
//
// A Network only delays what is sent through it. In one process all nodes
// share one *Network; across processes each process owns a Network built from
// the same Matrix and only its outgoing traffic is shaped, which gives the
// same end-to-end behaviour.
//
// In production the package is the identity: Identity returns a Network that
// delivers synchronously, never drops and is never partitioned.
//
// Ownership and limits:
//
//   - netsim owns the per-link delivery goroutines and the partition state;
//     Close stops the goroutines and drops whatever is still in flight.
//   - netsim never inspects, copies or retries a message: it only decides
//     when (and whether) a caller-supplied delivery function runs.
//   - netsim never opens sockets, never sleeps in the sender's goroutine
//     (except in Wait, whose purpose is to sleep) and never starts a
//     goroutine per message.
//   - netsim never reads global state: every Network is independent.
package netsim
