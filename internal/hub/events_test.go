package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

func TestCacheChannel(t *testing.T) {
	e := newEnv(t, nil) // CacheTTL: 1 minute
	a, fa := e.connect()
	e.sub(a, fa, "cache-btc", "")
	if got := fa.nextRaw(t); got != `{"event":"pusher:cache_miss","channel":"cache-btc"}` {
		t.Fatalf("cache miss: %s", got)
	}
	fa.none(t)
	if e.obs.count("cache_miss 1 cache-btc") != 1 {
		t.Fatal("CacheMiss not observed")
	}
	if info := e.channel("cache-btc"); info.Cache != nil || info.Kind != protocol.Cache {
		t.Fatalf("Channel = %+v", info)
	}

	e.publish("price-updated", `{"usd":64000}`, "", "cache-btc")
	const want = `{"event":"price-updated","channel":"cache-btc","data":"{\"usd\":64000}"}`
	if got := fa.nextRaw(t); got != want {
		t.Fatalf("live: %s", got)
	}

	b, fb := e.connect()
	e.sub(b, fb, "cache-btc", "")
	if got := fb.nextRaw(t); got != want {
		t.Fatalf("replay right after succeeded: %s", got)
	}
	fb.none(t)
	fa.none(t)

	info := e.channel("cache-btc")
	if info.Cache == nil || info.Cache.Event != "price-updated" || info.Cache.Data != `{"usd":64000}` || info.Cache.TTL != 60 {
		t.Fatalf("Channel = %+v cache %+v", info, info.Cache)
	}
	e.clk.Advance(20*time.Second + 500*time.Millisecond)
	if ttl := e.channel("cache-btc").Cache.TTL; ttl != 40 { // rounded up
		t.Fatalf("TTL = %d, want 40", ttl)
	}
	e.clk.Advance(39 * time.Second)
	if e.channel("cache-btc").Cache == nil {
		t.Fatal("expired early")
	}
	e.clk.Advance(time.Second)
	if c := e.channel("cache-btc").Cache; c != nil {
		t.Fatalf("cache after TTL: %+v", c)
	}
	c, fc := e.connect()
	e.sub(c, fc, "cache-btc", "")
	if f := fc.next(t); f.Event != protocol.EventCacheMiss {
		t.Fatalf("after expiry: %s", f.raw)
	}
	if e.obs.count("cache_miss 1 cache-btc") != 2 {
		t.Fatal("second CacheMiss not observed")
	}
}

func TestCacheWithoutSubscribers(t *testing.T) {
	e := newEnv(t, nil)
	e.publish("ev", "one", "", "private-cache-x", "presence-cache-y", "private-encrypted-cache-z", "not-cache")
	c, fc := e.connect()
	e.sub(c, fc, "private-cache-x", "")
	if got := fc.nextRaw(t); got != `{"event":"ev","channel":"private-cache-x","data":"one"}` {
		t.Fatalf("got %s", got)
	}
	e.sub(c, fc, "presence-cache-y", `{"user_id":"u"}`)
	if got := fc.nextRaw(t); got != `{"event":"ev","channel":"presence-cache-y","data":"one"}` {
		t.Fatalf("got %s", got)
	}
	e.sub(c, fc, "private-encrypted-cache-z", "")
	if got := fc.nextRaw(t); got != `{"event":"ev","channel":"private-encrypted-cache-z","data":"one"}` {
		t.Fatalf("got %s", got)
	}
	e.sub(c, fc, "not-cache", "")
	fc.none(t)
	if e.channel("not-cache").Cache != nil {
		t.Fatal("non-cache channel has a cache")
	}
	// The last event wins.
	e.publish("ev2", "two", "", "private-cache-x")
	fc.next(t)
	d, fd := e.connect()
	e.sub(d, fd, "private-cache-x", "")
	if got := fd.nextRaw(t); got != `{"event":"ev2","channel":"private-cache-x","data":"two"}` {
		t.Fatalf("got %s", got)
	}
}

// Client events do not populate the cache.
func TestClientEventsNotCached(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableClientMessages = true })
	c, fc := e.connect()
	e.sub(c, fc, "private-cache-x", "")
	fc.next(t) // miss
	msg(c, `{"event":"client-x","channel":"private-cache-x","data":{}}`)
	d, fd := e.connect()
	e.sub(d, fd, "private-cache-x", "")
	if f := fd.next(t); f.Event != protocol.EventCacheMiss {
		t.Fatalf("got %s", f.raw)
	}
}

func clientEnv(t *testing.T) *env {
	return newEnv(t, func(a *apps.App) { a.EnableClientMessages = true })
}

func TestClientEventsDisabled(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	o, fo := e.connect()
	e.sub(c, fc, "private-x", "")
	e.sub(o, fo, "private-x", "")
	msg(c, `{"event":"client-typing","channel":"private-x","data":{}}`)
	wantErrFrame(t, fc.next(t), 4301, "client messaging enabled")
	fo.none(t)
	wantOpen(t, fc)
}

func TestClientEventRefusals(t *testing.T) {
	e := clientEnv(t)
	c, fc := e.connect()
	o, fo := e.connect()
	for _, ch := range []string{"public", "cache-x", "private-encrypted-x", "private-encrypted-cache-x"} {
		e.sub(c, fc, ch, "")
		e.sub(o, fo, ch, "")
		fc.drain(t)
		fo.drain(t)
		msg(c, `{"event":"client-typing","channel":"`+ch+`","data":{}}`)
		wantErrFrame(t, fc.next(t), 4301, "only allowed on private and presence")
		fo.none(t)
	}
	// Not subscribed.
	e.sub(o, fo, "private-y", "")
	msg(c, `{"event":"client-typing","channel":"private-y","data":{}}`)
	wantErrFrame(t, fc.next(t), 4009, "not a member")
	fo.none(t)
	// No channel.
	msg(c, `{"event":"client-typing","data":{}}`)
	wantErrFrame(t, fc.next(t), 4301, "channel")
	// Name too long, data too big.
	e.sub(c, fc, "private-y", "")
	msg(c, `{"event":"client-`+strings.Repeat("n", 200)+`","channel":"private-y","data":{}}`)
	wantErrFrame(t, fc.next(t), 4301, "too long")
	msg(c, `{"event":"client-big","channel":"private-y","data":"`+strings.Repeat("x", 100*1024)+`"}`)
	wantErrFrame(t, fc.next(t), 4301, "larger")
	fo.none(t)
	fc.none(t)
	wantOpen(t, fc)
	if len(e.obs.events) != 0 {
		t.Fatalf("ClientEvent observed for refused events: %v", e.obs.events)
	}
}

func TestClientEventDelivery(t *testing.T) {
	e := clientEnv(t)
	s, fs := e.connect()
	a, fa := e.connect()
	b, fb := e.connect()
	n, fn := e.connect() // on another channel
	for _, x := range []struct {
		c  *Client
		fc *fakeConn
	}{{s, fs}, {a, fa}, {b, fb}} {
		e.sub(x.c, x.fc, "private-chat", "")
	}
	e.sub(n, fn, "private-other", "")

	// data relayed byte-for-byte: spacing, number forms, escapes, key order.
	in := `{"event":"client-typing","channel":"private-chat","data":{"z": 1,  "a":[1.50,"x\u00e9\n"], "n":null}}`
	msg(s, in)
	want := `{"event":"client-typing","channel":"private-chat","data":{"z": 1,  "a":[1.50,"x\u00e9\n"], "n":null}}`
	for _, fc := range []*fakeConn{fa, fb} {
		if got := fc.nextRaw(t); got != want {
			t.Fatalf("relayed\n got %s\nwant %s", got, want)
		}
		fc.none(t)
	}
	fs.none(t) // never echoed
	fn.none(t)

	// String data stays a string.
	msg(s, `{"event":"client-s","channel":"private-chat","data":"plain \"text\""}`)
	if got := fa.nextRaw(t); got != `{"event":"client-s","channel":"private-chat","data":"plain \"text\""}` {
		t.Fatalf("string data: %s", got)
	}
	fb.next(t)
	if len(e.obs.events) != 2 || e.obs.events[0] != `1 private-chat client-typing {"z": 1,  "a":[1.50,"x\u00e9\n"], "n":null} `+s.SocketID()+" " {
		t.Fatalf("observer %q", e.obs.events)
	}
}

func TestClientEventOnPresenceCarriesUserID(t *testing.T) {
	e := clientEnv(t)
	s, fs := e.connect()
	o, fo := e.connect()
	e.sub(s, fs, "presence-room", `{"user_id":42,"user_info":{"name":"Ada"}}`)
	e.sub(o, fo, "presence-room", `{"user_id":"o"}`)
	fs.drain(t)
	msg(s, `{"event":"client-typing","channel":"presence-room","data":{"name":"Ada"}}`)
	f := fo.next(t)
	if string(f.raw) != `{"event":"client-typing","channel":"presence-room","data":{"name":"Ada"},"user_id":"42"}` {
		t.Fatalf("got %s", f.raw)
	}
	fs.none(t)
	if len(e.obs.events) != 1 || !strings.HasSuffix(e.obs.events[0], " "+s.SocketID()+" 42") {
		t.Fatalf("observer %q", e.obs.events)
	}
	// A private channel carries no user_id, even for a signed-in socket.
	e.signin(s, fs, `{"id":"ada"}`)
	e.sub(s, fs, "private-x", "")
	e.sub(o, fo, "private-x", "")
	msg(s, `{"event":"client-typing","channel":"private-x","data":{}}`)
	if f := fo.next(t); f.UserID != nil {
		t.Fatalf("private client event with user_id: %s", f.raw)
	}
}

func TestClientEventRateLimit(t *testing.T) {
	e := clientEnv(t) // 10 per second
	s, fs := e.connect()
	o, fo := e.connect()
	e.sub(s, fs, "private-x", "")
	e.sub(o, fo, "private-x", "")
	ev := `{"event":"client-x","channel":"private-x","data":{}}`
	for i := range 10 {
		msg(s, ev)
		fs.none(t)
		if f := fo.next(t); f.Event != "client-x" {
			t.Fatalf("event %d: %s", i, f.raw)
		}
	}
	msg(s, ev)
	wantErrFrame(t, fs.next(t), 4301, "rate limit")
	fo.none(t)
	wantOpen(t, fs)

	e.clk.Advance(100 * time.Millisecond) // one token back
	msg(s, ev)
	fo.next(t)
	msg(s, ev)
	wantErrFrame(t, fs.next(t), 4301, "rate limit")

	e.clk.Advance(time.Second) // full bucket again, never more than 10
	for range 10 {
		msg(s, ev)
		fo.next(t)
	}
	fs.none(t)
	msg(s, ev)
	wantErrFrame(t, fs.next(t), 4301, "rate limit")
	if len(e.obs.events) != 21 {
		t.Fatalf("ClientEvent observed %d times, want 21", len(e.obs.events))
	}
	// The limit is per connection.
	msg(o, ev)
	if f := fs.next(t); f.Event != "client-x" {
		t.Fatalf("other connection: %s", f.raw)
	}
}

func TestClientEventNoRateLimit(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.EnableClientMessages = true; a.ClientEventsPerSecond = -1 })
	s, fs := e.connect()
	o, fo := e.connect()
	e.sub(s, fs, "private-x", "")
	e.sub(o, fo, "private-x", "")
	for range 100 {
		msg(s, `{"event":"client-x","channel":"private-x","data":{}}`)
	}
	fs.none(t)
	if n := len(fo.drain(t)); n != 100 {
		t.Fatalf("delivered %d", n)
	}
}
