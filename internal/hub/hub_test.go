package hub

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

var socketIDRe = regexp.MustCompile(`^\d+\.\d+$`)

func TestConnectionEstablished(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.ActivityTimeout = 45 * time.Second })
	fc := &fakeConn{}
	c, err := e.h.connectApp(e.app, fc)
	if err != nil {
		t.Fatal(err)
	}
	f := fc.next(t)
	if f.Event != protocol.EventConnectionEstablished || f.Channel != "" {
		t.Fatalf("first frame %s", f.raw)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	f.inner(t, &d)
	if !socketIDRe.MatchString(d.SocketID) || d.SocketID != c.SocketID() {
		t.Fatalf("socket_id %q (client says %q)", d.SocketID, c.SocketID())
	}
	if d.ActivityTimeout != 45 {
		t.Fatalf("activity_timeout %d, want 45", d.ActivityTimeout)
	}
	fc.none(t)
	if c.App() != e.app {
		t.Fatal("App() is not the app connected to")
	}
	if n := e.h.Connections(e.app.ID); n != 1 {
		t.Fatalf("Connections = %d", n)
	}
	if e.obs.count("opened 1") != 1 {
		t.Fatal("ConnectionOpened not called")
	}
	c.Closed()
	c.Closed() // idempotent
	if n := e.h.Connections(e.app.ID); n != 0 {
		t.Fatalf("Connections after disconnect = %d", n)
	}
	if e.obs.count("closed 1") != 1 {
		t.Fatalf("ConnectionClosed called %d times", e.obs.count("closed 1"))
	}
}

func TestSocketIDsAreUnique(t *testing.T) {
	e := newEnv(t, nil)
	seen := map[string]bool{}
	for range 500 {
		c, _ := e.connect()
		if seen[c.SocketID()] {
			t.Fatalf("duplicate socket id %s", c.SocketID())
		}
		seen[c.SocketID()] = true
	}
	if n := e.h.Connections("1"); n != 500 {
		t.Fatalf("Connections = %d", n)
	}
}

func TestConnectQuota(t *testing.T) {
	e := newEnv(t, func(a *apps.App) { a.MaxConnections = 2 })
	other := testApp(func(a *apps.App) { a.ID, a.Key = "2", "otherkey" })
	c1, _ := e.connect()
	e.connect()
	_, err := e.h.connectApp(e.app, &fakeConn{})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Code != protocol.CodeOverQuota || ce.CloseCode() != 4004 {
		t.Fatalf("third connection: %v, want ConnectError 4004", err)
	}
	if ce.Error() == "" {
		t.Fatal("empty error message")
	}
	if n := e.h.Connections("1"); n != 2 {
		t.Fatalf("Connections = %d after refusal", n)
	}
	// Quotas are per app.
	if _, err := e.h.connectApp(other, &fakeConn{}); err != nil {
		t.Fatalf("other app: %v", err)
	}
	c1.Closed()
	if _, err := e.h.connectApp(e.app, &fakeConn{}); err != nil {
		t.Fatalf("after a disconnect: %v", err)
	}
	if n := e.h.Connections("1"); n != 2 {
		t.Fatalf("Connections = %d", n)
	}
	if n := e.h.Connections("2"); n != 1 {
		t.Fatalf("Connections(2) = %d", n)
	}
}

func TestConnectWhileDraining(t *testing.T) {
	e := newEnv(t, nil)
	if e.h.Draining() {
		t.Fatal("draining before Drain")
	}
	if err := e.h.Drain(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if !e.h.Draining() {
		t.Fatal("not draining after Drain")
	}
	_, err := e.h.connectApp(e.app, &fakeConn{})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.CloseCode() != protocol.CodeReconnect {
		t.Fatalf("Connect while draining: %v, want ConnectError 4200", err)
	}
	if n := e.h.Connections("1"); n != 0 {
		t.Fatalf("Connections = %d", n)
	}
}

func TestDrainClosesEveryClient(t *testing.T) {
	e := newEnv(t, nil)
	var conns []*fakeConn
	for range 45 {
		_, fc := e.connect()
		conns = append(conns, fc)
	}
	start := time.Now()
	if err := e.h.Drain(context.Background(), 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Drain took %v for a 40ms window", d)
	}
	for _, fc := range conns {
		wantClosed(t, fc, protocol.CodeReconnect)
		wantErrFrame(t, fc.next(t), protocol.CodeReconnect, "shutting down")
		fc.none(t)
	}
}

func TestDrainHonoursContext(t *testing.T) {
	e := newEnv(t, nil)
	var conns []*fakeConn
	for range 40 {
		_, fc := e.connect()
		conns = append(conns, fc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.h.Drain(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain: %v", err)
	}
	for _, fc := range conns {
		wantClosed(t, fc, protocol.CodeReconnect)
	}
}

func TestPingPong(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	msg(c, `{"event":"pusher:ping","data":{}}`)
	if got := fc.nextRaw(t); got != `{"event":"pusher:pong","data":{}}` {
		t.Fatalf("pong: %s", got)
	}
	msg(c, `{"event":"pusher:ping"}`)
	if got := fc.nextRaw(t); got != `{"event":"pusher:pong","data":{}}` {
		t.Fatalf("pong: %s", got)
	}
	// A pong from the client needs no answer.
	msg(c, `{"event":"pusher:pong","data":{}}`)
	fc.none(t)
	wantOpen(t, fc)
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{`not json`, "Invalid message: not valid JSON"},
		{`{"event":`, "Invalid message: not valid JSON"},
		{``, "Invalid message: not valid JSON"},
		{`[1,2]`, "Invalid message: not valid JSON"},
		{`"pusher:ping"`, "Invalid message: not valid JSON"},
		{`42`, "Invalid message: not valid JSON"},
		{`{}`, "event"},
		{`{"data":{}}`, "event"},
		{`{"event":5}`, "event"},
		{`{"event":""}`, "event"},
		{`{"event":null}`, "event"},
		{`{"event":"pusher:foo"}`, "Unknown event: pusher:foo"},
		{`{"event":"pusher_internal:member_added","data":"{}"}`, "Unknown event: pusher_internal:member_added"},
		{`{"event":"my-event","channel":"x","data":"{}"}`, "my-event"},
		{`{"event":"pusher:subscribe"}`, "data"},
		{`{"event":"pusher:subscribe","data":{"auth":""}}`, "channel"},
		{`{"event":"pusher:subscribe","data":[1]}`, "object"},
		{`{"event":"pusher:subscribe","data":{"channel":5}}`, "Invalid message"},
		{`{"event":"pusher:unsubscribe","data":{}}`, "channel"},
		{`{"event":"pusher:signin","data":{"auth":"x"}}`, "user_data"},
		{`{"event":"pusher:ping","channel":5}`, "channel"},
		// Event names are cut at 64 bytes on a character boundary: "é"
		// and "😀" straddle the cut and are left out whole.
		{`{"event":"pusher:` + strings.Repeat("a", 56) + `é"}`, "Unknown event: pusher:" + strings.Repeat("a", 56) + "…"},
		{`{"event":"` + strings.Repeat("b", 62) + `😀x"}`, "Invalid event " + strings.Repeat("b", 62) + "…: clients"},
	}
	e := newEnv(t, nil)
	c, fc := e.connect()
	for _, tc := range cases {
		msg(c, tc.in)
		f := fc.next(t)
		wantErrFrame(t, f, 0, tc.want)
		if f.Channel != "" {
			t.Errorf("%s: error has a channel: %s", tc.in, f.raw)
		}
		fc.none(t)
		wantOpen(t, fc)
	}
	// Still served.
	msg(c, `{"event":"pusher:ping"}`)
	if f := fc.next(t); f.Event != protocol.EventPong {
		t.Fatalf("after bad input: %s", f.raw)
	}
}

// Clients may send data as a JSON string holding the object (§2).
func TestDataAsString(t *testing.T) {
	e := newEnv(t, nil)
	c, fc := e.connect()
	msg(c, `{"event":"pusher:subscribe","data":"{\"channel\":\"my-channel\",\"auth\":\"\"}"}`)
	if got := fc.nextRaw(t); got != `{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}` {
		t.Fatalf("got %s", got)
	}
	msg(c, `{"event":"pusher:unsubscribe","data":"{\"channel\":\"my-channel\"}"}`)
	fc.none(t)
	if e.channel("my-channel").Occupied {
		t.Fatal("still occupied")
	}
}

// Run drives sweep and flushCounts on its tickers and stops with ctx.
func TestRun(t *testing.T) {
	h := New(withMemoryEngine(Options{SubscriptionCountInterval: 5 * time.Millisecond}))
	app := testApp(func(a *apps.App) { a.EnableSubscriptionCount = true })
	fc := &fakeConn{}
	c, err := h.connectApp(app, fc)
	if err != nil {
		t.Fatal(err)
	}
	msg(c, subscribeMsg("room", "", ""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	if !testwait.Until(5*time.Second, func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return len(fc.frames) >= 3
	}) {
		t.Fatal("no subscription_count from Run")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fc.next(t)
	fc.next(t)
	if got := fc.nextRaw(t); got != `{"event":"pusher_internal:subscription_count","channel":"room","data":"{\"subscription_count\":1}"}` {
		t.Fatalf("got %s", got)
	}
}
