package loadtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// TestNoiseHitsWhatProductionHits: each kind of noise reaches the endpoint
// it stands for (a bare TCP connection is seen by the listener; the
// dashboard logs in before it polls) and is counted without errors.
func TestNoiseHitsWhatProductionHits(t *testing.T) {
	var up, ready, metrics, stats, logs, logins, bare atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /up", func(http.ResponseWriter, *http.Request) { up.Add(1) })
	mux.HandleFunc("GET /ready", func(http.ResponseWriter, *http.Request) { ready.Add(1) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { metrics.Add(1); _, _ = w.Write([]byte("# metrics\n")) })
	mux.HandleFunc("POST /dashboard/login", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		logins.Add(1)
		http.SetCookie(w, &http.Cookie{Name: "herald_dashboard", Value: "s", Path: "/dashboard"})
		http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
	})
	authed := func(n *atomic.Int64, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if c, err := r.Cookie("herald_dashboard"); err != nil || c.Value != "s" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			n.Add(1)
			_, _ = w.Write([]byte(body))
		}
	}
	mux.HandleFunc("GET /dashboard/api/apps/app-id/stats", authed(&stats, `{}`))
	mux.HandleFunc("GET /dashboard/api/apps/app-id/log", authed(&logs, `{"events":[],"last":7}`))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			bare.Add(1) // every connection, the bare ones included, ends here
		}
	}
	srv.Start()
	defer srv.Close()

	o := defaultOptions("fanout")
	o.URL = "ws" + srv.URL[len("http"):]
	o.API = srv.URL
	o.Noise = noiseOptions{TCP: 20 * time.Millisecond, HTTP: 20 * time.Millisecond, Scrape: 20 * time.Millisecond,
		Dashboard: 20 * time.Millisecond, AdminToken: "tok", DashPath: "/dashboard"}
	if err := o.validate("fanout"); err != nil {
		t.Fatal(err)
	}
	n := startNoise(context.Background(), &o)
	kinds := []string{"tcp_probe", "http_up", "http_ready", "scrape", "dashboard"}
	testwait.For(t, 10*time.Second, "every kind of noise to run at least twice", func() bool {
		for _, k := range kinds {
			if n.done(k) < 2 {
				return false
			}
		}
		return true
	})
	got := n.stop()
	if up.Load() < 2 || ready.Load() < 2 || metrics.Load() < 2 || stats.Load() < 2 || logs.Load() < 2 || bare.Load() < 2 {
		t.Errorf("the server saw up %d, ready %d, metrics %d, stats %d, log %d, closed connections %d", up.Load(), ready.Load(), metrics.Load(), stats.Load(), logs.Load(), bare.Load())
	}
	for _, k := range kinds {
		s, ok := got[k]
		if !ok || s.Count < 2 || s.Errors != 0 {
			t.Errorf("%s: %+v (present %v)", k, s, ok)
		}
	}
	if logins.Load() != 1 {
		t.Errorf("dashboard logged in %d times, want once (the cookie is kept)", logins.Load())
	}
}
