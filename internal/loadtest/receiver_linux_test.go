//go:build linux

package loadtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-ws/herald/internal/testwait"
)

// receiverPair returns a receiver reading the client end of a loopback TCP
// connection, the server end, and the channel that reports the end.
func receiverPair(t *testing.T) (*client, net.Conn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	r, err := newEpollReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	st := newRunStats()
	st.winStart.Store(0)
	c := &client{sh: &st.shards[0], st: st}
	ended := make(chan error, 1)
	if err := r.add(c, cli.(syscall.Conn), func(err error) { ended <- err }); err != nil {
		t.Fatal(err)
	}
	cli.Close() // the receiver holds its own descriptor
	return c, srv, ended
}

func frameBytes(t *testing.T, op ws.OpCode, fin bool, payload []byte) []byte {
	t.Helper()
	b, err := ws.CompileFrame(ws.NewFrame(op, fin, payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eventFrame(seq uint64) []byte {
	data := appendPayload(nil, 0, seq, time.Now().UnixNano(), 60)
	return []byte(`{"event":"e","channel":"c","data":"` + string(data) + `"}`)
}

func waitDeliveries(t *testing.T, c *client, want uint64) {
	t.Helper()
	if !testwait.Until(5*time.Second, func() bool { return c.sh.deliveries.Load() >= want }) {
		t.Fatalf("%d deliveries, want %d", c.sh.deliveries.Load(), want)
	}
}

func TestReceiverFramesSplitAnywhere(t *testing.T) {
	c, srv, _ := receiverPair(t)
	// Three events: whole, fragmented in three, then one of 70 KB (longer
	// than one read) so that it arrives over several reads.
	var stream []byte
	stream = append(stream, frameBytes(t, ws.OpText, true, eventFrame(1))...)
	msg := eventFrame(2)
	stream = append(stream, frameBytes(t, ws.OpText, false, msg[:10])...)
	stream = append(stream, frameBytes(t, ws.OpPong, true, nil)...) // control frames may interleave
	stream = append(stream, frameBytes(t, ws.OpContinuation, false, msg[10:20])...)
	stream = append(stream, frameBytes(t, ws.OpContinuation, true, msg[20:])...)
	big := appendPayload(nil, 0, 3, time.Now().UnixNano(), 70<<10)
	stream = append(stream, frameBytes(t, ws.OpText, true, []byte(`{"event":"e","data":"`+string(big)+`"}`))...)
	// Write it a few bytes at a time, so that frame headers are split too.
	for i := 0; i < len(stream); {
		n := min(len(stream)-i, 1+i%7)
		if i > 200 {
			n = min(len(stream)-i, 4096)
		}
		if _, err := srv.Write(stream[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	waitDeliveries(t, c, 3)
	if v := c.sh.violations.Load(); v != 0 {
		t.Errorf("%d order violations", v)
	}
	if m := c.sh.measured.Load(); m != 3 {
		t.Errorf("%d measured, want 3", m)
	}
}

func TestReceiverAnswersPingsAndClose(t *testing.T) {
	c, srv, ended := receiverPair(t)
	if _, err := srv.Write(frameBytes(t, ws.OpPing, true, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Write(frameBytes(t, ws.OpText, true, []byte(`{"event":"pusher:ping","data":{}}`))); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(srv)
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	readFrame := func() (ws.Header, []byte) {
		t.Helper()
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		if !h.Masked {
			t.Errorf("client frame %v not masked", h.OpCode)
		}
		ws.Cipher(p, h.Mask, 0)
		return h, p
	}
	if h, p := readFrame(); h.OpCode != ws.OpPong || string(p) != "hi" {
		t.Errorf("got %v %q, want a pong with the ping's payload", h.OpCode, p)
	}
	if h, p := readFrame(); h.OpCode != ws.OpText || string(p) != `{"event":"pusher:pong","data":{}}` {
		t.Errorf("got %v %q, want pusher:pong", h.OpCode, p)
	}
	if c.st.pingsAnswer.Load() != 1 {
		t.Errorf("pings answered %d", c.st.pingsAnswer.Load())
	}
	// The server closes with 4100: the close is echoed and the end says why.
	if _, err := srv.Write(frameBytes(t, ws.OpClose, true, ws.NewCloseFrameBody(4100, "Slow consumer"))); err != nil {
		t.Fatal(err)
	}
	if h, p := readFrame(); h.OpCode != ws.OpClose || len(p) < 2 || int(p[0])<<8|int(p[1]) != 4100 {
		t.Errorf("got %v %v, want the close echoed", h.OpCode, p)
	}
	select {
	case err := <-ended:
		var ce *closedError
		if !errors.As(err, &ce) || ce.code != 4100 {
			t.Errorf("end %v, want closed 4100", err)
		}
		if k := errKind("connection lost", err); k != "connection lost: closed 4100" {
			t.Errorf("errKind %q", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the end was not reported")
	}
}

func TestReceiverRejectsBadFrames(t *testing.T) {
	for name, raw := range map[string][]byte{
		"reserved opcode":     {0x83, 0},
		"continuation first":  {0x80, 1, 'x'},
		"new message in frag": append([]byte{0x01, 1, 'x'}, 0x81, 1, 'y'),
		"over 1 MiB":          {0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, srv, ended := receiverPair(t)
			if _, err := srv.Write(raw); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-ended:
				if err == nil || err == io.EOF {
					t.Errorf("end %v, want an error", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a bad frame did not end the connection")
			}
		})
	}
}

func TestReceiverReportsEOFAndStops(t *testing.T) {
	_, srv, ended := receiverPair(t)
	srv.Close()
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("end %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("EOF was not reported")
	}
}
