package hub

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The State contract itself (counts, presence, cache, concurrency) is
// internal/cluster/statetest, run there against this State and Redis's.

func TestMemoryStateCacheCleanup(t *testing.T) {
	clk := newClock()
	s := NewMemoryState(clk.Now).(*memState)
	ctx := context.Background()
	for i := range 5000 {
		s.SetCache(ctx, "a", fmt.Sprintf("cache-%d", i), CachedEvent{Event: "e"}, time.Second)
		clk.Advance(10 * time.Millisecond)
	}
	if n := len(s.apps["a"].cache); n > 2048 {
		t.Fatalf("%d cache entries kept, most of them expired", n)
	}
	if s := NewMemoryState(nil); s == nil {
		t.Fatal("nil clock")
	}
}
