package transport

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestSilentClientIsReset: a client that stops reading is cut with 4100 and,
// when it does not answer the close in time, its socket is reset, so the
// kernel does not keep megabytes of unsent data for it after the close.
func TestSilentClientIsReset(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{WriteQueueBytes: 64 << 10, CloseTimeout: 500 * time.Millisecond}, fs)
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// A small receive window, as a client that reads nothing keeps it.
	_ = nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	resp, c := requestOn(t, nc, upgradeRequest("/app/key"))
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_ = c.readText()
	sess := fs.next(t)
	frame := TextFrame(make([]byte, 8<<10))
	for sess.conn.Send(frame, 0) {
		time.Sleep(100 * time.Microsecond) // let the kernel buffers fill
	}
	waitDone(t, sess.done, "Closed")
	// Without the reset the kernel trickles its send buffer (MBs) into the
	// shut window for minutes; the read below would time out.
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.br.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the silent client's socket still delivers data after the server closed it")
		}
		break
	}
}
