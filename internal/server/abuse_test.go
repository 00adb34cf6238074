package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// startNode is startServer that also returns the node.
func startNode(t *testing.T, mutate func(*config.Config)) (*Server, string, func() error) {
	t.Helper()
	cfg := config.Default()
	cfg.Host, cfg.Port = "127.0.0.1", 0
	cfg.ShutdownTimeout = 2 * time.Second
	if mutate != nil {
		mutate(cfg)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a net.Addr) { addrc <- a.String() }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("server stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = errors.New("server did not stop within 20 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	return srv, addr, stop
}

// abuser dials as client ip (through the trusted proxy header).
func dialAs(addr, ip string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, _, err := d.Dial("ws://"+addr+"/app/app-key?protocol=7", http.Header{"X-Forwarded-For": {ip}})
	return c, err
}

// established reads the first frame and returns the socket id, or the
// pusher:error code when the connection was refused.
func established(c *websocket.Conn) (socketID string, errCode int, err error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		return "", 0, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return "", 0, err
	}
	var s string
	_ = json.Unmarshal(f.Data, &s)
	switch f.Event {
	case protocol.EventConnectionEstablished:
		var d struct {
			SocketID string `json:"socket_id"`
		}
		err := json.Unmarshal([]byte(s), &d)
		return d.SocketID, 0, err
	case protocol.EventError:
		var d struct {
			Code int `json:"code"`
		}
		_ = json.Unmarshal(f.Data, &d)
		return "", d.Code, nil
	}
	return "", 0, fmt.Errorf("unexpected first frame %s", b)
}

func sendJSON(c *websocket.Conn, v any) error {
	b, _ := json.Marshal(v)
	return c.WriteMessage(websocket.TextMessage, b)
}

func subscribeTo(c *websocket.Conn, channel, socketID string) error {
	auth := ""
	if strings.HasPrefix(channel, "private-") {
		auth = "app-key:" + protocol.Sign("app-secret", protocol.ChannelAuthString(socketID, channel, ""))
	}
	return sendJSON(c, map[string]any{"event": "pusher:subscribe", "data": map[string]any{"channel": channel, "auth": auth}})
}

// apiPost sends a signed request to the HTTP API.
func apiPost(addr, path, body string) (int, []byte, error) {
	q := protocol.SignRequest("POST", path, url.Values{}, []byte(body), "app-key", "app-secret", time.Now())
	// A fresh connection each time: these tests shorten the server's
	// keep-alive deadline, and a POST on a connection the server is closing
	// at that moment fails with EOF (and is not retried).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func trigger(t *testing.T, addr, channel, event, data string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": event, "channel": channel, "data": data})
	status, b, err := apiPost(addr, "/apps/app-id/events", string(body))
	if err != nil || status != 200 {
		t.Fatalf("trigger %s: %d %s %v", channel, status, b, err)
	}
}

// watcher is the well-behaved client: subscribed to "probe" and "busy",
// it reads everything and must keep receiving every event throughout.
type watcher struct {
	c      *websocket.Conn
	probes chan int
	busy   atomic.Int64
	done   chan struct{}
	err    atomic.Value
}

func newWatcher(t *testing.T, addr string) *watcher {
	t.Helper()
	c, err := dialAs(addr, "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, code, err := established(c); err != nil || code != 0 {
		t.Fatalf("watcher: %d %v", code, err)
	}
	w := &watcher{c: c, probes: make(chan int, 1024), done: make(chan struct{})}
	for _, ch := range []string{"probe", "busy"} {
		if err := subscribeTo(c, ch, ""); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, b, err := c.ReadMessage(); err != nil || !strings.Contains(string(b), "subscription_succeeded") {
			t.Fatalf("watcher subscribe %s: %s %v", ch, b, err)
		}
	}
	go func() {
		defer close(w.done)
		for {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_, b, err := c.ReadMessage()
			if err != nil {
				w.err.Store(err)
				return
			}
			var f frame
			if json.Unmarshal(b, &f) != nil {
				continue
			}
			switch {
			case f.Channel == "probe" && f.Event == "tick":
				var s string
				_ = json.Unmarshal(f.Data, &s)
				n, _ := strconv.Atoi(s)
				w.probes <- n
			case f.Channel == "busy" && f.Event == "load":
				w.busy.Add(1)
			}
		}
	}()
	return w
}

// probe publishes n numbered events to "probe" and checks that the
// watcher receives every one, in order. It returns the slowest delivery
// (logged, never asserted: timing belongs in benchmarks).
func (w *watcher) probe(t *testing.T, addr string, n int) time.Duration {
	t.Helper()
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		trigger(t, addr, "probe", "tick", strconv.Itoa(i))
		select {
		case got := <-w.probes:
			if got != i {
				t.Fatalf("watcher got probe %d, want %d", got, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watcher did not receive probe %d (err %v)", i, w.err.Load())
		}
		slowest = max(slowest, time.Since(start))
	}
	return slowest
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestAbuse runs the abuse cases against one node while a well-behaved
// client keeps receiving every event: each case gets its documented
// answer, is counted, and the heap is back near where it started.
func TestAbuse(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"} // each test client names its own address
		c.IPConnectionsPerSecond, c.IPConnectionsBurst = 5, 10
		c.MaxMessageSizeKB = 10
		c.MaxRequestBodyKB = 64
		c.WriteQueueKB = 64
		c.HandshakeTimeout = time.Second
		// Each case floods one connection past the connection message
		// rate; that limit has tests of its own (abuse_conn_test.go).
		c.ConnectionMessagesPerSecond = -1
	})
	ref := srv.Refusals()
	w := newWatcher(t, addr)
	w.probe(t, addr, 5) // warm up
	heapBefore := heapInUse()
	slowest := map[string]time.Duration{"start": w.probe(t, addr, 20)}

	t.Run("connection flood from one IP", func(t *testing.T) {
		const attempts = 200
		start := time.Now()
		admitted, refused := 0, 0
		var open []*websocket.Conn
		for range attempts {
			c, err := dialAs(addr, "203.0.113.66")
			if err != nil {
				t.Fatal(err)
			}
			_, code, err := established(c)
			switch {
			case err != nil:
				t.Fatal(err)
			case code == protocol.CodeOverCapacity:
				refused++
				c.Close()
			case code == 0:
				admitted++
				open = append(open, c)
			default:
				t.Fatalf("refused with %d, want 4100", code)
			}
		}
		elapsed := time.Since(start)
		allowed := 10 + int(5*elapsed.Seconds()) + 1
		if admitted > allowed || refused == 0 {
			t.Fatalf("%d admitted, %d refused in %v; the bucket allows %d", admitted, refused, elapsed, allowed)
		}
		if n := ref.Count("", hub.LimitIPConnections); n != int64(refused) {
			t.Fatalf("counted %d refusals, want %d", n, refused)
		}
		// Another address is not affected.
		c, err := dialAs(addr, "203.0.113.67")
		if err != nil {
			t.Fatal(err)
		}
		if _, code, err := established(c); err != nil || code != 0 {
			t.Fatalf("another address: %d %v", code, err)
		}
		c.Close()
		for _, c := range open {
			c.Close()
		}
		slowest["connection flood"] = w.probe(t, addr, 20)
	})

	t.Run("client event flood", func(t *testing.T) {
		const flood = 1000
		a, err := dialAs(addr, "203.0.113.10")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := dialAs(addr, "203.0.113.11")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		aid, _, err := established(a)
		if err != nil {
			t.Fatal(err)
		}
		bid, _, err := established(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			c  *websocket.Conn
			id string
		}{{a, aid}, {b, bid}} {
			if err := subscribeTo(x.c, "private-chat", x.id); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := x.c.ReadMessage(); err != nil || !strings.Contains(string(msg), "subscription_succeeded") {
				t.Fatalf("subscribe: %s %v", msg, err)
			}
		}
		// Sent in rounds of 100, each ended by a ping whose pong is read
		// with the 4301 answers before it: the answers then stay within
		// the write queue (a flooder that does not read them is a slow
		// consumer, 4100).
		start := time.Now()
		rejected := 0
		for round := range flood / 100 {
			for i := range 100 {
				if err := sendJSON(a, map[string]any{"event": "client-typing", "channel": "private-chat", "data": map[string]int{"n": round*100 + i}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := sendJSON(a, map[string]any{"event": "pusher:ping", "data": map[string]any{}}); err != nil {
				t.Fatal(err)
			}
			for {
				_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, msg, err := a.ReadMessage()
				if err != nil {
					t.Fatalf("flooder: %v", err)
				}
				if strings.Contains(string(msg), "pusher:pong") {
					break
				}
				if strings.Contains(string(msg), `"code":4301`) {
					rejected++
				}
			}
		}
		elapsed := time.Since(start)
		// Every client event was handled before the pong: a marker
		// published now reaches b after all that were relayed.
		trigger(t, addr, "private-chat", "marker", "end")
		relayed := 0
		for {
			_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := b.ReadMessage()
			if err != nil {
				t.Fatalf("peer: %v", err)
			}
			if strings.Contains(string(msg), `"marker"`) {
				break
			}
			if strings.Contains(string(msg), "client-typing") {
				relayed++
			}
		}
		allowed := 10 + int(10*elapsed.Seconds()) + 1
		if relayed > allowed || relayed+rejected != flood {
			t.Fatalf("relayed %d, rejected %d of %d in %v (allowed %d)", relayed, rejected, flood, elapsed, allowed)
		}
		if n := ref.Count("app-id", hub.LimitClientEvents); n != int64(rejected) {
			t.Fatalf("counted %d, want %d", n, rejected)
		}
		slowest["client event flood"] = w.probe(t, addr, 20)
	})

	t.Run("oversized frame", func(t *testing.T) {
		c, err := dialAs(addr, "203.0.113.12")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := established(c); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, make([]byte, 10*1024+1)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("got %v, want close 1009", err)
		}
		testwait.For(t, 5*time.Second, "the 1009 refusal to be counted", func() bool {
			return ref.Count("app-id", hub.LimitMessageSize) == 1
		})
		slowest["oversized frame"] = w.probe(t, addr, 20)
	})

	t.Run("oversized body", func(t *testing.T) {
		body := `{"name":"e","channel":"x","data":"` + strings.Repeat("x", 65*1024) + `"}`
		status, b, err := apiPost(addr, "/apps/app-id/events", body)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error string `json:"error"`
			Code  int    `json:"code"`
		}
		if status != 413 || json.Unmarshal(b, &e) != nil || e.Code != 413 || e.Error == "" {
			t.Fatalf("got %d %s, want 413 with a JSON error", status, b)
		}
		// Refused by the transport while reading, before the request is
		// routed to an app: counted for the server.
		if n := ref.Count("", hub.LimitRequestBody); n != 1 {
			t.Fatalf("counted %d", n)
		}
		slowest["oversized body"] = w.probe(t, addr, 20)
	})

	t.Run("10,000 subscribe requests on one connection", func(t *testing.T) {
		const subs = 10_000
		c, err := dialAs(addr, "203.0.113.13")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := established(c); err != nil {
			t.Fatal(err)
		}
		// The requests go in windows of 100 ahead of the answers read: a
		// client that sends 10,000 and reads nothing is a slow consumer
		// (4100) once the answers pass write_queue_kb, also an answer.
		answered := make(chan int, subs)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			done := 0
			for i := range subs {
				for i-done >= 100 {
					select {
					case done = <-answered:
					case <-time.After(10 * time.Second):
						return
					}
				}
				if subscribeTo(c, "flood-"+strconv.Itoa(i), "") != nil {
					return
				}
			}
		}()
		ok, limited := 0, 0
		for ok+limited < subs {
			answered <- ok + limited
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("after %d ok, %d limited: %v", ok, limited, err)
			}
			switch s := string(msg); {
			case strings.Contains(s, "subscription_succeeded"):
				ok++
			case strings.Contains(s, "LimitReached"):
				limited++
			case strings.Contains(s, "subscription_count"): // the dev app counts
			default:
				t.Fatalf("unexpected %s", s)
			}
		}
		max := config.DevApp().MaxChannelsPerConnection
		if ok != max || limited != subs-max {
			t.Fatalf("%d subscribed, %d refused; want %d and %d", ok, limited, max, subs-max)
		}
		if n := ref.Count("app-id", hub.LimitChannelsPerConnection); n != int64(limited) {
			t.Fatalf("counted %d", n)
		}
		<-wrote
		// Still connected.
		if err := sendJSON(c, map[string]any{"event": "pusher:ping", "data": map[string]any{}}); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || !strings.Contains(string(msg), "pusher:pong") {
			t.Fatalf("after the flood: %s %v", msg, err)
		}
		slowest["10,000 subscribes"] = w.probe(t, addr, 20)
	})

	t.Run("a client that reads nothing on a busy channel", func(t *testing.T) {
		// Small socket buffers so the queue bound, not the kernel, is what
		// the silent client fills.
		d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if tc, ok := nc.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(16 << 10)
			}
			return nc, err
		}}
		r, _, err := d.Dial("ws://"+addr+"/app/app-key?protocol=7", http.Header{"X-Forwarded-For": {"203.0.113.14"}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, _, err := established(r); err != nil {
			t.Fatal(err)
		}
		if err := subscribeTo(r, "busy", ""); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := r.ReadMessage(); err != nil || !strings.Contains(string(msg), "subscription_succeeded") {
			t.Fatalf("subscribe: %s %v", msg, err)
		}
		// From here r reads nothing.
		before := w.busy.Load()
		cut := ref.Count("app-id", hub.LimitWriteQueue)
		data := strings.Repeat("x", 8*1024)
		published := 0
		for ref.Count("app-id", hub.LimitWriteQueue) == cut {
			if published == 20_000 {
				t.Fatal("the silent client was never disconnected")
			}
			trigger(t, addr, "busy", "load", data)
			published++
		}
		// The watcher got every one of them.
		if !testwait.Until(10*time.Second, func() bool { return w.busy.Load()-before == int64(published) }) {
			t.Fatalf("the watcher received %d of the %d busy events (err %v)", w.busy.Load()-before, published, w.err.Load())
		}
		// The silent client's socket ends; when a close frame made it
		// through, it says 4100.
		_ = r.SetReadDeadline(time.Now().Add(15 * time.Second))
		got := 0
		for {
			_, _, err := r.ReadMessage()
			if err == nil {
				got++
				continue
			}
			t.Logf("silent client read %d messages, then %v", got, err)
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != protocol.CodeOverCapacity {
				t.Fatalf("closed with %d, want 4100", ce.Code)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the silent client's socket was not closed")
			}
			break
		}
		t.Logf("silent client cut after %d events of %d bytes", published, len(data))
		slowest["silent client"] = w.probe(t, addr, 20)
	})

	t.Run("upgrade requests that never finish", func(t *testing.T) {
		const n = 50
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
			b, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("unfinished upgrade %d was not cut", i)
			}
			if len(b) > 0 {
				t.Fatalf("answered %q", b)
			}
		}
		slowest["unfinished upgrades"] = w.probe(t, addr, 20)
	})

	if err := w.err.Load(); err != nil {
		t.Fatalf("the well-behaved client lost its connection: %v", err)
	}
	heapAfter := heapInUse()
	phases := make([]string, 0, len(slowest))
	for k, v := range slowest {
		phases = append(phases, fmt.Sprintf("%s %v", k, v.Round(time.Microsecond)))
	}
	slices.Sort(phases)
	t.Logf("heap in use: %d KB before, %d KB after; slowest probe delivery per phase: %s",
		heapBefore>>10, heapAfter>>10, strings.Join(phases, ", "))
	t.Logf("refusals: %+v", ref.Snapshot())
	if heapAfter > heapBefore+64<<20 {
		t.Fatalf("heap grew from %d KB to %d KB", heapBefore>>10, heapAfter>>10)
	}
}
