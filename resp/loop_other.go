//go:build !linux

package resp

import "net"

// The event loop needs epoll (loop_linux.go); elsewhere every connection
// has its goroutine.

type eventLoop struct{}

func newEventLoop(*Server) *eventLoop { return nil }

func (*eventLoop) take(conn net.Conn) (net.Conn, bool) { return conn, false }
func (*eventLoop) adopt(*client)                       {}
func (*eventLoop) stop()                               {}
