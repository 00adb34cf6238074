package transport

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

func FuzzTextFrame(f *testing.F) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		f.Add(bytes.Repeat([]byte{'a'}, n))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fr := TextFrame(payload)
		got, err := decodeFrame(bytes.NewReader(fr))
		if err != nil {
			t.Fatal(err)
		}
		if !got.fin || got.op != opText || !bytes.Equal(got.payload, payload) {
			t.Fatalf("decoded fin=%v op=%d len=%d, want len %d", got.fin, got.op, len(got.payload), len(payload))
		}
		if len(fr) != frameHeaderLen(len(payload))+len(payload) {
			t.Fatalf("frame length %d", len(fr))
		}
	})
}

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
	fuzzFS   *fakeSessions
)

// FuzzInbound feeds arbitrary bytes to a live connection after the
// upgrade, then drops the TCP connection: the server must neither panic
// nor hang (the session's Closed must follow within a bound).
func FuzzInbound(f *testing.F) {
	f.Add(clientFrame(true, 0x1, []byte(`{"event":"pusher:ping","data":{}}`)))
	f.Add(append(clientFrame(false, 0x1, []byte("ab")), append(clientFrame(true, opPing, []byte("x")), clientFrame(true, 0x0, []byte("cd"))...)...))
	f.Add(clientFrame(true, 0x2, []byte{0, 1, 2, 3}))
	f.Add(clientFrame(true, 0x1, []byte{0xff, 0xfe}))
	f.Add(clientFrame(true, opClose, closePayload(1000, "bye")))
	f.Add(clientFrame(true, opClose, []byte{0x03}))
	f.Add(clientFrame(true, 0x3, nil))
	f.Add(clientFrame(false, opPing, nil))
	f.Add(clientFrame(true, 0x0, []byte("orphan continuation")))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}) // unmasked
	f.Add(bytes.Repeat(clientFrame(true, 0x1, []byte("x")), 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		fuzzOnce.Do(func() {
			fuzzFS = newFakeSessions()
			fuzzFS.echo = true
			s, err := New(Config{Addr: "127.0.0.1:0", MaxMessageSize: 4096, CloseTimeout: 200 * time.Millisecond}, fuzzFS)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			fuzzSrv = s // shared by every input, never shut down
		})
		c := dialWS(t, fuzzSrv.Addr().String(), "/app/key")
		if got := c.readText(); got != string(establishedJSON) {
			t.Fatalf("got %q", got)
		}
		sess := fuzzFS.next(t)
		_, _ = c.nc.Write(data)
		// Drain whatever the server answers for a moment, then drop.
		_ = c.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := c.nc.Read(buf); err != nil {
				break
			}
		}
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.nc.Close()
		select {
		case <-sess.done:
		case <-time.After(5 * time.Second):
			t.Fatal("Closed not called within 5 s")
		}
		if sess.overlap.Load() {
			t.Fatal("overlapping session callbacks")
		}
	})
}
