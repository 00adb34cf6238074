package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

// A stream of one-off cache channels does not grow the map for ever:
// expired entries are dropped, live ones kept.
func TestStateCacheCleanup(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewState(func() time.Time { return now })
	ctx := context.Background()
	const n, step, ttl = 5000, 10 * time.Millisecond, time.Second
	for i := range n {
		if err := s.SetCache(ctx, "a", fmt.Sprintf("cache-%d", i), hub.CachedEvent{Event: "e"}, ttl); err != nil {
			t.Fatal(err)
		}
		now = now.Add(step)
	}
	// At most a sweep's worth is kept: the live entries (ttl/step) and
	// what expired since the last sweep.
	if kept := len(s.apps["a"].cache); kept > cacheSweepEvery {
		t.Fatalf("%d cache entries kept, at most %d expected", kept, cacheSweepEvery)
	}
	for i := n - int(ttl/step) + 1; i < n; i++ {
		if _, _, ok, _ := s.Cache(ctx, "a", fmt.Sprintf("cache-%d", i)); !ok {
			t.Fatalf("live entry cache-%d dropped", i)
		}
	}
}
