package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
)

// startServer runs a node on a free loopback port and returns its address
// and a func that stops it (as SIGTERM would) and returns Run's error.
func startServer(t *testing.T, mutate func(*config.Config), opts ...Option) (string, func() error) {
	t.Helper()
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.Port = 0
	cfg.ShutdownTimeout = 2 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, func(a net.Addr) { addrc <- a.String() })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("server did not stop within 15 s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func dial(t *testing.T, addr, key string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/"+key+"?protocol=7&client=go&version=test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

func publish(t *testing.T, addr string, body string) *http.Response {
	t.Helper()
	path := "/apps/app-id/events"
	q := protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", "app-secret", time.Now())
	resp, err := http.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestPublishReachesSubscriberThroughTheWholeStack(t *testing.T) {
	addr, _ := startServer(t, nil)
	c := dial(t, addr, "app-key")
	if f := read(t, c); f.Event != protocol.EventConnectionEstablished {
		t.Fatalf("first frame %+v", f)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"orders","auth":""}}`)); err != nil {
		t.Fatal(err)
	}
	if f := read(t, c); f.Event != protocol.EventSubscriptionSucceeded || f.Channel != "orders" {
		t.Fatalf("subscribe answer %+v", f)
	}
	resp := publish(t, addr, `{"name":"App\\Events\\OrderShipped","channels":["orders"],"data":"{\"id\":1}"}`)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(bytes.TrimSpace(body)) != "{}" {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	for {
		f := read(t, c)
		if f.Event == protocol.EventSubscriptionCount {
			continue // the dev app has subscription counts on
		}
		if f.Event != `App\Events\OrderShipped` || string(f.Data) != `"{\"id\":1}"` {
			t.Fatalf("event %+v data %s", f, f.Data)
		}
		break
	}
}

func TestUnknownKeyIsRefusedWith4001(t *testing.T) {
	addr, _ := startServer(t, nil)
	c := dial(t, addr, "nope")
	f := read(t, c)
	if f.Event != protocol.EventError || !strings.Contains(string(f.Data), "4001") {
		t.Fatalf("frame %+v %s", f, f.Data)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CodeAppNotFound {
		t.Fatalf("close: %v", err)
	}
}

func TestHealthAndDrain(t *testing.T) {
	addr, stop := startServer(t, nil)
	for _, p := range []string{"/up", "/ready"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	c := dial(t, addr, "app-key")
	read(t, c)

	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	// The client is told to reconnect (4200) within the drain window.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var closeCode int
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				closeCode = ce.Code
			}
			break
		}
		var f frame
		_ = json.Unmarshal(b, &f)
		if f.Event == protocol.EventError && !strings.Contains(string(f.Data), "4200") {
			t.Fatalf("error frame %s", b)
		}
	}
	if closeCode != protocol.CodeReconnect {
		t.Fatalf("close code %d, want 4200", closeCode)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/up"); err == nil {
		t.Fatal("listener still open after shutdown")
	}
}

func TestTwoServersCannotShareAPort(t *testing.T) {
	addr, _ := startServer(t, nil)
	_, port, _ := net.SplitHostPort(addr)
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.Port, _ = strconv.Atoi(port)
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Run(ctx, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// get sends a signed GET to the HTTP API and returns the body.
func get(t *testing.T, addr, path string) string {
	t.Helper()
	q := protocol.SignRequest("GET", path, url.Values{}, nil, "app-key", "app-secret", time.Now())
	resp, err := http.Get("http://" + addr + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
