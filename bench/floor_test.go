package bench

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-db/meridian/netsim"
)

func TestSyncWriteFloor(t *testing.T) {
	world := MatrixRTT(netsim.WorldMatrix())
	for _, c := range []struct {
		leader string
		voters []string
		want   time.Duration
	}{
		// BENCHMARKS.md's example.
		{"us-east", []string{"us-east", "us-west", "eu-west"}, 81 * time.Millisecond},
		{"eu-west", []string{"us-east", "eu-west", "ap-southeast"}, 81 * time.Millisecond},
		{"ap-southeast", []string{"us-east", "eu-west", "ap-southeast"}, 217 * time.Millisecond},
		// Five voters: the leader and its two nearest.
		{"us-east", []string{"us-east", "us-west", "eu-west", "ap-southeast", "sa-east"}, 87 * time.Millisecond},
		// Two voters in the leader's region make a majority of three.
		{"us-east", []string{"us-east", "us-east", "ap-southeast"}, 0},
		{"us-east", []string{"us-east"}, 0},
		// Four voters need three.
		{"us-east", []string{"us-east", "us-west", "eu-west", "sa-east"}, 87 * time.Millisecond},
	} {
		got, err := SyncWriteFloor(world, c.leader, c.voters)
		if err != nil || got != c.want {
			t.Errorf("SyncWriteFloor(%s, %v) = %v, %v; want %v", c.leader, c.voters, got, err, c.want)
		}
	}
	none, _ := netsim.MatrixFor("none")
	if got, err := SyncWriteFloor(MatrixRTT(none), "a", []string{"a", "b", "c"}); err != nil || got != 0 {
		t.Errorf("no emulated delay: %v %v", got, err)
	}
	fixed := RTTOf(func(a, b string) time.Duration { return 10 * time.Millisecond })
	if got, _ := SyncWriteFloor(fixed, "a", []string{"a", "b", "c"}); got != 10*time.Millisecond {
		t.Errorf("fixed RTT: %v", got)
	}
	for _, c := range []struct {
		rtt    RTTFunc
		leader string
		voters []string
		msg    string
	}{
		{world, "us-east", nil, "no voters"},
		{world, "mars", []string{"us-east", "eu-west"}, "not among the voters"},
		{world, "us-east", []string{"us-east", "mars", "eu-west"}, "no round-trip time between us-east and mars"},
		{nil, "a", []string{"a"}, "no RTT lookup"},
	} {
		if _, err := SyncWriteFloor(c.rtt, c.leader, c.voters); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("SyncWriteFloor(%s, %v): error %v, want %q", c.leader, c.voters, err, c.msg)
		}
	}
}

func TestAsyncLagFloorAndComputeFloors(t *testing.T) {
	world := MatrixRTT(netsim.WorldMatrix())
	if got, err := AsyncLagFloor(world, "us-east", "eu-west"); err != nil || got != 40500*time.Microsecond {
		t.Errorf("us-east -> eu-west: %v %v, want 40.5ms", got, err)
	}
	if _, err := AsyncLagFloor(world, "us-east", "moon"); err == nil {
		t.Error("unknown region accepted")
	}
	f, err := ComputeFloors(world, "us-east", []string{"us-east", "us-west", "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Quorum != 2 || f.SyncWrite != 81*time.Millisecond || len(f.AsyncLag) != 2 ||
		f.AsyncLag["us-west"] != 43500*time.Microsecond || f.AsyncLag["eu-west"] != 40500*time.Microsecond {
		t.Errorf("floors %+v", f)
	}
}

func TestMeasureFsync(t *testing.T) {
	dir := t.TempDir()
	d, err := MeasureFsync(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Fatalf("fsync took %v", d)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("left files behind: %v", left)
	}
	if _, err := MeasureFsync(dir, 0); err == nil {
		t.Error("zero samples accepted")
	}
	if _, err := MeasureFsync(filepath.Join(dir, "missing"), 3); err == nil {
		t.Error("missing directory accepted")
	}
}
