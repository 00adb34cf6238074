package client_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/sdk/client"
	"github.com/herald-ws/herald/sdk/internal/heraldtest"
	"github.com/herald-ws/herald/sdk/server"
)

// historyApp gives the test app a history rule for orders-*.
const historyApp = `history:
  - pattern: "orders-*"
    size: 10000
    ttl: "5m"
max_event_batch_size: 10
`

// pacedPublisher publishes "tick" events numbered from 1 on channel at
// rate per second (batches of up to 10, one request at a time so that the
// order of publication is the order of the offsets), through apis in turn.
type pacedPublisher struct {
	mu     sync.Mutex
	sent   int
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func publishPaced(apis []*server.Client, channel string, rate int) *pacedPublisher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pacedPublisher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond) // pacing: time is the subject
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p.mu.Lock()
			sent := p.sent
			p.mu.Unlock()
			due := min(10, int(time.Since(start).Seconds()*float64(rate))-sent)
			if due <= 0 {
				continue
			}
			batch := make([]server.Event, due)
			for k := range batch {
				batch[k] = server.Event{Channel: channel, Name: "tick", Data: strconv.Itoa(sent + k + 1)}
			}
			rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := apis[i%len(apis)].TriggerBatch(rctx, batch)
			rcancel()
			p.mu.Lock()
			if err != nil {
				p.err = err
				p.mu.Unlock()
				return
			}
			p.sent += due
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *pacedPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// stop ends publishing and returns how many events went out.
func (p *pacedPublisher) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	<-p.done
	if p.err != nil {
		t.Fatalf("publishing: %v", p.err)
	}
	return p.sent
}

// checkExactlyOnce fails unless ticks are "1".."n" in order.
func checkExactlyOnce(t *testing.T, ticks []string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, s := range ticks {
		seen[s]++
	}
	missing, dups := 0, 0
	for i := 1; i <= n; i++ {
		if seen[strconv.Itoa(i)] == 0 {
			missing++
		}
	}
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	inOrder := len(ticks) == n
	for i := 0; inOrder && i < n; i++ {
		inOrder = ticks[i] == strconv.Itoa(i+1)
	}
	if !inOrder {
		t.Fatalf("%d deliveries of %d events: %d missing, %d duplicated, in order: %v", len(ticks), n, missing, dups, inOrder)
	}
}

// TestRecoveryAfterCutAgainstHerald cuts a client's network for a second
// while events are published at 200/s: on a single node (history in
// memory) it comes back to the same node; on two nodes over Redis it comes
// back to the other one. Every event must reach it once, in order.
func TestRecoveryAfterCutAgainstHerald(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"memory", false}, {"redis-other-node", true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := heraldtest.Options{Extra: historyApp}
			if tc.cluster {
				o.Server = heraldtest.Redis(t)
			}
			a := heraldtest.Start(t, herald.Path(t), o)
			b := a
			if tc.cluster {
				b = heraldtest.Start(t, herald.Path(t), o)
			}
			apis := []*server.Client{api(a.Port), api(b.Port)}
			p := heraldtest.NewProxy(t, "127.0.0.1:"+strconv.Itoa(a.Port))
			c := newClient(t, p.Port, client.Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
			orders := c.Channel("orders-go")
			r := record(orders)
			orders.Subscribe()
			c.Connect()
			if err := orders.WaitSubscribed(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			pub := publishPaced(apis, "orders-go", 200)
			r.waitTicks(t, 100)

			p.Refuse(true)
			p.Cut()
			eventually(t, 10*time.Second, "the client to notice the cut", func() bool { return c.State() != client.Connected })
			during := pub.count()
			heraldtest.Eventually(t, 10*time.Second, "events published during the cut", func() bool { return pub.count() >= during+200 })
			p.SetTarget("127.0.0.1:" + strconv.Itoa(b.Port))
			p.Refuse(false)

			recs := r.waitRecoveries(t, 1)
			if !recs[0].Recovered || recs[0].Replayed < 200 {
				t.Fatalf("recovery = %+v, want recovered with at least the 200 events of the cut", recs[0])
			}
			more := pub.count()
			heraldtest.Eventually(t, 10*time.Second, "live events after the recovery", func() bool { return pub.count() >= more+100 })
			n := pub.stop(t)
			checkExactlyOnce(t, r.waitTicks(t, n), n)
			t.Logf("%s: %d events, %d replayed after the cut, all received once in order", tc.name, n, recs[0].Replayed)
		})
	}
}

// BenchmarkRecoveryReplay1000 measures a recovery of 1,000 missed events
// against one herald (history in memory, or $HERALD_SDK_BENCH_REDIS=1 for
// two nodes on Redis, publishing on one and recovering on the other): from
// the pusher:subscribe with recover to herald:recovery, with every
// replayed event delivered to the channel's binding.
//
//	cd sdk && go test -run '^$' -bench RecoveryReplay1000 -benchtime 20x ./client/
func BenchmarkRecoveryReplay1000(b *testing.B) {
	const n = 1000
	o := heraldtest.Options{Extra: historyApp}
	cluster := os.Getenv("HERALD_SDK_BENCH_REDIS") == "1"
	if cluster {
		o.Server = heraldtest.Redis(b)
	}
	pubNode := heraldtest.Start(b, herald.Path(b), o)
	subNode := pubNode
	if cluster {
		subNode = heraldtest.Start(b, herald.Path(b), o)
	}
	pubAPI := api(pubNode.Port)
	c, err := client.New(heraldtest.Key, client.Options{Host: "127.0.0.1", Port: subNode.Port})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		b.Fatal(err)
	}
	var replayed, events int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("orders-bench-%d", i)
		ch := c.Channel(name)
		got := make(chan client.Recovery, 1)
		var mu sync.Mutex
		count := 0
		ch.Bind("tick", func(client.Event) { mu.Lock(); count++; mu.Unlock() })
		ch.OnRecovery(func(r client.Recovery) { got <- r })
		// One event before the subscription, so that the channel's history
		// (and its epoch) exists when the subscription reads its position.
		if err := pubAPI.Trigger(ctx, name, "tick", "0"); err != nil {
			b.Fatal(err)
		}
		ch.Subscribe()
		if err := ch.WaitSubscribed(ctx); err != nil {
			b.Fatal(err)
		}
		start, _ := ch.Position()
		ch.Unsubscribe()
		for k := 0; k < n; k += 10 {
			batch := make([]server.Event, 10)
			for j := range batch {
				batch[j] = server.Event{Channel: name, Name: "tick", Data: `{"id":` + strconv.Itoa(k+j) + `,"status":"shipped","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`}
			}
			if _, err := pubAPI.TriggerBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		ch.SetPosition(start)
		b.StartTimer()
		ch.Subscribe()
		var r client.Recovery
		select {
		case r = <-got:
		case <-ctx.Done():
			b.Fatal("no herald:recovery")
		}
		b.StopTimer()
		mu.Lock()
		events += count
		mu.Unlock()
		if !r.Recovered || r.Replayed != n {
			b.Fatalf("recovery = %+v, want %d replayed", r, n)
		}
		replayed += r.Replayed
		ch.Unsubscribe()
		b.StartTimer()
	}
	b.StopTimer()
	if events != replayed {
		b.Fatalf("%d events delivered for %d replayed", events, replayed)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/1000-events")
}
