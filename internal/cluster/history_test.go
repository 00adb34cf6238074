package cluster

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
	"github.com/redis/go-redis/v9"
)

// posEvent is a frame with its position, as a client reads it.
type posEvent struct {
	Event    string
	Channel  string
	Data     string
	Position *hub.Position
}

func (c *recConn) positioned(t *testing.T) []posEvent {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []posEvent
	for _, f := range c.frames {
		var m struct {
			Event, Channel, Data string
			Position             *struct {
				Epoch  string `json:"epoch"`
				Offset uint64 `json:"offset"`
			} `json:"position"`
		}
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		e := posEvent{Event: m.Event, Channel: m.Channel, Data: m.Data}
		if m.Position != nil {
			e.Position = &hub.Position{Epoch: m.Position.Epoch, Offset: m.Position.Offset}
		}
		out = append(out, e)
	}
	return out
}

func (cn *clusterNode) subscribeRecover(t *testing.T, app *apps.App, channel string, rec any) *recConn {
	t.Helper()
	conn := &recConn{}
	sess, err := cn.hub.Admit(context.Background(), conn, hub.ConnInfo{Key: app.Key})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"channel": channel}
	if rec != nil {
		data["recover"] = rec
	}
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": data})
	sess.HandleMessage(msg)
	return conn
}

// offsets returns the positions of the "ev" events received.
func offsets(es []posEvent) []hub.Position {
	var out []hub.Position
	for _, e := range es {
		if e.Event == "ev" && e.Position != nil {
			out = append(out, *e.Position)
		}
	}
	return out
}

func recoveryData(t *testing.T, es []posEvent) map[string]any {
	t.Helper()
	for _, e := range es {
		if e.Event == "herald:recovery" {
			var m map[string]any
			if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	return nil
}

// Two nodes on one Redis, both publishing on a channel with history: each
// node's subscribers get every offset once, in order, and a client that
// recovers on the other node, while both keep publishing, continues
// without gap or duplicate. Deleting the stream in Redis starts a new
// epoch, and a recovery against the old one is told so.
func TestHistoryOverRedis(t *testing.T) {
	p := testPrefix(t)
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", "key", "secret"
	a.History = []apps.HistoryRule{{Pattern: "orders-*", Size: 5000, TTL: time.Minute}}
	app := &a
	n1 := newClusterNode(t, testOptions(testRedis, p), app)
	n2 := newClusterNode(t, testOptions(testRedis, p), app)
	const ch = "orders-1"

	first := n1.subscribeRecover(t, app, ch, nil)
	testwait.For(t, 2*time.Second, "subscribed", func() bool { return first.has("subscription_succeeded") })
	epoch := first.positioned(t)[1].Position.Epoch
	if epoch == "" {
		t.Fatalf("no position on subscription_succeeded: %v", first.events())
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range []*clusterNode{n1, n2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = n.hub.Publish(ctx, app, hub.PublishRequest{Name: "ev", Channels: []string{ch}, Data: "x"})
			}
		}()
	}
	testwait.For(t, 5*time.Second, "100 events", func() bool { return len(offsets(first.positioned(t))) >= 100 })
	var recs []*recConn
	for i := range 6 {
		recs = append(recs, []*clusterNode{n1, n2}[i%2].subscribeRecover(t, app, ch, map[string]any{"epoch": epoch, "offset": 10 * i}))
	}
	for _, r := range recs {
		testwait.For(t, 5*time.Second, "recovery", func() bool { return r.has("herald:recovery") })
	}
	last := offsets(first.positioned(t))
	target := last[len(last)-1].Offset + 50
	testwait.For(t, 10*time.Second, "50 more", func() bool {
		o := offsets(recs[len(recs)-1].positioned(t))
		return len(o) > 0 && o[len(o)-1].Offset >= target
	})
	stop()
	wg.Wait()
	// A marker from each node after the publishers stopped: every
	// subscriber has everything once it has both.
	for _, n := range []*clusterNode{n1, n2} {
		if err := n.hub.Publish(context.Background(), app, hub.PublishRequest{Name: "ev", Channels: []string{ch}, Data: "marker"}); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]*recConn{first}, recs...)
	for _, c := range all {
		testwait.For(t, 5*time.Second, "markers", func() bool { return c.count("ev "+ch+" marker") == 2 })
	}
	top := offsets(first.positioned(t))
	for i, c := range all {
		want := uint64(1)
		if i > 0 {
			want = uint64(10*(i-1)) + 1
			if r := recoveryData(t, c.positioned(t)); r["recovered"] != true {
				t.Fatalf("subscriber %d: %v", i, r)
			}
		}
		for _, q := range offsets(c.positioned(t)) {
			if q.Epoch != epoch || q.Offset != want {
				t.Fatalf("subscriber %d: offset %d, want %d", i, q.Offset, want)
			}
			want++
		}
		if want-1 != top[len(top)-1].Offset {
			t.Fatalf("subscriber %d ended at %d, want %d", i, want-1, top[len(top)-1].Offset)
		}
	}

	// Redis loses the stream: a new epoch.
	rdb := redis.NewUniversalClient(redisOpts(testRedis))
	defer rdb.Close()
	if err := rdb.Del(context.Background(), keys{p: p}.histStream(app.ID, ch)).Err(); err != nil {
		t.Fatal(err)
	}
	lost := n2.subscribeRecover(t, app, ch, map[string]any{"epoch": epoch, "offset": top[len(top)-1].Offset})
	testwait.For(t, 2*time.Second, "recovery", func() bool { return lost.has("herald:recovery") })
	r := recoveryData(t, lost.positioned(t))
	pos, _ := r["position"].(map[string]any)
	if r["recovered"] != false || r["reason"] != "epoch_changed" || pos["epoch"] == epoch || pos["offset"] != float64(0) {
		t.Fatalf("after the stream was deleted: %v", r)
	}
	if err := n1.hub.Publish(context.Background(), app, hub.PublishRequest{Name: "ev", Channels: []string{ch}, Data: "new"}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 2*time.Second, "new epoch event", func() bool { return first.has("ev " + ch + " new") })
	o := offsets(first.positioned(t))
	if o[len(o)-1].Epoch != pos["epoch"] || o[len(o)-1].Offset != 1 {
		t.Fatalf("first event of the new epoch: %+v", o[len(o)-1])
	}
}

// What the history holds in Redis is measured per app: bytes and entries
// appear with the events, fall when a smaller rule trims a stream, and go
// to zero once the streams expire; in a Redis Cluster too (the app's keys
// share its slot).
func TestHistoryUsageInRedis(t *testing.T) {
	for _, setup := range []struct {
		name string
		opts func(t *testing.T) (*redis.UniversalOptions, string)
	}{
		{"single", func(t *testing.T) (*redis.UniversalOptions, string) { return redisOpts(testRedis), testPrefix(t) }},
		{"cluster", func(t *testing.T) (*redis.UniversalOptions, string) { return sharedCluster(t).Options(), freshPrefix() }},
	} {
		t.Run(setup.name, func(t *testing.T) {
			ro, p := setup.opts(t)
			b := startBroker(t, testOptionsOn(ro, p), "n1", func(hub.BrokerMessage) {})
			h := NewHistory(b)
			ctx := context.Background()
			usage := func() HistoryUsage {
				t.Helper()
				if err := h.SampleUsage(ctx); err != nil {
					t.Fatal(err)
				}
				return h.Usage()["app1"]
			}
			if u := usage(); u != (HistoryUsage{}) {
				t.Fatalf("before any event: %+v", u)
			}
			payload := make([]byte, 1000)
			for i := range payload {
				payload[i] = 'a' + byte(i%26)
			}
			long := apps.HistoryRule{Pattern: "*", Size: 50, TTL: time.Minute}
			for _, ch := range []string{"u-1", "u-2"} {
				for range 50 {
					if _, err := h.Append(ctx, long, hub.BrokerMessage{AppID: "app1", Channel: ch, Payload: payload}); err != nil {
						t.Fatal(err)
					}
				}
			}
			full := usage()
			if full.Streams != 2 || full.Entries != 100 || full.Bytes < 100*1000 {
				t.Fatalf("after 2 x 50 events of 1000 bytes: %+v", full)
			}
			if _, ok := h.Usage()["other"]; ok {
				t.Fatal("an app this node never saw is measured")
			}

			// A smaller size trims u-1 to 5 events.
			if _, err := h.Append(ctx, apps.HistoryRule{Pattern: "*", Size: 5, TTL: time.Minute}, hub.BrokerMessage{AppID: "app1", Channel: "u-1", Payload: payload}); err != nil {
				t.Fatal(err)
			}
			trimmed := usage()
			if trimmed.Streams != 2 || trimmed.Entries != 55 || trimmed.Bytes >= full.Bytes-40*1000 {
				t.Fatalf("after trimming u-1 to 5 events: %+v, was %+v", trimmed, full)
			}

			// A short ttl: both streams expire, and the measure goes to 0.
			short := apps.HistoryRule{Pattern: "*", Size: 50, TTL: 200 * time.Millisecond}
			for _, ch := range []string{"u-1", "u-2"} {
				if _, err := h.Append(ctx, short, hub.BrokerMessage{AppID: "app1", Channel: ch, Payload: payload}); err != nil {
					t.Fatal(err)
				}
			}
			rdb := redis.NewUniversalClient(ro)
			defer rdb.Close()
			k := keys{p: p, sharded: b.k.sharded}
			testwait.For(t, 5*time.Second, "streams expired", func() bool {
				n, err := rdb.Exists(ctx, k.histStream("app1", "u-1")).Result()
				m, err2 := rdb.Exists(ctx, k.histStream("app1", "u-2")).Result()
				return err == nil && err2 == nil && n+m == 0
			})
			if u := usage(); u != (HistoryUsage{}) {
				t.Fatalf("after the streams expired: %+v", u)
			}
		})
	}
}
