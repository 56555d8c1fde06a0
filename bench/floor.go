package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/meridian-db/meridian/netsim"
)

// RTTFunc returns the round-trip time between two regions, and false when it
// is unknown. netsim.Matrix's RTT method is one.
type RTTFunc func(a, b string) (time.Duration, bool)

// MatrixRTT returns the round trips of m. A nil matrix (netsim.MatrixFor
// "none": no emulated delay) gives 0 between any two regions.
func MatrixRTT(m netsim.Matrix) RTTFunc {
	if m == nil {
		return func(string, string) (time.Duration, bool) { return 0, true }
	}
	return m.RTT
}

// RTTOf adapts a lookup that knows every pair.
func RTTOf(f func(a, b string) time.Duration) RTTFunc {
	return func(a, b string) (time.Duration, bool) { return f(a, b), true }
}

// SyncWriteFloor returns the network floor of a synchronous write committed
// by a leader in region leader with voters in the given regions (one entry
// per voter; the leader is one of them): the round trip from the leader to
// the nearest majority of voters, the leader counting itself at 0. With
// voters us-east, us-west, eu-west and the leader in us-east that is the
// us-east <-> eu-west round trip. The write's floor adds the fsync time, and
// a client outside the leader's region adds its round trip to the leader.
func SyncWriteFloor(rtt RTTFunc, leader string, voters []string) (time.Duration, error) {
	if rtt == nil {
		return 0, errors.New("bench: no RTT lookup")
	}
	if len(voters) == 0 {
		return 0, errors.New("bench: no voters")
	}
	if !slices.Contains(voters, leader) {
		return 0, fmt.Errorf("bench: leader region %q is not among the voters %v", leader, voters)
	}
	rtts := make([]time.Duration, 0, len(voters))
	self := false
	for _, v := range voters {
		if v == leader && !self {
			self = true // the leader itself: no network
			rtts = append(rtts, 0)
			continue
		}
		d, ok := rtt(leader, v)
		if !ok {
			return 0, fmt.Errorf("bench: no round-trip time between %s and %s", leader, v)
		}
		rtts = append(rtts, d)
	}
	slices.Sort(rtts)
	return rtts[len(voters)/2], nil // the majority-th nearest voter
}

// AsyncLagFloor returns the network floor of asynchronous replication from
// region from to region to: the one-way delay, half the round trip. The lag
// adds the receiver's fsync and the batching interval.
func AsyncLagFloor(rtt RTTFunc, from, to string) (time.Duration, error) {
	if rtt == nil {
		return 0, errors.New("bench: no RTT lookup")
	}
	d, ok := rtt(from, to)
	if !ok {
		return 0, fmt.Errorf("bench: no round-trip time between %s and %s", from, to)
	}
	return d / 2, nil
}

// Floors gathers the network floors of one replication group.
type Floors struct {
	Leader string   `json:"leader"`
	Voters []string `json:"voters"`
	// Quorum is the number of voters that make a majority.
	Quorum int `json:"quorum"`
	// SyncWrite is the network floor of a synchronous write at the leader
	// (SyncWriteFloor), without fsync.
	SyncWrite time.Duration `json:"sync_write_ns"`
	// AsyncLag is the one-way floor from the leader to every other region
	// among the voters (AsyncLagFloor).
	AsyncLag map[string]time.Duration `json:"async_lag_ns"`
}

// ComputeFloors returns the floors of a group led from region leader.
func ComputeFloors(rtt RTTFunc, leader string, voters []string) (Floors, error) {
	sw, err := SyncWriteFloor(rtt, leader, voters)
	if err != nil {
		return Floors{}, err
	}
	f := Floors{Leader: leader, Voters: slices.Clone(voters), Quorum: len(voters)/2 + 1, SyncWrite: sw, AsyncLag: map[string]time.Duration{}}
	for _, v := range voters {
		if v == leader {
			continue
		}
		if f.AsyncLag[v], err = AsyncLagFloor(rtt, leader, v); err != nil {
			return Floors{}, err
		}
	}
	return f, nil
}

// fsyncWriteSize is the size of the record MeasureFsync appends: a small
// log entry.
const fsyncWriteSize = 256

// MeasureFsync appends a small record to a new file in dir and fsyncs it, n
// times, and returns the median time of a write plus its fsync: the f of the
// floors. The file is removed afterwards.
func MeasureFsync(dir string, n int) (time.Duration, error) {
	if n <= 0 {
		return 0, fmt.Errorf("bench: MeasureFsync needs at least one sample, not %d", n)
	}
	f, err := os.CreateTemp(dir, "bench-fsync-*")
	if err != nil {
		return 0, fmt.Errorf("bench: measuring fsync: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// Make the file's own creation durable first so that it does not
	// weigh on the first sample.
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("bench: measuring fsync: %w", err)
	}
	buf := make([]byte, fsyncWriteSize)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	samples := make([]time.Duration, n)
	for i := range samples {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("bench: measuring fsync: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("bench: measuring fsync: %w", err)
		}
		samples[i] = time.Since(t0)
	}
	slices.Sort(samples)
	if n%2 == 1 {
		return samples[n/2], nil
	}
	return (samples[n/2-1] + samples[n/2]) / 2, nil
}

// ConvergeFloor returns the network floor of an active keyspace's
// convergence when every region writes: the largest one-way delay (half
// the round trip) between any two of the regions, and that pair. The
// convergence floor adds the fsync time.
func ConvergeFloor(rtt RTTFunc, regions []string) (oneWay time.Duration, from, to string, err error) {
	if rtt == nil {
		return 0, "", "", errors.New("bench: no RTT lookup")
	}
	if len(regions) < 2 {
		return 0, "", "", fmt.Errorf("bench: convergence needs two regions or more, not %v", regions)
	}
	from, to = regions[0], regions[1]
	for i, a := range regions {
		for _, b := range regions[i+1:] {
			d, ok := rtt(a, b)
			if !ok {
				return 0, "", "", fmt.Errorf("bench: no round-trip time between %s and %s", a, b)
			}
			if d/2 > oneWay {
				oneWay, from, to = d/2, a, b
			}
		}
	}
	return oneWay, from, to, nil
}
