package transport

import (
	"context"
	"io"
	"net"
	"net/http"

	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHandOffToAnotherServer is a restart in place within one test process:
// server A listens through Config.Listen, server B gets a duplicate of the
// same socket (as the next process does through tableflip), then A stops
// accepting. No dial is refused at any point, new connections reach B, A's
// open WebSocket keeps working until it is shut down, and A answers a
// request on a kept-alive HTTP connection with Connection: close so that
// the client's next request goes to B.
func TestHandOffToAnotherServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File() // a dup, as handed to a child
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
	}
	var aListened atomic.Bool
	fsA := newFakeSessions()
	a := startServer(t, Config{Addr: addr, Handler: named("A"), Listen: func(network, got string) (net.Listener, error) {
		if network != "tcp" || got != addr {
			t.Errorf("Listen(%q, %q), want tcp %s", network, got, addr)
		}
		aListened.Store(true)
		return ln, nil
	}}, fsA)
	if !aListened.Load() {
		t.Fatal("Config.Listen was not used")
	}
	wsA, _ := openSession(t, a, fsA)
	_, kept := rawRequest(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")

	// Dial all along: not one refusal.
	stop := make(chan struct{})
	refused := make(chan error, 1)
	var dials atomic.Int64
	go func() {
		defer close(refused)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				refused <- err
				return
			}
			dials.Add(1)
			_ = c.Close()
		}
	}()

	startServer(t, Config{Addr: addr, Handler: named("B"), Listen: func(string, string) (net.Listener, error) {
		defer f.Close()
		return net.FileListener(f)
	}}, newFakeSessions())
	a.StopAccepting()

	// From now on every new connection is B's.
	for range 20 {
		if got := get(t, addr); got != "B" {
			t.Fatalf("a new connection after the hand-off reached %s", got)
		}
	}
	// A's kept-alive connection is served once more, then closed.
	resp, _ := requestOn(t, kept.nc, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "A" || !resp.Close {
		t.Fatalf("kept-alive request after the hand-off: body %q, Connection: close %v", body, resp.Close)
	}
	// A's WebSocket still works: ping, pong.
	wsA.writeFrame(true, opPing, []byte("hi"))
	if fr := wsA.read(); fr.op != opPong || string(fr.payload) != "hi" {
		t.Fatalf("A's socket after the hand-off: got op %d %q", fr.op, fr.payload)
	}
	close(stop)
	if err := <-refused; err != nil {
		t.Fatalf("a dial was refused during the hand-off: %v", err)
	}
	if dials.Load() == 0 {
		t.Fatal("the dialer never connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wsA.expectClose(4200)
	if got := get(t, addr); got != "B" {
		t.Fatalf("after A's shutdown a new connection reached %s", got)
	}

}

// get sends one request on a new connection and returns the body.
func get(t *testing.T, addr string) string {
	t.Helper()
	resp, _ := rawRequest(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(body))
}
