package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// rawRequest writes head (request line and headers, without the blank
// line) and then body on a fresh socket and returns the socket.
func rawRequest(t *testing.T, addr, head string, body []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append([]byte(head+"\r\n\r\n"), body...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readTooLarge reads one response from c and checks it is a 413 with a
// JSON error, and that the server then closes the connection.
func readTooLarge(t *testing.T, c net.Conn) {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/json" ||
		json.Unmarshal(b, &e) != nil || e.Code != 413 || !strings.Contains(e.Error, "exceeds") {
		t.Fatalf("answer %d %q %s, want 413 with a JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after the 413")
	}
}

// TestBodyLimitWhileReading: a body over max_request_body_kb is refused
// while it arrives, on any path and before authentication, whether its
// size is declared (Content-Length) or not (chunked); an endless chunked
// body is cut off with bounded memory, and a neighbour is unharmed.
func TestBodyLimitWhileReading(t *testing.T) {
	const limitKB = 64
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.MaxRequestBodyKB = limitKB
	})
	w := newWatcher(t, addr)
	w.probe(t, addr, 1)

	t.Run("declared length, any path, no signature", func(t *testing.T) {
		for _, path := range []string{"/apps/app-id/events", "/no/such/path", "/dashboard/api/login"} {
			c := rawRequest(t, addr, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600", nil)
			readTooLarge(t, c) // answered before any of the 100 MB was sent
		}
	})
	t.Run("one huge chunk", func(t *testing.T) {
		c := rawRequest(t, addr, "POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", []byte("4000000\r\n"))
		readTooLarge(t, c)
	})
	t.Run("small chunks just past the limit", func(t *testing.T) {
		var body bytes.Buffer
		chunk := bytes.Repeat([]byte("a"), 1024)
		for range limitKB + 1 {
			fmt.Fprintf(&body, "%x\r\n%s\r\n", len(chunk), chunk)
		}
		c := rawRequest(t, addr, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked", body.Bytes())
		readTooLarge(t, c)
	})
	t.Run("endless chunked body", func(t *testing.T) {
		before := heapInUse()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 16<<10, bytes.Repeat([]byte("a"), 16<<10)))
		// Without the limit the server takes all 256 MB; with it, the
		// socket is cut after about 64 KB plus what the kernel buffers.
		const most = 256 << 20
		sent := 0
		for sent < most {
			n, err := c.Write(chunk)
			sent += n
			if err != nil {
				break
			}
		}
		if sent >= most {
			t.Fatalf("the server took %d bytes of a body limited to %d KB", sent, limitKB)
		}
		// The answer may be lost to the reset of a socket closed with
		// unread data; the cut is what matters.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); isTimeout(err) {
			t.Fatal("the connection stayed open")
		}
		if grew := int64(heapInUse()) - int64(before); grew > 8<<20 {
			t.Fatalf("heap grew by %d bytes for a body cut at %d KB", grew, limitKB)
		}
		t.Logf("sent %d bytes before the cut", sent)
	})
	if got := srv.Refusals().Count("", hub.LimitRequestBody); got < 6 {
		t.Fatalf("%d refusals counted under %s, want 6", got, hub.LimitRequestBody)
	}

	t.Run("a chunked body within the limit still works", func(t *testing.T) {
		body := `{"name":"tick","channel":"probe","data":"1"}`
		q := protocol.SignRequest("POST", "/apps/app-id/events", url.Values{}, []byte(body), "app-key", "app-secret", time.Now())
		var chunked bytes.Buffer
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		c := rawRequest(t, addr, "POST /apps/app-id/events?"+q.Encode()+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked", chunked.Bytes())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("chunked trigger: %v %v", resp, err)
		}
		select {
		case n := <-w.probes:
			if n != 1 {
				t.Fatalf("watcher got probe %d, want 1", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the chunked trigger did not reach the watcher")
		}
	})
	// The neighbour kept its connection and still receives everything.
	w.probe(t, addr, 3)
}

// isTimeout reports whether err is a socket deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestDashboardLoginThrottlePerClient: through a trusted proxy, one
// client guessing admin tokens is throttled before its tokens are even
// compared, while another client logs in; the cookie is Secure when the
// proxy says the client came over TLS.
func TestDashboardLoginThrottlePerClient(t *testing.T) {
	const adminToken = "harden-admin-token-0123456789"
	_, addr, _ := startNode(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.AdminToken = adminToken
	})
	login := func(client, proto, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/dashboard/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("X-Forwarded-Proto", proto)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 30 {
		if login("203.0.113.50", "http", "wrong-token-guess-000000").StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	if code := login("203.0.113.50", "http", adminToken).StatusCode; code != http.StatusTooManyRequests {
		t.Fatalf("the right token from the guessing client: %d, want 429 (throttle before the comparison)", code)
	}
	resp := login("198.51.100.60", "https", adminToken)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another client: %d, want 303", resp.StatusCode)
	}
	if cs := resp.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("cookie behind a TLS proxy: %+v, want Secure", cs)
	}
	resp = login("198.51.100.61", "http", adminToken)
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) != 1 || cs[0].Secure {
		t.Fatalf("plain http: %d %+v, want a cookie without Secure", resp.StatusCode, cs)
	}
}

// TestHurriedShutdownStillDeliversWebhooks: a second signal (Hurry) cuts
// a long drain short, the transport's shutdown then fails (its deadline
// is gone), and the webhooks the connections caused are delivered anyway,
// once each.
func TestHurriedShutdownStillDeliversWebhooks(t *testing.T) {
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h struct {
			Events []struct{ Name, Channel string }
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &h)
		mu.Lock()
		for _, e := range h.Events {
			got = append(got, e.Name+" "+e.Channel)
		}
		mu.Unlock()
	}))
	defer rcv.Close()
	srv, addr, stop := startNode(t, func(c *config.Config) {
		c.ShutdownTimeout = 40 * time.Second // 30 s of spread closes
		c.Apps[0].Webhooks = []apps.Webhook{{URL: rcv.URL, EventTypes: []string{"channel_occupied", "channel_vacated"}}}
		c.WebhookBatchWindow = time.Minute // still open at shutdown
	})
	// Enough connections that the drain spreads their closes over its
	// window; none reads, so none answers its close frame.
	var conns []*websocket.Conn
	for range 40 {
		c := dial(t, addr, "app-key")
		read(t, c)
		conns = append(conns, c)
	}
	if err := conns[0].WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"orders"}}`)); err != nil {
		t.Fatal(err)
	}
	readUntil(t, conns[0], protocol.EventSubscriptionSucceeded)

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	if !testwait.Until(5*time.Second, srv.hub.Draining) {
		t.Fatal("the node did not start draining")
	}
	start := time.Now()
	srv.Hurry()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("the node did not stop after Hurry")
	}
	t.Logf("stopped %v after Hurry", time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, []string{"channel_occupied orders", "channel_vacated orders"}) {
		t.Fatalf("webhooks after a hurried shutdown: %v, want occupied and vacated once each", got)
	}
}
