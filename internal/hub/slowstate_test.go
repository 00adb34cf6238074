package hub

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// hungState is a State whose Channel call hangs until released, as a
// Redis that stopped answering would (ignoring the caller's deadline is
// the worst case).
type hungState struct {
	State
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *hungState) Channel(ctx context.Context, appID, channel string) (ChannelCounts, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return s.State.Channel(ctx, appID, channel)
}

// TestHungStateDoesNotStopTheTimers: while subscription counts wait on a
// State that does not answer, pings and pong timeouts still happen.
func TestHungStateDoesNotStopTheTimers(t *testing.T) {
	var hs *hungState
	e := newEnv(t, func(a *apps.App) { a.EnableSubscriptionCount = true }, func(o *Options) {
		hs = &hungState{State: newMemoryState(o.Now), entered: make(chan struct{}), release: make(chan struct{})}
		o.State = hs
		o.SubscriptionCountInterval = 10 * time.Millisecond
	})
	c, fc := e.connect()
	msg(c, obj{"event": "pusher:subscribe", "data": obj{"channel": "counted"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.h.Run(ctx)
	}()
	defer func() {
		close(hs.release)
		cancel()
		<-done
	}()
	select {
	case <-hs.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription count never asked the State")
	}
	// The count flush hangs from now on. A silent client is pinged, then
	// closed for not answering: the timers run once a second regardless.
	e.clk.Advance(e.app.ActivityTimeout + time.Second)
	if !testwait.Until(10*time.Second, func() bool { return c.pingedAt.Load() != 0 }) {
		t.Fatal("no ping while the State hangs")
	}
	e.clk.Advance(31 * time.Second)
	if !testwait.Until(10*time.Second, func() bool { closed, _ := fc.isClosed(); return closed }) {
		t.Fatal("no pong timeout while the State hangs")
	}
	wantClosed(t, fc, 4201)
}

// barrierBroker holds each Publish until `want` of them are in flight at
// once (or gives up after a while), and remembers the most it saw.
type barrierBroker struct {
	recBroker
	want     int
	mu       sync.Mutex
	inFlight int
	most     int
	all      chan struct{}
	allOnce  sync.Once
	gaveUp   chan struct{}
	giveUp   sync.Once
}

func (b *barrierBroker) Publish(ctx context.Context, m BrokerMessage) error {
	b.mu.Lock()
	b.inFlight++
	b.most = max(b.most, b.inFlight)
	if b.inFlight == b.want {
		b.allOnce.Do(func() { close(b.all) })
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	select {
	case <-b.all:
		return b.recBroker.Publish(ctx, m)
	case <-b.gaveUp:
		return errors.New("publishes never overlapped")
	case <-time.After(5 * time.Second):
		b.giveUp.Do(func() { close(b.gaveUp) }) // the others fail at once
		return errors.New("publishes never overlapped")
	}
}

// TestPublishCallsTheBrokerSideBySide: a trigger on many channels does
// not wait for each channel's broker call before the next (with a slow
// Redis, 100 channels one after another cost 100 round trips).
func TestPublishCallsTheBrokerSideBySide(t *testing.T) {
	b := &barrierBroker{want: brokerParallel, all: make(chan struct{}), gaveUp: make(chan struct{})}
	e := newEnv(t, nil, func(o *Options) { o.Broker = b })
	chans := make([]string, 100)
	for i := range chans {
		chans[i] = "ch-" + strconv.Itoa(i)
	}
	if err := e.h.Publish(context.Background(), e.app, PublishRequest{Name: "ev", Channels: chans, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	if got := len(b.take()); got != 100 {
		t.Fatalf("%d broker messages, want 100", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.most > brokerParallel {
		t.Fatalf("%d broker calls at once, want at most %d", b.most, brokerParallel)
	}
}
