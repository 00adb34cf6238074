package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

func TestShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	fs := newFakeSessions()
	s, err := New(Config{Addr: "127.0.0.1:0"}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	var clients []*wsClient
	var sessions []*fakeSession
	for i := 0; i < 3; i++ {
		c, sess := openSession(t, s, fs)
		clients = append(clients, c)
		sessions = append(sessions, sess)
	}
	// A silent client that never answers the close frame.
	silent, silentSess := openSession(t, s, fs)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	for _, c := range clients {
		c.expectClose(4200)
		c.writeFrame(true, opClose, closePayload(4200, ""))
		c.expectEOF()
	}
	silent.expectClose(4200)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	for _, sess := range append(sessions, silentSess) {
		waitDone(t, sess.done, "Closed")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	// Every goroutine the server started is gone.
	testwait.Goroutines(t, 3*time.Second, before)
}

func TestShutdownDeadline(t *testing.T) {
	fs := newFakeSessions()
	s, err := New(Config{Addr: "127.0.0.1:0", CloseTimeout: time.Minute}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, sess := openSession(t, s, fs)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Fatal("want the context error when connections outlive ctx")
	}
	c.expectClose(4200)
	c.expectEOF()
	waitDone(t, sess.done, "Closed")
}

// TestShutdownFinishesHTTPInFlight: a request being served when Shutdown
// starts is answered before its socket is closed.
func TestShutdownFinishesHTTPInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apps/1/events" {
			return // Start's probes
		}
		close(entered)
		<-release
		_, _ = io.WriteString(w, "published")
	})
	s, err := New(Config{Addr: "127.0.0.1:0", Handler: api}, newFakeSessions())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/apps/1/events", "application/json", strings.NewReader("{}"))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- s.Shutdown(ctx)
	}()
	// Wait until the listener is closed: Shutdown is under way.
	testwait.For(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "published" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestShutdownSeesSocketBeingAdded holds a socket on the accepting
// goroutine between its accept and its registration with a poller, and
// releases it only once the engine's Stop has taken the sockets it closes.
// The engine must refuse (close) it then: before the fix it registered it
// after Stop's look, and Stop waited for it until its read deadline
// (HandshakeTimeout, an hour here).
func TestShutdownSeesSocketBeingAdded(t *testing.T) {
	fs := newFakeSessions()
	s, err := New(Config{Addr: "127.0.0.1:0", HandshakeTimeout: time.Hour}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { close(held); <-release }) }
	s.onOpenHook.Store(&hook)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitDone(t, held, "the accept loop holding the socket")

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	testwait.For(t, 30*time.Second, "the engine's Stop to begin", s.engine.Engine.Stopping)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return: the engine missed the socket it was adding")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the socket being added is still open after Shutdown (read %d, %v)", n, err)
	}
}
