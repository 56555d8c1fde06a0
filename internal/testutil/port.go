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

// ListenLoopback listens on 127.0.0.1 at a port below the kernel's
// ephemeral range, picked at random.
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
func ListenLoopback() (net.Listener, error) {
	low := ephemeralLow()
	if low-lowestPort < 1000 {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	var lastErr error
	for range 200 {
		port := lowestPort + rand.IntN(low-lowestPort)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free loopback port below %d after 200 tries: %w", low, lastErr)
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
