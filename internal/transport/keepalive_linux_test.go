//go:build linux

package transport

import (
	"net"
	"syscall"
	"testing"
)

// TestTCPKeepalive: accepted sockets have TCP keepalive on, so a peer that
// vanished without a FIN (half-open) is found by the kernel even when the
// activity timeout is long.
func TestTCPKeepalive(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{}, fs)
	checkKeepAlive(t, s, fs)
}

// TestTCPKeepaliveFromListen: with a listener handed in (Config.Listen, as
// a restart in place does), accepted sockets get the transport's
// keep-alive either way: set per socket when the listener's Accept gives
// Go's defaults (net.Listen, a listener inherited through a file), and
// without a system call per socket when it was opened by Listen (the
// first socket shows it, and the listener stops setting it).
func TestTCPKeepaliveFromListen(t *testing.T) {
	for _, tc := range []struct {
		name    string
		listen  func(network, addr string) (net.Listener, error)
		perConn bool
	}{
		{"net.Listen", net.Listen, true},
		{"transport.Listen", Listen, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeSessions()
			s := startServer(t, Config{Listen: tc.listen}, fs)
			for range 2 { // the first socket is looked at, the second not
				checkKeepAlive(t, s, fs)
			}
			s.mu.Lock()
			per := s.ln.setKeepAlive
			s.mu.Unlock()
			if per != tc.perConn {
				t.Errorf("keep-alive set per connection: %v, want %v", per, tc.perConn)
			}
		})
	}
}

// checkKeepAlive opens a session and checks its socket's keep-alive
// against keepAlive().
func checkKeepAlive(t *testing.T, s *Server, fs *fakeSessions) {
	t.Helper()
	_, sess := openSession(t, s, fs)
	raw := rawConn(sess.conn.(*wsConn).nc)
	if raw == nil {
		t.Fatal("no engine socket")
	}
	rc, err := raw.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle, intvl, cnt, nodelay int
	var gerr error
	_ = rc.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			v, err := syscall.GetsockoptInt(int(fd), level, opt)
			if gerr == nil {
				gerr = err
			}
			return v
		}
		on = get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		idle = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		intvl = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
		cnt = get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT)
		nodelay = get(syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	ka := keepAlive()
	if on == 0 || idle != int(ka.Idle.Seconds()) || intvl != int(ka.Interval.Seconds()) || cnt != ka.Count {
		t.Fatalf("SO_KEEPALIVE=%d TCP_KEEPIDLE=%ds TCP_KEEPINTVL=%ds TCP_KEEPCNT=%d, want on, %v, %v, %d",
			on, idle, intvl, cnt, ka.Idle, ka.Interval, ka.Count)
	}
	// Small frames must not wait for Nagle's algorithm (inherited from the
	// listener when the raw acceptor accepted it).
	if nodelay == 0 {
		t.Fatal("TCP_NODELAY is off on an accepted socket")
	}
}
