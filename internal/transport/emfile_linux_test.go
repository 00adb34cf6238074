package transport

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// TestAcceptBacksOffOnEMFILE runs the server in a child process whose
// descriptors are all taken: each accept fails with EMFILE while the
// connection waits in the backlog. The accept loop must back off (5 ms
// doubling to 1 s), not spin, and count each failure; once descriptors
// are free again it accepts and serves the waiting connection. Upstream
// retried at once: 7 errors came within microseconds.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	if os.Getenv("HERALD_EMFILE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptBacksOffOnEMFILE$", "-test.v")
		cmd.Env = append(os.Environ(), "HERALD_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		return
	}
	ref := &countRefusals{}
	s := startServer(t, Config{Refusals: ref}, newFakeSessions())
	addr := s.Addr().String()
	// Start's probe sockets close on the engine's side a little later: a
	// descriptor freed once the others are taken would let an accept
	// succeed, and the backlog would be empty.
	testwait.For(t, 10*time.Second, "the probe sockets to close", func() bool { return s.engine.Online() == 0 })

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) }()
	var filler []*os.File
	release := func() {
		for _, f := range filler {
			_ = f.Close()
		}
		filler = nil
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		filler = append(filler, f)
	}
	if len(filler) == 0 {
		t.Fatal("no descriptor could be taken")
	}
	// One descriptor for the client's socket; the server has none left.
	_ = filler[len(filler)-1].Close()
	filler = filler[:len(filler)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	testwait.For(t, 10*time.Second, "a failed accept", func() bool { return s.AcceptErrors() >= 1 })
	first := time.Now()
	testwait.For(t, 30*time.Second, "7 failed accepts", func() bool { return s.AcceptErrors() >= 7 })
	// The sleeps between the first and the 7th failure add up to 5+10+
	// ...+160 = 315 ms at least (a stall only makes it longer); the first
	// was seen up to a poll late.
	if d := time.Since(first); d < 250*time.Millisecond {
		t.Fatalf("7 failed accepts within %v: the loop does not back off", d)
	}
	if n := ref.get("/" + LimitAcceptErrors); n < 7 {
		t.Fatalf("%d accept errors counted as refusals, want at least 7", n)
	}

	release()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the waiting connection was not served once descriptors were free: %v", err)
	}
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}
