package webhooks

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// Sent, retried, failed and dropped webhooks and the delivery latency, per
// app, with exact values.
func TestMetrics(t *testing.T) {
	ok := newReceiver(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	refuses := newReceiver(t, func(int, *http.Request) int { return http.StatusForbidden })
	base := time.UnixMilli(1700000000000)
	var clock atomic.Int64 // ms after base
	reg := prometheus.NewRegistry()
	d := start(t, Options{
		Apps: store(t, testApp(
			apps.Webhook{URL: ok.srv.URL, EventTypes: []string{"channel_occupied"}},
			apps.Webhook{URL: refuses.srv.URL, EventTypes: []string{"channel_vacated"}},
		)),
		Now:        func() time.Time { return base.Add(time.Duration(clock.Load()) * time.Millisecond) },
		Registerer: reg,
	})
	d.ChannelOccupied("1", "a")
	d.ChannelOccupied("1", "b")
	d.ChannelVacated("1", "c")
	clock.Store(3000) // delivered 3 s after the events, whatever the real time
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { st := d.Stats(); return st.Sent == 1 && st.Failed == 1 })

	const want = `
# HELP herald_webhook_events_total Webhook events by app and result: sent, failed (their batch was given up) or dropped (refused by a queue bound or at shutdown).
# TYPE herald_webhook_events_total counter
herald_webhook_events_total{app="1",result="dropped"} 0
herald_webhook_events_total{app="1",result="failed"} 1
herald_webhook_events_total{app="1",result="sent"} 2
# HELP herald_webhook_requests_total Webhook requests by app and result: sent (2xx), retried (failed and scheduled again) or failed (given up).
# TYPE herald_webhook_requests_total counter
herald_webhook_requests_total{app="1",result="failed"} 1
herald_webhook_requests_total{app="1",result="retried"} 1
herald_webhook_requests_total{app="1",result="sent"} 1
# HELP herald_webhook_delivery_seconds Time from a webhook batch's first event to its 2xx answer, retries included, by app.
# TYPE herald_webhook_delivery_seconds histogram
herald_webhook_delivery_seconds_bucket{app="1",le="0.1"} 0
herald_webhook_delivery_seconds_bucket{app="1",le="0.25"} 0
herald_webhook_delivery_seconds_bucket{app="1",le="0.5"} 0
herald_webhook_delivery_seconds_bucket{app="1",le="1"} 0
herald_webhook_delivery_seconds_bucket{app="1",le="2.5"} 0
herald_webhook_delivery_seconds_bucket{app="1",le="5"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="10"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="30"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="60"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="120"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="300"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="600"} 1
herald_webhook_delivery_seconds_bucket{app="1",le="+Inf"} 1
herald_webhook_delivery_seconds_sum{app="1"} 3
herald_webhook_delivery_seconds_count{app="1"} 1
# HELP herald_webhook_intake_events Webhook events waiting to be batched on this node.
# TYPE herald_webhook_intake_events gauge
herald_webhook_intake_events 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: "http://127.0.0.1:1", EventTypes: allTypes})),
		QueueSize: 2, Registerer: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // not started: nothing drains the intake
		d.CacheMiss("1", "cache-a")
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP herald_webhook_intake_events Webhook events waiting to be batched on this node.
# TYPE herald_webhook_intake_events gauge
herald_webhook_intake_events 2
`), "herald_webhook_intake_events"); err != nil {
		t.Fatal(err)
	}
	_ = d.Close(context.Background()) // counts the 2 left in the intake
	if got := testutil.ToFloat64(d.stats.m.events.WithLabelValues("1", resultDropped)); got != 5 {
		t.Errorf("dropped = %v, want 5", got)
	}
	if got := testutil.ToFloat64(d.stats.m.requests.WithLabelValues("1", resultSent)); got != 0 {
		t.Errorf("sent = %v, want 0", got)
	}
}

// No registerer, no metrics; one registry takes one dispatcher.
func TestMetricsRegistration(t *testing.T) {
	s := store(t, testApp())
	d, err := New(Options{Apps: s})
	if err != nil || d.stats.m != nil {
		t.Fatalf("without a registerer: %v, metrics %v", err, d.stats.m)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Apps: s, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Apps: s, Registerer: reg})
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second dispatcher on one registry: %v", err)
	}
	// The failed registration left the first one's collectors in place.
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 1 {
		t.Errorf("gathered %d series (%v), want the intake gauge alone", n, err)
	}
}

// A target's batch_size, timeout and retry_for override the dispatcher's.
func TestTargetOverrides(t *testing.T) {
	single := newReceiver(t, nil)
	hangs := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			<-r.Context().Done()
			return http.StatusGatewayTimeout
		}
		return http.StatusOK
	})
	broken := newReceiver(t, func(int, *http.Request) int { return http.StatusBadGateway })
	d := start(t, Options{
		Apps: store(t, testApp(
			apps.Webhook{URL: single.srv.URL, EventTypes: []string{"subscription_count"}, BatchSize: 1},
			apps.Webhook{URL: hangs.srv.URL, EventTypes: []string{"channel_occupied"}, Timeout: 200 * time.Millisecond},
			apps.Webhook{URL: broken.srv.URL, EventTypes: []string{"channel_vacated"}, RetryFor: 300 * time.Millisecond},
		)),
		Window: 200 * time.Millisecond, MaxBatch: 20, Timeout: time.Minute, RetryFor: time.Hour,
	})
	for i := range 3 {
		d.SubscriptionCount("1", "c", i)
	}
	d.ChannelOccupied("1", "o")
	d.ChannelVacated("1", "v")
	single.waitEvents(3, 5*time.Second)
	if n := len(single.requests()); n != 3 {
		t.Errorf("batch_size 1: %d requests for 3 events", n)
	}
	// Cut at 200 ms and retried, well before the dispatcher's minute.
	hangs.waitEvents(1, 5*time.Second)
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { return d.Stats().Failed == 1 })
	if n := len(broken.requests()); n < 2 {
		t.Errorf("%d attempts before giving up, want retries first", n)
	}
}

// A batch's own timeout and retry period are used only within bounds (a
// batch read back from Redis is outside input).
func TestBatchSettingsBounded(t *testing.T) {
	d := &Dispatcher{opt: Options{Timeout: 4 * time.Second, RetryFor: 5 * time.Minute}}
	for _, c := range []struct {
		timeoutMs, retryMs int64
		timeout, retry     time.Duration
	}{
		{0, 0, 4 * time.Second, 5 * time.Minute},
		{1500, 60000, 1500 * time.Millisecond, time.Minute},
		{-1, -1, 4 * time.Second, 5 * time.Minute},
		{1 << 62, 1 << 62, 4 * time.Second, 5 * time.Minute},
	} {
		dl := &Delivery{TimeoutMs: c.timeoutMs, RetryForMs: c.retryMs}
		if got := d.timeout(dl); got != c.timeout {
			t.Errorf("timeout(%d) = %v, want %v", c.timeoutMs, got, c.timeout)
		}
		if got := d.retryFor(dl); got != c.retry {
			t.Errorf("retryFor(%d) = %v, want %v", c.retryMs, got, c.retry)
		}
	}
}
