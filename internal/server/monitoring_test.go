package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
)

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetricsOnASeparateListener(t *testing.T) {
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.Port = 0
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.ShutdownTimeout = time.Second
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a net.Addr) { started <- a }) }()
	var main net.Addr
	select {
	case main = <-started:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not started")
	}
	maddr := srv.MetricsAddr().String()
	if code, body := fetch(t, "http://"+maddr+"/metrics"); code != 200 || !strings.Contains(body, "herald_http_request_duration_seconds") && !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics port /metrics: %d %.200s", code, body)
	}
	if code, body := fetch(t, "http://"+maddr+"/up"); code != 200 || !strings.Contains(body, "up") {
		t.Fatalf("metrics port /up: %d %s", code, body)
	}
	if code, body := fetch(t, "http://"+maddr+"/ready"); code != 200 || !strings.Contains(body, "ready") {
		t.Fatalf("metrics port /ready: %d %s", code, body)
	}
	if code, body := fetch(t, "http://"+maddr+"/apps/app-id/channels"); code != 404 || !strings.Contains(body, `"code":404`) {
		t.Fatalf("metrics port serves the API: %d %s", code, body)
	}
	// Off the public port.
	if code, body := fetch(t, "http://"+main.String()+"/metrics"); code != 404 {
		t.Fatalf("main port /metrics with metrics_addr set: %d %.200s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not stopped")
	}
	if _, err := net.DialTimeout("tcp", maddr, time.Second); err == nil {
		t.Fatal("the metrics listener is still open after shutdown")
	}
}

func TestMetricsOnTheMainPort(t *testing.T) {
	addr, _ := startServer(t, nil)
	code, body := fetch(t, "http://"+addr+"/metrics")
	if code != 200 || !strings.Contains(body, "# TYPE herald_connections gauge") || !strings.Contains(body, "process_start_time_seconds") {
		t.Fatalf("/metrics: %d %.300s", code, body)
	}
	resp, err := http.Post("http://"+addr+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %d", resp.StatusCode)
	}
}

func TestDashboardTokenDefaults(t *testing.T) {
	// The development app with no token: one is made for this run.
	cfg := config.Default()
	cfg.Host, cfg.Port = "127.0.0.1", 0
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if tok := srv.GeneratedAdminToken(); len(tok) < 20 || !srv.DashboardEnabled() {
		t.Fatalf("dev default: token %q, enabled %v", tok, srv.DashboardEnabled())
	}
	// A configured token is used, never replaced.
	cfg.AdminToken = "configured-token-0123"
	srv, err = New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if srv.GeneratedAdminToken() != "" || !srv.DashboardEnabled() {
		t.Fatal("a configured token was replaced")
	}
	// Real apps and no token: the dashboard is off and says why.
	addr, _ := startServer(t, func(c *config.Config) {
		c.Apps[0].Secret = "a-real-secret"
		c.AdminToken = ""
	})
	code, body := fetch(t, "http://"+addr+"/dashboard/")
	if code != 404 || !strings.Contains(body, "admin_token") || !strings.Contains(body, `"code":404`) {
		t.Fatalf("dashboard without a token: %d %s", code, body)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One line per connection opened and closed at debug; none at info.
func TestConnectionLogLines(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		var buf syncBuffer
		cfg := config.Default()
		cfg.Host, cfg.Port = "127.0.0.1", 0
		cfg.ShutdownTimeout = time.Second
		srv, err := New(cfg, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx, func(a net.Addr) { started <- a }) }()
		addr := (<-started).String()
		c := dial(t, addr, "app-key")
		readFor(t, c, protocol.EventConnectionEstablished, "")
		for range 5 {
			wsSend(t, c, `{"event":"pusher:ping","data":{}}`)
			readFor(t, c, "pusher:pong", "")
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
		// Wait for the close to be handled: the connection gauge drops.
		waitMetric(t, "http://"+addr+"/metrics", series("herald_connections", "app", "app-id"), 0)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		logs := buf.String()
		opened, closed := strings.Count(logs, `"msg":"connection opened"`), strings.Count(logs, `"msg":"connection closed"`)
		want := 0
		if level == slog.LevelDebug {
			want = 1
			if !strings.Contains(logs, `"code":1000`) {
				t.Errorf("the close line has no code 1000:\n%s", logs)
			}
		}
		if opened != want || closed != want {
			t.Errorf("level %v: %d opened and %d closed lines, want %d each:\n%s", level, opened, closed, want, logs)
		}
		if n := strings.Count(logs, "\n"); level == slog.LevelInfo && n > 6 {
			t.Errorf("%d lines at info for one connection:\n%s", n, logs)
		}
	}
}
