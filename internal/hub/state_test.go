package hub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

// hookState wraps a State and runs hooks before some calls.
type hookState struct {
	State
	beforeSubscribe func(channel, socketID string)
	beforeSetCache  func(channel string)
	fail            error
}

func (s *hookState) Subscribe(ctx context.Context, appID, channel, socketID string, m *protocol.Member, max int) (SubscribeResult, error) {
	if s.beforeSubscribe != nil {
		s.beforeSubscribe(channel, socketID)
	}
	if s.fail != nil {
		return SubscribeResult{}, s.fail
	}
	return s.State.Subscribe(ctx, appID, channel, socketID, m, max)
}

func (s *hookState) SetCache(ctx context.Context, appID, channel string, ev CachedEvent, ttl time.Duration) error {
	if s.beforeSetCache != nil {
		s.beforeSetCache(channel)
	}
	return s.State.SetCache(ctx, appID, channel, ev, ttl)
}

func (s *hookState) Channel(ctx context.Context, appID, channel string) (ChannelCounts, error) {
	if s.fail != nil {
		return ChannelCounts{}, s.fail
	}
	return s.State.Channel(ctx, appID, channel)
}

func hookEnv(t *testing.T) (*env, *hookState) {
	clk := newClock()
	hs := &hookState{State: newMemoryState(clk.Now)}
	e := newEnv(t, nil, func(o *Options) { o.State = hs; o.Now = clk.Now })
	e.clk = clk
	return e, hs
}

// A client that subscribes while an API event is being published on a
// cache channel must get that event, live or from the cache.
func TestCacheSubscribeDuringPublish(t *testing.T) {
	e, hs := hookEnv(t)
	late, fl := e.connect()
	var once sync.Once
	hs.beforeSetCache = func(string) {
		// The subscription lands in the middle of Publish.
		once.Do(func() { msg(late, subscribeMsg("cache-x", "", "")) })
	}
	e.publish("ev", "v1", "", "cache-x")
	var got []string
	for _, f := range fl.drain(t) {
		got = append(got, f.Event)
	}
	if len(got) < 2 || got[0] != protocol.EventSubscriptionSucceeded {
		t.Fatalf("frames %v", got)
	}
	for _, ev := range got[1:] {
		if ev == "ev" {
			return
		}
	}
	t.Fatalf("the event published during the subscription was lost: frames %v", got)
}

// Closed while a subscription waits on the State: the subscription
// is either undone or never made, and nothing is announced for it.
func TestDisconnectDuringSubscribe(t *testing.T) {
	e, hs := hookEnv(t)
	o, fo := e.connect()
	e.sub(o, fo, "presence-p", `{"user_id":"o"}`)
	c, fc := e.connect()

	inState := make(chan struct{})
	release := make(chan struct{})
	hs.beforeSubscribe = func(channel, socketID string) {
		if socketID == c.SocketID() {
			close(inState)
			<-release
		}
	}
	var wg sync.WaitGroup
	cd := `{"user_id":"c"}`
	auth := e.auth(c.SocketID(), "presence-p", cd)
	wg.Go(func() { msg(c, subscribeMsg("presence-p", auth, cd)) })
	<-inState
	done := make(chan struct{})
	wg.Go(func() {
		c.Closed()
		fc.gone.Store(true)
		close(done)
	})
	select {
	case <-done:
		// Closed did not wait: the subscription must be undone.
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if n := e.h.localCount(chanKey{"1", "presence-p"}); n != 1 {
		t.Fatalf("local subscribers %d, want 1", n)
	}
	if info := e.channel("presence-p"); info.SubscriptionCount != 1 || info.UserCount != 1 {
		t.Fatalf("Channel = %+v", info)
	}
	frames := fo.drain(t)
	added, removed := 0, 0
	for _, f := range frames {
		switch f.Event {
		case protocol.EventMemberAdded:
			added++
		case protocol.EventMemberRemoved:
			removed++
		}
	}
	if added != removed {
		t.Fatalf("member_added %d, member_removed %d", added, removed)
	}
	if fc.late.Load() != 0 {
		t.Fatal("frames after Closed")
	}
}

func TestStateUnavailable(t *testing.T) {
	e, hs := hookEnv(t)
	c, fc := e.connect()
	hs.fail = errors.New("redis down")
	msg(c, subscribeMsg("room", "", ""))
	se := fc.next(t).subErr(t)
	if se.Type != "ServerError" || se.Status != 503 {
		t.Fatalf("%+v", se)
	}
	wantOpen(t, fc)
	if _, err := e.h.Channel(context.Background(), e.app, "room"); err == nil {
		t.Fatal("Channel hid the State error")
	}
	hs.fail = nil
	e.sub(c, fc, "room", "")
}
