// Package httpapi serves the Pusher Channels HTTP API (protocol §7) that
// backends call to publish events and query channels: the pusher-http-php
// client used by Laravel's pusher and reverb broadcasters, the Node pusher
// SDK and Herald's own Go SDK.
//
// Every /apps/{id}/... request is signed (auth_version 1.0), checked against
// the app's limits and rate limits, validated and only then handed to the
// hub through the small Hub interface below. Errors are answered as JSON
// {"error":"<message>","code":<status>} with Content-Type
// application/json; the app secret never appears in a response or a log.
//
// Limits come from the app's settings (apps.App) at each request, so a
// changed setting applies at once; a limit <= 0 means no limit. Rate
// limits are token buckets per app (golang.org/x/time/rate), refilled at
// the limit per second and holding one second's worth: triggers and
// batches spend one token per channel (MaxBackendEventsPerSecond), GET
// requests one each (MaxReadRequestsPerSecond); terminate_connections is
// not rate limited. A request is charged only once it is signed and valid.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// Hub is what the HTTP API needs from the engine. Implementations must be
// safe for concurrent use and honour ctx.
//
// An error returned by any method is answered with status 500 and logged,
// except: a *protocol.APIError is answered with its own status and message,
// hub.ErrNotPresence (possibly wrapped) with 400, and context.Canceled or
// context.DeadlineExceeded with 503.
type Hub interface {
	// Publish delivers one validated event to every channel of req (all
	// names are valid, at most one of them is encrypted, no duplicates).
	Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error
	// Channel returns what is known of one channel; an unoccupied channel
	// is a zero ChannelInfo (Occupied false), not an error.
	Channel(ctx context.Context, app *apps.App, name string) (hub.ChannelInfo, error)
	// Channels lists the occupied channels whose name starts with prefix
	// ("" for all).
	Channels(ctx context.Context, app *apps.App, prefix string) ([]hub.ChannelInfo, error)
	// PresenceUsers lists the distinct users of a presence channel.
	PresenceUsers(ctx context.Context, app *apps.App, channel string) ([]protocol.Member, error)
	// TerminateUser closes every connection signed in as userID.
	TerminateUser(ctx context.Context, app *apps.App, userID string) error
	// History returns at most limit kept events of a channel with history
	// after offset after; hub.ErrNoHistory when no rule matches it.
	History(ctx context.Context, app *apps.App, channel string, after uint64, limit int) (hub.HistoryPage, error)
}

// Options configure the handler returned by New.
type Options struct {
	// Apps finds the app named by the path's {id}. Required.
	Apps apps.Store
	// Hub carries out the requests. Required.
	Hub Hub
	// PathPrefix mounts the API routes under PathPrefix+"/apps/...".
	// Signatures are verified against the path without the prefix, as the
	// SDKs sign it. "" and "/" mean no prefix. /up and /ready answer both
	// at the root and under the prefix.
	PathPrefix string
	// MaxBodyBytes caps a request body (413 beyond). 0 means
	// DefaultMaxBodyBytes; negative means no cap.
	MaxBodyBytes int64
	// TimestampWindow is the largest accepted distance between
	// auth_timestamp and the server clock. 0 means
	// DefaultTimestampWindow; negative disables the check.
	TimestampWindow time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Ready reports readiness for GET /ready: nil means ready, an error
	// (its text is the reason) answers 503. A nil Ready is always ready.
	Ready func() error
	// Degraded, when set and not "", is added to a ready answer as
	// "degraded": the node serves, but something it depends on is failing
	// (the apps store: known apps keep working from the cache). It does
	// not turn /ready to 503, which would take every node out of a load
	// balancer for an outage they ride out.
	Degraded func() string
	// Logger receives errors and recovered panics (discarded when nil).
	Logger *slog.Logger
	// Refusals, when set, is told of every request a limit refused.
	Refusals hub.Refusals
	// Recorder counts requests and refusals (nil: not counted).
	Recorder Recorder
	// RateLimits are the per-app buckets the rate limits spend from,
	// shared with the other ways events come in (nil: the handler's own).
	RateLimits *hub.RateLimits
	// Backpressure, when set, refuses publishes with 503 while the node
	// is saturated (backpressure.go).
	Backpressure Backpressure
}

// Defaults applied by New for zero Options fields.
const (
	DefaultMaxBodyBytes    = 10 << 20
	DefaultTimestampWindow = 600 * time.Second
)

// handler is the http.Handler returned by New.
type handler struct {
	apps     apps.Store
	hub      Hub
	prefix   string
	maxBody  int64
	window   time.Duration
	now      func() time.Time
	ready    func() error
	degraded func() string
	log      *slog.Logger
	refuse   hub.Refusals
	recorder Recorder
	mux      *http.ServeMux
	limits   *hub.RateLimits
	pressure Backpressure
}

// New returns the HTTP API handler. It panics when o.Apps or o.Hub is nil.
func New(o Options) http.Handler {
	if o.Apps == nil || o.Hub == nil {
		panic("httpapi: Options.Apps and Options.Hub are required")
	}
	h := &handler{
		apps:     o.Apps,
		hub:      o.Hub,
		prefix:   normalizePrefix(o.PathPrefix),
		maxBody:  o.MaxBodyBytes,
		window:   o.TimestampWindow,
		now:      o.Now,
		ready:    o.Ready,
		degraded: o.Degraded,
		log:      o.Logger,
		refuse:   o.Refusals,
		recorder: o.Recorder,
		pressure: o.Backpressure,
		mux:      http.NewServeMux(),
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.window == 0 {
		h.window = DefaultTimestampWindow
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.limits = o.RateLimits
	if h.limits == nil {
		h.limits = new(hub.RateLimits)
	}
	h.routes()
	return h
}

func normalizePrefix(p string) string {
	p = strings.TrimRight(p, "/")
	if p != "" && p[0] != '/' {
		p = "/" + p
	}
	return p
}

// routes registers every pattern. Each path also has a method-less pattern
// that answers 405 (a pattern with a method is more specific, so it wins
// for the right method), and "/" answers 404, both as JSON.
func (h *handler) routes() {
	route := func(method, path string, fn http.HandlerFunc) {
		h.mux.HandleFunc(method+" "+path, fn)
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "Method "+clip(r.Method)+" not allowed; use "+allow)
		})
	}
	route(http.MethodPost, "/apps/{id}/events", h.signed(rateBackend, h.trigger))
	route(http.MethodPost, "/apps/{id}/batch_events", h.signed(rateBackend, h.batch))
	route(http.MethodGet, "/apps/{id}/channels", h.signed(rateRead, h.channels))
	route(http.MethodGet, "/apps/{id}/channels/{channel_name}", h.signed(rateRead, h.channel))
	route(http.MethodGet, "/apps/{id}/channels/{channel_name}/users", h.signed(rateRead, h.users))
	route(http.MethodGet, "/apps/{id}/channels/{channel_name}/history", h.signed(rateRead, h.history))
	route(http.MethodPost, "/apps/{id}/users/{user_id}/terminate_connections", h.signed(rateNone, h.terminate))
	route(http.MethodGet, "/up", h.up)
	route(http.MethodGet, "/ready", h.readyz)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeBytes(w, http.StatusNotFound, bodyNotFound)
	})
}

// ServeHTTP recovers panics, removes the path prefix and dispatches.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w}
	var start time.Time
	if h.recorder != nil {
		start = time.Now()
	}
	defer func() {
		if h.recorder != nil {
			defer h.record(rw, r, start)
		}
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("panic serving request",
				"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !rw.wrote {
				writeError(rw, http.StatusInternalServerError, "Internal server error")
			}
		}
	}()
	if h.prefix != "" {
		stripped, ok := h.stripPrefix(r)
		if !ok {
			writeBytes(rw, http.StatusNotFound, bodyNotFound)
			return
		}
		r = stripped
	}
	if !isClean(r.URL.Path) {
		// ServeMux would redirect; a signed API call is not followed
		// there, so say what it is.
		writeBytes(rw, http.StatusNotFound, bodyNotFound)
		return
	}
	h.mux.ServeHTTP(rw, r)
}

// isClean reports whether p is in the canonical form ServeMux serves
// without a redirect: rooted, no empty, "." or ".." segments.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
}

// stripPrefix returns r with h.prefix removed from its path. Paths outside
// the prefix are refused, except the health checks at the root.
func (h *handler) stripPrefix(r *http.Request) (*http.Request, bool) {
	p := r.URL.Path
	if p == "/up" || p == "/ready" {
		return r, true
	}
	rest, ok := strings.CutPrefix(p, h.prefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		return nil, false
	}
	rawRest := ""
	if r.URL.RawPath != "" {
		rawRest, ok = strings.CutPrefix(r.URL.RawPath, h.prefix)
		if !ok {
			return nil, false
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = rest
	r2.URL.RawPath = rawRest
	return r2, true
}

// responseWriter remembers whether the response has started, so that a
// recovered panic answers 500 only when it still can.
type responseWriter struct {
	http.ResponseWriter
	wrote  bool
	status int // the status sent (0 until then)
	// appID is noted for the Recorder (noteApp).
	appID string
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
	}
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (h *handler) up(w http.ResponseWriter, _ *http.Request) {
	writeBytes(w, http.StatusOK, bodyUp)
}

func (h *handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if h.ready != nil {
		if err := h.ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, struct {
				Status string `json:"status"`
			}{err.Error()})
			return
		}
	}
	if h.degraded != nil {
		if why := h.degraded(); why != "" {
			writeJSON(w, http.StatusOK, struct {
				Status   string `json:"status"`
				Degraded string `json:"degraded"`
			}{"ready", why})
			return
		}
	}
	writeBytes(w, http.StatusOK, bodyReady)
}

// fail answers err: *apiError and *protocol.APIError with their status,
// hub.ErrNotPresence with 400, hub.ErrUnavailable and context errors with
// 503, anything else with a logged 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var pe *protocol.APIError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.As(err, &pe):
		writeError(w, pe.Status, pe.Message)
	case errors.Is(err, hub.ErrNotPresence):
		writeError(w, http.StatusBadRequest, "The channel must be a presence channel")
	case errors.Is(err, hub.ErrNoHistory):
		writeError(w, http.StatusNotFound, "The channel has no history: no history rule of the app matches it")
	case errors.Is(err, hub.ErrUnavailable):
		h.log.Warn("cluster engine unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "Service unavailable: the cluster engine (Redis) is unreachable; try again")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		h.log.Warn("request not completed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "Service unavailable: the request was not completed in time")
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "Internal server error")
	}
}
