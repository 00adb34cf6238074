package cluster

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

func TestBrokerInterestAndRouting(t *testing.T) {
	o := testOptions(testRedis, testPrefix(t))
	ca, cb, cc := newCollector(), newCollector(), newCollector()
	a := startBroker(t, o, "A", ca.deliver)
	b := startBroker(t, o, "B", cb.deliver)
	c := startBroker(t, o, "C", cc.deliver) // no interest in what A publishes
	// M publishes markers on a channel A, B and C all listen to: each has
	// one subscriber connection, which Redis feeds in the order it ran the
	// PUBLISHes, so a marker published after A's Publish calls returned
	// reaches each of them after anything of A's that could reach it.
	mk := startBroker(t, o, "M", func(hub.BrokerMessage) {})
	ctx := context.Background()
	for _, x := range []*Broker{a, b, c} {
		if err := x.Interest(ctx, "app", "marker", true); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(payload string, cs ...*collector) {
		t.Helper()
		if err := mk.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "marker", Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			c.waitPayload(t, payload, 2*time.Second)
		}
	}

	if err := b.Interest(ctx, "app", "room", true); err != nil {
		t.Fatal(err)
	}
	if err := a.Interest(ctx, "app", "room", true); err != nil {
		t.Fatal(err)
	}
	if err := b.UserInterest(ctx, "app", "u1", true); err != nil {
		t.Fatal(err)
	}
	msgs := []hub.BrokerMessage{
		{AppID: "app", Channel: "room", Payload: []byte(`{"event":"e"}`), ExceptSocketID: "1.2"},
		{AppID: "app", ToUser: "u1", Payload: []byte(`{"event":"to-user"}`), ExceptSocketID: "1.3"},
		{AppID: "app", TerminateUser: "u1"},
		{AppID: "app", Channel: "elsewhere", Payload: []byte(`x`)}, // nobody interested
		{AppID: "other", Channel: "room", Payload: []byte(`x`)},    // other app
		{AppID: "app", ToUser: "u2", Payload: []byte(`x`)},         // other user
	}
	for _, m := range msgs {
		if err := a.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Once each has the marker, anything it should not have had is in.
	mark("end", ca, cb, cc)
	got := cb.all()
	if len(got) != 4 {
		t.Fatalf("B got %d messages: %+v", len(got), got)
	}
	for i, m := range msgs[:3] {
		if g := got[i]; g.AppID != m.AppID || g.Channel != m.Channel || !bytes.Equal(g.Payload, m.Payload) ||
			g.ExceptSocketID != m.ExceptSocketID || g.ToUser != m.ToUser || g.TerminateUser != m.TerminateUser {
			t.Fatalf("message %d: got %+v want %+v", i, g, m)
		}
	}
	if n := len(ca.all()); n != 1 {
		t.Fatalf("A got %d of its own messages", n-1)
	}
	if n := len(cc.all()); n != 1 {
		t.Fatalf("C, without interest, got %d messages", n-1)
	}

	// Interest is counted: two ons need two offs.
	b.Interest(ctx, "app", "room", true)
	b.Interest(ctx, "app", "room", false)
	a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("still")})
	cb.waitPayload(t, "still", 2*time.Second)
	b.Interest(ctx, "app", "room", false)
	b.UserInterest(ctx, "app", "u1", false)
	if n := b.Interests(); n != 1 {
		t.Fatalf("%d interests left besides the marker channel", n-1)
	}
	a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("gone")})
	a.Publish(ctx, hub.BrokerMessage{AppID: "app", ToUser: "u1", Payload: []byte("gone")})
	c.Interest(ctx, "app", "room", true)
	a.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("c")})
	cc.waitPayload(t, "c", 2*time.Second)
	// The UNSUBSCRIBEs may reach Redis after the "gone" PUBLISHes; B must
	// drop what comes meanwhile, and it comes before this marker.
	mark("end2", cb)
	if n := len(cb.all()); n != 6 {
		t.Fatalf("B got %d messages after losing interest", n-6)
	}
	// An off that overtakes its on (two goroutines of the hub) nets out.
	b.Interest(ctx, "app", "marker", false)
	b.Interest(ctx, "app", "race", false)
	if n := b.Interests(); n != 0 {
		t.Fatalf("%d interests after a lone off", n)
	}
	b.Interest(ctx, "app", "race", true)
	if n := b.Interests(); n != 0 {
		t.Fatalf("%d interests after off, on", n)
	}
	b.Interest(ctx, "app", "race", true)
	if n := b.Interests(); n != 1 {
		t.Fatalf("%d interests after off, on, on", n)
	}
	if err := a.Publish(ctx, hub.BrokerMessage{AppID: "app"}); err == nil {
		t.Fatal("message without a target accepted")
	}
}

// Each publisher's messages on a channel arrive in order, also when many
// publishers write at once and the queues batch them.
func TestBrokerOrder(t *testing.T) {
	o := testOptions(testRedis, testPrefix(t))
	cb := newCollector()
	a := startBroker(t, o, "A", func(hub.BrokerMessage) {})
	a2 := startBroker(t, o, "A2", func(hub.BrokerMessage) {})
	b := startBroker(t, o, "B", cb.deliver)
	ctx := context.Background()
	for _, ch := range []string{"x", "y"} {
		if err := b.Interest(ctx, "app", ch, true); err != nil {
			t.Fatal(err)
		}
	}
	const n = 1000
	errs := make(chan error, 4)
	for _, p := range []struct {
		b  *Broker
		ch string
	}{{a, "x"}, {a, "y"}, {a2, "x"}, {a2, "y"}} {
		go func() {
			var err error
			for i := range n {
				if e := p.b.Publish(ctx, hub.BrokerMessage{AppID: "app", Channel: p.ch, Payload: []byte(p.b.NodeID() + ":" + strconv.Itoa(i))}); e != nil && err == nil {
					err = e
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := cb.wait(t, 4*n, 10*time.Second)
	next := map[string]int{}
	for _, m := range got {
		var node string
		var i int
		if _, err := fmt.Sscanf(string(bytes.Replace(m.Payload, []byte(":"), []byte(" "), 1)), "%s %d", &node, &i); err != nil {
			t.Fatalf("payload %q", m.Payload)
		}
		k := node + "/" + m.Channel
		if i != next[k] {
			t.Fatalf("%s: got %d, want %d", k, i, next[k])
		}
		next[k]++
	}
	if len(got) != 4*n {
		t.Fatalf("%d messages, want %d", len(got), 4*n)
	}
}

// Fire-and-forget publishing (a cancelled wait) keeps the order too, and a
// closed broker refuses.
func TestBrokerClose(t *testing.T) {
	o := testOptions(testRedis, testPrefix(t))
	a, err := NewBroker(BrokerOptions{Options: o, NodeID: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(context.Background(), hub.BrokerMessage{AppID: "a", Channel: "c"}); err != ErrBrokerClosed {
		t.Fatalf("publish after close: %v", err)
	}
	if err := a.Interest(context.Background(), "a", "c", true); err != ErrBrokerClosed {
		t.Fatalf("interest after close: %v", err)
	}
	a.Close()
	if _, err := NewBroker(BrokerOptions{}); err == nil {
		t.Fatal("no Redis accepted")
	}
}

// The barrier's judgment: nodes that name their broker are checked on
// its own live channel, nodes of earlier builds by count on the shared
// one, beyond the nodes of this build seen there.
func TestUnsubscribed(t *testing.T) {
	own := func(b string) string { return "live:" + b }
	a, b, c := liveNode{"a-1", "A"}, liveNode{"b-1", "B"}, liveNode{"c-1", "C"}
	old1, old2 := liveNode{"o-1", ""}, liveNode{"o-2", ""}
	for _, tc := range []struct {
		name      string
		want, all []liveNode
		subs      map[string]int64
		missing   string
	}{
		{"all subscribed", []liveNode{a, b}, []liveNode{a, b}, map[string]int64{"live": 2, "live:A": 1, "live:B": 1}, ""},
		{"a stand-in does not count", []liveNode{a, b}, []liveNode{a, b}, map[string]int64{"live": 2, "live:A": 1}, "b-1"},
		{"only the wanted are checked", []liveNode{a}, []liveNode{a, b}, map[string]int64{"live": 1, "live:A": 1}, ""},
		{"earlier builds by count", []liveNode{a, old1, old2}, []liveNode{a, old1, old2}, map[string]int64{"live": 3, "live:A": 1}, ""},
		{"an earlier build missing", []liveNode{a, old1, old2}, []liveNode{a, old1, old2}, map[string]int64{"live": 2, "live:A": 1}, "1 of 2 nodes of an earlier build"},
		// C has no sockets in the app but is subscribed: it is not an old node.
		{"this build's unwanted subscribers are not old nodes", []liveNode{a, old1}, []liveNode{a, c, old1}, map[string]int64{"live": 2, "live:A": 1, "live:C": 1}, "1 of 1 nodes of an earlier build"},
		{"nothing wanted", nil, []liveNode{a}, map[string]int64{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(unsubscribed(tc.want, tc.all, tc.subs, "live", own), ", ")
			if got != tc.missing {
				t.Fatalf("missing %q, want %q", got, tc.missing)
			}
		})
	}
}
