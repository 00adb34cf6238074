//go:build linux

package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// epollReceiver reads the subscribed connections of a run from a few
// goroutines blocked in epoll_wait instead of one goroutine per connection.
//
// Why: the load tool shares the box with the server it measures, so every
// microsecond it spends per delivery is taken from the server in the very
// burst being timed. With a goroutine per connection (gorilla), a
// 1,000-subscriber event cost the tool about 7.5 µs per delivery, a third
// of it in the Go scheduler parking and waking the readers and another
// third in the ACK that read(2) sends back through the server's TCP stack.
// Here a poller reads each ready socket once per wake-up, parses the frames
// in place and asks for a delayed ACK (delayAck).
//
// Connections are dialled and subscribed with gorilla as before, then
// handed over: the socket is duplicated, gorilla's copy is closed and the
// duplicate is polled. Nothing may be in flight from the server at the
// hand-over (gorilla may have buffered it): a Pusher server sends nothing
// after subscription_succeeded until an event is published, and the
// scenarios publish only once every connection is open.
type epollReceiver struct {
	pollers []*poller
	next    uint32
	mu      sync.Mutex
	wg      sync.WaitGroup
	stopped bool
}

// rconn is one connection owned by a receiver.
type rconn struct {
	p    *poller
	c    *client
	fd   int
	slot int32
	// onEnd is called once when the connection ends, with the cause (nil
	// after a normal close).
	onEnd func(error)

	// Owned by the poller goroutine.
	pending []byte // the start of a frame not yet complete
	msg     []byte // the fragments of a message not yet complete
	inMsg   bool   // a fragmented message has begun
	ended   bool

	// wmu serialises writes with closing the descriptor.
	wmu       sync.Mutex
	fdClosed  bool
	closeSent bool
}

type poller struct {
	epfd int
	// ep is epfd as a file in Go's own netpoller: the loop parks on it
	// until some socket is ready, instead of blocking a thread in
	// epoll_wait (a thread blocked in a syscall keeps the runtime's sysmon
	// waking every 20 µs-10 ms to take its P back: a fifth of the tool's CPU
	// in a first version). Closing it stops the loop.
	ep  *os.File
	raw syscall.RawConn

	mu    sync.Mutex
	conns []*rconn // by slot
	free  []int32
}

// receiverPollers is the number of poller goroutines: one per CPU the
// process may use, as reading is pure CPU work once a socket is ready.
func receiverPollers() int { return max(1, min(runtime.GOMAXPROCS(0), 8)) }

func newEpollReceiver() (*epollReceiver, error) {
	r := &epollReceiver{}
	for range receiverPollers() {
		p, err := newPoller()
		if err != nil {
			r.stop()
			return nil, err
		}
		r.pollers = append(r.pollers, p)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			p.loop()
		}()
	}
	return r, nil
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	// A non-blocking descriptor goes into Go's netpoller.
	ep := os.NewFile(uintptr(epfd), "epoll")
	raw, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	return &poller{epfd: epfd, ep: ep, raw: raw}, nil
}

// add takes over the socket under sc (whose Go side the caller closes
// afterwards) and delivers what it receives to c, setting c.rc first.
// onEnd is called once when the connection ends.
func (r *epollReceiver) add(c *client, sc syscall.Conn, onEnd func(error)) error {
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("dup: %w", derr)
	}
	// The duplicate shares the file description, which Go already made
	// non-blocking; set it anyway in case the Go side ever changes.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		unix.Close(fd)
		return errReceiverStopped
	}
	p := r.pollers[r.next%uint32(len(r.pollers))]
	r.next++
	r.mu.Unlock()

	rc := &rconn{p: p, c: c, fd: fd, onEnd: onEnd}
	c.rc = rc // before the poller can see it
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		rc.slot = p.free[n-1]
		p.free = p.free[:n-1]
		p.conns[rc.slot] = rc
	} else {
		rc.slot = int32(len(p.conns))
		p.conns = append(p.conns, rc)
	}
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd), Pad: rc.slot}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.release(rc)
		unix.Close(fd)
		c.rc = nil
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func (p *poller) release(rc *rconn) {
	p.mu.Lock()
	if int(rc.slot) < len(p.conns) && p.conns[rc.slot] == rc {
		p.conns[rc.slot] = nil
		p.free = append(p.free, rc.slot)
	}
	p.mu.Unlock()
}

// readBufSize is what one read may take: many coalesced frames at once.
const readBufSize = 64 << 10

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 256)
	ready := make([]*rconn, 0, 256)
	buf := make([]byte, readBufSize)
	n := 0
	wait := func(fd uintptr) bool {
		var err error
		n, err = unix.EpollWait(int(fd), events, 0)
		return err != unix.EINTR && n > 0 // false: park until ready
	}
	for {
		if err := p.raw.Read(wait); err != nil {
			return // closed by stop
		}
		ready = ready[:0]
		p.mu.Lock()
		for i := range events[:n] {
			slot := events[i].Pad
			if int(slot) < len(p.conns) {
				if rc := p.conns[slot]; rc != nil && rc.fd == int(events[i].Fd) {
					ready = append(ready, rc)
				}
			}
		}
		p.mu.Unlock()
		for i, rc := range ready {
			rc.readOnce(buf)
			ready[i] = nil
		}
	}
}

// readOnce reads what the socket has (level-triggered: anything left is
// reported again) and handles every complete frame.
func (rc *rconn) readOnce(buf []byte) {
	if rc.ended {
		return
	}
	n, err := unix.Read(rc.fd, buf)
	if err != nil {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		rc.end(err)
		return
	}
	if n == 0 {
		rc.end(io.EOF)
		return
	}
	delayAck(uintptr(rc.fd))
	data := buf[:n]
	if len(rc.pending) > 0 {
		rc.pending = append(rc.pending, data...)
		data = rc.pending
	}
	rest, err := rc.frames(data)
	if err != nil {
		rc.end(err)
		return
	}
	if len(rest) == 0 {
		rc.pending = rc.pending[:0]
		if cap(rc.pending) > 4096 {
			rc.pending = nil // do not keep a large frame's buffer
		}
		return
	}
	if len(rest) > maxMessage+14 {
		rc.end(errors.New("frame larger than 1 MiB"))
		return
	}
	// Keep the incomplete frame (copy: data may be the shared buffer, or
	// overlap pending itself).
	rc.pending = append(rc.pending[:0:0], rest...)
}

// frames handles every complete frame at the start of data and returns the
// incomplete rest.
func (rc *rconn) frames(data []byte) ([]byte, error) {
	var rd bytes.Reader
	for len(data) >= 2 {
		rd.Reset(data)
		h, err := ws.ReadHeader(&rd)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return data, nil
			}
			return nil, fmt.Errorf("bad frame header: %w", err)
		}
		hl := len(data) - rd.Len()
		if h.Length > int64(maxMessage) {
			return nil, errors.New("frame larger than 1 MiB")
		}
		end := hl + int(h.Length)
		if end > len(data) {
			return data, nil
		}
		payload := data[hl:end]
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		if err := rc.frame(h, payload); err != nil {
			return nil, err
		}
		data = data[end:]
	}
	return data, nil
}

// errPeerClosed ends a connection whose server sent a close frame.
var errPeerClosed = errors.New("closed by server")

func (rc *rconn) frame(h ws.Header, payload []byte) error {
	switch h.OpCode {
	case ws.OpText, ws.OpBinary, ws.OpContinuation:
		if (h.OpCode == ws.OpContinuation) != rc.inMsg {
			return errors.New("fragments out of sequence")
		}
		if h.Fin && !rc.inMsg {
			rc.c.handle(payload)
			return nil
		}
		if len(rc.msg)+len(payload) > maxMessage {
			return errors.New("message larger than 1 MiB")
		}
		rc.msg = append(rc.msg, payload...)
		rc.inMsg = !h.Fin
		if h.Fin {
			rc.c.handle(rc.msg)
			rc.msg = rc.msg[:0]
		}
	case ws.OpPing:
		return rc.write(ws.OpPong, payload)
	case ws.OpPong:
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(payload)
		rc.wmu.Lock()
		echo := !rc.closeSent && !rc.fdClosed
		rc.closeSent = true
		rc.wmu.Unlock()
		if echo {
			_ = rc.writeFrame(ws.OpClose, payload)
		}
		if code == ws.StatusNormalClosure || code == ws.StatusGoingAway {
			return errPeerClosed
		}
		return &closedError{code: int(code), reason: reason}
	default:
		return fmt.Errorf("unknown opcode %d", h.OpCode)
	}
	return nil
}

// end closes the descriptor and reports the end once.
func (rc *rconn) end(cause error) {
	if rc.ended {
		return
	}
	rc.ended = true
	rc.closeFD()
	rc.p.release(rc)
	if errors.Is(cause, errPeerClosed) {
		cause = io.EOF
	}
	rc.onEnd(cause)
}

func (rc *rconn) closeFD() {
	rc.wmu.Lock()
	if !rc.fdClosed {
		rc.fdClosed = true
		// Closing removes it from the epoll set (it is the last descriptor
		// of the socket).
		unix.Close(rc.fd)
	}
	rc.wmu.Unlock()
}

// write sends one masked client frame (text or a control frame).
func (rc *rconn) write(op ws.OpCode, payload []byte) error {
	rc.wmu.Lock()
	closing := rc.closeSent
	rc.wmu.Unlock()
	if closing {
		return nil // nothing may follow our close frame
	}
	return rc.writeFrame(op, payload)
}

func (rc *rconn) writeFrame(op ws.OpCode, payload []byte) error {
	f := ws.MaskFrameInPlace(ws.NewFrame(op, true, append([]byte(nil), payload...)))
	b, err := ws.CompileFrame(f)
	if err != nil {
		return err
	}
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	if rc.fdClosed {
		return net.ErrClosed
	}
	if op == ws.OpClose {
		rc.closeSent = true
	}
	// Client frames are a few dozen bytes on a socket that is otherwise
	// only read from: the kernel takes them whole. A short write means the
	// server stopped reading, which the run reports as an error.
	n, err := unix.Write(rc.fd, b)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n < len(b) {
		return errors.New("short write: the server does not read")
	}
	return nil
}

// sendText sends one text message.
func (rc *rconn) sendText(b []byte) error { return rc.write(ws.OpText, b) }

// sendClose starts the close handshake; the poller closes the socket when
// the server answers (or stop does).
func (rc *rconn) sendClose(code int) {
	rc.wmu.Lock()
	sent := rc.closeSent
	rc.wmu.Unlock()
	if !sent {
		_ = rc.writeFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), ""))
	}
}

// stop ends the pollers and closes every connection still open.
func (r *epollReceiver) stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	r.mu.Unlock()
	for _, p := range r.pollers {
		_ = p.ep.Close() // wakes the loop parked on it
	}
	r.wg.Wait()
	for _, p := range r.pollers {
		p.mu.Lock()
		left := append([]*rconn(nil), p.conns...)
		p.mu.Unlock()
		for _, rc := range left {
			if rc != nil {
				rc.end(errReceiverStopped) // the poller is gone: safe here
			}
		}
	}
}

var errReceiverStopped = errors.New("receiver stopped")
