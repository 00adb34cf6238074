package hub

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestSigninSuccess(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	ud := `{"id":"12345","user_info":{"name":"Ada"}}`
	msg(c, e.signinMsg(c.SocketID(), ud))
	f := fc.next(t)
	if f.Event != protocol.EventSigninSuccess || f.Channel != "" {
		t.Fatalf("got %s", f.raw)
	}
	var d struct {
		UserData string `json:"user_data"`
	}
	f.inner(t, &d)
	if d.UserData != ud {
		t.Fatalf("user_data %q, want %q", d.UserData, ud)
	}
	fc.none(t)
	wantOpen(t, fc)
	// data may also arrive as a string.
	c2, fc2 := e.connect()
	m := e.signinMsg(c2.SocketID(), `{"id":"x"}`)
	inner := m["data"].(obj)
	msg(c2, fmt.Sprintf(`{"event":"pusher:signin","data":"{\"auth\":\"%s\",\"user_data\":\"{\\\"id\\\":\\\"x\\\"}\"}"}`, inner["auth"]))
	if f := fc2.next(t); f.Event != protocol.EventSigninSuccess {
		t.Fatalf("string data: %s", f.raw)
	}
}

func TestSigninFailures(t *testing.T) {
	e := newEnv(t, nil)
	cases := map[string]func(c *Client) obj{
		"bad signature": func(c *Client) obj {
			m := e.signinMsg(c.SocketID(), `{"id":"u"}`)
			m["data"].(obj)["user_data"] = `{"id":"admin"}`
			return m
		},
		"other socket":  func(c *Client) obj { return e.signinMsg("1.1", `{"id":"u"}`) },
		"numeric id":    func(c *Client) obj { return e.signinMsg(c.SocketID(), `{"id":12345}`) },
		"empty id":      func(c *Client) obj { return e.signinMsg(c.SocketID(), `{"id":""}`) },
		"no id":         func(c *Client) obj { return e.signinMsg(c.SocketID(), `{"user_info":{}}`) },
		"not an object": func(c *Client) obj { return e.signinMsg(c.SocketID(), `"u"`) },
		"wrong key": func(c *Client) obj {
			m := e.signinMsg(c.SocketID(), `{"id":"u"}`)
			d := m["data"].(obj)
			d["auth"] = "nope" + d["auth"].(string)[len(testKey):]
			return m
		},
	}
	for name, mk := range cases {
		c, fc := e.connect()
		msg(c, mk(c))
		wantErrFrame(t, fc.next(t), 4009, "not authorized")
		wantClosed(t, fc, 4009)
		fc.none(t)
		c.Closed()
		if len(e.h.users) != 0 {
			t.Fatalf("%s: user recorded", name)
		}
	}
}

func TestServerToUserSubscription(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	msg(c, subscribeMsg("#server-to-user-u1", "", ""))
	if se := fc.next(t).subErr(t); se.Type != "AuthError" {
		t.Fatalf("not signed in: %+v", se)
	}
	e.signin(c, fc, `{"id":"u1"}`)
	msg(c, subscribeMsg("#server-to-user-u2", "", ""))
	if se := fc.next(t).subErr(t); se.Type != "AuthError" {
		t.Fatalf("someone else's: %+v", se)
	}
	msg(c, subscribeMsg("#server-to-user-u10", "", ""))
	if se := fc.next(t).subErr(t); se.Type != "AuthError" {
		t.Fatalf("prefix of someone else's: %+v", se)
	}
	f := e.sub(c, fc, "#server-to-user-u1", "")
	if f.str(t) != "{}" {
		t.Fatalf("got %s", f.raw)
	}
	fc.none(t)
	wantOpen(t, fc)
	// Signing in again as someone else replaces the identity.
	e.signin(c, fc, `{"id":"u2"}`)
	e.sub(c, fc, "#server-to-user-u2", "")
	e.publish("ev", "x", "", "#server-to-user-u1")
	fc.none(t)
	e.publish("ev", "x", "", "#server-to-user-u2")
	fc.next(t)
}

type watchEvents struct {
	Events []struct {
		Name    string   `json:"name"`
		UserIDs []string `json:"user_ids"`
	} `json:"events"`
}

func watchString(t *testing.T, f frame) string {
	t.Helper()
	if f.Event != protocol.EventWatchlist || f.Channel != "" {
		t.Fatalf("want watchlist_events, got %s", f.raw)
	}
	var w watchEvents
	f.inner(t, &w)
	var parts []string
	for _, ev := range w.Events {
		ids := append([]string(nil), ev.UserIDs...)
		sort.Strings(ids)
		parts = append(parts, ev.Name+":"+strings.Join(ids, ","))
	}
	return strings.Join(parts, " ")
}

func TestWatchlist(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableWatchlistEvents = true })
	a, fa := e.connect()
	e.signin(a, fa, `{"id":"a"}`)

	w, fw := e.connect()
	e.signin(w, fw, `{"id":"w","watchlist":["a","b","c"]}`)
	if got := watchString(t, fw.next(t)); got != "online:a offline:b,c" {
		t.Fatalf("initial state %q", got)
	}
	fw.none(t)

	b1, fb1 := e.connect()
	e.signin(b1, fb1, `{"id":"b"}`)
	if got := fw.nextRaw(t); got != `{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"b\"]}]}"}` {
		t.Fatalf("online: %s", got)
	}
	b2, fb2 := e.connect()
	e.signin(b2, fb2, `{"id":"b"}`)
	fw.none(t) // not the first socket
	b1.Closed()
	fw.none(t) // not the last socket
	b2.Closed()
	if got := watchString(t, fw.next(t)); got != "offline:b" {
		t.Fatalf("offline: %q", got)
	}
	// Presence membership alone is not "online".
	c, fc := e.connect()
	e.sub(c, fc, "presence-x", `{"user_id":"c"}`)
	fw.none(t)
	// Unwatched users, and the watchers themselves, are not announced.
	fa.none(t)
	fb1.none(t)
	// Once the watcher is gone it hears nothing.
	w.Closed()
	fw.gone.Store(true)
	d, fd := e.connect()
	e.signin(d, fd, `{"id":"c"}`)
	if fw.late.Load() != 0 {
		t.Fatal("watcher notified after it disconnected")
	}
	if len(e.h.watchers) != 0 {
		t.Fatalf("watchers left: %v", e.h.watchers)
	}
}

func TestWatchlistDisabled(t *testing.T) {
	e := newEnv(t, nil)
	w, fw := e.connect()
	e.signin(w, fw, `{"id":"w","watchlist":["a"]}`)
	a, fa := e.connect()
	e.signin(a, fa, `{"id":"a"}`)
	a.Closed()
	fw.none(t)
}

func TestSubscriptionCount(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableSubscriptionCount = true })
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	c3, f3 := e.connect()
	e.sub(c1, f1, "room", "")
	e.sub(c2, f2, "room", "")
	e.sub(c1, f1, "presence-p", `{"user_id":"1"}`)
	e.sub(c2, f2, "presence-p", `{"user_id":"2"}`)
	f1.drain(t)
	msg(c1, subscribeMsg("#server-to-user-x", "", "")) // refused: not signed in
	f1.drain(t)
	e.h.flushCounts()
	const two = `{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":2}"}`
	for _, fc := range []*fakeConn{f1, f2} {
		if got := fc.nextRaw(t); got != two {
			t.Fatalf("got %s", got)
		}
		fc.none(t) // one per channel, none for presence
	}
	if e.obs.count("subscription_count 1 room 2") != 1 {
		t.Fatalf("observer %v", e.obs.calls)
	}
	e.h.flushCounts()
	f1.none(t)

	// Several changes coalesce into the latest value.
	e.sub(c3, f3, "room", "")
	msg(c1, `{"event":"pusher:unsubscribe","data":{"channel":"room"}}`)
	msg(c1, `{"event":"pusher:unsubscribe","data":{"channel":"presence-p"}}`)
	f2.drain(t)               // member_removed
	e.sub(c3, f3, "room", "") // re-subscribe: no change
	e.h.flushCounts()
	for _, fc := range []*fakeConn{f2, f3} {
		if got := fc.nextRaw(t); got != two {
			t.Fatalf("got %s", got)
		}
		fc.none(t)
	}
	f1.none(t)

	// Down to zero: nobody to tell, but observed.
	c2.Closed()
	c3.Closed()
	e.h.flushCounts()
	if e.obs.count("subscription_count 1 room 0") != 1 {
		t.Fatalf("observer %v", e.obs.calls)
	}
	for k := range e.obs.calls {
		if strings.Contains(k, "presence-p") && strings.HasPrefix(k, "subscription_count") {
			t.Fatalf("count on a presence channel: %s", k)
		}
	}
}

func TestSubscriptionCountDisabled(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	e.sub(c, fc, "room", "")
	e.h.flushCounts()
	fc.none(t)
}

func TestActivityTimeout(t *testing.T) {
	e := newEnv(t, nil) // activity 120 s, pong 30 s
	silent, fs := e.connect()
	ponger, fp := e.connect()
	toucher, ft := e.connect()
	_ = silent

	e.clk.Advance(119 * time.Second)
	e.h.sweep()
	fs.none(t)
	e.clk.Advance(time.Second)
	e.h.sweep()
	for _, fc := range []*fakeConn{fs, fp, ft} {
		if got := fc.nextRaw(t); got != `{"event":"pusher:ping","data":{}}` {
			t.Fatalf("ping: %s", got)
		}
	}
	e.h.sweep() // pinged once only
	fs.none(t)

	e.clk.Advance(10 * time.Second)
	msg(ponger, `{"event":"pusher:pong","data":{}}`)
	toucher.Touch()
	fp.none(t)

	e.clk.Advance(19 * time.Second) // 29 s after the ping
	e.h.sweep()
	wantOpen(t, fs)
	e.clk.Advance(time.Second)
	e.h.sweep()
	wantErrFrame(t, fs.next(t), 4201, "Pong reply not received")
	wantClosed(t, fs, 4201)
	e.h.sweep() // closed once
	fs.none(t)
	for _, fc := range []*fakeConn{fp, ft} {
		wantOpen(t, fc)
		fc.none(t)
	}

	// The answering clients are pinged again 120 s after they spoke.
	e.clk.Advance(99 * time.Second) // 119 s after the pong (t=130 s)
	e.h.sweep()
	fp.none(t)
	e.clk.Advance(time.Second)
	e.h.sweep()
	if f := fp.next(t); f.Event != protocol.EventPing {
		t.Fatalf("second ping: %s", f.raw)
	}
	ft.next(t)
}

func TestPongTimeoutNotLongerThanActivity(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.ActivityTimeout = 10 * time.Second })
	_, fc := e.connect()
	e.clk.Advance(10 * time.Second)
	e.h.sweep()
	fc.next(t)
	e.clk.Advance(10 * time.Second)
	e.h.sweep()
	wantClosed(t, fc, 4201)
}

func TestUserAuthenticationTimeout(t *testing.T) {
	e := newEnv(t, func(a *apps.App) {
		a.EnableUserAuthentication = true
		a.UserAuthenticationTimeout = 30 * time.Second
	})
	anon, fa := e.connect()
	signed, fs := e.connect()
	_ = anon
	e.signin(signed, fs, `{"id":"u"}`)
	e.clk.Advance(29 * time.Second)
	e.h.sweep()
	wantOpen(t, fa)
	e.clk.Advance(time.Second)
	e.h.sweep()
	wantErrFrame(t, fa.next(t), 4009, "not authorized within timeout")
	wantClosed(t, fa, 4009)
	wantOpen(t, fs)
	fs.none(t)
	// Without the setting nobody is closed.
	e2 := newEnv(t, nil)
	_, f2 := e2.connect()
	e2.clk.Advance(60 * time.Second)
	e2.h.sweep()
	wantOpen(t, f2)
}

func TestObserverTransitions(t *testing.T) {
	e := newEnv(t, nil)
	var cs []*Client
	for i := range 3 {
		c, fc := e.connect()
		e.sub(c, fc, "room", "")
		e.sub(c, fc, "presence-p", fmt.Sprintf(`{"user_id":"u%d"}`, i%2))
		cs = append(cs, c)
	}
	if e.obs.count("occupied 1 room") != 1 || e.obs.count("occupied 1 presence-p") != 1 {
		t.Fatalf("occupied %v", e.obs.calls)
	}
	if e.obs.count("member_added 1 presence-p u0") != 1 || e.obs.count("member_added 1 presence-p u1") != 1 {
		t.Fatalf("member_added %v", e.obs.calls)
	}
	cs[0].Closed()
	cs[1].Closed()
	if e.obs.count("vacated 1 room") != 0 || e.obs.count("member_removed 1 presence-p u0") != 0 || e.obs.count("member_removed 1 presence-p u1") != 1 {
		t.Fatalf("after two leave %v", e.obs.calls)
	}
	cs[2].Closed()
	if e.obs.count("vacated 1 room") != 1 || e.obs.count("vacated 1 presence-p") != 1 || e.obs.count("member_removed 1 presence-p u0") != 1 {
		t.Fatalf("after all leave %v", e.obs.calls)
	}
	// Occupied again: a new transition.
	c, fc := e.connect()
	e.sub(c, fc, "room", "")
	if e.obs.count("occupied 1 room") != 2 {
		t.Fatalf("reoccupied %v", e.obs.calls)
	}
	if e.obs.count("opened 1") != 4 || e.obs.count("closed 1") != 3 {
		t.Fatalf("connections %v", e.obs.calls)
	}
}

// Signing in again as the same user (pusher-js does it on every
// reconnect, and an app may refresh user_data) is not going offline.
func TestWatchlistResignin(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableWatchlistEvents = true })
	w, fw := e.connect()
	e.signin(w, fw, `{"id":"w","watchlist":["a"]}`)
	if got := watchString(t, fw.next(t)); got != "offline:a" {
		t.Fatalf("initial %q", got)
	}
	a, fa := e.connect()
	e.signin(a, fa, `{"id":"a","user_info":{"v":1}}`)
	if got := watchString(t, fw.next(t)); got != "online:a" {
		t.Fatalf("online %q", got)
	}
	e.signin(a, fa, `{"id":"a","user_info":{"v":2}}`)
	fw.none(t)
	e.publish("ev", "x", "", "#server-to-user-a")
	if f := fa.next(t); f.Event != "ev" {
		t.Fatalf("got %s", f.raw)
	}
	// The watcher itself re-signs in with another watchlist.
	e.signin(w, fw, `{"id":"w","watchlist":["b"]}`)
	if got := watchString(t, fw.next(t)); got != "offline:b" {
		t.Fatalf("new watchlist %q", got)
	}
	a.Closed()
	fw.none(t) // a is no longer watched
	b, fb := e.connect()
	e.signin(b, fb, `{"id":"b"}`)
	if got := watchString(t, fw.next(t)); got != "online:b" {
		t.Fatalf("b online %q", got)
	}
	// Re-signing in as someone else is the old identity going offline.
	w2, fw2 := e.connect()
	e.signin(w2, fw2, `{"id":"w2","watchlist":["b","c"]}`)
	fw2.next(t)
	e.signin(b, fb, `{"id":"c"}`)
	got := []string{watchString(t, fw2.next(t)), watchString(t, fw2.next(t))}
	sort.Strings(got)
	if strings.Join(got, " ") != "offline:b online:c" {
		t.Fatalf("identity change: %q", got)
	}
	w.Closed()
	w2.Closed()
	b.Closed()
	if len(e.h.users) != 0 || len(e.h.watchers) != 0 {
		t.Fatalf("left: users %v watchers %v", e.h.users, e.h.watchers)
	}
}
