package enginetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// deliveryWait bounds how long a message may take to reach a node.
const deliveryWait = 5 * time.Second

// inbox is a hub.Receiver that records what a node's Broker delivers.
type inbox struct {
	mu   sync.Mutex
	msgs []hub.BrokerMessage
}

func (r *inbox) HandleBrokerMessage(m hub.BrokerMessage) {
	m.Payload = append([]byte(nil), m.Payload...)
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (*inbox) HandleDeparture(hub.Departure) {}

func (*inbox) Reregister(context.Context) {}
func (*inbox) Reconcile(context.Context)  {}

func (r *inbox) all() []hub.BrokerMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hub.BrokerMessage(nil), r.msgs...)
}

// of returns the messages of app (the barriers' are app "sys").
func (r *inbox) of(app string) []hub.BrokerMessage {
	var out []hub.BrokerMessage
	for _, m := range r.all() {
		if m.AppID == app {
			out = append(out, m)
		}
	}
	return out
}

func (r *inbox) payloads() []string {
	var out []string
	for _, m := range r.all() {
		out = append(out, string(m.Payload))
	}
	return out
}

// waitFor waits until a message with payload p arrived and returns every
// payload received so far.
func (r *inbox) waitFor(t *testing.T, p string) []string {
	t.Helper()
	var got []string
	testwait.For(t, deliveryWait, "message "+p, func() bool {
		got = r.payloads()
		for _, g := range got {
			if g == p {
				return true
			}
		}
		return false
	})
	return got
}

// attached returns the nodes of a new cluster, each Broker attached to an
// inbox.
func attached(t *testing.T, newCluster NewCluster, n int) ([]Node, []*inbox) {
	nodes := newCluster(t, n)
	boxes := make([]*inbox, n)
	for i, nd := range nodes {
		boxes[i] = &inbox{}
		nd.Broker.Attach(boxes[i])
	}
	return nodes, boxes
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func msg(app, channel, payload string) hub.BrokerMessage {
	return hub.BrokerMessage{AppID: app, Channel: channel, Payload: []byte(payload)}
}

// barrier publishes a marker from pub on a channel every other node has
// interest in, and waits for it on each. Both engines deliver to a node in
// the order the publishes were accepted, across channels and publishers
// (one Redis connection per node; the memory Broker delivers before
// Publish returns), so whatever was published before has arrived by then,
// or never will: that is how the suite checks that nothing arrives. An
// engine without that order (sharded pub/sub) needs a barrier of its own.
func barrier(t *testing.T, nodes []Node, boxes []*inbox, pub int) {
	t.Helper()
	ctx := context.Background()
	mark := fmt.Sprintf("barrier-%d", time.Now().UnixNano())
	for i, nd := range nodes {
		if i != pub {
			must(t, nd.Broker.Interest(ctx, "sys", "barrier", true))
		}
	}
	must(t, nodes[pub].Broker.Publish(ctx, msg("sys", "barrier", mark)))
	for i, b := range boxes {
		if i != pub {
			b.waitFor(t, mark)
		}
	}
	for i, nd := range nodes {
		if i != pub {
			must(t, nd.Broker.Interest(ctx, "sys", "barrier", false))
		}
	}
}

// arrived waits until the inbox holds at least n messages of app. A
// barrier proves that nothing more is coming only on its own channel's
// path: a Broker keeps order per publisher and channel, not across
// channels (the Redis one spreads channels over ordered queues), so what
// must arrive is waited for, and the barrier guards only what must not.
func arrived(t *testing.T, b *inbox, app string, n int) {
	t.Helper()
	testwait.For(t, deliveryWait, fmt.Sprintf("%d messages of %s", n, app), func() bool { return len(b.of(app)) >= n })
}

// count returns how many of the inbox's messages of app carry payload p.
func count(b *inbox, app, p string) int {
	n := 0
	for _, m := range b.all() {
		if m.AppID == app && string(m.Payload) == p {
			n++
		}
	}
	return n
}

// runBroker checks the Broker contract.
func runBroker(t *testing.T, newCluster NewCluster) {
	ctx := context.Background()

	t.Run("broker delivers to interested nodes only", func(t *testing.T) {
		nodes, boxes := attached(t, newCluster, 3)
		must(t, nodes[1].Broker.Interest(ctx, "a", "room", true))
		must(t, nodes[0].Broker.Interest(ctx, "a", "room", true)) // the publisher's own: not delivered back
		m := hub.BrokerMessage{AppID: "a", Channel: "room", Payload: []byte(`{"n":1}`), ExceptSocketID: "1.2"}
		must(t, nodes[0].Broker.Publish(ctx, m))
		must(t, nodes[0].Broker.Publish(ctx, msg("b", "room", "other app")))
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "hall", "other channel")))
		arrived(t, boxes[1], "a", 1)
		barrier(t, nodes, boxes, 0)
		barrier(t, nodes, boxes, 1) // reaches node 0 after anything of its own
		got := boxes[1].of("a")
		if len(got) != 1 || got[0].AppID != "a" || got[0].Channel != "room" || string(got[0].Payload) != `{"n":1}` || got[0].ExceptSocketID != "1.2" {
			t.Fatalf("node 1 got %+v", got)
		}
		if got := boxes[1].of("b"); len(got) != 0 {
			t.Fatalf("node 1 got another app's message: %+v", got)
		}
		if got := boxes[2].of("a"); len(got) != 0 {
			t.Fatalf("node 2 without interest got %+v", got)
		}
		if got := boxes[0].of("a"); len(got) != 0 {
			t.Fatalf("the publisher got its own messages: %+v", got)
		}
	})

	t.Run("broker interest is counted", func(t *testing.T) {
		nodes, boxes := attached(t, newCluster, 2)
		b := nodes[1].Broker
		must(t, b.Interest(ctx, "a", "room", true))
		must(t, b.Interest(ctx, "a", "room", true))
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "room", "two ons")))
		must(t, b.Interest(ctx, "a", "room", false))
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "room", "one on")))
		// Publish may return before the message left the node: it is owed
		// only to the interest it meets, so the last off waits for it.
		arrived(t, boxes[1], "a", 2)
		must(t, b.Interest(ctx, "a", "room", false))
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "room", "none")))
		barrier(t, nodes, boxes, 0)
		// At most once: two ons are one subscription, not two.
		if c1, c2, c3 := count(boxes[1], "a", "two ons"), count(boxes[1], "a", "one on"), count(boxes[1], "a", "none"); c1 != 1 || c2 != 1 || c3 != 0 {
			t.Fatalf("deliveries %d %d %d, want 1 1 0", c1, c2, c3)
		}
		// An off that overtakes its on leaves no interest once the on comes.
		must(t, b.Interest(ctx, "a", "late", false))
		must(t, b.Interest(ctx, "a", "late", true))
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "late", "balanced")))
		barrier(t, nodes, boxes, 0)
		if n := count(boxes[1], "a", "balanced"); n != 0 {
			t.Fatalf("off then on: %d deliveries", n)
		}
	})

	t.Run("broker user interest", func(t *testing.T) {
		nodes, boxes := attached(t, newCluster, 2)
		must(t, nodes[1].Broker.UserInterest(ctx, "a", "u1", true))
		must(t, nodes[0].Broker.Publish(ctx, hub.BrokerMessage{AppID: "a", ToUser: "u1", Payload: []byte("to u1")}))
		must(t, nodes[0].Broker.Publish(ctx, hub.BrokerMessage{AppID: "a", TerminateUser: "u1"}))
		must(t, nodes[0].Broker.Publish(ctx, hub.BrokerMessage{AppID: "a", ToUser: "u2", Payload: []byte("to u2")}))
		// A channel named like the user is another thing.
		must(t, nodes[0].Broker.Publish(ctx, msg("a", "u1", "channel u1")))
		arrived(t, boxes[1], "a", 2)
		barrier(t, nodes, boxes, 0)
		got := boxes[1].of("a")
		if len(got) != 2 || got[0].ToUser != "u1" || string(got[0].Payload) != "to u1" || got[1].TerminateUser != "u1" {
			t.Fatalf("user messages: %+v", got)
		}
		must(t, nodes[1].Broker.UserInterest(ctx, "a", "u1", false))
		must(t, nodes[0].Broker.Publish(ctx, hub.BrokerMessage{AppID: "a", ToUser: "u1", Payload: []byte("after off")}))
		barrier(t, nodes, boxes, 0)
		if n := count(boxes[1], "a", "after off"); n != 0 {
			t.Fatalf("delivered after the user's last off")
		}
	})

	t.Run("broker keeps order per publisher and channel", func(t *testing.T) {
		nodes, boxes := attached(t, newCluster, 3)
		must(t, nodes[2].Broker.Interest(ctx, "a", "room", true))
		must(t, nodes[2].Broker.Interest(ctx, "a", "hall", true))
		const per = 200
		var wg sync.WaitGroup
		for p := range 2 {
			for _, ch := range []string{"room", "hall"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						if err := nodes[p].Broker.Publish(ctx, msg("a", ch, fmt.Sprintf("%d %s %d", p, ch, i))); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		testwait.For(t, deliveryWait, "every message", func() bool { return len(boxes[2].all()) >= 4*per })
		barrier(t, nodes, boxes, 0)
		barrier(t, nodes, boxes, 1)
		next := map[string]int{}
		for _, m := range boxes[2].of("a") {
			var p, i int
			var ch string
			if _, err := fmt.Sscanf(string(m.Payload), "%d %s %d", &p, &ch, &i); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			k := strconv.Itoa(p) + ch
			if i != next[k] {
				t.Fatalf("publisher %d on %s: got %d, want %d (lost, repeated or reordered)", p, ch, i, next[k])
			}
			next[k]++
		}
		if n := len(boxes[2].of("a")); n != 4*per {
			t.Fatalf("%d messages, want %d", n, 4*per)
		}
	})

	t.Run("broker refuses a message without destination", func(t *testing.T) {
		nodes, _ := attached(t, newCluster, 1)
		if err := nodes[0].Broker.Publish(ctx, hub.BrokerMessage{AppID: "a", Payload: []byte("x")}); err == nil {
			t.Fatal("no channel nor user accepted")
		}
	})

}
