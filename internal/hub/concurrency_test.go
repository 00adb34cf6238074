package hub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
)

// TestConcurrentChurn has many goroutines subscribe, unsubscribe, sign in,
// send client events and disconnect on the same few channels while others
// publish, flush counts and sweep. Half of the disconnections come from
// another goroutine while the client is still handling messages, as when
// the transport notices a dead socket. At the end nothing may be left and
// no frame may have reached a client after its Closed returned.
func TestConcurrentChurn(t *testing.T) {
	e := newEnv(t, func(a *apps.App) {
		a.EnableClientMessages = true
		a.ClientEventsPerSecond = -1
		a.EnableSubscriptionCount = true
		a.EnableWatchlistEvents = true
	})
	channels := []string{"room", "private-room", "presence-room", "presence-cache-room", "cache-room"}
	const workers = 8
	iters := 200
	if testing.Short() {
		iters = 50
	}

	var stop atomic.Bool
	var bg sync.WaitGroup
	bg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			ch := channels[i%len(channels)]
			_ = e.h.Publish(context.Background(), e.app, PublishRequest{Name: "ev", Channels: []string{ch, "#server-to-user-u1"}, Data: "x"})
			if i%16 == 0 {
				runtime.Gosched()
			}
		}
	})
	bg.Go(func() {
		for !stop.Load() {
			e.h.flushCounts()
			e.h.sweep()
			_, _ = e.h.Channels(context.Background(), e.app, "")
			_, _ = e.h.PresenceUsers(context.Background(), e.app, "presence-room")
		}
	})

	var conns sync.Map // *fakeConn → socket id
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range iters {
				fc := &fakeConn{}
				c, err := e.h.connectApp(e.app, fc)
				if err != nil {
					t.Error(err)
					return
				}
				conns.Store(fc, c.SocketID())
				disconnect := func() {
					c.Closed()
					fc.gone.Store(true)
				}
				var killer sync.WaitGroup
				concurrent := i%2 == 0
				if concurrent {
					touches := r.IntN(20)
					killer.Go(func() {
						for range touches {
							c.Touch()
						}
						disconnect()
					})
				}
				for range 1 + r.IntN(12) {
					ch := channels[r.IntN(len(channels))]
					user := fmt.Sprintf("u%d", r.IntN(3))
					switch r.IntN(6) {
					case 0, 1:
						cd := ""
						if ch[0] == 'p' && ch[:9] == "presence-" {
							cd = `{"user_id":"` + user + `"}`
						}
						msg(c, subscribeMsg(ch, e.auth(c.SocketID(), ch, cd), cd))
					case 2:
						msg(c, `{"event":"pusher:unsubscribe","data":{"channel":"`+ch+`"}}`)
					case 3:
						msg(c, `{"event":"client-x","channel":"`+ch+`","data":{}}`)
					case 4:
						msg(c, e.signinMsg(c.SocketID(), `{"id":"`+user+`","watchlist":["u0","u1"]}`))
					case 5:
						msg(c, `{"event":"pusher:ping"}`)
					}
				}
				if concurrent {
					killer.Wait()
				} else {
					disconnect()
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	bg.Wait()

	if n := e.h.Connections(e.app.ID); n != 0 {
		t.Errorf("Connections = %d", n)
	}
	chs, _ := e.h.Channels(context.Background(), e.app, "")
	if len(chs) != 0 {
		t.Errorf("occupied channels left: %+v", chs)
	}
	for _, ch := range channels {
		if n := e.h.localCount(chanKey{e.app.ID, ch}); n != 0 {
			t.Errorf("%s: %d local subscribers left", ch, n)
		}
		if users, _ := e.h.PresenceUsers(context.Background(), e.app, ch); len(users) != 0 {
			t.Errorf("%s: members left: %+v", ch, users)
		}
	}
	for i := range e.h.channels {
		if n := len(e.h.channels[i].m); n != 0 {
			t.Errorf("channel shard %d holds %d channels", i, n)
		}
		if n := len(e.h.clients[i].m); n != 0 {
			t.Errorf("client shard %d holds %d clients", i, n)
		}
	}
	e.h.usersMu.Lock()
	if len(e.h.users) != 0 || len(e.h.watchers) != 0 {
		t.Errorf("users %d watchers %d left", len(e.h.users), len(e.h.watchers))
	}
	e.h.usersMu.Unlock()
	if o := e.obs; o.count("occupied 1 room") != o.count("vacated 1 room") || o.count("occupied 1 presence-room") != o.count("vacated 1 presence-room") {
		t.Errorf("unbalanced occupied/vacated: %v", o.calls)
	}
	for _, u := range []string{"u0", "u1", "u2"} {
		if a, r := e.obs.count("member_added 1 presence-room "+u), e.obs.count("member_removed 1 presence-room "+u); a != r {
			t.Errorf("%s: %d member_added, %d member_removed", u, a, r)
		}
	}
	var late, sent int64
	conns.Range(func(k, v any) bool {
		fc := k.(*fakeConn)
		sent += fc.sent.Load()
		if n := fc.late.Load(); n != 0 {
			late += n
			if late == n {
				fc.mu.Lock()
				t.Errorf("socket %s got %d frames after Closed returned; last: %s", v, n, fc.frames[len(fc.frames)-1])
				fc.mu.Unlock()
			}
		}
		return true
	})
	if late != 0 {
		t.Errorf("%d frames in all delivered after Closed returned", late)
	}
	t.Logf("%d frames delivered", sent)
}
