package transport

import (
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/herald-ws/herald/third_party/nbio"
)

// rawAcceptor accepts with accept4 on the listening socket and hands the
// engine an *nbio.Conn of its own. Through net.TCPListener every socket
// was registered in Go's netpoller and given TCP_NODELAY, then duplicated
// by the engine (dup), removed from the netpoller and closed: six system
// calls per connection besides the accept and about a tenth of the
// server's CPU under connection churn (issue 13, docs/benchmarks.md
// "Session 6"). It is used only on a listening socket that has
// TCP_NODELAY and the transport's keep-alive (listenConfig), which Linux
// copies to every accepted socket.
type rawAcceptor struct {
	// f is a duplicate of the listening socket, non-blocking and in Go's
	// netpoller (a net.TCPListener's RawConn cannot wait for reading). The
	// socket listens until both it and the listener are closed: close
	// closes it when the listener stops.
	f     *os.File
	rc    syscall.RawConn
	local net.Addr // the listener's address when it names one IP, else nil

	// The result of the last accept4 and the function rc.Read calls,
	// made once: a closure per accept and the variables it set cost
	// three allocations per connection. Only the engine's accept loop
	// calls accept.
	fd     int
	sa     syscall.Sockaddr
	aerr   error
	tryOne func(lfd uintptr) bool
}

// newRawAcceptor returns nil when ln is not a TCP listener whose sockets
// inherit what the transport needs (the caller then uses ln.Accept).
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
		if !inheritsOptions(int(s)) {
			derr = errors.New("listening socket without keep-alive or TCP_NODELAY")
			return
		}
		fd, derr = dupCloexec(int(s))
	}); err != nil || derr != nil {
		return nil
	}
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
	a.tryOne = a.accept4
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		a.local = ta
	}
	return a
}

// dupCloexec duplicates fd, close-on-exec (a restart in place passes the
// listener it means to, not this duplicate).
func dupCloexec(fd int) (int, error) {
	nfd, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(nfd), nil
}

// inheritsOptions reports whether the listening socket fd has TCP_NODELAY
// and keepAlive's settings, which accepted sockets inherit.
func inheritsOptions(fd int) bool { return hasOptions(fd, listenerOptions()) }

// close closes the duplicate and ends a waiting accept.
func (a *rawAcceptor) close() { _ = a.f.Close() }

// accept waits (parked in Go's netpoller) for the next connection.
func (a *rawAcceptor) accept() (net.Conn, error) {
	err := a.rc.Read(a.tryOne)
	fd, sa, aerr := a.fd, a.sa, a.aerr
	a.sa, a.aerr = nil, nil
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", aerr)}
	}
	local := a.local
	if local == nil {
		lsa, err := syscall.Getsockname(fd)
		if err != nil {
			_ = syscall.Close(fd)
			return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("getsockname", err)}
		}
		local = sockaddrTCP(lsa)
	}
	return nbio.NewTCPConn(fd, local, sockaddrTCP(sa)), nil
}

// accept4 accepts one connection on lfd into a.fd, a.sa and a.aerr; it
// returns false to park until the next one (rc.Read's contract).
func (a *rawAcceptor) accept4(lfd uintptr) bool {
	for {
		a.fd, a.sa, a.aerr = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch {
		case a.aerr == nil:
			return true
		case errors.Is(a.aerr, syscall.EINTR), errors.Is(a.aerr, syscall.ECONNABORTED):
			continue // as Go's accept: a connection reset in the backlog
		case errors.Is(a.aerr, syscall.EAGAIN):
			return false // park until the next connection
		default:
			return true
		}
	}
}

// tcpAddr4 is an IPv4 address and its bytes in one allocation.
type tcpAddr4 struct {
	a  net.TCPAddr
	ip [4]byte
}

func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch v := sa.(type) {
	case *syscall.SockaddrInet4:
		t := &tcpAddr4{ip: v.Addr}
		t.a = net.TCPAddr{IP: t.ip[:], Port: v.Port}
		return &t.a
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
