package hub

import (
	"context"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// The broker hears of every local subscriber and sign-in, and of their end,
// so a node listens to exactly the channels and users it serves.
func TestBrokerInterestFollowsLocalSubscribers(t *testing.T) {
	b := &recBroker{}
	e := newEnv(t, nil, func(o *Options) { o.Broker = b })
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	e.sub(c1, f1, "room", "")
	e.sub(c2, f2, "room", "")
	e.sub(c1, f1, "presence-lobby", `{"user_id":"u1"}`)
	e.signin(c2, f2, `{"id":"u2"}`)
	e.sub(c2, f2, "#server-to-user-u2", "")
	got := b.interests()
	want := map[string]int{"1/room": 2, "1/presence-lobby": 1, "1#u2": 1}
	if len(got) != len(want) {
		t.Fatalf("interests %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("interests %v, want %v", got, want)
		}
	}
	msg(c1, obj{"event": "pusher:unsubscribe", "data": obj{"channel": "room"}})
	if b.interests()["1/room"] != 1 {
		t.Fatalf("after unsubscribe: %v", b.interests())
	}
	c1.Closed()
	c2.Closed()
	if got := b.interests(); len(got) != 0 {
		t.Fatalf("interests left after disconnects: %v", got)
	}
}

// A refused subscription takes its interest back.
func TestBrokerInterestReleasedOnRefusal(t *testing.T) {
	b := &recBroker{}
	e := newEnv(t, func(a *apps.App) { a.MaxPresenceMembers = 1 }, func(o *Options) { o.Broker = b })
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	e.sub(c1, f1, "presence-x", `{"user_id":"a"}`)
	msg(c2, subscribeMsg("presence-x", e.auth(c2.SocketID(), "presence-x", `{"user_id":"b"}`), `{"user_id":"b"}`))
	if se := f2.next(t).subErr(t); se.Type != "LimitReached" {
		t.Fatalf("want LimitReached, got %+v", se)
	}
	if got := b.interests()["1/presence-x"]; got != 1 {
		t.Fatalf("interest %d after a refused join, want 1", got)
	}
}

// Subscription counts reach the other nodes too: the change may have
// happened on this node only.
func TestSubscriptionCountGoesToOtherNodes(t *testing.T) {
	b := &recBroker{}
	e := newEnv(t, func(a *apps.App) { a.EnableSubscriptionCount = true }, func(o *Options) { o.Broker = b })
	c, fc := e.connect()
	e.sub(c, fc, "room", "")
	b.take()
	e.h.flushCounts()
	msgs := b.take()
	if len(msgs) != 1 || msgs[0].Channel != "room" || string(msgs[0].Payload) != string(protocol.SubscriptionCount("room", 1)) {
		t.Fatalf("broker got %+v", msgs)
	}
}

// A dead node's departures are announced once by the node that reaped it.
func TestHandleDeparture(t *testing.T) {
	b := &recBroker{}
	e := newEnv(t, func(a *apps.App) { a.EnableSubscriptionCount = true }, func(o *Options) { o.Broker = b })
	c, fc := e.connect()
	e.sub(c, fc, "presence-room", `{"user_id":"here"}`)
	e.sub(c, fc, "news", "")
	b.take()
	gone := protocol.Member{ID: "7", RawID: []byte(`7`)}
	e.h.HandleDeparture(Departure{Node: "dead", Channels: []DepartedChannel{{AppID: "1", Channel: "presence-room", Count: 1, Gone: []protocol.Member{gone}}}})
	f := fc.next(t)
	if f.Event != protocol.EventMemberRemoved || f.str(t) != `{"user_id":7}` {
		t.Fatalf("member_removed: %s", f.raw)
	}
	if e.obs.count("member_removed 1 presence-room 7") != 1 {
		t.Fatalf("observer: %v", e.obs.calls)
	}
	e.h.HandleDeparture(Departure{Node: "dead", Channels: []DepartedChannel{
		{AppID: "1", Channel: "news", Count: 3},
		{AppID: "gone-app", Channel: "news", Count: 5}, // an app no longer configured: skipped
	}})
	if f := fc.next(t); f.Event != protocol.EventSubscriptionCount || f.str(t) != `{"subscription_count":3}` {
		t.Fatalf("subscription_count: %s", f.raw)
	}
	e.h.HandleDeparture(Departure{Node: "dead", Channels: []DepartedChannel{{AppID: "1", Channel: "gone-channel", Vacated: true}}})
	fc.none(t)
	if e.obs.count("vacated 1 gone-channel") != 1 {
		t.Fatalf("observer: %v", e.obs.calls)
	}
	// Each went to the other nodes as well.
	if n := len(b.take()); n != 2 {
		t.Fatalf("broker got %d messages, want 2", n)
	}
}

// After the State lost this node's records, Reregister records them again
// and announces the users who had been removed.
func TestReregisterRestoresState(t *testing.T) {
	st := newMemoryState(nil)
	e := newEnv(t, nil, func(o *Options) { o.State = st })
	a, fa := e.connect()
	bcl, fb := e.connect()
	e.sub(a, fa, "presence-room", `{"user_id":"a"}`)
	e.sub(bcl, fb, "presence-room", `{"user_id":"b"}`)
	fa.drain(t) // member_added b
	e.sub(a, fa, "news", "")
	// The cluster forgets user a (its records were reaped).
	if _, err := st.Unsubscribe(context.Background(), "1", "presence-room", a.SocketID()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Unsubscribe(context.Background(), "1", "news", a.SocketID()); err != nil {
		t.Fatal(err)
	}
	e.h.Reregister(context.Background())
	if info := e.channel("news"); info.SubscriptionCount != 1 {
		t.Fatalf("news count %d after reregister", info.SubscriptionCount)
	}
	if info := e.channel("presence-room"); info.UserCount != 2 || info.SubscriptionCount != 2 {
		t.Fatalf("presence after reregister: %+v", info)
	}
	// b hears that a is back; a does not hear of itself.
	if f := fb.next(t); f.Event != protocol.EventMemberAdded || f.str(t) != `{"user_id":"a"}` {
		t.Fatalf("member_added: %s", f.raw)
	}
	fa.none(t)
}
