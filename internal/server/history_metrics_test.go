package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
)

// TestHistoryRedisGaugesOnMetrics: in a cluster, what an app's history
// holds in Redis reaches /metrics (the node's measure, wired from the
// engine's History to the metrics collector).
func TestHistoryRedisGaugesOnMetrics(t *testing.T) {
	cluster := clusterConfig(t)
	srv, addr, _ := startNode(t, func(c *config.Config) {
		cluster(c)
		c.Apps[0].History = []apps.HistoryRule{{Pattern: "orders-*", Size: 100, TTL: time.Minute}}
	})
	for i := range 5 {
		trigger(t, addr, "orders-1", "shipped", fmt.Sprintf(`{"n":%d}`, i))
	}
	if srv.redisHistory == nil {
		t.Fatal("a cluster node has no Redis history")
	}
	// The node measures every usageEvery (15 s); measure now instead.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.redisHistory.SampleUsage(ctx); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, "http://"+addr+"/metrics")
	if got := m[`herald_history_redis_streams{app="app-id"}`]; got != 1 {
		t.Errorf("herald_history_redis_streams = %v, want 1", got)
	}
	if got := m[`herald_history_redis_entries{app="app-id"}`]; got != 5 {
		t.Errorf("herald_history_redis_entries = %v, want 5", got)
	}
	if got := m[`herald_history_redis_bytes{app="app-id"}`]; got <= 0 {
		t.Errorf("herald_history_redis_bytes = %v, want the streams' memory", got)
	}
}
