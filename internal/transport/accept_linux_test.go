package transport

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"
)

// newTestListener wraps ln as Start does, past the poller probes.
func newTestListener(ln net.Listener) *listener {
	l := &listener{StoppableListener: NewStoppableListener(ln), raw: newRawAcceptor(ln), gate: make(chan struct{})}
	close(l.gate)
	return l
}

// TestRawAccept: on a listening socket opened by Listen (keep-alive and
// TCP_NODELAY, inherited), the listener accepts with accept4 and hands the
// engine its own socket (*nbio.Conn: no netpoller registration, dup and
// close per connection, which net.TCPListener's Accept costs); on a socket
// without them it keeps the listener's Accept.
func TestRawAccept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen func(network, addr string) (net.Listener, error)
		raw    bool
	}{
		{"transport.Listen", Listen, true},
		{"net.Listen", net.Listen, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tc.listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := newTestListener(ln)
			defer l.Close()
			if (l.raw != nil) != tc.raw {
				t.Fatalf("raw acceptor: %v, want %v", l.raw != nil, tc.raw)
			}
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.(*nbio.Conn); ok != tc.raw {
				t.Fatalf("accepted a %T", c)
			}
			if c.RemoteAddr().String() != cc.LocalAddr().String() || c.LocalAddr().String() != cc.RemoteAddr().String() {
				t.Fatalf("accepted %v -> %v, dialed %v -> %v", c.RemoteAddr(), c.LocalAddr(), cc.LocalAddr(), cc.RemoteAddr())
			}
		})
	}
}

// TestRawAcceptStop: the raw acceptor's duplicate of the listening socket
// does not keep it listening once the listener stops (a restart in place
// hands new connections to the next process; a stopped node refuses them),
// and Accept then waits for Close.
func TestRawAcceptStop(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	l := newTestListener(ln)
	if l.raw == nil {
		t.Fatal("no raw acceptor")
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			_ = c.Close()
		}
		accepted <- err
	}()
	l.Stop()
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("a stopped listener still accepts connections")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want connection refused", err)
	}
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned %v before Close", err)
	default:
	}
	_ = l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// TestRawAcceptAllocs: accepting a connection allocates the socket
// address accept4 returns, the remote address and the *nbio.Conn: 3. A
// closure per accept and the variables it set, and the remote address's
// IP apart from it, made it 8. Both ways of waiting: parked in Go's
// netpoller, and watched by the engine's poller (what Start sets up).
func TestRawAcceptAllocs(t *testing.T) {
	for _, watched := range []bool{false, true} {
		t.Run(map[bool]string{false: "netpoller", true: "watched"}[watched], func(t *testing.T) {
			testRawAcceptAllocs(t, watched)
		})
	}
}

func testRawAcceptAllocs(t *testing.T, watched bool) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newTestListener(ln)
	defer l.Close()
	if l.raw == nil {
		t.Fatal("no raw acceptor")
	}
	if watched {
		l.raw.watch(&fakeWatcher{})
	}
	const rounds, runs = 3, 50
	// Every connection waits in the backlog before the count starts, so
	// that accept never parks and the dials are not counted.
	clients := make([]net.Conn, 0, rounds*(runs+1))
	accepted := make([]net.Conn, 0, rounds*(runs+1))
	defer func() {
		for _, c := range append(clients, accepted...) {
			_ = c.Close()
		}
	}()
	for range rounds * (runs + 1) { // AllocsPerRun runs once more to warm up
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cc)
	}
	var aerr error
	n := minAllocsPerRun(rounds, runs, func() {
		c, err := l.raw.accept()
		if err != nil {
			aerr = err
			return
		}
		accepted = append(accepted, c)
	})
	if aerr != nil {
		t.Fatal(aerr)
	}
	if n > 3 {
		t.Errorf("%.0f allocations per accept, want at most 3", n)
	}
}

// TestAcceptWokenByThePoller: the accept loop waits for the engine's
// poller (blocked in epoll_wait, woken by the kernel at once), not for Go's
// netpoller, which is polled only when a P runs out of work or by sysmon
// (up to 10 ms later under load: issue 13's setup tail). The test takes
// the listening socket's duplicate out of Go's netpoller: a connection is
// still accepted and upgraded. Parked in the netpoller, the accept loop is
// never woken and the upgrade times out.
func TestAcceptWokenByThePoller(t *testing.T) {
	s := startServer(t, Config{}, newFakeSessions())
	if s.ln.raw == nil {
		t.Fatal("no raw acceptor")
	}
	var lfd int
	if err := s.ln.raw.rc.Control(func(fd uintptr) { lfd = int(fd) }); err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, e := range epollEntries(t, lfd) {
		if e.data>>32 == 0xffffffff {
			continue // the engine's poller (nbio's watchPad)
		}
		if err := syscall.EpollCtl(e.epfd, syscall.EPOLL_CTL_DEL, lfd, nil); err != nil {
			t.Fatalf("removing fd %d from epoll %d: %v", lfd, e.epfd, err)
		}
		removed++
	}
	if removed != 1 {
		t.Fatalf("fd %d found in %d epoll sets besides the engine's, want 1 (Go's netpoller)", lfd, removed)
	}
	for range 3 {
		ws := dialWS(t, s.Addr().String(), "/app/key")
		_ = ws.nc.Close()
	}
}

type epollEntry struct {
	epfd int
	data uint64
}

// epollEntries lists the epoll sets of this process that watch fd, with
// the data each registration carries (/proc/self/fdinfo).
func epollEntries(t *testing.T, fd int) []epollEntry {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Skipf("no /proc/self/fdinfo: %v", err)
	}
	var out []epollEntry
	for _, de := range des {
		epfd, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + de.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			// tfd:        9 events:   80002019 data: ffffffff00000009  pos:0 ino:...
			f := strings.Fields(line)
			if len(f) < 6 || f[0] != "tfd:" || f[2] != "events:" || f[4] != "data:" || f[1] != strconv.Itoa(fd) {
				continue
			}
			data, err := strconv.ParseUint(f[5], 16, 64)
			if err != nil {
				t.Fatalf("fdinfo %d: %q: %v", epfd, line, err)
			}
			out = append(out, epollEntry{epfd, data})
		}
	}
	return out
}

// fakeWatcher records the function a rawAcceptor asks it to call.
type fakeWatcher struct {
	fn      func()
	stopped bool
}

func (w *fakeWatcher) WatchReadable(_ int, fn func()) (func() error, error) {
	w.fn = fn
	return func() error { w.stopped = true; return nil }, nil
}

// TestRawAcceptWatched: once watched, accept drains the backlog before it
// waits, takes a connection queued after its EAGAIN on the watcher's
// wake-up, and Close unregisters the socket and releases a waiting accept.
func TestRawAcceptWatched(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newTestListener(ln)
	w := &fakeWatcher{}
	l.raw.watch(w)
	if w.fn == nil {
		t.Fatal("the acceptor did not ask to be watched")
	}
	addr := ln.Addr().String()
	// Queued before the first accept: no wake-up needed.
	for range 2 {
		cc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
	}
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		accepted <- result{c, err}
	}()
	cc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	w.fn() // the poller saw the socket readable
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = r.c.Close()
	go func() {
		c, err := l.Accept()
		accepted <- result{c, err}
	}()
	_ = l.Close()
	if r := <-accepted; !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, %v, want net.ErrClosed", r.c, r.err)
	}
	if !w.stopped {
		t.Fatal("Close left the socket watched")
	}
}
