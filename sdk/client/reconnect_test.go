package client_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
	"github.com/herald-ws/herald/sdk/server"
)

// follower is a client subscribed to a public, a private and a presence
// channel, counting every delivery of "tick" by channel and payload, and
// every subscription_succeeded by channel.
type follower struct {
	c       *client.Client
	chans   []*client.Channel
	ticks   counter
	subs    counter
	mu      sync.Mutex
	changes []client.StateChange
}

var followed = []string{"room", "private-room", "presence-room"}

func follow(t *testing.T, port int, o client.Options) *follower {
	t.Helper()
	if o.ChannelAuthorizer == nil {
		o.ChannelAuthorizer = local("worker")
	}
	f := &follower{}
	f.c = newClient(t, port, o)
	f.c.OnStateChange(func(sc client.StateChange) {
		f.mu.Lock()
		f.changes = append(f.changes, sc)
		f.mu.Unlock()
	})
	for _, name := range followed {
		ch := f.c.Channel(name)
		ch.Bind("tick", func(e client.Event) { f.ticks.add(e.Channel + "/" + string(e.Data)) })
		ch.Bind(client.EventSubscriptionSucceeded, func(e client.Event) { f.subs.add(e.Channel) })
		ch.Subscribe()
		f.chans = append(f.chans, ch)
	}
	f.c.Connect()
	f.waitSubscribed(t, "")
	return f
}

// waitSubscribed waits until the client is on a socket other than old with
// every channel subscribed again.
func (f *follower) waitSubscribed(t *testing.T, old string) {
	t.Helper()
	eventually(t, 20*time.Second, "resubscription on a new connection", func() bool {
		id := f.c.SocketID()
		if id == "" || id == old {
			return false
		}
		for _, ch := range f.chans {
			if !ch.Subscribed() {
				return false
			}
		}
		return true
	})
}

// publish sends n ticks named round-i to every followed channel through
// port and checks that each arrives exactly once.
func (f *follower) publish(t *testing.T, port int, round string, n int) {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	sdk := api(port)
	for i := 0; i < n; i++ {
		if err := sdk.TriggerMulti(ctx, followed, "tick", round+"-"+strconv.Itoa(i)); err != nil {
			t.Fatalf("trigger: %v", err)
		}
	}
	// The sentinel is last on each channel's stream: once it is in, any
	// duplicate of an earlier tick would have been counted.
	if err := sdk.TriggerMulti(ctx, followed, "tick", round+"-end"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "round "+round, func() bool {
		for _, ch := range followed {
			if f.ticks.get(ch+"/"+round+"-end") == 0 {
				return false
			}
		}
		return true
	})
	for _, ch := range followed {
		for i := 0; i < n; i++ {
			if got := f.ticks.get(ch + "/" + round + "-" + strconv.Itoa(i)); got != 1 {
				t.Fatalf("%s tick %s-%d delivered %d times", ch, round, i, got)
			}
		}
		if got := f.ticks.get(ch + "/" + round + "-end"); got != 1 {
			t.Fatalf("%s sentinel delivered %d times", ch, got)
		}
	}
}

// checkSubs checks each channel's subscription succeeded once per connection.
func (f *follower) checkSubs(t *testing.T, connections int) {
	t.Helper()
	for _, ch := range followed {
		if got := f.subs.get(ch); got != connections {
			t.Fatalf("%s: subscription_succeeded %d times over %d connections", ch, got, connections)
		}
	}
}

func (f *follower) sawErr(match func(error) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sc := range f.changes {
		if sc.Err != nil && match(sc.Err) {
			return true
		}
	}
	return false
}

func (f *follower) sawState(s client.State) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sc := range f.changes {
		if sc.Current == s {
			return true
		}
	}
	return false
}

func closedWith(code int) func(error) bool {
	return func(err error) bool {
		var ce *client.CloseError
		return errors.As(err, &ce) && ce.Code == code
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	f := follow(t, n.Port, client.Options{BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	f.publish(t, n.Port, "before", 5)
	for i := 1; i <= 2; i++ {
		old := f.c.SocketID()
		n.Restart()
		f.waitSubscribed(t, old)
		f.publish(t, n.Port, "after"+strconv.Itoa(i), 5)
	}
	f.checkSubs(t, 3)
	if !f.sawState(client.Connecting) {
		t.Fatal("no connecting state while the server was down")
	}
	f.c.Close()
	noLeak(t)
}

func TestReconnectAtOnceOnDrain(t *testing.T) {
	n1 := heraldtest.Start(t, herald.Path(t), heraldtest.Options{ShutdownTimeout: 2 * time.Second})
	n2 := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(n1.Port))
	// A back-off this long would miss the deadline below: only the
	// immediate reconnection that 4200 asks for makes it.
	f := follow(t, p.Port, client.Options{BackoffMin: time.Minute, BackoffMax: time.Minute})
	f.publish(t, n1.Port, "node1", 5)
	old := f.c.SocketID()
	p.SetTarget("127.0.0.1:" + strconv.Itoa(n2.Port)) // the load balancer's other node
	n1.Drain()
	start := time.Now()
	f.waitSubscribed(t, old)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("reconnection after drain took %s", d)
	}
	if !f.sawErr(closedWith(4200)) {
		t.Fatalf("no 4200 close seen: %+v", f.changes)
	}
	if err := n1.Wait(ctxT(t, 15*time.Second)); err != nil {
		t.Fatal("drained node did not exit")
	}
	f.publish(t, n2.Port, "node2", 5)
	f.checkSubs(t, 2)
	f.c.Close()
	noLeak(t)
}

func TestReconnectAfterNetworkCut(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(n.Port))
	f := follow(t, p.Port, client.Options{BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond, DialTimeout: 2 * time.Second})
	f.publish(t, n.Port, "before", 5)
	old := f.c.SocketID()
	p.Refuse(true)
	p.Cut()
	eventually(t, 10*time.Second, "unavailable while the network is down", func() bool { return f.c.State() == client.Unavailable })
	// Attempts keep coming while refused.
	seen := p.Accepted()
	eventually(t, 10*time.Second, "more attempts", func() bool { return p.Accepted() >= seen+2 })
	p.Refuse(false)
	f.waitSubscribed(t, old)
	f.publish(t, n.Port, "after", 5)
	f.checkSubs(t, 2)
	f.c.Close()
	noLeak(t)
}

func TestPongTimeoutOnSilentNetwork(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{ActivityTimeout: 1})
	p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(n.Port))
	f := follow(t, p.Port, client.Options{
		PongTimeout: 500 * time.Millisecond, DialTimeout: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond,
	})
	// Pings keep an idle, healthy connection up across several activity
	// timeouts.
	id := f.c.SocketID()
	sdk := api(n.Port)
	for i := 0; i < 3; i++ {
		ch, err := sdk.Channel(ctxT(t, 5*time.Second), "room", server.ChannelParams{})
		if err != nil || !ch.Occupied {
			t.Fatalf("channel: %+v %v", ch, err)
		}
		time.Sleep(time.Second) // idle on purpose: the client must ping
	}
	if f.c.SocketID() != id {
		t.Fatal("a healthy idle connection was dropped")
	}
	p.Hold(true)
	eventually(t, 10*time.Second, "pong timeout", func() bool {
		return f.sawErr(func(err error) bool { return strings.Contains(err.Error(), "pong") })
	})
	p.Hold(false)
	p.Cut() // the held connections are dead anyway
	f.waitSubscribed(t, id)
	f.publish(t, n.Port, "after", 3)
	f.c.Close()
	noLeak(t)
}

func TestRefusedConnectionDoesNotRetry(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{})
	p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(n.Port))
	c, err := client.New("no-such-key", client.Options{Host: "127.0.0.1", Port: p.Port, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var states []string
	c.OnStateChange(func(sc client.StateChange) {
		mu.Lock()
		states = append(states, sc.Current.String())
		mu.Unlock()
	})
	c.Connect()
	err = c.WaitConnected(ctxT(t, 10*time.Second))
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 {
		t.Fatalf("WaitConnected: %v", err)
	}
	if c.State() != client.Failed {
		t.Fatalf("state %s", c.State())
	}
	c.Close() // waits for the client's goroutines: no attempt can follow
	if got := p.Accepted(); got != 1 {
		t.Fatalf("%d connection attempts after a 4001 refusal", got)
	}
	mu.Lock()
	got := strings.Join(states, " ")
	mu.Unlock()
	if got != "connecting failed disconnected" {
		t.Fatalf("states %q", got)
	}
	noLeak(t)
}

func TestBackoffAfterOverCapacity(t *testing.T) {
	n := heraldtest.Start(t, herald.Path(t), heraldtest.Options{Server: "max_node_connections: 1\n"})
	a := dial(t, n.Port, client.Options{})
	p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(n.Port))
	const min = 400 * time.Millisecond
	b := newClient(t, p.Port, client.Options{BackoffMin: min, BackoffMax: min})
	var mu sync.Mutex
	var errs []error
	b.OnStateChange(func(sc client.StateChange) {
		mu.Lock()
		errs = append(errs, sc.Err)
		mu.Unlock()
	})
	b.Connect()
	eventually(t, 10*time.Second, "a 4100 refusal", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, err := range errs {
			if closedWith(4100)(err) {
				return true
			}
		}
		return false
	})
	// Measure the retry rate over a window: at least min between attempts.
	first := p.Accepted()
	window := 2 * time.Second
	time.Sleep(window)
	attempts := p.Accepted() - first
	if limit := int(window/min) + 1; attempts > limit {
		t.Fatalf("%d attempts in %s after 4100, want at most %d (a back-off of at least %s)", attempts, window, limit, min)
	}
	if attempts == 0 {
		t.Fatal("no retry after 4100")
	}
	a.Close()
	if err := b.WaitConnected(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}
