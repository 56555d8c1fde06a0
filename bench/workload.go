package bench

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Op is the kind of one operation of a workload.
type Op int

// The operations a workload mixes.
const (
	OpRead   Op = iota // read one key
	OpUpdate           // overwrite an existing key
	OpInsert           // write a new key (workload D and the load phase)
	OpRMW              // read a key, then write the same key
	numOps
)

// String returns the name used in reports: read, update, insert, rmw.
func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpUpdate:
		return "update"
	case OpInsert:
		return "insert"
	case OpRMW:
		return "rmw"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Workload is an operation mix in the style of YCSB's core workloads. The
// proportions are fractions of all operations and add up to 1.
type Workload struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Read        float64 `json:"read"`
	Update      float64 `json:"update"`
	Insert      float64 `json:"insert"`
	RMW         float64 `json:"rmw"`
	// Distribution is the key distribution used when Params.Distribution is
	// empty: zipfian, except latest for workload D.
	Distribution string `json:"distribution"`
}

// The predefined workloads (YCSB's A, B, C, D and F; E needs scans).
var (
	WorkloadA = Workload{Name: "A", Description: "update heavy: 50% read, 50% update", Read: 0.5, Update: 0.5, Distribution: DistZipfian}
	WorkloadB = Workload{Name: "B", Description: "read mostly: 95% read, 5% update", Read: 0.95, Update: 0.05, Distribution: DistZipfian}
	WorkloadC = Workload{Name: "C", Description: "read only: 100% read", Read: 1, Distribution: DistZipfian}
	WorkloadD = Workload{Name: "D", Description: "read latest: 95% read, 5% insert, reads favour new records", Read: 0.95, Insert: 0.05, Distribution: DistLatest}
	WorkloadF = Workload{Name: "F", Description: "read-modify-write: 50% read, 50% read then write of the same key", Read: 0.5, RMW: 0.5, Distribution: DistZipfian}
	// WorkloadW is not YCSB's: writes alone, for write throughput (with
	// --pipeline, what a bulk loader or a write-behind cache does).
	WorkloadW = Workload{Name: "W", Description: "write only: 100% update", Update: 1, Distribution: DistZipfian}
)

// Workloads lists the predefined workloads in order.
var Workloads = []Workload{WorkloadA, WorkloadB, WorkloadC, WorkloadD, WorkloadF, WorkloadW}

// ParseWorkload returns the predefined workload with the given name: "A",
// "B", "C", "D" or "F", case-insensitive, optionally spelled "workloada".
func ParseWorkload(name string) (Workload, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, "WORKLOAD")
	if s == "" {
		return Workload{}, fmt.Errorf("bench: empty workload name (want one of %s)", workloadNames())
	}
	for _, w := range Workloads {
		if w.Name == s {
			return w, nil
		}
	}
	if s == "E" {
		return Workload{}, fmt.Errorf("bench: workload E (short scans) is not supported (want one of %s)", workloadNames())
	}
	return Workload{}, fmt.Errorf("bench: unknown workload %q (want one of %s)", name, workloadNames())
}

func workloadNames() string {
	names := make([]string, len(Workloads))
	for i, w := range Workloads {
		names[i] = w.Name
	}
	return strings.Join(names, ", ")
}

// Validate checks that the proportions are fractions that add up to 1.
func (w Workload) Validate() error {
	if w.Name == "" && w.Read == 0 && w.Update == 0 && w.Insert == 0 && w.RMW == 0 {
		return errors.New("bench: no workload set")
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"read", w.Read}, {"update", w.Update}, {"insert", w.Insert}, {"rmw", w.RMW}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("bench: workload %s: %s proportion %v is not in [0, 1]", w.Name, p.name, p.v)
		}
	}
	if sum := w.Read + w.Update + w.Insert + w.RMW; math.Abs(sum-1) > 1e-9 {
		return fmt.Errorf("bench: workload %s: proportions add up to %v, not 1", w.Name, sum)
	}
	if w.Distribution != "" {
		if _, err := ParseDistribution(w.Distribution); err != nil {
			return fmt.Errorf("bench: workload %s: %w", w.Name, err)
		}
	}
	return nil
}

// choose maps a uniform u in [0, 1) to an operation.
func (w Workload) choose(u float64) Op {
	switch {
	case u < w.Read:
		return OpRead
	case u < w.Read+w.Update:
		return OpUpdate
	case u < w.Read+w.Update+w.Insert:
		return OpInsert
	case w.RMW > 0:
		return OpRMW
	}
	// Rounding at the top end: the last non-empty kind.
	for _, o := range []Op{OpInsert, OpUpdate, OpRead} {
		if w.proportion(o) > 0 {
			return o
		}
	}
	return OpRead
}

func (w Workload) proportion(o Op) float64 {
	switch o {
	case OpRead:
		return w.Read
	case OpUpdate:
		return w.Update
	case OpInsert:
		return w.Insert
	case OpRMW:
		return w.RMW
	}
	return 0
}

// MaxValueSize is the largest value a run may write: 16 MiB.
const MaxValueSize = 16 << 20

// Params describes one benchmark run.
type Params struct {
	// Workload is the operation mix; see ParseWorkload.
	Workload Workload
	// Distribution of the keys read and updated: "zipfian", "uniform" or
	// "latest". Empty means the workload's own (Workload.Distribution).
	Distribution string
	// Records is the number of records loaded before the run and that
	// reads and updates choose among.
	Records int64
	// ValueSize is the size in bytes of every value written (1 to
	// MaxValueSize).
	ValueSize int
	// Clients is the number of concurrent clients, one connection each.
	Clients int
	// Pipeline is how many operations each client keeps in flight on its
	// connection: it sends a batch of Pipeline operations, then reads
	// their replies (redis-benchmark -P). 0 and 1 mean one at a time; more
	// needs a target whose clients implement Pipeliner. A read-modify-write
	// is two commands of the batch (the read, then the write).
	Pipeline int
	// Duration of the run phase; exactly one of Duration and Operations
	// is set.
	Duration time.Duration
	// Operations is the total number of operations of the run phase,
	// shared by all clients.
	Operations int64
	// NoLoad skips the load phase, which otherwise writes every record
	// once before the run (with the same clients).
	NoLoad bool
	// KeyPrefix is put in front of every key; empty means DefaultKeyPrefix.
	KeyPrefix string
	// Seed makes the sequence of operations and keys of each client
	// reproducible.
	Seed uint64
	// ProgressInterval is how often Run reports progress; 0 means every
	// second.
	ProgressInterval time.Duration
	// Meter, if not nil, reads the cluster's work counters just before and
	// just after the run phase, for Report.Costs.
	Meter Meter
	// InProcess says the cluster runs in this process, so that the
	// process's CPU time is the cluster's (and the clients'): Report.Costs
	// then gives the CPU per operation.
	InProcess bool
}

// DefaultKeyPrefix is the key prefix used when Params.KeyPrefix is empty.
const DefaultKeyPrefix = "user"

// Limits that catch unit mistakes and runaway runs.
const (
	MaxClients = 100_000
	MaxRecords = 1 << 40
	// MaxPipeline bounds Params.Pipeline: deeper pipelines only queue
	// replies in the client's and the server's buffers.
	MaxPipeline = 10_000
)

// DefaultParams returns the parameters of a typical run: workload A,
// zipfian keys, 10,000 records of 256 bytes, 50 clients for 10 seconds, with a
// load phase.
func DefaultParams() Params {
	return Params{
		Workload:     WorkloadA,
		Distribution: DistZipfian,
		Records:      10_000,
		ValueSize:    256,
		Clients:      50,
		Duration:     10 * time.Second,
		Seed:         1,
	}
}

// Validate returns an error describing the first problem with p, if any,
// so that nonsense is refused before any load is sent.
func (p Params) Validate() error {
	if err := p.Workload.Validate(); err != nil {
		return err
	}
	if p.Distribution != "" {
		if _, err := ParseDistribution(p.Distribution); err != nil {
			return err
		}
	}
	switch {
	case p.Clients <= 0:
		return fmt.Errorf("bench: clients must be at least 1, not %d", p.Clients)
	case p.Clients > MaxClients:
		return fmt.Errorf("bench: %d clients is more than the limit of %d", p.Clients, MaxClients)
	case p.Pipeline < 0:
		return fmt.Errorf("bench: pipeline depth must be at least 1, not %d", p.Pipeline)
	case p.Pipeline > MaxPipeline:
		return fmt.Errorf("bench: pipeline depth %d is more than the limit of %d", p.Pipeline, MaxPipeline)
	case p.Records <= 0:
		return fmt.Errorf("bench: records must be at least 1, not %d", p.Records)
	case p.Records > MaxRecords:
		return fmt.Errorf("bench: %d records is more than the limit of %d", p.Records, int64(MaxRecords))
	case p.ValueSize <= 0:
		return fmt.Errorf("bench: value size must be at least 1 byte, not %d", p.ValueSize)
	case p.ValueSize > MaxValueSize:
		return fmt.Errorf("bench: value size %d bytes is larger than the limit of %d (16 MiB)", p.ValueSize, MaxValueSize)
	case p.Duration < 0:
		return fmt.Errorf("bench: negative duration %v", p.Duration)
	case p.Operations < 0:
		return fmt.Errorf("bench: negative operation count %d", p.Operations)
	case p.Duration > 0 && p.Operations > 0:
		return errors.New("bench: give a duration or an operation count, not both")
	case p.Duration == 0 && p.Operations == 0:
		return errors.New("bench: give a duration or an operation count (both are zero)")
	case p.Duration > 0 && p.Duration < time.Millisecond:
		return fmt.Errorf("bench: duration %v is shorter than a millisecond (a unit mistake?)", p.Duration)
	case p.ProgressInterval < 0:
		return fmt.Errorf("bench: negative progress interval %v", p.ProgressInterval)
	case strings.ContainsAny(p.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("bench: key prefix %q contains white space", p.KeyPrefix)
	}
	return nil
}

// distribution returns the effective key distribution.
func (p Params) distribution() string {
	d := p.Distribution
	if d == "" {
		d = p.Workload.Distribution
	}
	if d == "" {
		d = DistZipfian
	}
	d, _ = ParseDistribution(d)
	return d
}

// pipeline returns the effective pipeline depth, at least 1.
func (p Params) pipeline() int { return max(p.Pipeline, 1) }

func (p Params) keyPrefix() string {
	if p.KeyPrefix == "" {
		return DefaultKeyPrefix
	}
	return p.KeyPrefix
}
