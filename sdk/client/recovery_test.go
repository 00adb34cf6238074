package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/herald-ws/herald/sdk/client"
)

// fakeHerald speaks Herald's history wire format (docs/recovery.md) with a
// script the test controls: channels named orders-* (and private-orders-*)
// have history; publish appends an event and sends it with its position to
// the connected subscribers; a subscription with recover gets the missed
// events, then herald:recovery.
type fakeHerald struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	conns      map[*fakeConn]bool
	history    map[string]*fakeHistory
	subscribes []map[string]json.RawMessage // every pusher:subscribe data, in order
	limits     []int                        // replay limits of the next recoveries (then a cut)
	epochs     int
}

type fakeHistory struct {
	epoch  string
	events []string // data of each event, offset = index+1
}

type fakeConn struct {
	ws   *websocket.Conn
	subs map[string]bool
	dead bool
}

func newFakeHerald(t *testing.T) *fakeHerald {
	f := &fakeHerald{t: t, conns: map[*fakeConn]bool{}, history: map[string]*fakeHistory{}}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &fakeConn{ws: ws, subs: map[string]bool{}}
		f.mu.Lock()
		f.conns[c] = true
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.`+strconv.Itoa(len(f.conns))+`\",\"activity_timeout\":120}"}`))
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
			ws.Close()
		}()
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct {
				Event string                     `json:"event"`
				Data  map[string]json.RawMessage `json:"data"`
			}
			if json.Unmarshal(msg, &m) != nil {
				continue
			}
			switch m.Event {
			case "pusher:subscribe":
				f.subscribe(c, m.Data)
			case "pusher:unsubscribe":
				var name string
				_ = json.Unmarshal(m.Data["channel"], &name)
				f.mu.Lock()
				delete(c.subs, name)
				f.mu.Unlock()
			}
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHerald) port() int {
	p, _ := strconv.Atoi(f.srv.URL[strings.LastIndexByte(f.srv.URL, ':')+1:])
	return p
}

// hist returns name's history (nil without), creating it (c.mu held).
func (f *fakeHerald) hist(name string) *fakeHistory {
	if !strings.HasPrefix(name, "orders-") && !strings.HasPrefix(name, "private-orders-") {
		return nil
	}
	h := f.history[name]
	if h == nil {
		f.epochs++
		h = &fakeHistory{epoch: "e" + strconv.Itoa(f.epochs)}
		f.history[name] = h
	}
	return h
}

func (f *fakeHerald) send(c *fakeConn, v any) {
	b, _ := json.Marshal(v)
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

func (f *fakeHerald) event(name string, h *fakeHistory, off int) map[string]any {
	return map[string]any{"event": "tick", "channel": name, "data": h.events[off-1], "position": client.Position{Epoch: h.epoch, Offset: uint64(off)}}
}

func (f *fakeHerald) subscribe(c *fakeConn, data map[string]json.RawMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subscribes = append(f.subscribes, data)
	var name string
	_ = json.Unmarshal(data["channel"], &name)
	h := f.hist(name)
	ok := map[string]any{"event": "pusher_internal:subscription_succeeded", "channel": name, "data": "{}"}
	if h != nil {
		ok["position"] = client.Position{Epoch: h.epoch, Offset: uint64(len(h.events))}
	}
	f.send(c, ok)
	c.subs[name] = true
	if data["recover"] == nil {
		return
	}
	var rec client.Position
	_ = json.Unmarshal(data["recover"], &rec)
	report := func(d map[string]any) {
		b, _ := json.Marshal(d)
		f.send(c, map[string]any{"event": "herald:recovery", "channel": name, "data": string(b)})
	}
	if h == nil {
		report(map[string]any{"recovered": false, "reason": "no_history", "position": nil})
		return
	}
	top := client.Position{Epoch: h.epoch, Offset: uint64(len(h.events))}
	if rec.Epoch != h.epoch {
		report(map[string]any{"recovered": false, "reason": "epoch_changed", "position": top})
		return
	}
	limit := -1
	if len(f.limits) > 0 {
		limit, f.limits = f.limits[0], f.limits[1:]
	}
	sent := 0
	for off := int(rec.Offset) + 1; off <= len(h.events); off++ {
		if sent == limit {
			c.dead = true
			_ = c.ws.UnderlyingConn().Close() // the network goes mid-replay
			return
		}
		f.send(c, f.event(name, h, off))
		sent++
	}
	report(map[string]any{"recovered": true, "replayed": sent, "position": top})
}

// publish appends events to name's history and sends them to its live
// subscribers.
func (f *fakeHerald) publish(name string, data ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hist(name)
	for _, d := range data {
		var frame map[string]any
		if h != nil {
			h.events = append(h.events, d)
			frame = f.event(name, h, len(h.events))
		} else {
			frame = map[string]any{"event": "tick", "channel": name, "data": d}
		}
		for c := range f.conns {
			if c.subs[name] && !c.dead {
				f.send(c, frame)
			}
		}
	}
}

// cut closes every connection with 4200 (the client reconnects at once);
// nothing more is sent on them, so what is published next is missed.
func (f *fakeHerald) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.dead = true
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4200, "cut"), time.Now().Add(time.Second))
	}
}

func (f *fakeHerald) loseHistory(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.history, name)
	f.hist(name)
}

func (f *fakeHerald) epoch(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hist(name).epoch
}

// subscribesOf returns the pusher:subscribe data for channel from index from.
func (f *fakeHerald) subscribesOf(channel string, from int) []map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]json.RawMessage
	for _, d := range f.subscribes[from:] {
		if string(d["channel"]) == strconv.Quote(channel) {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeHerald) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subscribes)
}

// recorder keeps a channel's tick data and recoveries in arrival order.
type recorder struct {
	mu         sync.Mutex
	ticks      []string
	positions  []client.Position
	recoveries []client.Recovery
}

func record(ch *client.Channel) *recorder {
	r := &recorder{}
	ch.Bind("tick", func(e client.Event) {
		r.mu.Lock()
		r.ticks = append(r.ticks, string(e.Data))
		r.positions = append(r.positions, e.Position)
		r.mu.Unlock()
	})
	ch.OnRecovery(func(rec client.Recovery) {
		r.mu.Lock()
		r.recoveries = append(r.recoveries, rec)
		r.mu.Unlock()
	})
	return r
}

func (r *recorder) snapshot() ([]string, []client.Recovery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ticks...), append([]client.Recovery(nil), r.recoveries...)
}

func (r *recorder) waitTicks(t *testing.T, n int) []string {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d ticks", n), func() bool { got, _ := r.snapshot(); return len(got) >= n })
	got, _ := r.snapshot()
	return got
}

func (r *recorder) waitRecoveries(t *testing.T, n int) []client.Recovery {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("%d recoveries", n), func() bool { _, rec := r.snapshot(); return len(rec) >= n })
	_, rec := r.snapshot()
	return rec
}

func seq(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func fakeClient(t *testing.T, f *fakeHerald) *client.Client {
	t.Helper()
	return newClient(t, f.port(), client.Options{
		ChannelAuthorizer: local("worker"),
		BackoffMin:        10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
}

func TestRecoveryAfterReconnect(t *testing.T) {
	f := newFakeHerald(t)
	c := fakeClient(t, f)
	orders, priv, room := c.Channel("orders-1"), c.Channel("private-orders-1"), c.Channel("room")
	ro, rp, rr := record(orders), record(priv), record(room)
	for _, ch := range []*client.Channel{orders, priv, room} {
		ch.Subscribe()
	}
	c.Connect()
	for _, ch := range []*client.Channel{orders, priv, room} {
		if err := ch.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if p, ok := orders.Position(); !ok || p != (client.Position{Epoch: f.epoch("orders-1"), Offset: 0}) {
		t.Fatalf("position after subscribing = %v %v, want the subscription's top", p, ok)
	}
	f.publish("orders-1", seq(1, 3)...)
	f.publish("private-orders-1", seq(1, 3)...)
	f.publish("room", "1")
	ro.waitTicks(t, 3)
	rp.waitTicks(t, 3)
	rr.waitTicks(t, 1)

	mark := f.mark()
	f.cut()
	f.publish("orders-1", seq(4, 6)...)
	f.publish("private-orders-1", seq(4, 5)...)
	recs := ro.waitRecoveries(t, 1)
	want := client.Recovery{Channel: "orders-1", Recovered: true, Replayed: 3, Position: client.Position{Epoch: f.epoch("orders-1"), Offset: 6}}
	if recs[0] != want {
		t.Fatalf("recovery = %+v, want %+v", recs[0], want)
	}
	if got := ro.waitTicks(t, 6); strings.Join(got, ",") != strings.Join(seq(1, 6), ",") {
		t.Fatalf("orders-1 ticks = %v, want 1..6 once each in order", got)
	}
	if recs := rp.waitRecoveries(t, 1); !recs[0].Recovered || recs[0].Replayed != 2 {
		t.Fatalf("private channel recovery = %+v", recs[0])
	}
	if got := rp.waitTicks(t, 5); strings.Join(got, ",") != strings.Join(seq(1, 5), ",") {
		t.Fatalf("private-orders-1 ticks = %v", got)
	}
	sub := f.subscribesOf("orders-1", mark)
	if len(sub) != 1 || string(sub[0]["recover"]) != `{"epoch":"`+f.epoch("orders-1")+`","offset":3}` {
		t.Fatalf("resubscription of orders-1 = %v, want recover from offset 3", sub)
	}
	if p := f.subscribesOf("private-orders-1", mark); len(p) != 1 || string(p[0]["recover"]) == "" || p[0]["auth"] == nil {
		t.Fatalf("resubscription of the private channel = %v, want auth and recover", p)
	}
	eventually(t, 10*time.Second, "room resubscribed", func() bool { return len(f.subscribesOf("room", mark)) == 1 })
	if r := f.subscribesOf("room", mark)[0]; len(r) != 2 || r["recover"] != nil {
		t.Fatalf("a channel without history must be subscribed as before, got %v", r)
	}
	if _, ok := room.Position(); ok {
		t.Fatal("a channel without history has no position")
	}
	if _, rec := rr.snapshot(); len(rec) != 0 {
		t.Fatalf("no recovery report on a channel that did not ask: %v", rec)
	}
	ro.mu.Lock()
	last := ro.positions[len(ro.positions)-1]
	ro.mu.Unlock()
	if last.Offset != 6 {
		t.Fatalf("Event.Position of the last tick = %v, want offset 6", last)
	}
	f.publish("orders-1", "7")
	if got := ro.waitTicks(t, 7); got[6] != "7" || len(got) != 7 {
		t.Fatalf("live event after the recovery: %v", got)
	}
}

func TestRecoveryReportsALostWindow(t *testing.T) {
	f := newFakeHerald(t)
	c := fakeClient(t, f)
	orders := c.Channel("orders-2")
	r := record(orders)
	orders.Subscribe()
	c.Connect()
	if err := orders.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	f.publish("orders-2", "1")
	r.waitTicks(t, 1)
	f.loseHistory("orders-2")
	epoch := f.epoch("orders-2")
	f.cut()
	recs := r.waitRecoveries(t, 1)
	want := client.Recovery{Channel: "orders-2", Recovered: false, Reason: client.RecoveryEpochChanged, Position: client.Position{Epoch: epoch}}
	if recs[0] != want {
		t.Fatalf("recovery = %+v, want %+v", recs[0], want)
	}
	// Live events go on in the new epoch, and the next recovery uses it.
	f.publish("orders-2", "2")
	r.waitTicks(t, 2)
	mark := f.mark()
	f.cut()
	if recs := r.waitRecoveries(t, 2); !recs[1].Recovered {
		t.Fatalf("second recovery = %+v", recs[1])
	}
	if s := f.subscribesOf("orders-2", mark); string(s[0]["recover"]) != `{"epoch":"`+epoch+`","offset":1}` {
		t.Fatalf("recover = %s", s[0]["recover"])
	}
}

func TestRecoveryCutDuringReplay(t *testing.T) {
	f := newFakeHerald(t)
	c := fakeClient(t, f)
	orders := c.Channel("orders-3")
	r := record(orders)
	orders.Subscribe()
	c.Connect()
	if err := orders.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	f.publish("orders-3", "1")
	r.waitTicks(t, 1)
	// The network goes right after the subscription that announced top 6
	// succeeded, then after offsets 2 and 3 were replayed.
	f.mu.Lock()
	f.limits = []int{0, 2}
	f.mu.Unlock()
	mark := f.mark()
	f.cut()
	f.publish("orders-3", seq(2, 6)...)
	recs := r.waitRecoveries(t, 1)
	if !recs[0].Recovered || recs[0].Replayed != 3 {
		t.Fatalf("recovery = %+v", recs[0])
	}
	var offsets []string
	for _, s := range f.subscribesOf("orders-3", mark) {
		var p client.Position
		_ = json.Unmarshal(s["recover"], &p)
		offsets = append(offsets, strconv.FormatUint(p.Offset, 10))
	}
	if strings.Join(offsets, ",") != "1,1,3" {
		t.Fatalf("recover offsets of the three attempts = %v, want 1,1,3", offsets)
	}
	if got := r.waitTicks(t, 6); strings.Join(got, ",") != strings.Join(seq(1, 6), ",") {
		t.Fatalf("ticks = %v, want 1..6 once each in order", got)
	}
}

func TestRecoveryUnsubscribeAndSetPosition(t *testing.T) {
	f := newFakeHerald(t)
	c := fakeClient(t, f)
	orders := c.Channel("orders-4")
	r := record(orders)
	orders.Subscribe()
	c.Connect()
	if err := orders.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	f.publish("orders-4", "1")
	r.waitTicks(t, 1)
	orders.Unsubscribe()
	if _, ok := orders.Position(); ok {
		t.Fatal("Unsubscribe must forget the position")
	}
	mark := f.mark()
	orders.Subscribe()
	if err := orders.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := f.subscribesOf("orders-4", mark); s[0]["recover"] != nil {
		t.Fatalf("a new subscription by the app is not a recovery: %v", s[0])
	}

	// A service that rebuilt its state from the history endpoint up to
	// offset 1 continues from there.
	orders.Unsubscribe()
	eventually(t, 10*time.Second, "the unsubscribe", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for c := range f.conns {
			if c.subs["orders-4"] {
				return false
			}
		}
		return true
	})
	f.publish("orders-4", "2", "3")
	orders.SetPosition(client.Position{Epoch: f.epoch("orders-4"), Offset: 1})
	orders.Subscribe()
	if recs := r.waitRecoveries(t, 1); !recs[0].Recovered || recs[0].Replayed != 2 {
		t.Fatalf("recovery = %+v", recs[0])
	}
	if got := r.waitTicks(t, 3); strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("ticks = %v", got)
	}
	if p, _ := orders.Position(); p.Offset != 3 {
		t.Fatalf("position = %v", p)
	}
}
