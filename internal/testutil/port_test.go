package testutil

import (
	"net"
	"testing"
)

// TestListenLoopbackBelowEphemeralRange: every port ListenLoopback gives
// is on loopback, below the kernel's ephemeral range, in the part of it
// asked for (the two parts do not overlap), and free again once its
// listener is closed.
func TestListenLoopbackBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	inLo, inHi := portRange(InProcess, low)
	outLo, outHi := portRange(OtherProcesses, low)
	if inLo < lowestPort || inHi > outLo || outHi > low {
		t.Fatalf("ranges [%d, %d) and [%d, %d) with the ephemeral range from %d", inLo, inHi, outLo, outHi, low)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for i := range 20 {
		which, lo, hi := InProcess, inLo, inHi
		if i%2 == 1 {
			which, lo, hi = OtherProcesses, outLo, outHi
		}
		ln, err := ListenLoopback(which)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		a := ln.Addr().(*net.TCPAddr)
		if !a.IP.IsLoopback() {
			t.Fatalf("listening on %v, want loopback", a)
		}
		if hi-lo >= 500 && (a.Port < lo || a.Port >= hi) {
			t.Fatalf("port %d for %d outside [%d, %d)", a.Port, which, lo, hi)
		}
	}
	// A port freed by closing its listener can be listened on again.
	addr := lns[0].Addr().String()
	lns[0].Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again at %s: %v", addr, err)
	}
	lns[0] = ln
}
