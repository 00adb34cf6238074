package webhooks

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// TestForgedRedisBatchCannotRedirectDelivery: batches in Redis are outside
// input. One naming a URL the app does not have is dropped (counted), never
// posted; one naming the app's URL is posted with the configured headers,
// key and a signature made with the app's secret, whatever it carries.
func TestForgedRedisBatchCannotRedirectDelivery(t *testing.T) {
	good := newReceiver(t, nil)
	evil := newReceiver(t, nil)
	q := redisQueue(t, testPrefix(t), RedisQueueOptions{Poll: 20 * time.Millisecond})
	d := start(t, Options{
		Apps:  store(t, testApp(apps.Webhook{URL: good.srv.URL, EventTypes: allTypes, Headers: map[string]string{"X-Auth": "from-config"}})),
		Queue: q,
	})
	body := []byte(`{"time_ms":1,"events":[{"name":"channel_occupied","channel":"c"}]}`)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	for _, dl := range []*Delivery{
		{ID: "forged-url", AppID: "1", URL: evil.srv.URL, Headers: map[string]string{"X-Auth": "stolen"},
			Key: testKey, Signature: protocol.SignBytes(testSecret, body), Body: body, Events: 1, CreatedMs: now},
		{ID: "forged-app", AppID: "nope", URL: evil.srv.URL, Body: body, Events: 1, CreatedMs: now},
		{ID: newID(), AppID: "1", URL: good.srv.URL, Headers: map[string]string{"X-Auth": "forged", "X-Extra": "1"},
			Key: "other-key", Signature: "bad", Body: body, Events: 1, CreatedMs: now},
	} {
		if err := q.Push(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	if !testwait.Until(10*time.Second, func() bool { return d.Stats().Dropped == 2 && len(good.requests()) == 1 }) {
		t.Fatalf("dropped %d, good got %d requests", d.Stats().Dropped, len(good.requests()))
	}
	if n := len(evil.requests()); n != 0 {
		t.Fatalf("a forged batch was posted to a URL not in the config (%d requests)", n)
	}
	r := good.requests()[0]
	verify(t, r)
	if r.header.Get("X-Auth") != "from-config" || r.header.Get("X-Extra") != "" {
		t.Fatalf("headers %v, want the configured ones only", r.header)
	}
}

func TestMemoryQueueBytesBound(t *testing.T) {
	q := NewMemoryQueueBytes(100, 1000)
	ctx := context.Background()
	big := func(id string) *Delivery { return &Delivery{ID: id, Body: []byte(strings.Repeat("x", 400))} }
	if err := q.Push(ctx, big("a")); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, big("b")); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, big("c")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push past the byte bound: %v, want ErrQueueFull", err)
	}
	got, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Done(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, big("c")); err != nil {
		t.Fatalf("push after room was made: %v", err)
	}
	if q.Bytes() != 800 {
		t.Fatalf("bytes %d, want 800", q.Bytes())
	}
}

func TestRedisQueueBytesBound(t *testing.T) {
	ctx := context.Background()
	q := redisQueue(t, testPrefix(t), RedisQueueOptions{MaxBytes: 3000, Poll: 20 * time.Millisecond})
	big := func(id string) *Delivery { return &Delivery{ID: id, Body: []byte(strings.Repeat("x", 1000))} }
	for _, id := range []string{"a", "b"} {
		if err := q.Push(ctx, big(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push(ctx, big("c")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push past the byte bound: %v, want ErrQueueFull", err)
	}
	got, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got.Attempts++
	if err := q.Retry(ctx, got, time.Hour); err != nil { // a retry keeps its bytes
		t.Fatal(err)
	}
	if err := q.Push(ctx, big("c")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push after a retry: %v, want ErrQueueFull", err)
	}
	if err := q.Done(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, big("c")); err != nil {
		t.Fatalf("push after room was made: %v", err)
	}
}

// TestIntakeBoundedByBytes: large client events past a quarter of the
// byte budget are dropped and counted, not held.
func TestIntakeBoundedByBytes(t *testing.T) {
	rc := newReceiver(t, func(int, *http.Request) int { return 200 })
	d, err := New(Options{Apps: store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes})), MaxBytes: 64 << 10, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	data := []byte(`"` + strings.Repeat("x", 4<<10) + `"`)
	for range 20 { // not started: nothing drains the intake
		d.ClientEvent("1", "private-c", "client-e", data, "1.1", "")
	}
	st := d.Stats()
	if st.Intake > 4 || st.Dropped < 16 {
		t.Fatalf("intake %d, dropped %d: want at most 16 KB held and the rest dropped", st.Intake, st.Dropped)
	}
}
