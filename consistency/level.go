package consistency

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Level is a per-request consistency level. The zero Level is not a level:
// it means "unset", is rejected by Requirement.Validate and is never served.
type Level uint8

// The consistency levels, strongest first.
const (
	// Strong reads are linearizable.
	Strong Level = iota + 1
	// Bounded reads reflect every write older than now - MaxStaleness.
	Bounded
	// Session reads give read-your-writes and monotonic reads to the holder
	// of a session Token.
	Session
	// Prefix reads return some state the origin really had: no gaps and no
	// reordering per origin.
	Prefix
	// Eventual reads return some replica's current value.
	Eventual
)

// StalenessLimit is the largest staleness a bounded requirement may name.
// Anything larger is almost certainly a unit mistake ("5000h" for "5000ms")
// and is refused rather than silently served as a practically eventual read.
const StalenessLimit = 24 * time.Hour

// Errors returned (wrapped) by Parse, ParseLevel and Requirement.Validate. Every one of them also wraps ErrInvalidRequirement, so a
// caller that only needs to know "the client asked for something invalid"
// can test for that alone.
var (
	// ErrInvalidRequirement is wrapped by every error about an invalid
	// consistency requirement.
	ErrInvalidRequirement = errors.New("invalid consistency requirement")
	// ErrUnknownLevel: the level name is not one of strong, bounded,
	// session, prefix or eventual.
	ErrUnknownLevel = errors.New("unknown consistency level")
	// ErrMissingStaleness: a bounded requirement without its staleness.
	ErrMissingStaleness = errors.New("bounded consistency needs a staleness")
	// ErrBadStaleness: the staleness is unparseable, zero, negative or
	// larger than StalenessLimit.
	ErrBadStaleness = errors.New("invalid staleness")
	// ErrUnexpectedStaleness: a staleness given to a level other than
	// bounded.
	ErrUnexpectedStaleness = errors.New("only bounded consistency takes a staleness")
	// ErrSyntax: the requirement is not of the form level, level(D),
	// level:D or level=D.
	ErrSyntax = errors.New("malformed consistency requirement")
)

var levelNames = [...]string{
	Strong:   "strong",
	Bounded:  "bounded",
	Session:  "session",
	Prefix:   "prefix",
	Eventual: "eventual",
}

// validLevels is used in error messages.
const validLevels = "strong, bounded(D), session, prefix, eventual"

// Valid reports whether l is one of the defined levels.
func (l Level) Valid() bool {
	return l >= Strong && l <= Eventual
}

// String returns the lower-case name of the level ("strong", "bounded", ...),
// "unset" for the zero Level and "level(N)" for undefined values.
func (l Level) String() string {
	switch {
	case l.Valid():
		return levelNames[l]
	case l == 0:
		return "unset"
	default:
		return "level(" + strconv.Itoa(int(l)) + ")"
	}
}

// MarshalText implements encoding.TextMarshaler. It refuses invalid levels.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("consistency: %w: %w: %s", ErrInvalidRequirement, ErrUnknownLevel, l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using ParseLevel.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel parses a bare level name, case-insensitively and ignoring
// surrounding white space. It accepts "bounded" without a staleness; use
// Parse for a complete Requirement.
func ParseLevel(s string) (Level, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for l := Strong; l <= Eventual; l++ {
		if levelNames[l] == name {
			return l, nil
		}
	}
	if name == "" {
		return 0, fmt.Errorf("consistency: %w: %w: empty level (want one of %s)",
			ErrInvalidRequirement, ErrUnknownLevel, validLevels)
	}
	return 0, fmt.Errorf("consistency: %w: %w %s (want one of %s)",
		ErrInvalidRequirement, ErrUnknownLevel, quote(s), validLevels)
}

// Requirement is what a request asks for: a level and, for Bounded only, the
// largest staleness the answer may have. The zero Requirement is invalid.
type Requirement struct {
	Level Level
	// MaxStaleness is the staleness bound of a Bounded requirement: the
	// answer must reflect every write older than now - MaxStaleness. It
	// must be zero for every other level.
	MaxStaleness time.Duration
}

// BoundedBy returns the requirement bounded(d). It does not validate d; see
// Requirement.Validate.
func BoundedBy(d time.Duration) Requirement {
	return Requirement{Level: Bounded, MaxStaleness: d}
}

// Validate reports whether r is a requirement that can be served: a defined
// level, a staleness in (0, StalenessLimit] for Bounded, and no staleness
// for any other level. Every Requirement returned by Parse is valid.
func (r Requirement) Validate() error {
	if !r.Level.Valid() {
		return fmt.Errorf("consistency: %w: %w: %s", ErrInvalidRequirement, ErrUnknownLevel, r.Level)
	}
	if r.Level != Bounded {
		if r.MaxStaleness != 0 {
			return fmt.Errorf("consistency: %w: %w: %s with staleness %v",
				ErrInvalidRequirement, ErrUnexpectedStaleness, r.Level, r.MaxStaleness)
		}
		return nil
	}
	return checkStaleness(r.MaxStaleness)
}

func checkStaleness(d time.Duration) error {
	switch {
	case d == 0:
		return fmt.Errorf("consistency: %w: %w: staleness must be positive, got zero (a zero bound is a strong read: ask for strong)",
			ErrInvalidRequirement, ErrBadStaleness)
	case d < 0:
		return fmt.Errorf("consistency: %w: %w: staleness must be positive, got %v",
			ErrInvalidRequirement, ErrBadStaleness, d)
	case d > StalenessLimit:
		return fmt.Errorf("consistency: %w: %w: staleness %v is larger than the limit of %v",
			ErrInvalidRequirement, ErrBadStaleness, d, StalenessLimit)
	}
	return nil
}

// String formats r so that Parse(r.String()) returns r for every valid r:
// "strong", "bounded(1.5s)", "session", "prefix", "eventual".
func (r Requirement) String() string {
	if r.Level == Bounded {
		return "bounded(" + r.MaxStaleness.String() + ")"
	}
	return r.Level.String()
}

// MarshalText implements encoding.TextMarshaler. It refuses invalid
// requirements.
func (r Requirement) MarshalText() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using Parse.
func (r *Requirement) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Parse parses a consistency requirement. Level names are case-insensitive
// and white space around the level and the staleness is ignored. Accepted
// forms:
//
//	strong | session | prefix | eventual
//	bounded(D) | bounded:D | bounded=D
//
// where D is a Go duration with a unit ("5s", "250ms", "1m30s"). D must be
// positive and at most StalenessLimit. Digits beyond nanosecond precision
// are dropped, which only ever tightens the bound, never loosens it.
//
// Errors wrap ErrInvalidRequirement and one of ErrUnknownLevel,
// ErrMissingStaleness, ErrBadStaleness, ErrUnexpectedStaleness or ErrSyntax.
func Parse(s string) (Requirement, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	name, arg, hasArg := in, "", false
	if i := strings.IndexAny(in, "(:="); i >= 0 {
		name, arg, hasArg = strings.TrimSpace(in[:i]), in[i+1:], true
		if in[i] == '(' {
			inner, ok := strings.CutSuffix(arg, ")")
			if !ok {
				return Requirement{}, fmt.Errorf("consistency: %w: %w: %s: missing closing parenthesis",
					ErrInvalidRequirement, ErrSyntax, quote(s))
			}
			arg = inner
		}
		arg = strings.TrimSpace(arg)
	}
	if strings.ContainsAny(name, " \t") {
		return Requirement{}, fmt.Errorf("consistency: %w: %w: %s (want one of %s)",
			ErrInvalidRequirement, ErrSyntax, quote(s), validLevels)
	}
	level, err := ParseLevel(name)
	if err != nil {
		return Requirement{}, err
	}
	if level != Bounded {
		if hasArg {
			return Requirement{}, fmt.Errorf("consistency: %w: %w: %s", ErrInvalidRequirement, ErrUnexpectedStaleness, quote(s))
		}
		return Requirement{Level: level}, nil
	}
	if arg == "" {
		return Requirement{}, fmt.Errorf("consistency: %w: %w: %s (write it as bounded(5s), bounded:5s or bounded=5s)",
			ErrInvalidRequirement, ErrMissingStaleness, quote(s))
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		hint := ""
		if _, numErr := strconv.ParseFloat(arg, 64); numErr == nil {
			hint = " (a unit is required, e.g. 5s or 250ms)"
		}
		return Requirement{}, fmt.Errorf("consistency: %w: %w: cannot parse %s as a duration%s",
			ErrInvalidRequirement, ErrBadStaleness, quote(arg), hint)
	}
	if err := checkStaleness(d); err != nil {
		return Requirement{}, err
	}
	return Requirement{Level: Bounded, MaxStaleness: d}, nil
}

// quote quotes untrusted input for an error message, shortening it so that
// a huge header cannot blow up a log line.
func quote(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return strconv.Quote(s[:maxLen]) + "..."
	}
	return strconv.Quote(s)
}
