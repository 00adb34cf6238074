//go:build unix

package main

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/testwait"
)

// lockedBuffer collects a writer's output for polling.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSecondSignalStopsTheDrain: the first SIGTERM starts a drain that
// would spread its closes over 45 s; a second one makes the process stop
// at once, and says so.
func TestSecondSignalStopsTheDrain(t *testing.T) {
	port := freePort(t)
	var out, errOut lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--shutdown-timeout", "60s", "--log-format", "text"}, &out, &errOut)
	}()
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	if !testwait.Until(10*time.Second, func() bool { return listening.MatchString(out.String()) }) {
		t.Fatalf("not listening:\n%s\n%s", out.String(), errOut.String())
	}
	addr := listening.FindStringSubmatch(out.String())[1]
	// Enough connections that the drain spreads their closes; none reads.
	for range 40 {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !testwait.Until(10*time.Second, func() bool { return strings.Contains(errOut.String(), "draining") }) {
		t.Fatalf("no drain after the first signal:\n%s", errOut.String())
	}
	select {
	case c := <-code:
		t.Fatalf("exited (%d) before the second signal, the drain was not spread:\n%s", c, errOut.String())
	default:
	}
	start := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-code:
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15 s after the second signal:\n%s", errOut.String())
	}
	t.Logf("exited %v after the second signal", time.Since(start))
	if !strings.Contains(errOut.String(), "second signal") {
		t.Fatalf("the second signal is not logged:\n%s", errOut.String())
	}
}

// serveOnFreePort runs `herald serve args...` in-process on a port from
// freePort until it listens, stops it, and returns its stdout, address and
// port. It tries another port (up to 5 times) when the bind fails: the port is
// free when freePort looks, but any process of this shared machine may
// take it before herald binds (an outgoing connection's local port comes
// from the same ephemeral range), which made TestDevAppOnLoopbackUnlessAsked
// fail now and then with "address already in use" on 0.0.0.0.
func serveOnFreePort(t *testing.T, args ...string) (stdout, addr, port string) {
	t.Helper()
	for range 5 {
		port = strconv.Itoa(freePort(t))
		out, addr, bound := serveOnce(t, append([]string{"--port", port}, args...)...)
		if bound {
			return out, addr, port
		}
		if !strings.Contains(out, "address already in use") {
			t.Fatalf("not listening:\n%s", out)
		}
	}
	t.Fatal("no free port in 5 tries")
	return "", "", ""
}

// serveOnce runs serve with args until it listens, then stops it with
// SIGTERM; bound is false when serve ended first (stdout has why).
func serveOnce(t *testing.T, args ...string) (stdout, addr string, bound bool) {
	t.Helper()
	var out, errOut lockedBuffer
	code := make(chan int, 1)
	go func() { code <- run(append([]string{"serve", "--log-format", "text"}, args...), &out, &errOut) }()
	listening := regexp.MustCompile(`listening on (\S+:\d+)`)
	ended := false
	if !testwait.Until(10*time.Second, func() bool {
		if len(code) > 0 {
			ended = true
			return true
		}
		return strings.Contains(out.String(), "Metrics:")
	}) {
		t.Fatalf("not listening:\n%s\n%s", out.String(), errOut.String())
	}
	if ended {
		return out.String() + errOut.String(), "", false
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-code:
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop")
	}
	m := listening.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no address in:\n%s", out.String())
	}
	return out.String(), m[1], true
}

// TestDevAppOnLoopbackUnlessAsked: with no app configured, the public
// development app is served on 127.0.0.1 only, and the banner says how to
// open it up; dev_app_public serves every interface, with a warning.
func TestDevAppOnLoopbackUnlessAsked(t *testing.T) {
	out, addr, port := serveOnFreePort(t)
	if addr != "127.0.0.1:"+port || !strings.Contains(out, "on this machine only") || !strings.Contains(out, "dev_app_public") ||
		!strings.Contains(out, "PUSHER_HOST=127.0.0.1\n") || !strings.Contains(out, "PUSHER_APP_SECRET=app-secret\n") {
		t.Fatalf("dev app by default: listening on %s\n%s", addr, out)
	}
	// A port of its own: on every interface, any socket of this machine
	// bound to the first port since (another test's client, say) would
	// make the bind fail.
	out, addr, _ = serveOnFreePort(t, "--dev-app-public")
	if host, _, _ := net.SplitHostPort(addr); !net.ParseIP(host).IsUnspecified() || !strings.Contains(out, "WARNING") {
		t.Fatalf("dev_app_public: listening on %s\n%s", addr, out)
	}
}
