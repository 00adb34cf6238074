package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestPublishExcludesSocket(t *testing.T) {
	e := newEnv(t, nil)
	var cs []*Client
	var fcs []*fakeConn
	for range 3 {
		c, fc := e.connect()
		e.sub(c, fc, "room", "")
		cs = append(cs, c)
		fcs = append(fcs, fc)
	}
	e.publish("ev", `{"a":1}`, cs[1].SocketID(), "room")
	for i, fc := range fcs {
		if i == 1 {
			fc.none(t)
			continue
		}
		if got := fc.nextRaw(t); got != `{"event":"ev","channel":"room","data":"{\"a\":1}"}` {
			t.Fatalf("got %s", got)
		}
	}
	// An unknown or malformed except id excludes nobody.
	e.publish("ev", "x", "999.999", "room")
	e.publish("ev", "x", "garbage", "room")
	for _, fc := range fcs {
		if n := len(fc.drain(t)); n != 2 {
			t.Fatalf("got %d frames", n)
		}
	}
	if got := e.obs.pubs[0]; got != "room ev 2" {
		t.Fatalf("Published %q", got)
	}
}

func TestPublishSeveralChannels(t *testing.T) {
	e := newEnv(t, nil)
	both, fb := e.connect()
	one, fo := e.connect()
	e.sub(both, fb, "c1", "")
	e.sub(both, fb, "private-c2", "")
	e.sub(one, fo, "c1", "")
	e.publish("ev", "d\n\"q\"\u2028", "", "c1", "private-c2", "empty")
	if got := fb.nextRaw(t); got != `{"event":"ev","channel":"c1","data":"d\n\"q\"\u2028"}` {
		t.Fatalf("c1: %s", got)
	}
	if got := fb.nextRaw(t); got != `{"event":"ev","channel":"private-c2","data":"d\n\"q\"\u2028"}` {
		t.Fatalf("c2: %s", got)
	}
	fb.none(t)
	f := fo.next(t)
	if f.Channel != "c1" || f.str(t) != "d\n\"q\"\u2028" {
		t.Fatalf("data not round-tripped: %s", f.raw)
	}
	fo.none(t)
	want := []string{"c1 ev 2", "private-c2 ev 1", "empty ev 0"}
	if fmt.Sprint(e.obs.pubs) != fmt.Sprint(want) {
		t.Fatalf("Published %q, want %q", e.obs.pubs, want)
	}
	// Channels of another app with the same name are distinct.
	other := testApp(func(a *apps.App) { a.ID = "2" })
	if err := e.h.Publish(context.Background(), other, PublishRequest{Name: "ev", Channels: []string{"c1"}, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	fb.none(t)
	fo.none(t)
}

// usersEnv has two sockets signed in as u1, one as u2 and one anonymous.
func usersEnv(t *testing.T) (e *env, u1a, u1b, u2, anon *Client, fu1a, fu1b, fu2, fanon *fakeConn) {
	e = newEnv(t, nil)
	u1a, fu1a = e.connect()
	u1b, fu1b = e.connect()
	u2, fu2 = e.connect()
	anon, fanon = e.connect()
	e.signin(u1a, fu1a, `{"id":"u1"}`)
	e.signin(u1b, fu1b, `{"id":"u1"}`)
	e.signin(u2, fu2, `{"id":"u2"}`)
	return
}

func TestServerToUser(t *testing.T) {
	e, u1a, _, _, _, fu1a, fu1b, fu2, fanon := usersEnv(t)
	// Delivery goes by sign-in, whether or not the socket subscribed to
	// the #server-to-user- channel.
	e.sub(u1a, fu1a, "#server-to-user-u1", "")
	e.publish("note", `{"n":1}`, "", "#server-to-user-u1")
	const want = `{"event":"note","channel":"#server-to-user-u1","data":"{\"n\":1}"}`
	for _, fc := range []*fakeConn{fu1a, fu1b} {
		if got := fc.nextRaw(t); got != want {
			t.Fatalf("got %s", got)
		}
		fc.none(t)
	}
	fu2.none(t)
	fanon.none(t)
	if e.obs.pubs[0] != "#server-to-user-u1 note 2" {
		t.Fatalf("Published %q", e.obs.pubs)
	}
	e.publish("note", "x", u1a.SocketID(), "#server-to-user-u1")
	fu1a.none(t)
	fu1b.next(t)
	e.publish("note", "x", "", "#server-to-user-nobody")
	fu1a.none(t)
	fu1b.none(t)
	fu2.none(t)
	fanon.none(t)
}

func TestTerminateUser(t *testing.T) {
	e, u1a, u1b, _, _, fu1a, fu1b, fu2, fanon := usersEnv(t)
	b := &recBroker{}
	e.h.opt.Broker = b
	if err := e.h.TerminateUser(context.Background(), e.app, "u1"); err != nil {
		t.Fatal(err)
	}
	for _, fc := range []*fakeConn{fu1a, fu1b} {
		wantClosed(t, fc, protocol.CodeUnauthorized)
		wantErrFrame(t, fc.next(t), 4009, "disconnected")
		fc.none(t)
	}
	wantOpen(t, fu2)
	wantOpen(t, fanon)
	fu2.none(t)
	if m := b.take(); len(m) != 1 || m[0].TerminateUser != "u1" || m[0].AppID != "1" {
		t.Fatalf("broker got %+v", m)
	}
	// The transport then reports the sockets gone; the user has none left.
	u1a.Closed()
	u1b.Closed()
	e.publish("note", "x", "", "#server-to-user-u1")
	if len(e.h.userClients("1", "u1")) != 0 {
		t.Fatal("u1 still has sockets")
	}
}

// A message from another node is delivered exactly like a local publish.
func TestBrokerRoundTrip(t *testing.T) {
	b := &recBroker{}
	pub := newEnv(t, nil, func(o *Options) { o.Broker = b })
	sub := newEnv(t, nil)
	x, fx := sub.connect()
	y, fy := sub.connect()
	sub.sub(x, fx, "room", "")
	sub.sub(y, fy, "room", "")
	sub.signin(x, fx, `{"id":"u1"}`)

	// The except id is another node's socket; here it names y.
	pub.publish("ev", "data", y.SocketID(), "room", "#server-to-user-u1")
	msgs := b.take()
	if len(msgs) != 2 {
		t.Fatalf("broker got %+v", msgs)
	}
	// The channels' broker calls run side by side: either order.
	if msgs[0].ToUser != "" {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	if m := msgs[0]; m.AppID != "1" || m.Channel != "room" || m.ToUser != "" || m.ExceptSocketID != y.SocketID() ||
		string(m.Payload) != `{"event":"ev","channel":"room","data":"data"}` {
		t.Fatalf("channel message %+v", m)
	}
	if m := msgs[1]; m.ToUser != "u1" || m.Channel != "" || string(m.Payload) != `{"event":"ev","channel":"#server-to-user-u1","data":"data"}` {
		t.Fatalf("user message %+v", m)
	}
	for _, m := range msgs {
		sub.h.HandleBrokerMessage(m)
	}
	if got := fx.nextRaw(t); got != `{"event":"ev","channel":"room","data":"data"}` {
		t.Fatalf("got %s", got)
	}
	if got := fx.nextRaw(t); got != `{"event":"ev","channel":"#server-to-user-u1","data":"data"}` {
		t.Fatalf("got %s", got)
	}
	fy.none(t)
	fx.none(t)

	// Hub-made messages (member events, client events) go to the broker too.
	pa, fpa := pub.connect()
	pub.sub(pa, fpa, "presence-p", `{"user_id":"p"}`)
	msgs = b.take()
	if len(msgs) != 1 || msgs[0].Channel != "presence-p" || msgs[0].ExceptSocketID != pa.SocketID() {
		t.Fatalf("member_added to broker: %+v", msgs)
	}
	f := decodeFrame(t, msgs[0].Payload)
	if f.Event != protocol.EventMemberAdded {
		t.Fatalf("payload %s", f.raw)
	}

	sub.h.HandleBrokerMessage(BrokerMessage{AppID: "1", TerminateUser: "u1"})
	wantClosed(t, fx, 4009)
	wantOpen(t, fy)
	// Messages for an unknown channel or another app reach nobody.
	sub.h.HandleBrokerMessage(BrokerMessage{AppID: "2", Channel: "room", Payload: []byte(`{}`)})
	sub.h.HandleBrokerMessage(BrokerMessage{AppID: "1"})
	fy.none(t)
}

func TestPublishBrokerError(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Broker = failBroker{} })
	c, fc := e.connect()
	e.sub(c, fc, "room", "")
	err := e.h.Publish(context.Background(), e.app, PublishRequest{Name: "ev", Channels: []string{"room"}, Data: "x"})
	if err == nil {
		t.Fatal("broker error not reported")
	}
	// Local subscribers are served anyway.
	fc.next(t)
}

type failBroker struct{}

func (failBroker) Attach(Receiver) {}

func (failBroker) Publish(context.Context, BrokerMessage) error { return fmt.Errorf("down") }

func (failBroker) Interest(context.Context, string, string, bool) error { return fmt.Errorf("down") }

func (failBroker) UserInterest(context.Context, string, string, bool) error {
	return fmt.Errorf("down")
}

// The frame of a channel is built once and shared by every subscriber.
func TestPublishSharesOneFrame(t *testing.T) {
	framed := 0
	e := newEnv(t, nil, func(o *Options) {
		o.Framer = func(p []byte) []byte {
			framed++
			return append([]byte("F:"), p...)
		}
	})
	var fcs []*fakeConn
	for range 5 {
		fc := &fakeConn{}
		c, err := e.h.connectApp(e.app, fc)
		if err != nil {
			t.Fatal(err)
		}
		msg(c, subscribeMsg("room", "", ""))
		if len(fc.frames) != 2 || !strings.HasPrefix(string(fc.frames[1]), `F:{"event":"pusher_internal:subscription_succeeded"`) {
			t.Fatalf("frames %q", fc.frames)
		}
		fc.frames, fc.read = nil, 0
		fcs = append(fcs, fc)
	}
	framed = 0
	e.publish("ev", "x", "", "room")
	if framed != 1 {
		t.Fatalf("framed %d times for one channel", framed)
	}
	first := fcs[0].frames[0]
	if string(first) != `F:{"event":"ev","channel":"room","data":"x"}` {
		t.Fatalf("frame %q", first)
	}
	for _, fc := range fcs[1:] {
		if len(fc.frames) != 1 || &fc.frames[0][0] != &first[0] {
			t.Fatal("subscribers got different frame buffers")
		}
	}
}

// The transport may reuse its read buffer once HandleMessage returns: the
// hub must not keep any part of it.
func TestInputBufferNotRetained(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableClientMessages = true })
	a, fa := e.connect()
	b, fb := e.connect()
	scribble := func(buf []byte) {
		for i := range buf {
			buf[i] = 'X'
		}
	}
	cd := `{"user_id":"ada","user_info":{"name":"Ada"}}`
	buf := []byte(fmt.Sprintf(`{"event":"pusher:subscribe","data":{"channel":"presence-r","auth":%q,"channel_data":%q}}`, e.auth(a.SocketID(), "presence-r", cd), cd))
	a.HandleMessage(buf)
	scribble(buf)
	fa.next(t)
	ud := `{"id":"ada","user_info":{"name":"Ada"},"watchlist":["bob"]}`
	buf = []byte(fmt.Sprintf(`{"event":"pusher:signin","data":{"auth":%q,"user_data":%q}}`, e.app.Key+":"+protocol.Sign(e.app.Secret, protocol.UserAuthString(a.SocketID(), ud)), ud))
	a.HandleMessage(buf)
	scribble(buf)
	fa.next(t)

	r := rosterOf(t, e.sub(b, fb, "presence-r", `{"user_id":"bob"}`))
	if string(r.Presence.Hash["ada"]) != `{"name":"Ada"}` {
		t.Fatalf("roster after the buffer was reused: %+v", r)
	}
	fa.next(t) // member_added
	users, _ := e.h.PresenceUsers(context.Background(), e.app, "presence-r")
	if users[0].ID != "ada" || string(users[0].RawID) != `"ada"` || string(users[0].Info) != `{"name":"Ada"}` {
		t.Fatalf("members %+v", users)
	}
	buf = []byte(`{"event":"client-x","channel":"presence-r","data":{"k":"v"}}`)
	a.HandleMessage(buf)
	scribble(buf)
	if got := fb.nextRaw(t); got != `{"event":"client-x","channel":"presence-r","data":{"k":"v"},"user_id":"ada"}` {
		t.Fatalf("client event %s", got)
	}
	if len(e.obs.events) != 1 || !strings.Contains(e.obs.events[0], `{"k":"v"}`) {
		t.Fatalf("observer saw %q", e.obs.events)
	}
	b.Closed()
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-r","data":"{\"user_id\":\"bob\"}"}` {
		t.Fatalf("member_removed %s", got)
	}
	e.publish("ev", "x", "", "#server-to-user-ada")
	fa.next(t)
}
