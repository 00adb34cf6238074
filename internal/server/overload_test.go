package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// Publishing as fast as possible to many subscribers that read (through
// small receive buffers) saturates the node by delivery delay before any
// byte budget: the HTTP API answers 503 with Retry-After, counted under
// saturation_delay in /metrics, while every event it accepted reaches
// every subscriber and none is cut; once the flood stops, the signal
// clears and publishes pass again. The bound is 1 ms so that the rule, not
// the speed of the machine, decides when the node sheds.
func TestPublishFloodShedsByDeliveryDelay(t *testing.T) {
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.IPConnectionsPerSecond = -1 // every subscriber comes from 127.0.0.1
		c.OutboundBudgetMB = -1       // only the delay rule applies
		c.WriteQueueKB = 64 << 10
		c.SaturationDelay = time.Millisecond
	})
	const subscribers = 200
	d := websocket.Dialer{NetDial: func(network, a string) (net.Conn, error) {
		nc, err := net.Dial(network, a)
		if err == nil {
			_ = nc.(*net.TCPConn).SetReadBuffer(4096)
		}
		return nc, err
	}}
	var got [subscribers]atomic.Int64
	var readers sync.WaitGroup
	// Registered before the connections' Close: cleanups run last first.
	t.Cleanup(readers.Wait)
	var cut atomic.Int64
	for i := range subscribers {
		c, _, err := d.Dial("ws://"+addr+"/app/app-key?protocol=7", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, _, err := established(c); err != nil {
			t.Fatal(err)
		}
		if err := subscribeTo(c, "flood", ""); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Time{})
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, b, err := c.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						cut.Add(1)
					}
					return
				}
				if strings.Contains(string(b), `"event":"ev"`) {
					got[i].Add(1)
				}
			}
		}()
	}
	testwait.For(t, 20*time.Second, "the subscriptions", func() bool {
		n := 0
		srv.hub.EachLocalChannel(func(_, ch string, subs int) {
			if ch == "flood" {
				n = subs
			}
		})
		return n == subscribers
	})

	client := &http.Client{Timeout: 10 * time.Second}
	body, _ := json.Marshal(map[string]any{"name": "ev", "channel": "flood", "data": strings.Repeat("x", 200)})
	var accepted, refused, requests atomic.Int64
	var bad atomic.Value
	var pubs sync.WaitGroup
	for range 4 {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for refused.Load() < 20 && requests.Add(1) <= 20000 && bad.Load() == nil {
				path := "/apps/app-id/events"
				q := protocol.SignRequest("POST", path, nil, body, "app-key", "app-secret", time.Now())
				resp, err := client.Post("http://"+addr+path+"?"+q.Encode(), "application/json", strings.NewReader(string(body)))
				if err != nil {
					bad.Store(err.Error())
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					accepted.Add(1)
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "1" && strings.Contains(string(b), hub.LimitSaturationDelay):
					refused.Add(1)
				default:
					bad.Store(fmt.Sprintf("%d %q Retry-After %q", resp.StatusCode, b, resp.Header.Get("Retry-After")))
					return
				}
			}
		}()
	}
	pubs.Wait()
	if v := bad.Load(); v != nil {
		t.Fatalf("publish: %v", v)
	}
	if refused.Load() == 0 {
		t.Fatalf("%d publishes to %d subscribers, none refused", accepted.Load(), subscribers)
	}
	t.Logf("%d accepted, %d refused with 503", accepted.Load(), refused.Load())
	if n := srv.Refusals().Count("app-id", hub.LimitSaturationDelay); n != refused.Load() {
		t.Fatalf("%d refusals counted under saturation_delay, %d 503s seen", n, refused.Load())
	}
	if m := get(t, addr, "/metrics"); !strings.Contains(m, `herald_refusals_total{app="app-id",limit="saturation_delay"}`) {
		t.Fatal("/metrics lacks the saturation_delay refusals")
	}
	// Shedding at the API loses nothing that was accepted, and cuts no one.
	want := accepted.Load()
	testwait.For(t, 60*time.Second, "every accepted event at every subscriber", func() bool {
		for i := range got {
			if got[i].Load() < want {
				return false
			}
		}
		return true
	})
	for i := range got {
		if n := got[i].Load(); n != want {
			t.Fatalf("subscriber %d got %d events, %d accepted", i, n, want)
		}
	}
	if n := cut.Load(); n != 0 || srv.ws.ShedConnections() != 0 {
		t.Fatalf("%d subscribers cut, %d shed", n, srv.ws.ShedConnections())
	}
	// The flood is over: the signal clears and publishes pass.
	testwait.For(t, 10*time.Second, "the signal to clear", func() bool { return srv.ws.Saturation() == "" })
	trigger(t, addr, "flood", "after", "ok")
}

// Events ingested from Laravel's redis broadcaster obey the same signal as
// the HTTP API: while the node is saturated (here by bytes held for
// subscribers that do not read) a message waits up to a second, then is
// dropped, counted as result="saturated" and under the limit; once the
// node drains, messages are published again.
func TestIngestDropsWhileSaturated(t *testing.T) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	lp := "laravel_" + hex.EncodeToString(b) + "_database_"
	srv, addr, _ := startNode(t, func(c *config.Config) {
		c.OutboundBudgetMB = 4
		c.WriteQueueKB = 64 << 10 // only the budget applies
		app := config.DevApp()
		app.LaravelRedis = apps.LaravelRedis{URL: "redis://127.0.0.1:6379/0", Prefix: lp}
		c.Apps = []apps.App{app}
	})
	testwait.For(t, 10*time.Second, "ingesting", func() bool {
		return metricValue(t, addr, `herald_ingest_active{app="app-id"}`) == "1"
	})
	// Subscribers that do not read, with small receive buffers, and big
	// events until the node holds more than half its budget.
	stalled := stalledSubscribers(t, srv, addr, "firehose", 4)
	big, _ := json.Marshal(map[string]any{"name": "big", "channel": "firehose", "data": strings.Repeat("x", 60<<10)})
	for i := 0; srv.ws.Saturation() == ""; i++ {
		if i > 5000 {
			t.Fatalf("never saturated (%d bytes queued)", srv.ws.OutboundBytes())
		}
		if status, resp, err := apiPostRetry(addr, "/apps/app-id/events", string(big)); err != nil || (status != 200 && status != 503) {
			t.Fatalf("publish: %d %s %v", status, resp, err)
		}
	}
	if got := srv.ws.Saturation(); got != hub.LimitOutboundBudget {
		t.Fatalf("saturated by %q, want %q", got, hub.LimitOutboundBudget)
	}
	before := srv.Refusals().Count("app-id", hub.LimitOutboundBudget)

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	send := func(event string) {
		payload := fmt.Sprintf(`{"event":%q,"data":{"n":1,"socket":null},"socket":null}`, event)
		if err := rdb.Publish(context.Background(), lp+"news", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	send("dropped")
	testwait.For(t, 10*time.Second, "the message dropped as saturated", func() bool {
		return metricValue(t, addr, `herald_ingest_messages_total{app="app-id",result="saturated"}`) == "1"
	})
	if n := srv.Refusals().Count("app-id", hub.LimitOutboundBudget); n != before+1 {
		t.Fatalf("%d refusals under outbound_budget_mb, want %d", n, before+1)
	}

	// The stalled clients go, and their bytes with them: messages pass.
	for _, c := range stalled {
		c.Close()
	}
	testwait.For(t, 10*time.Second, "the queues to drain", func() bool { return srv.ws.Saturation() == "" })
	reader := dial(t, addr, "app-key")
	subscribe(t, reader, "news", "", "")
	readUntil(t, reader, protocol.EventSubscriptionSucceeded)
	send("passes")
	readUntil(t, reader, "passes")
	if v := metricValue(t, addr, `herald_ingest_messages_total{app="app-id",result="published"}`); v != "1" {
		t.Fatalf("published %q, want 1", v)
	}
}
