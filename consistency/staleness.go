package consistency

import (
	"math"
	"time"

	"github.com/meridian-db/meridian/hlc"
)

// HTTP headers. A request names its consistency requirement in
// HeaderConsistency and its session token in HeaderSession; every answer
// reports how it was served in the headers written by Staleness.SetHeader.
const (
	// HeaderConsistency: on a request, the requirement (Parse syntax); on
	// an answer, the level actually provided.
	HeaderConsistency = "Meridian-Consistency"
	// HeaderRegion: region of the node that served the answer.
	HeaderRegion = "Meridian-Region"
	// HeaderNode: id of the node that served the answer, in decimal.
	HeaderNode = "Meridian-Node"
	// HeaderStaleness: upper bound of the answer's staleness in whole
	// milliseconds, rounded up; "0" for strong answers. Absent when the
	// bound is unknown.
	HeaderStaleness = "Meridian-Staleness-Ms"
	// HeaderSession: the session token, on requests and answers.
	HeaderSession = "Meridian-Session"
)

// ClosedMS converts a closed timestamp into the closedMS argument of
// CanServeLocally: the latest wall time, in milliseconds, at or before which
// every write is known to be applied. A closed timestamp T promises that no
// write below T will appear, which covers every write whose wall time is
// below T.WallMS but not all writes within T.WallMS itself, so the result is
// T.WallMS - 1. Using it keeps the staleness CanServeLocally computes an
// upper bound rather than an estimate that may be one millisecond short.
func ClosedMS(closed hlc.Timestamp) int64 {
	if closed.WallMS == math.MinInt64 {
		return math.MinInt64
	}
	return closed.WallMS - 1
}

// Lag returns the staleness of a replica whose data is complete up to wall
// time closedMS, as seen at wall time nowMS (both in milliseconds since the
// Unix epoch, on the serving node's clock): nowMS - closedMS, or zero if
// closedMS is not behind nowMS. It saturates instead of overflowing.
func Lag(closedMS, nowMS int64) time.Duration {
	if closedMS >= nowMS {
		return 0
	}
	diff := uint64(nowMS) - uint64(closedMS) // nowMS > closedMS: fits in a uint64
	if diff > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return math.MaxInt64
	}
	return time.Duration(diff) * time.Millisecond
}

// CanServeLocally reports whether a replica whose data is complete up to
// wall time closedMS (see ClosedMS) may serve a read with requirement req
// at wall time nowMS without waiting or forwarding, and the staleness
// bound of such an answer, Lag(closedMS, nowMS), which it returns whatever
// ok is.
//
//   - Bounded(D): ok if nowMS - closedMS <= D. The bound is compared at full
//     precision, so it is never looser than asked.
//   - Prefix and Eventual: always ok.
//   - Strong: never ok; strong reads go to the leaseholder or primary.
//   - Session: never ok on the closed timestamp alone. A session read may be
//     served locally once Token.Satisfied reports nothing missing.
//   - An invalid requirement is never ok.
//
// Staleness is measured on the serving node's clock; it does not include
// the clock offset between that node and the one that closed the
// timestamp.
func CanServeLocally(req Requirement, closedMS, nowMS int64) (ok bool, staleness time.Duration) {
	staleness = Lag(closedMS, nowMS)
	if req.Validate() != nil {
		return false, staleness
	}
	switch req.Level {
	case Bounded:
		return staleness <= req.MaxStaleness, staleness
	case Prefix, Eventual:
		return true, staleness
	default: // Strong, Session
		return false, staleness
	}
}
