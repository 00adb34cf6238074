package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

// allFamilies returns the names of every herald_ metric, each touched once
// so that it is gathered.
func allFamilies(t *testing.T) map[string]bool {
	t.Helper()
	m := New(Options{Channels: fakeChannels{{"a", "orders", 1}}, RedisHealthy: func() error { return nil }, Outbound: fakeOutbound{}, Repairs: func() hub.RepairCounts { return hub.RepairCounts{} }, RedisReplicaWaits: func() (uint64, uint64) { return 0, 0 }, FlooderReconnects: func() int64 { return 0 },
		MemoryHistory: func() MemoryHistoryStats { return MemoryHistoryStats{} }, RedisHistory: func() (uint64, uint64) { return 0, 0 },
		RedisHistoryUsage: func() map[string]RedisHistoryUsage { return map[string]RedisHistoryUsage{"a": {}} }})
	m.Recovery("a", "recovered", 3)
	s := m.App("a")
	s.Opened()
	s.Closed(1000)
	s.Refused(4004)
	m.Refused("a", "max_connections")
	s.SlowConsumer()
	s.BytesIn(1)
	s.BytesOut(1)
	s.DeliveryLatency(time.Millisecond)
	m.Fanout("a", hub.SourceAPI, 1, time.Millisecond)
	m.Request("a", "POST /apps/{id}/events", 200, time.Millisecond)
	m.Observer().MemberAdded("a", "presence-x", "1")
	m.redisDone("get", time.Millisecond, nil)
	m.Message("a", "published")
	m.Ingesting("a", true)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bool)
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "herald_") {
			out[mf.GetName()] = true
		}
	}
	return out
}

var metricName = regexp.MustCompile(`herald_[a-z_]+`)

func referenced(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bool)
	for _, n := range metricName.FindAllString(string(b), -1) {
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			n = strings.TrimSuffix(n, suf)
		}
		out[n] = true
	}
	return out
}

// docs/monitoring.md lists every metric, and names none that is gone.
func TestMonitoringDocListsEveryMetric(t *testing.T) {
	have := allFamilies(t)
	doc := referenced(t, "../../docs/monitoring.md")
	for n := range have {
		if !doc[n] {
			t.Errorf("%s is not in docs/monitoring.md", n)
		}
	}
	for n := range doc {
		// Webhook and apps-store metrics are registered by their owners
		// (internal/webhooks, internal/server) on the node's registry;
		// tests read them from /metrics (server tests; e2e apps-store).
		if !have[n] && !strings.HasPrefix(n, "herald_webhook") && !strings.HasPrefix(n, "herald_apps_store") {
			t.Errorf("docs/monitoring.md names %s, which does not exist", n)
		}
	}
}

// The Grafana dashboard queries only metrics that exist.
func TestGrafanaDashboardUsesExistingMetrics(t *testing.T) {
	have := allFamilies(t)
	used := referenced(t, "../../deploy/grafana/herald.json")
	if len(used) < 10 {
		t.Fatalf("the dashboard uses only %d metrics", len(used))
	}
	for n := range used {
		// Webhook and apps-store metrics are registered by their owners
		// (internal/webhooks, internal/server) on the node's registry;
		// tests read them from /metrics (server tests; e2e apps-store).
		if !have[n] && !strings.HasPrefix(n, "herald_webhook") && !strings.HasPrefix(n, "herald_apps_store") {
			t.Errorf("deploy/grafana/herald.json queries %s, which does not exist", n)
		}
	}
}

type fakeOutbound struct{}

func (fakeOutbound) OutboundBytes() int64   { return 1 }
func (fakeOutbound) OutboundBudget() int64  { return 2 }
func (fakeOutbound) ShedConnections() int64 { return 3 }
