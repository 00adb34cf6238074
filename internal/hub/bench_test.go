package hub

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// benchHub is a hub without an observer, whose clients' Send does nothing.
func benchHub(b *testing.B, mut func(*apps.App)) (*Hub, *apps.App) {
	b.Helper()
	app := testApp(mut)
	return New(withMemoryEngine(Options{Now: time.Now})), app
}

func benchClient(b *testing.B, h *Hub, app *apps.App) *Client {
	b.Helper()
	c, err := h.connectApp(app, nopConn{})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchSubscribe(h *Hub, app *apps.App, c *Client, channel, channelData string) []byte {
	auth := ""
	if protocol.Classify(channel).NeedsAuth() {
		auth = app.Key + ":" + protocol.Sign(app.Secret, protocol.ChannelAuthString(c.SocketID(), channel, channelData))
	}
	d := `{"channel":"` + channel + `","auth":"` + auth + `"`
	if channelData != "" {
		d += `,"channel_data":` + strconv.Quote(channelData)
	}
	return []byte(`{"event":"pusher:subscribe","data":` + d + `}}`)
}

// BenchmarkPublish is one API event on one channel; the design goal is a
// constant number of allocations whatever the number of subscribers.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h, app := benchHub(b, nil)
			for range n {
				c := benchClient(b, h, app)
				c.HandleMessage(benchSubscribe(h, app, c, "room", ""))
			}
			if got := h.localCount(chanKey{app.ID, "room"}); got != n {
				b.Fatalf("%d subscribers", got)
			}
			req := PublishRequest{Name: "price-updated", Channels: []string{"room"}, Data: `{"usd":64000,"eur":59000}`}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := h.Publish(ctx, app, req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkPublishFramed is BenchmarkPublish for 100 subscribers with a
// framer that copies (as a WebSocket framer must) and an observer.
func BenchmarkPublishFramed(b *testing.B) {
	app := testApp(nil)
	h := New(withMemoryEngine(Options{Now: time.Now, Observer: nopObserver{}, Framer: func(p []byte) []byte {
		f := make([]byte, 0, len(p)+4)
		f = append(f, 0x81, byte(len(p)))
		return append(f, p...)
	}}))
	for range 100 {
		c := benchClient(b, h, app)
		c.HandleMessage(benchSubscribe(h, app, c, "room", ""))
	}
	req := PublishRequest{Name: "ev", Channels: []string{"room"}, Data: `{"usd":64000}`}
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Publish(context.Background(), app, req)
	}
}

// BenchmarkPresenceJoinLeave is one socket joining and leaving a presence
// channel that holds other members (roster to the joiner, member_added and
// member_removed to the others).
func BenchmarkPresenceJoinLeave(b *testing.B) {
	for _, members := range []int{10, 100} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			h, app := benchHub(b, func(a *apps.App) { a.MaxPresenceMembers = 1000 })
			const ch = "presence-room"
			for i := range members {
				c := benchClient(b, h, app)
				c.HandleMessage(benchSubscribe(h, app, c, ch, fmt.Sprintf(`{"user_id":"member-%d","user_info":{"name":"M %d"}}`, i, i)))
			}
			c := benchClient(b, h, app)
			join := benchSubscribe(h, app, c, ch, `{"user_id":"joiner","user_info":{"name":"Ada"}}`)
			leave := []byte(`{"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}`)
			b.ReportAllocs()
			for b.Loop() {
				c.HandleMessage(join)
				c.HandleMessage(leave)
			}
			if info, _ := h.Channel(context.Background(), app, ch); info.UserCount != members {
				b.Fatalf("%d members", info.UserCount)
			}
		})
	}
}

// BenchmarkClientEvent is one client event on a private channel with 100
// subscribers.
func BenchmarkClientEvent(b *testing.B) {
	h, app := benchHub(b, func(a *apps.App) { a.EnableClientMessages = true; a.ClientEventsPerSecond = -1 })
	var sender *Client
	for range 100 {
		c := benchClient(b, h, app)
		c.HandleMessage(benchSubscribe(h, app, c, "private-chat", ""))
		sender = c
	}
	ev := []byte(`{"event":"client-typing","channel":"private-chat","data":{"name":"Ada","typing":true}}`)
	b.ReportAllocs()
	for b.Loop() {
		sender.HandleMessage(ev)
	}
}

type nopObserver struct{}

func (nopObserver) ConnectionOpened(string)                                    {}
func (nopObserver) ConnectionClosed(string)                                    {}
func (nopObserver) ChannelOccupied(string, string)                             {}
func (nopObserver) ChannelVacated(string, string)                              {}
func (nopObserver) MemberAdded(string, string, string)                         {}
func (nopObserver) MemberRemoved(string, string, string)                       {}
func (nopObserver) ClientEvent(string, string, string, []byte, string, string) {}
func (nopObserver) CacheMiss(string, string)                                   {}
func (nopObserver) SubscriptionCount(string, string, int)                      {}
func (nopObserver) Published(string, string, string, int)                      {}

// BenchmarkSubscribeUnsubscribe is what a churning connection asks of the
// hub besides its connect and close: a subscribe and an unsubscribe of a
// public channel that another socket keeps occupied.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	h, app := benchHub(b, nil)
	other := benchClient(b, h, app)
	other.HandleMessage(benchSubscribe(h, app, other, "bench-3", ""))
	c := benchClient(b, h, app)
	sub := []byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`)
	unsub := []byte(`{"event":"pusher:unsubscribe","data":{"channel":"bench-3"}}`)
	b.ReportAllocs()
	for b.Loop() {
		c.HandleMessage(sub)
		c.HandleMessage(unsub)
	}
	if got := h.localCount(chanKey{app.ID, "bench-3"}); got != 1 {
		b.Fatalf("%d subscribers", got)
	}
}

// TestSubscriptionCycleAllocs: a subscribe and an unsubscribe of a public
// channel on the memory engine allocate 11 objects (the subscription, the
// reply, the decoded names, the State contexts): 46 at 3a14d0c, through
// encoding/json and a context with a runtime timer per State call, 15 with
// the decoding's fast path alone.
func TestSubscriptionCycleAllocs(t *testing.T) {
	h := New(withMemoryEngine(Options{Now: time.Now}))
	app := testApp(nil)
	other, err := h.connectApp(app, nopConn{})
	if err != nil {
		t.Fatal(err)
	}
	sub := []byte(`{"event":"pusher:subscribe","data":{"auth":"","channel":"bench-3"}}`)
	unsub := []byte(`{"event":"pusher:unsubscribe","data":{"channel":"bench-3"}}`)
	other.HandleMessage(sub)
	c, err := h.connectApp(app, nopConn{})
	if err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		c.HandleMessage(sub)
		c.HandleMessage(unsub)
	})
	if got := h.localCount(chanKey{app.ID, "bench-3"}); got != 1 {
		t.Fatalf("%d subscribers after the cycles, want 1", got)
	}
	if n > 11 {
		t.Errorf("%.0f allocations per subscribe and unsubscribe, want at most 11", n)
	}
}

// TestConnectAllocs bounds what admitting a connection and its close cost
// the hub: 6 allocations, the socket id in one of them (8 when it was built
// from two FormatUint and a concatenation).
func TestConnectAllocs(t *testing.T) {
	h := New(withMemoryEngine(Options{Now: time.Now}))
	app := testApp(nil)
	var err error
	n := testing.AllocsPerRun(200, func() {
		var c *Client
		if c, err = h.connectApp(app, nopConn{}); err == nil {
			c.Closed()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n > 6 {
		t.Errorf("%.0f allocations per connect and close, want at most 6", n)
	}
}
