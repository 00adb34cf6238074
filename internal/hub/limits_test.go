package hub

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
)

type recRefusals struct {
	mu sync.Mutex
	m  map[string]int
}

func (r *recRefusals) Refused(appID, limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]int{}
	}
	r.m[appID+"/"+limit]++
}

func (r *recRefusals) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[k]
}

func TestChannelsPerConnectionLimit(t *testing.T) {
	ref := &recRefusals{}
	e := newEnv(t, func(a *apps.App) { a.MaxChannelsPerConnection = 3 }, func(o *Options) { o.Refusals = ref })
	c, fc := e.connect()
	for i := range 3 {
		e.sub(c, fc, "ch-"+strconv.Itoa(i), "")
	}
	// Subscribing again to a channel it has is not a new channel.
	e.sub(c, fc, "ch-0", "")
	msg(c, subscribeMsg("ch-3", "", ""))
	se := fc.next(t).subErr(t)
	if se.Type != "LimitReached" || se.Status != 4301 {
		t.Fatalf("subscription_error %+v", se)
	}
	wantOpen(t, fc)
	if e.channel("ch-3").Occupied {
		t.Fatal("refused channel is occupied")
	}
	if n := ref.get("1/" + LimitChannelsPerConnection); n != 1 {
		t.Fatalf("refusal counted %d times", n)
	}
	// Leaving one frees a slot.
	msg(c, obj{"event": "pusher:unsubscribe", "data": obj{"channel": "ch-1"}})
	e.sub(c, fc, "ch-3", "")
	// -1 is no cap.
	e2 := newEnv(t, func(a *apps.App) { a.MaxChannelsPerConnection = -1 })
	c2, fc2 := e2.connect()
	for i := range 300 {
		e2.sub(c2, fc2, "ch-"+strconv.Itoa(i), "")
	}
}

func TestHubRefusalsCounted(t *testing.T) {
	ref := &recRefusals{}
	e := newEnv(t, func(a *apps.App) {
		a.MaxConnections = 1
		a.EnableClientMessages = true
		a.ClientEventsPerSecond = 1
	}, func(o *Options) { o.Refusals = ref })
	c, fc := e.connect()
	if _, err := e.h.connectApp(e.app, &fakeConn{}); err == nil {
		t.Fatal("second connection admitted past max_connections 1")
	}
	e.sub(c, fc, "private-x", "")
	ev := `{"event":"client-x","channel":"private-x","data":{}}`
	msg(c, ev)
	msg(c, ev)
	wantErrFrame(t, fc.next(t), 4301, "rate limit")
	msg(c, subscribeMsg(strings.Repeat("x", 201), "", ""))
	if se := fc.next(t).subErr(t); se.Type != "InvalidChannel" {
		t.Fatalf("long channel name: %+v", se)
	}
	for k, want := range map[string]int{"1/" + LimitConnections: 1, "1/" + LimitClientEvents: 1, "1/" + LimitChannelNameLength: 1} {
		if got := ref.get(k); got != want {
			t.Errorf("%s counted %d, want %d", k, got, want)
		}
	}
}
