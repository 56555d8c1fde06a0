package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lowestPort is the lowest port ListenLoopback picks: below it are the
// well-known ports and those that services on a developer's machine
// tend to be configured with.
const lowestPort = 10000

// Ports says which part of the ports ListenLoopback picks from serves a
// listener. The ports below the kernel's ephemeral range are split in
// two, so that a process a test has stopped (the e2e suite kills its
// nodes for seconds at a time) cannot lose its port to an in-process
// test cluster of another package running beside it, nor the reverse.
type Ports int

const (
	// InProcess: servers run by the test's own process.
	InProcess Ports = iota
	// OtherProcesses: servers that run as processes the test starts.
	OtherProcesses
)

// ListenLoopback listens on 127.0.0.1 at a port below the kernel's
// ephemeral range, picked at random in the part of those ports that
// which names.
//
// A test that stops a server and starts it again at the same address
// needs the port to stay free in between. A port from the ephemeral range
// (what ":0" gives) does not: the kernel hands it to the next outgoing
// connection that needs a local port, and such a connection (a peer's
// redial, a test's HTTP poll) may hold it for as long as it lives, so the
// restart fails with "address already in use". The kernel never picks a
// port below the range for an outgoing connection, so one freed there
// stays free until a listener takes it.
//
// Where the range starts too low to leave room below it, it falls back
// to ":0".
func ListenLoopback(which Ports) (net.Listener, error) {
	lo, hi := portRange(which, ephemeralLow())
	if hi-lo < 500 {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	var lastErr error
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free loopback port in [%d, %d) after 200 tries: %w", lo, hi, lastErr)
}

// portRange returns the ports [lo, hi) that ListenLoopback picks from
// for which, given the ephemeral range's first port.
func portRange(which Ports, ephemeral int) (lo, hi int) {
	mid := lowestPort + (ephemeral-lowestPort)/2
	if which == OtherProcesses {
		return mid, ephemeral
	}
	return lowestPort, mid
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (Linux's net.ipv4.ip_local_port_range), or 32768, its usual start, when
// the range cannot be read.
func ephemeralLow() int {
	const usual = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return usual
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return usual
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return usual
	}
	return n
}
