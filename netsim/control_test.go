package netsim

import (
	"errors"
	"testing"
	"time"
)

// faultCases are the partition cases of TestPartitions expressed as Faults,
// as the run-time control receives them.
var faultCases = []struct {
	name   string
	faults []string
	cut    func(from, to uint64) bool
}{
	{"block", []string{`{"op":"block","from":1,"to":2}`}, func(from, to uint64) bool { return from == 1 && to == 2 }},
	{"block then unblock", []string{`{"op":"block","from":1,"to":2}`, `{"op":"block","from":3,"to":4}`, `{"op":"unblock","from":1,"to":2}`},
		func(from, to uint64) bool { return from == 3 && to == 4 }},
	{"isolate", []string{`{"op":"isolate","node":3}`}, func(from, to uint64) bool { return from == 3 || to == 3 }},
	{"cut region", []string{`{"op":"cut_region","region":"eu-west"}`}, across([]uint64{3, 4}, []uint64{1, 2, 5, 6})},
	{"split", []string{`{"op":"split","a":[1,2,3],"b":[4,5]}`}, across([]uint64{1, 2, 3}, []uint64{4, 5})},
	{"bridge", []string{`{"op":"bridge","a":[1,2,3],"b":[3,4,5],"bridge":3}`}, across([]uint64{1, 2}, []uint64{4, 5})},
	{"ring", []string{`{"op":"ring","ids":[1,2,3,4,5]}`}, func(from, to uint64) bool {
		neighbours := map[uint64][]uint64{1: {2, 5}, 2: {1, 3}, 3: {2, 4}, 4: {3, 5}, 5: {4, 1}}
		return from <= 5 && to <= 5 && !in(neighbours[from], to)
	}},
}

func TestApplyFaults(t *testing.T) {
	for _, tc := range faultCases {
		t.Run(tc.name, func(t *testing.T) {
			n := mustNew(t, Config{IntraRegionRTT: 2 * time.Millisecond})
			for id, r := range partitionRegions {
				n.AddNode(id, r)
			}
			for _, js := range tc.faults {
				f, err := ParseFault([]byte(js))
				if err != nil {
					t.Fatalf("ParseFault(%s): %v", js, err)
				}
				if err := n.Apply(f); err != nil {
					t.Fatalf("Apply(%s): %v", js, err)
				}
			}
			checkPartition(t, n, tc.cut)
			if st := n.State(); !st.Emulated || len(st.Cut)+len(st.Isolated)+len(st.CutRegions) == 0 {
				t.Fatalf("State after %v shows no cut: %+v", tc.faults, st)
			}
			if err := n.Apply(Fault{Op: "heal"}); err != nil {
				t.Fatal(err)
			}
			checkPartition(t, n, func(uint64, uint64) bool { return false })
		})
	}
}

func TestApplyLossRTTAndReset(t *testing.T) {
	n := mustNew(t, Config{Matrix: Matrix{"us-east": {"eu-west": 20 * time.Millisecond}}})
	n.AddNode(1, "us-east")
	n.AddNode(2, "eu-west")
	n.AddNode(3, "us-east")
	for _, f := range []Fault{
		{Op: "rtt", Regions: []string{"eu-west", "us-east"}, MS: 300},
		{Op: "loss", Rate: 0.999, Regions: []string{"us-east", "eu-west"}},
		{Op: "jitter", MS: 3},
		{Op: "isolate", Node: 3},
	} {
		if err := n.Apply(f); err != nil {
			t.Fatalf("Apply(%+v): %v", f, err)
		}
	}
	if got := n.OneWay(1, 2); got != 150*time.Millisecond {
		t.Fatalf("one way after rtt fault = %v, want 150ms", got)
	}
	lost := 0
	for range 200 {
		if !n.Reachable(1, 2) {
			t.Fatal("loss must not look like a cut")
		}
		n.mu.Lock()
		if n.lostLocked(1, 2) {
			lost++
		}
		n.mu.Unlock()
	}
	if lost < 190 {
		t.Fatalf("pair loss 0.999: only %d of 200 lost", lost)
	}
	st := n.State()
	if st.PairLoss["eu-west<->us-east"] != 0.999 || st.JitterMS != 3 || st.RTTMS["eu-west<->us-east"] != 300 || len(st.Isolated) != 1 {
		t.Fatalf("state: %+v", st)
	}
	if err := n.Apply(Fault{Op: "reset"}); err != nil {
		t.Fatal(err)
	}
	st = n.State()
	if len(st.PairLoss) != 0 || st.JitterMS != 0 || st.RTTMS["eu-west<->us-east"] != 20 || len(st.Isolated) != 0 || !n.Reachable(3, 1) {
		t.Fatalf("state after reset: %+v", st)
	}
}

func TestBadFaults(t *testing.T) {
	for _, js := range []string{
		`{}`, `{"op":"flood"}`, `{"op":"isolate"}`, `{"op":"split","a":[1]}`, `{"op":"bridge","a":[1],"b":[2]}`,
		`{"op":"ring","ids":[1,2]}`, `{"op":"block","from":1,"to":1}`, `{"op":"loss","rate":1}`, `{"op":"loss","rate":-0.5}`,
		`{"op":"loss","rate":0.1,"regions":["a"]}`, `{"op":"rtt","regions":["a","a"],"ms":3}`, `{"op":"rtt","regions":["a","b"],"ms":-1}`,
		`{"op":"heal","extra":1}`, `{"op":"heal"} {"op":"heal"}`, `not json`,
	} {
		if _, err := ParseFault([]byte(js)); !errors.Is(err, ErrBadFault) {
			t.Errorf("ParseFault(%s) = %v, want ErrBadFault", js, err)
		}
	}
	if err := Identity().Apply(Fault{Op: "heal"}); !errors.Is(err, ErrBadFault) {
		t.Fatalf("identity network took a fault: %v", err)
	}
}

func FuzzParseFault(f *testing.F) {
	for _, tc := range faultCases {
		for _, js := range tc.faults {
			f.Add([]byte(js))
		}
	}
	f.Add([]byte(`{"op":"loss","rate":0.5,"regions":["a","b"]}`))
	f.Add([]byte(`{"op":"rtt","regions":["a","b"],"ms":120}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fault, err := ParseFault(data)
		if err != nil {
			return
		}
		n, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		n.AddNode(1, "a")
		n.AddNode(2, "b")
		if err := n.Apply(fault); err != nil {
			t.Fatalf("a parsed fault %+v was not applied: %v", fault, err)
		}
		_ = n.State()
	})
}
