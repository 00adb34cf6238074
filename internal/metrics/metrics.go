// Package metrics keeps Herald's Prometheus metrics on a registry of its
// own and serves them at /metrics.
//
// The packages it measures do not import it: it implements the small
// interfaces they define (transport.Metrics, hub.Metrics, hub.Observer,
// httpapi.Recorder, a go-redis hook) and the server wires them. The per-app
// series a connection or a message touches are resolved once per app and
// kept (appSeries), so counting on a hot path is an atomic add, never a
// label lookup. docs/monitoring.md lists every metric.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/transport"
)

// ChannelSource lists the channels that have subscribers on this node (the
// hub), read when /metrics is scraped.
type ChannelSource interface {
	EachLocalChannel(f func(appID, channel string, subscribers int))
}

// Options configure New. Every field is optional.
type Options struct {
	// Channels feeds herald_channels and herald_subscriptions.
	Channels ChannelSource
	// RedisHealthy feeds herald_redis_up (registered only when set): nil
	// means the Redis engine is reachable.
	RedisHealthy func() error
	// Repairs feeds herald_state_repairs_total (registered only when set:
	// cluster nodes).
	Repairs func() hub.RepairCounts
	// FlooderReconnects feeds herald_flooder_reconnects_total (registered
	// only when set).
	FlooderReconnects func() int64
	// RedisReplicaWaits feeds herald_redis_replica_waits_total (registered
	// only when set: cluster nodes).
	RedisReplicaWaits func() (acked, lagged uint64)
	// Outbound feeds herald_outbound_bytes, herald_outbound_budget_bytes
	// and herald_shed_connections_total (registered only when set).
	Outbound OutboundSource
	// MemoryHistory feeds the herald_history_* gauges of a single node's
	// memory history; RedisHistory the counters of what this node appended
	// to the cluster's history in Redis (each registered only when set).
	MemoryHistory func() MemoryHistoryStats
	RedisHistory  func() (appended, appendedBytes uint64)
	// RedisHistoryUsage feeds the per-app herald_history_redis_* gauges:
	// what the cluster's history holds in Redis, as last measured
	// (registered only when set).
	RedisHistoryUsage func() map[string]RedisHistoryUsage
}

// RedisHistoryUsage is what one app's history holds in Redis.
type RedisHistoryUsage struct {
	Streams, Entries, Bytes int64
}

// MemoryHistoryStats is what the memory history holds.
type MemoryHistoryStats struct {
	Channels, Events, Bytes, MaxBytes int64
	Evicted                           uint64
}

// OutboundSource is the node's outbound budget (the transport), read when
// /metrics is scraped.
type OutboundSource interface {
	// OutboundBytes is what is queued for all connections now.
	OutboundBytes() int64
	// OutboundBudget is the budget in bytes (0: none).
	OutboundBudget() int64
	// ShedConnections counts the connections closed to stay in budget.
	ShedConnections() int64
}

// Metrics holds every Herald metric. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	connections *prometheus.GaugeVec
	opened      *prometheus.CounterVec
	closed      *prometheus.CounterVec
	refusedConn *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	slow        *prometheus.CounterVec
	bytesIn     *prometheus.CounterVec
	bytesOut    *prometheus.CounterVec
	msgsIn      *prometheus.CounterVec
	msgsOut     *prometheus.CounterVec
	fanout      *prometheus.HistogramVec
	delivery    *prometheus.HistogramVec
	presence    *prometheus.GaugeVec
	httpReqs    *prometheus.CounterVec
	httpDur     *prometheus.HistogramVec
	redisCmds   *prometheus.CounterVec
	redisDur    *prometheus.HistogramVec
	ingest      ingestMetrics
	recoveries  *prometheus.CounterVec
	replayed    *prometheus.CounterVec

	apps sync.Map // app id → *appSeries
}

const ns = "herald"

// sources are the hub's message sources, indexed by hub.Source.
var sources = [...]hub.Source{hub.SourceAPI, hub.SourceClient, hub.SourceCluster, hub.SourceServer}

// New builds the metrics and registers them, with the Go runtime and
// process collectors, on a new registry.
func New(o Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	app := []string{"app"}
	m.connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
		Help: "WebSocket connections open on this node."}, app)
	m.opened = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_opened_total",
		Help: "WebSocket connections admitted (pusher:connection_established sent)."}, app)
	m.closed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_closed_total",
		Help: "Admitted WebSocket connections that ended, by the close code that ended them (1006: gone without a close frame)."}, []string{"app", "code"})
	m.refusedConn = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_refused_total",
		Help: "WebSocket connections refused at admission, by close code (app is empty when the key is unknown)."}, []string{"app", "code"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refusals_total",
		Help: "Connections, messages and HTTP API requests refused by a limit, by limit."}, []string{"app", "limit"})
	m.slow = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "slow_consumer_disconnects_total",
		Help: "Connections closed with 4100 because their write queue passed its byte bound."}, app)
	m.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "received_bytes_total",
		Help: "Payload bytes of the WebSocket messages received from clients."}, app)
	m.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sent_bytes_total",
		Help: "Bytes written to WebSocket connections (frames with their headers; with TLS, the records)."}, app)
	m.msgsIn = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_received_total",
		Help: "Messages to fan out, once per channel, by source (api, client, cluster, server)."}, []string{"app", "source"})
	m.msgsOut = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "messages_sent_total",
		Help: "Messages queued on this node's WebSocket connections (one per recipient), by source."}, []string{"app", "source"})
	m.fanout = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "fanout_duration_seconds",
		Help:    "Time from the hub taking a message (HTTP API request, client event, message from another node) until every local subscriber had it on its write queue, once per message and channel.",
		Buckets: prometheus.ExponentialBucketsRange(10e-6, 2.5, 14)}, []string{"app", "source"})
	m.delivery = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "delivery_latency_seconds",
		Help:    "Time from the hub taking a message until a socket write carrying it returned, once per write: the oldest message of the write, i.e. the write's worst delivery.",
		Buckets: prometheus.ExponentialBucketsRange(50e-6, 1, 16)}, app)
	m.presence = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "presence_members",
		Help: "Presence channel members (distinct users per channel) added minus removed by this node; on a cluster the sum over the nodes is the total."}, app)
	m.httpReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "http_requests_total",
		Help: "HTTP API requests answered, by route and status (app is empty until the path's app is found)."}, []string{"app", "endpoint", "status"})
	m.httpDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "http_request_duration_seconds",
		Help:    "Time to answer an HTTP API request, by route.",
		Buckets: prometheus.ExponentialBucketsRange(100e-6, 10, 12)}, []string{"endpoint"})
	m.redisCmds = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "redis_commands_total",
		Help: "Redis round trips (commands and pipelines) of the cluster engine, by command and result (ok, error)."}, []string{"command", "result"})
	m.redisDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "redis_command_duration_seconds",
		Help:    "Redis round-trip time of the cluster engine, by command.",
		Buckets: prometheus.ExponentialBucketsRange(50e-6, 2, 12)}, []string{"command"})

	m.reg.MustRegister(m.connections, m.opened, m.closed, m.refusedConn, m.refusals, m.slow,
		m.bytesIn, m.bytesOut, m.msgsIn, m.msgsOut, m.fanout, m.delivery, m.presence, m.httpReqs, m.httpDur,
		m.redisCmds, m.redisDur,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.ingest = newIngestMetrics(m.reg)
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "history_recoveries_total",
		Help: "Recovery requests on subscribe, by result: recovered, or the reason it failed (epoch_changed, too_old, invalid, no_history, unavailable)."}, []string{"app", "result"})
	m.replayed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "history_replayed_total",
		Help: "Events replayed from history by successful recoveries."}, app)
	m.reg.MustRegister(m.recoveries, m.replayed)
	if f := o.MemoryHistory; f != nil {
		gauge := func(name, help string, get func(MemoryHistoryStats) float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, func() float64 { return get(f()) })
		}
		m.reg.MustRegister(
			gauge("history_channels", "Channels whose history this node keeps in memory.", func(s MemoryHistoryStats) float64 { return float64(s.Channels) }),
			gauge("history_events", "Events kept in the memory history.", func(s MemoryHistoryStats) float64 { return float64(s.Events) }),
			gauge("history_bytes", "Bytes held by the memory history (payloads and a fixed overhead per event).", func(s MemoryHistoryStats) float64 { return float64(s.Bytes) }),
			gauge("history_max_bytes", "The memory history's cap (history_memory_mb).", func(s MemoryHistoryStats) float64 { return float64(s.MaxBytes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "history_evicted_channels_total",
				Help: "Channels whose memory history was dropped to stay within history_memory_mb (their next event starts a new epoch)."},
				func() float64 { return float64(f().Evicted) }),
		)
	}
	if f := o.RedisHistory; f != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "history_appended_total",
				Help: "Events this node appended to the cluster's history in Redis."},
				func() float64 { a, _ := f(); return float64(a) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "history_appended_bytes_total",
				Help: "Payload bytes this node appended to the cluster's history in Redis (each stream holds at most its rule's size)."},
				func() float64 { _, b := f(); return float64(b) }),
		)
	}
	if f := o.RedisHistoryUsage; f != nil {
		m.reg.MustRegister(redisHistoryCollector(f))
	}
	if o.Channels != nil {
		m.reg.MustRegister(&channelCollector{src: o.Channels})
	}
	if src := o.Outbound; src != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "outbound_bytes",
				Help: "Bytes queued for all WebSocket connections of this node (frames not yet taken by the kernel)."},
				func() float64 { return float64(src.OutboundBytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "outbound_budget_bytes",
				Help: "The node's outbound budget (outbound_budget_mb); 0: none."},
				func() float64 { return float64(src.OutboundBudget()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "shed_connections_total",
				Help: "Connections closed with 4100 because the node's outbound budget was spent (largest queues first)."},
				func() float64 { return float64(src.ShedConnections()) }),
		)
	}
	if o.Repairs != nil {
		kinds := []struct {
			kind string
			get  func(hub.RepairCounts) uint64
		}{
			{"ghost", func(r hub.RepairCounts) uint64 { return r.Ghosts }},
			{"stale", func(r hub.RepairCounts) uint64 { return r.Stale }},
			{"restored", func(r hub.RepairCounts) uint64 { return r.Restored }},
		}
		for _, k := range kinds {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "state_repairs_total",
				Help:        "Entries of the shared state repaired by this node, by kind: ghost (left by a failed or timed-out call, removed by a retry), stale (held under the node's id without a local socket, removed at a lease tick), restored (a local subscription or sign-in Redis had lost, recorded again).",
				ConstLabels: prometheus.Labels{"kind": k.kind}},
				func() float64 { return float64(k.get(o.Repairs())) }))
		}
	}
	if f := o.FlooderReconnects; f != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "flooder_reconnects_total",
			Help: "Connections from an address closed for flooding (4301) within the last 10 s or so, started with a tenth of the message burst."},
			func() float64 { return float64(f()) }))
	}
	if f := o.RedisReplicaWaits; f != nil {
		for _, r := range []struct {
			result string
			get    func(acked, lagged uint64) uint64
		}{
			{"acked", func(a, _ uint64) uint64 { return a }},
			{"lagged", func(_, l uint64) uint64 { return l }},
		} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "redis_replica_waits_total",
				Help:        "Writes the failover barrier relies on (this node's lease when it registers, its first socket in an app) that this node had a replica of their primary acknowledge (WAIT), by result: acked, or lagged (no replica answered within the wait; the write stands). Only primaries with replicas are waited for.",
				ConstLabels: prometheus.Labels{"result": r.result}},
				func() float64 { return float64(r.get(f())) }))
		}
	}
	if o.RedisHealthy != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "redis_up",
			Help: "1 while the Redis engine is reachable (lease renewed, pub/sub connected), else 0."},
			func() float64 {
				if o.RedisHealthy() != nil {
					return 0
				}
				return 1
			}))
	}
	return m
}

// Registry is the registry every metric lives on; other packages
// (webhooks) register theirs here too.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when asked for).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// appSeries are one app's series, resolved once.
type appSeries struct {
	m           *Metrics
	id          string
	connections prometheus.Gauge
	opened      prometheus.Counter
	slow        prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	delivery    prometheus.Observer
	msgsIn      [len(sources)]prometheus.Counter
	msgsOut     [len(sources)]prometheus.Counter
	latency     [len(sources)]prometheus.Observer
}

// series returns the series of an app, creating them on first use. App
// ids come from the app store (or "" for an unknown app), so the number
// of label values is bounded by the configured apps.
func (m *Metrics) series(appID string) *appSeries {
	if s, ok := m.apps.Load(appID); ok {
		return s.(*appSeries)
	}
	s := &appSeries{
		m:           m,
		id:          appID,
		connections: m.connections.WithLabelValues(appID),
		opened:      m.opened.WithLabelValues(appID),
		slow:        m.slow.WithLabelValues(appID),
		bytesIn:     m.bytesIn.WithLabelValues(appID),
		bytesOut:    m.bytesOut.WithLabelValues(appID),
		delivery:    m.delivery.WithLabelValues(appID),
	}
	for i, src := range sources {
		s.msgsIn[i] = m.msgsIn.WithLabelValues(appID, src.String())
		s.msgsOut[i] = m.msgsOut.WithLabelValues(appID, src.String())
		s.latency[i] = m.fanout.WithLabelValues(appID, src.String())
	}
	got, _ := m.apps.LoadOrStore(appID, s)
	return got.(*appSeries)
}

// ---- transport.Metrics ----

var _ transport.Metrics = (*Metrics)(nil)

// App implements transport.Metrics.
func (m *Metrics) App(appID string) transport.AppMetrics { return m.series(appID) }

func (s *appSeries) Opened() {
	s.opened.Inc()
	s.connections.Inc()
}

func (s *appSeries) Closed(code int) {
	s.connections.Dec()
	s.m.closed.WithLabelValues(s.id, codeLabel(code)).Inc()
}

// Refused counts a connection refused at admission, by close code; which
// limit refused it (if one did) is counted by Metrics.Refused.
func (s *appSeries) Refused(code int) {
	s.m.refusedConn.WithLabelValues(s.id, codeLabel(code)).Inc()
}

func (s *appSeries) SlowConsumer()  { s.slow.Inc() }
func (s *appSeries) BytesIn(n int)  { s.bytesIn.Add(float64(n)) }
func (s *appSeries) BytesOut(n int) { s.bytesOut.Add(float64(n)) }

// DeliveryLatency implements transport.AppMetrics.
func (s *appSeries) DeliveryLatency(d time.Duration) { s.delivery.Observe(d.Seconds()) }

// codeLabel is a close code's label value: the RFC 6455 codes and Pusher's
// get their own; a client chooses its own close code, so any other is
// "other", to keep the label values bounded.
func codeLabel(code int) string {
	switch {
	case code >= 1000 && code <= 1015 && code != 1004,
		code >= 4000 && code <= 4009 && code != 4002,
		code == 4100, code >= 4200 && code <= 4202, code >= 4300 && code <= 4302:
		return strconv.Itoa(code)
	}
	return "other"
}

// ---- hub.Metrics ----

var _ hub.Metrics = (*Metrics)(nil)

// Fanout implements hub.Metrics.
func (m *Metrics) Fanout(appID string, src hub.Source, deliveries int, elapsed time.Duration) {
	if int(src) >= len(sources) {
		return
	}
	s := m.series(appID)
	s.msgsIn[src].Inc()
	if deliveries > 0 {
		s.msgsOut[src].Add(float64(deliveries))
	}
	s.latency[src].Observe(elapsed.Seconds())
}

var _ hub.HistoryMetrics = (*Metrics)(nil)

// Recovery implements hub.HistoryMetrics.
func (m *Metrics) Recovery(appID, result string, replayed int) {
	m.recoveries.WithLabelValues(appID, result).Inc()
	if replayed > 0 {
		m.replayed.WithLabelValues(appID).Add(float64(replayed))
	}
}

// Refused counts a refusal by a limit (named by its config key); it
// implements the Refusals hooks of the transport, the hub and the HTTP API,
// through server.Refusals.
func (m *Metrics) Refused(appID, limit string) {
	m.refusals.WithLabelValues(appID, limit).Inc()
}

// ---- httpapi.Recorder ----

// Request implements httpapi.Recorder.
func (m *Metrics) Request(appID, endpoint string, status int, elapsed time.Duration) {
	m.httpReqs.WithLabelValues(appID, endpoint, strconv.Itoa(status)).Inc()
	m.httpDur.WithLabelValues(endpoint).Observe(elapsed.Seconds())
}

// ---- hub.Observer (presence members) ----

// Observer returns the hub.Observer that keeps herald_presence_members.
func (m *Metrics) Observer() hub.Observer { return observer{m} }

type observer struct{ m *Metrics }

func (o observer) MemberAdded(appID, _, _ string)   { o.m.presence.WithLabelValues(appID).Inc() }
func (o observer) MemberRemoved(appID, _, _ string) { o.m.presence.WithLabelValues(appID).Dec() }
func (observer) ConnectionOpened(string)            {}
func (observer) ConnectionClosed(string)            {}
func (observer) ChannelOccupied(string, string)     {}
func (observer) ChannelVacated(string, string)      {}
func (observer) ClientEvent(string, string, string, []byte, string, string) {
}
func (observer) CacheMiss(string, string)              {}
func (observer) SubscriptionCount(string, string, int) {}
func (observer) Published(string, string, string, int) {}

// ---- scrape-time channel counts ----

var (
	channelsDesc = prometheus.NewDesc(ns+"_channels", "Channels with at least one subscriber on this node, by kind.", []string{"app", "kind"}, nil)
	subsDesc     = prometheus.NewDesc(ns+"_subscriptions", "Channel subscriptions of this node's connections, by channel kind.", []string{"app", "kind"}, nil)
)

type channelCollector struct{ src ChannelSource }

func (c *channelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- channelsDesc
	ch <- subsDesc
}

func (c *channelCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		app  string
		kind protocol.Kind
	}
	type counts struct{ channels, subs int }
	agg := make(map[key]*counts)
	c.src.EachLocalChannel(func(appID, channel string, n int) {
		k := key{appID, protocol.Classify(channel)}
		v := agg[k]
		if v == nil {
			v = new(counts)
			agg[k] = v
		}
		v.channels++
		v.subs += n
	})
	for k, v := range agg {
		ch <- prometheus.MustNewConstMetric(channelsDesc, prometheus.GaugeValue, float64(v.channels), k.app, k.kind.String())
		ch <- prometheus.MustNewConstMetric(subsDesc, prometheus.GaugeValue, float64(v.subs), k.app, k.kind.String())
	}
}

// ---- values for the dashboard ----

// AppTotals are the running totals of one app on this node.
type AppTotals struct {
	Connections int64
	MessagesIn  uint64 // messages to fan out, every source
	MessagesOut uint64 // deliveries to sockets, every source
}

// Totals reads the running totals of an app (for the dashboard's graphs).
func (m *Metrics) Totals(appID string) AppTotals {
	s := m.series(appID)
	var t AppTotals
	t.Connections = int64(readValue(s.connections))
	for i := range sources {
		t.MessagesIn += uint64(readValue(s.msgsIn[i]))
		t.MessagesOut += uint64(readValue(s.msgsOut[i]))
	}
	return t
}

func readValue(c prometheus.Metric) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

var (
	histRedisStreamsDesc = prometheus.NewDesc(ns+"_history_redis_streams",
		"Channels whose history is kept in Redis (cluster), as last measured: the same figure on every node.", []string{"app"}, nil)
	histRedisEntriesDesc = prometheus.NewDesc(ns+"_history_redis_entries",
		"Events kept in the history streams in Redis (cluster), as last measured (sampled above 200 channels per app).", []string{"app"}, nil)
	histRedisBytesDesc = prometheus.NewDesc(ns+"_history_redis_bytes",
		"Memory Redis reports for the history keys (MEMORY USAGE of each stream and its hash), as last measured (sampled above 200 channels per app).", []string{"app"}, nil)
)

// redisHistoryCollector reports the last measure; it never calls Redis
// while scraped.
type redisHistoryCollector func() map[string]RedisHistoryUsage

func (redisHistoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- histRedisStreamsDesc
	ch <- histRedisEntriesDesc
	ch <- histRedisBytesDesc
}

func (f redisHistoryCollector) Collect(ch chan<- prometheus.Metric) {
	for app, u := range f() {
		ch <- prometheus.MustNewConstMetric(histRedisStreamsDesc, prometheus.GaugeValue, float64(u.Streams), app)
		ch <- prometheus.MustNewConstMetric(histRedisEntriesDesc, prometheus.GaugeValue, float64(u.Entries), app)
		ch <- prometheus.MustNewConstMetric(histRedisBytesDesc, prometheus.GaugeValue, float64(u.Bytes), app)
	}
}
