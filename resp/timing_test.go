package resp

import (
	"net"
	"testing"
	"time"

	"github.com/meridian-db/meridian/metrics"
)

// TestPipelinedCommandTimedFromTheOneBefore: a command that was already in
// the reader's buffer when the command before it ended is timed from that
// end (it waited behind it, and one clock read serves both); once the
// connection has been read again, from a clock read of its own.
func TestPipelinedCommandTimedFromTheOneBefore(t *testing.T) {
	// A server for its configuration and backend; the connection below
	// is driven by the test itself, not by the server.
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(sl, newFakeBackend(), Config{DefaultKeyspace: "default", Metrics: metrics.NewRegistry()})
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := newClient(s, conn)
	if _, err := peer.Write([]byte(multibulk("PING") + multibulk("PING"))); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		args, err := c.r.readCommand()
		if err != nil {
			t.Fatal(err)
		}
		c.exec(args)
	}
	run()
	first, reads := c.ended, c.r.reads()
	if first == 0 || reads == 0 {
		t.Fatalf("the first command's end %v, %d reads: not recorded", first, reads)
	}
	if !c.r.buffered() {
		t.Fatal("the second PING is not in the buffer") // one write of 28 bytes, one read
	}
	if got := c.commandStart(); got != first {
		t.Fatalf("the buffered command starts at %v, want the first's end %v", got, first)
	}
	run()
	if got := time.Duration(c.lastAt.Load()); got != first {
		t.Fatalf("the second command ran from %v, want the first's end %v", got, first)
	}
	if c.r.reads() != reads {
		t.Fatalf("%d reads after the second command, was %d", c.r.reads(), reads)
	}
	// A read that finds nothing still counts: the next command is timed
	// afresh.
	_ = conn.SetReadDeadline(time.Now())
	if err := c.r.fill(); err == nil {
		t.Fatal("a read past its deadline succeeded")
	}
	if c.r.reads() == reads {
		t.Fatal("the read was not counted")
	}
	if got := c.commandStart(); got <= c.ended {
		t.Fatalf("after a read the next command starts at %v, not after the last end %v", got, c.ended)
	}
}
