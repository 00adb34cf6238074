package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/hub"
)

func TestCloseCodesAreBounded(t *testing.T) {
	m := New(Options{})
	s := m.App("a")
	s.Opened()
	s.Closed(1000)
	s.Opened()
	s.Closed(4100)
	// A client picks its own close code: unknown ones share one label.
	for code := 3000; code < 3100; code++ {
		s.Opened()
		s.Closed(code)
	}
	if got := testutil.ToFloat64(m.closed.WithLabelValues("a", "1000")); got != 1 {
		t.Fatalf("1000: %v", got)
	}
	if got := testutil.ToFloat64(m.closed.WithLabelValues("a", "other")); got != 100 {
		t.Fatalf("other: %v", got)
	}
	if n := testutil.CollectAndCount(m.closed); n != 3 {
		t.Fatalf("%d close-code series, want 3", n)
	}
	if got := testutil.ToFloat64(m.connections.WithLabelValues("a")); got != 0 {
		t.Fatalf("connections %v after as many closes as opens", got)
	}
}

func TestRefusalsByLimit(t *testing.T) {
	m := New(Options{})
	m.App("a").Refused(4004)
	m.App("a").Refused(4100)
	m.App("").Refused(4001) // unknown key: not a limit
	m.Refused("a", "client_events_per_second")
	// Admission refusals are counted by code only; the limit behind one is
	// reported through Refused, once.
	err := testutil.CollectAndCompare(m.refusals, strings.NewReader(`
# HELP herald_refusals_total Connections, messages and HTTP API requests refused by a limit, by limit.
# TYPE herald_refusals_total counter
herald_refusals_total{app="a",limit="client_events_per_second"} 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.refusedConn.WithLabelValues("", "4001")); got != 1 {
		t.Fatalf("refused 4001: %v", got)
	}
}

func TestFanoutAndTotals(t *testing.T) {
	m := New(Options{})
	m.Fanout("a", hub.SourceAPI, 10, time.Millisecond)
	m.Fanout("a", hub.SourceClient, 2, time.Millisecond)
	m.Fanout("a", hub.SourceCluster, 0, time.Millisecond)
	m.App("a").Opened()
	got := m.Totals("a")
	if got != (AppTotals{Connections: 1, MessagesIn: 3, MessagesOut: 12}) {
		t.Fatalf("totals %+v", got)
	}
	if n := testutil.ToFloat64(m.msgsOut.WithLabelValues("a", "api")); n != 10 {
		t.Fatalf("api out %v", n)
	}
}

// The per-message and per-write paths must not allocate: they run for
// every event and every socket write.
func TestHotPathsDoNotAllocate(t *testing.T) {
	m := New(Options{})
	s := m.App("a")
	m.Fanout("a", hub.SourceAPI, 1, time.Microsecond) // create the series
	if n := testing.AllocsPerRun(1000, func() { m.Fanout("a", hub.SourceAPI, 100, time.Microsecond) }); n != 0 {
		t.Errorf("Fanout: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.BytesOut(1500) }); n != 0 {
		t.Errorf("BytesOut: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.BytesIn(100) }); n != 0 {
		t.Errorf("BytesIn: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.DeliveryLatency(300 * time.Microsecond) }); n != 0 {
		t.Errorf("DeliveryLatency: %v allocations", n)
	}
}

func TestChannelsCollectedWhenScraped(t *testing.T) {
	src := fakeChannels{{"a", "orders", 3}, {"a", "private-x", 2}, {"a", "private-y", 1}, {"b", "presence-room", 4}}
	m := New(Options{Channels: src})
	err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP herald_channels Channels with at least one subscriber on this node, by kind.
# TYPE herald_channels gauge
herald_channels{app="a",kind="private"} 2
herald_channels{app="a",kind="public"} 1
herald_channels{app="b",kind="presence"} 1
# HELP herald_subscriptions Channel subscriptions of this node's connections, by channel kind.
# TYPE herald_subscriptions gauge
herald_subscriptions{app="a",kind="private"} 3
herald_subscriptions{app="a",kind="public"} 3
herald_subscriptions{app="b",kind="presence"} 4
`), "herald_channels", "herald_subscriptions")
	if err != nil {
		t.Fatal(err)
	}
}

type fakeChannels []struct {
	app, name string
	n         int
}

func (f fakeChannels) EachLocalChannel(fn func(appID, channel string, subscribers int)) {
	for _, c := range f {
		fn(c.app, c.name, c.n)
	}
}

func TestRedisUpAndRoundTrips(t *testing.T) {
	var healthErr error
	m := New(Options{RedisHealthy: func() error { return healthErr }})
	up := func() float64 {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "herald_redis_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("herald_redis_up missing")
		return 0
	}
	if up() != 1 {
		t.Fatal("redis_up not 1 while healthy")
	}
	healthErr = errors.New("down")
	if up() != 0 {
		t.Fatal("redis_up not 0 while down")
	}
	m.redisDone("get", time.Millisecond, redis.Nil)
	m.redisDone("get", time.Millisecond, errors.New("i/o timeout"))
	m.redisDone("evalsha", time.Millisecond, nil)
	if got := testutil.ToFloat64(m.redisCmds.WithLabelValues("get", "ok")); got != 1 {
		t.Fatalf("get ok (redis.Nil is an answer): %v", got)
	}
	if got := testutil.ToFloat64(m.redisCmds.WithLabelValues("get", "error")); got != 1 {
		t.Fatalf("get error: %v", got)
	}
}

func TestHandlerServesTextFormat(t *testing.T) {
	m := New(Options{})
	m.App("a").Opened()
	if n, err := testutil.GatherAndCount(m.Registry(), "herald_connections"); err != nil || n != 1 {
		t.Fatalf("herald_connections: %d %v", n, err)
	}
	if m.Handler() == nil {
		t.Fatal("nil handler")
	}
}
