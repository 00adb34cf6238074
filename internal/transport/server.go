package transport

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/herald-ws/herald/third_party/nbio"
	"github.com/herald-ws/herald/third_party/nbio/mempool"
	"github.com/herald-ws/herald/third_party/nbio/nbhttp"
	"github.com/herald-ws/herald/third_party/nbio/nbhttp/websocket"

	"github.com/herald-ws/herald/internal/guard"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageSize   = 64 << 10
	DefaultWriteQueueBytes  = 1 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultCloseTimeout     = 2 * time.Second
	// DefaultMaxRequestBodyBytes is max_request_body_kb's default.
	DefaultMaxRequestBodyBytes = 1 << 20
)

// Config configures a Server.
type Config struct {
	// Addr is the "host:port" to listen on (port 0 picks a free port).
	Addr string
	// Listen, when set, opens the listener on Addr instead of a
	// net.ListenConfig of the server's own. A restart in place passes one
	// that hands back a socket inherited from the previous process, so the
	// port never closes. The server sets keep-alive on every accepted
	// socket itself, whoever made the listener.
	Listen func(network, addr string) (net.Listener, error)
	// PathPrefix is "" or "/something": WebSocket clients connect at
	// PathPrefix+"/app/{key}".
	PathPrefix string
	// MaxMessageSize is the largest inbound message in bytes (after
	// reassembly); a larger one closes the connection with 1009.
	MaxMessageSize int
	// WriteQueueBytes bounds the bytes queued for one connection; past it
	// the connection is closed with 4100.
	WriteQueueBytes int
	// TLSConfig, when set, serves wss:// and https:// on Addr instead of
	// plain ws:// and http:// (where its certificates come from is the
	// caller's business: internal/certs). Certificates, GetCertificate
	// (asked on every handshake, with the client's hello), NextProtos
	// (http/1.1 always, h2 never), MinVersion (1.2 when 0), MaxVersion,
	// CipherSuites, CurvePreferences, ClientAuth and ClientCAs are
	// honoured.
	TLSConfig *tls.Config
	// Handler serves every request that is not for PathPrefix+"/app/...":
	// the HTTP API, health, metrics. Nil answers 404.
	Handler http.Handler
	// MaxRequestBodyBytes caps every HTTP request body, on every path and
	// before routing or authentication, while it is read: a larger
	// Content-Length is refused before any of the body is buffered, a
	// chunked body as soon as it passes the cap. Either is answered 413
	// with a JSON error and the connection is closed. 0: 1 MB.
	MaxRequestBodyBytes int
	// HandshakeTimeout bounds the time from accept to a complete upgrade
	// request (and an HTTP keep-alive connection's idle time).
	HandshakeTimeout time.Duration
	// CloseTimeout is how long a closing connection waits for the client's
	// close frame before the socket is closed (default 2 s).
	CloseTimeout time.Duration
	// Flushers is the number of goroutines that write queued frames
	// (default GOMAXPROCS).
	Flushers int
	// Metrics counts connections and bytes per app (nil: not counted).
	Metrics Metrics
	// Epoch is the origin of the monotonic clock of the timestamps given
	// to Conn.Send; whoever stamps frames (the hub) must use the same
	// (default: when New is called). It must carry a monotonic reading
	// (time.Now does), so that wall-clock steps do not skew latencies.
	Epoch time.Time

	Logger *slog.Logger

	// TrustedProxies are the proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (client address, TLS).
	TrustedProxies TrustedProxies
	// Refusals, when set, is told of every connection closed for breaking
	// one of the transport's limits (admission refusals are the hub's).
	Refusals hub.Refusals

	// MessagesPerSecond and MessageBurst limit every message a client
	// sends (text, ping, pong), per connection (0: no limit): see
	// inbound.go for the answers.
	MessagesPerSecond float64
	MessageBurst      int
	// MaxPendingMessages bounds the messages read from one connection and
	// not yet handled; past it the connection is closed with 4100 (0:
	// DefaultMaxPendingMessages, negative: no bound).
	MaxPendingMessages int
	// MaxWorkers bounds the goroutines that handle messages and HTTP
	// requests besides the warm workers (0: DefaultMaxWorkers); past it a
	// job waits for one to be free. The warm workers are 2 per CPU, plus
	// up to 16 per CPU (at most MaxWorkers) of those started for a burst.
	MaxWorkers int
	// OutboundBudget bounds the bytes queued for all connections together
	// (0: no budget): past it the connections holding the most are closed
	// with 4100 until the total is at 3/4 of it, and from half of it on
	// Saturated reports true.
	OutboundBudget int64
	// SaturationDelay is the bound on the delivery delay (from the start
	// of an event's fanout until a socket write carrying it returned):
	// while more than 1% of the recent writes take longer, Saturated
	// reports true (0: the delay is not watched). It needs stamped frames
	// (the hub stamps them when it has Metrics).
	SaturationDelay time.Duration
}

// Defaults of the inbound bounds.
const (
	DefaultMaxPendingMessages = 256
	DefaultMaxWorkers         = 1024
)

// Server serves WebSocket clients and HTTP on one listener.
type Server struct {
	cfg          Config
	admitter     hub.Admitter
	log          *slog.Logger
	queueLimit   int
	closeTimeout time.Duration
	appPrefix    string // PathPrefix + "/app"
	// tooLargeResponse answers a body over MaxRequestBodyBytes.
	tooLargeResponse []byte
	// offenders are the client addresses recently closed for flooding
	// (inbound.go); nil without a message rate.
	offenders *guard.Offenders

	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader
	flushq   *flushQueue
	ctx      context.Context
	cancel   context.CancelFunc

	wg          sync.WaitGroup // flushers
	execWG      sync.WaitGroup // executor goroutines and workers
	jobs        chan func()    // unbuffered: a send succeeds only to an idle worker
	workersQuit chan struct{}

	mu       sync.Mutex
	ln       *listener
	conns    map[*wsConn]struct{}
	started  bool
	stopping bool

	// setupMu guards settingUp and lateClear (see clearHandshakeDeadline).
	setupMu   sync.Mutex
	settingUp *nbio.Conn   // the socket the accept loop is adding, if any
	lateClear []*nbio.Conn // upgraded while settingUp: clear their deadline once added

	pool     jobPool
	scratch  sync.Pool // *[]byte: coalescing buffers of the writes jobs make (endJob)
	pileBufs sync.Pool // *[]byte: readPile's read buffers
	outbound *outboundBudget
	delays   delayWatch
	// publishShed spreads RefusePublish's share of refusals.
	publishShed shedCounter

	slowConsumers  atomic.Int64
	throttles      atomic.Int64 // refusals that paused (or lengthened a pause of) a connection's reading
	offenderStarts atomic.Int64 // connections started with a share of the burst (startBucket)
	handedOff      atomic.Bool  // StopAccepting was called
	inflight       atomic.Int64 // HTTP requests being served by Handler
	acceptSeq      atomic.Uint64
	pollersSeen    atomic.Uint64 // bit i: poller i has read (see probePollers)
	allPollers     uint64
	acceptErrors   atomic.Int64

	// onOpenHook, for tests, runs in the engine's OnOpen: on the accepting
	// goroutine, between the accept and the socket's registration.
	onOpenHook atomic.Pointer[func()]
}

// LimitAcceptErrors is the Refusals name under which failed accepts are
// counted (EMFILE and the like: the connection waits in the backlog while
// the accept loop backs off, 5 ms doubling to 1 s).
const LimitAcceptErrors = "accept_errors"

// New builds a Server whose connections admitter admits; Start makes it
// listen.
func New(cfg Config, admitter hub.Admitter) (*Server, error) {
	if admitter == nil {
		return nil, errors.New("transport: nil Admitter")
	}
	if cfg.Addr == "" {
		return nil, errors.New("transport: empty Addr")
	}
	if p := cfg.PathPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")) {
		return nil, fmt.Errorf("transport: path prefix %q must start with / and not end with /", p)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.WriteQueueBytes <= 0 {
		cfg.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.MaxRequestBodyBytes <= 0 {
		cfg.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if cfg.Flushers <= 0 {
		cfg.Flushers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPendingMessages == 0 {
		cfg.MaxPendingMessages = DefaultMaxPendingMessages
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = DefaultMaxWorkers
	}
	if cfg.MessageBurst <= 0 {
		cfg.MessageBurst = max(int(cfg.MessagesPerSecond), 1)
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Now()
	}
	s := &Server{
		cfg:              cfg,
		admitter:         admitter,
		log:              cfg.Logger,
		queueLimit:       cfg.WriteQueueBytes,
		closeTimeout:     cfg.CloseTimeout,
		appPrefix:        cfg.PathPrefix + "/app",
		flushq:           newFlushQueue(),
		jobs:             make(chan func()),
		workersQuit:      make(chan struct{}),
		conns:            make(map[*wsConn]struct{}),
		outbound:         newOutboundBudget(cfg.OutboundBudget),
		delays:           delayWatch{bound: int64(cfg.SaturationDelay)},
		tooLargeResponse: tooLargeAnswer(cfg.MaxRequestBodyBytes),
	}
	if cfg.MessagesPerSecond > 0 {
		s.offenders = guard.NewOffenders(offenderMemory(cfg.MessagesPerSecond, cfg.MessageBurst), 0)
	}
	s.pool.max = cfg.MaxWorkers
	s.pool.keep = min(keptWorkers(), cfg.MaxWorkers)
	s.scratch.New = func() any { b := make([]byte, 0, 1024); return &b }
	s.pileBufs.New = func() any { b := make([]byte, readPileSize); return &b }
	s.ctx, s.cancel = context.WithCancel(context.Background())
	setNbioLogger(cfg.Logger)

	readLimit := max(4<<20, 2*cfg.MaxMessageSize+(128<<10))
	ncfg := nbhttp.Config{
		Name:                    "herald",
		Network:                 "tcp",
		Handler:                 http.HandlerFunc(s.serveHTTP),
		Listen:                  s.listen,
		KeepaliveTime:           cfg.HandshakeTimeout,
		ReadLimit:               readLimit,
		MaxHTTPBodySize:         cfg.MaxRequestBodyBytes,
		BodyTooLarge:            s.bodyTooLarge,
		MaxLoad:                 1 << 24,
		ReleaseWebsocketPayload: false, // HandleMessage owns the message
		// Each message read is copied into a buffer of its own, which
		// HandleMessage keeps (nothing gives it back). nbio's default
		// pool hands out at least 1 KB for it: under a flood of small
		// messages (pings, subscribes) that was 16 MB/s of garbage and
		// six GC cycles a second, against one for the good clients
		// alone (docs/benchmarks.md, "Session 6"). The exact size
		// costs what the message is.
		BodyAllocator:     mempool.NewSTD(),
		ServerExecutor:    s.execute,
		SupportServerOnly: true,
		Context:           s.ctx,
		Cancel:            s.cancel,
	}
	if cfg.TLSConfig != nil {
		tc, err := convertTLSConfig(cfg.TLSConfig)
		if err != nil {
			return nil, err
		}
		ncfg.TLSConfig = tc
		ncfg.AddrsTLS = []string{cfg.Addr}
	} else {
		ncfg.Addrs = []string{cfg.Addr}
	}
	// Few pollers: they only read and parse; writes go through the
	// flushers and message handling through the executor.
	ncfg.NPoller = min(max(runtime.NumCPU()/2, 1), 16)
	s.engine = nbhttp.NewEngine(ncfg)
	// Yield once per batch of events, before blocking again (see execute).
	s.engine.YieldBeforeWait = true
	s.allPollers = uint64(1)<<uint(s.engine.NPoller) - 1
	// Text messages are checked here, to close with 1007 (nbio uses 1002).
	s.engine.CheckUtf8 = func([]byte) bool { return true }
	s.engine.OnWrittenSize(s.onWritten)
	// The engine hands accepted sockets to its pollers through epoll, which
	// the race detector cannot see; this atomic pair (a store when a socket
	// is added, a load before every read) makes the hand-off visible to it.
	s.engine.OnData(s.onData)
	s.engine.Engine.OnOpen(func(c *nbio.Conn) {
		s.acceptSeq.Add(1) // see OnData above
		s.setupMu.Lock()
		s.settingUp = c
		s.setupMu.Unlock()
		// Accepted sockets have keepalive from the listener (listenConfig), or
		// from Accept for a listener handed in (Config.Listen).
		if h := s.onOpenHook.Load(); h != nil {
			(*h)()
		}
	})
	// The accept loop backs off after an error (nbhttp's listen); each is
	// counted, so that an fd limit too low shows in /metrics.
	s.engine.OnAcceptError(func(err error) {
		s.acceptErrors.Add(1)
		if s.cfg.Refusals != nil {
			s.cfg.Refusals.Refused("", LimitAcceptErrors)
		}
	})

	u := websocket.NewUpgrader()
	u.Engine = s.engine
	u.KeepaliveTime = 0 // no read deadline (and no timer) once upgraded
	u.MessageLengthLimit = cfg.MaxMessageSize
	u.HandshakeTimeout = cfg.HandshakeTimeout
	// The 101 response goes out with connection_established (or the
	// refusal) in one write at the end of admit, not in a write of its own.
	u.DeferResponse = true
	u.CheckOrigin = func(*http.Request) bool { return true } // 4009 after the upgrade
	u.EnableCompression(false)
	u.OnMessagePtr(s.onMessage)
	u.SetPingHandler(s.onPing)
	u.SetPongHandler(s.onPong)
	u.SetCloseHandler(s.onCloseFrame)
	u.OnClose(s.onSocketClose)
	s.upgrader = u
	return s, nil
}

// keepAlive is the TCP keep-alive of accepted sockets: a client gone
// without a FIN is noticed within about a minute.
func keepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: 4}
}

// Start starts listening; it returns once the port is bound.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("transport: server already started")
	}
	s.started = true
	s.mu.Unlock()
	// Bind first: nbio's engine hangs in Start when its listener fails.
	var ln net.Listener
	var err error
	if s.cfg.Listen != nil {
		ln, err = s.cfg.Listen("tcp", s.cfg.Addr)
	} else {
		lc := listenConfig()
		ln, err = lc.Listen(s.ctx, "tcp", s.cfg.Addr)
	}
	if err != nil {
		s.mu.Lock()
		s.stopping = true // nothing left for Shutdown to do
		s.mu.Unlock()
		return fmt.Errorf("transport: listen on %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	raw := newRawAcceptor(ln) // its sockets have keep-alive
	s.ln = &listener{StoppableListener: NewStoppableListener(ln), raw: raw, gate: make(chan struct{}),
		onAccept: s.acceptLoopIdle, setKeepAlive: s.cfg.Listen != nil && raw == nil}
	s.mu.Unlock()
	for i := 0; i < s.cfg.Flushers; i++ {
		s.wg.Add(1)
		go s.flusher()
	}
	s.wg.Add(1)
	go s.shedder()
	for i := 0; i < executorWorkers(); i++ {
		s.execWG.Add(1)
		go s.worker()
	}
	if err := s.engine.Start(); err != nil {
		// Not reached in practice: the only listener is already bound.
		close(s.ln.gate)
		return fmt.Errorf("transport: start: %w", err)
	}
	if s.ln.raw != nil {
		s.ln.raw.watch(s.engine) // before the gate opens: accept has not run
	}
	// nbio's pollers clear their stop flag when their loop starts, so an
	// engine stopped before every poller loop has run never stops (the
	// loop spins on the stop event). Start returns only once each poller
	// has read from a socket of its own.
	// The window only bounds an engine that never starts: on a loaded
	// machine a loopback SYN can be dropped and resent (after 1 s, then
	// 3 s), and a start that fails for it fails for nothing.
	err = s.probePollers(30 * time.Second)
	// The accept loop waited for the probes (so that they cannot mix with
	// its bookkeeping of the socket it is adding); the backlog kept what
	// came meanwhile.
	close(s.ln.gate)
	if err != nil {
		return fmt.Errorf("transport: start: %w", err)
	}
	return nil
}

// probePollers hands the engine sockets of its own until every poller loop
// has read data, as seen by the OnData hook. The probes come through a
// private loopback listener, not the server's: during a restart in place
// the previous process accepts on the same socket and would take some.
func (s *Server) probePollers(timeout time.Duration) error {
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if pl, err = net.Listen("tcp", "[::1]:0"); err != nil {
			return fmt.Errorf("probe listener: %w", err)
		}
	}
	defer pl.Close()
	want := uint64(1)<<uint(s.engine.NPoller) - 1
	deadline := time.Now().Add(timeout)
	var open []net.Conn
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	for s.pollersSeen.Load()&want != want {
		if time.Now().After(deadline) {
			return errors.New("the engine's pollers did not start")
		}
		// Keep the probes open so that the next one gets another fd
		// (nbio assigns a socket to poller fd % NPoller).
		if len(open) < 4*s.engine.NPoller {
			// The whole of the time left (see Start).
			c, err := net.DialTimeout("tcp", pl.Addr().String(), time.Until(deadline))
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			open = append(open, c)
			sc, err := pl.Accept()
			if err != nil {
				return fmt.Errorf("probe: %w", err)
			}
			// As the engine's accept loop adds a plain socket.
			s.engine.AddConnNonTLSNonBlocking(&nbhttp.Conn{Conn: sc}, nil, func() {})
			_, _ = c.Write([]byte("GET /up HTTP/1.1\r\nHost: probe\r\n\r\n"))
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Addr returns the address the server listens on (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// SlowConsumers returns how many connections were closed because their
// write queue overflowed.
func (s *Server) SlowConsumers() int64 { return s.slowConsumers.Load() }

// AcceptErrors returns how many accepts failed (see LimitAcceptErrors).
func (s *Server) AcceptErrors() int64 { return s.acceptErrors.Load() }

// Connections returns the number of upgraded connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// StopAccepting closes this process's listening socket while the open
// connections stay: after a restart in place the next process holds the
// same socket and takes every new connection, so none is refused. From
// then on each HTTP response asks its client to close the connection
// (Connection: close), so that a client keeping connections alive sends
// its next request to the new process. Shutdown still drains the rest.
func (s *Server) StopAccepting() {
	s.handedOff.Store(true)
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Stop()
	}
}

// Shutdown stops accepting, closes the remaining WebSocket connections with
// 4200 (clients reconnect at once, elsewhere), waits for them to finish the
// close handshake and for the HTTP requests in flight to be answered until
// ctx is done, then closes every socket and waits for the goroutines the
// server started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	ln := s.ln
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	if ln != nil {
		ln.Stop()
	}
	for _, c := range conns {
		c.Close(protocol.CodeReconnect, "Server is shutting down")
	}
	var err error
	if !s.waitConns(ctx) {
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.forceClose()
		}
		s.mu.Unlock()
		// Give Closed a moment to run for the sockets just closed.
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		s.waitConns(grace)
		cancel()
	}
	s.engine.Stop()
	s.flushq.close()
	close(s.workersQuit)
	s.wg.Wait()
	s.execWG.Wait()
	return err
}

// waitConns waits until no upgraded connection and no HTTP request in
// flight is left, or ctx is done.
func (s *Server) waitConns(ctx context.Context) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.Connections() == 0 && s.inflight.Load() == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// execute runs the engine's serial per-connection jobs (HTTP handlers,
// messages, close): on an idle worker when there is one, else on a
// goroutine of its own, started on demand (an idle connection holds none).
// The workers keep their grown stacks, so a burst of HTTP API requests
// does not pay for a new goroutine and its stack growth per request; a job
// never waits for a busy worker.
//
// The jobs handed over while a poller works through a batch of events run
// when it yields before blocking in epoll_wait again (YieldBeforeWait, set
// in New): a job left in the poller's run queue while it blocks (a raw
// syscall that keeps the P until sysmon takes it back) would wait up to
// 10 ms when the flushers keep the other Ps busy; without that yield,
// deliveries per server CPU-second of a saturated fanout halve (0.8-1.0M
// against 1.6-1.9M, 1,000 subscribers on one channel). It was a yield
// after every job: under a flood of small messages (pings, subscribes) the
// poller then queued behind every runnable goroutine once per message, and
// the requests and messages later in its batch (a publisher's HTTP request
// among hostile clients' frames) waited for all of them (docs/benchmarks.md,
// "Session 5"). Parking the pollers in Go's netpoller instead (an nbio
// patch, tried for issue 13) gave back only a quarter of the fanout's loss.
func (s *Server) execute(f func()) {
	select {
	case s.jobs <- f:
	default:
		s.spawnOrWait(f)
	}
}

// executorWorkers is the number of warm workers: enough for the HTTP API
// requests and messages the pollers can parse at once.
func executorWorkers() int { return 2 * runtime.GOMAXPROCS(0) }

// keptWorkers is how many goroutines spawned for bursts of jobs may stay
// as warm workers (see jobPool).
func keptWorkers() int { return 16 * runtime.GOMAXPROCS(0) }

// worker runs jobs handed over by execute until the server stops.
func (s *Server) worker() {
	defer s.execWG.Done()
	s.workerLoop()
}

// workerLoop takes jobs from execute, and then the jobs waiting for a
// goroutine, until the server stops.
func (s *Server) workerLoop() {
	for {
		select {
		case f := <-s.jobs:
			for f != nil {
				f()
				f = s.afterJob()
			}
		case <-s.workersQuit:
			return
		}
	}
}

func (s *Server) register(c *wsConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) unregister(c *wsConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// onWritten is told by the engine how many bytes the kernel took on a
// socket, whether at once or later from its own buffer.
func (s *Server) onWritten(nc *nbio.Conn, _ []byte, n int) {
	wsc, ok := nc.Session().(*websocket.Conn)
	if !ok {
		return
	}
	if c, ok := wsc.Session().(*wsConn); ok {
		c.wrote(n)
	}
}

// ---- HTTP and upgrade ----

// The engine's accept loop adds a socket to a poller (from then on its
// requests are read and served) and only then arms the socket's HTTP
// keep-alive read deadline. When the upgrade of that socket runs in
// between, the upgrade's clearing of the deadline comes first and the
// deadline closes the idle WebSocket connection HandshakeTimeout later
// (seen as 1 in 10,000 idle connections lost with 1006 under load).
// clearHandshakeDeadline clears the deadline after the accept loop is done
// with the socket: at once when it is, or from acceptLoopIdle, which runs
// when the loop comes back for the next socket.

// rawConn returns the engine's socket under nc (plain or TLS).
func rawConn(nc net.Conn) *nbio.Conn {
	for range 3 {
		switch v := nc.(type) {
		case *nbio.Conn:
			return v
		case *nbhttp.Conn:
			nc = v.Conn
		case interface{ Conn() net.Conn }: // nbio's TLS conn
			nc = v.Conn()
		default:
			return nil
		}
	}
	return nil
}

func (s *Server) clearHandshakeDeadline(nc net.Conn) {
	raw := rawConn(nc)
	if raw == nil {
		return
	}
	s.setupMu.Lock()
	if s.settingUp == raw {
		s.lateClear = append(s.lateClear, raw)
		s.setupMu.Unlock()
		return
	}
	s.setupMu.Unlock()
	_ = raw.SetReadDeadline(time.Time{})
}

// acceptLoopIdle runs when the engine's accept loop asks for its next
// socket: the previous one is fully set up.
func (s *Server) acceptLoopIdle() {
	s.setupMu.Lock()
	s.settingUp = nil
	late := s.lateClear
	s.lateClear = nil
	s.setupMu.Unlock()
	for _, c := range late {
		_ = c.SetReadDeadline(time.Time{})
	}
}

// serveHTTP routes a request: the app path is ours, the rest goes to the
// configured handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path != s.appPrefix && !strings.HasPrefix(path, s.appPrefix+"/") {
		if s.handedOff.Load() {
			r.Close = true // the engine answers Connection: close and closes
		}
		if s.cfg.Handler != nil {
			// Counted so that Shutdown lets it finish before closing sockets.
			s.inflight.Add(1)
			defer s.inflight.Add(-1)
			s.cfg.Handler.ServeHTTP(w, r)
			return
		}
		writeJSONError(w, http.StatusNotFound, "Not found")
		return
	}
	key := strings.TrimPrefix(path, s.appPrefix+"/")
	if path == s.appPrefix || key == "" || strings.Contains(key, "/") {
		writeJSONError(w, http.StatusNotFound, "Not found")
		return
	}
	if r.Method != http.MethodGet {
		writeJSONError(w, http.StatusBadRequest, "WebSocket upgrade requires GET")
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		writeJSONError(w, http.StatusBadRequest, "Expected a WebSocket upgrade request")
		return
	}
	if r.Header.Get("Sec-Websocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeJSONError(w, http.StatusUpgradeRequired, "Unsupported WebSocket version")
		return
	}
	if !validKey(r.Header.Get("Sec-Websocket-Key")) {
		writeJSONError(w, http.StatusBadRequest, "Missing or invalid Sec-WebSocket-Key")
		return
	}
	wsc, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.admit(wsc, r, key)
}

// admit gathers the facts of an upgraded connection and asks the hub to
// admit it (protocol §1.2): every refusal but the transport's own shutdown
// is decided there. It runs as the connection's serial job, before any
// message.
func (s *Server) admit(wsc *websocket.Conn, r *http.Request, key string) {
	nc := wsc.UnderlayerConn()
	if hc, ok := nc.(*nbhttp.Conn); ok {
		nc = hc.Conn
	}
	// In the job from the start: what admission queues (the 101 response,
	// connection_established or the refusal) is written when it returns.
	c := &wsConn{srv: s, wsc: wsc, nc: nc, raw: rawConn(nc), inJob: true}
	defer c.endJob()
	if hs := wsc.TakeHandshakeResponse(); hs != nil {
		c.queue = append(c.queue, hs)
		c.queued += len(hs)
		s.outbound.add(int64(len(hs)))
	}
	wsc.SetSession(c)
	s.clearHandshakeDeadline(nc)
	// The socket registry closing is the transport's state, not an
	// admission policy: a stopping server has no hub to ask.
	if !s.register(c) {
		s.refuse(c, protocol.CodeReconnect, "Server is shutting down")
		return
	}
	client, viaTLS := s.cfg.TrustedProxies.clientOf(r, s.cfg.TLSConfig != nil)
	c.clientIP = client
	s.startBucket(c)
	info := hub.ConnInfo{
		Key:        key,
		RemoteAddr: r.RemoteAddr,
		Origin:     r.Header.Get("Origin"),
		UserAgent:  r.Header.Get("User-Agent"),
		TLS:        viaTLS,
		ClientIP:   client,
	}
	info.Protocol, info.HasProtocol = protocolParam(r.URL.RawQuery)
	var sess hub.Session
	var err error
	c.call("Admit", func() { sess, err = s.admitter.Admit(s.ctx, c, info) }, false)
	if sess == nil && err == nil {
		err = errors.New("session refused")
	}
	if err != nil {
		ce, ok := errors.AsType[*hub.ConnectError](err)
		code, msg := protocol.CodeOverCapacity, "Over capacity"
		if ok {
			code, msg = ce.Code, ce.Message
		} else {
			s.log.Warn("session refused without a close code", "err", err)
		}
		s.refuse(c, code, msg)
		return
	}
	c.mu.Lock()
	c.admitted = true
	// socketClosed counts the close of an admitted connection; one that
	// closed before this point is counted here.
	gone, code := c.state == stateClosed, c.closeCode
	c.mu.Unlock()
	if c.metrics != nil {
		c.metrics.Opened()
		if gone {
			c.metrics.Closed(cmp.Or(code, 1006))
		}
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		// ip and tls are what trusted_proxies made of the forwarded headers.
		s.log.Debug("connection opened", "app_id", c.appID, "remote", info.RemoteAddr, "ip", info.ClientIP.String(), "tls", info.TLS, "origin", info.Origin)
	}
	c.session = sess
}

// protocolParam is the first value of the protocol query parameter, as
// url.ParseQuery(raw)["protocol"] gives it, without building the map of
// every parameter (four allocations per connection for pusher-js's
// query). Queries of 64 parameters or more go to url.ParseQuery itself,
// whose limit on their number applies.
func protocolParam(raw string) (string, bool) {
	if strings.Count(raw, "&") >= 64 {
		v, _ := url.ParseQuery(raw)
		if p, ok := v["protocol"]; ok && len(p) > 0 {
			return p[0], true
		}
		return "", false
	}
	for raw != "" {
		var key string
		key, raw, _ = strings.Cut(raw, "&")
		if key == "" || strings.Contains(key, ";") {
			continue // ParseQuery skips these
		}
		key, value, _ := strings.Cut(key, "=")
		if key != "protocol" {
			// Only an escaped name can unescape to it.
			if !strings.ContainsAny(key, "%+") {
				continue
			}
			if k, err := url.QueryUnescape(key); err != nil || k != "protocol" {
				continue
			}
		}
		if v, err := url.QueryUnescape(value); err == nil {
			return v, true
		}
	}
	return "", false
}

// refused counts a refusal when a counter is configured.
func (s *Server) refused(appID, limit string) {
	if r := s.cfg.Refusals; r != nil {
		r.Refused(appID, limit)
	}
}

// refuse sends pusher:error and closes with the same code and reason.
func (s *Server) refuse(c *wsConn, code int, msg string) {
	if m := s.cfg.Metrics; m != nil {
		am := c.metrics
		if am == nil {
			am = m.App(c.appID)
		}
		am.Refused(code)
	}
	c.Send(TextFrame(protocol.Error(code, msg)), 0)
	c.Close(code, msg)
}

// ---- WebSocket events (each runs in the connection's serial job) ----

func connOf(wsc *websocket.Conn) *wsConn {
	c, _ := wsc.Session().(*wsConn)
	return c
}

func (s *Server) onMessage(wsc *websocket.Conn, mt websocket.MessageType, p *[]byte) {
	c := connOf(wsc)
	if c == nil || c.session == nil {
		return
	}
	var msg []byte
	if p != nil {
		msg = *p
	}
	if !c.isOpen() {
		return
	}
	c.call("Touch", c.session.Touch, true)
	if c.metrics != nil {
		c.metrics.BytesIn(len(msg))
	}
	// In the job from here: the answer to a message refused by the rate
	// limit is written by this job too, not handed to the flushers, whose
	// reply lane goes before the fanouts of the clients that behave (a
	// flood of refused subscribes woke a flusher per refusal).
	c.beginJob()
	defer c.endJob()
	if !s.limitMessage(c, msg, true) {
		return
	}
	if mt == websocket.TextMessage && !utf8.Valid(msg) {
		c.Close(1007, "Invalid UTF-8 in text message")
		return
	}
	c.call("HandleMessage", func() { c.session.HandleMessage(msg) }, true)
}

func (s *Server) onPing(wsc *websocket.Conn, data string) {
	c := connOf(wsc)
	if c == nil || c.session == nil || !c.isOpen() {
		return
	}
	c.call("Touch", c.session.Touch, true)
	c.beginJob()
	defer c.endJob()
	if !s.limitMessage(c, nil, false) {
		return
	}
	// Queued like any frame, under the connection's byte bound: a client
	// that pings without reading is a slow consumer (4100).
	c.Send(appendFrame(nil, opPong, []byte(data)), 0)
}

func (s *Server) onPong(wsc *websocket.Conn, _ string) {
	if c := connOf(wsc); c != nil && c.session != nil && c.isOpen() {
		c.call("Touch", c.session.Touch, true)
		// A job of a message like the others: it writes what earlier jobs
		// of a batch left queued (endJob).
		c.beginJob()
		s.limitMessage(c, nil, false)
		c.endJob()
	}
}

// onCloseFrame answers the client's close frame unless ours was sent
// already; the engine closes the socket right after it returns.
func (s *Server) onCloseFrame(wsc *websocket.Conn, code int, _ string) {
	c := connOf(wsc)
	if c == nil {
		return
	}
	if c.session != nil {
		c.call("Touch", c.session.Touch, false)
	}
	// Replies that jobs of earlier messages left to a later job (endJob)
	// go out before the close.
	c.beginJob()
	c.endJob()
	if !c.peerClose(code) {
		c.finalWrite(nil)
		return
	}
	if code == 1005 {
		code = 0 // answer a close without status with an empty close
	}
	// Written directly: the engine closes the socket when this returns.
	c.finalWrite(closeFrame(code, ""))
}

func (s *Server) onSocketClose(wsc *websocket.Conn, err error) {
	if c := connOf(wsc); c != nil {
		if errors.Is(err, websocket.ErrMessageTooLarge) || errors.Is(err, websocket.ErrControlMessageTooBig) {
			s.refused(c.appID, hub.LimitMessageSize) // closed with 1009 by the engine
		}
		c.socketClosed()
	}
}

// ---- helpers ----

// bodyTooLarge is the answer to a request whose body passes
// MaxRequestBodyBytes; nbio writes it from its poller before closing the
// connection, so that nothing more of the body is kept.
func (s *Server) bodyTooLarge() []byte {
	if s.cfg.Refusals != nil {
		s.cfg.Refusals.Refused("", hub.LimitRequestBody)
	}
	return s.tooLargeResponse
}

// tooLargeAnswer builds bodyTooLarge's response once.
func tooLargeAnswer(limit int) []byte {
	msg := "The request body exceeds the allowed maximum (" + strconv.Itoa(limit) + " bytes)"
	body := append(protocol.AppendString([]byte(`{"error":`), msg), `,"code":413}`+"\n"...)
	head := "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	return append([]byte(head), body...)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(status)
	b := make([]byte, 0, len(msg)+32)
	b = append(b, `{"error":`...)
	b = protocol.AppendString(b, msg)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}

// validKey checks Sec-WebSocket-Key: base64 of 16 bytes (RFC 6455 §4.2.1).
func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], []byte(k))
	return err == nil && n == 16
}

// headerHasToken reports whether a comma-separated header contains token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// StoppableListener can stop accepting (Stop closes its socket: in a
// restart in place the next process holds it, and the kernel queues for
// that one) while its owner keeps serving what it accepted: Accept then
// blocks until Close instead of failing, since an accept loop that sees
// an error either retries at once (nbio's engine, until it is stopping)
// or ends its server (http.Server, which would drop a request read after
// it began, with no answer).
type StoppableListener struct {
	net.Listener
	stopOnce, closeOnce sync.Once
	stopped, closed     chan struct{}
}

// NewStoppableListener wraps ln.
func NewStoppableListener(ln net.Listener) *StoppableListener {
	return &StoppableListener{Listener: ln, stopped: make(chan struct{}), closed: make(chan struct{})}
}

// Accept returns the next connection; once Stop was called, it blocks
// until Close and returns net.ErrClosed.
func (l *StoppableListener) Accept() (net.Conn, error) {
	return l.afterStop(l.Listener.Accept())
}

// afterStop passes an accept's result on, but for an error caused by Stop:
// that one waits for Close and becomes net.ErrClosed.
func (l *StoppableListener) afterStop(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		select {
		case <-l.stopped:
			<-l.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

// Stop closes the socket (new connections are refused, or go to the
// process that holds it too) but leaves Accept blocked until Close.
func (l *StoppableListener) Stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		_ = l.Listener.Close()
	})
}

// Close stops the listener and releases Accept.
func (l *StoppableListener) Close() error {
	l.Stop()
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// listener is the engine's StoppableListener: the engine's accept loop
// retries on errors until the engine is stopping, so a stopped listener
// blocks in Accept until the engine closes it.
type listener struct {
	*StoppableListener
	// raw accepts in place of the listener's Accept when it can (Linux,
	// a socket with the options accepted sockets need; see rawAcceptor).
	raw      *rawAcceptor
	gate     chan struct{} // closed once Start has probed the pollers
	onAccept func()        // called each time the engine's accept loop asks for a socket
	// setKeepAlive applies keepAlive to each accepted socket, for a
	// listener the server did not make (its own has it in its config),
	// unless the first socket showed that the listener hands them out
	// with it already (made by Listen: inherited from the listening
	// socket, and Go's Accept leaves it): four setsockopt calls per
	// connection saved. Only the engine's accept loop calls Accept.
	setKeepAlive bool
	checked      bool // the first accepted socket was looked at
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.gate:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	if l.onAccept != nil {
		l.onAccept()
	}
	if l.raw != nil {
		return l.afterStop(l.raw.accept())
	}
	c, err := l.StoppableListener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && l.setKeepAlive {
		if !l.checked {
			l.checked = true
			if hasKeepAlive(tc) {
				l.setKeepAlive = false
				return c, err
			}
		}
		_ = tc.SetKeepAliveConfig(keepAlive())
	}
	return c, err
}

// Stop stops the listening socket (see StoppableListener): the listener's
// descriptor and the raw acceptor's duplicate are closed.
func (l *listener) Stop() {
	l.StoppableListener.Stop()
	if l.raw != nil {
		l.raw.close()
	}
}

// Close stops the listener and releases Accept.
func (l *listener) Close() error {
	l.Stop()
	return l.StoppableListener.Close()
}

// Listen opens a TCP listener whose accepted sockets have the transport's
// TCP keep-alive without a system call per connection (on Linux it is set
// on the listening socket and inherited): for Config.Listen to open
// listeners with, e.g. through a restart-in-place library.
func Listen(network, addr string) (net.Listener, error) {
	lc := listenConfig()
	return lc.Listen(context.Background(), network, addr)
}

// listen hands the engine the listener bound by Start.
func (s *Server) listen(_, _ string) (net.Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil, errors.New("transport: no listener")
	}
	return s.ln, nil
}
