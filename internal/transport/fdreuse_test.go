//go:build linux

package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"
	"golang.org/x/sys/unix"
)

// TestStaleEpollEventSparesReusedFd drives the engine's poller into the
// interleaving behind the churn closes, deterministically: one epoll batch
// holds an event for socket Q, then the FIN of socket A. While the poller
// handles Q, A is closed (as a worker goroutine closes a socket after a
// close frame or a Connection: close response) and a new socket B is added
// and gets A's fd number. The poller then reaches A's event: it must not
// act on B. nbio v1.6.8 looked the event up by fd alone and closed B with
// io.EOF; the patched engine (third_party/nbio) drops an event whose
// registration generation is not that of the socket now at the fd.
func TestStaleEpollEventSparesReusedFd(t *testing.T) {
	// Each round that lines up fails on the unpatched engine unless the
	// kernel queued A's FIN to the poller a moment too late (a few rounds
	// in a hundred); several rounds make the test fail reliably there.
	const rounds, maxTries = 5, 50
	lined := 0
	for range maxTries {
		if staleEventAttempt(t) {
			lined++
			if lined == rounds {
				return
			}
		}
	}
	t.Fatalf("the interleaving lined up %d times in %d tries, want %d", lined, maxTries, rounds)
}

// staleEventAttempt runs the scenario once. It reports false when the
// interleaving did not happen (A's event handled before Q's, or B not given
// A's fd), and fails the test when B was closed.
func staleEventAttempt(t *testing.T) bool {
	t.Helper()
	setNbioLogger(slog.New(slog.DiscardHandler))
	var ln net.Listener
	g := nbio.NewEngine(nbio.Config{
		Network: "tcp",
		Addrs:   []string{"127.0.0.1:0"},
		NPoller: 1,
		Listen: func(network, addr string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			ln = l
			return l, err
		},
	})

	type event struct {
		c    *nbio.Conn
		data string
		err  error
	}
	var (
		mu      sync.Mutex
		byAddr  = map[string]*nbio.Conn{} // server conns by the client's address
		opened  = make(chan struct{}, 16)
		datas   = make(chan event, 16)
		closes  = make(chan event, 16)
		inGo    func(c *nbio.Conn) // run on the poller when Q sends "go"
		release = make(chan struct{})
		blocked = make(chan struct{})
		// done ends every callback's wait when the test returns, so that
		// the engine can stop even after a failure left one waiting.
		done = make(chan struct{})
	)
	g.OnOpen(func(c *nbio.Conn) {
		mu.Lock()
		byAddr[c.RemoteAddr().String()] = c
		mu.Unlock()
		select {
		case opened <- struct{}{}:
		case <-done:
		}
	})
	g.OnData(func(c *nbio.Conn, data []byte) {
		switch string(data) {
		case "block":
			close(blocked)
			select {
			case <-release:
			case <-done:
			}
		case "go":
			mu.Lock()
			f := inGo
			mu.Unlock()
			f(c)
		}
		select {
		case datas <- event{c: c, data: string(data)}:
		case <-done:
		}
	})
	var aClosed atomic.Bool // A closed by the engine already (its event came first)
	var as *nbio.Conn
	g.OnClose(func(c *nbio.Conn, err error) {
		mu.Lock()
		if c == as {
			aClosed.Store(true)
		}
		mu.Unlock()
		select {
		case closes <- event{c: c, err: err}:
		case <-done:
		}
	})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer stopWithin(t, g)
	defer close(done) // before Stop (deferred calls run last first)
	addr := ln.Addr().String()

	dial := func() (net.Conn, *nbio.Conn) {
		t.Helper()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		select {
		case <-opened:
		case <-time.After(5 * time.Second):
			t.Fatal("no OnOpen")
		}
		mu.Lock()
		sc := byAddr[nc.LocalAddr().String()]
		mu.Unlock()
		if sc == nil {
			t.Fatal("server conn not found")
		}
		// OnOpen runs before the engine registers the socket: wait until
		// it is registered (its data is read), or A could still be on its
		// way into the table when it is closed below, and the round would
		// not hold the stale event it is meant to.
		if _, err := nc.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-datas:
				if e.c == sc && e.data == "hello" {
					return nc, sc
				}
			case <-deadline:
				t.Fatal("the engine never read the new socket")
			}
		}
	}
	qc, qs := dial()
	ac, a := dial()
	mu.Lock()
	as = a
	mu.Unlock()

	// B is a connected socket not yet known to the engine: accepted by a
	// plain listener now, added to the engine from the poller later.
	side, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	bc, err := net.Dial("tcp", side.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	bsGo, err := side.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer bsGo.Close()

	var bs *nbio.Conn
	var lined bool
	inGo = func(*nbio.Conn) {
		aFd := as.Hash()
		// Fill every free fd below A's, so that A's fd is the lowest free
		// one once A is closed and the engine's dup of B takes it.
		var fillers []int
		for {
			fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				break
			}
			if fd > aFd {
				_ = syscall.Close(fd)
				break
			}
			fillers = append(fillers, fd)
		}
		defer func() {
			for _, fd := range fillers {
				_ = syscall.Close(fd)
			}
		}()
		wasClosed := aClosed.Load()
		_ = as.Close() // as a worker goroutine would, here between the batch's events
		c, err := g.AddConn(bsGo)
		if err != nil {
			t.Errorf("AddConn: %v", err)
			return
		}
		bs = c
		lined = !wasClosed && c.Hash() == aFd
	}

	// Block the poller in Q's handler, make Q then A ready in that order,
	// and let the poller go: its next batch is [Q, A].
	if _, err := qc.Write([]byte("block")); err != nil {
		t.Fatal(err)
	}
	<-blocked
	if _, err := qc.Write([]byte("go")); err != nil {
		t.Fatal(err)
	}
	if err := ac.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Both must be pending on the server sockets before the poller goes on.
	waitPending(t, qs.Hash(), unix.POLLIN)
	waitPending(t, as.Hash(), unix.POLLRDHUP)
	close(release)

	// Wait for Q's two messages and A's close.
	waitEvent := func(ch chan event, what string, match func(event) bool) event {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e := <-ch:
				if match(e) {
					return e
				}
			case <-deadline:
				t.Fatalf("timeout waiting for %s", what)
			}
		}
	}
	waitEvent(datas, "go", func(e event) bool { return e.c == qs && e.data == "go" })
	if bs == nil {
		t.Fatal("B was not added")
	}
	if !lined {
		return false
	}
	waitEvent(closes, "A's close", func(e event) bool { return e.c == as })

	// B must be alive: a byte from its client reaches OnData, and B is not
	// closed.
	if _, err := bc.Write([]byte("ping")); err != nil {
		t.Fatalf("B's client write: %v", err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-datas:
			if e.c == bs && e.data == "ping" {
				return true
			}
		case e := <-closes:
			if e.c == bs {
				if errors.Is(e.err, io.EOF) {
					t.Fatalf("B (fd %d, A's old fd) was closed by A's stale epoll event: %v", bs.Hash(), e.err)
				}
				t.Fatalf("B was closed: %v", e.err)
			}
		case <-deadline:
			t.Fatal("B neither read nor closed")
		}
	}
}

// waitPending waits until fd reports events (poll(2) only looks).
func waitPending(t *testing.T, fd int, events int16) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, 10)
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll fd %d: %v", fd, err)
		}
		if n > 0 && pfd[0].Revents&events != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fd %d: events %#x never pending", fd, events)
		}
	}
}

// stopWithin stops g, failing the test if Stop does not return: it waits
// for every connection the engine opened to close, so a connection left
// out of the engine's table hangs it.
func stopWithin(t *testing.T, g *nbio.Engine) {
	t.Helper()
	stopped := make(chan struct{})
	go func() {
		g.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Error("Engine.Stop hung: a connection the engine opened is out of its table")
	}
}

// TestCloseBeforeRegistrationSparesReusedFd: nbio calls OnOpen on the
// accepting goroutine before it puts the socket in its table and registers
// it with epoll. A socket A closed in that window (here by OnOpen itself,
// in production by anything OnOpen started) frees its fd before it holds
// its slot; a new socket B is added and gets the fd; A's registration then
// comes. nbio v1.6.8 overwrote B's slot with A, failed to register the fd
// (it names B's socket, already registered: EEXIST) and emptied the slot:
// B's events were dropped for ever and Stop waited for B for ever (the
// hang of TestStaleEpollEventSparesReusedFd under -count=500). The patched
// engine does not register a socket closed before its registration.
func TestCloseBeforeRegistrationSparesReusedFd(t *testing.T) {
	const rounds, maxTries = 3, 30
	lined := 0
	for range maxTries {
		if closeBeforeRegistrationAttempt(t) {
			lined++
			if lined == rounds {
				return
			}
		}
		if t.Failed() {
			return
		}
	}
	t.Fatalf("the interleaving lined up %d times in %d tries, want %d", lined, maxTries, rounds)
}

func closeBeforeRegistrationAttempt(t *testing.T) bool {
	t.Helper()
	setNbioLogger(slog.New(slog.DiscardHandler))
	var ln net.Listener
	g := nbio.NewEngine(nbio.Config{
		Network: "tcp",
		Addrs:   []string{"127.0.0.1:0"},
		NPoller: 1,
		Listen: func(network, addr string) (net.Listener, error) {
			l, err := net.Listen(network, addr)
			ln = l
			return l, err
		},
	})
	side, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	bc, err := net.Dial("tcp", side.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	bsGo, err := side.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer bsGo.Close()

	var (
		mu      sync.Mutex
		bs      *nbio.Conn
		lined   bool
		opened  = make(chan struct{})
		pinged  = make(chan struct{})
		aFd     int
		handled bool
	)
	g.OnOpen(func(c *nbio.Conn) {
		mu.Lock()
		if handled { // B, added below from this very callback
			mu.Unlock()
			return
		}
		handled = true
		mu.Unlock()
		// A: fill every free fd below its own so that, once A is closed,
		// B's dup takes A's fd; close A before the engine registers it;
		// add B.
		aFd = c.Hash()
		var fillers []int
		for {
			fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				break
			}
			if fd > aFd {
				_ = syscall.Close(fd)
				break
			}
			fillers = append(fillers, fd)
		}
		_ = c.Close()
		b, err := g.AddConn(bsGo)
		for _, fd := range fillers {
			_ = syscall.Close(fd)
		}
		mu.Lock()
		if err == nil {
			bs, lined = b, b.Hash() == aFd
		}
		mu.Unlock()
		close(opened)
	})
	g.OnData(func(c *nbio.Conn, data []byte) {
		mu.Lock()
		isB := c == bs
		mu.Unlock()
		if isB && string(data) == "ping" {
			close(pinged)
		}
	})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer stopWithin(t, g)

	ac, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	select {
	case <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnOpen")
	}
	mu.Lock()
	b, ok := bs, lined
	mu.Unlock()
	if b == nil {
		t.Fatal("B was not added")
	}
	if !ok {
		return false
	}
	if _, err := bc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pinged:
	case <-time.After(5 * time.Second):
		t.Fatalf("B (fd %d, A's) never read: A's late registration took its slot", aFd)
	}
	return true
}
