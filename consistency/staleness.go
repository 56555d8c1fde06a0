package consistency

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
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

// UnknownStaleness is the Staleness.Bound of an answer whose staleness is
// not known, for example an eventual read from a replica that has not yet
// heard a closed timestamp.
const UnknownStaleness time.Duration = -1

// ErrBadReport is wrapped by ParseStaleness errors.
var ErrBadReport = errors.New("malformed consistency report")

// Staleness reports how an answer was actually served. Every answer carries
// one (see SetHeader), and it describes what was provided, which may be
// stronger than what was asked: a bounded read forwarded to a leaseholder
// is reported as strong.
type Staleness struct {
	// Region and Node identify the node that served the answer.
	Region string
	Node   uint64
	// Level is the level the answer provides.
	Level Level
	// Bound is an upper bound of the answer's staleness: the time between
	// the closed timestamp the answer was served at and the serving node's
	// clock when it served it. It is zero for strong answers and
	// UnknownStaleness (negative) when no bound is known.
	Bound time.Duration
	// Session is the encoded session token to pass along with the next
	// request, or "" if there is none.
	Session string
}

// BoundMS returns Bound in whole milliseconds rounded up, so that the
// reported bound is never smaller than the real one, and -1 if the bound is
// unknown. It is always 0 for strong answers.
func (s Staleness) BoundMS() int64 {
	switch {
	case s.Level == Strong:
		return 0
	case s.Bound < 0:
		return -1
	}
	ms := int64(s.Bound / time.Millisecond)
	if s.Bound%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// Header returns the headers describing s; see SetHeader.
func (s Staleness) Header() http.Header {
	h := make(http.Header, 5)
	s.SetHeader(h)
	return h
}

// SetHeader writes the headers describing s into h, replacing any values
// they had: Meridian-Region (if Region is set), Meridian-Node (if Node is
// not zero), Meridian-Consistency (if Level is valid), Meridian-Staleness-Ms
// (if the bound is known) and Meridian-Session (if Session is set). Headers
// for fields that are not set are removed.
func (s Staleness) SetHeader(h http.Header) {
	set := func(key, value string, ok bool) {
		if ok {
			h.Set(key, value)
		} else {
			h.Del(key)
		}
	}
	set(HeaderRegion, s.Region, s.Region != "")
	set(HeaderNode, strconv.FormatUint(s.Node, 10), s.Node != 0)
	set(HeaderConsistency, s.Level.String(), s.Level.Valid())
	ms := s.BoundMS()
	set(HeaderStaleness, strconv.FormatInt(ms, 10), ms >= 0)
	set(HeaderSession, s.Session, s.Session != "")
}

// ParseStaleness reads the report written by SetHeader, as a client
// receives it. Absent headers leave their fields unset (Bound is then
// UnknownStaleness). The bound comes back in whole milliseconds,
// saturating at the largest Duration. The
// session token is returned as it was sent; decode it with DecodeToken.
func ParseStaleness(h http.Header) (Staleness, error) {
	s := Staleness{
		Region:  h.Get(HeaderRegion),
		Bound:   UnknownStaleness,
		Session: h.Get(HeaderSession),
	}
	if v := h.Get(HeaderNode); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Staleness{}, fmt.Errorf("consistency: %w: %s %s is not a node id", ErrBadReport, HeaderNode, quote(v))
		}
		s.Node = n
	}
	if v := h.Get(HeaderConsistency); v != "" {
		l, err := ParseLevel(v)
		if err != nil {
			return Staleness{}, fmt.Errorf("consistency: %w: %s: %w", ErrBadReport, HeaderConsistency, err)
		}
		s.Level = l
	}
	if v := h.Get(HeaderStaleness); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return Staleness{}, fmt.Errorf("consistency: %w: %s %s is not a number of milliseconds",
				ErrBadReport, HeaderStaleness, quote(v))
		}
		s.Bound = math.MaxInt64 // saturate: a bound too large for a Duration
		if ms <= math.MaxInt64/int64(time.Millisecond) {
			s.Bound = time.Duration(ms) * time.Millisecond
		}
	}
	return s, nil
}

// ParseHeader returns the requirement a request names in its
// Meridian-Consistency header, or def if the header is absent or blank. A
// header that is present more than once is refused (ErrSyntax), as is one
// that Parse refuses.
func ParseHeader(h http.Header, def Requirement) (Requirement, error) {
	vals := h.Values(HeaderConsistency)
	switch len(vals) {
	case 0:
		return def, nil
	case 1:
	default:
		return Requirement{}, fmt.Errorf("consistency: %w: %w: %s given %d times",
			ErrInvalidRequirement, ErrSyntax, HeaderConsistency, len(vals))
	}
	if strings.TrimSpace(vals[0]) == "" {
		return def, nil
	}
	return Parse(vals[0])
}

// TokenFromHeader returns the session token a request carries in its
// Meridian-Session header, checked against the cluster and keyspace that
// will serve it. present is false, with no error, if the header is absent
// or blank; the session then starts with NewToken. A header present more
// than once is refused as malformed.
func TokenFromHeader(h http.Header, cluster, keyspace string) (tok Token, present bool, err error) {
	vals := h.Values(HeaderSession)
	switch len(vals) {
	case 0:
		return Token{}, false, nil
	case 1:
	default:
		return Token{}, true, malformed("%s given %d times", HeaderSession, len(vals))
	}
	v := strings.TrimSpace(vals[0])
	if v == "" {
		return Token{}, false, nil
	}
	tok, err = DecodeToken(v, cluster, keyspace)
	return tok, true, err
}

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
