package transport

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/herald-ws/herald/third_party/nbio"
	"github.com/herald-ws/herald/third_party/nbio/nbhttp/websocket"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Inbound limits: every message a client sends (text, binary, ping, pong)
// costs one token of its connection's bucket, refilled at
// MessagesPerSecond up to MessageBurst. A message without a token is
// refused (a text message is answered with 4301, a ping gets no pong) and
// still costs a token, so the bucket goes into debt; a client that keeps
// sending into a debt of MessageBurst is closed with 4301 (pusher-js then
// stops reconnecting: a client in such a loop would flood again).
//
// A refusal also stops the reading of the connection until its bucket
// holds a token again (throttle): what the client sends meanwhile waits in
// the kernel, and TCP flow control holds it back once the buffers are
// full. A flooder then costs a read and a job per batch, not per message
// (each of them cost about 30 us of server CPU: docs/benchmarks.md,
// "Session 7"), and the messages it piled up are refused together when the
// reading resumes, which brings it to the debt that closes it; a client
// that only went past its burst has its next message handled late instead
// of refused.
//
// A close for flooding is remembered under the client's address
// (trusted_proxies resolved) for offenderMemory: the address's next
// connections start with a tenth of the burst instead of all of it. A
// flooder that reconnects at once (pusher-js does not after a 4301, a
// script does) otherwise had a full burst of messages handled on every
// connection, the main cost of a flood once its refusals were cheap. A
// client that shares the address (behind a proxy missing from
// trusted_proxies) still has its messages handled, at the rate, for those
// seconds.

// msgBucket is a connection's inbound token bucket. Only the connection's
// serial job touches it.
type msgBucket struct {
	tokens float64
	at     int64 // monotonic nanoseconds of the last take (0: never)
}

// verdict of an inbound message.
const (
	msgAllow = iota
	msgRefuse
	msgClose
)

// offenderBurstShare is the share of the burst an offender's new
// connection starts with (1/offenderBurstShare, at least one message).
const offenderBurstShare = 10

// offenderMemory is how long a close for flooding is remembered: the time
// the bucket takes to refill from the debt that closed it (twice the
// burst), at least 10 s.
func offenderMemory(rate float64, burst int) time.Duration {
	return max(10*time.Second, time.Duration(2*float64(burst)/rate*float64(time.Second)))
}

// startBucket fills the bucket of a new connection c: a full burst, or a
// share of it when c's address was closed for flooding lately. It runs in
// c's serial job, before any message.
func (s *Server) startBucket(c *wsConn) {
	if s.offenders == nil || !s.offenders.Has(c.clientIP, time.Now()) {
		return // takeMessage fills a full burst at the first message
	}
	c.inbound = msgBucket{
		tokens: max(1, float64(s.cfg.MessageBurst/offenderBurstShare)),
		at:     s.bucketClock(),
	}
	s.offenderStarts.Add(1)
}

// FlooderReconnects returns how many connections started with a share of
// the burst because their address was closed for flooding lately.
func (s *Server) FlooderReconnects() int64 { return s.offenderStarts.Load() }

// bucketClock is a bucket's time: Server.clock, plus one so that 0 means
// never (msgBucket.at).
func (s *Server) bucketClock() int64 { return s.clock() + 1 }

// takeMessage charges one message to c's bucket.
func (s *Server) takeMessage(c *wsConn) int {
	rate, burst := s.cfg.MessagesPerSecond, float64(s.cfg.MessageBurst)
	if rate <= 0 {
		return msgAllow
	}
	now := s.bucketClock()
	b := &c.inbound
	if b.at == 0 {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+float64(now-b.at)/1e9*rate)
	}
	b.at = now
	b.tokens--
	switch {
	case b.tokens >= 0:
		return msgAllow
	case b.tokens < -burst:
		return msgClose
	}
	return msgRefuse
}

// limitMessage applies the inbound limit to a message of c; it reports
// whether the message may be handled. msg is nil for control frames.
func (s *Server) limitMessage(c *wsConn, msg []byte, text bool) bool {
	switch s.takeMessage(c) {
	case msgAllow:
		// Still throttled at the edge of its bucket: the first message
		// read when a pause ends takes the one token it waited for, and a
		// flood read with it must still be told from a pile-up (onData).
		if c.inbound.tokens >= 1 && c.throttled.Load() {
			c.throttled.Store(false)
		}
		return true
	case msgClose:
		s.refused(c.appID, hub.LimitMessages)
		if s.offenders != nil {
			s.offenders.Add(c.clientIP, time.Now())
		}
		c.Send(TextFrame(protocol.Error(protocol.CodeClientEventRejected, "Rate limit exceeded: too many messages; closing")), 0)
		c.Close(protocol.CodeClientEventRejected, "Rate limit exceeded")
		return false
	}
	s.refused(c.appID, hub.LimitMessages)
	s.throttle(c)
	if !text {
		return false // a ping beyond the rate gets no pong
	}
	if rl, ok := c.session.(hub.RateLimited); ok {
		c.call("RateLimited", func() { rl.RateLimited(msg) }, true)
		return false
	}
	c.Send(TextFrame(protocol.Error(protocol.CodeClientEventRejected, "Rate limit exceeded: too many messages, slow down")), 0)
	return false
}

// throttle pauses the reading of c, whose message was just refused, until
// its bucket holds a token again. It runs in c's serial job.
func (s *Server) throttle(c *wsConn) {
	c.throttled.Store(true)
	if c.raw == nil || !c.raw.PauseRead() {
		return // not supported here: every message is read and refused
	}
	s.throttles.Add(1)
	wait := time.Duration((1 - c.inbound.tokens) / s.cfg.MessagesPerSecond * float64(time.Second))
	// A later refusal (the rest of a batch) deepens the debt and moves the
	// end of the pause; the one timer of a pause looks at it when it fires
	// (no Timer.Reset from the job racing the timer's own firing).
	c.resumeAt.Store(s.clock() + int64(wait))
	if !c.resumePending.Swap(true) {
		time.AfterFunc(wait, func() { s.resumeReading(c) })
	}
}

// resumeReading ends a pause of c's reading at c.resumeAt, or waits on
// until then. A throttle racing it can only end its pause early (the next
// refusal pauses again), never leave the connection unread.
func (s *Server) resumeReading(c *wsConn) {
	if left := c.resumeAt.Load() - s.clock(); left > 0 {
		time.AfterFunc(time.Duration(left), func() { s.resumeReading(c) })
		return
	}
	c.resumePending.Store(false)
	s.readPile(c)
	c.raw.ResumeRead()
}

// pileReads bounds the reads readPile makes (of readPileSize each); what
// is left is read by the poller once the reading resumes.
const (
	pileReads    = 4
	readPileSize = 64 << 10
)

// readPile reads and parses what c sent while its reading was paused, on
// the timer's goroutine, before handing the socket back to the poller: a
// flooder's pile (a thousand messages after a pause of seconds) parsed by
// the poller held up every other socket of that poller, the HTTP API's
// publishes among them, for a millisecond or more (docs/benchmarks.md,
// "Session 7"). The poller does not read c meanwhile (no EPOLLIN).
func (s *Server) readPile(c *wsConn) {
	bp := s.pileBufs.Get().(*[]byte)
	defer s.pileBufs.Put(bp)
	buf := *bp
	for range pileReads {
		n, err := c.raw.Read(buf)
		if n > 0 {
			s.onData(c.raw, buf[:n])
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return
		case err != nil:
			// As the poller would: the peer is gone or the socket failed.
			_ = c.raw.CloseWithError(err)
			return
		case n == 0:
			_ = c.raw.CloseWithError(io.EOF)
			return
		case n < len(buf):
			return
		}
	}
}

// onData runs on the poller for every read. It bounds the connection's
// job list (messages parsed and waiting for the connection's serial job):
// past MaxPendingMessages, the data is dropped and the connection closed
// (a WebSocket with 4100, an HTTP connection at once), so that a client
// cannot pile up work faster than the server handles it.
func (s *Server) onData(c *nbio.Conn, data []byte) {
	s.acceptSeq.Load() // see New
	if s.pollersSeen.Load() != s.allPollers {
		s.pollersSeen.Or(1 << uint(c.Hash()%s.engine.NPoller))
	}
	if max := s.cfg.MaxPendingMessages; max > 0 && c.ExecuteLen() > max {
		s.overloaded(c)
		return
	}
	if ws, ok := c.Session().(*websocket.Conn); ok {
		if wc, ok := ws.Session().(*wsConn); ok && wc.dropInput.Load() {
			return
		}
	}
	c.DataHandler()(c, data)
}

// overloaded closes a connection whose job list is full.
func (s *Server) overloaded(c *nbio.Conn) {
	ws, ok := c.Session().(*websocket.Conn)
	if !ok {
		s.refused("", hub.LimitPendingMessages)
		_ = c.Close()
		return
	}
	wc, ok := ws.Session().(*wsConn)
	if !ok {
		_ = c.Close()
		return
	}
	if !wc.dropInput.Swap(true) {
		if wc.throttled.Load() {
			// Piled up while its reading was paused for its rate: a
			// flood, answered as the rate limit answers one.
			s.refused(wc.appID, hub.LimitMessages)
			wc.Send(TextFrame(protocol.Error(protocol.CodeClientEventRejected, "Rate limit exceeded: too many messages; closing")), 0)
			wc.Close(protocol.CodeClientEventRejected, "Rate limit exceeded")
			return
		}
		s.refused(wc.appID, hub.LimitPendingMessages)
		wc.Close(protocol.CodeOverCapacity, "Over capacity: messages arrive faster than they are handled")
	}
}

// ---- the executor ----

// jobPool runs the engine's per-connection serial jobs on at most max
// goroutines besides the warm workers. Each connection has at most one
// job handed to the executor at a time (nbio runs a connection's jobs one
// after another from one hand-over), so when every goroutine is busy the
// FIFO of waiting jobs holds at most one entry per open socket: it is
// bounded by the connection limits, and a job waits its turn, never lost.
//
// A goroutine spawned for a burst stays as a warm worker once it finds no
// job waiting, up to keep of them (giving back its slot of max): under
// connection churn a poller's batch hands over more jobs than there are
// idle workers, and a goroutine started and ended per job, growing its
// stack on the way (runtime.newstack/copystack), cost about 6 % of the
// server's CPU (docs/benchmarks.md, "Session 6").
type jobPool struct {
	mu      sync.Mutex
	running int // goroutines started on demand and still running their jobs
	max     int
	keep    int // of running, how many may stay as warm workers
	kept    int
	spawned int // goroutines started since the server was built (tests)
	waiting []func()
	head    int
}

// takeLocked returns a waiting job, or nil.
func (p *jobPool) takeLocked() func() {
	if p.head == len(p.waiting) {
		return nil
	}
	f := p.waiting[p.head]
	p.waiting[p.head] = nil
	p.head++
	if p.head == len(p.waiting) {
		p.waiting, p.head = p.waiting[:0], 0
		if cap(p.waiting) > 1<<12 {
			p.waiting = nil
		}
	}
	return f
}

// waitingLen returns how many jobs wait for a goroutine.
func (p *jobPool) waitingLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting) - p.head
}

// runSpawned runs f, then waiting jobs, on a goroutine of the pool; with
// none left it becomes a warm worker if the pool keeps fewer than keep,
// else it ends.
func (s *Server) runSpawned(f func()) {
	defer s.execWG.Done()
	p := &s.pool
	for f != nil {
		f()
		stay := false
		p.mu.Lock()
		f = p.takeLocked()
		if f == nil {
			// A kept worker leaves its slot: only a goroutine holding one
			// takes the jobs queued while every slot is busy.
			p.running--
			if p.kept < p.keep {
				p.kept++
				stay = true
			}
		}
		p.mu.Unlock()
		if stay {
			s.workerLoop()
			return
		}
	}
}

// spawnOrWait runs f on a new goroutine when the pool has room, else
// queues it for the next goroutine that is done.
func (s *Server) spawnOrWait(f func()) {
	p := &s.pool
	p.mu.Lock()
	if p.running >= p.max {
		p.waiting = append(p.waiting, f)
		p.mu.Unlock()
		return
	}
	p.running++
	p.spawned++
	p.mu.Unlock()
	s.execWG.Add(1)
	go s.runSpawned(f)
}

// afterJob hands a warm worker a waiting job, if any.
func (s *Server) afterJob() func() {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeLocked()
}
