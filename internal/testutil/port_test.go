package testutil

import (
	"net"
	"testing"
)

// TestListenLoopbackBelowEphemeralRange: every port ListenLoopback gives
// is on loopback and below the kernel's ephemeral range, and is free
// again once its listener is closed.
func TestListenLoopbackBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range 20 {
		ln, err := ListenLoopback()
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		a := ln.Addr().(*net.TCPAddr)
		if !a.IP.IsLoopback() {
			t.Fatalf("listening on %v, want loopback", a)
		}
		if low-lowestPort >= 1000 && (a.Port < lowestPort || a.Port >= low) {
			t.Fatalf("port %d outside [%d, %d)", a.Port, lowestPort, low)
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
