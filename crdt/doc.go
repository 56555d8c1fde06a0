// Package crdt is the value model of the active replication strategy, in
// which every region accepts writes and receives the other regions' writes
// through streams, in any order and possibly more than once. Each key holds
// a Value whose merge is deterministic, commutative, associative and
// idempotent, so every region that has received the same writes holds the
// same state, byte for byte, whatever the order of delivery.
//
// # Types
//
//   - Register: a byte string, last writer wins, with conflict detection
//     and optional custom resolvers.
//   - Counter: a PN-counter; increments are never lost.
//   - Set: an observed-remove set; an add wins over a concurrent remove.
//   - Map: fields of byte strings, each last writer wins.
//   - ZSet: a sorted set; membership add-wins as Set, each member's score
//     a last-writer-wins base plus per-region increment counters (ZADD
//     sets, ZINCRBY adds and is never lost).
//
// Value is their union. The zero value of each type is ready to use.
// Values of different types do not merge (ErrTypeMismatch): if regions
// write a key as different types, choosing between them is the caller's
// business.
//
// # Operations and the causal context
//
// A local operation is a method call (Register.Set, Counter.Add, Set.Add,
// Map.Delete, Value.Clear, ...) taking a Stamp: the region performing it,
// the node's HLC time, and optionally a sequence number. Each operation
// gets a dot, (region, seq), with seq increasing per region, and adds it to
// the value's causal context, a VersionVector holding for every region the
// highest seq seen. The context tells what a state has seen: a state has
// seen an operation if its context contains the operation's dot.
//
// # What the streams ship
//
// The model is state based, with delta-states. After a local operation
// the kv state machine stores Encode() of the result, and ships the
// operation's delta (Delta): the part of the state the operation
// produced, itself a state, merged with the same Merge. Its size depends
// on what the operation wrote, not on the value's size: an add to a set
// of a million members ships the member, its tag and a few dots. The
// receiver decodes it and stores Merge(stored, received). Redelivery and
// reordering are harmless since merging is idempotent, commutative and
// associative, and deltas are states; a state or delta that another has
// already been merged into changes nothing. Whole states (Encode of the
// stored value) still travel when a region is seeded or a source lacks
// the deltas, and merge with deltas like any state.
//
// What a delta carries as causal context decides what it overwrites or
// removes at the receiver: the dots its operations took, and for every
// map field or set member it wrote, everything its writer had seen of
// that field or member (so a write overwrites, and a remove removes,
// exactly what its writer had seen, also where that arrives later, and
// an overwrite is never taken for a concurrent write); nothing about the
// other fields or members. Contexts are therefore sets of dots rather
// than version vectors (see dotSet), with gaps while a receiver lacks
// earlier operations, and fields and members may hold a context of
// their own beyond the value's; both shrink back to a version vector as
// the operations arrive. Context reports the smallest version vector
// holding a value's context.
//
// A receiver of deltas sees what a writer had seen of the field it wrote,
// not everything the writer had seen: a region that got another region's
// write to field g, but not an earlier write to f that that region had
// seen, writes f concurrently with it (its writer did not see that
// value), where whole states would have carried f along. Conflicts are
// judged on what writers had seen of the field.
//
// # Registers and map fields
//
// A write replaces every version it has seen: that is an ordinary
// overwrite, whatever the timestamps say. Writes that did not see each
// other are concurrent: a conflict. Merging keeps every version that the
// other side has not seen, so concurrent versions stay side by side until
// a write that has seen them all replaces them. Reads see the winner:
//
//   - by default (rule "lww") the newest, by HLC time, then region name;
//   - for a register whose newest concurrent version names a Resolver
//     (registered with RegisterResolver), the resolver's choice. It is
//     called with the versions in last-writer-wins order, and the winner
//     is recomputed from all concurrent versions whenever they change, so
//     the result is the same in every region even for a resolver that is
//     neither commutative nor associative.
//
// Merge reports a Conflict when concurrent writes meet for the first time:
// when its result holds a version the first input had not seen and one
// the second had not seen. It lists the concurrent versions (value, region,
// time, dot), the winner and the rule, and is the same whichever input is
// first. Merging a state that was merged before reports nothing, so
// redelivery does not repeat conflicts; every region that brings the same
// versions together reports the same Conflict, which a ledger can
// deduplicate.
//
// # Counters and sets
//
// A counter keeps per-region totals of increments and decrements, merged
// by taking the larger of each. A set tags the members of each Add with the
// operation's dot; a remove drops the tags it has seen, so an add it has
// not seen survives. These types have no conflicts.
//
// A sorted set (ZSet) is a set whose members also hold a score: a base
// written by Add (and reset by Remove) under last writer wins, a Remove's
// base never winning over a concurrent Add's, plus each region's total of
// increments that no write of the base has seen. Concurrent Adds of a
// member are conflicts, reported like a map field's; increments never
// conflict. Scores are sums of floats taken in region order, the same
// bits in every region.
//
// # Deletes
//
// Deleting a register or a map field writes a tombstone version, which
// takes part in last writer wins like any other write. Clear deletes a
// whole key: a tombstone in a register and in every field of a map, the
// removal of every member of a set, the cancellation of every increment of
// a counter. In every case what the delete did not see survives it
// (subject to last writer wins for registers and fields), and the value
// keeps its causal context, so that an older write arriving later stays
// overwritten. A value that is no more than a tombstone is not Live.
//
// A tombstone is removed only once it is causally stable, never after a
// fixed time: Collectable decides whether a deleted key can be dropped
// from storage, and Map.Compact drops a map's deleted fields, given a
// stable vector, the pointwise minimum (StableVector) of what every region
// reports having seen. Each region's report must arrive through the same
// in-order stream as its changes, after them. The reports must count in
// the same numbers as the dots: either every operation passes the position
// of its change in the region's stream as Stamp.Seq, so that the stable
// vector comes from stream positions, or operations leave Seq zero and the
// reports are the regions' contexts for the key.
//
// # Encoding
//
// Encode writes a versioned, compact, canonical binary form: a format
// version, a type tag, a table of the regions the value mentions, then
// varints and length-prefixed strings with regions as indexes into the
// table. Format 1 has version-vector contexts; format 2, used only when
// needed, has contexts with gaps and fields' and members' own contexts. Decode accepts exactly the canonical form, so re-encoding a
// decoded value gives back the same bytes, and returns an error wrapping
// ErrBadEncoding, never panicking, for anything else.
package crdt
