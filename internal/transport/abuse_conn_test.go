package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// maxOutbound samples s.OutboundBytes until stop is closed and returns
// the largest value seen.
func maxOutbound(s *Server, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var hi int64
		for {
			hi = max(hi, s.OutboundBytes())
			select {
			case <-stop:
				out <- hi
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	return out
}

// A client that sends pings and never reads: every pong is queued under
// the connection's byte bound, so the connection is cut with 4100 and the
// server never holds more than the bound for it.
func TestPingsWithoutReadingAreASlowConsumer(t *testing.T) {
	const limit = 64 << 10
	ref := &countRefusals{}
	fs := newFakeSessions()
	// The job list is not bounded here: 500 pings arrive in one read.
	s := startServer(t, Config{WriteQueueBytes: limit, CloseTimeout: time.Second, MaxPendingMessages: -1, Refusals: ref}, fs)
	addr := s.Addr().String()
	c := dialWS(t, addr, "/app/key")
	c.readText() // established
	sess := fs.next(t)

	stop := make(chan struct{})
	hi := maxOutbound(s, stop)
	// 500 pings of 125 bytes per write, until the server cuts us.
	var burst []byte
	for range 500 {
		burst = append(burst, clientFrame(true, opPing, bytes.Repeat([]byte{'p'}, 125))...)
	}
	cut := func() bool { return ref.get("key/"+hub.LimitWriteQueue) == 1 }
	_ = c.nc.SetWriteDeadline(time.Now().Add(60 * time.Second))
	sent := 0
	for start := time.Now(); !cut() && time.Since(start) < 60*time.Second; {
		if _, err := c.nc.Write(burst); err != nil {
			// Only once cut: the socket goes CloseTimeout after.
			if !cut() {
				t.Fatalf("after %d pings: %v", sent, err)
			}
			break
		}
		sent += 500
	}
	t.Logf("%d pings sent before the cut", sent)
	testwait.For(t, 10*time.Second, "the ping flooder to be cut as a slow consumer", cut)
	close(stop)
	if got := <-hi; got > limit+256 {
		t.Fatalf("the server held %d bytes for the flooder, bound %d", got, limit)
	}
	// Its close frame waits behind the pongs the client has not read; the
	// socket goes after CloseTimeout at the latest.
	wc := sess.conn.(*wsConn)
	wc.mu.Lock()
	code := wc.closeCode
	wc.mu.Unlock()
	if code != protocol.CodeOverCapacity {
		t.Fatalf("closed with %d, want 4100", code)
	}
	waitDone(t, sess.done, "the flooder's socket to close")
	if s.SlowConsumers() != 1 {
		t.Fatalf("slow consumers %d", s.SlowConsumers())
	}
	// A neighbour is served as usual.
	n := dialWS(t, addr, "/app/key")
	n.readText()
	n.writeFrame(true, opPing, []byte("hi"))
	if f := n.read(); f.op != opPong || string(f.payload) != "hi" {
		t.Fatalf("neighbour got %#x %q", f.op, f.payload)
	}
	testwait.For(t, 10*time.Second, "the queued bytes to be released", func() bool { return s.OutboundBytes() < 256 })
}

// Every message, pings included, costs a token: past the burst a text
// message is answered 4301 and a ping gets no pong; a client that goes on
// into a debt of a whole burst is closed with 4301. (The first refusal
// pauses the reading for 2,000 s at this rate: what follows it is sent in
// the same write, as a flooder's messages pile up while it is not read.)
func TestMessageRateLimitCoversEveryMessage(t *testing.T) {
	ref := &countRefusals{}
	fs := newFakeSessions()
	fs.echo = true
	s := startServer(t, Config{MessagesPerSecond: 0.001, MessageBurst: 5, Refusals: ref}, fs)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText()
	sess := fs.next(t)
	for i := range 5 {
		c.writeFrame(true, opText, []byte("m"))
		if got := c.readText(); got != "m" {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	var batch []byte
	batch = append(batch, clientFrame(true, opText, []byte("over"))...)
	batch = append(batch, clientFrame(true, opPing, []byte("p"))...)
	batch = append(batch, clientFrame(true, opText, []byte("over"))...)
	for range 2 { // a debt of the whole burst (5) is still allowed
		batch = append(batch, clientFrame(true, opPing, nil)...)
	}
	batch = append(batch, clientFrame(true, opPing, nil)...) // past it: closed
	if _, err := c.nc.Write(batch); err != nil {
		t.Fatal(err)
	}
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q, want a 4301 pusher:error", got)
	}
	// The ping got no pong: the next frame is the answer to the text.
	if f := c.read(); f.op != opText || !strings.Contains(string(f.payload), `"code":4301`) {
		t.Fatalf("got %#x %q, want the 4301 answer and no pong", f.op, f.payload)
	}
	if got := c.readText(); !strings.Contains(got, `"code":4301`) {
		t.Fatalf("got %q", got)
	}
	c.expectClose(protocol.CodeClientEventRejected)
	if len(sess.msgs) != 5 {
		t.Fatalf("session handled %d messages, want 5", len(sess.msgs))
	}
	if n := ref.get("key/" + hub.LimitMessages); n != 6 {
		t.Fatalf("counted %d refusals, want 6", n)
	}
}

// blockingSessions' HandleMessage waits for release.
type blockingSessions struct {
	release  chan struct{}
	running  atomic.Int64
	peak     atomic.Int64
	handled  atomic.Int64
	mu       sync.Mutex
	sessions []*blockingSession
}

type blockingSession struct {
	f    *blockingSessions
	conn hub.Conn
}

func (f *blockingSessions) Admit(_ context.Context, conn hub.Conn, info hub.ConnInfo) (hub.Session, error) {
	conn.Bind(info.Key) // testApps: the id is the key
	conn.Send(TextFrame(establishedJSON), 0)
	s := &blockingSession{f: f, conn: conn}
	f.mu.Lock()
	f.sessions = append(f.sessions, s)
	f.mu.Unlock()
	return s, nil
}

func (s *blockingSession) HandleMessage([]byte) {
	n := s.f.running.Add(1)
	for {
		p := s.f.peak.Load()
		if n <= p || s.f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	<-s.f.release
	s.f.running.Add(-1)
	s.f.handled.Add(1)
}
func (s *blockingSession) Touch()  {}
func (s *blockingSession) Closed() {}

// A connection whose messages pile up faster than they are handled is
// closed with 4100 once MaxPendingMessages wait: the job list is bounded.
func TestPendingMessagesAreBounded(t *testing.T) {
	ref := &countRefusals{}
	bs := &blockingSessions{release: make(chan struct{})}
	s := startServer(t, Config{MaxPendingMessages: 8, Refusals: ref}, bs)
	defer close(bs.release)
	c := dialWS(t, s.Addr().String(), "/app/key")
	c.readText()
	closed := make(chan string, 1)
	go func() {
		for {
			f, err := decodeFrame(c.br)
			if err != nil {
				closed <- err.Error()
				return
			}
			if f.op == opClose {
				closed <- fmt.Sprintf("%d %s", binary.BigEndian.Uint16(f.payload), f.payload[2:])
				return
			}
		}
	}()
	_ = c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var reason string
	for sent := 0; reason == ""; sent++ {
		if sent > 100_000 {
			t.Fatal("100,000 messages waited and the connection is still open")
		}
		if _, err := c.nc.Write(clientFrame(true, opText, []byte("x"))); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case reason = <-closed:
		default:
		}
		if sent%64 == 63 {
			runtime.Gosched() // let the poller read what was sent
		}
	}
	if !strings.HasPrefix(reason, "4100 Over capacity") {
		t.Fatalf("closed with %q, want 4100 Over capacity", reason)
	}
	if ref.get("key/"+hub.LimitPendingMessages) != 1 {
		t.Fatal("refusal not counted")
	}
}

// Jobs beyond MaxWorkers (and the warm workers) wait their turn, one per
// connection at most, and all run once the busy ones finish.
func TestWorkerPoolIsBounded(t *testing.T) {
	const maxWorkers = 2
	bs := &blockingSessions{release: make(chan struct{})}
	s := startServer(t, Config{MaxWorkers: maxWorkers}, bs)
	warm := executorWorkers()
	n := warm + maxWorkers + 6
	clients := make([]*wsClient, n)
	for i := range clients {
		clients[i] = dialWS(t, s.Addr().String(), "/app/key")
		clients[i].readText()
	}
	for _, c := range clients {
		c.writeFrame(true, opText, []byte("x"))
	}
	bound := int64(warm + maxWorkers)
	testwait.For(t, 10*time.Second, "the pool to be full and the rest waiting", func() bool {
		return bs.running.Load() == bound && s.pool.waitingLen() == n-int(bound)
	})
	close(bs.release)
	testwait.For(t, 10*time.Second, "every message to be handled", func() bool { return bs.handled.Load() == int64(n) })
	if p := bs.peak.Load(); p > bound {
		t.Fatalf("%d jobs ran at once, bound %d", p, bound)
	}
}

// Past the node's outbound budget the connection holding the most is
// closed with 4100 while the others keep their queues.
func TestOutboundBudgetShedsTheLargestQueue(t *testing.T) {
	const budget = 2 << 20
	ref := &countRefusals{}
	fs := newFakeSessions()
	s := startServer(t, Config{OutboundBudget: budget, WriteQueueBytes: 64 << 20, CloseTimeout: time.Second, Refusals: ref}, fs)
	var cl [3]*wsClient
	var ss [3]*fakeSession
	for i := range cl {
		cl[i] = dialSmallWindow(t, s.Addr().String())
		cl[i].readText()
		ss[i] = fs.next(t)
	}
	frame := TextFrame(bytes.Repeat([]byte{'x'}, 16<<10))
	// Nobody reads. The others get 96 KB each, the first connection gets
	// frames until the shedder acts: it then holds the most by far. (Until
	// the shedder acts, not until the total passes the budget: the
	// kernel's buffers grow meanwhile, so one moment over the budget may
	// be under it when the shedder looks.)
	for range 6 {
		ss[1].conn.Send(frame, 0)
		ss[2].conn.Send(frame, 0)
	}
	saturated := false
	for start := time.Now(); s.ShedConnections() == 0; runtime.Gosched() {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no connection was shed (%d bytes queued)", s.OutboundBytes())
		}
		saturated = saturated || s.Saturated()
		ss[0].conn.Send(frame, 0)
	}
	if !saturated {
		t.Fatal("over budget but never saturated")
	}
	if n := s.ShedConnections(); n != 1 {
		t.Fatalf("%d connections shed, want 1", n)
	}
	// Its close frame waits behind what the client has not read; the
	// socket goes after CloseTimeout.
	shed := ss[0].conn.(*wsConn)
	shed.mu.Lock()
	code := shed.closeCode
	shed.mu.Unlock()
	if code != protocol.CodeOverCapacity {
		t.Fatalf("closed with %d, want 4100", code)
	}
	waitDone(t, ss[0].done, "the shed connection to close")
	if ref.get("key/"+hub.LimitOutboundBudget) != 1 {
		t.Fatal("not counted")
	}
	for i := 1; i < 3; i++ {
		if !ss[i].conn.(*wsConn).isOpen() {
			t.Fatalf("connection %d was closed too", i)
		}
	}
	testwait.For(t, 10*time.Second, "the queued bytes to be under the low-water mark", func() bool {
		return s.OutboundBytes() <= budget/4*3
	})
}

// dialSmallWindow upgrades at /app/key with a small, fixed receive buffer,
// so that what a client does not read stays on the server rather than in
// the client's kernel.
func dialSmallWindow(t *testing.T, addr string) *wsClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	if err := nc.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	resp, c := requestOn(t, nc, upgradeRequest("/app/key"))
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return c
}
