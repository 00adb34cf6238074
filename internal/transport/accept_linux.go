package transport

import (
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/lesismal/nbio"
)

// rawAcceptor accepts with accept4 on the listening socket and hands the
// engine an *nbio.Conn of its own. Through net.TCPListener each new socket
// was registered in Go's netpoller, given TCP_NODELAY and keepalive
// (five setsockopt calls), then duplicated by the engine, removed from the
// netpoller and closed: about a fifth of the server's CPU under connection
// churn (issue 13). TCP_NODELAY and keepalive are set once on the
// listener and inherited (listenConfig).
type rawAcceptor struct {
	// f is a duplicate of the listening socket, non-blocking and in Go's
	// netpoller: a net.TCPListener's RawConn cannot wait for reading.
	f     *os.File
	rc    syscall.RawConn
	local net.Addr // the listener's address when it names one IP, else nil
}

func newRawAcceptor(ln net.Listener) *rawAcceptor {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	lrc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	fd, derr := -1, error(nil)
	if err := lrc.Control(func(s uintptr) {
		fd, derr = syscall.Dup(int(s))
	}); err != nil || derr != nil {
		return nil
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "listener")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil
	}
	a := &rawAcceptor{f: f, rc: rc}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		a.local = ta
	}
	return a
}

// close closes the duplicate (the socket stops listening once the
// listener is closed too) and ends a waiting accept.
func (a *rawAcceptor) close() { _ = a.f.Close() }

// accept waits (parked in Go's netpoller) for the next connection.
func (a *rawAcceptor) accept() (net.Conn, error) {
	var fd int
	var sa syscall.Sockaddr
	var aerr error
	err := a.rc.Read(func(lfd uintptr) bool {
		for {
			fd, sa, aerr = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch {
			case aerr == nil:
				return true
			case errors.Is(aerr, syscall.EINTR), errors.Is(aerr, syscall.ECONNABORTED):
				continue // as Go's accept: a connection reset in the backlog
			case errors.Is(aerr, syscall.EAGAIN):
				return false // park until the next connection
			default:
				return true
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: aerr}
	}
	local := a.local
	if local == nil {
		if lsa, err := syscall.Getsockname(fd); err == nil {
			local = sockaddrTCP(lsa)
		}
	}
	return nbio.NewTCPConn(fd, local, sockaddrTCP(sa)), nil
}

func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch v := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), v.Addr[:]...), Port: v.Port}
	case *syscall.SockaddrInet6:
		a := &net.TCPAddr{IP: append(net.IP(nil), v.Addr[:]...), Port: v.Port}
		if v.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(v.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	}
	return &net.TCPAddr{}
}
