package transport

import (
	"net"
	"syscall"
)

// listenerOptions are the socket options (level, name, value) that the
// transport sets on its listening socket: TCP_NODELAY first, then
// keepAlive's. Linux copies them to every accepted socket.
func listenerOptions() [][3]int {
	ka := keepAlive()
	return [][3]int{
		{syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
		{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(ka.Idle.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(ka.Interval.Seconds())},
		{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, ka.Count},
	}
}

// hasOptions reports whether socket fd has every option of opts set to its
// value (a boolean option only on or off).
func hasOptions(fd int, opts [][3]int) bool {
	for _, o := range opts {
		v, err := syscall.GetsockoptInt(fd, o[0], o[1])
		if err != nil || (v != 0) != (o[2] != 0) || (o[2] > 1 && v != o[2]) {
			return false
		}
	}
	return true
}

// listenConfig sets TCP_NODELAY and TCP keepalive (keepAlive: 30 s idle, 15 s
// interval, 4 probes) on the listening socket, from which Linux copies them
// to every accepted one, instead of per accepted socket (five setsockopt
// calls each, plus three more that the engine's open hook made: about 8 %
// of the server's CPU under connection churn, issue 13). TestTCPKeepalive
// checks an accepted socket.
func listenConfig() net.ListenConfig {
	return net.ListenConfig{
		KeepAlive: -1, // set on the listener below, inherited on accept
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				for _, o := range listenerOptions() {
					if serr = syscall.SetsockoptInt(int(fd), o[0], o[1], o[2]); serr != nil {
						return
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
}

// hasKeepAlive reports whether an accepted socket has keepAlive's settings
// already (inherited from a listening socket made by Listen).
func hasKeepAlive(tc *net.TCPConn) bool {
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) { ok = hasOptions(int(fd), listenerOptions()[1:]) })
	return ok
}
