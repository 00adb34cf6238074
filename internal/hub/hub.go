// Package hub is Herald's engine: connections, channels, presence, users,
// cache channels, client events and fanout. It speaks to the outside only
// through the interfaces in interfaces.go, so the WebSocket library and the
// place where shared state lives can change without touching it.
package hub

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// Options configure a Hub. Zero values select the single-node defaults.
type Options struct {
	// Framer builds the wire frame of a message once for all recipients.
	Framer Framer
	// State is where counts, rosters and cache events live; Broker
	// carries messages to and from the other nodes. Both are required:
	// internal/cluster/memory has the single-node ones.
	State  State
	Broker Broker
	// History keeps the events of channels with history and delivers them
	// (history.go); nil: apps' history rules are ignored. The engines have
	// one (memory.Cluster.History, cluster.Engine.History).
	History History
	// Apps finds apps: by key for a connection's admission (Admit,
	// admit.go), by id for what the engine reports on (HandleDeparture;
	// without it departures are only logged).
	Apps AppLookup
	// Observer is told of connections, channels and events (default: none).
	Observer Observer
	// Metrics counts fanouts and refusals (default: none).
	Metrics Metrics
	// Epoch is the origin of the monotonic clock whose readings the hub
	// passes to Conn.Send (nanoseconds since Epoch); the transport must
	// read the same clock, so the server gives both the same Epoch
	// (default: when New is called, for a hub whose Conns ignore it). It
	// must carry a monotonic reading (time.Now does).
	Epoch time.Time

	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// CacheTTL is how long a cache channel keeps its last event (default 30 min).
	CacheTTL time.Duration
	// SubscriptionCountInterval coalesces subscription_count events per
	// channel (default 1 s).
	SubscriptionCountInterval time.Duration
	// PongTimeout is how long a pinged client has to answer (default 30 s,
	// never more than the app's activity timeout).
	PongTimeout time.Duration
	// StateTimeout bounds each State call made on behalf of a client
	// (default 5 s).
	StateTimeout time.Duration
	// Refusals, when set, is told of every request a limit refused.
	Refusals Refusals
	// NodeLimits are the node's own admission limits (default: none).
	NodeLimits NodeLimits
}

const shardCount = 64

// Hub holds every connection of this node and routes messages between them,
// the HTTP API and the other nodes. It is safe for concurrent use.
type Hub struct {
	opt   Options
	state State
	log   *slog.Logger
	// burst logs the warnings that come once per socket or subscription
	// (a mass disconnect while the State is down) as one line per interval.
	burst    *burstLog
	now      func() time.Time
	seed     maphash.Seed
	draining atomic.Bool

	channels [shardCount]channelShard
	clients  [shardCount]clientShard

	connMu sync.Mutex
	conns  map[string]int // app id → open connections on this node

	// ghosts are subscriptions the State may hold though the hub let go
	// of them (ghosts.go).
	ghostMu sync.Mutex
	ghosts  map[ghostKey]ghost
	// repairMu makes ghost repairs take turns (the retry loop and
	// Reconcile): two attempts at one leave in flight at once could both
	// report its outcome.
	repairMu sync.Mutex
	ops      atomic.Uint64 // names leaves (newOp)
	repairs  repairCounters
	// recon is where the lease tick's reconciliation resumes (Reconcile).
	recon reconcileCursor

	usersMu  sync.Mutex
	users    map[userKey]map[*Client]struct{}
	watchers map[userKey]map[*Client]struct{}

	// presence serialises joins and leaves per presence channel (striped).
	presence [256]sync.Mutex

	timers timerWheel
	dueBuf []*Client // reused by sweep (only Run's goroutine sweeps)

	adm admission // admit.go

	countMu    sync.Mutex
	countDirty map[chanKey]*apps.App

	histMetrics HistoryMetrics // Options.Metrics, when it counts recoveries
}

type chanKey struct{ app, name string }

type userKey struct{ app, user string }

type channelShard struct {
	mu sync.RWMutex
	m  map[chanKey]*localChannel
}

type clientShard struct {
	mu sync.RWMutex
	m  map[string]*Client
}

// New builds a Hub. Call Run to start its timers.
func New(o Options) *Hub {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Epoch.IsZero() {
		o.Epoch = time.Now()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Framer == nil {
		o.Framer = func(p []byte) []byte { return p }
	}
	if o.State == nil || o.Broker == nil {
		// The hub cannot import the engines (they import it): the caller
		// picks one, memory.New for a single node.
		panic("hub: Options.State and Options.Broker are required")
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 30 * time.Minute
	}
	if o.SubscriptionCountInterval <= 0 {
		o.SubscriptionCountInterval = time.Second
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = 30 * time.Second
	}
	if o.StateTimeout <= 0 {
		o.StateTimeout = 5 * time.Second
	}
	h := &Hub{
		opt:        o,
		state:      o.State,
		log:        o.Logger,
		burst:      newBurstLog(o.Logger, o.Now, burstInterval),
		now:        o.Now,
		seed:       maphash.MakeSeed(),
		conns:      make(map[string]int),
		users:      make(map[userKey]map[*Client]struct{}),
		watchers:   make(map[userKey]map[*Client]struct{}),
		countDirty: make(map[chanKey]*apps.App),
	}
	h.histMetrics, _ = o.Metrics.(HistoryMetrics)
	h.adm.init(o)
	for i := range h.channels {
		h.channels[i].m = make(map[chanKey]*localChannel)
		h.clients[i].m = make(map[string]*Client)
	}
	o.Broker.Attach(h)
	return h
}

// lockPresence locks the stripe of a presence channel and returns its
// unlock.
func (h *Hub) lockPresence(k chanKey) func() {
	m := &h.presence[maphash.String(h.seed, k.app+"\x00"+k.name)%uint64(len(h.presence))]
	m.Lock()
	return m.Unlock
}

func (h *Hub) shardOf(s string) int { return int(maphash.String(h.seed, s) % shardCount) }

func (h *Hub) chanShard(k chanKey) *channelShard {
	return &h.channels[int(maphash.String(h.seed, k.name)%shardCount)]
}

// Run drives the hub's timers (activity pings, sign-in deadlines,
// subscription counts) until ctx is done. Only one Run may be active.
func (h *Hub) Run(ctx context.Context) error {
	// Subscription counts read the shared State (Redis in a cluster) and
	// publish through the broker: they run on a goroutine of their own, so
	// that a slow Redis never holds up the pings, pong timeouts and
	// sign-in deadlines below, which touch nothing but local memory.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		counts := time.NewTicker(h.opt.SubscriptionCountInterval)
		defer counts.Stop()
		repair := time.NewTicker(time.Second)
		defer repair.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-counts.C:
				h.guard("subscription counts", h.flushCounts)
			case <-repair.C:
				h.guard("ghost repair", h.repairGhosts)
			}
		}
	}()
	defer wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			h.burst.Flush(true)
			return nil
		case <-tick.C:
			h.guard("sweep", h.sweep)
			h.burst.Flush(false)
		}
	}
}

// guard runs one timer task; a panic is logged with its stack and the
// timers keep running for everyone else.
func (h *Hub) guard(name string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic in timer task", "task", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
}

// connect registers a connection for app and queues its
// pusher:connection_established: the last step of admit. It returns a
// *ConnectError when the node is draining or the app is over its
// connection quota.
func (h *Hub) connect(app *apps.App, conn Conn) (*Client, error) {
	if h.draining.Load() {
		return nil, &ConnectError{Code: protocol.CodeReconnect, Message: "Server is shutting down, please reconnect"}
	}
	h.connMu.Lock()
	if app.MaxConnections >= 0 && h.conns[app.ID] >= app.MaxConnections {
		h.connMu.Unlock()
		h.refused(app.ID, LimitConnections)
		return nil, &ConnectError{Code: protocol.CodeOverQuota, Message: "Application is over connection quota"}
	}
	h.conns[app.ID]++
	h.connMu.Unlock()

	now := h.now()
	c := &Client{hub: h, conn: conn}
	c.app.Store(app)
	c.lastSeen.Store(now.UnixNano())
	if app.EnableUserAuthentication {
		c.authDeadline = now.Add(app.UserAuthenticationTimeout).UnixNano()
	}
	for {
		// Built in one buffer: one allocation, not three.
		var buf [24]byte
		id := strconv.AppendUint(buf[:0], uint64(rand.Uint32()), 10)
		id = append(id, '.')
		c.id = string(strconv.AppendUint(id, uint64(rand.Uint32()), 10))
		sh := &h.clients[h.shardOf(c.id)]
		sh.mu.Lock()
		if _, taken := sh.m[c.id]; !taken {
			sh.m[c.id] = c
			sh.mu.Unlock()
			break
		}
		sh.mu.Unlock()
	}
	h.startTimers(c)
	if o := h.opt.Observer; o != nil {
		o.ConnectionOpened(app.ID)
	}
	c.send(protocol.ConnectionEstablished(c.id, int(app.ActivityTimeout/time.Second)))
	return c, nil
}

// Connections returns the number of open connections of an app on this node.
func (h *Hub) Connections(appID string) int {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	return h.conns[appID]
}

func (h *Hub) client(socketID string) *Client {
	if socketID == "" {
		return nil
	}
	sh := &h.clients[h.shardOf(socketID)]
	sh.mu.RLock()
	c := sh.m[socketID]
	sh.mu.RUnlock()
	return c
}

func (h *Hub) removeClient(c *Client) {
	h.timers.forget(c)
	sh := &h.clients[h.shardOf(c.id)]
	sh.mu.Lock()
	delete(sh.m, c.id)
	sh.mu.Unlock()
	h.connMu.Lock()
	if h.conns[c.app.Load().ID]--; h.conns[c.app.Load().ID] <= 0 {
		delete(h.conns, c.app.Load().ID)
	}
	h.connMu.Unlock()
	h.adm.admitted.Add(-1) // the slot admit took
	if o := h.opt.Observer; o != nil {
		o.ConnectionClosed(c.app.Load().ID)
	}
}

// forEachClient calls f for every client, one shard at a time, without
// holding a lock during f.
func (h *Hub) forEachClient(f func(*Client)) {
	var batch []*Client
	for i := range h.clients {
		sh := &h.clients[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.RUnlock()
		for _, c := range batch {
			f(c)
		}
	}
}

// frame encodes a JSON message for the wire once.
func (h *Hub) frame(payload []byte) []byte { return h.opt.Framer(payload) }

// stateCtx bounds a State call made on behalf of a client message.
func (h *Hub) stateCtx() (context.Context, context.CancelFunc) {
	return withLazyTimeout(context.Background(), h.opt.StateTimeout)
}

// Drain refuses new connections and closes the open ones with 4200
// (reconnect at once) spread evenly over window, so that clients come back
// to other nodes gradually. It returns when every connection has been told
// to close or ctx is done.
func (h *Hub) Drain(ctx context.Context, window time.Duration) error {
	h.draining.Store(true)
	var all []*Client
	h.forEachClient(func(c *Client) { all = append(all, c) })
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	const batches = 20
	per := (len(all) + batches - 1) / batches
	if per == 0 {
		return nil
	}
	step := window / batches
	for i := 0; i < len(all); i += per {
		end := min(i+per, len(all))
		for _, c := range all[i:end] {
			c.closeWith(protocol.CodeReconnect, "Server is shutting down, please reconnect")
		}
		if end == len(all) {
			break
		}
		jitter := time.Duration(0)
		if step > 0 {
			jitter = time.Duration(rand.Int64N(int64(step)/2 + 1))
		}
		select {
		case <-ctx.Done():
			for _, c := range all[end:] {
				c.closeWith(protocol.CodeReconnect, "Server is shutting down, please reconnect")
			}
			return ctx.Err()
		case <-time.After(step/2 + jitter):
		}
	}
	return nil
}

// Draining reports whether Drain has been called.
func (h *Hub) Draining() bool { return h.draining.Load() }
