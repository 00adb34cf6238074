package transport

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// A flood of small messages costs the server about what the messages are,
// not a pooled buffer each: every message read is copied for its handler,
// which keeps it, so a buffer drawn from nbio's default pool (at least
// 1 KB) is garbage per message, and a flood of pings or subscribes drove
// the GC several times a second beside the good clients' fanout. The
// whole process's allocations are counted, the client's included (its
// frames are built and its pongs read into buffers allocated before).
func TestSmallMessagesAllocateTheirSize(t *testing.T) {
	fs := newFakeSessions()
	// The job list is not bounded here: the pings arrive in few reads.
	s := startServer(t, Config{MaxPendingMessages: -1}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText() // established
	fs.next(t)

	const pings = 2000
	var burst []byte
	for range pings {
		burst = append(burst, clientFrame(true, opPing, []byte("x"))...)
	}
	pongs := make([]byte, 3*pings) // a pong of "x": 2 bytes of header, 1 of payload
	// Warm up the connection's buffers and the workers.
	c.writeFrame(true, opPing, []byte("x"))
	if f := c.read(); f.op != opPong {
		t.Fatalf("got %#x, want a pong", f.op)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(burst); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c.br, pongs); err != nil {
		t.Fatalf("reading the pongs: %v", err)
	}
	runtime.ReadMemStats(&after)
	for i := 0; i < len(pongs); i += 3 {
		if pongs[i] != 0x80|opPong || pongs[i+1] != 1 || pongs[i+2] != 'x' {
			t.Fatalf("pong %d is % x", i/3, pongs[i:i+3])
		}
	}
	per := (after.TotalAlloc - before.TotalAlloc) / pings
	t.Logf("%d bytes allocated per ping", per)
	if per >= 1024 {
		t.Fatalf("%d bytes allocated per ping of 1 byte, want well under a 1 KB pooled buffer", per)
	}
}

// The answer to a message refused by the rate limit is written by the
// connection's own job, like the answer to an allowed one, not handed to
// the flushers: their reply lane goes before the fanouts of the clients
// that behave, and a flood of refused subscribes woke a flusher for each.
// Here the flushers are stopped, so only what a job writes arrives.
func TestRefusedMessageAnsweredByItsJob(t *testing.T) {
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{MessagesPerSecond: 0.001, MessageBurst: 1}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText() // established
	fs.next(t)
	s.flushq.close() // the flushers leave once the queue is empty, which it is
	c.writeFrame(true, opText, []byte("m"))
	if got := c.readText(); got != "m" {
		t.Fatalf("got %q, want the echo", got)
	}
	c.writeFrame(true, opText, []byte("over"))
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q, want a 4301 pusher:error", got)
	}
	_ = c.nc.Close() // the server's close frames would wait for a flusher
}

// A client closed for flooding that reconnects at once starts with a
// tenth of the burst, not all of it: its address is remembered. Another
// address keeps its full burst, and the remembered one is not closed on
// reconnecting (a client behind the same proxy keeps working, at the
// rate).
func TestFlooderReconnectsWithAShareOfTheBurst(t *testing.T) {
	const burst = 20
	fs := newFakeSessions()
	fs.echo = true
	// One message a second: a refill during the test is one message more.
	s := startServer(t, Config{MessagesPerSecond: 1, MessageBurst: burst}, fs)
	dialFrom := func(ip string) *wsClient {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		nc, err := d.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		resp, c := requestOn(t, nc, upgradeRequest("/app/key"))
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade from %s: status %d", ip, resp.StatusCode)
		}
		c.readText() // established
		fs.next(t)
		return c
	}
	send := func(c *wsClient, n int) {
		var b []byte
		for i := range n {
			b = append(b, clientFrame(true, opText, []byte("m"+strconv.Itoa(i)))...)
		}
		if _, err := c.nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// handled counts the echoes before the first refusal among n replies.
	handled := func(c *wsClient, n int) int {
		for i := range n {
			if got := c.readText(); strings.Contains(got, `"code":4301`) {
				return i
			}
		}
		return n
	}

	flooder := dialFrom("127.0.0.1")
	send(flooder, 3*burst)
	flooder.expectClose(protocol.CodeClientEventRejected)

	again := dialFrom("127.0.0.1")
	send(again, burst)
	if got := handled(again, burst); got > burst/10+1 {
		t.Fatalf("the flooder's address, reconnected: %d messages handled before a refusal, want at most %d", got, burst/10+1)
	}
	if got := s.offenderStarts.Load(); got != 1 {
		t.Fatalf("%d connections started with a share of the burst, want 1", got)
	}
	other := dialFrom("127.0.0.2")
	send(other, burst)
	if got := handled(other, burst); got != burst {
		t.Fatalf("another address: %d messages handled before a refusal, want the whole burst of %d", got, burst)
	}
}
