package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// ownRedis starts a redis-server of the test's own on a free port.
func ownRedis(t *testing.T) string {
	t.Helper()
	const bin = "/usr/bin/redis-server"
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("redis-server is required (Debian package redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if !testwait.Until(5*time.Second, func() bool { return c.Ping(context.Background()).Err() == nil }) {
		t.Fatal("redis-server did not start")
	}
	return addr
}

// delayProxy forwards TCP to a Redis, holding every chunk for delay
// (settable while it runs): a slow Redis, or a slow network to it.
type delayProxy struct {
	ln    net.Listener
	to    string
	delay atomic.Int64 // nanoseconds
	cut   atomic.Bool  // drop everything (a network cut: calls time out)
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newDelayProxy(t *testing.T, to string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, to: to}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *delayProxy) pipe(from, to net.Conn) {
	defer p.wg.Done()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && p.cut.Load() {
			continue
		}
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *delayProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestSlowRedisDoesNotStallTheNode: with every Redis round trip taking
// 4 s (past the 2 s bound of each call), sign-in deadlines are still
// enforced on time, and HTTP requests, even those making many Redis
// calls, get a timely 503 with a JSON error instead of hanging.
func TestSlowRedisDoesNotStallTheNode(t *testing.T) {
	proxy := newDelayProxy(t, ownRedis(t))
	_, addr, _ := startNode(t, func(c *config.Config) {
		c.RedisURL = "redis://" + proxy.addr() + "/0"
		c.RedisPrefix = "slow-test:"
		c.HTTPRequestTimeout = 3 * time.Second
		// Counts pile up for a while, then are flushed against the slow
		// Redis (each channel one call).
		c.SubscriptionCountInterval = 2 * time.Second
		c.Apps[0].EnableSubscriptionCount = true
		c.Apps[0].EnableUserAuthentication = true
		c.Apps[0].UserAuthenticationTimeout = 2 * time.Second
	})
	if !testwait.Until(10*time.Second, func() bool { return readyOK(addr) }) {
		t.Fatal("the node never became ready")
	}
	// A signed-in client with 20 counted channels (fast Redis).
	a := dial(t, addr, "app-key")
	sid := socketID(t, a)
	user := `{"id":"u1"}`
	signin, _ := json.Marshal(map[string]any{"event": "pusher:signin", "data": map[string]string{
		"user_data": user, "auth": "app-key:" + protocol.Sign("app-secret", sid+"::user::"+user)}})
	if err := a.WriteMessage(websocket.TextMessage, signin); err != nil {
		t.Fatal(err)
	}
	readUntil(t, a, "pusher:signin_success")
	for i := range 20 {
		subscribe(t, a, "counted-"+strconv.Itoa(i), "", "")
	}
	proxy.delay.Store(int64(4 * time.Second))
	defer proxy.delay.Store(0) // a quick shutdown

	// A client that never signs in is closed at its deadline, though the
	// count flush is stuck on Redis.
	b := dial(t, addr, "app-key")
	connected := time.Now()
	_ = b.SetReadDeadline(time.Now().Add(15 * time.Second))
	var closeCode int
	for {
		if _, _, err := b.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				closeCode = ce.Code
			}
			break
		}
	}
	took := time.Since(connected)
	if closeCode != 4009 || took > 5*time.Second {
		t.Fatalf("sign-in deadline of 2 s: closed with %d after %v, want 4009 within 5 s", closeCode, took)
	}

	// HTTP: one Redis call, and ten in a row (cache channels).
	for _, tc := range []struct{ name, body string }{
		{"trigger", `{"name":"e","channel":"plain","data":"x"}`},
		{"ten cache channels", `{"name":"e","channels":["cache-0","cache-1","cache-2","cache-3","cache-4","cache-5","cache-6","cache-7","cache-8","cache-9"],"data":"x"}`},
	} {
		start := time.Now()
		status, body, err := apiPost(addr, "/apps/app-id/events", tc.body)
		took := time.Since(start)
		var e struct {
			Error string `json:"error"`
			Code  int    `json:"code"`
		}
		if err != nil || status != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || e.Code != 503 {
			t.Fatalf("%s against a slow Redis: %d %s %v, want 503 with a JSON error", tc.name, status, body, err)
		}
		if took > 6*time.Second {
			t.Fatalf("%s against a slow Redis took %v, want the 3 s request deadline", tc.name, took)
		}
		t.Logf("%s: 503 after %v", tc.name, took)
	}
}

func readyOK(addr string) bool {
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// TestGhostRepairedAfterACut: a presence member whose leave could not
// reach Redis (the network to it cut) is removed once Redis answers again:
// the other subscriber gets member_removed and the webhook fires, once
// each, within a few seconds.
func TestGhostRepairedAfterACut(t *testing.T) {
	var mu sync.Mutex
	var hooks []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h struct {
			Events []struct {
				Name   string `json:"name"`
				UserID string `json:"user_id"`
			}
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &h)
		mu.Lock()
		for _, e := range h.Events {
			hooks = append(hooks, e.Name+" "+e.UserID)
		}
		mu.Unlock()
	}))
	defer rcv.Close()
	proxy := newDelayProxy(t, ownRedis(t))
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.RedisURL = "redis://" + proxy.addr() + "/0"
		c.RedisPrefix = "ghost-test:"
		c.WebhookPresenceDelay = 0
		c.WebhookBatchWindow = 10 * time.Millisecond
		c.Apps[0].Webhooks = []apps.Webhook{{URL: rcv.URL, EventTypes: []string{"member_removed"}}}
	})
	if !testwait.Until(10*time.Second, func() bool { return readyOK(addr) }) {
		t.Fatal("the node never became ready")
	}
	join := func(user string) *websocket.Conn {
		c := dial(t, addr, "app-key")
		id := socketID(t, c)
		d := `{"user_id":"` + user + `"}`
		subscribe(t, c, "presence-room", "app-key:"+protocol.Sign("app-secret", protocol.ChannelAuthString(id, "presence-room", d)), d)
		readUntil(t, c, protocol.EventSubscriptionSucceeded)
		return c
	}
	watcher := join("watcher")
	gone := join("ghost")
	readUntil(t, watcher, "pusher_internal:member_added")

	proxy.cut.Store(true)
	gone.Close()
	if !testwait.Until(10*time.Second, func() bool { return srv.hub.Ghosts() == 1 }) {
		t.Fatalf("the failed leave left %d ghosts, want 1", srv.hub.Ghosts())
	}
	cutFor := time.Now()
	proxy.cut.Store(false)
	f := readUntil(t, watcher, "pusher_internal:member_removed")
	if !strings.Contains(string(f.Data), "ghost") {
		t.Fatalf("member_removed %s", f.Data)
	}
	t.Logf("member_removed %v after Redis answered again", time.Since(cutFor))
	// A barrier: an event after everything the repair could send.
	if !testwait.Until(10*time.Second, func() bool { return srv.hub.Ghosts() == 0 }) {
		t.Fatal("the ghost was not forgotten")
	}
	trigger(t, addr, "presence-room", "barrier", "x")
	for {
		f := read(t, watcher)
		if f.Event == "pusher_internal:member_removed" {
			t.Fatalf("a second member_removed: %s", f.Data)
		}
		if f.Event == "barrier" {
			break
		}
	}
	if !testwait.Until(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(hooks) > 0 }) {
		t.Fatal("no member_removed webhook")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooks) != 1 || hooks[0] != "member_removed ghost" {
		t.Fatalf("webhooks %v, want member_removed ghost once", hooks)
	}
}

// TestPresenceDebounceAcrossNodes: a user who leaves one node and joins
// another within webhook_presence_delay causes neither member_removed nor
// a second member_added.
func TestPresenceDebounceAcrossNodes(t *testing.T) {
	var mu sync.Mutex
	var hooks []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h struct {
			Events []struct {
				Name   string `json:"name"`
				UserID string `json:"user_id"`
			}
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &h)
		mu.Lock()
		for _, e := range h.Events {
			hooks = append(hooks, e.Name+" "+e.UserID)
		}
		mu.Unlock()
	}))
	defer rcv.Close()
	shared := clusterConfig(t)
	var prefix string
	cfg := func(c *config.Config) {
		shared(c)
		prefix = c.RedisPrefix
		c.WebhookPresenceDelay = 1500 * time.Millisecond
		c.WebhookBatchWindow = 10 * time.Millisecond
		c.Apps[0].Webhooks = []apps.Webhook{{URL: rcv.URL, EventTypes: []string{"member_added", "member_removed"}}}
	}
	addrA, _ := startServer(t, cfg)
	addrB, _ := startServer(t, cfg)
	join := func(addr, user string) *websocket.Conn {
		c := dial(t, addr, "app-key")
		id := socketID(t, c)
		d := `{"user_id":"` + user + `"}`
		subscribe(t, c, "presence-room", "app-key:"+protocol.Sign("app-secret", protocol.ChannelAuthString(id, "presence-room", d)), d)
		readUntil(t, c, protocol.EventSubscriptionSucceeded)
		return c
	}
	has := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(hooks, want)
	}
	flapA := join(addrA, "flap")
	if !testwait.Until(10*time.Second, func() bool { return has("member_added flap") }) {
		t.Fatal("no member_added for the first join")
	}
	// Leave A, join B, within the delay; then a join on each node, whose
	// webhooks come due after the flap's.
	flapA.Close()
	join(addrB, "flap")
	join(addrA, "barrier-a")
	join(addrB, "barrier-b")
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	if !testwait.Until(15*time.Second, func() bool {
		n, err := rdb.ZCard(context.Background(), prefix+"{webhooks}:due").Result()
		return has("member_added barrier-a") && has("member_added barrier-b") && err == nil && n == 0
	}) {
		t.Fatalf("the barriers' webhooks did not arrive: %v", hooks)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(hooks)
	if want := []string{"member_added barrier-a", "member_added barrier-b", "member_added flap"}; !slices.Equal(hooks, want) {
		t.Fatalf("webhooks %v, want %v (no member_removed/member_added pair for the move)", hooks, want)
	}
}
