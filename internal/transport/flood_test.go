package transport

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
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
