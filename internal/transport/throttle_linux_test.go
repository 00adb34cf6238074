//go:build linux

package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// serverRxQueue returns the bytes waiting unread in the server's socket of
// the connection whose client end is client (from /proc/net/tcp: the
// kernel's count, whatever the server does), or -1 when not found.
func serverRxQueue(t *testing.T, server, client net.Addr) int {
	t.Helper()
	sp, cp := server.(*net.TCPAddr).Port, client.(*net.TCPAddr).Port
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || !strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", sp)) || !strings.HasSuffix(fs[2], fmt.Sprintf(":%04X", cp)) {
			continue
		}
		_, rx, ok := strings.Cut(fs[4], ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	return -1
}

// A client over its message rate is not read until its bucket holds a
// token again: what it sends meanwhile waits in the server's socket (here
// every byte of 50 pings, sent one write each, as a paced flooder sends),
// instead of costing a read, a job and a refusal each. Without the pause
// the server reads and refuses them one by one and closes the client with
// 4301 after a debt of the burst.
func TestThrottledClientIsNotRead(t *testing.T) {
	ref := &countRefusals{}
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{MessagesPerSecond: 0.001, MessageBurst: 3, Refusals: ref}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText()
	fs.next(t)
	for i := range 3 {
		c.writeFrame(true, opText, []byte("m"))
		if got := c.readText(); got != "m" {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	c.writeFrame(true, opText, []byte("over"))
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q, want a 4301 pusher:error", got)
	}
	ping := clientFrame(true, opPing, []byte("p"))
	const flood = 50
	for range flood {
		if _, err := c.nc.Write(ping); err != nil {
			t.Fatal(err)
		}
	}
	want := flood * len(ping)
	testwait.For(t, 10*time.Second, fmt.Sprintf("the %d bytes of the pings to wait unread in the server's socket", want), func() bool {
		return serverRxQueue(t, s.Addr(), c.nc.LocalAddr()) == want
	})
	if n := ref.get("key/" + hub.LimitMessages); n != 1 {
		t.Fatalf("%d refusals, want the one before the pause", n)
	}
	if s.throttles.Load() != 1 {
		t.Fatalf("%d pauses, want 1", s.throttles.Load())
	}
}

// A client that went past its burst has its next message handled once the
// bucket holds a token again, instead of refused: the reading resumes when
// the pause computed from the debt is over. (Without the pause the message
// is read at once, while the bucket is still in debt, and answered 4301.)
func TestThrottledClientResumes(t *testing.T) {
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{MessagesPerSecond: 2, MessageBurst: 2}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText()
	fs.next(t)
	for i := range 2 {
		c.writeFrame(true, opText, []byte("m"))
		if got := c.readText(); got != "m" {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	c.writeFrame(true, opText, []byte("over"))
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q, want a 4301 pusher:error", got)
	}
	c.writeFrame(true, opText, []byte("late"))
	if got := c.readText(); got != "late" {
		t.Fatalf("got %q, want the message sent during the pause echoed", got)
	}
	if s.throttles.Load() != 1 {
		t.Fatalf("%d pauses, want 1", s.throttles.Load())
	}
}

// The replies to a batch of messages read together (what a throttled
// client piled up, read when the pause ends) go out in one write, by the
// batch's last job, not one write each. Counted by the socket layer's
// report of each write (OnWrittenSize); with a write per reply there would
// be 20. The first message's job waits until the whole batch is parsed:
// a job that runs while the parser is still at work sees nothing more
// queued and writes what it has (best effort, which made this test count
// 3 writes under -race on a busy box).
func TestBatchRepliesInOneWrite(t *testing.T) {
	const n = 20
	fs := newFakeSessions()
	fs.echo = true
	fs.hold = func(s *fakeSession, msg []byte) {
		if string(msg) != "m0" {
			return
		}
		wsc := s.conn.(*wsConn).wsc
		deadline := time.Now().Add(5 * time.Second)
		for wsc.QueuedMessages() < n-1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	s, err := New(Config{Addr: "127.0.0.1:0"}, fs)
	if err != nil {
		t.Fatal(err)
	}
	var writes, written atomic.Int64
	s.engine.OnWrittenSize(func(c *nbio.Conn, b []byte, n int) {
		s.onWritten(c, b, n)
		writes.Add(1)
		written.Add(int64(n))
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText()
	fs.next(t)
	var batch []byte
	echoes := 0 // the bytes of the echo frames: a 2-byte header each
	for i := range n {
		m := []byte("m" + strconv.Itoa(i))
		batch = append(batch, clientFrame(true, opText, m)...)
		echoes += 2 + len(m)
	}
	before, beforeBytes := writes.Load(), written.Load()
	if _, err := c.nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got := c.readText(); got != "m"+strconv.Itoa(i) {
			t.Fatalf("echo %d: %q", i, got)
		}
	}
	// The socket layer reports a write after it, so the client may read
	// the echoes before the report: wait until every echo byte is
	// reported, by however many writes.
	testwait.For(t, 5*time.Second, "every echo byte reported written", func() bool {
		return written.Load()-beforeBytes >= int64(echoes)
	})
	if w := writes.Load() - before; w != 1 {
		t.Fatalf("%d writes for the %d replies of one batch, want 1", w, n)
	}
}

// The same over TLS: the pile is read from the raw socket and goes
// through the TLS layer's data handler, as the poller's reads do.
func TestThrottledTLSClientResumes(t *testing.T) {
	cert, pool := selfSigned(t)
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{MessagesPerSecond: 2, MessageBurst: 2, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}, fs)
	nc, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	resp, c := requestOn(t, nc, upgradeRequest("/app/key"))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.readText()
	fs.next(t)
	for i := range 2 {
		c.writeFrame(true, opText, []byte("m"))
		if got := c.readText(); got != "m" {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	c.writeFrame(true, opText, []byte("over"))
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q, want a 4301 pusher:error", got)
	}
	for i := range 3 {
		c.writeFrame(true, opText, []byte("late"+strconv.Itoa(i)))
	}
	if got := c.readText(); got != "late0" {
		t.Fatalf("got %q, want the first message sent during the pause echoed", got)
	}
	if s.throttles.Load() < 1 {
		t.Fatal("not paused")
	}
}
