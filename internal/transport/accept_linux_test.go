package transport

import (
	"errors"
	"net"
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
// IP apart from it, made it 8.
func TestRawAcceptAllocs(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newTestListener(ln)
	defer l.Close()
	if l.raw == nil {
		t.Fatal("no raw acceptor")
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
