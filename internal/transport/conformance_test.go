package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTextFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{'x'}, n)
		f := TextFrame(p)
		if want := frameHeaderLen(n) + n; len(f) != want || cap(f) != want {
			t.Fatalf("n=%d: len %d cap %d, want %d", n, len(f), cap(f), want)
		}
		got, err := decodeFrame(bytes.NewReader(f))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !got.fin || got.op != opText || !bytes.Equal(got.payload, p) {
			t.Fatalf("n=%d: decoded fin=%v op=%d len=%d", n, got.fin, got.op, len(got.payload))
		}
	}
}

func TestHandshakeErrors(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Handler", "api")
		_, _ = io.WriteString(w, "api "+r.URL.Path)
	})
	s := startServer(t, Config{Handler: api}, newFakeSessions())
	addr := s.Addr().String()
	key := "Sec-WebSocket-Key: " + newKey()
	cases := []struct {
		name, req string
		status    int
	}{
		{"missing key", "GET /app/key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"invalid key", "GET /app/key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"wrong version", "GET /app/key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "\r\nSec-WebSocket-Version: 8\r\n\r\n", 426},
		{"non-GET", "POST /app/key HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key + "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", 400},
		{"not an upgrade", "GET /app/key HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no key in path", upgradeRequest("/app/"), 404},
		{"bare app path", upgradeRequest("/app"), 404},
		{"extra segment", upgradeRequest("/app/key/more"), 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawRequest(t, addr, tc.req)
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Code != tc.status || e.Error == "" {
				t.Fatalf("body %q: want JSON error with code %d", body, tc.status)
			}
			if tc.status == 404 && e.Error != "Not found" {
				t.Fatalf("404 body %q", body)
			}
			if tc.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatal("426 without Sec-WebSocket-Version: 13")
			}
		})
	}
	t.Run("other paths go to the handler", func(t *testing.T) {
		resp, _ := rawRequest(t, addr, upgradeRequest("/apps/1/events"))
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if resp.StatusCode != 200 || resp.Header.Get("X-Handler") != "api" || string(body) != "api /apps/1/events" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
	t.Run("no handler is 404", func(t *testing.T) {
		s2 := startServer(t, Config{}, newFakeSessions())
		resp, _ := rawRequest(t, s2.Addr().String(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestPathPrefix(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{PathPrefix: "/ws"}, fs)
	c := dialWS(t, s.Addr().String(), "/ws/app/key?protocol=7")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("got %q", got)
	}
	resp, _ := rawRequest(t, s.Addr().String(), upgradeRequest("/app/key"))
	if resp.StatusCode != 404 {
		t.Fatalf("unprefixed path: status %d", resp.StatusCode)
	}
}

// answerTimeout is the close timeout of servers whose test client answers
// their close frames: with the default (2 s), a client starved for that
// long on a loaded machine had its socket reset before it answered, and
// the test failed writing its answer (connection reset by peer). The timer
// itself is tested by "server close times out without answer".
const answerTimeout = time.Minute

func TestAdmission(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{CloseTimeout: answerTimeout}, fs)
	addr := s.Addr().String()
	cases := []struct {
		name, path string
		headers    []string
		code       int
		msg        string
	}{
		{"protocol not an integer", "/app/key?protocol=abc", nil, 4006, "Invalid version string format"},
		{"protocol too old", "/app/key?protocol=3", nil, 4007, "Unsupported protocol version"},
		{"protocol too new", "/app/key?protocol=8", nil, 4007, "Unsupported protocol version"},
		{"unknown key", "/app/nope?protocol=7", nil, 4001, "Application does not exist"},
		{"tls required", "/app/tls?protocol=7", nil, 4000, "Application only accepts SSL connections, reconnect using wss://"},
		{"disabled", "/app/disabled?protocol=7", nil, 4003, "Application disabled"},
		{"origin refused", "/app/origins?protocol=7", []string{"Origin: https://evil.com"}, 4009, "Origin not allowed"},
		{"over quota", "/app/full?protocol=7", nil, 4004, "Application is over connection quota"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, addr, tc.path, tc.headers...)
			var e struct {
				Event string `json:"event"`
				Data  struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"data"`
			}
			txt := c.readText()
			if err := json.Unmarshal([]byte(txt), &e); err != nil || e.Event != "pusher:error" || e.Data.Code != tc.code || e.Data.Message != tc.msg {
				t.Fatalf("first frame %q", txt)
			}
			if reason := c.expectClose(tc.code); reason != tc.msg {
				t.Fatalf("close reason %q", reason)
			}
			c.writeFrame(true, opClose, closePayload(tc.code, ""))
			c.expectEOF()
		})
	}
	accepted := []struct{ name, path, origin string }{
		{"no protocol param", "/app/key", ""},
		{"protocol 4", "/app/key?protocol=4", ""},
		{"exact origin", "/app/origins?protocol=7", "https://a.com"},
		{"origin pattern", "/app/origins?protocol=7", "https://www.example.com"},
		{"no origin header", "/app/origins?protocol=7", ""},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.origin != "" {
				h = append(h, "Origin: "+tc.origin)
			}
			c := dialWS(t, addr, tc.path, append(h, "User-Agent: test-agent")...)
			if got := c.readText(); got != string(establishedJSON) {
				t.Fatalf("got %q", got)
			}
			sess := fs.next(t)
			if sess.info.Origin != tc.origin || sess.info.UserAgent != "test-agent" || sess.info.TLS || sess.info.RemoteAddr == "" {
				t.Fatalf("info %+v", sess.info)
			}
		})
	}
}

func openSession(t *testing.T, s *Server, fs *fakeSessions) (*wsClient, *fakeSession) {
	t.Helper()
	c := dialWS(t, s.Addr().String(), "/app/key?protocol=7")
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("got %q", got)
	}
	return c, fs.next(t)
}

func recvMsg(t *testing.T, sess *fakeSession) []byte {
	t.Helper()
	select {
	case m := <-sess.msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func TestMessages(t *testing.T) {
	fs := newFakeSessions()
	fs.echo = true
	// No bound on pending messages: "no overlapping callbacks" sends 400
	// frames at once, past the default bound (TestPendingMessagesAreBounded
	// checks that one), and whether the bound is reached depends on how fast
	// the workers run.
	s := startServer(t, Config{MaxMessageSize: 1000, MaxPendingMessages: -1, CloseTimeout: answerTimeout}, fs)

	t.Run("text and binary", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		c.writeFrame(true, 0x1, []byte(`{"event":"pusher:ping","data":{}}`))
		if m := recvMsg(t, sess); string(m) != `{"event":"pusher:ping","data":{}}` {
			t.Fatalf("got %q", m)
		}
		if got := c.readText(); got != `{"event":"pusher:ping","data":{}}` {
			t.Fatalf("echo %q", got)
		}
		c.writeFrame(true, 0x2, []byte{0, 1, 2})
		if m := recvMsg(t, sess); !bytes.Equal(m, []byte{0, 1, 2}) {
			t.Fatalf("binary %v", m)
		}
		if sess.touches.Load() < 2 {
			t.Fatalf("touches %d", sess.touches.Load())
		}
	})

	t.Run("fragmented with interleaved control frames", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		before := sess.touches.Load()
		c.writeFrame(false, 0x1, []byte(`{"event":`))
		c.writeFrame(true, opPing, []byte("p1"))
		c.writeFrame(false, 0x0, []byte(`"client-x",`))
		c.writeFrame(true, opPong, nil)
		c.writeFrame(true, 0x0, []byte(`"data":"é"}`))
		if m := recvMsg(t, sess); string(m) != `{"event":"client-x","data":"é"}` {
			t.Fatalf("reassembled %q", m)
		}
		f := c.read()
		if f.op != opPong || string(f.payload) != "p1" {
			t.Fatalf("want pong p1, got op %#x %q", f.op, f.payload)
		}
		if got := c.readText(); got != `{"event":"client-x","data":"é"}` {
			t.Fatalf("echo %q", got)
		}
		if n := sess.touches.Load() - before; n < 3 {
			t.Fatalf("touches %d, want >= 3 (ping, pong, message)", n)
		}
	})

	t.Run("UTF-8 split across fragments", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		e := []byte("é")
		c.writeFrame(false, 0x1, e[:1])
		c.writeFrame(true, 0x0, e[1:])
		if m := recvMsg(t, sess); string(m) != "é" {
			t.Fatalf("got %q", m)
		}
	})

	t.Run("invalid UTF-8 is 1007", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		c.writeFrame(true, 0x1, []byte{'a', 0xff, 'b'})
		c.expectClose(1007)
		c.writeFrame(true, opClose, closePayload(1007, ""))
		c.expectEOF()
		waitDone(t, sess.done, "Closed")
	})

	t.Run("oversized is 1009", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		c.writeFrame(true, 0x1, bytes.Repeat([]byte{'a'}, 1001))
		c.expectClose(1009)
		c.expectEOF()
		waitDone(t, sess.done, "Closed")
	})

	t.Run("oversized across fragments is 1009", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		c.writeFrame(false, 0x1, bytes.Repeat([]byte{'a'}, 600))
		c.writeFrame(true, 0x0, bytes.Repeat([]byte{'a'}, 600))
		c.expectClose(1009)
		c.expectEOF()
		waitDone(t, sess.done, "Closed")
	})

	t.Run("client close handshake", func(t *testing.T) {
		// A server of its own, shut down below: Shutdown returns after
		// the engine ran every close callback, so a second Closed is in.
		own := startServer(t, Config{MaxMessageSize: 1000}, fs)
		c, sess := openSession(t, own, fs)
		c.writeFrame(true, opClose, closePayload(1000, "bye"))
		c.expectClose(1000)
		c.expectEOF()
		waitDone(t, sess.done, "Closed")
		if err := own.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := sess.closed.Load(); n != 1 {
			t.Fatalf("Closed called %d times", n)
		}
		if sess.conn.Send(TextFrame([]byte("x")), 0) {
			t.Fatal("Send after close returned true")
		}
		sess.conn.Close(1000, "again") // no-op, no panic
	})

	t.Run("close without status", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		c.writeFrame(true, opClose, nil)
		f := c.read()
		if f.op != opClose || len(f.payload) != 0 {
			t.Fatalf("want empty close, got op %#x %q", f.op, f.payload)
		}
		waitDone(t, sess.done, "Closed")
	})

	t.Run("abrupt TCP close", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		_ = c.nc.Close()
		waitDone(t, sess.done, "Closed")
		if sess.conn.Send(TextFrame([]byte("x")), 0) {
			t.Fatal("Send after close returned true")
		}
	})

	t.Run("server close", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		sess.conn.Send(TextFrame([]byte("last")), 0)
		sess.conn.Close(4200, "Server is restarting")
		sess.conn.Close(4000, "ignored")
		if sess.conn.Send(TextFrame([]byte("x")), 0) {
			t.Fatal("Send while closing returned true")
		}
		if got := c.readText(); got != "last" {
			t.Fatalf("got %q", got)
		}
		if r := c.expectClose(4200); r != "Server is restarting" {
			t.Fatalf("reason %q", r)
		}
		c.writeFrame(true, opClose, closePayload(4200, ""))
		c.expectEOF()
		waitDone(t, sess.done, "Closed")
	})

	t.Run("server close times out without answer", func(t *testing.T) {
		own := startServer(t, Config{CloseTimeout: time.Second}, fs)
		c, sess := openSession(t, own, fs)
		start := time.Now()
		sess.conn.Close(1000, "")
		c.expectClose(1000)
		// Seen once in 300 runs under a load of 50 (no EOF 10 s after the
		// close frame, the subtest 19 s long): the process stalled past the
		// read deadline (see expectEOF). The server's state is logged
		// should it fail again.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("server side after %v: %s", time.Since(start), sess.conn.(*wsConn).debugState())
			}
		})
		c.expectEOF()
		if d := time.Since(start); d < time.Second {
			t.Fatalf("closed after %v, before the close timeout", d)
		}
		waitDone(t, sess.done, "Closed")
	})

	t.Run("long close reason is cut", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		sess.conn.Close(4100, strings.Repeat("é", 100))
		f := c.read()
		if f.op != opClose || len(f.payload) > 125 || binary.BigEndian.Uint16(f.payload) != 4100 {
			t.Fatalf("close frame %d bytes", len(f.payload))
		}
	})

	t.Run("no overlapping callbacks", func(t *testing.T) {
		c, sess := openSession(t, s, fs)
		for i := 0; i < 200; i++ {
			c.writeFrame(true, opPing, nil)
			c.writeFrame(true, 0x1, fmt.Appendf(nil, "m%d", i))
		}
		for i := 0; i < 200; i++ {
			if m := recvMsg(t, sess); string(m) != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d: %q", i, m)
			}
		}
		_ = c.nc.Close()
		waitDone(t, sess.done, "Closed")
		if sess.overlap.Load() {
			t.Fatal("session callbacks overlapped or came after Closed")
		}
	})
}

func TestPanicInSession(t *testing.T) {
	fs := newFakeSessions()
	fs.panicOn = "boom"
	s := startServer(t, Config{CloseTimeout: answerTimeout}, fs)
	c, sess := openSession(t, s, fs)
	c.writeFrame(true, 0x1, []byte("boom"))
	c.expectClose(1011)
	c.writeFrame(true, opClose, closePayload(1011, ""))
	waitDone(t, sess.done, "Closed")
	c2, _ := openSession(t, s, fs) // the server goes on
	c2.writeFrame(true, opClose, closePayload(1000, ""))
	c2.expectClose(1000)
}

func TestCoalescingOrder(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{WriteQueueBytes: 64 << 20}, fs)
	c, sess := openSession(t, s, fs)
	const n = 20000
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = TextFrame(fmt.Appendf(nil, `{"event":"e","data":"%d"}`, i))
	}
	go func() {
		for _, f := range frames {
			if !sess.conn.Send(f, 0) {
				panic("Send returned false")
			}
		}
	}()
	for i := 0; i < n; i++ {
		want := fmt.Sprintf(`{"event":"e","data":"%d"}`, i)
		if got := c.readText(); got != want {
			t.Fatalf("frame %d: %q, want %q", i, got, want)
		}
	}
}

func TestSharedFrameNotModified(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{}, fs)
	c1, s1 := openSession(t, s, fs)
	c2, s2 := openSession(t, s, fs)
	f := TextFrame([]byte("shared"))
	orig := bytes.Clone(f)
	s1.conn.Send(f, 0)
	s2.conn.Send(f, 0)
	if c1.readText() != "shared" || c2.readText() != "shared" {
		t.Fatal("bad frame")
	}
	if !bytes.Equal(f, orig) {
		t.Fatal("frame modified")
	}
}

func TestSlowConsumer(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{WriteQueueBytes: 256 << 10}, fs)
	slow, slowSess := openSession(t, s, fs)
	fast, fastSess := openSession(t, s, fs)

	payload := bytes.Repeat([]byte{'x'}, 16<<10)
	big := TextFrame(payload)
	small := TextFrame([]byte("tick"))

	// The fast client drains concurrently.
	got := make(chan int, 1)
	go func() {
		n := 0
		for {
			f, err := decodeFrame(fast.br)
			if err != nil || f.op != opText {
				got <- n
				return
			}
			if string(f.payload) == "tick" {
				n++
				if n == 100 {
					got <- n
					return
				}
			}
		}
	}()
	_ = fast.nc.SetReadDeadline(time.Now().Add(30 * time.Second))

	// The slow client reads nothing until Send refuses.
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for slowSess.conn.Send(big, 0) {
		sent++
		if time.Now().After(deadline) {
			t.Fatalf("Send never refused after %d frames", sent)
		}
		if sent%8 == 0 {
			time.Sleep(time.Millisecond) // let the kernel buffers fill
		}
	}
	if s.SlowConsumers() != 1 {
		t.Fatalf("slow consumers %d", s.SlowConsumers())
	}
	if slowSess.conn.Send(small, 0) {
		t.Fatal("Send after overflow returned true")
	}
	for i := 0; i < 100; i++ {
		if !fastSess.conn.Send(small, 0) {
			t.Fatal("healthy connection refused a frame")
		}
	}
	select {
	case n := <-got:
		if n != 100 {
			t.Fatalf("healthy client got %d frames", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("healthy client starved")
	}
	// Now the slow client reads: whole frames, then close 4100.
	_ = slow.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	frames := 0
	for {
		f, err := decodeFrame(slow.br)
		if err != nil {
			t.Fatalf("after %d frames: %v", frames, err)
		}
		if f.op == opClose {
			if code := binary.BigEndian.Uint16(f.payload); code != 4100 {
				t.Fatalf("close code %d", code)
			}
			slow.writeFrame(true, opClose, closePayload(4100, ""))
			break
		}
		frames++
	}
	if frames >= sent || frames == 0 {
		t.Fatalf("received %d of %d frames", frames, sent)
	}
	waitDone(t, slowSess.done, "Closed")
	t.Logf("sent %d frames of 16 KiB before overflow, %d delivered before the close", sent, frames)
}

func TestHandshakeTimeout(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond}, fs)
	// A client that never finishes its request is dropped.
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	_, _ = io.WriteString(nc, "GET /app/key HTTP/1.1\r\nHost: x\r\n")
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("want EOF, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dropped after %v", d)
	}
	// An upgraded connection is not subject to it. A connection accepted
	// after the upgrade, left unfinished, is the marker: its handshake
	// deadline is armed later, so once it was cut the upgraded one's
	// would have fired too.
	c, sess := openSession(t, s, fs)
	marker, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	_ = marker.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(marker); err != nil {
		t.Fatalf("marker: want EOF, got %v", err)
	}
	if !sess.conn.Send(TextFrame([]byte("still here")), 0) {
		t.Fatal("upgraded connection closed by the handshake timeout")
	}
	if got := c.readText(); got != "still here" {
		t.Fatalf("got %q", got)
	}
}

func TestNoCompressionNegotiated(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{}, fs)
	resp, c := rawRequest(t, s.Addr().String(), upgradeRequest("/app/key", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"))
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("negotiated %q", ext)
	}
	if got := c.readText(); got != string(establishedJSON) {
		t.Fatalf("got %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	s1 := startServer(t, Config{}, newFakeSessions())
	s2, err := New(Config{Addr: s1.Addr().String()}, newFakeSessions())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", PathPrefix: "ws"}, newFakeSessions()); err == nil {
		t.Fatal("bad prefix accepted")
	}
}
