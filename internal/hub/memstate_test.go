package hub

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

func TestMemoryState(t *testing.T) {
	clk := newClock()
	testStateContract(t, func() (State, func(time.Duration)) { return NewMemoryState(clk.Now), clk.Advance })
}

// testStateContract checks the State contract written in interfaces.go. It
// is written against the interface only, so that a shared State (Redis)
// can run it too once it moves to a package both can import.
func testStateContract(t *testing.T, mk func() (State, func(time.Duration))) {
	ctx := context.Background()
	member := func(id string) *protocol.Member {
		return &protocol.Member{ID: id, RawID: protocol.AppendString(nil, id), Info: []byte(`{"n":"` + id + `"}`)}
	}

	t.Run("counts", func(t *testing.T) {
		s, _ := mk()
		r, err := s.Subscribe(ctx, "a", "room", "1.1", nil, 0)
		if err != nil || !r.Added || r.Count != 1 || r.FirstForUser || r.Members != nil {
			t.Fatalf("first: %+v %v", r, err)
		}
		r, _ = s.Subscribe(ctx, "a", "room", "1.1", nil, 0)
		if r.Added || r.Count != 1 {
			t.Fatalf("again: %+v", r)
		}
		r, _ = s.Subscribe(ctx, "a", "room", "1.2", nil, 0)
		if !r.Added || r.Count != 2 {
			t.Fatalf("second socket: %+v", r)
		}
		s.Subscribe(ctx, "b", "room", "1.3", nil, 0) // other app
		if c, _ := s.Channel(ctx, "a", "room"); c.SubscriptionCount != 2 || c.UserCount != 0 {
			t.Fatalf("Channel %+v", c)
		}
		u, _ := s.Unsubscribe(ctx, "a", "room", "1.9")
		if u.Removed || u.Count != 2 {
			t.Fatalf("unknown socket: %+v", u)
		}
		u, _ = s.Unsubscribe(ctx, "a", "room", "1.1")
		if !u.Removed || u.Count != 1 || u.LastForUser {
			t.Fatalf("unsubscribe: %+v", u)
		}
		u, _ = s.Unsubscribe(ctx, "a", "room", "1.2")
		if !u.Removed || u.Count != 0 {
			t.Fatalf("last: %+v", u)
		}
		if u, _ := s.Unsubscribe(ctx, "a", "nowhere", "1.2"); u.Removed || u.Count != 0 {
			t.Fatalf("unknown channel: %+v", u)
		}
		chs, _ := s.Channels(ctx, "a", "")
		if len(chs) != 0 {
			t.Fatalf("Channels %+v", chs)
		}
		if chs, _ := s.Channels(ctx, "b", ""); len(chs) != 1 || chs["room"].SubscriptionCount != 1 {
			t.Fatalf("Channels(b) %+v", chs)
		}
	})

	t.Run("presence", func(t *testing.T) {
		s, _ := mk()
		r, _ := s.Subscribe(ctx, "a", "presence-p", "1.1", member("u1"), 2)
		if !r.FirstForUser || len(r.Members) != 1 || r.Members[0].ID != "u1" {
			t.Fatalf("u1: %+v", r)
		}
		r, _ = s.Subscribe(ctx, "a", "presence-p", "1.2", member("u1"), 2)
		if r.FirstForUser || len(r.Members) != 1 || r.Count != 2 {
			t.Fatalf("u1 again: %+v", r)
		}
		r, _ = s.Subscribe(ctx, "a", "presence-p", "1.3", member("u2"), 2)
		if !r.FirstForUser || len(r.Members) != 2 || r.Members[1].ID != "u2" {
			t.Fatalf("u2: %+v", r)
		}
		if _, err := s.Subscribe(ctx, "a", "presence-p", "1.4", member("u3"), 2); !errors.Is(err, ErrPresenceFull) {
			t.Fatalf("full: %v", err)
		}
		if c, _ := s.Channel(ctx, "a", "presence-p"); c.SubscriptionCount != 3 || c.UserCount != 2 {
			t.Fatalf("Channel %+v", c)
		}
		u, _ := s.Unsubscribe(ctx, "a", "presence-p", "1.1")
		if u.LastForUser {
			t.Fatalf("u1 has another socket: %+v", u)
		}
		u, _ = s.Unsubscribe(ctx, "a", "presence-p", "1.2")
		if !u.LastForUser || u.Member.ID != "u1" || string(u.Member.Info) != `{"n":"u1"}` {
			t.Fatalf("u1 last: %+v", u)
		}
		ms, _ := s.Members(ctx, "a", "presence-p")
		if len(ms) != 1 || ms[0].ID != "u2" {
			t.Fatalf("Members %+v", ms)
		}
		// maxMembers <= 0 means no cap.
		for i := range 5 {
			if _, err := s.Subscribe(ctx, "a", "presence-q", fmt.Sprintf("2.%d", i), member(fmt.Sprint(i)), 0); err != nil {
				t.Fatalf("no cap: %v", err)
			}
		}
	})

	t.Run("cache", func(t *testing.T) {
		s, advance := mk()
		if _, _, ok, err := s.Cache(ctx, "a", "cache-x"); ok || err != nil {
			t.Fatalf("empty: %v %v", ok, err)
		}
		s.SetCache(ctx, "a", "cache-x", CachedEvent{Event: "e", Data: "d"}, time.Minute)
		ev, ttl, ok, _ := s.Cache(ctx, "a", "cache-x")
		if !ok || ev.Event != "e" || ev.Data != "d" || ttl != time.Minute {
			t.Fatalf("cached %+v %v %v", ev, ttl, ok)
		}
		if _, _, ok, _ := s.Cache(ctx, "b", "cache-x"); ok {
			t.Fatal("cache shared between apps")
		}
		advance(time.Minute)
		if _, _, ok, _ := s.Cache(ctx, "a", "cache-x"); ok {
			t.Fatal("not expired")
		}
	})
}

// One-off cache channels must not grow the memory State for ever.
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
