package metrics

import "github.com/prometheus/client_golang/prometheus"

// ingestMetrics count what the Laravel redis ingestion (internal/ingest)
// does; Metrics implements ingest.Recorder with them.
type ingestMetrics struct {
	messages *prometheus.CounterVec
	active   *prometheus.GaugeVec
}

func newIngestMetrics(reg prometheus.Registerer) ingestMetrics {
	im := ingestMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ingest_messages_total",
			Help: "Messages received from Laravel's redis broadcaster, by result (published, not_json, bad_payload, too_large, invalid, rate_limited, disabled, saturated, failed)."}, []string{"app", "result"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "ingest_active",
			Help: "1 while this node is subscribed to the app's Laravel Redis (in a cluster, the node holding the app's ingest lease), else 0."}, []string{"app"}),
	}
	reg.MustRegister(im.messages, im.active)
	return im
}

// Message implements ingest.Recorder. Results come from a fixed list and
// apps from the store, so the label values are bounded.
func (m *Metrics) Message(appID, result string) {
	m.ingest.messages.WithLabelValues(appID, result).Inc()
}

// Ingesting implements ingest.Recorder.
func (m *Metrics) Ingesting(appID string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.ingest.active.WithLabelValues(appID).Set(v)
}
