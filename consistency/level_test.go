package consistency

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in   string
		want Requirement
	}{
		{"strong", Requirement{Level: Strong}},
		{"STRONG", Requirement{Level: Strong}},
		{"  Strong\t", Requirement{Level: Strong}},
		{"session", Requirement{Level: Session}},
		{"Session", Requirement{Level: Session}},
		{"prefix", Requirement{Level: Prefix}},
		{"eventual", Requirement{Level: Eventual}},
		{"EVENTUAL", Requirement{Level: Eventual}},
		{"bounded(5s)", BoundedBy(5 * time.Second)},
		{"bounded:250ms", BoundedBy(250 * time.Millisecond)},
		{"bounded=2s", BoundedBy(2 * time.Second)},
		{"Bounded(1m30s)", BoundedBy(90 * time.Second)},
		{"BOUNDED(5S)", BoundedBy(5 * time.Second)},
		{"bounded ( 5s )", BoundedBy(5 * time.Second)},
		{"bounded : 1.5s", BoundedBy(1500 * time.Millisecond)},
		{"bounded=+3s", BoundedBy(3 * time.Second)},
		{"bounded(1ns)", BoundedBy(time.Nanosecond)},
		{"bounded(500us)", BoundedBy(500 * time.Microsecond)},
		{"bounded(500µs)", BoundedBy(500 * time.Microsecond)},
		{"bounded(24h)", BoundedBy(24 * time.Hour)},
		{"bounded(1439m)", BoundedBy(1439 * time.Minute)},
		// Digits below a nanosecond are dropped: tighter, never looser.
		{"bounded(1.9ns)", BoundedBy(time.Nanosecond)},
		{"bounded(1.0000000009s)", BoundedBy(time.Second)},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): unexpected error %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Parse(%q) returned an invalid requirement: %v", tt.in, err)
		}
		if got.Level == Bounded && got.MaxStaleness > tt.want.MaxStaleness {
			t.Errorf("Parse(%q) loosened the bound to %v", tt.in, got.MaxStaleness)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      string
		want    error
		message string // a fragment the message must contain
	}{
		{"", ErrUnknownLevel, "empty level"},
		{"   ", ErrUnknownLevel, "empty level"},
		{"linearizable", ErrUnknownLevel, `"linearizable"`},
		{"strongest", ErrUnknownLevel, "want one of"},
		{"bound(5s)", ErrUnknownLevel, "bound"},
		{"(5s)", ErrUnknownLevel, "empty level"},
		{"str ong", ErrSyntax, "str ong"},
		{"bounded 5s", ErrSyntax, "bounded 5s"},
		{"bounded", ErrMissingStaleness, "bounded(5s)"},
		{"bounded()", ErrMissingStaleness, "needs a staleness"},
		{"bounded( )", ErrMissingStaleness, "needs a staleness"},
		{"bounded:", ErrMissingStaleness, "needs a staleness"},
		{"bounded=", ErrMissingStaleness, "needs a staleness"},
		{"bounded(5s", ErrSyntax, "missing closing parenthesis"},
		{"bounded(5s)x", ErrSyntax, "missing closing parenthesis"},
		{"bounded(5s))", ErrBadStaleness, "cannot parse"},
		{"bounded(5)", ErrBadStaleness, "unit is required"},
		{"bounded:1.5", ErrBadStaleness, "unit is required"},
		{"bounded(5 s)", ErrBadStaleness, "cannot parse"},
		{"bounded(soon)", ErrBadStaleness, "cannot parse"},
		{"bounded(5parsecs)", ErrBadStaleness, "cannot parse"},
		{"bounded(0s)", ErrBadStaleness, "got zero"},
		{"bounded(0)", ErrBadStaleness, "got zero"},
		{"bounded(0.1ns)", ErrBadStaleness, "got zero"},
		{"bounded(-5s)", ErrBadStaleness, "got -5s"},
		{"bounded=-1ns", ErrBadStaleness, "must be positive"},
		{"bounded(24h0m0.000000001s)", ErrBadStaleness, "larger than the limit"},
		{"bounded(25h)", ErrBadStaleness, "larger than the limit"},
		{"bounded(5000h)", ErrBadStaleness, "larger than the limit"},
		{"bounded(9999999999999h)", ErrBadStaleness, "cannot parse"}, // overflows time.Duration
		{"strong(5s)", ErrUnexpectedStaleness, "only bounded"},
		{"eventual:1s", ErrUnexpectedStaleness, "only bounded"},
		{"session=", ErrUnexpectedStaleness, "only bounded"},
		{"prefix()", ErrUnexpectedStaleness, "only bounded"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want error %v", tt.in, got, tt.want)
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("Parse(%q) error %q does not wrap %q", tt.in, err, tt.want)
		}
		if !errors.Is(err, ErrInvalidRequirement) {
			t.Errorf("Parse(%q) error %q does not wrap ErrInvalidRequirement", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.message) {
			t.Errorf("Parse(%q) error %q does not mention %q", tt.in, err, tt.message)
		}
		if got != (Requirement{}) {
			t.Errorf("Parse(%q) returned %+v with its error", tt.in, got)
		}
	}
}

func TestParseErrorQuotesLongInput(t *testing.T) {
	_, err := Parse(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error for a huge input should be short, got %d bytes", len(err.Error()))
	}
}

func TestValidate(t *testing.T) {
	bad := []struct {
		r    Requirement
		want error
	}{
		{Requirement{}, ErrUnknownLevel},
		{Requirement{Level: 42}, ErrUnknownLevel},
		{Requirement{Level: Bounded}, ErrBadStaleness},
		{BoundedBy(-time.Second), ErrBadStaleness},
		{BoundedBy(StalenessLimit + 1), ErrBadStaleness},
		{Requirement{Level: Strong, MaxStaleness: time.Second}, ErrUnexpectedStaleness},
	}
	for _, tt := range bad {
		if err := tt.r.Validate(); !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidRequirement) {
			t.Errorf("%+v.Validate() = %v, want %v", tt.r, err, tt.want)
		}
	}
	for _, r := range []Requirement{{Level: Strong}, {Level: Session}, {Level: Prefix}, {Level: Eventual}, BoundedBy(StalenessLimit), BoundedBy(1)} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", r, err)
		}
	}
}

func TestLevelString(t *testing.T) {
	want := map[Level]string{0: "unset", Strong: "strong", Bounded: "bounded", Session: "session",
		Prefix: "prefix", Eventual: "eventual", 9: "level(9)"}
	for l, s := range want {
		if got := l.String(); got != s {
			t.Errorf("Level(%d).String() = %q, want %q", l, got, s)
		}
		l2, err := ParseLevel(s)
		if l.Valid() != (err == nil) || (err == nil && l2 != l) {
			t.Errorf("ParseLevel(%q) = %v, %v", s, l2, err)
		}
	}
}

func TestRequirementStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var r Requirement
		r.Level = Level(rapid.IntRange(int(Strong), int(Eventual)).Draw(t, "level"))
		if r.Level == Bounded {
			r.MaxStaleness = time.Duration(rapid.Int64Range(1, int64(StalenessLimit)).Draw(t, "staleness"))
		}
		s := r.String()
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if got != r {
			t.Fatalf("Parse(%q) = %+v, want %+v", s, got, r)
		}
		// Every accepted spelling of a bounded requirement means the same.
		if r.Level == Bounded {
			for _, alt := range []string{"BOUNDED:" + r.MaxStaleness.String(), "bounded=" + r.MaxStaleness.String()} {
				if got, err := Parse(alt); err != nil || got != r {
					t.Fatalf("Parse(%q) = %+v, %v, want %+v", alt, got, err, r)
				}
			}
		}
	})
}

func TestRequirementText(t *testing.T) {
	type config struct {
		Read  Requirement `json:"read"`
		Level Level       `json:"level"`
	}
	in := config{Read: BoundedBy(1500 * time.Millisecond), Level: Prefix}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"read":"bounded(1.5s)","level":"prefix"}` {
		t.Fatalf("json = %s", b)
	}
	var out config
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"read":"bounded(0s)"}`), &out); !errors.Is(err, ErrBadStaleness) {
		t.Fatalf("unmarshal of a zero bound: %v", err)
	}
	if _, err := json.Marshal(config{}); !errors.Is(err, ErrInvalidRequirement) {
		t.Fatalf("marshal of an unset requirement: %v", err)
	}
}
