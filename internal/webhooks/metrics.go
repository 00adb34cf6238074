package webhooks

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values.
const (
	resultSent    = "sent"    // answered 2xx
	resultRetried = "retried" // failed, scheduled again
	resultFailed  = "failed"  // given up: a final status, or the retry period spent
	resultDropped = "dropped" // refused by a bound (never attempted)
)

// metrics are the dispatcher's Prometheus collectors, per app. A nil
// *metrics records nothing.
type metrics struct {
	// requests counts attempts by outcome: sent, retried or failed.
	requests *prometheus.CounterVec
	// events counts the events that reached an end: sent, failed or dropped.
	events *prometheus.CounterVec
	// delivery is the time from a batch's first event to its 2xx.
	delivery *prometheus.HistogramVec
}

// deliveryBuckets span one batching window to a full retry period.
var deliveryBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// newMetrics creates the collectors and registers them on reg (nil: no
// metrics). intake reports the events waiting to be batched.
func newMetrics(reg prometheus.Registerer, intake func() float64) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_webhook_requests_total",
			Help: "Webhook requests by app and result: sent (2xx), retried (failed and scheduled again) or failed (given up).",
		}, []string{"app", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_webhook_events_total",
			Help: "Webhook events by app and result: sent, failed (their batch was given up) or dropped (refused by a queue bound or at shutdown).",
		}, []string{"app", "result"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_webhook_delivery_seconds",
			Help:    "Time from a webhook batch's first event to its 2xx answer, retries included, by app.",
			Buckets: deliveryBuckets,
		}, []string{"app"}),
	}
	cs := []prometheus.Collector{m.requests, m.events, m.delivery,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_webhook_intake_events",
			Help: "Webhook events waiting to be batched on this node.",
		}, intake)}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, r := range cs[:i] {
				reg.Unregister(r)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("webhooks: metrics already registered (one Dispatcher per registry): %w", err)
			}
			return nil, fmt.Errorf("webhooks: register metrics: %w", err)
		}
	}
	return m, nil
}

// appMetrics are one app's children of the collectors, looked up once
// (the statsSet keeps them with the app's counters).
type appMetrics struct {
	reqSent, reqRetried, reqFailed prometheus.Counter
	evSent, evFailed, evDropped    prometheus.Counter
	delivery                       prometheus.Observer
}

// forApp returns appID's children (nil when m is nil).
func (m *metrics) forApp(appID string) *appMetrics {
	if m == nil {
		return nil
	}
	return &appMetrics{
		reqSent:    m.requests.WithLabelValues(appID, resultSent),
		reqRetried: m.requests.WithLabelValues(appID, resultRetried),
		reqFailed:  m.requests.WithLabelValues(appID, resultFailed),
		evSent:     m.events.WithLabelValues(appID, resultSent),
		evFailed:   m.events.WithLabelValues(appID, resultFailed),
		evDropped:  m.events.WithLabelValues(appID, resultDropped),
		delivery:   m.delivery.WithLabelValues(appID),
	}
}
