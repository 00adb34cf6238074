package loadtest

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSourcePoolDialsWithoutKeepAlive: the tool's sockets skip TCP
// keep-alive (four setsockopt calls per connection of the tool's CPU).
func TestSourcePoolDialsWithoutKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := newSourcePool(nil, false, 5*time.Second)
	c, err := p.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var gerr error
	_ = rc.Control(func(fd uintptr) { on, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	if on != 0 {
		t.Fatal("the tool's socket has TCP keep-alive on")
	}
}
