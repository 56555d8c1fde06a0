package netsim

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"sync"
	"time"
)

// ErrInvalidMatrix is wrapped by every error ParseMatrix and LoadMatrix
// return for input that is not a valid round-trip matrix.
var ErrInvalidMatrix = errors.New("netsim: invalid matrix")

// maxRTT bounds a single matrix entry. Anything above it is almost certainly
// a unit mistake, and the bound keeps the conversion to time.Duration far from
// overflow.
const maxRTT = time.Hour

//go:embed world-rtt.json
var worldRTTJSON []byte

// Matrix holds the round-trip time between pairs of regions: m[a][b] is the
// RTT between region a and region b. Lookups are symmetric: when m[a][b] is
// missing, m[b][a] is used. A region listed without any entry is a key with an
// empty (or nil) inner map.
type Matrix map[string]map[string]time.Duration

// matrixFile is the on-disk shape of a matrix (see world-rtt.json). Fields
// other than these are ignored.
type matrixFile struct {
	Regions []string                       `json:"regions"`
	RTTMs   map[string]map[string]*float64 `json:"rtt_ms"`
}

// ParseMatrix parses the world-rtt.json format:
//
//	{"regions": ["a", "b"], "rtt_ms": {"a": {"b": 12.5}, "b": {"a": 12.5}}}
//
// "rtt_ms" is required and maps a region to a map from region to round-trip
// time in milliseconds. "regions" is optional; when present, every region used
// in "rtt_ms" must be listed. Other top-level fields are ignored. Negative,
// null or absurdly large values, empty region names, non-zero self entries and
// conflicting a->b / b->a entries are rejected with an error wrapping
// ErrInvalidMatrix.
func ParseMatrix(data []byte) (Matrix, error) {
	var f matrixFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMatrix, err)
	}
	if f.RTTMs == nil {
		return nil, fmt.Errorf("%w: missing \"rtt_ms\" object", ErrInvalidMatrix)
	}
	var listed map[string]bool
	if f.Regions != nil {
		listed = make(map[string]bool, len(f.Regions))
		for _, r := range f.Regions {
			if r == "" {
				return nil, fmt.Errorf("%w: empty region name in \"regions\"", ErrInvalidMatrix)
			}
			if listed[r] {
				return nil, fmt.Errorf("%w: region %q listed twice", ErrInvalidMatrix, r)
			}
			listed[r] = true
		}
	}
	checkName := func(r string) error {
		if r == "" {
			return fmt.Errorf("%w: empty region name in \"rtt_ms\"", ErrInvalidMatrix)
		}
		if listed != nil && !listed[r] {
			return fmt.Errorf("%w: region %q is not in \"regions\"", ErrInvalidMatrix, r)
		}
		return nil
	}

	m := make(Matrix, len(f.RTTMs)+len(f.Regions))
	for _, r := range f.Regions {
		m[r] = map[string]time.Duration{}
	}
	for a, row := range f.RTTMs {
		if err := checkName(a); err != nil {
			return nil, err
		}
		if row == nil {
			return nil, fmt.Errorf("%w: row %q is not an object", ErrInvalidMatrix, a)
		}
		if m[a] == nil {
			m[a] = make(map[string]time.Duration, len(row))
		}
		for b, v := range row {
			if err := checkName(b); err != nil {
				return nil, err
			}
			if v == nil {
				return nil, fmt.Errorf("%w: rtt %q->%q is null", ErrInvalidMatrix, a, b)
			}
			ms := *v
			if math.IsNaN(ms) || ms < 0 {
				return nil, fmt.Errorf("%w: rtt %q->%q is negative (%v ms)", ErrInvalidMatrix, a, b, ms)
			}
			if ms > float64(maxRTT/time.Millisecond) {
				return nil, fmt.Errorf("%w: rtt %q->%q is larger than %v (%v ms)", ErrInvalidMatrix, a, b, maxRTT, ms)
			}
			d := time.Duration(math.Round(ms * float64(time.Millisecond)))
			if a == b {
				if d != 0 {
					return nil, fmt.Errorf("%w: non-zero rtt from %q to itself (use IntraRegionRTT)", ErrInvalidMatrix, a)
				}
				continue
			}
			m[a][b] = d
		}
		if m[a] == nil {
			m[a] = map[string]time.Duration{}
		}
	}
	// Make sure every region that only appears as a column is a key too, and
	// that the two directions agree.
	for a, row := range m {
		for b, d := range row {
			if _, ok := m[b]; !ok {
				m[b] = map[string]time.Duration{}
			}
			if back, ok := m[b][a]; ok && back != d {
				return nil, fmt.Errorf("%w: rtt %q->%q (%v) differs from %q->%q (%v)",
					ErrInvalidMatrix, a, b, d, b, a, back)
			}
		}
	}
	return m, nil
}

// LoadMatrix reads and parses a matrix file; see ParseMatrix for the format.
func LoadMatrix(path string) (Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("netsim: load matrix: %w", err)
	}
	m, err := ParseMatrix(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return m, nil
}

var worldMatrix = sync.OnceValue(func() Matrix {
	m, err := ParseMatrix(worldRTTJSON)
	if err != nil {
		panic(fmt.Sprintf("netsim: embedded world-rtt.json is invalid: %v", err))
	}
	return m
})

// WorldMatrix returns the measured round-trip times between five cloud
// regions (us-east, us-west, eu-west, ap-southeast, sa-east) embedded from
// world-rtt.json. Every call returns a fresh copy that the caller may modify.
func WorldMatrix() Matrix {
	return worldMatrix().Clone()
}

// Clone returns a deep copy of m.
func (m Matrix) Clone() Matrix {
	if m == nil {
		return nil
	}
	c := make(Matrix, len(m))
	for a, row := range m {
		c[a] = maps.Clone(row)
		if c[a] == nil {
			c[a] = map[string]time.Duration{}
		}
	}
	return c
}

// RTT returns the round-trip time between regions a and b, looking up m[a][b]
// and then m[b][a]. The RTT of a region with itself is 0. ok is false when
// neither direction is present.
func (m Matrix) RTT(a, b string) (rtt time.Duration, ok bool) {
	if a == b {
		return 0, true
	}
	if d, ok := m[a][b]; ok {
		return d, true
	}
	if d, ok := m[b][a]; ok {
		return d, true
	}
	return 0, false
}

// Regions returns every region that appears in m, as a key or inside a row,
// sorted.
func (m Matrix) Regions() []string {
	set := make(map[string]struct{}, len(m))
	for a, row := range m {
		set[a] = struct{}{}
		for b := range row {
			set[b] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// set records rtt for the pair in both directions.
func (m Matrix) set(a, b string, rtt time.Duration) {
	if m[a] == nil {
		m[a] = map[string]time.Duration{}
	}
	if m[b] == nil {
		m[b] = map[string]time.Duration{}
	}
	m[a][b] = rtt
	m[b][a] = rtt
}

// Scaled returns a copy of m with every round trip multiplied by f: tests
// use a fraction of the world's latencies so that elections and partitions
// play out quickly while regions keep their relative distances.
func (m Matrix) Scaled(f float64) Matrix {
	out := m.Clone()
	for a, row := range out {
		for b, d := range row {
			out[a][b] = time.Duration(float64(d) * f)
		}
	}
	return out
}

// MatrixFor resolves a latency setting as the command line takes it:
// "none" (no emulation: nil), "zero" (emulated without delay, so that
// faults can be injected), "world" (the built-in matrix), or the path of a
// matrix file in the world-rtt.json format.
func MatrixFor(spec string) (Matrix, error) {
	switch spec {
	case "none":
		return nil, nil
	case "zero":
		// Emulated, without delay: faults can still be injected.
		return Matrix{}, nil
	case "world":
		return WorldMatrix(), nil
	}
	return LoadMatrix(spec)
}
