package hub

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestPublicSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	msg(c, `{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`)
	f := fc.next(t)
	if string(f.raw) != `{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}` {
		t.Fatalf("got %s", f.raw)
	}
	if f.str(t) != "{}" {
		t.Fatal("data is not the string {}")
	}
	fc.none(t)
	if info := e.channel("my-channel"); !info.Occupied || info.SubscriptionCount != 1 || info.Kind != protocol.Public {
		t.Fatalf("Channel = %+v", info)
	}

	// Re-subscribing succeeds again without counting twice.
	msg(c, `{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`)
	if f := fc.next(t); f.Event != protocol.EventSubscriptionSucceeded || f.Channel != "my-channel" {
		t.Fatalf("re-subscribe: %s", f.raw)
	}
	fc.none(t)
	if n := e.channel("my-channel").SubscriptionCount; n != 1 {
		t.Fatalf("count after re-subscribe = %d", n)
	}
	if n := e.h.localCount(chanKey{"1", "my-channel"}); n != 1 {
		t.Fatalf("local count after re-subscribe = %d", n)
	}
	e.publish("ev", "x", "", "my-channel")
	if got := fc.nextRaw(t); got != `{"event":"ev","channel":"my-channel","data":"x"}` {
		t.Fatalf("publish: %s", got)
	}
	fc.none(t) // delivered once

	chs, err := e.h.Channels(context.Background(), e.app, "")
	if err != nil || len(chs) != 1 || chs[0].Name != "my-channel" || chs[0].SubscriptionCount != 1 {
		t.Fatalf("Channels = %+v, %v", chs, err)
	}

	msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}`)
	fc.none(t) // no acknowledgement
	if info := e.channel("my-channel"); info.Occupied || info.SubscriptionCount != 0 {
		t.Fatalf("after unsubscribe: %+v", info)
	}
	e.publish("ev", "x", "", "my-channel")
	fc.none(t)
	// Unsubscribing again, or from an unknown channel, is ignored.
	msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}`)
	msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"never"}}`)
	fc.none(t)
	wantOpen(t, fc)
	if chs, _ := e.h.Channels(context.Background(), e.app, ""); len(chs) != 0 {
		t.Fatalf("Channels = %+v", chs)
	}
	if e.obs.count("occupied 1 my-channel") != 1 || e.obs.count("vacated 1 my-channel") != 1 {
		t.Fatalf("observer: %v", e.obs.calls)
	}
}

func TestChannelsQuery(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	c2, fc2 := e.connect()
	e.sub(c, fc, "b-room", "")
	e.sub(c, fc, "a-room", "")
	e.sub(c2, fc2, "a-room", "")
	e.sub(c, fc, "presence-x", `{"user_id":"u"}`)
	e.sub(c2, fc2, "presence-x", `{"user_id":"u"}`)
	chs, err := e.h.Channels(context.Background(), e.app, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 3 || chs[0].Name != "a-room" || chs[1].Name != "b-room" || chs[2].Name != "presence-x" {
		t.Fatalf("Channels = %+v", chs)
	}
	if chs[0].SubscriptionCount != 2 || chs[2].UserCount != 1 || chs[2].SubscriptionCount != 2 || chs[2].Kind != protocol.Presence {
		t.Fatalf("Channels = %+v", chs)
	}
	chs, _ = e.h.Channels(context.Background(), e.app, "presence-")
	if len(chs) != 1 || chs[0].Name != "presence-x" {
		t.Fatalf("Channels(presence-) = %+v", chs)
	}
	// Other apps see nothing.
	other := testApp(func(a *apps.App) { a.ID = "2" })
	if chs, _ := e.h.Channels(context.Background(), other, ""); len(chs) != 0 {
		t.Fatalf("other app: %+v", chs)
	}
}

func TestInvalidChannelNames(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	long := strings.Repeat("a", 201)
	for _, name := range []string{"", "bad name", "foo$", "é", "#foo", "#server-to-user-", long, "private-" + long} {
		msg(c, subscribeMsg(name, "", ""))
		f := fc.next(t)
		se := f.subErr(t)
		if se.Type != "InvalidChannel" || se.Status != 400 || se.Error == "" {
			t.Fatalf("%q: %s", name, f.raw)
		}
		// pusher-js routes the error to the channel by its exact name.
		if f.Channel != name {
			t.Fatalf("error echoes channel %q, want %q", f.Channel, name)
		}
		fc.none(t)
		wantOpen(t, fc)
	}
	if chs, _ := e.h.Channels(context.Background(), e.app, ""); len(chs) != 0 {
		t.Fatalf("Channels = %+v", chs)
	}
	// 200 characters is allowed, and so is every allowed character.
	e.sub(c, fc, strings.Repeat("a", 200), "")
	e.sub(c, fc, "Az09_-=@,.;", "")
	e.sub(c, fc, "App.Models.User.1", "")
}

func TestMaxChannelNameLengthFromApp(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.MaxChannelNameLength = 10 })
	c, fc := e.connect()
	msg(c, subscribeMsg("abcdefghijk", "", ""))
	if se := fc.next(t).subErr(t); se.Type != "InvalidChannel" {
		t.Fatalf("%+v", se)
	}
	e.sub(c, fc, "abcdefghij", "")
}

func TestPrivateSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	for _, ch := range []string{"private-foobar", "private-encrypted-foobar", "private-cache-foo", "private-encrypted-cache-foo", "private-App.Models.User.1"} {
		f := e.sub(c, fc, ch, "")
		if f.str(t) != "{}" {
			t.Fatalf("%s: %s", ch, f.raw)
		}
		if protocol.Classify(ch).IsCache() {
			if f := fc.next(t); f.Event != protocol.EventCacheMiss {
				t.Fatalf("%s: %s", ch, f.raw)
			}
		}
		fc.none(t)
	}

	good := e.auth(c.SocketID(), "private-x", "")
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == '0' {
			b[len(b)-1] = '1'
		} else {
			b[len(b)-1] = '0'
		}
		return string(b)
	}
	otherSocket := e.auth("1.2", "private-x", "")
	otherChannel := e.auth(c.SocketID(), "private-y", "")
	bad := map[string]string{
		"forged":         flip(good),
		"wrong key":      "wrongkey" + good[len(testKey):],
		"missing":        "",
		"no colon":       strings.ReplaceAll(good, ":", ""),
		"key only":       testKey + ":",
		"other socket":   otherSocket,
		"other channel":  otherChannel,
		"upper-case hex": strings.ToUpper(good[:len(testKey)]) + good[len(testKey):],
	}
	for what, auth := range bad {
		msg(c, subscribeMsg("private-x", auth, ""))
		f := fc.next(t)
		se := f.subErr(t)
		if f.Channel != "private-x" || se.Type != "AuthError" || se.Status != 401 {
			t.Fatalf("%s: %s", what, f.raw)
		}
		fc.none(t)
		wantOpen(t, fc)
	}
	msg(c, `{"event":"pusher:subscribe","data":{"channel":"private-x"}}`)
	if se := fc.next(t).subErr(t); se.Status != 401 {
		t.Fatalf("auth absent: %+v", se)
	}
	if e.channel("private-x").Occupied {
		t.Fatal("refused subscription was counted")
	}
	e.publish("ev", "x", "", "private-x")
	fc.none(t)
	// A good token still works afterwards.
	e.sub(c, fc, "private-x", "")
}

// The protocol reference's §5.2 and §5.3 vectors, on socket 1234.1234.
func TestAuthVectors(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	forceSocketID(e.h, c, "1234.1234")
	msg(c, `{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}`)
	if got := fc.nextRaw(t); got != `{"event":"pusher_internal:subscription_succeeded","channel":"private-foobar","data":"{}"}` {
		t.Fatalf("§5.2: %s", got)
	}
	// One hex digit changed.
	msg(c, `{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a5","channel":"private-foobar2"}}`)
	if se := fc.next(t).subErr(t); se.Status != 401 {
		t.Fatalf("%+v", se)
	}
	wantOpen(t, fc)

	msg(c, `{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}","channel":"presence-foobar"}}`)
	f := fc.next(t)
	if got := string(f.raw); got != `{"event":"pusher_internal:subscription_succeeded","channel":"presence-foobar","data":"{\"presence\":{\"ids\":[\"10\"],\"hash\":{\"10\":{\"name\":\"Mr. Channels\"}},\"count\":1}}"}` {
		t.Fatalf("§5.3: %s", got)
	}
	users, err := e.h.PresenceUsers(context.Background(), e.app, "presence-foobar")
	if err != nil || len(users) != 1 || users[0].ID != "10" {
		t.Fatalf("PresenceUsers = %+v, %v", users, err)
	}

	// §5.5 sign-in vector.
	ud := `{"id":"12345","user_info":{"name":"Ada"},"watchlist":["67","89"]}`
	msg(c, obj{"event": "pusher:signin", "data": obj{"auth": "278d425bdf160c739803:6ca80c154c719885dfec98578ec04007b6b4b221f61821ba13548203ddaeda48", "user_data": ud}})
	if got := fc.nextRaw(t); got != `{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"12345\\\",\\\"user_info\\\":{\\\"name\\\":\\\"Ada\\\"},\\\"watchlist\\\":[\\\"67\\\",\\\"89\\\"]}\"}"}` {
		t.Fatalf("§5.5: %s", got)
	}
	e.sub(c, fc, "#server-to-user-12345", "")
	fc.none(t)
	c.Closed()
	if e.h.Connections("1") != 0 || e.channel("presence-foobar").Occupied {
		t.Fatal("not released")
	}
}

func TestUnsubscribeFromOneOfSeveral(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	e.sub(c, fc, "a", "")
	e.sub(c, fc, "b", "")
	msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"a"}}`)
	e.publish("ev", "1", "", "a", "b")
	if got := fc.nextRaw(t); got != `{"event":"ev","channel":"b","data":"1"}` {
		t.Fatalf("got %s", got)
	}
	fc.none(t)
}

func TestPresenceUsersErrors(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.h.PresenceUsers(context.Background(), e.app, "private-x"); !errors.Is(err, ErrNotPresence) {
		t.Fatalf("private channel: %v", err)
	}
	if _, err := e.h.PresenceUsers(context.Background(), e.app, "x"); !errors.Is(err, ErrNotPresence) {
		t.Fatalf("public channel: %v", err)
	}
	users, err := e.h.PresenceUsers(context.Background(), e.app, "presence-empty")
	if err != nil || len(users) != 0 {
		t.Fatalf("empty channel: %v %v", users, err)
	}
}
