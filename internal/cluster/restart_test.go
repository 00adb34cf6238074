package cluster

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// Redis goes away and comes back (empty) on the same port: calls fail
// fast meanwhile, health says so, and afterwards the subscriber has its
// channels again, the node a new lease, and nothing leaked.
func TestRedisRestart(t *testing.T) {
	port := freePort(t)
	srv := startRedis(t, port)
	before := runtime.NumGoroutine()
	ctx := context.Background()

	o := testOptions(srv.addr(), "herald:")
	o.OpTimeout = 500 * time.Millisecond
	rejoined := make(chan struct{}, 4)
	n, err := NewNode(o)
	if err != nil {
		t.Fatal(err)
	}
	n.Attach(recv{rejoin: func(context.Context) { rejoined <- struct{}{} }})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	cb := newCollector()
	a, err := NewBroker(BrokerOptions{Options: o, NodeID: "A"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBroker(BrokerOptions{Options: o, NodeID: "B"})
	if err != nil {
		t.Fatal(err)
	}
	b.Attach(recv{msg: cb.deliver})
	for _, x := range []*Broker{a, b} {
		testwait.For(t, 3*time.Second, "broker up", func() bool { return x.Healthy() == nil })
	}
	if err := b.Interest(ctx, "app", "room", true); err != nil {
		t.Fatal(err)
	}
	if err := b.UserInterest(ctx, "app", "u1", true); err != nil {
		t.Fatal(err)
	}
	st := n.State()
	if _, err := st.Subscribe(ctx, "app", "room", "1.1", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	cb.wait(t, 1, 2*time.Second)

	srv.kill()

	// Calls fail, and fast.
	start := time.Now()
	if _, err := st.Subscribe(ctx, "app", "room", "1.2", nil, 0); err == nil {
		t.Fatal("subscribe succeeded without Redis")
	}
	if _, err := st.Channel(ctx, "app", "room"); err == nil {
		t.Fatal("Channel succeeded without Redis")
	}
	if err := a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("lost")}); err == nil {
		t.Fatal("publish succeeded without Redis")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("failing calls took %v", took)
	} else {
		t.Logf("3 failing calls took %v", took)
	}
	testwait.For(t, 2*time.Second, "broker down", func() bool { return b.Healthy() != nil })
	testwait.For(t, 2*time.Second, "node down", func() bool { return n.Healthy() != nil })
	t.Logf("while down: node: %v; broker: %v", n.Healthy(), b.Healthy())
	// Interest taken while Redis is away is kept for later.
	ictx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := b.Interest(ictx, "app", "later", true); err == nil {
		t.Fatal("interest confirmed without Redis")
	}
	cancel()
	// Hammering a node whose Redis is away piles nothing up.
	g0 := runtime.NumGoroutine()
	var peak int
	done := make(chan struct{})
	for i := range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("x")})
				st.Subscribe(ctx, "app", "room", "9."+itoa(i), nil, 0)
				st.Members(ctx, "app", "presence-x")
			}
		}()
	}
	for range 16 {
		<-done
		peak = max(peak, runtime.NumGoroutine())
	}
	// The callers, and a bounded few of go-redis's own per client pool
	// (the node's and each broker's), however many calls failed: at most
	// maxConcurrentDials dials in flight, as many that have handed back
	// their dial permit and are returning (go-redis releases the permit
	// first, so on a loaded box the next dial starts before the last one's
	// goroutine is gone), and one redialer once dials keep failing.
	const pools = 3
	bound := g0 + 16 + pools*(2*maxConcurrentDials+1)
	t.Logf("goroutines: %d before the calls, at most %d during (bound %d)", g0, peak, bound)
	if peak > bound {
		t.Fatalf("goroutines: %d before the calls, %d during", g0, peak)
	}
	testwait.For(t, 2*time.Second, "callers to end", func() bool { return runtime.NumGoroutine() <= g0+3 })

	startRedis(t, port)
	back := time.Now()
	testwait.For(t, 5*time.Second, "broker up again", func() bool { return b.Healthy() == nil && a.Healthy() == nil })
	testwait.For(t, 5*time.Second, "node up again", func() bool { return n.Healthy() == nil })
	select {
	case <-rejoined:
	case <-time.After(3 * time.Second):
		t.Fatal("the node did not ask the hub to record its state again")
	}
	t.Logf("recovered %v after Redis came back", time.Since(back))
	// State can be recorded again, under the new lease.
	if r, err := st.Subscribe(ctx, "app", "room", "1.1", nil, 0); err != nil || !r.Added || r.Count != 1 {
		t.Fatalf("re-register: %+v %v", r, err)
	}
	// The subscriptions were restored, including the one made meanwhile.
	for i, m := range []hub.BrokerMessage{
		{AppID: "app", Channel: "room", Payload: []byte("2")},
		{AppID: "app", Channel: "later", Payload: []byte("3")},
		{AppID: "app", ToUser: "u1", Payload: []byte("4")},
	} {
		if err := a.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := cb.wait(t, 2+i, 2*time.Second)
		if p := string(got[1+i].Payload); p != string(m.Payload) {
			t.Fatalf("got %q, want %q", p, m.Payload)
		}
	}

	for _, c := range []interface{ Close() error }{a, b, n} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 3*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
	t.Logf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
}

// A node started while Redis is unreachable comes up when Redis does.
func TestStartWithoutRedis(t *testing.T) {
	port := freePort(t)
	before := runtime.NumGoroutine()
	o := testOptions("127.0.0.1:"+itoa(port), "herald:")
	n, err := NewNode(o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n.Start(); err == nil {
		t.Fatal("healthy without Redis")
	}
	if _, err := n.State().Subscribe(context.Background(), "a", "c", "1.1", nil, 0); err == nil {
		t.Fatal("subscribe without Redis")
	}
	b, err := NewBroker(BrokerOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v", took)
	}
	startRedis(t, port)
	testwait.For(t, 5*time.Second, "node up", func() bool { return n.Healthy() == nil && b.Healthy() == nil })
	if _, err := n.State().Subscribe(context.Background(), "a", "c", "1.1", nil, 0); err != nil {
		t.Fatal(err)
	}
	b.Close()
	n.Close()
	testwait.For(t, 3*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}
