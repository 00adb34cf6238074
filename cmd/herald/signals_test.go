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
