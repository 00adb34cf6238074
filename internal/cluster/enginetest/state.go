package enginetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// Member returns a presence member with user id id and info {"n":id}.
func Member(id string) *protocol.Member {
	return &protocol.Member{ID: id, RawID: protocol.AppendString(nil, id), Info: []byte(`{"n":"` + id + `"}`)}
}

func ids(ms []protocol.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func eq(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// runState checks the State contract of one node. newState returns a new,
// empty State on each call, on the real clock.
func runState(t *testing.T, newState func(t *testing.T) hub.State) {
	ctx := context.Background()

	t.Run("counts", func(t *testing.T) {
		s := newState(t)
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
		mustSub(t, s, "b", "room", "1.3", nil, 0) // other app
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
		u, _ = s.Unsubscribe(ctx, "a", "room", "1.1")
		if u.Removed || u.Count != 1 {
			t.Fatalf("unsubscribe twice: %+v", u)
		}
		u, _ = s.Unsubscribe(ctx, "a", "room", "1.2")
		if !u.Removed || u.Count != 0 {
			t.Fatalf("last: %+v", u)
		}
		if u, _ := s.Unsubscribe(ctx, "a", "nowhere", "1.2"); u.Removed || u.Count != 0 {
			t.Fatalf("unknown channel: %+v", u)
		}
		if c, err := s.Channel(ctx, "a", "room"); err != nil || c != (hub.ChannelCounts{}) {
			t.Fatalf("vacated Channel %+v %v", c, err)
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
		s := newState(t)
		r, _ := s.Subscribe(ctx, "a", "presence-p", "1.1", Member("u1"), 2)
		if !r.FirstForUser || !r.Added || r.Count != 1 || !eq(ids(r.Members), "u1") {
			t.Fatalf("u1: %+v", r)
		}
		if m := r.Members[0]; string(m.RawID) != `"u1"` || string(m.Info) != `{"n":"u1"}` {
			t.Fatalf("member %q %q", m.RawID, m.Info)
		}
		r, _ = s.Subscribe(ctx, "a", "presence-p", "1.2", Member("u1"), 2)
		if r.FirstForUser || !r.Added || r.Count != 2 || !eq(ids(r.Members), "u1") {
			t.Fatalf("u1 again: %+v", r)
		}
		r, _ = s.Subscribe(ctx, "a", "presence-p", "1.3", Member("u2"), 2)
		if !r.FirstForUser || !eq(ids(r.Members), "u1", "u2") {
			t.Fatalf("u2: %+v", r)
		}
		if _, err := s.Subscribe(ctx, "a", "presence-p", "1.4", Member("u3"), 2); !errors.Is(err, hub.ErrPresenceFull) {
			t.Fatalf("full: %v", err)
		}
		// A known user may add sockets to a full channel.
		if r, err := s.Subscribe(ctx, "a", "presence-p", "1.5", Member("u2"), 2); err != nil || r.FirstForUser || r.Count != 4 {
			t.Fatalf("known user on a full channel: %+v %v", r, err)
		}
		if c, _ := s.Channel(ctx, "a", "presence-p"); c.SubscriptionCount != 4 || c.UserCount != 2 {
			t.Fatalf("Channel %+v", c)
		}
		if chs, _ := s.Channels(ctx, "a", "presence-"); chs["presence-p"] != (hub.ChannelCounts{SubscriptionCount: 4, UserCount: 2}) {
			t.Fatalf("Channels %+v", chs)
		}
		u, _ := s.Unsubscribe(ctx, "a", "presence-p", "1.1")
		if u.LastForUser || !u.Removed {
			t.Fatalf("u1 has another socket: %+v", u)
		}
		u, _ = s.Unsubscribe(ctx, "a", "presence-p", "1.2")
		if !u.LastForUser || u.Member.ID != "u1" || string(u.Member.Info) != `{"n":"u1"}` || string(u.Member.RawID) != `"u1"` {
			t.Fatalf("u1 last: %+v", u)
		}
		ms, _ := s.Members(ctx, "a", "presence-p")
		if !eq(ids(ms), "u2") {
			t.Fatalf("Members %+v", ms)
		}
		// The freed place can be taken.
		if _, err := s.Subscribe(ctx, "a", "presence-p", "1.6", Member("u3"), 2); err != nil {
			t.Fatalf("after a leave: %v", err)
		}
		// maxMembers <= 0 means no cap.
		for i := range 5 {
			if _, err := s.Subscribe(ctx, "a", "presence-q", fmt.Sprintf("2.%d", i), Member(fmt.Sprint(i)), 0); err != nil {
				t.Fatalf("no cap: %v", err)
			}
		}
		if ms, _ := s.Members(ctx, "a", "presence-none"); len(ms) != 0 {
			t.Fatalf("Members of an empty channel: %+v", ms)
		}
	})

	t.Run("presence full leaves nothing", func(t *testing.T) {
		s := newState(t)
		if _, err := s.Subscribe(ctx, "a", "presence-z", "1.1", Member("u1"), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscribe(ctx, "a", "presence-z", "1.2", Member("u2"), 1); !errors.Is(err, hub.ErrPresenceFull) {
			t.Fatalf("full: %v", err)
		}
		if u, _ := s.Unsubscribe(ctx, "a", "presence-z", "1.2"); u.Removed {
			t.Fatalf("refused socket was recorded: %+v", u)
		}
		mustUnsub(t, s, "a", "presence-z", "1.1")
		if chs, _ := s.Channels(ctx, "a", ""); len(chs) != 0 {
			t.Fatalf("Channels %+v", chs)
		}
	})

	t.Run("join order", func(t *testing.T) {
		s := newState(t)
		for i, u := range []string{"c", "a", "b", "d"} {
			mustSub(t, s, "a", "presence-o", fmt.Sprintf("1.%d", i), Member(u), 0)
		}
		mustUnsub(t, s, "a", "presence-o", "1.1") // a leaves
		r := mustSub(t, s, "a", "presence-o", "1.9", Member("a"), 0)
		if !r.FirstForUser || !eq(ids(r.Members), "c", "b", "d", "a") {
			t.Fatalf("rejoin goes last: %+v", ids(r.Members))
		}
		ms, _ := s.Members(ctx, "a", "presence-o")
		if !eq(ids(ms), "c", "b", "d", "a") {
			t.Fatalf("Members %v", ids(ms))
		}
		// A second socket of a present user keeps the user's place.
		mustSub(t, s, "a", "presence-o", "1.10", Member("c"), 0)
		mustUnsub(t, s, "a", "presence-o", "1.0")
		if ms, _ := s.Members(ctx, "a", "presence-o"); !eq(ids(ms), "c", "b", "d", "a") {
			t.Fatalf("Members %v", ids(ms))
		}
	})

	t.Run("resubscribe is a no-op", func(t *testing.T) {
		s := newState(t)
		mustSub(t, s, "a", "presence-r", "1.1", Member("u1"), 0)
		mustSub(t, s, "a", "presence-r", "1.2", Member("u2"), 0)
		r := mustSub(t, s, "a", "presence-r", "1.1", Member("u1"), 0)
		if r.Added || r.FirstForUser || r.Count != 2 || !eq(ids(r.Members), "u1", "u2") {
			t.Fatalf("resubscribe: %+v", r)
		}
		if c, _ := s.Channel(ctx, "a", "presence-r"); c.SubscriptionCount != 2 || c.UserCount != 2 {
			t.Fatalf("Channel %+v", c)
		}
		u := mustUnsub(t, s, "a", "presence-r", "1.1")
		if !u.LastForUser || u.Member.ID != "u1" {
			t.Fatalf("one socket, one leave: %+v", u)
		}
	})

	t.Run("channels by prefix", func(t *testing.T) {
		s := newState(t)
		for i, name := range []string{"private-a", "private-b", "presence-a", "public", "private"} {
			mustSub(t, s, "a", name, fmt.Sprintf("1.%d", i), nil, 0)
		}
		mustSub(t, s, "a", "private-a", "1.9", nil, 0)
		mustSub(t, s, "other", "private-x", "1.8", nil, 0)
		chs, err := s.Channels(ctx, "a", "private-")
		if err != nil || len(chs) != 2 || chs["private-a"].SubscriptionCount != 2 || chs["private-b"].SubscriptionCount != 1 {
			t.Fatalf("private-: %+v %v", chs, err)
		}
		if chs, _ := s.Channels(ctx, "a", ""); len(chs) != 5 {
			t.Fatalf("all: %+v", chs)
		}
		if chs, _ := s.Channels(ctx, "a", "zzz"); len(chs) != 0 {
			t.Fatalf("none: %+v", chs)
		}
		mustUnsub(t, s, "a", "private-b", "1.1")
		if chs, _ := s.Channels(ctx, "a", "private-"); len(chs) != 1 {
			t.Fatalf("after vacating: %+v", chs)
		}
		// Many channels (more than one page of a paged implementation).
		for i := range 1200 {
			mustSub(t, s, "many", fmt.Sprintf("c-%04d", i), "1.1", nil, 0)
		}
		if chs, err := s.Channels(ctx, "many", "c-"); err != nil || len(chs) != 1200 {
			t.Fatalf("many: %d %v", len(chs), err)
		}
	})

	t.Run("cache", func(t *testing.T) {
		s := newState(t)
		if _, _, ok, err := s.Cache(ctx, "a", "cache-x"); ok || err != nil {
			t.Fatalf("empty: %v %v", ok, err)
		}
		if err := s.SetCache(ctx, "a", "cache-x", hub.CachedEvent{Event: "e", Data: "d\n{\"x\":1}"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		ev, ttl, ok, err := s.Cache(ctx, "a", "cache-x")
		if !ok || err != nil || ev.Event != "e" || ev.Data != "d\n{\"x\":1}" || ttl > time.Minute || ttl < time.Minute-5*time.Second {
			t.Fatalf("cached %+v %v %v %v", ev, ttl, ok, err)
		}
		if _, _, ok, _ := s.Cache(ctx, "b", "cache-x"); ok {
			t.Fatal("cache shared between apps")
		}
		// The last event wins.
		s.SetCache(ctx, "a", "cache-x", hub.CachedEvent{Event: "e2"}, time.Minute)
		if ev, _, _, _ := s.Cache(ctx, "a", "cache-x"); ev.Event != "e2" || ev.Data != "" {
			t.Fatalf("overwrite %+v", ev)
		}
		// An entry ends with its TTL.
		// The TTL runs from when the engine stores the entry, which is
		// before SetCache returns: time it from the call. Redis keeps
		// expiry times in whole milliseconds, so an entry may go up to
		// 1 ms before its TTL measured on this clock.
		set := time.Now()
		s.SetCache(ctx, "a", "cache-y", hub.CachedEvent{Event: "e"}, 100*time.Millisecond)
		if _, ttl, ok, _ := s.Cache(ctx, "a", "cache-y"); ok && (ttl <= 0 || ttl > 100*time.Millisecond) {
			t.Fatalf("ttl %v", ttl)
		}
		testwait.For(t, 5*time.Second, "cache entry expired", func() bool {
			_, _, ok, _ := s.Cache(ctx, "a", "cache-y")
			return !ok
		})
		if gone := time.Since(set); gone < 99*time.Millisecond {
			t.Fatalf("expired after %v, ttl 100ms", gone)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		s := newState(t)
		runConcurrent(t, []hub.State{s, s, s, s})
	})
}

// runStateCluster checks what must hold across nodes: newNodes returns n
// States (n nodes) over one shared, empty store.
func runStateCluster(t *testing.T, newNodes func(t *testing.T, n int) []hub.State) {
	ctx := context.Background()
	t.Run("cluster shared", func(t *testing.T) {
		ns := newNodes(t, 2)
		a, b := ns[0], ns[1]
		r := mustSub(t, a, "a", "presence-s", "1.1", Member("u1"), 0)
		if !r.FirstForUser {
			t.Fatalf("a: %+v", r)
		}
		r = mustSub(t, b, "a", "presence-s", "2.1", Member("u1"), 0)
		if r.FirstForUser || r.Count != 2 {
			t.Fatalf("b, same user: %+v", r)
		}
		r = mustSub(t, b, "a", "presence-s", "2.2", Member("u2"), 0)
		if !r.FirstForUser || !eq(ids(r.Members), "u1", "u2") {
			t.Fatalf("b, u2: %+v", r)
		}
		if ms, _ := a.Members(ctx, "a", "presence-s"); !eq(ids(ms), "u1", "u2") {
			t.Fatalf("here() from a: %v", ids(ms))
		}
		if u := mustUnsub(t, a, "a", "presence-s", "1.1"); u.LastForUser || u.Count != 2 {
			t.Fatalf("u1 still on b: %+v", u)
		}
		if u := mustUnsub(t, b, "a", "presence-s", "2.1"); !u.LastForUser || u.Member.ID != "u1" {
			t.Fatalf("u1 gone: %+v", u)
		}
		a.SetCache(ctx, "a", "cache-s", hub.CachedEvent{Event: "e"}, time.Minute)
		if ev, _, ok, _ := b.Cache(ctx, "a", "cache-s"); !ok || ev.Event != "e" {
			t.Fatal("cache not shared")
		}
		if chs, _ := a.Channels(ctx, "a", ""); chs["presence-s"].UserCount != 1 {
			t.Fatalf("Channels from a: %+v", chs)
		}
	})
	t.Run("cluster concurrent", func(t *testing.T) {
		runConcurrent(t, newNodes(t, 2))
	})
}

// runConcurrent subscribes the same users from every State at once:
// exactly one FirstForUser and one LastForUser per user, and the presence
// cap holds.
func runConcurrent(t *testing.T, nodes []hub.State) {
	ctx := context.Background()
	const users, perNode = 20, 3
	var mu sync.Mutex
	first, last := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	for ni, s := range nodes {
		for k := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range users {
					uid := fmt.Sprintf("u%d", u)
					r, err := s.Subscribe(ctx, "a", "presence-c", fmt.Sprintf("%d.%d.%d", ni, k, u), Member(uid), 0)
					if err != nil {
						t.Error(err)
						return
					}
					if r.FirstForUser {
						mu.Lock()
						first[uid]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	for u := range users {
		if n := first[fmt.Sprintf("u%d", u)]; n != 1 {
			t.Fatalf("u%d: %d FirstForUser", u, n)
		}
	}
	if c, _ := nodes[0].Channel(ctx, "a", "presence-c"); c.SubscriptionCount != len(nodes)*perNode*users || c.UserCount != users {
		t.Fatalf("Channel %+v", c)
	}
	for ni, s := range nodes {
		for k := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range users {
					r, err := s.Unsubscribe(ctx, "a", "presence-c", fmt.Sprintf("%d.%d.%d", ni, k, u))
					if err != nil || !r.Removed {
						t.Errorf("unsubscribe: %+v %v", r, err)
						return
					}
					if r.LastForUser {
						mu.Lock()
						last[r.Member.ID]++
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	for u := range users {
		if n := last[fmt.Sprintf("u%d", u)]; n != 1 {
			t.Fatalf("u%d: %d LastForUser", u, n)
		}
	}
	// The cap holds under a race: more users than its 7 places.
	var ok, full int
	for ni, s := range nodes {
		for k := range 15 / len(nodes) * 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Subscribe(ctx, "a", "presence-cap", fmt.Sprintf("%d.%d", ni, k), Member(fmt.Sprintf("n%d-%d", ni, k)), 7)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, hub.ErrPresenceFull):
					full++
				default:
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if ok != 7 {
		t.Fatalf("%d admitted, %d refused, want 7 admitted", ok, full)
	}
	if c, _ := nodes[0].Channel(ctx, "a", "presence-cap"); c.UserCount != 7 || c.SubscriptionCount != 7 {
		t.Fatalf("cap: %+v", c)
	}
}

func mustSub(t *testing.T, s hub.State, app, ch, sock string, m *protocol.Member, max int) hub.SubscribeResult {
	t.Helper()
	r, err := s.Subscribe(context.Background(), app, ch, sock, m, max)
	if err != nil {
		t.Fatalf("subscribe %s %s: %v", ch, sock, err)
	}
	return r
}

func mustUnsub(t *testing.T, s hub.State, app, ch, sock string) hub.UnsubscribeResult {
	t.Helper()
	r, err := s.Unsubscribe(context.Background(), app, ch, sock)
	if err != nil {
		t.Fatalf("unsubscribe %s %s: %v", ch, sock, err)
	}
	return r
}

// runUsersConcurrent signs the same users in from every node at once, then
// out: exactly one first and one last per user.
func runUsersConcurrent(t *testing.T, nodes []hub.State) {
	ctx := context.Background()
	const users, perNode = 20, 3
	var mu sync.Mutex
	first, last := map[string]int{}, map[string]int{}
	var wg sync.WaitGroup
	each := func(f func(ni, k, u int)) {
		for ni := range nodes {
			for k := range perNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for u := range users {
						f(ni, k, u)
					}
				}()
			}
		}
		wg.Wait()
	}
	each(func(ni, k, u int) {
		f, _, err := nodes[ni].UserOnline(ctx, "a", fmt.Sprintf("u%d", u), fmt.Sprintf("%d.%d.%d", ni, k, u))
		if err != nil {
			t.Error(err)
		}
		if f {
			mu.Lock()
			first[fmt.Sprintf("u%d", u)]++
			mu.Unlock()
		}
	})
	each(func(ni, k, u int) {
		l, _, err := nodes[ni].UserOffline(ctx, "a", fmt.Sprintf("u%d", u), fmt.Sprintf("%d.%d.%d", ni, k, u))
		if err != nil {
			t.Error(err)
		}
		if l {
			mu.Lock()
			last[fmt.Sprintf("u%d", u)]++
			mu.Unlock()
		}
	})
	for u := range users {
		id := fmt.Sprintf("u%d", u)
		if first[id] != 1 || last[id] != 1 {
			t.Fatalf("%s: %d first, %d last", id, first[id], last[id])
		}
	}
}
