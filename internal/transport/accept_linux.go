package transport

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
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

	// Once watched (watch), accept waits for ready instead of Go's
	// netpoller: the engine's poller, blocked in epoll_wait, is woken by
	// the kernel at once and signals ready, where a goroutine parked in
	// the netpoller waited until a P ran out of work or sysmon polled the
	// network (up to 10 ms) while the flushers and workers kept both Ps
	// busy: at a 2,000/s connect ramp about 1 connection in 60 was
	// accepted more than 4 ms after its upgrade request had arrived, 1 in
	// 600 with the poller's wake-up (docs/benchmarks.md, "Session 7: tail").
	watching atomic.Bool
	ready    chan struct{} // a token per wake-up, at most one waiting
	done     chan struct{} // closed by close
	mu       sync.Mutex
	unwatch  func() error // set by watch, taken by close
	closed   bool

	// The result of the last accept4 and the function rc.Read calls,
	// made once: a closure per accept and the variables it set cost
	// three allocations per connection. Only the engine's accept loop
	// calls accept. tryWatched is tryOne for rc.Control (watched).
	fd         int
	sa         syscall.Sockaddr
	aerr       error
	tryOne     func(lfd uintptr) bool
	tryWatched func(lfd uintptr)
	got        bool // tryWatched's result
}

// readinessWatcher is the engine's WatchReadable (nbio's pollers, Linux).
type readinessWatcher interface {
	WatchReadable(fd int, fn func()) (stop func() error, err error)
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
	a := &rawAcceptor{f: f, rc: rc, ready: make(chan struct{}, 1), done: make(chan struct{})}
	a.tryOne = a.accept4
	a.tryWatched = func(lfd uintptr) { a.got = a.accept4(lfd) }
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

// watch makes accept wait for w's wake-ups (the engine's poller) instead
// of Go's netpoller; it keeps the netpoller when w cannot watch the socket.
// Called before the first accept.
func (a *rawAcceptor) watch(w readinessWatcher) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	var stop func() error
	var werr error
	if err := a.rc.Control(func(fd uintptr) { stop, werr = w.WatchReadable(int(fd), a.wake) }); err != nil || werr != nil {
		return
	}
	a.unwatch = stop
	a.watching.Store(true)
}

// wake runs on the poller's goroutine: it must not block.
func (a *rawAcceptor) wake() {
	select {
	case a.ready <- struct{}{}:
	default: // a token is already waiting
	}
}

// close closes the duplicate and ends a waiting accept.
func (a *rawAcceptor) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	if a.unwatch != nil {
		_ = a.unwatch() // before the close: the fd must not be reused while registered
	}
	close(a.done)
	_ = a.f.Close()
}

// accept waits for the next connection: for the engine's poller's wake-up
// once watched, else parked in Go's netpoller.
func (a *rawAcceptor) accept() (net.Conn, error) {
	if !a.watching.Load() {
		if err := a.rc.Read(a.tryOne); err != nil {
			a.sa, a.aerr = nil, nil
			return nil, err
		}
	} else {
		// The socket is edge-triggered in the poller's epoll: every
		// connection queued after an EAGAIN sends a wake-up, so draining
		// to EAGAIN before each wait loses none.
		for {
			if err := a.rc.Control(a.tryWatched); err != nil {
				a.sa, a.aerr = nil, nil
				return nil, err
			}
			if a.got {
				break
			}
			select {
			case <-a.ready:
			case <-a.done:
				a.sa, a.aerr = nil, nil
				return nil, net.ErrClosed
			}
		}
	}
	fd, sa, aerr := a.fd, a.sa, a.aerr
	a.sa, a.aerr = nil, nil
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
