package hub

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

type roster struct {
	Presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	} `json:"presence"`
}

func rosterOf(t *testing.T, f frame) roster {
	t.Helper()
	var r roster
	f.inner(t, &r)
	if len(r.Presence.Hash) != r.Presence.Count || len(r.Presence.IDs) != r.Presence.Count {
		t.Fatalf("inconsistent roster %s", f.raw)
	}
	for _, id := range r.Presence.IDs {
		if _, ok := r.Presence.Hash[id]; !ok {
			t.Fatalf("roster %s: id %s has no hash key", f.raw, id)
		}
	}
	return r
}

func TestPresenceRoster(t *testing.T) {
	e := newEnv(t, nil)
	a, fa := e.connect()
	b, fb := e.connect()
	const ch = "presence-room"

	r := rosterOf(t, e.sub(a, fa, ch, `{"user_id":"ada","user_info":{"name":"Ada"}}`))
	if strings.Join(r.Presence.IDs, ",") != "ada" || string(r.Presence.Hash["ada"]) != `{"name":"Ada"}` {
		t.Fatalf("roster %+v", r)
	}
	fa.none(t) // no member_added to the joiner

	// b has no user_info: its hash entry is null, not missing.
	f := e.sub(b, fb, ch, `{"user_id":"bob"}`)
	if got := f.str(t); got != `{"presence":{"ids":["ada","bob"],"hash":{"ada":{"name":"Ada"},"bob":null},"count":2}}` {
		t.Fatalf("roster %s", got)
	}
	rosterOf(t, f)
	fb.none(t)
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"bob\"}"}` {
		t.Fatalf("member_added: %s", got)
	}
	fa.none(t)

	info := e.channel(ch)
	if info.SubscriptionCount != 2 || info.UserCount != 2 || info.Kind != protocol.Presence {
		t.Fatalf("Channel = %+v", info)
	}
	users, err := e.h.PresenceUsers(context.Background(), e.app, ch)
	if err != nil || len(users) != 2 || users[0].ID != "ada" || users[1].ID != "bob" {
		t.Fatalf("PresenceUsers = %+v %v", users, err)
	}

	// Re-subscribing returns the roster again, announces nothing, counts nothing.
	auth := e.auth(b.SocketID(), ch, `{"user_id":"bob"}`)
	msg(b, subscribeMsg(ch, auth, `{"user_id":"bob"}`))
	if r := rosterOf(t, fb.next(t)); r.Presence.Count != 2 {
		t.Fatalf("re-subscribe roster %+v", r)
	}
	fa.none(t)
	if info := e.channel(ch); info.SubscriptionCount != 2 || info.UserCount != 2 {
		t.Fatalf("after re-subscribe: %+v", info)
	}

	msg(b, `{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	fb.none(t)
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"bob\"}"}` {
		t.Fatalf("member_removed: %s", got)
	}
	if e.obs.count("member_added 1 presence-room bob") != 1 || e.obs.count("member_removed 1 presence-room bob") != 1 ||
		e.obs.count("member_added 1 presence-room ada") != 1 {
		t.Fatalf("observer %v", e.obs.calls)
	}
}

func TestPresenceNumericUserID(t *testing.T) {
	e := newEnv(t, nil)
	a, fa := e.connect()
	b, fb := e.connect()
	e.sub(a, fa, "presence-n", `{"user_id":"1"}`)
	r := rosterOf(t, e.sub(b, fb, "presence-n", `{"user_id":10,"user_info":{"name":"Mr. Channels"}}`))
	if strings.Join(r.Presence.IDs, ",") != "1,10" {
		t.Fatalf("ids %v", r.Presence.IDs)
	}
	// member events echo user_id as received (a number).
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_added","channel":"presence-n","data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}"}` {
		t.Fatalf("member_added: %s", got)
	}
	b.Closed()
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-n","data":"{\"user_id\":10}"}` {
		t.Fatalf("member_removed: %s", got)
	}
	// "10" and 10 are the same user.
	c, fc := e.connect()
	d, fd := e.connect()
	e.sub(c, fc, "presence-n", `{"user_id":"10"}`)
	fa.next(t)
	e.sub(d, fd, "presence-n", `{"user_id":10}`)
	fa.none(t)
	fc.none(t)
	if info := e.channel("presence-n"); info.UserCount != 2 || info.SubscriptionCount != 3 {
		t.Fatalf("Channel = %+v", info)
	}
}

// member_added only on a user's first socket, member_removed only when its
// last leaves, whether by unsubscribe or disconnect.
func TestPresenceSeveralSocketsOfOneUser(t *testing.T) {
	e := newEnv(t, nil)
	const ch = "presence-room"
	o, fo := e.connect()
	e.sub(o, fo, ch, `{"user_id":"observer"}`)
	s1, f1 := e.connect()
	s2, f2 := e.connect()
	s3, f3 := e.connect()

	e.sub(s1, f1, ch, `{"user_id":"u","user_info":{"tab":1}}`)
	if got := fo.nextRaw(t); got != `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"u\",\"user_info\":{\"tab\":1}}"}` {
		t.Fatalf("member_added: %s", got)
	}
	r := rosterOf(t, e.sub(s2, f2, ch, `{"user_id":"u","user_info":{"tab":2}}`))
	if r.Presence.Count != 2 {
		t.Fatalf("roster %+v", r)
	}
	e.sub(s3, f3, ch, `{"user_id":"u","user_info":{"tab":3}}`)
	fo.none(t)
	f1.none(t)
	f2.none(t)
	if info := e.channel(ch); info.UserCount != 2 || info.SubscriptionCount != 4 {
		t.Fatalf("Channel = %+v", info)
	}

	msg(s1, `{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
	s2.Closed()
	fo.none(t)
	f3.none(t)
	s3.Closed()
	if got := fo.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"u\"}"}` {
		t.Fatalf("member_removed: %s", got)
	}
	fo.none(t)
	f1.none(t)
	if e.obs.count("member_added 1 presence-room u") != 1 || e.obs.count("member_removed 1 presence-room u") != 1 {
		t.Fatalf("observer %v", e.obs.calls)
	}
	users, _ := e.h.PresenceUsers(context.Background(), e.app, ch)
	if len(users) != 1 || users[0].ID != "observer" {
		t.Fatalf("PresenceUsers = %+v", users)
	}
	o.Closed()
	if info := e.channel(ch); info.Occupied || info.UserCount != 0 {
		t.Fatalf("Channel = %+v", info)
	}
	if e.obs.count("occupied 1 presence-room") != 1 || e.obs.count("vacated 1 presence-room") != 1 {
		t.Fatalf("observer %v", e.obs.calls)
	}
}

func TestPresenceMaxMembers(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.MaxPresenceMembers = 2 })
	const ch = "presence-small"
	a, fa := e.connect()
	b, fb := e.connect()
	c, fc := e.connect()
	a2, fa2 := e.connect()
	e.sub(a, fa, ch, `{"user_id":"a"}`)
	e.sub(b, fb, ch, `{"user_id":"b"}`)
	fa.drain(t)

	cd := `{"user_id":"c"}`
	msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, cd), cd))
	f := fc.next(t)
	if se := f.subErr(t); se.Type != "LimitReached" || se.Status != 4100 || f.Channel != ch {
		t.Fatalf("over the cap: %s", f.raw)
	}
	wantOpen(t, fc)
	fa.none(t)
	fb.none(t)
	if info := e.channel(ch); info.UserCount != 2 || info.SubscriptionCount != 2 {
		t.Fatalf("Channel = %+v", info)
	}
	// Another socket of a present user is not a new member.
	e.sub(a2, fa2, ch, `{"user_id":"a"}`)
	// Once someone leaves, c fits.
	b.Closed()
	fa.drain(t)
	e.sub(c, fc, ch, cd)
	if e.obs.count("member_added 1 presence-small c") != 1 {
		t.Fatal("MemberAdded for c")
	}
}

func TestPresenceRefusals(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.MaxPresenceMemberSizeKB = 1 })
	const ch = "presence-x"
	c, fc := e.connect()
	o, fo := e.connect()
	e.sub(o, fo, ch, `{"user_id":"o"}`)

	big := `{"user_id":"u","user_info":{"bio":"` + strings.Repeat("x", 1100) + `"}}`
	msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, big), big))
	if se := fc.next(t).subErr(t); se.Type != "LimitReached" {
		t.Fatalf("big user_info: %+v", se)
	}
	// Just under the limit is fine: user_info of exactly 1024 bytes.
	info := `"` + strings.Repeat("y", 1022) + `"`
	ok := `{"user_id":"u","user_info":` + info + `}`
	e.sub(c, fc, ch, ok)
	fo.next(t)
	msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"presence-x"}}`)
	fo.next(t)

	// channel_data as an object cannot be covered by a signature.
	auth := e.auth(c.SocketID(), ch, `{"user_id":"u"}`)
	msg(c, obj{"event": "pusher:subscribe", "data": obj{"channel": ch, "auth": auth, "channel_data": obj{"user_id": "u"}}})
	if se := fc.next(t).subErr(t); se.Type != "AuthError" || se.Status != 401 {
		t.Fatalf("object channel_data: %+v", se)
	}
	// Missing channel_data on a socket that is not signed in.
	msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, ""), ""))
	if se := fc.next(t).subErr(t); se.Type != "AuthError" || se.Status != 401 {
		t.Fatalf("missing channel_data: %+v", se)
	}
	// Signed, but not a valid member.
	for _, cd := range []string{`{"user_info":{}}`, `{"user_id":""}`, `{"user_id":true}`, `[1]`, `nope`} {
		msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, cd), cd))
		if se := fc.next(t).subErr(t); se.Status != 400 && se.Status != 401 {
			t.Fatalf("channel_data %s: %+v", cd, se)
		}
	}
	// Signed for another channel_data.
	msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, `{"user_id":"u"}`), `{"user_id":"admin"}`))
	if se := fc.next(t).subErr(t); se.Status != 401 {
		t.Fatalf("tampered channel_data: %+v", se)
	}
	fc.none(t)
	fo.none(t)
	wantOpen(t, fc)
	if info := e.channel(ch); info.UserCount != 1 || info.SubscriptionCount != 1 {
		t.Fatalf("Channel = %+v", info)
	}
}

// pusher-js may omit channel_data on a signed-in socket; the member is then
// the signed-in user and the signature covers "socket:channel".
func TestPresenceSignedInWithoutChannelData(t *testing.T) {
	e := newEnv(t, nil)
	const ch = "presence-cache-room"
	o, fo := e.connect()
	e.sub(o, fo, ch, `{"user_id":"o"}`)
	fo.drain(t)

	c, fc := e.connect()
	e.signin(c, fc, `{"id":"ada","user_info":{"name":"Ada"}}`)
	msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, ""), ""))
	r := rosterOf(t, fc.next(t))
	if strings.Join(r.Presence.IDs, ",") != "o,ada" || string(r.Presence.Hash["ada"]) != `{"name":"Ada"}` {
		t.Fatalf("roster %+v", r)
	}
	if f := fc.next(t); f.Event != protocol.EventCacheMiss {
		t.Fatalf("presence-cache: %s", f.raw)
	}
	if got := fo.nextRaw(t); got != `{"event":"pusher_internal:member_added","channel":"presence-cache-room","data":"{\"user_id\":\"ada\",\"user_info\":{\"name\":\"Ada\"}}"}` {
		t.Fatalf("member_added: %s", got)
	}
	c.Closed()
	if got := fo.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-cache-room","data":"{\"user_id\":\"ada\"}"}` {
		t.Fatalf("member_removed: %s", got)
	}
}

// Disconnecting releases the presence membership in every channel.
func TestPresenceDisconnectLeavesEveryChannel(t *testing.T) {
	e := newEnv(t, nil)
	o, fo := e.connect()
	c, fc := e.connect()
	for _, ch := range []string{"presence-a", "presence-b"} {
		e.sub(o, fo, ch, `{"user_id":"o"}`)
	}
	for _, ch := range []string{"presence-a", "presence-b"} {
		e.sub(c, fc, ch, `{"user_id":"c"}`)
	}
	fo.drain(t)
	c.Closed()
	got := map[string]bool{}
	for _, f := range fo.drain(t) {
		if f.Event != protocol.EventMemberRemoved {
			t.Fatalf("unexpected %s", f.raw)
		}
		got[f.Channel] = true
	}
	if !got["presence-a"] || !got["presence-b"] || len(got) != 2 {
		t.Fatalf("member_removed on %v", got)
	}
}
