package transport

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/memory"
	"github.com/herald-ws/herald/internal/hub"
)

// ---- fakes ----

type fakeApps map[string]*apps.App

func (f fakeApps) ByKey(_ context.Context, key string) (*apps.App, error) {
	if a, ok := f[key]; ok {
		return a, nil
	}
	return nil, apps.ErrNotFound
}

func (f fakeApps) ByID(_ context.Context, id string) (*apps.App, error) {
	for _, a := range f {
		if a.ID == id {
			return a, nil
		}
	}
	return nil, apps.ErrNotFound
}

func testApps() fakeApps {
	mk := func(key string, mod func(*apps.App)) *apps.App {
		a := apps.Defaults()
		a.ID, a.Key, a.Secret = key, key, "secret"
		if mod != nil {
			mod(&a)
		}
		return &a
	}
	return fakeApps{
		"key":      mk("key", nil),
		"tls":      mk("tls", func(a *apps.App) { a.RequireTLS = true }),
		"disabled": mk("disabled", func(a *apps.App) { a.Enabled = false }),
		"origins":  mk("origins", func(a *apps.App) { a.AllowedOrigins = []string{"https://a.com", "*.example.com"} }),
		"full":     mk("full", func(a *apps.App) { a.MaxConnections = 0 }),
	}
}

var establishedJSON = []byte(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.1\",\"activity_timeout\":120}"}`)

type fakeSession struct {
	inner   hub.Session // the hub's, told of Closed only
	conn    hub.Conn
	info    hub.ConnInfo
	msgs    chan []byte
	touches atomic.Int64
	closed  atomic.Int32
	done    chan struct{}
	echo    bool
	panicOn string
	hold    func(*fakeSession, []byte) // called first by HandleMessage, when set
	busy    atomic.Int32               // detects concurrent callbacks
	overlap atomic.Bool
}

func (s *fakeSession) enter() {
	if s.busy.Add(1) != 1 {
		s.overlap.Store(true)
	}
}
func (s *fakeSession) leave() { s.busy.Add(-1) }

func (s *fakeSession) HandleMessage(msg []byte) {
	s.enter()
	defer s.leave()
	if s.closed.Load() != 0 {
		s.overlap.Store(true)
	}
	if s.hold != nil {
		s.hold(s, msg)
	}
	if s.panicOn != "" && string(msg) == s.panicOn {
		panic("boom")
	}
	if s.echo {
		s.conn.Send(TextFrame(msg), 0)
	}
	select {
	case s.msgs <- msg:
	default:
	}
}

func (s *fakeSession) Touch() {
	s.enter()
	defer s.leave()
	s.touches.Add(1)
}

func (s *fakeSession) Closed() {
	s.enter()
	defer s.leave()
	if s.closed.Add(1) == 1 {
		s.inner.Closed()
		close(s.done)
	}
}

// fakeSessions admits through a real hub, the one admission path (so the
// refusals tested here are the hub's decisions on the facts the transport
// gathered); the sessions it returns are fakes that record what the
// transport hands them.
type fakeSessions struct {
	hub      *hub.Hub
	mu       sync.Mutex
	sessions []*fakeSession
	opened   chan *fakeSession
	echo     bool
	panicOn  string
	hold     func(*fakeSession, []byte) // see fakeSession.hold
	msgCap   int
}

func newFakeSessions() *fakeSessions { return newFakeSessionsWith(hub.Options{}) }

// newFakeSessionsWith admits through a hub built with o, over testApps.
func newFakeSessionsWith(o hub.Options) *fakeSessions {
	if o.Apps == nil {
		o.Apps = testApps()
	}
	if o.State == nil {
		o.State, o.Broker = memory.New(nil)
	}
	o.Framer = TextFrame
	return &fakeSessions{hub: hub.New(o), opened: make(chan *fakeSession, 20000), msgCap: 1024}
}

func (f *fakeSessions) Admit(ctx context.Context, conn hub.Conn, info hub.ConnInfo) (hub.Session, error) {
	inner, err := f.hub.Admit(ctx, quietConn{conn}, info)
	if err != nil {
		return nil, err
	}
	s := &fakeSession{inner: inner, conn: conn, info: info, msgs: make(chan []byte, f.msgCap), done: make(chan struct{}), echo: f.echo, panicOn: f.panicOn, hold: f.hold}
	conn.Send(TextFrame(establishedJSON), 0)
	f.mu.Lock()
	f.sessions = append(f.sessions, s)
	f.mu.Unlock()
	f.opened <- s
	return s, nil
}

// quietConn is the hub's view of a connection whose session is a fake:
// what the hub sends (its connection_established) is dropped, so that the
// fake session alone speaks to the client.
type quietConn struct{ hub.Conn }

func (quietConn) Send([]byte, int64) bool { return true }

func (f *fakeSessions) next(t testing.TB) *fakeSession {
	t.Helper()
	select {
	case s := <-f.opened:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no session opened")
		return nil
	}
}

// ---- server ----

func startServer(t testing.TB, cfg Config, sess hub.Admitter) *Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := New(cfg, sess)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

// ---- raw WebSocket client ----

type wsClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// rawRequest sends req verbatim and returns the parsed response and the
// connection.
func rawRequest(t testing.TB, addr, req string) (*http.Response, *wsClient) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return requestOn(t, nc, req)
}

func requestOn(t testing.TB, nc net.Conn, req string) (*http.Response, *wsClient) {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp, &wsClient{t: t, nc: nc, br: br}
}

func upgradeRequest(path string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", path, newKey())
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialWS upgrades at path and fails the test unless it gets 101.
func dialWS(t testing.TB, addr, path string, extra ...string) *wsClient {
	t.Helper()
	resp, c := rawRequest(t, addr, upgradeRequest(path, extra...))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade %s: status %d", path, resp.StatusCode)
	}
	return c
}

// writeFrame writes one masked client frame.
func (c *wsClient) writeFrame(fin bool, op byte, payload []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(clientFrame(fin, op, payload)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = []byte{b0, 0x80 | byte(n)}
	case n <= 0xFFFF:
		b = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		b = []byte{b0, 0x80 | 127}
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= mask[i%4]
	}
	return b
}

type frame struct {
	fin     bool
	op      byte
	payload []byte
}

// decodeFrame is the reference decoder for server frames: it reads one
// frame and rejects a set mask bit or reserved bits.
func decodeFrame(r io.Reader) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	if h[0]&0x70 != 0 {
		return frame{}, errors.New("reserved bits set")
	}
	if h[1]&0x80 != 0 {
		return frame{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
		if n < 126 {
			return frame{}, errors.New("non-minimal length")
		}
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return frame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
		if n <= 0xFFFF || n>>63 != 0 {
			return frame{}, errors.New("non-minimal or invalid length")
		}
	}
	if n > 64<<20 {
		return frame{}, errors.New("frame too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return frame{}, err
	}
	return frame{fin: h[0]&0x80 != 0, op: h[0] & 0x0F, payload: p}, nil
}

func (c *wsClient) read() frame {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := decodeFrame(c.br)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

func (c *wsClient) readText() string {
	c.t.Helper()
	f := c.read()
	if f.op != opText || !f.fin {
		c.t.Fatalf("want a text frame, got op %#x fin %v %q", f.op, f.fin, f.payload)
	}
	return string(f.payload)
}

// expectClose reads frames until a close frame and checks its code.
func (c *wsClient) expectClose(code int) string {
	c.t.Helper()
	for {
		f := c.read()
		if f.op != opClose {
			continue
		}
		if len(f.payload) < 2 {
			c.t.Fatalf("close without code, want %d", code)
		}
		got := int(binary.BigEndian.Uint16(f.payload))
		if got != code {
			c.t.Fatalf("close code %d (%q), want %d", got, f.payload[2:], code)
		}
		return string(f.payload[2:])
	}
}

// expectEOF waits for the server to close the TCP connection, for up to
// 10 s of this process's running time. The wait is read in 100 ms slices,
// and a slice that ends late (the process was stopped or starved: a
// SIGSTOP from quiet.sh, a load of 50) counts as 100 ms only. One 10 s
// deadline failed the close-handshake test after a stall of more than
// 10 s: on resume the server's close timer (due first) and the read
// deadline were both overdue, the timer's AfterFunc only started the
// goroutine that closes, and the deadline ended the read before it ran
// (reproduced by stopping the test process for 11 s after the close frame).
func (c *wsClient) expectEOF() {
	c.t.Helper()
	const slice = 100 * time.Millisecond
	for waited := time.Duration(0); waited < 10*time.Second; {
		_ = c.nc.SetReadDeadline(time.Now().Add(slice))
		_, err := c.br.ReadByte()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			waited += slice
			continue
		}
		return
	}
	c.t.Fatal("server did not close the connection")
}

func closePayload(code int, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(b, reason...)
}

func waitDone(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timeout waiting for %s", what)
	}
}

// debugState describes c's closing state for a test's failure message.
func (c *wsConn) debugState() string {
	c.mu.Lock()
	state, closeSent, inFlush, queued, code, timer := c.state, c.closeSent, c.inFlush, c.queued, c.closeCode, c.timer != nil
	c.mu.Unlock()
	c.wmu.Lock()
	wclosed := c.wclosed
	c.wmu.Unlock()
	rawClosed := false
	if raw := rawConn(c.nc); raw != nil {
		rawClosed, _ = raw.IsClosed()
	}
	return fmt.Sprintf("state %d, close code %d, close sent %v, in flush %v, %d bytes queued, %d in the socket layer, close timer %v, writes stopped %v, socket closed %v",
		state, code, closeSent, inFlush, queued, c.backlog.Load(), timer, wclosed, rawClosed)
}
