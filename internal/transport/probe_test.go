package transport

import (
	"context"
	"net"
	"os"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"

	"github.com/herald-ws/herald/internal/testwait"
)

// TestBareTCPProbeLeavesNothing: what a load balancer's TCP health check
// does (connect, then close with a FIN or a reset, no request) must leave
// no descriptor, goroutine, engine entry or armed deadline timer behind,
// and must not disturb an upgraded client (issue 13).
func TestBareTCPProbeLeavesNothing(t *testing.T) {
	fs := newFakeSessions()
	s, err := New(Config{Addr: "127.0.0.1:0", HandshakeTimeout: time.Minute}, fs)
	if err != nil {
		t.Fatal(err)
	}
	// Herald does not use the HTTP engine's close hook: the test does, to
	// see the engine's own connection (and its timers) once closed.
	var mu sync.Mutex
	var closed []*nbio.Conn
	s.engine.OnClose(func(c net.Conn, _ error) {
		if nc, ok := c.(*nbio.Conn); ok {
			mu.Lock()
			closed = append(closed, nc)
			mu.Unlock()
		}
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	addr := s.Addr().String()

	// A subscribed client, open during the probes.
	ws := dialWS(t, addr, "/app/key")
	_ = ws.readText()
	sess := fs.next(t)

	idle := func() bool { return s.engine.Online() == 1 } // the client alone
	testwait.For(t, 5*time.Second, "the start-up probes to close", idle)
	mu.Lock()
	closed = nil
	mu.Unlock()
	fds0, g0 := openFDs(t), runtime.NumGoroutine()

	const probes = 40
	for i := range probes {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			_ = c.(*net.TCPConn).SetLinger(0) // a reset, as many checkers do
		}
		_ = c.Close()
	}
	testwait.For(t, 5*time.Second, "every probe to be closed by the engine", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(closed) == probes && idle()
	})
	testwait.For(t, 5*time.Second, "the descriptors to return to their count before the probes", func() bool {
		return openFDs(t) <= fds0
	})
	// Goroutines the executor started for a burst of close jobs may stay
	// as warm workers: a bounded pool (keptWorkers), not one per probe.
	s.pool.mu.Lock()
	kept, keep := s.pool.kept, s.pool.keep
	s.pool.mu.Unlock()
	if kept > keep {
		t.Fatalf("%d workers kept, bound %d", kept, keep)
	}
	testwait.Goroutines(t, 5*time.Second, g0+kept)
	mu.Lock()
	for _, c := range closed {
		for _, f := range []string{"rTimer", "wTimer"} {
			if v := reflect.ValueOf(c).Elem().FieldByName(f); !v.IsValid() || !v.IsNil() {
				t.Fatalf("a probe's engine connection still holds its %s (valid %v)", f, v.IsValid())
			}
		}
	}
	mu.Unlock()

	// The client still works.
	if !sess.conn.Send(TextFrame([]byte(`{"event":"after-probes"}`)), 0) {
		t.Fatal("Send failed after the probes")
	}
	if got := ws.readText(); got != `{"event":"after-probes"}` {
		t.Fatalf("client read %q", got)
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	return len(ents)
}
