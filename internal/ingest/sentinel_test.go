package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/redistest"
	"github.com/herald-ws/herald/internal/testwait"
)

// Laravel's Redis behind Redis Sentinel (laravel_redis.mode: sentinel, the
// URL naming the sentinels as redis_url does): ingestion follows the
// primary, also to the replica promoted after the primary is killed.
func TestIngestSentinel(t *testing.T) {
	s, err := redistest.StartSentinel(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	p := randomPrefix(t)
	a := testApp("a1", p)
	a.LaravelRedis.URL, a.LaravelRedis.Mode = s.URL(), "sentinel"
	r := startRig(t, []apps.App{a}, nil)
	r.waitActive(t, "a1")
	// Laravel's side: a Sentinel client too.
	pub := redis.NewUniversalClient(s.Options())
	defer pub.Close()
	ctx := context.Background()
	if err := pub.Publish(ctx, p+"news", laravelPayload("one", `"a":1`, "")).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "published through the primary", func() bool { return len(r.pub.list()) == 1 })

	s.Primary.Kill()
	testwait.For(t, 30*time.Second, "a replica promoted", func() bool {
		addr, err := s.PrimaryAddr(ctx)
		return err == nil && addr == s.Replica.Addr()
	})
	// Published until ingested: the ingester may subscribe on the new
	// primary after Laravel's first publishes there (pub/sub keeps nothing).
	testwait.For(t, 20*time.Second, "published through the promoted replica", func() bool {
		_ = pub.Publish(ctx, p+"news", laravelPayload("two", `"a":2`, "")).Err()
		for _, req := range r.pub.list() {
			if req.Name == "two" {
				return true
			}
		}
		return false
	})
}
