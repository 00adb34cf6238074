// Package server wires Herald's parts together from a Config, starts them
// in order (listeners last) and stops them in reverse (listeners first).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster"
	"github.com/herald-ws/herald/internal/cluster/memory"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/dashboard"
	"github.com/herald-ws/herald/internal/httpapi"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/ingest"
	"github.com/herald-ws/herald/internal/metrics"
	"github.com/herald-ws/herald/internal/transport"
	"github.com/herald-ws/herald/internal/webhooks"
)

// Server is one Herald node.
type Server struct {
	cfg  *config.Config
	log  *slog.Logger
	apps apps.Store
	hub  *hub.Hub
	ws   *transport.Server
	// node and broker are the Redis engine (nil on a single node).
	node   *cluster.Node
	broker *cluster.Broker
	// memHistory is the single node's channel history (nil in a cluster).
	memHistory *memory.History
	// redisHistory is the cluster's channel history (nil alone).
	redisHistory *cluster.History
	// webhooks delivers webhooks (nil when no app has one).
	webhooks *webhooks.Dispatcher
	// ingest receives what Laravel's redis broadcaster publishes for the
	// apps with laravel_redis.
	ingest *ingest.Ingester
	ready  atomic.Bool
	// handedOff: a new process holds the listeners and serves (WithHandOff).
	handedOff atomic.Bool
	opts      options
	// refusals counts what the limits refused.
	refusals *Refusals

	// Monitoring (monitoring.go): metrics always, the dashboard when there
	// is an admin token, a listener of its own for /metrics when
	// metrics_addr is set.
	metrics        *metrics.Metrics
	dash           *dashboard.Dashboard
	generatedToken string
	metricsSrv     *http.Server
	metricsLn      net.Listener
	metricsDone    chan struct{}

	// relay joins the HTTP API to the other process during a restart in
	// place (relay.go); nil unless WithRelay, and in a cluster.
	relay *relay

	// acme is the ACME certificate manager and its HTTP-01 listener
	// (certs.go), when acme_domains is set.
	acme acmeState

	// appsDB is the database apps store (apps.go), when apps_store names one.
	appsDB appsState
	// hurry is closed by Hurry: the drain is cut short.
	hurry     chan struct{}
	hurryOnce sync.Once
}

// webhookFlushGrace is the least time queued webhooks get at shutdown,
// even after a drain that used its whole window or was cut short: enough
// to hand them to Redis, or to try each once on a single node.
const webhookFlushGrace = 2 * time.Second

// Hurry cuts a drain short (the operator's second SIGTERM or SIGINT): the
// connections still open are closed at once, HTTP requests in flight are
// no longer waited for, queued webhooks get webhookFlushGrace to be
// delivered or handed to Redis, and Run returns. Before Run drains, it
// makes the coming drain a short one. Safe to call more than once.
func (s *Server) Hurry() {
	s.hurryOnce.Do(func() { close(s.hurry) })
}

// New builds a node from cfg. Nothing listens until Run.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	s := &Server{cfg: cfg, log: log, refusals: &Refusals{log: log.With("component", "limits")}, hurry: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.listen == nil {
		s.opts.listen = net.Listen
	}
	s.buildMetrics()
	s.refusals.metrics = s.metrics
	store, err := s.buildApps()
	if err != nil {
		return nil, err
	}
	s.apps = store
	// One origin for the monotonic clock the hub stamps frames with and
	// the transport measures delivery latency against.
	epoch := time.Now()
	nl, memLimit := nodeLimits(cfg, log)
	hopt := hub.Options{
		Apps:                      store,
		NodeLimits:                nl,
		Epoch:                     epoch,
		Refusals:                  s.refusals,
		Metrics:                   s.metrics,
		Observer:                  s.metrics.Observer(),
		Framer:                    transport.TextFrame,
		Logger:                    log.With("component", "hub"),
		CacheTTL:                  cfg.CacheTTL,
		SubscriptionCountInterval: cfg.SubscriptionCountInterval,
	}
	if err := s.buildEngine(&hopt); err != nil {
		return nil, err
	}
	if err := s.buildWebhooks(store, &hopt); err != nil {
		return nil, err
	}
	if err := s.buildDashboard(store, &hopt); err != nil {
		return nil, err
	}
	s.hub = hub.New(hopt)
	var apiHubOf httpapi.Hub = s.hub
	if s.dash != nil {
		apiHubOf = apiHub{Hub: s.hub, dash: s.dash}
	}
	// One set of rate buckets for every way events come in.
	limits := new(hub.RateLimits)
	if err := s.buildIngest(store, apiHubOf, limits); err != nil {
		return nil, err
	}
	// Ingested events are not relayed: during a restart in place both
	// processes ingest, each for its own clients.
	if s.opts.relay != nil && s.node == nil {
		s.relay = &relay{s: s, log: log.With("component", "relay")}
		apiHubOf = relayHub{Hub: apiHubOf, r: s.relay}
	}
	api := httpapi.New(httpapi.Options{
		Apps:            store,
		Hub:             apiHubOf,
		RateLimits:      limits,
		Recorder:        s.metrics,
		PathPrefix:      cfg.PathPrefix,
		MaxBodyBytes:    int64(cfg.MaxRequestBodyBytes()),
		TimestampWindow: cfg.APITimestampWindow,
		Ready:           s.readiness,
		Degraded:        s.appsDegraded,
		Logger:          log.With("component", "httpapi"),
		Refusals:        s.refusals,
		Backpressure:    outboundSource{s},
	})
	tlsConf, err := s.buildTLS(log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	tcfg := transport.Config{
		Addr:             cfg.Addr(),
		Listen:           s.opts.listen,
		PathPrefix:       cfg.PathPrefix,
		MaxMessageSize:   cfg.MaxMessageSizeBytes(),
		WriteQueueBytes:  cfg.WriteQueueBytes(),
		TLSConfig:        tlsConf,
		Handler:          s.frontHandler(api),
		Metrics:          s.metrics,
		Epoch:            epoch,
		HandshakeTimeout: cfg.HandshakeTimeout,
		Logger:           log.With("component", "transport"),
		Refusals:         s.refusals,
	}
	// Every path, before routing and authentication.
	tcfg.MaxRequestBodyBytes = cfg.MaxRequestBodyBytes()
	if err := transportLimits(cfg, &tcfg, memLimit, log); err != nil {
		return nil, err
	}
	s.ws, err = transport.New(tcfg, s.hub)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return s, nil
}

// buildEngine sets up where the hub's shared state and messages go: the
// memory engine on a single node, the Redis engine (shared state with node
// leases, the broker that carries messages between nodes) in a cluster.
// The hub registers itself with the engine when it is built.
func (s *Server) buildEngine(hopt *hub.Options) error {
	hopt.Apps = s.apps
	if s.cfg.RedisURL == "" {
		c := memory.NewCluster(nil)
		c.History().SetMaxBytes(int64(s.cfg.HistoryMemoryMB) << 20)
		s.memHistory = c.History()
		hopt.State, hopt.Broker, hopt.History = c.State(), c.NewBroker(), c.History()
		return nil
	}
	ro, err := redis.ParseURL(s.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("redis_url: %w", err)
	}
	clog := s.log.With("component", "cluster")
	cluster.RouteRedisLogs(clog)
	copt := cluster.Options{
		Redis:  ro,
		Prefix: s.cfg.RedisPrefix,
		Lease:  s.cfg.RedisLease,
		Logger: clog,
		// Round trips and errors for the metrics.
		RedisHook: s.metrics.RedisHook(),
	}
	eng, err := cluster.NewEngine(cluster.BrokerOptions{Options: copt})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	s.node, s.broker = eng.Node, eng.Broker
	hopt.State, hopt.Broker, hopt.History = eng.State(), eng, eng.History()
	s.redisHistory = eng.History()
	return nil
}

// buildWebhooks sets up webhook delivery when any app has a webhook: a
// queue in Redis on a cluster (pending deliveries survive a node), in
// memory alone (flushed on shutdown).
func (s *Server) buildWebhooks(store apps.Store, hopt *hub.Options) error {
	// Apps in a database may gain a webhook at any time.
	wanted := s.cfg.DatabaseApps()
	for _, a := range s.cfg.Apps {
		wanted = wanted || len(a.Webhooks) > 0
	}
	if !wanted {
		return nil
	}
	var q webhooks.Queue
	// In a cluster, held member webhooks are settled across nodes.
	var presenceGate webhooks.PresenceGate
	if s.node != nil {
		presenceGate = s.node.State()
	}
	if s.node != nil {
		rq, err := webhooks.NewRedisQueue(webhooks.RedisQueueOptions{
			Client: s.node.Client(),
			Prefix: s.cfg.RedisPrefix,
			Limit:  s.cfg.WebhookMaxPending,
			// Bytes across the cluster, as alone in memory.
			MaxBytes: int64(s.cfg.WebhookQueueMB) << 20,
			Lease:    webhookLease(s.cfg),
		})
		if err != nil {
			return fmt.Errorf("webhooks queue: %w", err)
		}
		q = rq
	}
	wh, err := webhooks.New(webhooks.Options{
		Apps:          store,
		Queue:         q,
		Window:        s.cfg.WebhookBatchWindow,
		MaxBatch:      s.cfg.WebhookBatchSize,
		Timeout:       s.cfg.WebhookTimeout,
		RetryFor:      s.cfg.WebhookRetryFor,
		RetryBase:     s.cfg.WebhookBackoffMin,
		RetryMax:      s.cfg.WebhookBackoffMax,
		QueueSize:     s.cfg.WebhookQueueSize,
		MaxPending:    s.cfg.WebhookMaxPending,
		MaxBytes:      int64(s.cfg.WebhookQueueMB) << 20,
		Workers:       s.cfg.WebhookWorkers,
		PresenceDelay: s.cfg.WebhookPresenceDelay,
		PresenceGate:  presenceGate,
		Registerer:    s.webhookRegisterer(),
		Logger:        s.log.With("component", "webhooks"),
	})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	s.webhooks = wh
	hopt.Observer = hub.Observers(hopt.Observer, wh)
	return nil
}

// buildIngest sets up the ingestion of Laravel's redis broadcaster. It
// publishes through the HTTP API's way into the hub (so the dashboard
// sees the events too) and spends from the same rate buckets. On a
// cluster, one node per app ingests, elected by a lease in the cluster's
// Redis with the nodes' own lease period.
func (s *Server) buildIngest(store apps.Store, pub ingest.Publisher, limits *hub.RateLimits) error {
	o := ingest.Options{
		Apps:       store,
		Publisher:  pub,
		RateLimits: limits,
		Recorder:   s.metrics,
		Refusals:   s.refusals,
		Logger:     s.log.With("component", "ingest"),
		// The HTTP API's signal: ingested events wait, then drop, while
		// the node is saturated.
		Saturation: outboundSource{s}.Saturation,
	}
	if s.node != nil {
		l, err := ingest.NewLeases(ingest.LeaseOptions{Client: s.node.Client(), Prefix: s.cfg.RedisPrefix, TTL: s.cfg.RedisLease})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		o.Leases = l
	}
	in, err := ingest.New(o)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	s.ingest = in
	return nil
}

// webhookLease is how long a node holds a webhook batch it is delivering
// before another may take it: past the longest attempt, so that a slow
// answer does not cost a duplicate, and short enough that a dead node's
// batches are soon delivered by the others.
func webhookLease(cfg *config.Config) time.Duration {
	longest := cfg.WebhookTimeout
	if cfg.DatabaseApps() {
		// Any target may get the longest timeout at run time.
		longest = apps.WebhookMaxTimeout
	}
	for _, a := range cfg.Apps {
		for _, w := range a.Webhooks {
			longest = max(longest, w.Timeout)
		}
	}
	return 2*longest + 5*time.Second
}

func (s *Server) readiness() error {
	if s.handedOff.Load() {
		return errors.New("handed off to a new process")
	}
	if s.hub.Draining() {
		return errors.New("draining")
	}
	if !s.ready.Load() {
		return errors.New("starting")
	}
	if s.node != nil {
		if err := s.node.Healthy(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if err := s.broker.Healthy(); err != nil {
			return fmt.Errorf("redis broker: %w", err)
		}
	}
	return nil
}

// Refusals returns the counts of what the limits refused.
func (s *Server) Refusals() *Refusals { return s.refusals }

// Addr is the address the node listens on (after Run has started it).
func (s *Server) Addr() net.Addr { return s.ws.Addr() }

// Run starts the node and serves until ctx is done, then drains: /ready
// turns false, new connections are refused, open ones are closed with 4200
// spread over the shutdown timeout, and the listeners stop. With
// WithHandOff, the close of its channel ends the serving too, and the
// listeners stop accepting before the drain (see handOff). started, when
// not nil, is called once the node accepts traffic.
func (s *Server) Run(ctx context.Context, started func(addr net.Addr)) error {
	hubCtx, stopHub := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.hub.Run(hubCtx)
	}()
	defer func() {
		stopHub()
		wg.Wait()
	}()

	if s.node != nil {
		// Keeps trying in the background when Redis is down; /ready says so.
		if err := s.node.Start(); err != nil {
			s.log.Warn("redis unreachable at start, retrying", "err", err)
		}
		defer func() {
			_ = s.broker.Close()
			_ = s.node.Close()
		}()
	}
	if s.webhooks != nil {
		s.webhooks.Start(context.Background())
	}
	if s.appsDB.sql != nil {
		s.migrateApps()
		defer func() { _ = s.appsDB.sql.Close() }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.recheckApps(hubCtx)
		}()
	}
	if s.dash != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.dash.Run(hubCtx)
		}()
	}
	if s.relay != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.relay.run(hubCtx, s.opts.relay)
		}()
	}
	if err := s.startMetricsListener(); err != nil {
		if s.webhooks != nil {
			_ = s.webhooks.Close(context.Background())
		}
		return err
	}
	if err := s.startACME(); err != nil {
		s.stopMetricsListener(context.Background())
		if s.webhooks != nil {
			_ = s.webhooks.Close(context.Background())
		}
		return err
	}
	if err := s.ws.Start(); err != nil {
		s.stopACME(context.Background())
		s.stopMetricsListener(context.Background())
		if s.webhooks != nil {
			_ = s.webhooks.Close(context.Background())
		}
		return fmt.Errorf("listen %s: %w", s.cfg.Addr(), err)
	}
	s.ingest.Start()
	s.ready.Store(true)
	if started != nil {
		started(s.ws.Addr())
	}
	select {
	case <-ctx.Done():
	case <-s.opts.handOff: // nil without WithHandOff: never
		s.handOff()
	}

	// Stop ingesting first: the lease is released, so another node takes
	// the apps over while this one drains.
	s.ingest.Close()

	s.log.Info("draining", "window", s.cfg.ShutdownTimeout.String())
	s.ready.Store(false)
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	// A second signal (Hurry) cancels the drain.
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-s.hurry:
			s.log.Warn("second signal: cutting the drain short")
			cancel()
		case <-drainCtx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watchDone
	}()
	// Spread the closes over most of the window and keep the rest for the
	// close handshakes to finish.
	if err := s.hub.Drain(drainCtx, s.cfg.ShutdownTimeout*3/4); err != nil {
		s.log.Warn("drain cut short", "err", err)
	}
	err := s.ws.Shutdown(drainCtx)
	s.stopACME(drainCtx)
	// Scraped until the connections are gone, so the last scrape sees
	// the drain.
	s.stopMetricsListener(drainCtx)
	// Whatever happened to the sockets, what they caused (vacated
	// channels, removed members) is queued by now: deliver it or hand it
	// to Redis, with at least webhookFlushGrace even after a drain that
	// ran out of time or was cut short.
	s.closeWebhooks(drainCtx)
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// closeWebhooks flushes the webhook dispatcher until drainCtx's deadline,
// and for at least webhookFlushGrace.
func (s *Server) closeWebhooks(drainCtx context.Context) {
	if s.webhooks == nil {
		return
	}
	budget := webhookFlushGrace
	if dl, ok := drainCtx.Deadline(); ok && drainCtx.Err() == nil {
		budget = max(budget, time.Until(dl))
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if err := s.webhooks.Close(ctx); err != nil {
		s.log.Warn("webhooks not all delivered before shutdown", "err", err)
	}
}
