package webhooks

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// redisQueue returns a RedisQueue on the local Redis under a prefix of its
// own, removed at the end of the test. Tests are skipped without Redis.
func redisQueue(t *testing.T, prefix string, opt RedisQueueOptions) *RedisQueue {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is required: %v", err)
	}
	opt.Client = rdb
	opt.Prefix = prefix
	q, err := NewRedisQueue(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), q.due, q.data, q.bytes) })
	return q
}

func testPrefix(t *testing.T) string {
	return "herald-test:" + t.Name() + ":" + newID()[:8] + ":"
}

func TestRedisQueueLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := redisQueue(t, testPrefix(t), RedisQueueOptions{Limit: 2, Poll: 20 * time.Millisecond})
	a := &Delivery{ID: "a", AppID: "1", URL: "http://127.0.0.1/x", Headers: map[string]string{"X": "y"},
		Key: "k", Signature: "s", Body: []byte(`{"time_ms":1,"events":[]}`), Events: 1, CreatedMs: 1}
	if err := q.Push(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, &Delivery{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, &Delivery{ID: "c"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third push: %v, want ErrQueueFull", err)
	}
	got, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a" || string(got.Body) != string(a.Body) || got.Headers["X"] != "y" || got.Signature != "s" {
		t.Fatalf("got %+v", got)
	}
	got.Attempts = 1
	if err := q.Retry(ctx, got, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b, err := q.Next(ctx) // a is not due yet
	if err != nil || b.ID != "b" {
		t.Fatalf("next: %v %v", b, err)
	}
	if err := q.Done(ctx, b); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	again, err := q.Next(ctx)
	if err != nil || again.ID != "a" || again.Attempts != 1 {
		t.Fatalf("next: %+v %v", again, err)
	}
	if waited := time.Since(began); waited < 50*time.Millisecond {
		t.Errorf("retried batch came back after %v", waited)
	}
	if err := q.Done(ctx, again); err != nil {
		t.Fatal(err)
	}
	// A stale Retry (the batch was settled elsewhere) does not revive it.
	if err := q.Retry(ctx, again, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Fatalf("len %d %v", n, err)
	}
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := q.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("next on empty queue: %v", err)
	}
}

// A batch leased by a node that died comes back to another after the lease.
func TestRedisQueueLeaseExpires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	dead := redisQueue(t, prefix, RedisQueueOptions{Lease: 300 * time.Millisecond, Poll: 20 * time.Millisecond})
	alive := redisQueue(t, prefix, RedisQueueOptions{Lease: 300 * time.Millisecond, Poll: 20 * time.Millisecond})
	if err := dead.Push(ctx, &Delivery{ID: "z", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if d, err := dead.Next(ctx); err != nil || d.ID != "z" {
		t.Fatalf("%v %v", d, err)
	}
	// The "dead" node never settles it.
	began := time.Now()
	d, err := alive.Next(ctx)
	if err != nil || d.ID != "z" {
		t.Fatalf("%v %v", d, err)
	}
	if waited := time.Since(began); waited < 200*time.Millisecond {
		t.Errorf("taken over after %v, before the lease ended", waited)
	}
}

// Batches flushed by a node that stops while the endpoint is down are
// delivered by the next node, with the same id and body.
func TestRedisPendingSurvivesRestart(t *testing.T) {
	var up atomic.Bool
	rc := newReceiver(t, func(int, *http.Request) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	prefix := testPrefix(t)
	st := store(t, testApp(apps.Webhook{URL: rc.srv.URL, EventTypes: allTypes}))

	first, err := New(Options{Apps: st, Window: time.Hour, RetryBase: 50 * time.Millisecond, Logger: quietLogger(),
		Queue: redisQueue(t, prefix, RedisQueueOptions{Poll: 20 * time.Millisecond})})
	if err != nil {
		t.Fatal(err)
	}
	first.Start(context.Background())
	for i := range 3 {
		first.SubscriptionCount("1", "c", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil { // durable: returns once flushed
		t.Fatal(err)
	}
	q2 := redisQueue(t, prefix, RedisQueueOptions{Poll: 20 * time.Millisecond})
	if n, _ := q2.Len(ctx); n != 1 {
		t.Fatalf("%d batches in Redis after Close, want 1", n)
	}

	up.Store(true)
	second := start(t, Options{Apps: st, Queue: q2})
	evs := rc.waitEvents(3, 5*time.Second)
	for i, e := range evs {
		if e["subscription_count"].(float64) != float64(i) {
			t.Errorf("event %d: %v", i, e)
		}
	}
	ids := map[string]string{}
	for _, r := range rc.requests() {
		verify(t, r)
		id := r.header.Get("X-Herald-Batch-Id")
		if prev, ok := ids[id]; ok && prev != string(r.body) {
			t.Errorf("batch %s changed body between nodes", id)
		}
		ids[id] = string(r.body)
	}
	if len(ids) != 1 {
		t.Errorf("%d batch ids, want 1", len(ids))
	}
	testwait.For(t, 10*time.Second, "the dispatcher's state", func() bool { n, _ := q2.Len(ctx); return n == 0 && second.Stats().Sent == 1 })
}
