package hub

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/herald-ws/herald/internal/protocol"
)

// flakyState fails its calls while down; applyThenFail makes Subscribe
// apply the change and then fail, as a call that times out after Redis
// ran it.
type flakyState struct {
	State
	down          atomic.Bool
	applyThenFail atomic.Bool
}

var errDown = errors.New("state down")

func (s *flakyState) Subscribe(ctx context.Context, appID, channel, socketID string, member *protocol.Member, maxMembers int) (SubscribeResult, error) {
	if s.applyThenFail.Load() {
		_, _ = s.State.Subscribe(ctx, appID, channel, socketID, member, maxMembers)
		return SubscribeResult{}, errDown
	}
	if s.down.Load() {
		return SubscribeResult{}, errDown
	}
	return s.State.Subscribe(ctx, appID, channel, socketID, member, maxMembers)
}

func (s *flakyState) Unsubscribe(ctx context.Context, appID, channel, socketID string) (UnsubscribeResult, error) {
	if s.down.Load() {
		return UnsubscribeResult{}, errDown
	}
	return s.State.Unsubscribe(ctx, appID, channel, socketID)
}

// TestGhostsAreRepairedOnce: a leave whose State call failed leaves the
// member in the State; once the State answers, the repair removes it and
// member_removed and channel_vacated happen exactly once.
func TestGhostsAreRepairedOnce(t *testing.T) {
	var fs *flakyState
	e := newEnv(t, nil, func(o *Options) {
		fs = &flakyState{State: newMemoryState(o.Now)}
		o.State = fs
	})
	const ch = "presence-room"
	a, fa := e.connect()
	b, fb := e.connect()
	e.sub(a, fa, ch, `{"user_id":"ada"}`)
	e.sub(b, fb, ch, `{"user_id":"bob"}`)
	fa.drain(t)

	fs.down.Store(true)
	b.Closed() // the State does not hear of it
	if info := e.channel(ch); info.UserCount != 2 {
		t.Fatalf("users %d: the failed leave should have left a ghost", info.UserCount)
	}
	fa.none(t)
	e.h.repairGhosts() // still down: kept
	if e.h.Ghosts() != 1 {
		t.Fatalf("%d ghosts, want 1", e.h.Ghosts())
	}
	fs.down.Store(false)
	e.h.repairGhosts()
	e.h.repairGhosts()
	if got := fa.nextRaw(t); got != `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"bob\"}"}` {
		t.Fatalf("after the repair: %s", got)
	}
	fa.none(t)
	if info := e.channel(ch); info.UserCount != 1 || e.h.Ghosts() != 0 || e.obs.count("member_removed 1 presence-room bob") != 1 {
		t.Fatalf("users %d, ghosts %d, member_removed %d", info.UserCount, e.h.Ghosts(), e.obs.count("member_removed 1 presence-room bob"))
	}

	// The last one goes the same way: channel_vacated once.
	fs.down.Store(true)
	a.Closed()
	fs.down.Store(false)
	e.h.repairGhosts()
	e.h.repairGhosts()
	if e.obs.count("vacated 1 presence-room") != 1 {
		t.Fatalf("channel_vacated %d times, want 1", e.obs.count("vacated 1 presence-room"))
	}
}

// TestFailedSubscribeThatAppliedIsRepaired: a subscribe that failed after
// the State applied it (a timeout) is undone, unless the socket has
// subscribed again since.
func TestFailedSubscribeThatAppliedIsRepaired(t *testing.T) {
	var fs *flakyState
	e := newEnv(t, nil, func(o *Options) {
		fs = &flakyState{State: newMemoryState(o.Now)}
		o.State = fs
	})
	a, fa := e.connect()
	fs.applyThenFail.Store(true)
	msg(a, subscribeMsg("room", "", ""))
	if f := fa.next(t); f.Event != protocol.EventSubscriptionError {
		t.Fatalf("got %s, want a subscription error", f.raw)
	}
	fs.applyThenFail.Store(false)
	if info := e.channel("room"); info.SubscriptionCount != 1 {
		t.Fatalf("count %d: the applied subscribe should be in the State", info.SubscriptionCount)
	}
	e.h.repairGhosts()
	if info := e.channel("room"); info.SubscriptionCount != 0 || e.h.Ghosts() != 0 {
		t.Fatalf("count %d, ghosts %d after the repair", info.SubscriptionCount, e.h.Ghosts())
	}

	// Failed, then subscribed again before the repair: the live
	// subscription stays.
	fs.applyThenFail.Store(true)
	msg(a, subscribeMsg("room", "", ""))
	fa.next(t)
	fs.applyThenFail.Store(false)
	e.sub(a, fa, "room", "")
	e.h.repairGhosts()
	if info := e.channel("room"); info.SubscriptionCount != 1 || e.h.Ghosts() != 0 {
		t.Fatalf("count %d, ghosts %d: the live subscription was removed", info.SubscriptionCount, e.h.Ghosts())
	}
}
