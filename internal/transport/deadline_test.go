package transport

import (
	"testing"
	"time"
)

// TestLateHandshakeDeadline replays the accept loop arming the HTTP
// keep-alive deadline after the socket was already upgraded: the upgraded
// connection must not be closed by it.
func TestLateHandshakeDeadline(t *testing.T) {
	fs := newFakeSessions()
	s := startServer(t, Config{HandshakeTimeout: 5 * time.Second}, fs)
	for _, late := range []bool{true, false} {
		// The marker: a connection whose deadline is armed after the one
		// under test, due later and never cleared; once it has cut its
		// connection, the other deadline would have fired. It is accepted
		// first, so the accept loop is done with it (no late clear pending)
		// by the time it accepts the connection under test.
		_, msess := openSession(t, s, fs)
		mraw := rawConn(msess.conn.(*wsConn).nc)
		if mraw == nil {
			t.Fatal("rawConn: no engine socket under the marker")
		}
		c, sess := openSession(t, s, fs)
		wc := sess.conn.(*wsConn)
		raw := rawConn(wc.nc)
		if raw == nil {
			t.Fatal("rawConn: no engine socket under the connection")
		}
		if late {
			// The accept loop is still adding the socket when it is upgraded.
			s.setupMu.Lock()
			s.settingUp = raw
			s.setupMu.Unlock()
			s.clearHandshakeDeadline(wc.nc)
			_ = raw.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // the loop arms it late
			s.acceptLoopIdle()                                              // and comes back for the next socket
		} else {
			_ = raw.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			s.clearHandshakeDeadline(wc.nc)
		}
		// Due 100 ms later: the two timers run their callbacks on goroutines
		// of their own, so the margin keeps the marker's from overtaking.
		_ = mraw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		waitDone(t, msess.done, "the marker's deadline")
		if !sess.conn.Send(TextFrame([]byte("still here")), 0) {
			t.Fatalf("late=%v: upgraded connection closed by the handshake deadline", late)
		}
		if got := c.readText(); got != "still here" {
			t.Fatalf("late=%v: got %q", late, got)
		}
	}
}
