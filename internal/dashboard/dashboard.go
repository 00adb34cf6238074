// Package dashboard is Herald's built-in web dashboard: a login with the
// admin token, live graphs of connections and messages per app, the
// channels in use, presence members, a debug console of the events flowing
// through an app, and a form to send a test event.
//
// Everything it serves is embedded (assets/): plain HTML, CSS and
// JavaScript that draws its graphs on <canvas>, with no build step and no
// network access beyond this server. The page polls a small JSON admin API
// (api/...) every second.
//
// Security: the admin token is compared in constant time; a login makes a
// random session id kept only in memory (cookie HttpOnly, SameSite=Strict,
// Secure under TLS); every state-changing request needs the session's CSRF
// token in the X-CSRF-Token header and, when the browser sends one, an
// Origin of this host. Failed logins are rate limited per client address,
// before the token is looked at.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

//go:embed assets
var assets embed.FS

// Hub is what the dashboard needs from the engine (the hub satisfies it).
type Hub interface {
	Channels(ctx context.Context, app *apps.App, prefix string) ([]hub.ChannelInfo, error)
	PresenceUsers(ctx context.Context, app *apps.App, channel string) ([]protocol.Member, error)
	Publish(ctx context.Context, app *apps.App, req hub.PublishRequest) error
}

// Totals are an app's running totals on this node, sampled every second
// for the graphs.
type Totals struct {
	Connections int64
	MessagesIn  uint64 // messages to fan out
	MessagesOut uint64 // deliveries to sockets
}

// Options configure New.
type Options struct {
	// Token is the admin token. Required: New fails without it.
	Token string
	// Apps lists the apps the dashboard shows.
	Apps apps.Store
	// Admin is the write side of the apps store for the Apps page
	// (appsapi.go); the zero value is read-only.
	Admin AppsAdmin
	// Hub answers channel and presence queries and publishes test events.
	Hub Hub
	// Totals reads an app's running totals (metrics).
	Totals func(appID string) Totals
	// Path is where the dashboard is mounted (default "/dashboard").
	Path string
	// Secure marks the session cookie Secure (serving over TLS).
	Secure bool
	// ClientOf returns a request's client address and whether it came over
	// TLS, believing X-Forwarded-For and X-Forwarded-Proto only from
	// trusted proxies. Failed logins are throttled per client address, and
	// the cookie is Secure for a request that came over TLS. Nil: the
	// socket's peer, and Secure alone.
	ClientOf func(r *http.Request) (client netip.Addr, viaTLS bool)
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// History is how much of the graphs is kept (default 5 min).
	History time.Duration
	Logger  *slog.Logger
}

// Dashboard serves the dashboard; it is also a hub.Observer that feeds the
// debug console. Run samples the graphs.
type Dashboard struct {
	opt      Options
	tokenSum [32]byte
	log      *slog.Logger
	mux      *http.ServeMux
	static   http.Handler
	failures *loginThrottle

	mu       sync.Mutex
	sessions map[string]*session

	statsMu sync.Mutex
	series  map[string]*ring // app id → samples
	last    map[string]Totals

	logs logBook
}

type session struct {
	csrf    string
	expires time.Time
}

// maxSessions bounds the sessions kept; the oldest goes first.
const maxSessions = 256

const cookieName = "herald_dashboard"

// New builds a Dashboard.
func New(o Options) (*Dashboard, error) {
	if o.Token == "" {
		return nil, errorString("dashboard: an admin token is required")
	}
	if o.Apps == nil || o.Hub == nil || o.Totals == nil {
		return nil, errorString("dashboard: Apps, Hub and Totals are required")
	}
	if o.Path == "" {
		o.Path = "/dashboard"
	}
	o.Path = strings.TrimRight(o.Path, "/")
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.History <= 0 {
		o.History = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{
		opt:      o,
		tokenSum: sha256.Sum256([]byte(o.Token)),
		log:      o.Logger,
		static:   http.StripPrefix(o.Path+"/static/", http.FileServerFS(sub)),
		failures: newLoginThrottle(),
		sessions: make(map[string]*session),
		series:   make(map[string]*ring),
		last:     make(map[string]Totals),
	}
	d.logs.init()
	d.routes()
	return d, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func (d *Dashboard) routes() {
	p := d.opt.Path
	m := http.NewServeMux()
	m.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, p+"/", http.StatusSeeOther)
	})
	m.HandleFunc("GET "+p+"/{$}", d.index)
	m.Handle("GET "+p+"/static/", d.static)
	m.HandleFunc("POST "+p+"/login", d.login)
	m.HandleFunc("POST "+p+"/logout", d.auth(d.logout))
	m.HandleFunc("GET "+p+"/api/session", d.auth(d.sessionInfo))
	m.HandleFunc("GET "+p+"/api/apps", d.auth(d.appsList))
	m.HandleFunc("GET "+p+"/api/apps/{id}/stats", d.auth(d.stats))
	m.HandleFunc("GET "+p+"/api/apps/{id}/channels/{channel}/members", d.auth(d.members))
	m.HandleFunc("GET "+p+"/api/apps/{id}/log", d.auth(d.eventLog))
	m.HandleFunc("POST "+p+"/api/apps/{id}/events", d.auth(d.sendEvent))
	d.adminRoutes(m, p)
	m.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not found")
	})
	d.mux = m
}

// ServeHTTP implements http.Handler for every path under Path.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The dashboard is never framed, never cached and loads nothing from
	// elsewhere.
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
	d.mux.ServeHTTP(w, r)
}

// ---- sessions ----

func (d *Dashboard) tokenOK(given string) bool {
	// Hashing first makes the comparison constant-time whatever the length.
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], d.tokenSum[:]) == 1
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func (d *Dashboard) newSession() (id string, s *session) {
	now := time.Now()
	id = randomHex(32)
	s = &session{csrf: randomHex(32), expires: now.Add(d.opt.SessionTTL)}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range d.sessions {
		if now.After(v.expires) {
			delete(d.sessions, k)
		}
	}
	for len(d.sessions) >= maxSessions {
		var oldest string
		var at time.Time
		for k, v := range d.sessions {
			if oldest == "" || v.expires.Before(at) {
				oldest, at = k, v.expires
			}
		}
		delete(d.sessions, oldest)
	}
	d.sessions[id] = s
	return id, s
}

// session returns the request's live session and its id.
func (d *Dashboard) session(r *http.Request) (string, *session) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) != 64 {
		return "", nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sessions[c.Value]
	if s == nil {
		return "", nil
	}
	if time.Now().After(s.expires) {
		delete(d.sessions, c.Value)
		return "", nil
	}
	return c.Value, s
}

// client returns r's client address and whether it came over TLS.
func (d *Dashboard) client(r *http.Request) (netip.Addr, bool) {
	if d.opt.ClientOf != nil {
		return d.opt.ClientOf(r)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, r.TLS != nil
	}
	return ap.Addr().Unmap(), r.TLS != nil
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	_, viaTLS := d.client(r)
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    value,
		Path:     d.opt.Path + "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   d.opt.Secure || viaTLS,
		SameSite: http.SameSiteStrictMode,
	})
}

// sameOrigin refuses a cross-site request: a browser sends Origin with
// every POST, and it must name this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == "" // no Origin: not a browser form post from elsewhere
	}
	i := strings.Index(o, "://")
	return i > 0 && strings.EqualFold(o[i+3:], r.Host)
}

// auth wraps an admin API handler: a live session is required, and for a
// POST, the session's CSRF token and a same-origin request.
func (d *Dashboard) auth(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, s := d.session(r)
		if s == nil {
			writeError(w, http.StatusUnauthorized, "Log in to the dashboard first")
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "Cross-origin request refused")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(s.csrf)) != 1 {
				writeError(w, http.StatusForbidden, "Missing or wrong X-CSRF-Token")
				return
			}
		}
		next(w, r, s)
	}
}

// ---- pages ----

func (d *Dashboard) index(w http.ResponseWriter, r *http.Request) {
	if _, s := d.session(r); s == nil {
		d.loginPage(w, http.StatusOK, "")
		return
	}
	serveAsset(w, "index.html")
}

func (d *Dashboard) loginPage(w http.ResponseWriter, status int, msg string) {
	page, err := assets.ReadFile("assets/login.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Missing asset")
		return
	}
	html := strings.Replace(string(page), "{{message}}", htmlEscape(msg), 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(html))
}

func serveAsset(w http.ResponseWriter, name string) {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Missing asset")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b)
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.loginPage(w, http.StatusForbidden, "Cross-origin login refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		d.loginPage(w, http.StatusBadRequest, "The login form could not be read.")
		return
	}
	// The throttle comes first: an address out of failures learns nothing
	// about the token, right or wrong.
	addr, _ := d.client(r)
	giveBack, ok := d.failures.reserve(addr)
	if !ok {
		w.Header().Set("Retry-After", "1")
		d.loginPage(w, http.StatusTooManyRequests, "Too many failed logins; wait a moment.")
		return
	}
	if !d.tokenOK(r.PostForm.Get("token")) {
		d.log.Warn("login with a wrong admin token", "remote", r.RemoteAddr, "client", addr.String())
		d.loginPage(w, http.StatusUnauthorized, "Wrong admin token.")
		return
	}
	giveBack()
	id, _ := d.newSession()
	d.setCookie(w, r, id, int(d.opt.SessionTTL/time.Second))
	d.log.Info("logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, d.opt.Path+"/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if id, _ := d.session(r); id != "" {
		d.mu.Lock()
		delete(d.sessions, id)
		d.mu.Unlock()
	}
	d.setCookie(w, r, "", -1)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
