package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http/httptrace"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// The client side is one goroutine per connection with gorilla/websocket:
// measured on the 2-core target box against nbio's event-driven client and
// lxzan/gws, all three cost the same CPU per received message within noise
// (5-8 µs when every message is its own read, 1.2-1.9 µs when frames come
// coalesced; gorilla was cheapest in the coalesced case), while gorilla
// lets the dialer pick the source address (nbio's websocket Dialer has no
// dial hook) and adds no transitive dependency. Idle memory is about
// 12 KB per connection here (nbio about 4.5 KB); that is the load tool's
// memory, not the server's, and 19,000 connections fit easily.

// nShards is the number of counter shards; connection i records into
// shard i%nShards so that the hot path never takes a lock and rarely
// shares a cache line with another core.
const nShards = 16

// shard holds the counters of a group of connections.
type shard struct {
	deliveries atomic.Uint64 // every event received
	measured   atomic.Uint64 // events sent inside the measured window
	violations atomic.Uint64 // out-of-order or repeated sequence numbers
	hist       Histogram     // latency of measured events, ns
	_          [64]byte
}

// runStats is shared by every connection of a run.
type runStats struct {
	shards [nShards]shard
	// Events whose send time is in [winStart, winEnd) are measured.
	winStart, winEnd atomic.Int64

	dialing     atomic.Int64 // handshakes in flight
	connected   atomic.Int64 // completed connect+subscribe
	failed      atomic.Int64 // failed connect+subscribe
	live        atomic.Int64 // connections whose reader runs
	dropped     atomic.Int64 // connections lost before we closed them
	closing     atomic.Bool  // set before closing on purpose
	pusherErrs  atomic.Int64 // pusher:error frames after subscribing
	pingsAnswer atomic.Int64 // pusher:ping frames answered
	setup       Histogram    // connect+subscribe time of each connection, ns
	// stages splits setup (see setupStageNames), to tell where a slow
	// connection waited; launchLag is how late the tool itself started a
	// connection against the --connect-rate schedule (its own stall, not
	// the server's).
	stages    [numSetupStages]Histogram
	launchLag Histogram

	errs errorCounter
}

func newRunStats() *runStats {
	st := &runStats{}
	st.winStart.Store(math.MaxInt64)
	st.winEnd.Store(math.MaxInt64)
	return st
}

func (st *runStats) totals() (deliveries, measured, violations uint64) {
	for i := range st.shards {
		deliveries += st.shards[i].deliveries.Load()
		measured += st.shards[i].measured.Load()
		violations += st.shards[i].violations.Load()
	}
	return
}

func (st *runStats) latency() *Snapshot {
	var s Snapshot
	for i := range st.shards {
		s.Merge(&st.shards[i].hist)
	}
	return &s
}

// errorCounter counts errors by a short description. Errors are off the
// hot path, so a mutex is fine.
type errorCounter struct {
	mu sync.Mutex
	m  map[string]int64
	n  int64
}

const maxErrorKinds = 40

func (e *errorCounter) add(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	if _, ok := e.m[kind]; !ok && len(e.m) >= maxErrorKinds {
		kind = "other"
	}
	e.m[kind]++
	e.n++
}

func (e *errorCounter) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func (e *errorCounter) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

// top returns the most frequent error, for progress lines.
func (e *errorCounter) top() string {
	m := e.snapshot()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// errKind reduces an error to a short, bounded description: the stage and
// the cause without addresses or ports.
func errKind(stage string, err error) string {
	var pe *pusherError
	var ce *websocket.CloseError
	var cl *closedError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		return stage + ": pusher:error " + pe.codeString()
	case errors.As(err, &ce):
		return stage + ": closed " + strconv.Itoa(ce.Code)
	case errors.As(err, &cl):
		return stage + ": closed " + strconv.Itoa(cl.code)
	case errors.Is(err, errNoSourcePorts):
		return stage + ": out of local ports"
	case errors.Is(err, websocket.ErrBadHandshake):
		return stage + ": bad handshake (HTTP status not 101)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return stage + ": timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return stage + ": timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return stage + ": connection closed by server"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return stage + ": " + errno.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return stage + ": " + s
}

// closedError is a close frame from the server with an unusual code (read by
// the epoll receiver; gorilla has its own CloseError).
type closedError struct {
	code   int
	reason string
}

func (e *closedError) Error() string { return fmt.Sprintf("closed %d %s", e.code, e.reason) }

// pusherError is a pusher:error or pusher:subscription_error received
// while connecting or subscribing.
type pusherError struct {
	Event   string
	Code    *int
	Message string
}

func (e *pusherError) codeString() string {
	if e.Code == nil {
		return "(no code)"
	}
	return strconv.Itoa(*e.Code)
}

func (e *pusherError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Event, e.codeString(), e.Message)
}

// wireMsg is a server frame as far as the handshake needs it.
type wireMsg struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// dataObject decodes data that is either a JSON object or a JSON string
// holding one (Pusher double-encodes most server events).
func (m *wireMsg) dataObject(v any) error {
	d := bytes.TrimSpace(m.Data)
	if len(d) > 0 && d[0] == '"' {
		var s string
		if err := json.Unmarshal(d, &s); err != nil {
			return err
		}
		d = []byte(s)
	}
	if len(d) == 0 {
		return nil
	}
	return json.Unmarshal(d, v)
}

func (m *wireMsg) asError() *pusherError {
	var e struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
		Error   string `json:"error"`
		Status  *int   `json:"status"`
	}
	_ = m.dataObject(&e)
	pe := &pusherError{Event: m.Event, Code: e.Code, Message: e.Message}
	if pe.Code == nil {
		pe.Code = e.Status
	}
	if pe.Message == "" {
		pe.Message = e.Error
	}
	return pe
}

// client is one subscribed connection.
type client struct {
	ws      *websocket.Conn
	channel int
	sh      *shard
	st      *runStats

	wmu      sync.Mutex // one writer at a time (gorilla's rule)
	lastRecv atomic.Int64
	order    orderChecker
	buf      []byte
	raw      syscall.RawConn // nil when the socket is not a plain TCP one
	rc       *rconn          // set when the epoll receiver reads it

	socketID        string
	activityTimeout time.Duration
}

// dialer builds the WebSocket dialer of a run.
func newWSDialer(o *Options, pool *sourcePool) *websocket.Dialer {
	return &websocket.Dialer{
		NetDialContext:   pool.DialContext,
		HandshakeTimeout: o.Timeout,
		ReadBufferSize:   o.ReadBuffer,
		WriteBufferSize:  512,
		WriteBufferPool:  &sync.Pool{},
	}
}

// handshake reads pusher:connection_established.
func handshake(ws *websocket.Conn) (socketID string, activity time.Duration, err error) {
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return "", 0, err
		}
		var m wireMsg
		if err := json.Unmarshal(b, &m); err != nil {
			return "", 0, fmt.Errorf("invalid first frame: %v", err)
		}
		switch m.Event {
		case "pusher:connection_established":
			var d struct {
				SocketID        string `json:"socket_id"`
				ActivityTimeout int    `json:"activity_timeout"`
			}
			if err := m.dataObject(&d); err != nil {
				return "", 0, fmt.Errorf("invalid connection_established data: %v", err)
			}
			return d.SocketID, time.Duration(d.ActivityTimeout) * time.Second, nil
		case "pusher:error":
			return "", 0, m.asError()
		default:
			return "", 0, fmt.Errorf("unexpected first event %q", m.Event)
		}
	}
}

// subscribe subscribes to a public channel and waits for the answer.
func subscribe(ws *websocket.Conn, channel string) error {
	msg := `{"event":"pusher:subscribe","data":{"auth":"","channel":` + strconv.Quote(channel) + `}}`
	if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var m wireMsg
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		switch m.Event {
		case "pusher_internal:subscription_succeeded":
			if m.Channel == channel {
				return nil
			}
		case "pusher:error", "pusher:subscription_error":
			if m.Channel == "" || m.Channel == channel {
				return m.asError()
			}
		case "pusher:ping":
			if err := ws.WriteMessage(websocket.TextMessage, pongFrame); err != nil {
				return err
			}
		}
	}
}

var (
	pingFrame = []byte(`{"event":"pusher:ping","data":{}}`)
	pongFrame = []byte(`{"event":"pusher:pong","data":{}}`)
)

// connectSubscribe dials, completes the Pusher handshake and subscribes,
// all within the timeout. stage tells where it failed. With stages, it
// records each stage of a successful setup and, in total, their sum: the
// same interval, so that the stages add up to the total exactly.
func connectSubscribe(ctx context.Context, d *websocket.Dialer, url, channel string, timeout time.Duration, stages *[numSetupStages]Histogram, total *Histogram) (ws *websocket.Conn, socketID string, activity time.Duration, stage string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var marks [numSetupStages]time.Time
	t0 := time.Now()
	if stages != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { marks[stageTCP] = time.Now() },
		})
		defer func() {
			if err != nil {
				return
			}
			prev := t0
			for i := range marks {
				if marks[i].IsZero() {
					return
				}
				stages[i].Record(int64(marks[i].Sub(prev)))
				prev = marks[i]
			}
			total.Record(int64(prev.Sub(t0)))
		}()
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	marks[stageUpgrade] = time.Now()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != 101 {
			err = fmt.Errorf("HTTP %d: %w", resp.StatusCode, websocket.ErrBadHandshake)
		}
		return nil, "", 0, "connect", err
	}
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	_ = ws.SetWriteDeadline(deadline)
	if socketID, activity, err = handshake(ws); err != nil {
		ws.Close()
		return nil, "", 0, "handshake", err
	}
	marks[stageEstablished] = time.Now()
	if err = subscribe(ws, channel); err != nil {
		ws.Close()
		return nil, "", 0, "subscribe", err
	}
	marks[stageSubscribed] = time.Now()
	_ = ws.SetReadDeadline(time.Time{})
	_ = ws.SetWriteDeadline(time.Time{})
	return ws, socketID, activity, "", nil
}

// maxMessage bounds the receive buffer; larger messages are skipped.
const maxMessage = 1 << 20

// readLoop receives until the connection ends (the reader of a connection
// that the epoll receiver does not take).
func (c *client) readLoop() error {
	if c.buf == nil {
		c.buf = make([]byte, 512)
	}
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return err
		}
		n, tooLarge := 0, false
		for {
			if n == len(c.buf) {
				if len(c.buf) >= maxMessage {
					_, err = io.Copy(io.Discard, r)
					if err == nil {
						err = io.EOF
					}
					tooLarge = true
					break
				}
				grown := make([]byte, 2*len(c.buf))
				copy(grown, c.buf[:n])
				c.buf = grown
			}
			var k int
			k, err = r.Read(c.buf[n:])
			n += k
			if err != nil {
				break
			}
		}
		if err != io.EOF {
			return err
		}
		if tooLarge {
			c.st.errs.add("message larger than 1 MiB skipped")
			continue
		}
		if c.raw != nil {
			_ = c.raw.Control(delayAck)
		}
		c.handle(c.buf[:n])
	}
}

// handle takes one received message. It is the hot path: no allocation,
// one bytes.Index, a few atomic adds.
func (c *client) handle(msg []byte) {
	now := time.Now().UnixNano()
	c.lastRecv.Store(now)
	st, sh := c.st, c.sh
	if pub, seq, ts, ok := findPayload(msg); ok {
		sh.deliveries.Add(1)
		if !c.order.check(pub, seq) {
			sh.violations.Add(1)
		}
		if ts >= st.winStart.Load() && ts < st.winEnd.Load() {
			sh.measured.Add(1)
			sh.hist.Record(now - ts)
		}
		return
	}
	c.control(msg)
}

// control handles a protocol frame received after subscribing.
func (c *client) control(msg []byte) {
	switch {
	case bytes.Contains(msg, []byte(`"pusher:ping"`)):
		c.st.pingsAnswer.Add(1)
		_ = c.send(pongFrame)
	case bytes.Contains(msg, []byte(`"pusher:error"`)):
		c.st.pusherErrs.Add(1)
		var m wireMsg
		if json.Unmarshal(msg, &m) == nil {
			c.st.errs.add("after subscribe: pusher:error " + m.asError().codeString())
		}
	}
}

// send writes one text frame; safe for concurrent use.
func (c *client) send(b []byte) error {
	if c.rc != nil {
		return c.rc.sendText(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// close sends a close frame (1000) and closes the socket.
func (c *client) close() {
	if c.rc != nil {
		c.rc.sendClose(1000) // the receiver closes the socket on the answer
		return
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = c.ws.Close()
}

// clientSet opens and holds a set of subscribed connections.
type clientSet struct {
	o      *Options
	st     *runStats
	dialer *websocket.Dialer
	pool   *sourcePool
	recv   *epollReceiver // nil: a reader goroutine per connection

	mu      sync.Mutex
	clients []*client
	readers sync.WaitGroup

	subsPerChannel []int64
	perTarget      []int64 // subscribed connections per --url
	activity       time.Duration
}

func newClientSet(o *Options, st *runStats) *clientSet {
	pool := newSourcePool(o.sources, allLoopback(o.urls), o.Timeout)
	cs := &clientSet{o: o, st: st, pool: pool, dialer: newWSDialer(o, pool), subsPerChannel: make([]int64, o.Channels), perTarget: make([]int64, len(o.urls))}
	if o.Reader == readerEpoll {
		if r, err := newEpollReceiver(); err == nil {
			cs.recv = r
		} else {
			st.errs.add("epoll reader unavailable, one goroutine per connection: " + err.Error())
		}
	}
	return cs
}

// open connects n clients, client i to channel i%channels, at the connect
// rate with at most DialConcurrency handshakes in flight. It returns when
// every attempt has finished, or early when more than the allowed share
// has failed (then aborted is true).
func (cs *clientSet) open(ctx context.Context, n int) (elapsed time.Duration, aborted bool) {
	o, st := cs.o, cs.st
	urls := o.wsURLs()
	sem := make(chan struct{}, o.DialConcurrency)
	maxFailed := int64(math.Floor(o.MaxFail * float64(n)))
	var attempts sync.WaitGroup
	start := time.Now()
	var interval time.Duration
	if o.ConnectRate > 0 {
		interval = time.Duration(float64(time.Second) / o.ConnectRate)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
launch:
	for i := 0; i < n; i++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					break launch
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		if st.failed.Load() > maxFailed {
			<-sem
			aborted = true
			break
		}
		attempts.Add(1)
		st.dialing.Add(1)
		go func(i int) {
			ch := i % o.Channels
			// Connection i goes to node i%nodes, so every channel has
			// subscribers on every node (when channels divide evenly).
			t0 := time.Now()
			if interval > 0 {
				st.launchLag.Record(int64(t0.Sub(start.Add(time.Duration(i) * interval))))
			}
			ws, socketID, activity, stage, err := connectSubscribe(ctx, cs.dialer, urls[i%len(urls)], channelName(o.ChannelBase, ch), o.Timeout, &st.stages, &st.setup)
			st.dialing.Add(-1)
			<-sem
			if err != nil {
				st.failed.Add(1)
				st.errs.add(errKind(stage, err))
				attempts.Done()
				return
			}
			c := &client{ws: ws, channel: ch, sh: &st.shards[i%nShards], st: st, socketID: socketID, activityTimeout: activity}
			sc, plain := ws.UnderlyingConn().(syscall.Conn)
			if plain && o.DelayedAck {
				c.raw, _ = sc.SyscallConn()
			}
			c.lastRecv.Store(time.Now().UnixNano())
			cs.mu.Lock()
			cs.clients = append(cs.clients, c)
			cs.subsPerChannel[ch]++
			cs.perTarget[i%len(urls)]++
			if activity > 0 && (cs.activity == 0 || activity < cs.activity) {
				cs.activity = activity
			}
			cs.mu.Unlock()
			st.connected.Add(1)
			st.live.Add(1)
			cs.readers.Add(1)
			ended := func(err error) {
				st.live.Add(-1)
				if !st.closing.Load() {
					st.dropped.Add(1)
					st.errs.add(errKind("connection lost", err))
				}
				cs.readers.Done()
			}
			if cs.recv != nil && plain {
				if err = cs.recv.add(c, sc, ended); err == nil {
					// The receiver reads a duplicate of the socket.
					_ = ws.UnderlyingConn().Close()
					attempts.Done()
					return
				}
				st.errs.add(errKind("epoll reader", err))
			}
			attempts.Done()
			ended(c.readLoop())
		}(i)
	}
	attempts.Wait()
	if st.failed.Load() > maxFailed {
		aborted = true
	}
	return time.Since(start), aborted
}

// keepAlive sends pusher:ping, as pusher-js does, on connections that have
// received nothing for the server's activity timeout, until ctx ends.
func (cs *clientSet) keepAlive(ctx context.Context) {
	cs.mu.Lock()
	period := cs.activity
	cs.mu.Unlock()
	if period <= 0 {
		period = 120 * time.Second
	}
	period /= 2
	if period < time.Second {
		period = time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-period).UnixNano()
		cs.mu.Lock()
		list := append([]*client(nil), cs.clients...)
		cs.mu.Unlock()
		for _, c := range list {
			if ctx.Err() != nil {
				return
			}
			if c.lastRecv.Load() < cutoff {
				_ = c.send(pingFrame)
			}
		}
	}
}

// closeAll closes every connection (close frame 1000, then the socket) and
// waits for their readers, at most wait.
func (cs *clientSet) closeAll(wait time.Duration) {
	cs.st.closing.Store(true)
	cs.mu.Lock()
	list := append([]*client(nil), cs.clients...)
	cs.mu.Unlock()
	var wg sync.WaitGroup
	const closers = 32
	next := atomic.Int64{}
	for w := 0; w < closers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(list)) {
					return
				}
				list[i].close()
			}
		}()
	}
	wg.Wait()
	done := make(chan struct{})
	go func() { cs.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
	if cs.recv != nil {
		cs.recv.stop()
	}
}
