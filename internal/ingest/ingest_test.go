package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

const testRedis = "redis://127.0.0.1:6379/0"

// fakePublisher records what would reach the hub.
type fakePublisher struct {
	mu  sync.Mutex
	got []hub.PublishRequest
	err error
}

func (f *fakePublisher) Publish(_ context.Context, _ *apps.App, req hub.PublishRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.got = append(f.got, req)
	return nil
}

func (f *fakePublisher) list() []hub.PublishRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.PublishRequest(nil), f.got...)
}

// counts is a Recorder and Refusals.
type counts struct {
	mu       sync.Mutex
	results  map[string]int
	refused  map[string]int
	active   map[string]bool
	messages int
}

func newCounts() *counts {
	return &counts{results: map[string]int{}, refused: map[string]int{}, active: map[string]bool{}}
}

func (c *counts) Message(appID, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results[result]++
	c.messages++
}

func (c *counts) Ingesting(appID string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active[appID] = on
}

func (c *counts) Refused(appID, limit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused[limit]++
}

func (c *counts) get(result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results[result]
}

func (c *counts) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.messages
}

func randomPrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "test_" + hex.EncodeToString(b[:]) + "_"
}

func testApp(id, prefix string) apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = id, id+"-key", "s"
	a.LaravelRedis = apps.LaravelRedis{URL: testRedis, Prefix: prefix}
	return a
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	ro, err := redis.ParseURL(testRedis)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(ro)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis at %s is required: %v", testRedis, err)
	}
	return c
}

// logBuffer collects log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type rig struct {
	in    *Ingester
	pub   *fakePublisher
	cnt   *counts
	logs  *logBuffer
	rdb   *redis.Client
	store *apps.Static
}

func startRig(t *testing.T, list []apps.App, edit func(o *Options)) *rig {
	t.Helper()
	r := &rig{pub: &fakePublisher{}, cnt: newCounts(), logs: &logBuffer{}, rdb: redisClient(t)}
	var err error
	r.store, err = apps.NewStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Apps: r.store, Publisher: r.pub, Recorder: r.cnt, Refusals: r.cnt,
		Logger: slog.New(slog.NewTextHandler(r.logs, nil))}
	if edit != nil {
		edit(&o)
	}
	r.in, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.in.Start()
	t.Cleanup(r.in.Close)
	return r
}

// waitActive waits until the app's subscription is confirmed by Redis.
func (r *rig) waitActive(t *testing.T, appID string) {
	t.Helper()
	testwait.For(t, 10*time.Second, appID+" subscribed", func() bool {
		for _, id := range r.in.Ingesting() {
			if id == appID {
				return true
			}
		}
		return false
	})
}

func (r *rig) publish(t *testing.T, channel, payload string) {
	t.Helper()
	if err := r.rdb.Publish(context.Background(), channel, payload).Err(); err != nil {
		t.Fatal(err)
	}
}

// laravelPayload is what RedisBroadcaster::broadcast sends.
func laravelPayload(event, data, socket string) string {
	s := "null"
	if socket != "" {
		s = `"` + socket + `"`
	}
	return fmt.Sprintf(`{"event":%q,"data":{%s,"socket":%s},"socket":%s}`, event, data, s, s)
}

func TestIngestPublishes(t *testing.T) {
	p := randomPrefix(t)
	r := startRig(t, []apps.App{testApp("a1", p)}, nil)
	r.waitActive(t, "a1")
	r.publish(t, p+"private-orders.1", laravelPayload(`App\Events\OrderShipped`, `"id":7`, "123.456"))
	r.publish(t, p+"news", laravelPayload("Plain", `"x":"y"`, ""))
	testwait.For(t, 5*time.Second, "two published", func() bool { return len(r.pub.list()) == 2 })
	got := r.pub.list()
	want := []hub.PublishRequest{
		{Name: `App\Events\OrderShipped`, Channels: []string{"private-orders.1"}, Data: `{"id":7}`, ExceptSocketID: "123.456"},
		{Name: "Plain", Channels: []string{"news"}, Data: `{"x":"y"}`},
	}
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("published[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if r.cnt.get(ResultPublished) != 2 {
		t.Errorf("published count = %d", r.cnt.get(ResultPublished))
	}
	// Another app's prefix, or no prefix, is not this app's.
	r.publish(t, "other_news", laravelPayload("X", `"a":1`, ""))
	r.publish(t, p+"news", laravelPayload("Last", `"a":1`, ""))
	testwait.For(t, 5*time.Second, "third published", func() bool { return len(r.pub.list()) == 3 })
	if n := r.cnt.total(); n != 3 {
		t.Errorf("messages seen = %d, want 3 (a foreign prefix was read)", n)
	}
}

func TestIngestBadPayloads(t *testing.T) {
	p := randomPrefix(t)
	a := testApp("a1", p)
	a.MaxEventPayloadKB = 1
	a.MaxEventNameLength = 20
	r := startRig(t, []apps.App{a}, func(o *Options) { o.LogEvery = time.Hour })
	r.waitActive(t, "a1")
	bad := []struct{ channel, payload, result string }{
		{p + "c", "not json at all", ResultNotJSON},
		{p + "c", `{"event":"e","data":{"a":`, ResultNotJSON},
		{p + "c", `{"data":{"a":1}}`, ResultBadPayload},
		{p + "c", `{"event":["e"],"data":{}}`, ResultBadPayload},
		{p + "c", `{"event":"e","data":"string"}`, ResultBadPayload},
		{p + "c", `{"event":"e","data":{},"socket":5}`, ResultBadPayload},
		{p + "c", laravelPayload("e", `"big":"`+strings.Repeat("x", 1100)+`"`, ""), ResultTooLarge},
		{p + "c", laravelPayload("e", `"huge":"`+strings.Repeat("x", 200<<10)+`"`, ""), ResultTooLarge},
		{p + "bad channel", laravelPayload("e", `"a":1`, ""), ResultInvalid},
		{p + "", laravelPayload("e", `"a":1`, ""), ResultInvalid},
		{p + "c", laravelPayload(strings.Repeat("n", 21), `"a":1`, ""), ResultInvalid},
		{p + "c", laravelPayload("", `"a":1`, ""), ResultInvalid},
		{p + "c", laravelPayload("e", `"a":1`, "not-a-socket"), ResultInvalid},
	}
	for _, b := range bad {
		r.publish(t, b.channel, b.payload)
	}
	// A good message after the bad ones: nothing stopped the subscription.
	r.publish(t, p+"c", laravelPayload("good", `"a":1`, ""))
	testwait.For(t, 10*time.Second, "every message handled", func() bool { return r.cnt.total() == len(bad)+1 })
	want := map[string]int{ResultPublished: 1}
	for _, b := range bad {
		want[b.result]++
	}
	for res, n := range want {
		if got := r.cnt.get(res); got != n {
			t.Errorf("%s = %d, want %d", res, got, n)
		}
	}
	if got := r.pub.list(); len(got) != 1 || got[0].Name != "good" {
		t.Errorf("published %+v, want only the good one", got)
	}
	r.cnt.mu.Lock()
	if r.cnt.refused[hub.LimitEventPayload] != 2 || r.cnt.refused[hub.LimitEventNameLength] != 1 {
		t.Errorf("refusals = %v", r.cnt.refused)
	}
	r.cnt.mu.Unlock()
	// Logged once (LogEvery is an hour), not once per bad message.
	if n := strings.Count(r.logs.String(), "message not published"); n != 1 {
		t.Errorf("%d log lines for %d bad messages, want 1:\n%s", n, len(bad), r.logs.String())
	}
}

func TestIngestRateLimitShared(t *testing.T) {
	p := randomPrefix(t)
	a := testApp("a1", p)
	a.MaxBackendEventsPerSecond = 3
	limits := new(hub.RateLimits)
	now := time.Unix(1_800_000_000, 0)
	r := startRig(t, []apps.App{a}, func(o *Options) {
		o.RateLimits = limits
		o.Now = func() time.Time { return now } // the bucket never refills
	})
	// The HTTP API spent one token of the same bucket.
	if ok, _, _ := limits.Take("a1", hub.RateBackend, 3, 1, now); !ok {
		t.Fatal("first take refused")
	}
	r.waitActive(t, "a1")
	for i := range 4 {
		r.publish(t, p+"c", laravelPayload(fmt.Sprint("e", i), `"a":1`, ""))
	}
	testwait.For(t, 5*time.Second, "four handled", func() bool { return r.cnt.total() == 4 })
	if got, lim := r.cnt.get(ResultPublished), r.cnt.get(ResultRateLimited); got != 2 || lim != 2 {
		t.Fatalf("published %d, rate limited %d; want 2 and 2", got, lim)
	}
}

func TestIngestDisabledAppAndPublishFailure(t *testing.T) {
	p := randomPrefix(t)
	a := testApp("a1", p)
	a.Enabled = false
	b := testApp("b1", p+"b_")
	r := startRig(t, []apps.App{a, b}, nil)
	r.waitActive(t, "a1")
	r.waitActive(t, "b1")
	r.pub.mu.Lock()
	r.pub.err = hub.ErrUnavailable
	r.pub.mu.Unlock()
	// p+"b_x" matches both patterns: each app sees it under its own prefix.
	r.publish(t, p+"b_x", laravelPayload("e", `"a":1`, ""))
	testwait.For(t, 5*time.Second, "both handled", func() bool { return r.cnt.total() == 2 })
	if r.cnt.get(ResultDisabled) != 1 || r.cnt.get(ResultFailed) != 1 {
		t.Fatalf("results = %v", r.cnt.results)
	}
}

// A Redis that goes away and comes back: the subscription returns by
// itself. The test runs its own redis-server so it can kill it.
func TestIngestReconnects(t *testing.T) {
	srv := startRedisServer(t)
	p := randomPrefix(t)
	a := testApp("a1", p)
	a.LaravelRedis.URL = "redis://" + srv.addr + "/0"
	r := startRig(t, []apps.App{a}, nil)
	r.waitActive(t, "a1")
	pubc := redis.NewClient(&redis.Options{Addr: srv.addr})
	defer pubc.Close()
	if err := pubc.Publish(context.Background(), p+"c", laravelPayload("one", `"a":1`, "")).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "first published", func() bool { return len(r.pub.list()) == 1 })
	srv.stop(t)
	testwait.For(t, 10*time.Second, "inactive while Redis is down", func() bool { return len(r.in.Ingesting()) == 0 })
	srv.start(t)
	r.waitActive(t, "a1")
	if err := pubc.Publish(context.Background(), p+"c", laravelPayload("two", `"a":1`, "")).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "second published", func() bool { return len(r.pub.list()) == 2 })
	if !strings.Contains(r.logs.String(), "Laravel's Redis unreachable") || !strings.Contains(r.logs.String(), "Laravel's Redis is back") {
		t.Errorf("the outage was not logged:\n%s", r.logs.String())
	}
}

// Close stops every goroutine, also while Redis is unreachable.
func TestIngestCloseLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	a := testApp("a1", randomPrefix(t))
	a.LaravelRedis.URL = "redis://127.0.0.1:1/0" // nothing listens
	logs := &logBuffer{}
	in, err := New(Options{Apps: mustStatic(t, a), Publisher: &fakePublisher{}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	in.Start()
	testwait.For(t, 5*time.Second, "a failed connection", func() bool { return strings.Contains(logs.String(), "unreachable") })
	in.Close()
	testwait.Goroutines(t, 5*time.Second, before)
}

func mustStatic(t *testing.T, list ...apps.App) *apps.Static {
	t.Helper()
	s, err := apps.NewStatic(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
