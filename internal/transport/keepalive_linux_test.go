//go:build linux

package transport

import (
	"syscall"
	"testing"
)

// TestTCPKeepalive: accepted sockets have TCP keepalive on, so a peer that
// vanished without a FIN (half-open) is found by the kernel even when the
// activity timeout is long.
func TestTCPKeepalive(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{}, fs)
	_, sess := openSession(t, s, fs)
	raw := rawConn(sess.conn.(*wsConn).nc)
	if raw == nil {
		t.Fatal("no engine socket")
	}
	rc, err := raw.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle int
	var gerr error
	_ = rc.Control(func(fd uintptr) {
		on, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if gerr == nil {
			idle, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		}
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	if on == 0 || idle <= 0 || idle > 60 {
		t.Fatalf("SO_KEEPALIVE=%d TCP_KEEPIDLE=%ds", on, idle)
	}
}
