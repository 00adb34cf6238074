package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// metricValue reads one sample of a node's /metrics ("" when absent).
func metricValue(t *testing.T, addr, series string) string {
	t.Helper()
	for line := range strings.SplitSeq(get(t, addr, "/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Two nodes, one Laravel Redis: each message is ingested by one node and
// reaches every subscriber once, except the socket Laravel excluded; when
// the ingesting node stops, the other takes over.
func TestLaravelRedisIngestedOncePerCluster(t *testing.T) {
	shared := clusterConfig(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	lp := "laravel_" + hex.EncodeToString(b) + "_database_"
	cfg := func(c *config.Config) {
		shared(c)
		c.RedisLease = time.Second
		c.Apps[0].LaravelRedis = apps.LaravelRedis{URL: "redis://127.0.0.1:6379/0", Prefix: lp}
	}
	addrA, stopA := startServer(t, cfg)
	addrB, stopB := startServer(t, cfg)
	const active = `herald_ingest_active{app="app-id"}`
	var holder, other string
	var stopHolder func() error
	testwait.For(t, 10*time.Second, "one node ingesting", func() bool {
		a, b := metricValue(t, addrA, active) == "1", metricValue(t, addrB, active) == "1"
		switch {
		case a && !b:
			holder, other, stopHolder = addrA, addrB, stopA
		case b && !a:
			holder, other, stopHolder = addrB, addrA, stopB
		default:
			return false
		}
		return true
	})

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	send := func(event, socket string) {
		s := "null"
		if socket != "" {
			s = `"` + socket + `"`
		}
		payload := fmt.Sprintf(`{"event":%q,"data":{"n":1,"socket":%s},"socket":%s}`, event, s, s)
		if err := rdb.Publish(context.Background(), lp+"news", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sub := func(addr string) (*websocket.Conn, string) {
		c := dial(t, addr, "app-key")
		id := socketID(t, c)
		subscribe(t, c, "news", "", "")
		readUntil(t, c, protocol.EventSubscriptionSucceeded)
		return c, id
	}
	onHolder, _ := sub(holder)
	onOther, _ := sub(other)
	excluded, exID := sub(other)

	// count reads c until the event "marker" and counts "flash" before it.
	// One publisher and one Redis channel keep the order, so every flash
	// sent before the marker has arrived by then.
	count := func(c *websocket.Conn) int {
		n := 0
		for {
			f := read(t, c)
			switch f.Event {
			case "flash":
				if string(f.Data) != `"{\"n\":1}"` {
					t.Fatalf("data %s, want the JSON text without socket", f.Data)
				}
				n++
			case "marker":
				return n
			}
		}
	}
	send("flash", exID)
	send("marker", "")
	if n := count(onHolder); n != 1 {
		t.Fatalf("subscriber on the ingesting node got %d, want 1", n)
	}
	if n := count(onOther); n != 1 {
		t.Fatalf("subscriber on the other node got %d, want 1", n)
	}
	if n := count(excluded); n != 0 {
		t.Fatalf("the excluded socket got %d", n)
	}
	if v := metricValue(t, holder, `herald_ingest_messages_total{app="app-id",result="published"}`); v != "2" {
		t.Fatalf("ingesting node published %q, want 2", v)
	}
	if v := metricValue(t, other, `herald_ingest_messages_total{app="app-id",result="published"}`); v != "" {
		t.Fatalf("the other node published %q too", v)
	}

	// The ingesting node stops: the other takes over.
	if err := stopHolder(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the other node ingesting", func() bool { return metricValue(t, other, active) == "1" })
	send("flash", "")
	send("marker", "")
	if n := count(onOther); n != 1 {
		t.Fatalf("after takeover the subscriber got %d, want 1", n)
	}
	if n := count(excluded); n != 1 {
		t.Fatalf("after takeover the formerly excluded socket got %d, want 1", n)
	}
}
