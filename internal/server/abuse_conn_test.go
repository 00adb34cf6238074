package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// closeCodeOf reads until the connection ends and returns its close code
// (0: ended without a close frame), counting the text frames that
// contain want.
func readUntilClose(c *websocket.Conn, want string) (code, matched int) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, matched
			}
			return 0, matched
		}
		if strings.Contains(string(msg), want) {
			matched++
		}
	}
}

// A flood of WebSocket pings from a client that reads is held to the
// connection's message rate: pings past it get no pong, and a client that
// goes on is closed with 4301; a neighbour is served throughout.
func TestPingFloodIsRateLimited(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	w := newWatcher(t, addr)
	w.probe(t, addr, 3)
	c, err := dialAs(addr, "203.0.113.20")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := established(c); err != nil {
		t.Fatal(err)
	}
	pongs := make(chan struct{}, 10_000)
	c.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
	done := make(chan int)
	go func() {
		code, _ := readUntilClose(c, "")
		done <- code
	}()
	start := time.Now()
	const flood = 5000
	for range flood {
		if err := c.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(5*time.Second)); err != nil {
			break // closed by the server
		}
	}
	code := <-done
	elapsed := time.Since(start)
	// Closed by whichever bound it passed first: the message rate (4301)
	// or, when the pings arrive faster than they are handled, the job
	// list (4100).
	ref := srv.Refusals()
	switch {
	case code == protocol.CodeClientEventRejected && ref.Count("app-id", hub.LimitMessages) > 0:
	case code == protocol.CodeOverCapacity && ref.Count("app-id", hub.LimitPendingMessages) == 1:
	default:
		t.Fatalf("closed with %d, refusals %v", code, ref.Snapshot())
	}
	cfg := config.Default()
	allowed := cfg.ConnectionMessagesBurst + int(float64(cfg.ConnectionMessagesPerSecond)*elapsed.Seconds()) + 1
	if n := len(pongs); n > allowed {
		t.Fatalf("%d pongs for %d pings in %v, the rate allows %d", n, flood, elapsed, allowed)
	}
	w.probe(t, addr, 10)
}

// A subscribe storm on one connection: the requests past the burst fail
// with pusher:subscription_error 4301 (the client's subscription ends
// rather than waiting) and the connection is not read until its bucket
// refills; what it sent meanwhile is refused when the reading resumes,
// and past a debt of a whole burst the connection is closed with 4301. A
// page that subscribes to 50 channels at load is not affected.
func TestSubscribeStormIsRateLimited(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	w := newWatcher(t, addr)

	loadPage(t, addr, "203.0.113.30", "page-")

	storm, err := dialAs(addr, "203.0.113.31")
	if err != nil {
		t.Fatal(err)
	}
	defer storm.Close()
	if _, _, err := established(storm); err != nil {
		t.Fatal(err)
	}
	// Windows of 250 requests (more than a burst) ahead of the answers
	// read, as fast as the server answers. (A client that sends less than
	// a burst while it is not read is held to the rate, not closed.)
	const window = 250
	ok, limited, code := 0, 0, 0
	start := time.Now()
	for i := 0; code == 0; i++ {
		if i > 20 {
			t.Fatalf("still open after %d ok and %d limited", ok, limited)
		}
		for j := range window {
			if subscribeTo(storm, "storm-"+strconv.Itoa(i*window+j), "") != nil {
				break
			}
		}
		for n := 0; n < window && code == 0; {
			_ = storm.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := storm.ReadMessage()
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				code = ce.Code
			case err != nil:
				t.Fatal(err)
			case strings.Contains(string(msg), "subscription_succeeded"):
				ok++
				n++
			case strings.Contains(string(msg), "LimitReached"):
				limited++
				n++
			}
		}
	}
	if code != protocol.CodeClientEventRejected || limited == 0 {
		t.Fatalf("closed with %d after %d ok and %d LimitReached, want 4301 after some", code, ok, limited)
	}
	// The bucket refills meanwhile: both the burst and the debt allowed
	// grow by the rate.
	cfg := config.Default()
	slack := cfg.ConnectionMessagesBurst + int(float64(cfg.ConnectionMessagesPerSecond)*time.Since(start).Seconds()) + 1
	if ok < cfg.ConnectionMessagesBurst || ok > slack || limited > slack {
		t.Fatalf("%d ok, %d refused: the burst is %d (%d with the refill)", ok, limited, cfg.ConnectionMessagesBurst, slack)
	}
	if srv.Refusals().Count("app-id", hub.LimitMessages) == 0 {
		t.Fatal("refusals not counted")
	}

	// The storm's address (the forwarded one, not the proxy's) is
	// remembered: reconnecting at once, it starts with a tenth of the
	// burst. A page from another address behind the same proxy loads as
	// before.
	again, err := dialAs(addr, "203.0.113.31")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, _, err := established(again); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := subscribeTo(again, "again-"+strconv.Itoa(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	handled, refused := 0, false
	for answers := 0; answers < 50 && !refused; {
		_ = again.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := again.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		switch s := string(msg); {
		case strings.Contains(s, "LimitReached"):
			refused = true
		case strings.Contains(s, "subscription_succeeded"):
			handled++
			answers++
		}
	}
	share := cfg.ConnectionMessagesBurst/10 + int(float64(cfg.ConnectionMessagesPerSecond)*time.Since(start).Seconds()) + 1
	if handled > share {
		t.Fatalf("the storm's address, reconnected: %d subscribes handled before a refusal, want at most %d (a tenth of the burst, with the refill)", handled, share)
	}
	loadPage(t, addr, "203.0.113.32", "page2-")
	if got := scrape(t, "http://"+addr+"/metrics")["herald_flooder_reconnects_total"]; got != 1 {
		t.Fatalf("herald_flooder_reconnects_total = %v, want 1", got)
	}
	w.probe(t, addr, 10)
}

// loadPage is a page from client address ip (through the trusted proxy)
// that subscribes to 50 channels named prefix0..49 at once: every one
// must succeed.
func loadPage(t *testing.T, addr, ip, prefix string) {
	t.Helper()
	page, err := dialAs(addr, ip)
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	if _, _, err := established(page); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := subscribeTo(page, prefix+strconv.Itoa(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for ok := 0; ok < 50; {
		_ = page.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := page.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		switch s := string(msg); {
		case strings.Contains(s, "subscription_succeeded"):
			ok++
		case strings.Contains(s, "subscription_count"):
		default:
			t.Fatalf("page load from %s got %s", ip, s)
		}
	}
}

// A node whose queues hold more than half its outbound budget answers
// publishes with 503, Retry-After and a JSON error, counted by the
// refusals and /metrics; once the queues drain it accepts them again.
func TestSaturatedNodeRefusesPublishes(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.OutboundBudgetMB = 4
		c.WriteQueueKB = 64 << 10 // only the budget applies
	})
	// Subscribers that do not read, with small receive buffers so that
	// what they do not read stays on the server.
	stalled := stalledSubscribers(t, srv, addr, "firehose", 4)
	body, _ := json.Marshal(map[string]any{"name": "big", "channel": "firehose", "data": strings.Repeat("x", 60<<10)})
	var status int
	var resp []byte
	var err error
	for i := 0; ; i++ {
		if i > 5000 {
			t.Fatalf("never saturated (%d bytes queued)", srv.ws.OutboundBytes())
		}
		status, resp, err = apiPostRetry(addr, "/apps/app-id/events", string(body))
		if err != nil {
			t.Fatal(err)
		}
		if status != 200 {
			break
		}
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if status != 503 || json.Unmarshal(resp, &e) != nil || e.Code != 503 || !strings.Contains(e.Error, "saturated") {
		t.Fatalf("got %d %s, want 503 with a JSON error", status, resp)
	}
	if srv.Refusals().Count("app-id", hub.LimitOutboundBudget) == 0 {
		t.Fatal("refusal not counted")
	}
	metrics := get(t, addr, "/metrics")
	for _, want := range []string{"herald_outbound_bytes ", "herald_outbound_budget_bytes 4.194304e+06", `herald_refusals_total{app="app-id",limit="outbound_budget_mb"}`} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	// The stalled clients go: their queues with them, and publishes pass.
	for _, c := range stalled {
		c.Close()
	}
	testwait.For(t, 10*time.Second, "the queues to drain", func() bool { return !srv.ws.Saturated() })
	trigger(t, addr, "firehose", "after", "ok")
}

// apiPostRetry is apiPost that also checks a 503's Retry-After.
func apiPostRetry(addr, path, body string) (int, []byte, error) {
	q := protocol.SignRequest("POST", path, nil, []byte(body), "app-key", "app-secret", time.Now())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "1" {
		return resp.StatusCode, b, errors.New("503 without Retry-After: 1")
	}
	return resp.StatusCode, b, err
}

// GOMEMLIMIT comes from memory_limit_mb (90 %) unless the environment sets
// it.
func TestSetGoMemLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	cfg := config.Default()
	cfg.MemoryLimitMB = 1000
	log := slog.New(slog.DiscardHandler)
	noEnv := func(string) (string, bool) { return "", false }
	want := int64(1000<<20) / 100 * 90
	if got := SetGoMemLimit(cfg, noEnv, log); got != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("set %d (runtime %d), want %d", got, debug.SetMemoryLimit(-1), want)
	}
	debug.SetMemoryLimit(old)
	env := func(k string) (string, bool) { return "2GiB", k == "GOMEMLIMIT" }
	if got := SetGoMemLimit(cfg, env, log); got != 0 || debug.SetMemoryLimit(-1) != old {
		t.Fatalf("GOMEMLIMIT from the environment was overridden: %d", got)
	}
}

// stalledSubscribers subscribes n clients of the dev app to channel that
// never read, with small receive buffers so that what they do not read
// stays on the server, and waits until the node has them all. They are
// closed when the test ends (or earlier by the test).
func stalledSubscribers(t *testing.T, srv *Server, addr, channel string, n int) []*websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDial: func(network, a string) (net.Conn, error) {
		nc, err := net.Dial(network, a)
		if err == nil {
			_ = nc.(*net.TCPConn).SetReadBuffer(4096)
		}
		return nc, err
	}}
	var stalled []*websocket.Conn
	for range n {
		c, _, err := d.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, _, err := established(c); err != nil {
			t.Fatal(err)
		}
		if err := subscribeTo(c, channel, ""); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	testwait.For(t, 10*time.Second, "the subscriptions", func() bool {
		subs := 0
		srv.hub.EachLocalChannel(func(_, ch string, k int) {
			if ch == channel {
				subs = k
			}
		})
		return subs == n
	})
	return stalled
}
