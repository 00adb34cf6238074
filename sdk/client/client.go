// Package client is a realtime client for Herald and any other server that
// speaks the Pusher Channels protocol v7 (Pusher, soketi, Laravel Reverb).
//
// A Client holds one WebSocket connection and keeps it up by itself: it
// reconnects as the protocol asks (close codes 4000-4099: never; 4100-4199:
// after a back-off; 4200-4299: at once; any other loss: exponential back-off
// with full jitter, capped), pings the server after activity_timeout of
// silence and drops a connection whose pong does not come. After every
// reconnection it subscribes to every channel again (authorizing private,
// presence and encrypted ones with the new socket id) and signs in again;
// bindings live on the Channel, so each handler fires once per event however
// many reconnections happened.
//
// On a Herald server with history configured for a channel, the client
// also remembers the channel's last Position and, when it subscribes again
// after a reconnection, asks the server to replay what it missed: the
// missed events reach the channel's bindings in order and exactly once
// before the live ones, and Channel.OnRecovery reports the outcome (when
// the server no longer has them, Recovery.Recovered is false and the app
// refetches its state). Other servers and channels are unaffected.
//
// Handlers run one at a time, in arrival order, on a goroutine of the
// client's own: they may block and call any Client method.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/sdk/internal/wire"
)

// Version is the library version sent in the connection URL.
const Version = "0.1.0"

// State is the connection state, with pusher-js's names.
type State int

// Connection states.
const (
	// Initialized: created, Connect not called yet.
	Initialized State = iota
	// Connecting: a connection attempt is in progress.
	Connecting
	// Connected: the server sent pusher:connection_established.
	Connected
	// Unavailable: the connection was lost or an attempt failed; the client
	// keeps trying with back-off.
	Unavailable
	// Failed: the server refused the connection for good (close code
	// 4000-4099 or 4300 and above, e.g. 4001 unknown app key); the client
	// does not retry until Connect is called again. pusher-js reports this
	// as disconnected; a separate state lets a service tell a refusal from
	// its own Disconnect. Err returns the reason.
	Failed
	// Disconnected: Disconnect or Close was called.
	Disconnected
)

var stateNames = [...]string{"initialized", "connecting", "connected", "unavailable", "failed", "disconnected"}

// String returns the state's pusher-js name ("connected", …).
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is one transition of the connection state.
type StateChange struct {
	Previous, Current State
	// Err is why the client left Connected or failed, when known.
	Err error
}

// Options configure a Client. Zero values take the defaults in brackets.
type Options struct {
	// Host and Port of the server [127.0.0.1, 6001 (443 with TLS)].
	Host string
	Port int
	// TLS selects wss://; TLSConfig configures it.
	TLS       bool
	TLSConfig *tls.Config
	// Path goes before /app/{key}, e.g. "/ws" when the server has a
	// path_prefix.
	Path string
	// Header is sent with the WebSocket upgrade (e.g. Origin).
	Header http.Header

	// ChannelAuthorizer authorizes private, presence and encrypted
	// channels: an *HTTPAuth, a *LocalAuth or a ChannelAuthorizerFunc.
	ChannelAuthorizer ChannelAuthorizer
	// UserAuthenticator signs the connection in (SignIn).
	UserAuthenticator UserAuthenticator

	// ActivityTimeout caps the idle time before the client pings; the
	// server's activity_timeout applies when lower [120s].
	ActivityTimeout time.Duration
	// PongTimeout is how long to wait for any message after a ping before
	// the connection is dropped and made again [30s].
	PongTimeout time.Duration
	// DialTimeout bounds one connection attempt up to connection_established [15s].
	DialTimeout time.Duration
	// WriteTimeout bounds one frame write [10s].
	WriteTimeout time.Duration
	// BackoffMin and BackoffMax shape reconnection delays: the n-th retry
	// waits a random time in [0, min(BackoffMax, BackoffMin·2^n)) (full
	// jitter); after a 4100-4199 close the wait is at least BackoffMin
	// [1s, 30s].
	BackoffMin, BackoffMax time.Duration
	// MaxMessageSize is the largest inbound message [1 MiB].
	MaxMessageSize int64

	// Logger receives the client's own diagnostics [discarded].
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 6001
		if o.TLS {
			o.Port = 443
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ActivityTimeout, 120*time.Second)
	def(&o.PongTimeout, 30*time.Second)
	def(&o.DialTimeout, 15*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.BackoffMin, time.Second)
	def(&o.BackoffMax, 30*time.Second)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Client is a connection to a Pusher-protocol server that reconnects by
// itself. Create it with New, then Connect; Close it when done.
type Client struct {
	key    string
	opts   Options
	url    string
	dialer *websocket.Dialer
	log    *slog.Logger

	global   bindings[Event]       // pusher-js pusher.bind / bind_global
	stateFns bindings[StateChange] // state change handlers, under the name "state"
	user     *User
	disp     *dispatcher

	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{}
	wg     sync.WaitGroup

	mu           sync.Mutex
	state        State
	stateErr     error
	stateChanged chan struct{}
	socketID     string
	channels     map[string]*Channel
	sess         *session
	wantConnect  bool
	started      bool
	closed       bool
	signinWanted bool
	userID       string
	signinErr    error
	userChanged  chan struct{}
}

// New returns a Client for the app key, in state Initialized. It does not
// connect: call Connect.
func New(key string, opts Options) (*Client, error) {
	if key == "" {
		return nil, errors.New("client: app key is empty")
	}
	opts.defaults()
	scheme := "ws"
	if opts.TLS {
		scheme = "wss"
	}
	q := url.Values{"protocol": {"7"}, "client": {"herald-go"}, "version": {Version}, "flash": {"false"}}
	u := url.URL{
		Scheme:   scheme,
		Host:     net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)),
		Path:     opts.Path + "/app/" + url.PathEscape(key),
		RawQuery: q.Encode(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		key:  key,
		opts: opts,
		url:  u.String(),
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: opts.DialTimeout,
			TLSClientConfig:  opts.TLSConfig,
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
			// Frames are written rarely: a pooled write buffer is not
			// held by an idle connection.
			WriteBufferPool: &sync.Pool{},
		},
		log:          opts.Logger,
		ctx:          ctx,
		cancel:       cancel,
		wake:         make(chan struct{}, 1),
		stateChanged: make(chan struct{}),
		channels:     make(map[string]*Channel),
		userChanged:  make(chan struct{}),
	}
	c.user = &User{c: c}
	c.disp = newDispatcher(func(r any) { c.log.Error("client: handler panicked", "panic", r) })
	return c, nil
}

// URL returns the WebSocket URL the client connects to.
func (c *Client) URL() string { return c.url }

// Connect starts connecting (and keeps the connection up until Disconnect
// or Close). It returns at once; use WaitConnected or OnStateChange to
// follow. After Failed or Disconnect it starts again.
func (c *Client) Connect() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wantConnect = true
	if !c.started {
		c.started = true
		c.wg.Add(1)
		go c.run()
	}
	c.mu.Unlock()
	c.poke()
}

// Disconnect closes the connection (code 1000) and stops reconnecting;
// channels and bindings stay for a later Connect.
func (c *Client) Disconnect() {
	c.mu.Lock()
	c.wantConnect = false
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.stop(errDisconnect)
	}
	c.poke()
}

// Close disconnects, stops every goroutine of the client and waits for
// them (handlers already queued run first). The client cannot be used
// again. Close must not be called from a handler.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.wantConnect = false
	started := c.started
	c.mu.Unlock()
	c.cancel()
	if !started {
		c.setState(Disconnected, nil)
		return nil
	}
	c.wg.Wait()
	return nil
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Err returns the error that put the client in its current state, if any
// (e.g. why it Failed).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateErr
}

// SocketID returns the current connection's socket id ("" while not
// connected). It changes on every reconnection.
func (c *Client) SocketID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.socketID
}

// OnStateChange calls fn on every state change, in order, and returns a
// function that removes it.
func (c *Client) OnStateChange(fn func(StateChange)) (unbind func()) {
	return c.stateFns.bind("state", fn)
}

// StateChanges returns a channel that receives every state change from now
// on, and a function that stops it. The channel is buffered with size buf;
// a change that does not fit waits (the client's handlers wait with it).
func (c *Client) StateChanges(buf int) (<-chan StateChange, func()) {
	ch := make(chan StateChange, buf)
	done := make(chan struct{})
	unbind := c.OnStateChange(func(sc StateChange) {
		select {
		case ch <- sc:
		case <-done:
		case <-c.ctx.Done():
		}
	})
	var once sync.Once
	return ch, func() { once.Do(func() { unbind(); close(done) }) }
}

// WaitConnected blocks until the client is Connected (nil), Failed or
// Disconnected (an error), or ctx is done.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, err, changed := c.state, c.stateErr, c.stateChanged
		want := c.wantConnect
		c.mu.Unlock()
		switch {
		case st == Connected:
			return nil
		case st == Failed:
			return fmt.Errorf("connection failed: %w", err)
		case !want:
			return fmt.Errorf("client is %s (call Connect)", st)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for connection (state %s): %w", st, ctx.Err())
		}
	}
}

// Bind calls fn for every event named event on any channel, and for
// connection-level events such as pusher:error (pusher-js pusher.bind).
func (c *Client) Bind(event string, fn func(Event)) (unbind func()) {
	if event == "" {
		return func() {}
	}
	return c.global.bind(event, fn)
}

// BindAll calls fn for every event on every channel and every
// connection-level event (pusher-js bind_global).
func (c *Client) BindAll(fn func(Event)) (unbind func()) { return c.global.bind("", fn) }

// Channel returns the channel named name, creating it unsubscribed if
// needed, so that handlers can be bound before Subscribe.
func (c *Client) Channel(name string) *Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.channelLocked(name)
}

func (c *Client) channelLocked(name string) *Channel {
	ch := c.channels[name]
	if ch == nil {
		ch = &Channel{c: c, name: name, changed: make(chan struct{})}
		c.channels[name] = ch
	}
	return ch
}

// Subscribe subscribes to the channel named name (now if connected, and
// after every reconnection) and returns it. It does not wait: see
// Channel.WaitSubscribed. Channel kinds follow the name: private-,
// presence-, private-encrypted- (need a ChannelAuthorizer), cache-
// variants of each, and public for anything else.
func (c *Client) Subscribe(name string) *Channel {
	ch := c.Channel(name)
	ch.Subscribe()
	return ch
}

// Unsubscribe leaves the channel named name (bindings stay).
func (c *Client) Unsubscribe(name string) { c.Channel(name).Unsubscribe() }

// User returns the signed-in user's handle (bindings for SendToUser events).
func (c *Client) User() *User { return c.user }

// SignIn asks the client to sign the connection in with the
// UserAuthenticator (pusher:signin), now and after every reconnection.
func (c *Client) SignIn() {
	c.mu.Lock()
	if c.signinWanted || c.closed {
		c.mu.Unlock()
		return
	}
	c.signinWanted = true
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		s.signin()
	}
}

func (c *Client) subscribe(ch *Channel) {
	c.mu.Lock()
	if ch.wanted || c.closed {
		c.mu.Unlock()
		return
	}
	ch.wanted = true
	s := c.sess
	if s != nil {
		s.subscribeLocked(ch)
	}
	c.mu.Unlock()
}

func (c *Client) unsubscribe(ch *Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ch.wanted {
		return
	}
	ch.wanted = false
	ch.gen++
	// The app left: its next subscription is a new one, not a recovery.
	ch.pos = Position{}
	wasOn := ch.state == subPending || ch.state == subSucceeded
	c.resetChannelLocked(ch)
	if s := c.sess; s != nil && wasOn {
		frame, _ := json.Marshal(outFrame{Event: "pusher:unsubscribe", Data: mustJSON(map[string]string{"channel": ch.name})})
		// The write lock orders it after any subscribe frame sent before.
		_ = s.write(c.ctx, frame)
	}
}

// resetChannelLocked forgets the subscription's per-connection state.
func (c *Client) resetChannelLocked(ch *Channel) {
	ch.state = subNone
	ch.err = nil
	ch.recovering = false
	ch.hasKey = false
	ch.me = Member{}
	ch.roster = nil
	close(ch.changed)
	ch.changed = make(chan struct{})
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setState records a transition and queues the state handlers.
func (c *Client) setState(st State, err error) {
	c.mu.Lock()
	prev := c.state
	if prev == st {
		c.mu.Unlock()
		return
	}
	c.state = st
	c.stateErr = err
	close(c.stateChanged)
	c.stateChanged = make(chan struct{})
	c.mu.Unlock()
	c.log.Debug("client: state", "from", prev.String(), "to", st.String(), "err", err)
	sc := StateChange{Previous: prev, Current: st, Err: err}
	c.disp.push(func() {
		for _, fn := range c.stateFns.handlers("state") {
			fn(sc)
		}
	})
}

// dispatch queues an event for the channel's (or user's) and the global
// bindings.
func (c *Client) dispatch(local *bindings[Event], e Event) {
	c.disp.push(func() {
		if local != nil {
			for _, fn := range local.handlers(e.Name) {
				fn(e)
			}
		}
		for _, fn := range c.global.handlers(e.Name) {
			fn(e)
		}
	})
}

// closeAction is what a lost connection asks of the client.
type closeAction int

const (
	actReconnect closeAction = iota // exponential back-off with full jitter
	actBackoff                      // 4100-4199: at least BackoffMin
	actRetry                        // 4200-4299 and pong timeouts: at once
	actRefused                      // 4000-4099, >= 4300: never
	actStop                         // Disconnect or Close
)

// actionFor maps a close code as pusher-protocol §1.3 says.
func actionFor(code int) closeAction {
	switch {
	case code >= 4000 && code <= 4099:
		return actRefused
	case code >= 4100 && code <= 4199:
		return actBackoff
	case code >= 4200 && code <= 4299:
		return actRetry
	case code >= 4300 && code <= 4999:
		return actRefused
	}
	return actReconnect
}

// CloseError is a connection closed by the server with a WebSocket close
// code (or refused with a pusher:error during the handshake).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("closed by server: %d %s", e.Code, e.Reason)
}

var (
	errDisconnect  = errors.New("disconnected by the client")
	errPongTimeout = errors.New("no pong from the server within the pong timeout")
)

// backoff returns the n-th (from 1) reconnection delay with full jitter.
func (c *Client) backoff(n int) time.Duration {
	ceil := c.opts.BackoffMin
	for i := 1; i < n && ceil < c.opts.BackoffMax; i++ {
		ceil *= 2
	}
	if ceil > c.opts.BackoffMax {
		ceil = c.opts.BackoffMax
	}
	return rand.N(ceil) // full jitter: uniform in [0, ceil)
}

// shortLived is a connection that ends this soon after it was made; when
// several in a row end asking for an immediate reconnection, the client
// backs off instead.
const shortLived = time.Second

// run owns the connection: it dials, serves, and decides when to dial again.
func (c *Client) run() {
	defer c.wg.Done()
	defer c.disp.stop()
	defer c.setState(Disconnected, nil)
	failures := 0 // consecutive failed attempts since the last connection
	strikes := 0  // consecutive 4100-4199 closes
	quick := 0    // consecutive short-lived connections that asked for an immediate retry
	var delay time.Duration
	for {
		c.mu.Lock()
		want := c.wantConnect
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		if !want {
			if st := c.State(); st != Failed && st != Initialized {
				c.setState(Disconnected, nil)
			}
			failures, strikes, quick, delay = 0, 0, 0, 0
			select {
			case <-c.wake:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-c.wake: // Disconnect while waiting: looked at above
				t.Stop()
				continue
			case <-c.ctx.Done():
				t.Stop()
				return
			}
		}
		if c.State() != Unavailable {
			c.setState(Connecting, nil)
		}
		conn, socketID, activity, err := c.dial()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			var ce *CloseError
			if errors.As(err, &ce) && actionFor(ce.Code) == actRefused {
				c.refuse(err)
				continue
			}
			failures++
			delay = c.backoff(failures)
			if errors.As(err, &ce) && actionFor(ce.Code) == actBackoff && delay < c.opts.BackoffMin {
				delay = c.opts.BackoffMin
			}
			c.log.Debug("client: connection attempt failed", "err", err, "retry_in", delay)
			c.setState(Unavailable, err)
			continue
		}
		start := time.Now()
		act, why := c.serve(conn, socketID, activity)
		failures = 0 // a connection was made: the back-off starts over
		if act == actRetry && time.Since(start) < shortLived {
			quick++
		} else {
			quick = 0
		}
		if act == actBackoff {
			strikes++
		} else {
			strikes = 0
		}
		switch act {
		case actStop:
			continue // wantConnect or ctx tells what next
		case actRefused:
			c.refuse(why)
			continue
		case actRetry:
			delay = 0
			if quick > 1 {
				delay = c.backoff(quick - 1)
			}
		case actBackoff:
			delay = max(c.opts.BackoffMin, c.backoff(strikes))
		default:
			delay = c.backoff(1)
		}
		c.log.Debug("client: connection lost", "err", why, "retry_in", delay)
		c.setState(Connecting, why)
	}
}

func (c *Client) refuse(err error) {
	c.mu.Lock()
	c.wantConnect = false
	c.mu.Unlock()
	c.log.Warn("client: connection refused; not reconnecting", "err", err)
	c.setState(Failed, err)
}

// established is the data of pusher:connection_established.
type established struct {
	SocketID        string `json:"socket_id"`
	ActivityTimeout int    `json:"activity_timeout"`
}

// dial opens a connection and reads the handshake.
func (c *Client) dial() (*websocket.Conn, string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	conn, resp, err := c.dialer.DialContext(ctx, c.url, c.opts.Header)
	if err != nil {
		if resp != nil {
			return nil, "", 0, fmt.Errorf("dial %s: HTTP %d: %w", c.url, resp.StatusCode, err)
		}
		return nil, "", 0, fmt.Errorf("dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(c.opts.MaxMessageSize)
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	_, msg, err := conn.ReadMessage()
	stop()
	if err != nil {
		conn.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, "", 0, &CloseError{Code: ce.Code, Reason: ce.Text}
		}
		return nil, "", 0, fmt.Errorf("handshake: %w", err)
	}
	f, err := decodeFrame(msg)
	if err != nil {
		conn.Close()
		return nil, "", 0, fmt.Errorf("handshake: %w", err)
	}
	switch f.Event {
	case "pusher:connection_established":
		var est established
		if err := json.Unmarshal(f.data, &est); err != nil || est.SocketID == "" || est.ActivityTimeout <= 0 {
			conn.Close()
			return nil, "", 0, fmt.Errorf("handshake: bad connection_established %q", f.data)
		}
		_ = conn.SetReadDeadline(time.Time{})
		return conn, est.SocketID, time.Duration(est.ActivityTimeout) * time.Second, nil
	case "pusher:error":
		conn.Close()
		e := decodeError(f.data)
		return nil, "", 0, &CloseError{Code: e.Code, Reason: e.Message}
	}
	conn.Close()
	return nil, "", 0, fmt.Errorf("handshake: unexpected first event %q", f.Event)
}

// pusherError is the data of pusher:error.
type pusherError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func decodeError(data []byte) pusherError {
	var e pusherError
	_ = json.Unmarshal(data, &e)
	return e
}

// frame is an inbound message; data is the payload with one level of
// string encoding removed.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  json.RawMessage `json:"user_id"`
	// Position is Herald's place of the event in the channel's history.
	Position json.RawMessage `json:"position"`
	data     []byte
}

func decodeFrame(msg []byte) (frame, error) {
	var f frame
	if err := json.Unmarshal(msg, &f); err != nil {
		return f, fmt.Errorf("bad frame: %w", err)
	}
	if len(f.Data) > 0 && f.Data[0] == '"' {
		var s string
		if err := json.Unmarshal(f.Data, &s); err != nil {
			return f, fmt.Errorf("bad frame data: %w", err)
		}
		f.data = []byte(s)
	} else if string(f.Data) != "null" {
		f.data = f.Data
	}
	return f, nil
}

// outFrame is an outbound message.
type outFrame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data"`
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with maps of strings
	}
	return b
}

// session is one live connection. Its goroutines (reader, authorizations)
// are owned by serve, which waits for them.
type session struct {
	c        *Client
	conn     *websocket.Conn
	socketID string
	ctx      context.Context
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup
	wmu      sync.Mutex
	lastRead atomic.Int64 // unix nanos of the last inbound frame
	userChan string       // #server-to-user-{id} once signed in
	userData []byte       // the signed-in user_data, until its channel is subscribed
}

// write sends one text frame; frames from any goroutine are serialised.
func (s *session) write(ctx context.Context, frame []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.conn == nil { // only in the fuzz test, which has no socket
		return errors.New("no connection")
	}
	deadline := time.Now().Add(s.c.opts.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = s.conn.SetWriteDeadline(deadline)
	if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		s.stop(fmt.Errorf("write: %w", err))
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// stop ends the session with cause.
func (s *session) stop(cause error) { s.cancel(cause) }

// go runs fn on a goroutine the session waits for.
func (s *session) goWait(fn func()) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); fn() }()
}

// serve runs one established connection until it is lost or stopped.
func (c *Client) serve(conn *websocket.Conn, socketID string, activity time.Duration) (closeAction, error) {
	ctx, cancel := context.WithCancelCause(c.ctx)
	s := &session{c: c, conn: conn, socketID: socketID, ctx: ctx, cancel: cancel}
	s.lastRead.Store(time.Now().UnixNano())
	idle := min(activity, c.opts.ActivityTimeout)

	frames := make(chan []byte, 16)
	var readErr error
	s.goWait(func() {
		defer close(frames)
		conn.SetPingHandler(func(data string) error {
			s.lastRead.Store(time.Now().UnixNano())
			err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.opts.WriteTimeout))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			return err
		})
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				readErr = err
				return
			}
			s.lastRead.Store(time.Now().UnixNano())
			select {
			case frames <- msg:
			case <-ctx.Done():
				return
			}
		}
	})

	c.mu.Lock()
	c.sess = s
	c.socketID = socketID
	for _, ch := range c.channels {
		if ch.wanted {
			s.subscribeLocked(ch)
		}
	}
	signin := c.signinWanted
	if !c.wantConnect { // Disconnect came while dialling
		cancel(errDisconnect)
	}
	c.mu.Unlock()
	if signin {
		s.signin()
	}
	c.setState(Connected, nil)

	act, why := s.loop(frames, idle, &readErr)

	cancel(why)
	_ = conn.SetReadDeadline(time.Unix(1, 0)) // unblock the reader
	if act == actStop {
		s.wmu.Lock()
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		s.wmu.Unlock()
	}
	conn.Close()
	s.wg.Wait()

	c.mu.Lock()
	c.sess = nil
	c.socketID = ""
	for _, ch := range c.channels {
		if ch.state != subNone {
			ch.gen++
			c.resetChannelLocked(ch)
		}
	}
	if c.userID != "" || c.signinErr != nil {
		c.userID, c.signinErr = "", nil
		close(c.userChanged)
		c.userChanged = make(chan struct{})
	}
	c.mu.Unlock()
	return act, why
}

// loop handles frames, pings and stops for one session.
func (s *session) loop(frames <-chan []byte, idle time.Duration, readErr *error) (closeAction, error) {
	c := s.c
	timer := time.NewTimer(idle)
	defer timer.Stop()
	var pingAt int64 // when our unanswered ping was sent, 0 if none
	for {
		select {
		case msg, ok := <-frames:
			if !ok {
				err := *readErr // written before frames was closed
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					cerr := &CloseError{Code: ce.Code, Reason: ce.Text}
					return actionFor(ce.Code), cerr
				}
				if cause := context.Cause(s.ctx); s.ctx.Err() != nil {
					return s.stopAction(cause), cause
				}
				return actReconnect, fmt.Errorf("connection lost: %w", err)
			}
			s.handle(msg)
		case <-timer.C:
			last := s.lastRead.Load()
			switch {
			case pingAt != 0 && last > pingAt:
				pingAt = 0 // answered: fall through to the idle check
			case pingAt != 0:
				return actRetry, errPongTimeout
			}
			since := time.Duration(time.Now().UnixNano() - last)
			if since < idle {
				timer.Reset(idle - since)
				continue
			}
			pingAt = time.Now().UnixNano()
			_ = s.write(s.ctx, []byte(`{"event":"pusher:ping","data":{}}`))
			timer.Reset(c.opts.PongTimeout)
		case <-s.ctx.Done():
			cause := context.Cause(s.ctx)
			return s.stopAction(cause), cause
		}
	}
}

// stopAction maps why the session's context ended.
func (s *session) stopAction(cause error) closeAction {
	if errors.Is(cause, errDisconnect) || s.c.ctx.Err() != nil {
		return actStop
	}
	return actReconnect // a write failed
}

// handle acts on one inbound frame.
func (s *session) handle(msg []byte) {
	c := s.c
	f, err := decodeFrame(msg)
	if err != nil {
		c.log.Warn("client: dropping bad frame", "err", err)
		return
	}
	switch f.Event {
	case "pusher:ping":
		_ = s.write(s.ctx, []byte(`{"event":"pusher:pong","data":{}}`))
		return
	case "pusher:pong":
		return
	case "pusher:error":
		e := decodeError(f.data)
		c.log.Debug("client: pusher:error", "code", e.Code, "message", e.Message)
		c.dispatch(nil, Event{Channel: f.Channel, Name: EventError, Data: f.data})
		return
	case "pusher:signin_success":
		s.signedIn(f.data)
		return
	}
	if f.Channel == "" {
		c.dispatch(nil, Event{Name: f.Event, Data: f.data})
		return
	}
	if f.Channel == s.userChan && s.userChan != "" {
		if f.Event == "pusher_internal:subscription_succeeded" {
			s.userReady()
			return
		}
		if len(f.Event) < 7 || (f.Event[:7] != "pusher:" && (len(f.Event) < 16 || f.Event[:16] != "pusher_internal:")) {
			c.dispatch(&c.user.bindings, Event{Channel: f.Channel, Name: f.Event, Data: f.data})
		}
		return
	}
	c.mu.Lock()
	ch := c.channels[f.Channel]
	if ch == nil || !ch.wanted {
		c.mu.Unlock()
		return
	}
	e := Event{Channel: f.Channel, Name: f.Event, Data: f.data, UserID: idString(f.UserID), Position: decodePosition(f.Position)}
	var memberEvent bool
	switch f.Event {
	case "pusher_internal:subscription_succeeded":
		ch.state = subSucceeded
		ch.err = nil
		// During a recovery the subscription's position is the top the
		// replay goes up to, not what this client has received: the
		// replayed events move it.
		if !e.Position.IsZero() && !ch.recovering {
			ch.pos = e.Position
		}
		if wire.IsPresence(ch.name) {
			var p struct {
				Presence struct {
					Hash map[string]json.RawMessage `json:"hash"`
				} `json:"presence"`
			}
			_ = json.Unmarshal(f.data, &p)
			ch.roster = make(map[string]json.RawMessage, len(p.Presence.Hash))
			for id, info := range p.Presence.Hash {
				ch.roster[id] = nullToNil(info)
			}
		}
		close(ch.changed)
		ch.changed = make(chan struct{})
		e.Name = EventSubscriptionSucceeded
	case "pusher:subscription_error":
		var se struct {
			Type   string `json:"type"`
			Error  string `json:"error"`
			Status int    `json:"status"`
		}
		_ = json.Unmarshal(f.data, &se)
		ch.state = subFailed
		ch.err = &SubscriptionError{Channel: ch.name, Type: se.Type, Message: se.Error, Status: se.Status}
		close(ch.changed)
		ch.changed = make(chan struct{})
	case "pusher_internal:member_added":
		m := decodeMember(f.data)
		if ch.roster == nil {
			ch.roster = make(map[string]json.RawMessage)
		}
		ch.roster[m.ID] = m.Info
		e.Name = EventMemberAdded
		memberEvent = true
	case "pusher_internal:member_removed":
		m := decodeMember(f.data)
		delete(ch.roster, m.ID)
		e.Name = EventMemberRemoved
		memberEvent = true
	case "pusher_internal:subscription_count":
		e.Name = EventSubscriptionCount
	case EventRecovery:
		// Recovered or not, live events continue after the server's top
		// (when the window is gone, the app refetches from there).
		ch.recovering = false
		if r := decodeRecovery(e); !r.Position.IsZero() {
			ch.pos = r.Position
		}
	default:
		if len(f.Event) >= 16 && f.Event[:16] == "pusher_internal:" {
			c.mu.Unlock()
			return
		}
		if wire.IsEncrypted(ch.name) && (len(f.Event) < 7 || f.Event[:7] != "pusher:") {
			if !ch.hasKey {
				c.mu.Unlock()
				c.log.Warn("client: encrypted event before the channel key", "channel", ch.name, "event", f.Event)
				return
			}
			plain, err := wire.Decrypt(ch.key, f.data)
			if err != nil {
				c.mu.Unlock()
				c.log.Warn("client: cannot decrypt event", "channel", ch.name, "event", f.Event, "err", err)
				c.dispatch(&ch.bindings, Event{Channel: ch.name, Name: "pusher:decryption_error", Data: mustJSON(map[string]string{"event": f.Event, "error": err.Error()})})
				return
			}
			e.Data = plain
		}
		if !e.Position.IsZero() {
			ch.pos = e.Position
		}
	}
	c.mu.Unlock()
	if memberEvent {
		local := &ch.members
		c.disp.push(func() {
			for _, fn := range local.handlers(e.Name) {
				fn(e)
			}
		})
	}
	c.dispatch(&ch.bindings, e)
}

// subscribeLocked starts subscribing ch on this session (c.mu held):
// public channels at once, others after their authorizer answers.
func (s *session) subscribeLocked(ch *Channel) {
	c := s.c
	ch.gen++
	gen := ch.gen
	ch.state = subPending
	ch.err = nil
	close(ch.changed)
	ch.changed = make(chan struct{})
	if !wire.IsPrivate(ch.name) && !wire.IsPresence(ch.name) {
		s.goWait(func() { _ = s.writeIfCurrent(ch, gen, subscribeData{Channel: ch.name}) })
		return
	}
	if c.opts.ChannelAuthorizer == nil {
		s.failLocked(ch, &SubscriptionError{Channel: ch.name, Type: "AuthError", Message: "no ChannelAuthorizer configured"})
		return
	}
	s.goWait(func() {
		a, err := c.opts.ChannelAuthorizer.AuthorizeChannel(s.ctx, s.socketID, ch.name)
		if s.ctx.Err() != nil {
			return
		}
		if err == nil && wire.IsEncrypted(ch.name) && a.SharedSecret == "" {
			err = errors.New("auth answer has no shared_secret for an encrypted channel")
		}
		var key [32]byte
		if err == nil && wire.IsEncrypted(ch.name) {
			key, err = wire.DecodeKey(a.SharedSecret)
		}
		if err != nil {
			status := 0
			var ae *AuthError
			if errors.As(err, &ae) {
				status = ae.Status
			}
			c.mu.Lock()
			if ch.gen == gen {
				s.failLocked(ch, &SubscriptionError{Channel: ch.name, Type: "AuthError", Message: err.Error(), Status: status})
			}
			c.mu.Unlock()
			return
		}
		data := subscribeData{Channel: ch.name, Auth: a.Auth, ChannelData: a.ChannelData}
		c.mu.Lock()
		if ch.gen == gen {
			ch.key, ch.hasKey = key, wire.IsEncrypted(ch.name)
			if a.ChannelData != "" {
				ch.me = decodeMember([]byte(a.ChannelData))
			}
		}
		c.mu.Unlock()
		_ = s.writeIfCurrent(ch, gen, data)
	})
}

// writeIfCurrent sends a subscribe frame unless the subscription attempt
// it belongs to was superseded (unsubscribed meanwhile). c.mu is held
// across the write so that an unsubscribe frame cannot overtake it, and
// the frame is built under it so that it carries the channel's latest
// position.
func (s *session) writeIfCurrent(ch *Channel, gen uint64, data subscribeData) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if ch.gen != gen || !ch.wanted {
		return nil
	}
	return s.write(s.ctx, subscribeFrameLocked(ch, data))
}

// failLocked marks ch failed and raises pusher:subscription_error.
func (s *session) failLocked(ch *Channel, se *SubscriptionError) {
	ch.state = subFailed
	ch.err = se
	close(ch.changed)
	ch.changed = make(chan struct{})
	s.c.log.Warn("client: subscription failed", "channel", ch.name, "err", se)
	data, _ := json.Marshal(map[string]any{"type": se.Type, "error": se.Message, "status": se.Status})
	s.c.dispatch(&ch.bindings, Event{Channel: ch.name, Name: EventSubscriptionError, Data: data})
}

// signin authenticates the user and sends pusher:signin.
func (s *session) signin() {
	c := s.c
	s.goWait(func() {
		if c.opts.UserAuthenticator == nil {
			s.signinFailed(errors.New("no UserAuthenticator configured"))
			return
		}
		a, err := c.opts.UserAuthenticator.AuthenticateUser(s.ctx, s.socketID)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.signinFailed(err)
			return
		}
		frame, _ := json.Marshal(outFrame{Event: "pusher:signin", Data: mustJSON(map[string]string{"auth": a.Auth, "user_data": a.UserData})})
		_ = s.write(s.ctx, frame)
	})
}

func (s *session) signinFailed(err error) {
	c := s.c
	c.mu.Lock()
	c.signinErr = fmt.Errorf("sign-in: %w", err)
	close(c.userChanged)
	c.userChanged = make(chan struct{})
	c.mu.Unlock()
	c.log.Warn("client: sign-in failed", "err", err)
	c.dispatch(nil, Event{Name: "pusher:signin_error", Data: mustJSON(map[string]string{"error": err.Error()})})
}

// signedIn handles pusher:signin_success: it records the user and
// subscribes to its #server-to-user- channel.
func (s *session) signedIn(data []byte) {
	var d struct {
		UserData string `json:"user_data"`
	}
	var u struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &d) != nil || json.Unmarshal([]byte(d.UserData), &u) != nil || u.ID == "" {
		s.signinFailed(fmt.Errorf("bad signin_success %q", data))
		return
	}
	s.userChan = wire.PrefixServerToUser + u.ID
	s.userData = []byte(d.UserData)
	frame, _ := json.Marshal(outFrame{Event: "pusher:subscribe", Data: mustJSON(map[string]string{"channel": s.userChan, "auth": ""})})
	_ = s.write(s.ctx, frame)
}

// userReady completes a sign-in once the user's channel is subscribed, so
// that events sent to the user from then on reach it.
func (s *session) userReady() {
	c := s.c
	id := s.userChan[len(wire.PrefixServerToUser):]
	c.mu.Lock()
	c.userID = id
	c.signinErr = nil
	close(c.userChanged)
	c.userChanged = make(chan struct{})
	c.mu.Unlock()
	c.dispatch(nil, Event{Name: EventSigninSuccess, Data: s.userData})
}
