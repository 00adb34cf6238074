package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"

	"github.com/herald-ws/herald/internal/hub"
)

// churnSessions admits every connection with connection_established and
// keeps nothing, so any number of connections can come and go.
type churnSessions struct{ opened atomic.Int64 }

type nopSession struct{}

func (nopSession) HandleMessage([]byte) {}
func (nopSession) Touch()               {}
func (nopSession) Closed()              {}

func (s *churnSessions) Admit(_ context.Context, conn hub.Conn, info hub.ConnInfo) (hub.Session, error) {
	conn.Bind(info.Key) // testApps: the id is the key
	s.opened.Add(1)
	conn.Send(TextFrame(establishedJSON), 0)
	return nopSession{}, nil
}

// churnTally counts the outcomes of churn cycles.
type churnTally struct {
	cycles   atomic.Int64
	spurious atomic.Int64 // closed by the server before the client closed
	mu       sync.Mutex
	samples  []string
}

func (t *churnTally) fail(stage string, err error) {
	if t.spurious.Add(1) <= 5 {
		t.mu.Lock()
		t.samples = append(t.samples, fmt.Sprintf("%s: %v", stage, err))
		t.mu.Unlock()
	}
}

// TestChurnNoSpuriousCloses churns connections the way clients leave:
// WebSocket clients upgrade, read connection_established, send a close
// frame and close as soon as the server's close frame arrives (half of
// them send their FIN with the close frame instead), while HTTP clients
// make requests with Connection: close and close once they have the
// response. The server frees those sockets from worker goroutines while
// its accept loop hands out the same fd numbers to new sockets; an epoll
// event still pending for a departed socket must never act on the new
// socket at its fd. nbio v1.6.8 did, and closed new connections during
// their handshake (TestStaleEpollEventSparesReusedFd is the deterministic
// form; see third_party/README.md).
//
// HERALD_CHURN_CYCLES sets the number of cycles (default 10,000, a few
// seconds) for a longer stress run.
func TestChurnNoSpuriousCloses(t *testing.T) {
	cycles := 10000
	if v := os.Getenv("HERALD_CHURN_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("HERALD_CHURN_CYCLES=%q: want a positive integer", v)
		}
		cycles = n
	}
	const wsWorkers, httpWorkers = 24, 24
	raiseNoFile(t, 4*(wsWorkers+httpWorkers)+1000)

	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	sess := &churnSessions{}
	s, err := New(Config{Addr: "127.0.0.1:0", Handler: handler}, sess)
	if err != nil {
		t.Fatal(err)
	}
	// Two pauses stand for a loaded machine and make the interleaving
	// frequent (about 1.5 % of the cycles on the unpatched engine, against
	// 1 in 2,000-20,000 without them): a writer that is descheduled after
	// its last write and before it closes the socket, so that the client's
	// FIN arrives first; and a poller that takes its time over a batch of
	// events, so that other goroutines close and accept sockets meanwhile.
	s.engine.OnWrittenSize(func(c *nbio.Conn, b []byte, n int) {
		s.onWritten(c, b, n)
		time.Sleep(200 * time.Microsecond)
	})
	s.engine.OnReadBufferFree(func(*nbio.Conn, *[]byte) { time.Sleep(20 * time.Microsecond) })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	addr := s.Addr().(*net.TCPAddr)

	var tally churnTally
	var next atomic.Int64 // cycles handed out
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Minute) // a hang fails, it does not stall the suite
	run := func(w int, cycle func(*net.Dialer) (string, error)) {
		defer wg.Done()
		// Several source addresses, so that the client ports in TIME_WAIT
		// never run out however often the test runs.
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+w%16))}}
		for next.Add(1) <= int64(cycles) && time.Now().Before(deadline) {
			stage, err := cycle(d)
			if err != nil {
				tally.fail(stage, err)
			}
			tally.cycles.Add(1)
		}
	}
	target := addr.String()
	for w := range wsWorkers {
		wg.Add(1)
		finWithClose := w%2 == 1
		go run(w, func(d *net.Dialer) (string, error) { return wsChurnCycle(d, target, finWithClose) })
	}
	for w := range httpWorkers {
		wg.Add(1)
		go run(w, func(d *net.Dialer) (string, error) { return httpChurnCycle(d, target) })
	}
	wg.Wait()

	done := tally.cycles.Load()
	if done < int64(cycles) {
		t.Fatalf("only %d of %d cycles ran in time", done, cycles)
	}
	if n := tally.spurious.Load(); n > 0 {
		t.Fatalf("%d of %d connections closed by the server before the client left; first: %q", n, done, tally.samples)
	}
	t.Logf("%d cycles, %d sessions opened, none closed early", done, sess.opened.Load())
}

// wsChurnCycle connects, upgrades, reads connection_established, sends a
// close frame (and FIN with it when finWithClose) and closes once the
// server answers. An error before the close frame is sent is an early
// close by the server; the stage says when it happened.
func wsChurnCycle(d *net.Dialer, addr string, finWithClose bool) (string, error) {
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, upgradeRequest("/app/key")); err != nil {
		return "write upgrade", err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "upgrade response", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return "upgrade response", fmt.Errorf("status %d", resp.StatusCode)
	}
	f, err := decodeFrame(br)
	if err != nil {
		return "connection_established", err
	}
	if f.op != opText {
		return "connection_established", fmt.Errorf("frame op %#x %q", f.op, f.payload)
	}
	if _, err := nc.Write(clientFrame(true, opClose, closePayload(1000, ""))); err != nil {
		return "write close", err
	}
	if finWithClose {
		_ = nc.(*net.TCPConn).CloseWrite()
	}
	// From here on the client has left: the server may echo the close or,
	// having read the FIN, just close; either is fine.
	_, _ = decodeFrame(br)
	return "", nil
}

// httpChurnCycle makes one request with Connection: close, which the
// server answers and then closes from a worker goroutine; the client
// closes as soon as it has the response.
func httpChurnCycle(d *net.Dialer, addr string) (string, error) {
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return "dial", err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		return "write request", err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "http response", err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return "http response", fmt.Errorf("status %d body %q err %v", resp.StatusCode, body, err)
	}
	return "", nil
}
