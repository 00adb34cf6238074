package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"
	"github.com/herald-ws/herald/third_party/nbio/nbhttp/websocket"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Connection states, in order.
const (
	stateOpen    uint8 = iota
	stateClosing       // a close frame is queued (or the peer sent one)
	stateClosed        // the socket is gone
)

// wsConn is one upgraded connection. It implements hub.Conn.
//
// Outbound data lives in two places: queue (frames handed to Send and not
// yet passed to the socket, by reference) and the socket layer's own buffer
// (bytes passed to the socket that the kernel did not take yet, counted in
// backlog). Their sum is what the queue bound limits. A connection is
// given to the flushers only while backlog is zero, so a client that does
// not read keeps at most one batch in the socket layer and the rest, by
// reference, in queue.
type wsConn struct {
	srv *Server
	wsc *websocket.Conn
	nc  net.Conn   // where bytes are written (the nbio or TLS conn)
	raw *nbio.Conn // the socket under nc (nil in tests that fake it)

	// session is set once at admission, in the connection's serial job,
	// and only read by later jobs of the same connection.
	session hub.Session
	// appID and metrics are set at admission by Bind, before anything is
	// sent on the connection, and only read after.
	appID   string
	metrics AppMetrics

	// backlog is the number of bytes passed to nc that the kernel has not
	// taken yet (kept up to date by Server.onWritten; never negative).
	backlog atomic.Int64

	// wmu serialises the writes to nc with closing it (the TLS layer's
	// Close is not safe against a concurrent Write); wclosed, under wmu,
	// stops the writes once the socket is being closed.
	wmu     sync.Mutex
	wclosed bool

	mu        sync.Mutex
	queue     [][]byte // frames waiting for a flusher
	spare     [][]byte // the other buffer of the double-buffered queue
	queued    int      // bytes in queue
	oldestAt  int64    // the first non-zero at of the frames in queue (0: none)
	state     uint8
	inFlush   bool // on the flush queue or being flushed
	closeSent bool // our close frame has been passed to nc (or we must not send one)
	admitted  bool // the session accepted the connection
	// inJob is set while the connection's serial job runs a session
	// callback (admission, a message): unstamped frames queued meanwhile
	// (its replies) are written by the job itself when the callback
	// returns (endJob), in one write and without waking a flusher. Stamped
	// frames (every fanout's) and the close frame are handed to the
	// flushers as before.
	inJob     bool
	closeCode int // the first close code sent or received (0: none yet)
	timer     *time.Timer

	// inbound is the message bucket (inbound.go), used by the
	// connection's serial job only.
	inbound msgBucket
	// clientIP is the client's address (through trusted_proxies), which
	// a close for flooding is remembered under (Server.offenders).
	clientIP netip.Addr
	// dropInput is set when the connection's job list overflowed: what it
	// sends is no longer read.
	dropInput atomic.Bool
	// throttled is set while the connection is over its message rate (its
	// last message was refused): its reading is paused (inbound.go).
	throttled atomic.Bool
	// resumeAt is when a pause of the reading ends (Server.clock);
	// resumePending is set while a timer will look at it (inbound.go).
	resumeAt      atomic.Int64
	resumePending atomic.Bool
}

// Send implements hub.Conn.
func (c *wsConn) Send(frame []byte, at int64) bool {
	return c.enqueue(frame, at)
}

// enqueue queues frame under the connection's byte bound: every frame the
// server writes (events, protocol replies, pongs) counts, so a client that
// does not read is cut with 4100 whatever it provokes.
func (c *wsConn) enqueue(frame []byte, at int64) bool {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return false
	}
	pending := c.queued + int(c.backlog.Load())
	if pending > 0 && pending+len(frame) > c.srv.queueLimit {
		c.dropQueueLocked()
		c.startCloseLocked(protocol.CodeOverCapacity, "Slow consumer")
		c.mu.Unlock()
		c.srv.slowConsumers.Add(1)
		c.srv.refused(c.appID, hub.LimitWriteQueue)
		if c.metrics != nil {
			c.metrics.SlowConsumer()
		}
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.srv.outbound.add(int64(len(frame)))
	if c.oldestAt == 0 {
		// Frames are written in order, so the first stamp queued is the
		// oldest of the batch it goes out with: a write is measured by
		// its worst delivery.
		c.oldestAt = at
	}
	// A stamped frame is a fanout's, not the job's reply: it does not wait
	// for the job (see inJob).
	sched := c.scheduleLocked(at != 0)
	c.mu.Unlock()
	if sched {
		// An unstamped frame is a reply to the client's own request (see
		// hub.Conn): the flushers serve it before the bulk of a fanout.
		c.srv.flushq.push(c, c.srv.clock(), at == 0)
	}
	return true
}

// Bind implements hub.Conn: it is called in the connection's serial job,
// during Admit.
func (c *wsConn) Bind(appID string) {
	c.appID = appID
	if m := c.srv.cfg.Metrics; m != nil {
		c.metrics = m.App(appID)
	}
}

// Close implements hub.Conn.
func (c *wsConn) Close(code int, reason string) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.startCloseLocked(code, reason)
	c.mu.Unlock()
}

// scheduleLocked marks the connection for a flusher when it has something
// to write, is not already marked, the socket layer has no backlog and,
// unless now is set, no job will write it when it returns (inJob). The
// caller pushes it on the flush queue when it returns true.
func (c *wsConn) scheduleLocked(now bool) bool {
	if (c.inJob && !now) || c.inFlush || len(c.queue) == 0 || c.state == stateClosed || c.backlog.Load() > 0 {
		return false
	}
	c.inFlush = true
	return true
}

// startCloseLocked queues the close frame and arms the timer that closes
// the socket if the client does not answer in time.
func (c *wsConn) startCloseLocked(code int, reason string) {
	c.state = stateClosing
	if c.closeCode == 0 {
		c.closeCode = code
	}
	f := closeFrame(code, reason)
	c.queue = append(c.queue, f)
	c.queued += len(f)
	c.srv.outbound.add(int64(len(f)))
	if c.timer == nil {
		c.timer = time.AfterFunc(c.srv.closeTimeout, c.forceClose)
	}
	// A close goes out now even while a job runs: whoever closes (a bound,
	// the shutdown) may be another goroutine, and the job may be stuck.
	if c.scheduleLocked(true) {
		// Pushing under c.mu is safe: the flush queue lock is a leaf.
		c.srv.flushq.push(c, c.srv.clock(), true)
	}
}

// dropQueueLocked forgets the frames not yet passed to the socket.
func (c *wsConn) dropQueueLocked() {
	c.srv.outbound.add(-int64(c.queued))
	clear(c.queue)
	c.queue = c.queue[:0]
	c.queued = 0
	c.oldestAt = 0
}

// forceClose closes the socket at once, dropping what the kernel still
// holds for it; Closed follows from the engine.
func (c *wsConn) forceClose() {
	discardUnsent(c.nc)
	c.wmu.Lock()
	c.wclosed = true
	_ = c.wsc.Close()
	c.wmu.Unlock()
}

// finalWrite writes frame (if not nil) as the last bytes of the socket,
// which the caller is about to close.
func (c *wsConn) finalWrite(frame []byte) {
	c.wmu.Lock()
	if !c.wclosed && frame != nil {
		_, _ = c.nc.Write(frame)
	}
	c.wclosed = true
	c.wmu.Unlock()
}

// drained is called when the socket layer's backlog drops to zero.
func (c *wsConn) drained() {
	c.mu.Lock()
	sched := c.scheduleLocked(true)
	c.mu.Unlock()
	if sched {
		c.srv.flushq.push(c, c.srv.clock(), false)
	}
}

// beginJob marks the start of a session callback in the connection's
// serial job (see inJob).
func (c *wsConn) beginJob() {
	c.mu.Lock()
	c.inJob = true
	c.mu.Unlock()
}

// endJob writes what the callback since beginJob queued, on the job's own
// goroutine: a reply goes out at once, in one write with the others of the
// same message, instead of through the flush queue, whose hand-off to a
// flusher goroutine cost more than the write itself under connection
// churn. A burst queued meanwhile by a fanout is left to the flushers
// after one write.
func (c *wsConn) endJob() {
	// When more messages of this connection were read and wait (a batch
	// read after a pause of its reading, or pipelined requests), the last
	// job writes the replies of all: one write instead of one each. The
	// job of every message ends here (or, for a close frame, drops the
	// queue with the connection).
	more := c.wsc != nil && c.wsc.QueuedMessages() > 0
	c.mu.Lock()
	c.inJob = false
	sched := !more && c.scheduleLocked(false)
	c.mu.Unlock()
	if !sched {
		return
	}
	sp := c.srv.scratch.Get().(*[]byte)
	c.flushN(sp, 1)
	c.srv.scratch.Put(sp)
}

// flush writes what is queued; it runs on a flusher goroutine, and only one
// flusher handles a connection at a time (inFlush). scratch is the
// flusher's coalescing buffer.
func (c *wsConn) flush(scratch *[]byte) { c.flushN(scratch, -1) }

// flushN is flush with at most passes batch writes (negative: no bound);
// what is still queued after them goes to the flushers.
func (c *wsConn) flushN(scratch *[]byte, passes int) {
	for ; ; passes-- {
		c.mu.Lock()
		if c.state == stateClosed || len(c.queue) == 0 || c.backlog.Load() > 0 {
			c.inFlush = false
			c.mu.Unlock()
			return
		}
		if passes == 0 {
			// Still inFlush: the flusher that takes it over clears it.
			// What is left after the job's own write is a fanout's.
			c.mu.Unlock()
			c.srv.flushq.push(c, c.srv.clock(), false)
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		n := c.queued
		c.queued = 0
		at := c.oldestAt
		c.oldestAt = 0
		if c.state == stateClosing && !c.closeSent {
			// The close frame is always the last frame queued.
			c.closeSent = true
		} else if c.closeSent {
			// The close handshake is over (peer closed first): nothing
			// may follow the close frame.
			c.srv.outbound.add(-int64(n))
			clear(batch)
			c.spare = batch[:0]
			c.mu.Unlock()
			continue
		}
		// Count the batch before writing it: the write reports what the
		// kernel took through onWritten, synchronously or later.
		c.backlog.Add(int64(n))
		c.mu.Unlock()

		err := c.writeBatch(batch, scratch)
		clear(batch)
		if at != 0 && err == nil {
			// One clock read per write, and only for stamped (fanout)
			// frames: replies are not measured.
			now := c.srv.clock()
			d := max(now-at, 0)
			c.srv.delays.observe(now, d)
			if c.metrics != nil {
				c.metrics.DeliveryLatency(time.Duration(d))
			}
		}

		c.mu.Lock()
		if cap(batch) <= maxSpareFrames {
			c.spare = batch[:0]
		} // else let a burst's backing array go
		c.mu.Unlock()
		if err != nil {
			if err != net.ErrClosed {
				c.srv.log.Debug("write failed", "remote", c.nc.RemoteAddr(), "err", err)
			}
			c.forceClose()
			c.mu.Lock()
			c.inFlush = false
			c.mu.Unlock()
			return
		}
	}
}

// maxSpareFrames is the largest queue capacity a connection keeps for
// reuse once flushed.
const maxSpareFrames = 128

// maxWriteChunk bounds one coalesced write.
const maxWriteChunk = 64 << 10

// writeBatch writes frames with as few writes as possible: small frames are
// copied into scratch and written together, a frame larger than a chunk is
// written on its own.
func (c *wsConn) writeBatch(frames [][]byte, scratch *[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return net.ErrClosed
	}
	if len(frames) == 1 {
		_, err := c.nc.Write(frames[0])
		return err
	}
	buf := (*scratch)[:0]
	defer func() { *scratch = buf[:0] }()
	for _, f := range frames {
		if len(f) >= maxWriteChunk {
			if len(buf) > 0 {
				if _, err := c.nc.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			if _, err := c.nc.Write(f); err != nil {
				return err
			}
			continue
		}
		if len(buf)+len(f) > maxWriteChunk {
			if _, err := c.nc.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = append(buf, f...)
	}
	if len(buf) > 0 {
		_, err := c.nc.Write(buf)
		return err
	}
	return nil
}

// wrote is called with the number of bytes the kernel took from nc.
func (c *wsConn) wrote(n int) {
	for {
		old := c.backlog.Load()
		if old <= 0 {
			return
		}
		left := old - int64(n)
		if left < 0 {
			// TLS records are longer than the plaintext counted.
			left = 0
		}
		if c.backlog.CompareAndSwap(old, left) {
			c.srv.outbound.add(left - old)
			if c.metrics != nil {
				c.metrics.BytesOut(n)
			}
			if left == 0 {
				c.drained()
			}
			return
		}
	}
}

// peerClose handles a close frame from the client. It reports whether the
// close must be echoed (we have not sent ours yet).
func (c *wsConn) peerClose(code int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return false
	}
	if c.closeCode == 0 {
		c.closeCode = code
	}
	echo := !c.closeSent
	c.state = stateClosing
	c.closeSent = true
	c.dropQueueLocked()
	return echo
}

// socketClosed is called once the socket is gone; it calls Closed once.
func (c *wsConn) socketClosed() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.dropQueueLocked()
	// What the socket layer still held is freed with it.
	c.srv.outbound.add(-c.backlog.Swap(0))
	c.spare = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	admitted, code := c.admitted, c.closeCode
	c.mu.Unlock()
	c.srv.unregister(c)
	if admitted {
		if code == 0 {
			code = 1006 // gone without a close frame
		}
		if c.metrics != nil {
			c.metrics.Closed(code)
		}
		if log := c.srv.log; log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("connection closed", "app_id", c.appID, "remote", c.nc.RemoteAddr().String(), "code", code)
		}
	}
	if c.session != nil {
		c.call("Closed", func() { c.session.Closed() }, false)
	}
}

// call runs a session callback; a panic is logged with its stack and
// closes this connection only.
func (c *wsConn) call(name string, f func(), closeOnPanic bool) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.log.Error("panic in session callback",
				slog.String("callback", name),
				slog.String("panic", fmt.Sprint(r)),
				slog.String("stack", string(debug.Stack())))
			if closeOnPanic {
				c.Close(1011, "Internal server error")
			}
		}
	}()
	f()
}

func (c *wsConn) isOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateOpen
}
