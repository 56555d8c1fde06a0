// Package hlc implements the hybrid logical clock that Meridian uses to order
// events across nodes and regions.
//
// A hybrid logical clock pairs the physical wall time of a node (milliseconds
// since the Unix epoch) with a logical counter. The wall part keeps timestamps
// close to real time, so they are meaningful to operators and usable for
// time-bounded reads; the logical part keeps them strictly increasing when the
// wall clock stands still, steps backwards, or lags behind a timestamp received
// from another node. The id of the producing node breaks the remaining ties, so
// two timestamps compare equal only if they are identical.
//
// # What this package owns
//
//   - The Timestamp type, its total order (WallMS, then Logical, then Node),
//     and its 16-byte order-preserving binary encoding. The encoding is used in
//     storage keys and on the wire, so its layout is a compatibility contract:
//     bytes.Compare of two encodings always agrees with Timestamp.Compare.
//   - The per-node Clock, which issues timestamps with Clock.Now and merges
//     timestamps carried by incoming messages with Clock.Update.
//   - Enforcement of the maximum clock offset. A received timestamp whose wall
//     part is further ahead of the local wall clock than the configured
//     maximum offset is refused with ErrClockOffset and leaves the clock
//     untouched, so that one node with a broken clock cannot drag the rest of
//     the cluster into the future. Refusals are counted (Clock.Offenders) so
//     they can be exported as a metric.
//
// The maximum offset should be set to the same value on every node. 500ms
// (DefaultMaxOffset) is the recommended setting for multi-region deployments;
// a value of zero or less disables the check entirely and is meant for tests
// and single-node setups only.
//
// # What this package must never do
//
//   - Issue a timestamp that is not strictly greater than every timestamp the
//     same Clock issued before or accepted through Update, whatever the wall
//     clock does.
//   - Let a refused remote timestamp change the clock in any way.
//   - Block, sleep, or wait for the wall clock to catch up. Every operation is
//     a short critical section; callers that need commit-wait semantics build
//     them on top.
//   - Perform I/O, log, or persist anything. Monotonicity across process
//     restarts is the caller's job: persist a high-water mark and feed it back
//     through Clock.Update (or wait out the maximum offset) after a restart.
//   - Change the binary encoding in an incompatible way, or depend on other
//     Meridian packages; it is a leaf package that everything else may import.
package hlc
