package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// TestSecretsNeverLeak runs a node whose app secret, admin token and Redis
// password are known through the error paths a client, a backend and an
// operator can reach (bad signatures, stale timestamps, bad channel and
// user auth, oversized bodies, an unreachable Redis, a bad config file),
// with debug logging, and checks that none of them appears in any log
// line, response body, close reason, refusal count or config error.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		secret   = "S3cret-Known-4f9a1c"
		token    = "Admin-Token-77e1b0"
		redisPwd = "Redis-Pass-0c2d9e"
	)
	logs := &syncBuffer{}
	var seen bytes.Buffer // every body and frame the clients got
	cfg := config.Default()
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.ShutdownTimeout = time.Second
	cfg.Apps[0].Secret = secret
	cfg.AdminToken = token
	// Nothing listens on port 1: the cluster engine fails and logs it.
	cfg.RedisURL = "redis://:" + redisPwd + "@127.0.0.1:1/0"
	cfg.MaxRequestBodyKB = 1
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a net.Addr) { addrc <- a.String() }) }()
	addr := <-addrc
	defer func() {
		cancel()
		<-done
	}()

	// Backend errors.
	post := func(path string, q url.Values, body string) {
		resp, err := http.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
		seen.WriteString(resp.Header.Get("WWW-Authenticate"))
	}
	path := "/apps/app-id/events"
	body := `{"name":"e","channel":"c","data":"x"}`
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", "wrong-secret", time.Now()), body)
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", secret, time.Now().Add(-time.Hour)), body)
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte(body), "other-key", secret, time.Now()), body)
	big := `{"name":"e","channel":"c","data":"` + strings.Repeat("x", 2048) + `"}`
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte(big), "app-key", secret, time.Now()), big)
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte("{"), "app-key", secret, time.Now()), "{")
	// Redis is unreachable: a signed publish fails with 503 and a log line.
	post(path, protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", secret, time.Now()), body)
	for _, p := range []string{"/ready", "/up", "/apps/app-id/channels"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
	}

	// Client errors.
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{
		`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"app-key:0000"}}`,
		`{"event":"pusher:subscribe","data":{"channel":"presence-x","auth":"wrong:sig","channel_data":"{\"user_id\":\"1\"}"}}`,
		`{"event":"client-x","channel":"private-x","data":{}}`,
		`{"event":"pusher:signin","data":{"user_data":"{\"id\":\"1\"}","auth":"app-key:bad"}}`,
	} {
		_ = c.WriteMessage(websocket.TextMessage, []byte(m))
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			seen.WriteString(err.Error()) // the close reason
			break
		}
		seen.Write(b)
	}
	if c2, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/"+secret+"?protocol=7", nil); err == nil {
		_, b, _ := c2.ReadMessage()
		seen.Write(b)
		c2.Close()
	}

	// A config error next to the secret.
	file := filepath.Join(t.TempDir(), "herald.yaml")
	yaml := "admin_token: " + token + "\nredis_url: 'redis://:" + redisPwd + "@:bad'\napps:\n  - {id: a, key: k, secret: " + secret + ", max_connections: lots}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(config.Source{File: file}); err == nil {
		t.Fatal("bad config loaded")
	} else {
		seen.WriteString(err.Error())
	}
	for _, r := range srv.Refusals().Snapshot() {
		seen.WriteString(r.App + r.Limit)
	}

	testwait.For(t, 10*time.Second, "the Redis failure to be logged", func() bool {
		return strings.Contains(logs.String(), "127.0.0.1:1")
	})
	out := logs.String() + seen.String()
	for _, s := range []string{secret, token, redisPwd} {
		if i := strings.Index(out, s); i >= 0 {
			t.Fatalf("%q leaked: ...%s...", s, out[max(0, i-200):min(len(out), i+100)])
		}
	}
	if !strings.Contains(seen.String(), "401") || !strings.Contains(seen.String(), "413") {
		t.Fatalf("the error paths were not reached: %s", seen.String())
	}
}
