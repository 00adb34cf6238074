package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/memory"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// recConn is a hub.Conn that keeps every frame it is sent.
type recConn struct {
	mu     sync.Mutex
	frames []string
	closed int
}

func (c *recConn) Send(frame []byte, _ int64) bool {
	c.mu.Lock()
	c.frames = append(c.frames, string(frame))
	c.mu.Unlock()
	return true
}
func (c *recConn) Close(code int, _ string) { c.mu.Lock(); c.closed = code; c.mu.Unlock() }
func (c *recConn) Bind(string)              {}

// wireMsg is a frame as a client reads it.
type wireMsg struct {
	Event    string          `json:"event"`
	Channel  string          `json:"channel"`
	Data     json.RawMessage `json:"data"`
	Position *hub.Position   `json:"-"`
	Pos      *struct {
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
	} `json:"position"`
}

func (c *recConn) msgs(t *testing.T) []wireMsg {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]wireMsg, len(c.frames))
	for i, f := range c.frames {
		if err := json.Unmarshal([]byte(f), &out[i]); err != nil {
			t.Fatalf("frame %q: %v", f, err)
		}
		if p := out[i].Pos; p != nil {
			out[i].Position = &hub.Position{Epoch: p.Epoch, Offset: p.Offset}
		}
	}
	return out
}

// waitEvent waits for a frame of event ev and returns all frames so far.
func (c *recConn) waitEvent(t *testing.T, ev string) []wireMsg {
	t.Helper()
	testwait.For(t, 5*time.Second, ev, func() bool {
		for _, m := range c.msgs(t) {
			if m.Event == ev {
				return true
			}
		}
		return false
	})
	return c.msgs(t)
}

type recovery struct {
	Recovered bool   `json:"recovered"`
	Reason    string `json:"reason"`
	Replayed  int    `json:"replayed"`
	Position  struct {
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
	} `json:"position"`
}

func recoveryOf(t *testing.T, ms []wireMsg) recovery {
	t.Helper()
	for _, m := range ms {
		if m.Event == protocol.EventRecovery {
			var s string
			if err := json.Unmarshal(m.Data, &s); err != nil {
				t.Fatalf("herald:recovery data %s is not a string: %v", m.Data, err)
			}
			var r recovery
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatal("no herald:recovery")
	return recovery{}
}

type histEnv struct {
	app  *apps.App
	hubs []*hub.Hub
	c    *memory.Cluster
}

func newHistEnv(t *testing.T, nodes int, now func() time.Time, rules ...apps.HistoryRule) *histEnv {
	t.Helper()
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", "key", "secret"
	a.EnableClientMessages = true
	a.History = rules
	store, err := apps.NewStatic([]apps.App{a})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := store.ByID(context.Background(), "1")
	e := &histEnv{app: app, c: memory.NewCluster(now)}
	for range nodes {
		e.hubs = append(e.hubs, hub.New(hub.Options{State: e.c.State(), Broker: e.c.NewBroker(), History: e.c.History(), Apps: store, Now: now}))
	}
	return e
}

// subscribe connects to node n and subscribes to channel with data's
// extra fields (recover).
func (e *histEnv) subscribe(t *testing.T, n int, channel string, extra map[string]any) (*hub.Client, *recConn) {
	t.Helper()
	rc := &recConn{}
	sess, err := e.hubs[n].Admit(context.Background(), rc, hub.ConnInfo{Key: e.app.Key})
	if err != nil {
		t.Fatal(err)
	}
	c := sess.(*hub.Client)
	data := map[string]any{"channel": channel}
	if strings.HasPrefix(channel, "private-") {
		data["auth"] = e.app.Key + ":" + protocol.Sign(e.app.Secret, protocol.ChannelAuthString(c.SocketID(), channel, ""))
	}
	for k, v := range extra {
		data[k] = v
	}
	b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": data})
	c.HandleMessage(b)
	return c, rc
}

func (e *histEnv) publish(t *testing.T, n int, channel, data string) {
	t.Helper()
	if err := e.hubs[n].Publish(context.Background(), e.app, hub.PublishRequest{Name: "ev", Channels: []string{channel}, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// events returns the positions of the "ev" events received on channel.
func events(ms []wireMsg, channel string) []hub.Position {
	var out []hub.Position
	for _, m := range ms {
		if m.Event == "ev" && m.Channel == channel && m.Position != nil {
			out = append(out, *m.Position)
		}
	}
	return out
}

func rule(pattern string, size int, ttl time.Duration) apps.HistoryRule {
	return apps.HistoryRule{Pattern: pattern, Size: size, TTL: ttl}
}

// Events on a channel with history carry positions from 1; the
// subscription's success carries the top; a recovery replays what was
// missed, in order, then live events follow without duplicate. A channel
// without a rule is unchanged.
func TestHistoryPositionsAndRecovery(t *testing.T) {
	e := newHistEnv(t, 1, nil, rule("orders-*", 50, time.Minute))
	_, a := e.subscribe(t, 0, "orders-1", nil)
	ms := a.waitEvent(t, protocol.EventSubscriptionSucceeded)
	if ms[1].Position == nil || ms[1].Position.Offset != 0 || ms[1].Position.Epoch == "" {
		t.Fatalf("subscription_succeeded position = %+v", ms[1].Position)
	}
	epoch := ms[1].Position.Epoch
	for i := range 3 {
		e.publish(t, 0, "orders-1", fmt.Sprint(i))
	}
	got := events(a.msgs(t), "orders-1")
	if len(got) != 3 || got[0] != (hub.Position{Epoch: epoch, Offset: 1}) || got[2].Offset != 3 {
		t.Fatalf("positions = %+v", got)
	}

	_, plain := e.subscribe(t, 0, "news", nil)
	e.publish(t, 0, "news", "x")
	for _, f := range plain.frames {
		if strings.Contains(f, "position") {
			t.Fatalf("a channel without history got %s", f)
		}
	}

	_, b := e.subscribe(t, 0, "orders-1", map[string]any{"recover": map[string]any{"epoch": epoch, "offset": 1}})
	ms = b.waitEvent(t, protocol.EventRecovery)
	r := recoveryOf(t, ms)
	if !r.Recovered || r.Replayed != 2 || r.Position.Offset != 3 || r.Position.Epoch != epoch {
		t.Fatalf("recovery = %+v", r)
	}
	// succeeded, 2, 3, recovery: in this order.
	order := []string{}
	for _, m := range ms[1:] {
		order = append(order, m.Event)
	}
	if strings.Join(order, ",") != "pusher_internal:subscription_succeeded,ev,ev,herald:recovery" {
		t.Fatalf("order = %v", order)
	}
	if p := events(ms, "orders-1"); p[0].Offset != 2 || p[1].Offset != 3 {
		t.Fatalf("replayed %+v", p)
	}
	e.publish(t, 0, "orders-1", "live")
	if p := events(b.msgs(t), "orders-1"); len(p) != 3 || p[2].Offset != 4 {
		t.Fatalf("after recovery %+v", p)
	}
}

// Every way a recovery can fail is told apart, and nothing is replayed.
func TestHistoryRecoveryFailures(t *testing.T) {
	e := newHistEnv(t, 1, nil, rule("orders-*", 5, time.Minute), rule("private-orders-*", 5, time.Minute))
	_, a := e.subscribe(t, 0, "orders-1", nil)
	epoch := a.waitEvent(t, protocol.EventSubscriptionSucceeded)[1].Position.Epoch
	for i := range 10 {
		e.publish(t, 0, "orders-1", fmt.Sprint(i))
	}
	for _, tc := range []struct {
		name    string
		channel string
		rec     any
		reason  string
	}{
		{"too old", "orders-1", map[string]any{"epoch": epoch, "offset": 2}, protocol.RecoveryTooOld},
		{"epoch changed", "orders-1", map[string]any{"epoch": "other", "offset": 9}, protocol.RecoveryEpochChanged},
		{"beyond the top", "orders-1", map[string]any{"epoch": epoch, "offset": 11}, protocol.RecoveryInvalid},
		{"huge offset", "orders-1", map[string]any{"epoch": epoch, "offset": uint64(1<<64 - 1)}, protocol.RecoveryInvalid},
		{"negative offset", "orders-1", map[string]any{"epoch": epoch, "offset": -1}, protocol.RecoveryInvalid},
		{"string offset", "orders-1", map[string]any{"epoch": epoch, "offset": "5"}, protocol.RecoveryInvalid},
		{"no epoch", "orders-1", map[string]any{"offset": 5}, protocol.RecoveryInvalid},
		{"no rule", "news", map[string]any{"epoch": epoch, "offset": 5}, protocol.RecoveryNoHistory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := e.subscribe(t, 0, tc.channel, map[string]any{"recover": tc.rec})
			ms := c.waitEvent(t, protocol.EventRecovery)
			if r := recoveryOf(t, ms); r.Recovered || r.Reason != tc.reason {
				t.Fatalf("recovery = %+v, want reason %s", r, tc.reason)
			}
			if p := events(ms, tc.channel); len(p) != 0 {
				t.Fatalf("replayed %+v", p)
			}
			if tc.reason != protocol.RecoveryNoHistory {
				if r := recoveryOf(t, ms); r.Position.Epoch != epoch || r.Position.Offset != 10 {
					t.Fatalf("position %+v", r.Position)
				}
			}
		})
	}
	// A private channel the client may not read: the subscription fails
	// as always, and nothing is replayed or told.
	t.Run("unauthorized", func(t *testing.T) {
		e.publish(t, 0, "private-orders-1", "secret")
		rc := &recConn{}
		sess, _ := e.hubs[0].Admit(context.Background(), rc, hub.ConnInfo{Key: e.app.Key})
		b, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]any{
			"channel": "private-orders-1", "auth": "key:forged", "recover": map[string]any{"epoch": epoch, "offset": 0}}})
		sess.HandleMessage(b)
		ms := rc.waitEvent(t, protocol.EventSubscriptionError)
		for _, m := range ms {
			if m.Event == protocol.EventRecovery || m.Event == "ev" {
				t.Fatalf("unauthorized subscription got %s", m.Event)
			}
		}
	})
}

// While events are published without pause, subscriptions recovering from
// various offsets each see every offset after theirs exactly once, in
// order, replayed or live.
func TestHistoryRecoveryDuringPublishes(t *testing.T) {
	e := newHistEnv(t, 2, nil, rule("orders-*", 10000, time.Minute))
	_, first := e.subscribe(t, 0, "orders-1", nil)
	epoch := first.waitEvent(t, protocol.EventSubscriptionSucceeded)[1].Position.Epoch
	for i := range 100 {
		e.publish(t, i%2, "orders-1", "x")
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for n := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = e.hubs[n].Publish(ctx, e.app, hub.PublishRequest{Name: "ev", Channels: []string{"orders-1"}, Data: "x"})
			}
		}()
	}
	type sub struct {
		from uint64
		rc   *recConn
	}
	var subs []sub
	for i := range 40 {
		from := uint64(i * 2)
		_, rc := e.subscribe(t, i%2, "orders-1", map[string]any{"recover": map[string]any{"epoch": epoch, "offset": from}})
		subs = append(subs, sub{from, rc})
	}
	for _, s := range subs {
		s.rc.waitEvent(t, protocol.EventRecovery)
	}
	// Let live events flow past every subscription's set-up.
	var top uint64
	testwait.For(t, 5*time.Second, "live events", func() bool {
		p := events(subs[len(subs)-1].rc.msgs(t), "orders-1")
		return len(p) > 0 && p[len(p)-1].Offset > 200
	})
	stop()
	wg.Wait()
	e.publish(t, 0, "orders-1", "last")
	top = events(first.msgs(t), "orders-1")[len(events(first.msgs(t), "orders-1"))-1].Offset
	for i, s := range subs {
		ms := s.rc.msgs(t)
		if r := recoveryOf(t, ms); !r.Recovered {
			t.Fatalf("sub %d: %+v", i, r)
		}
		p := events(ms, "orders-1")
		want := s.from + 1
		for _, q := range p {
			if q.Epoch != epoch || q.Offset != want {
				t.Fatalf("sub %d (from %d): got offset %d, want %d", i, s.from, q.Offset, want)
			}
			want++
		}
		if want != top+1 {
			t.Fatalf("sub %d: ended at %d, want %d", i, want-1, top)
		}
	}
}

// Client events on a channel with history are numbered like API events,
// across the nodes of a cluster.
func TestHistoryClientEventsAcrossNodes(t *testing.T) {
	e := newHistEnv(t, 2, nil, rule("private-chat-*", 100, time.Minute))
	ca, a := e.subscribe(t, 0, "private-chat-1", nil)
	_, b := e.subscribe(t, 1, "private-chat-1", nil)
	a.waitEvent(t, protocol.EventSubscriptionSucceeded)
	b.waitEvent(t, protocol.EventSubscriptionSucceeded)
	ca.HandleMessage([]byte(`{"event":"client-typing","channel":"private-chat-1","data":{"x":1}}`))
	e.publish(t, 1, "private-chat-1", "api")
	ms := b.waitEvent(t, "ev")
	var offs []uint64
	for _, m := range ms {
		if m.Position != nil && m.Event != protocol.EventSubscriptionSucceeded {
			offs = append(offs, m.Position.Offset)
		}
	}
	if fmt.Sprint(offs) != "[1 2]" {
		t.Fatalf("offsets on node b = %v", offs)
	}
	// The sender does not get its own client event back.
	if p := a.msgs(t); len(events(p, "private-chat-1")) != 1 {
		t.Fatalf("node a got %v", p)
	}
}

// A history whose last event is older than its ttl is gone: the next
// subscription sees a new epoch, and a recovery against the old one says
// so.
func TestHistoryExpiryStartsANewEpoch(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newHistEnv(t, 1, clock, rule("orders-*", 10, 5*time.Second))
	_, a := e.subscribe(t, 0, "orders-1", nil)
	epoch := a.waitEvent(t, protocol.EventSubscriptionSucceeded)[1].Position.Epoch
	e.publish(t, 0, "orders-1", "x")
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	_, b := e.subscribe(t, 0, "orders-1", map[string]any{"recover": map[string]any{"epoch": epoch, "offset": 0}})
	r := recoveryOf(t, b.waitEvent(t, protocol.EventRecovery))
	if r.Recovered || r.Reason != protocol.RecoveryEpochChanged || r.Position.Epoch == epoch || r.Position.Offset != 0 {
		t.Fatalf("after expiry: %+v", r)
	}
	// The old subscriber adopts the new epoch with the next event.
	e.publish(t, 0, "orders-1", "y")
	p := events(a.msgs(t), "orders-1")
	if len(p) != 2 || p[1].Epoch != r.Position.Epoch || p[1].Offset != 1 {
		t.Fatalf("old subscriber got %+v", p)
	}
}

// The memory history stays within its byte cap: the channels written
// least recently lose their history, and start a new epoch.
func TestMemoryHistoryCap(t *testing.T) {
	e := newHistEnv(t, 1, nil, rule("*", 100, time.Hour))
	h := e.c.History()
	h.SetMaxBytes(64 << 10)
	data := strings.Repeat("x", 1000)
	_, a := e.subscribe(t, 0, "c-0", nil)
	epoch := a.waitEvent(t, protocol.EventSubscriptionSucceeded)[1].Position.Epoch
	for i := range 200 {
		e.publish(t, 0, fmt.Sprintf("c-%d", i), data)
		if st := h.Stats(); st.Bytes > st.MaxBytes {
			t.Fatalf("after %d: %+v", i, st)
		}
	}
	st := h.Stats()
	if st.Evicted == 0 || st.Events == 0 || st.Bytes == 0 {
		t.Fatalf("stats %+v", st)
	}
	page, err := h.Read(context.Background(), "1", "c-0", rule("*", 100, time.Hour), 0, 10)
	if err != nil || page.Epoch == epoch || page.Top != 0 {
		t.Fatalf("evicted channel: %+v %v", page, err)
	}
}
