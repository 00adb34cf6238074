package hub

import (
	"github.com/herald-ws/herald/internal/apps"

	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// recMetrics records the hub's Metrics calls.
type recMetrics struct {
	mu       sync.Mutex
	fanouts  []string // "app source deliveries"
	refusals []string // "app limit"
	negative bool
}

func (m *recMetrics) Fanout(appID string, src Source, n int, elapsed time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fanouts = append(m.fanouts, fmt.Sprintf("%s %s %d", appID, src, n))
	m.negative = m.negative || elapsed < 0
}

func (m *recMetrics) Refused(appID, limit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusals = append(m.refusals, appID+" "+limit)
}

func (m *recMetrics) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.fanouts
	m.fanouts = nil
	sort.Strings(out)
	return out
}

func TestMetricsCountFanoutsBySource(t *testing.T) {
	rm := &recMetrics{}
	e := newEnv(t, func(a *apps.App) {
		a.EnableClientMessages = true
		a.ClientEventsPerSecond = 1
		a.MaxPresenceMembers = 1
	}, func(o *Options) { o.Metrics = rm; o.Refusals = rm })
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	e.sub(c1, f1, "orders", "")
	e.sub(c1, f1, "private-chat", "")
	e.sub(c2, f2, "private-chat", "")
	if got := rm.take(); len(got) != 0 {
		t.Fatalf("subscribing made fanouts: %v", got)
	}

	e.publish("created", "{}", "", "orders", "empty")
	if got := rm.take(); fmt.Sprint(got) != "[1 api 0 1 api 1]" {
		t.Fatalf("API publish on two channels: %v", got)
	}
	msg(c1, obj{"event": "client-x", "channel": "private-chat", "data": obj{}})
	if got := rm.take(); fmt.Sprint(got) != "[1 client 1]" {
		t.Fatalf("client event: %v", got)
	}
	msg(c1, obj{"event": "client-x", "channel": "private-chat", "data": obj{}})
	if fmt.Sprint(rm.refusals) != "[1 client_events_per_second]" {
		t.Fatalf("refusals %v", rm.refusals)
	}
	f1.drain(t)
	f2.drain(t)
	// member_added is a message the hub makes.
	e.sub(c1, f1, "presence-room", `{"user_id":"1"}`)
	if got := rm.take(); fmt.Sprint(got) != "[1 server 0]" {
		t.Fatalf("member_added: %v", got)
	}
	e.sub(c2, f2, "presence-room", `{"user_id":"1"}`) // same user: no member_added
	c3, f3 := e.connect()
	msg(c3, subscribeMsg("presence-room", e.auth(c3.SocketID(), "presence-room", `{"user_id":"2"}`), `{"user_id":"2"}`))
	f3.drain(t)
	if fmt.Sprint(rm.refusals) != "[1 client_events_per_second 1 max_presence_members]" {
		t.Fatalf("refusals %v", rm.refusals)
	}
	rm.take()
	e.h.HandleBrokerMessage(BrokerMessage{AppID: "1", Channel: "orders", Payload: []byte(`{"event":"x","channel":"orders","data":"{}"}`)})
	if got := rm.take(); fmt.Sprint(got) != "[1 cluster 1]" {
		t.Fatalf("broker message: %v", got)
	}
	c2.Closed()
	// c2 left presence-room but user 1 is still there through c1.
	if got := rm.take(); len(got) != 0 {
		t.Fatalf("disconnect of a second socket: %v", got)
	}
	c1.Closed()
	if got := rm.take(); fmt.Sprint(got) != "[1 server 0]" {
		t.Fatalf("member_removed of the last socket: %v", got)
	}
	if rm.negative {
		t.Fatal("a negative elapsed time")
	}
}

func TestEachLocalChannel(t *testing.T) {
	e := newEnv(t, nil)
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	e.sub(c1, f1, "a", "")
	e.sub(c2, f2, "a", "")
	e.sub(c2, f2, "b", "")
	got := map[string]int{}
	e.h.EachLocalChannel(func(appID, ch string, n int) { got[appID+"/"+ch] = n })
	if fmt.Sprint(got) != "map[1/a:2 1/b:1]" {
		t.Fatalf("channels %v", got)
	}
	c2.Closed()
	got = map[string]int{}
	e.h.EachLocalChannel(func(appID, ch string, n int) { got[appID+"/"+ch] = n })
	if fmt.Sprint(got) != "map[1/a:1]" {
		t.Fatalf("after a disconnect %v", got)
	}
}

// ats returns the at of every frame sent so far (see Conn.Send).
func (f *fakeConn) allAts() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.ats...)
}

// TestFramesCarryTheFanoutTime checks the timestamp that lets the transport
// measure delivery up to the socket write and serve replies first:
// fanned-out frames carry the fanout's start on the clock shared through
// Options.Epoch, replies carry 0, with metrics on or off.
func TestFramesCarryTheFanoutTime(t *testing.T) {
	epoch := time.Now()
	e := newEnv(t, func(a *apps.App) { a.EnableClientMessages = true },
		func(o *Options) { o.Metrics = &recMetrics{}; o.Epoch = epoch })
	c1, f1 := e.connect()
	c2, f2 := e.connect()
	e.sub(c1, f1, "private-chat", "")
	e.sub(c2, f2, "private-chat", "")
	before := int64(time.Since(epoch))
	e.publish("created", "{}", "", "private-chat")
	msg(c1, obj{"event": "client-x", "channel": "private-chat", "data": obj{}})
	after := int64(time.Since(epoch))
	ats := f2.allAts()
	// connection_established and subscription_succeeded are replies.
	if len(ats) != 4 || ats[0] != 0 || ats[1] != 0 {
		t.Fatalf("ats %v, want 2 replies with 0 then 2 stamped frames", ats)
	}
	for _, at := range ats[2:] {
		if at < before || at > after {
			t.Fatalf("fanout stamped %d, want within [%d, %d]", at, before, after)
		}
	}
	if ats[3] < ats[2] {
		t.Fatalf("stamps went back: %v", ats)
	}

	off := newEnv(t, nil)
	c3, f3 := off.connect()
	off.sub(c3, f3, "orders", "")
	off.publish("created", "{}", "", "orders")
	ats = f3.allAts()
	if len(ats) != 3 || ats[0] != 0 || ats[1] != 0 || ats[2] == 0 {
		t.Fatalf("ats %v with metrics off, want 2 replies with 0 then 1 stamped event", ats)
	}
}
