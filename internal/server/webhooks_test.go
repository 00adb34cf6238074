package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// A channel occupied then vacated through the real stack reaches a webhook
// receiver, signed with the app secret.
func TestWebhooksThroughTheWholeStack(t *testing.T) {
	type hook struct {
		TimeMs int64 `json:"time_ms"`
		Events []struct {
			Name    string `json:"name"`
			Channel string `json:"channel"`
		} `json:"events"`
	}
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Pusher-Key") != "app-key" ||
			r.Header.Get("X-Pusher-Signature") != protocol.SignBytes("app-secret", body) {
			t.Errorf("bad webhook headers %v", r.Header)
		}
		var h hook
		if err := json.Unmarshal(body, &h); err != nil || h.TimeMs == 0 {
			t.Errorf("bad webhook body %s", body)
		}
		mu.Lock()
		for _, e := range h.Events {
			got = append(got, e.Name+" "+e.Channel)
		}
		mu.Unlock()
	}))
	defer rcv.Close()

	reg := prometheus.NewRegistry()
	addr, stop := startServer(t, func(c *config.Config) {
		c.Apps[0].Webhooks = []apps.Webhook{{URL: rcv.URL, EventTypes: []string{"channel_occupied", "channel_vacated"}}}
		c.WebhookBatchSize = 1 // one request per event: the config reaches the dispatcher
	}, WithRegisterer(reg))
	c := dial(t, addr, "app-key")
	read(t, c)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"orders"}}`)); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, protocol.EventSubscriptionSucceeded)
	c.Close()
	// Shutdown flushes what is pending.
	testwait.Until(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// One request per event (batch size 1): they may arrive in any order.
	slices.Sort(got)
	if len(got) != 2 || got[0] != "channel_occupied orders" || got[1] != "channel_vacated orders" {
		t.Fatalf("webhooks %v", got)
	}
	const want = `
# HELP herald_webhook_requests_total Webhook requests by app and result: sent (2xx), retried (failed and scheduled again) or failed (given up).
# TYPE herald_webhook_requests_total counter
herald_webhook_requests_total{app="app-id",result="failed"} 0
herald_webhook_requests_total{app="app-id",result="retried"} 0
herald_webhook_requests_total{app="app-id",result="sent"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "herald_webhook_requests_total"); err != nil {
		t.Error(err)
	}
}

// The Redis lease of a batch outlasts the longest attempt of any target.
func TestWebhookLease(t *testing.T) {
	cfg := config.Default()
	if got := webhookLease(cfg); got != 13*time.Second {
		t.Errorf("default lease %v, want 13s", got)
	}
	cfg.Apps[0].Webhooks = []apps.Webhook{{URL: "https://x", EventTypes: []string{"client_event"}, Timeout: 30 * time.Second}}
	if got := webhookLease(cfg); got != 65*time.Second {
		t.Errorf("lease %v, want 65s", got)
	}
}

// Without WithRegisterer the webhook metrics are on the node's own
// registry, served on /metrics with the others.
func TestWebhookMetricsOnMetricsEndpoint(t *testing.T) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer rcv.Close()
	addr, _ := startServer(t, func(c *config.Config) {
		c.Apps[0].Webhooks = []apps.Webhook{{URL: rcv.URL, EventTypes: []string{"channel_occupied"}}}
		c.WebhookBatchSize = 1
	})
	c := dial(t, addr, "app-key")
	read(t, c)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"orders"}}`)); err != nil {
		t.Fatal(err)
	}
	readUntil(t, c, protocol.EventSubscriptionSucceeded)
	// The delivery counts the request, then observes its latency, and a
	// scrape gathers the two families concurrently: one scrape may see the
	// first and not yet the second. Both end at 1; wait for a scrape that
	// has both.
	sent := series("herald_webhook_requests_total", "app", "app-id", "result", "sent")
	timed := series("herald_webhook_delivery_seconds_count", "app", "app-id")
	var m map[string]float64
	if !testwait.Until(10*time.Second, func() bool { m = scrape(t, "http://"+addr+"/metrics"); return m[sent] == 1 && m[timed] == 1 }) {
		t.Fatalf("%s = %v, %s = %v, want 1 each", sent, m[sent], timed, m[timed])
	}
}
