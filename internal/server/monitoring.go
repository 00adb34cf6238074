package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/dashboard"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/metrics"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/transport"
)

// buildMetrics creates the metrics before the parts they measure. The
// callbacks read s.hub, s.node and s.broker when scraped, after New.
func (s *Server) buildMetrics() {
	o := metrics.Options{Channels: channelSource{s}, Outbound: outboundSource{s}}
	o.FlooderReconnects = func() int64 {
		if ws := s.ws; ws != nil {
			return ws.FlooderReconnects()
		}
		return 0
	}
	if s.cfg.RedisURL != "" {
		o.RedisHealthy = func() error {
			if s.node == nil || s.broker == nil {
				return errors.New("not started")
			}
			if err := s.node.Healthy(); err != nil {
				return err
			}
			return s.broker.Healthy()
		}
		o.RedisReplicaWaits = func() (uint64, uint64) {
			if s.node == nil {
				return 0, 0
			}
			return s.node.ReplicaWaits()
		}
		o.Repairs = func() hub.RepairCounts {
			if s.hub == nil {
				return hub.RepairCounts{}
			}
			return s.hub.Repairs()
		}
	}
	if s.cfg.RedisURL == "" {
		o.MemoryHistory = func() metrics.MemoryHistoryStats {
			if s.memHistory == nil {
				return metrics.MemoryHistoryStats{}
			}
			st := s.memHistory.Stats()
			return metrics.MemoryHistoryStats{Channels: st.Channels, Events: st.Events, Bytes: st.Bytes, MaxBytes: st.MaxBytes, Evicted: st.Evicted}
		}
	} else {
		o.RedisHistory = func() (uint64, uint64) {
			if s.redisHistory == nil {
				return 0, 0
			}
			st := s.redisHistory.Stats()
			return st.Appended, st.AppendedBytes
		}
		o.RedisHistoryUsage = func() map[string]metrics.RedisHistoryUsage {
			if s.redisHistory == nil {
				return nil
			}
			u := s.redisHistory.Usage()
			out := make(map[string]metrics.RedisHistoryUsage, len(u))
			for app, v := range u {
				out[app] = metrics.RedisHistoryUsage{Streams: v.Streams, Entries: v.Entries, Bytes: v.Bytes}
			}
			return out
		}
	}
	s.metrics = metrics.New(o)
}

// outboundSource lets the metrics and the HTTP API read the transport's
// outbound budget once it exists.
type outboundSource struct{ s *Server }

func (o outboundSource) OutboundBytes() int64 {
	if ws := o.s.ws; ws != nil {
		return ws.OutboundBytes()
	}
	return 0
}

func (o outboundSource) OutboundBudget() int64 {
	if ws := o.s.ws; ws != nil {
		return ws.OutboundBudget()
	}
	return 0
}

func (o outboundSource) ShedConnections() int64 {
	if ws := o.s.ws; ws != nil {
		return ws.ShedConnections()
	}
	return 0
}

// Saturation is ingestion's signal: the transport's, once it exists.
func (o outboundSource) Saturation() string {
	if ws := o.s.ws; ws != nil {
		return ws.Saturation()
	}
	return ""
}

// RefusePublish implements httpapi.Backpressure: the transport's rule,
// once it exists.
func (o outboundSource) RefusePublish() string {
	if ws := o.s.ws; ws != nil {
		return ws.RefusePublish()
	}
	return ""
}

// PacePublish implements httpapi.Backpressure: the transport's, once it
// exists.
func (o outboundSource) PacePublish(ctx context.Context) {
	if ws := o.s.ws; ws != nil {
		ws.PacePublish(ctx)
	}
}

// channelSource lets the metrics read the hub's channels once it exists.
type channelSource struct{ s *Server }

func (c channelSource) EachLocalChannel(f func(appID, channel string, subscribers int)) {
	if h := c.s.hub; h != nil {
		h.EachLocalChannel(f)
	}
}

// buildDashboard sets up the dashboard when there is an admin token. With
// none and the development app, a random token is made for this run (and
// printed by the banner); with none and real apps the dashboard is off.
func (s *Server) buildDashboard(store apps.Store, hopt *hub.Options) error {
	token := s.cfg.AdminToken
	if token == "" && s.cfg.UsesDevApp() {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		token = base64.RawURLEncoding.EncodeToString(b)
		s.generatedToken = token
	}
	if token == "" {
		return nil
	}
	proxies, err := transport.ParseTrustedProxies(s.cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	d, err := dashboard.New(dashboard.Options{
		Token: token,
		Apps:  store,
		Admin: s.appsAdmin(),
		Hub:   dashboardHub{s},
		Totals: func(appID string) dashboard.Totals {
			t := s.metrics.Totals(appID)
			return dashboard.Totals{Connections: t.Connections, MessagesIn: t.MessagesIn, MessagesOut: t.MessagesOut}
		},
		Path:   s.cfg.PathPrefix + "/dashboard",
		Secure: s.cfg.TLSEnabled(),
		// Per-client login throttle and a Secure cookie behind a TLS proxy.
		ClientOf: func(r *http.Request) (netip.Addr, bool) { return proxies.ClientOf(r, s.cfg.TLSEnabled()) },
		Logger:   s.log.With("component", "dashboard"),
	})
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	s.dash = d
	hopt.Observer = hub.Observers(hopt.Observer, d)
	return nil
}

// dashboardHub hands the dashboard the hub once it exists.
type dashboardHub struct{ s *Server }

func (d dashboardHub) Channels(ctx context.Context, app *apps.App, prefix string) ([]hub.ChannelInfo, error) {
	return d.s.hub.Channels(ctx, app, prefix)
}

func (d dashboardHub) PresenceUsers(ctx context.Context, app *apps.App, channel string) ([]protocol.Member, error) {
	return d.s.hub.PresenceUsers(ctx, app, channel)
}

func (d dashboardHub) Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error {
	return d.s.hub.Publish(ctx, app, req)
}

// apiHub is the hub as the HTTP API sees it: published events are shown
// in the dashboard's debug console too.
type apiHub struct {
	*hub.Hub
	dash *dashboard.Dashboard
}

func (a apiHub) Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error {
	a.dash.APIEvent(app.ID, req)
	return a.Hub.Publish(ctx, app, req)
}

// GeneratedAdminToken is the dashboard token made for this run when none
// is configured and the development app is served ("" otherwise).
func (s *Server) GeneratedAdminToken() string { return s.generatedToken }

// DashboardEnabled reports whether /dashboard is served.
func (s *Server) DashboardEnabled() bool { return s.dash != nil }

// frontHandler serves /metrics (unless it has a port of its own) and the
// dashboard, and passes everything else to the HTTP API.
func (s *Server) frontHandler(api http.Handler) http.Handler {
	dashPath := s.cfg.PathPrefix + "/dashboard"
	metricsHere := s.cfg.MetricsAddr == ""
	prom := s.metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A deadline for every request: the Redis calls it makes inherit
		// it, so a slow Redis costs a request at most this long (then 503).
		if d := s.cfg.HTTPRequestTimeout; d > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			r = r.WithContext(ctx)
		}
		p := r.URL.Path
		switch {
		case metricsHere && (p == "/metrics" || p == s.cfg.PathPrefix+"/metrics"):
			serveMetrics(prom, w, r)
		case p == dashPath || strings.HasPrefix(p, dashPath+"/"):
			if s.dash == nil {
				writeJSONError(w, http.StatusNotFound, "The dashboard is off: set admin_token (HERALD_ADMIN_TOKEN) to turn it on")
				return
			}
			s.dash.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

func serveMetrics(prom http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "Method not allowed; use GET")
		return
	}
	prom.ServeHTTP(w, r)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q,\"code\":%d}\n", msg, status)
}

// startMetricsListener serves /metrics, /up and /ready on metrics_addr.
func (s *Server) startMetricsListener() error {
	if s.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := s.listen(s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics_addr %s: %w", s.cfg.MetricsAddr, err)
	}
	prom := s.metrics.Handler()
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveMetrics(prom, w, r) }))
	mux.HandleFunc("GET /up", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"status\":\"up\"}\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := s.readiness(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "{\"status\":%q}\n", err.Error())
			return
		}
		_, _ = w.Write([]byte("{\"status\":\"ready\"}\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONError(w, http.StatusNotFound, "Not found; this port serves /metrics, /up and /ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.metricsSrv = srv
	s.metricsLn = ln
	s.metricsDone = make(chan struct{})
	go func() {
		defer close(s.metricsDone)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener failed", "addr", s.cfg.MetricsAddr, "err", err)
		}
	}()
	return nil
}

// stopMetricsListener closes the metrics listener and waits for it.
func (s *Server) stopMetricsListener(ctx context.Context) {
	if s.metricsSrv == nil {
		return
	}
	if err := s.metricsSrv.Shutdown(ctx); err != nil {
		_ = s.metricsSrv.Close()
	}
	<-s.metricsDone
}

// MetricsAddr is the address of the metrics listener (nil when /metrics
// is served on the main port).
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// webhookRegisterer is where the webhook metrics go: WithRegisterer's
// registry when given, else the node's own (served on /metrics).
func (s *Server) webhookRegisterer() prometheus.Registerer {
	if s.opts.registerer != nil {
		return s.opts.registerer
	}
	return s.metrics.Registry()
}
