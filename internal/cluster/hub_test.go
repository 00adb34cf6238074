package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
	"github.com/herald-ws/herald/internal/testwait"
)

// recConn records the frames a hub sends to one client.
type recConn struct {
	mu     sync.Mutex
	frames []string
}

func (c *recConn) Send(f []byte, _ int64) bool {
	c.mu.Lock()
	c.frames = append(c.frames, string(f))
	c.mu.Unlock()
	return true
}

func (c *recConn) Close(int, string) {}
func (c *recConn) Bind(string)       {}

// events returns the events received so far as "event channel data".
func (c *recConn) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, f := range c.frames {
		var m struct{ Event, Channel, Data string }
		json.Unmarshal([]byte(f), &m)
		out = append(out, m.Event+" "+m.Channel+" "+m.Data)
	}
	return out
}

func (c *recConn) has(sub string) bool {
	for _, e := range c.events() {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

func (c *recConn) count(sub string) int {
	n := 0
	for _, e := range c.events() {
		if strings.Contains(e, sub) {
			n++
		}
	}
	return n
}

// clusterNode is one hub wired to the Redis engine the way the server
// wires it: the hub registers itself with the engine (messages, departures
// and rejoins).
type clusterNode struct {
	node   *Node
	broker *Broker
	hub    *hub.Hub
}

func newClusterNode(t *testing.T, o Options, app *apps.App) *clusterNode {
	return newClusterNodeWith(t, o, app, hub.Options{})
}

// newClusterNodeWith is newClusterNode with hub options of the test's
// (the engine and the app are set here). hub.New attaches the hub to the
// engine: lease ticks reconcile and a lost lease re-registers, as on a
// server.
func newClusterNodeWith(t *testing.T, o Options, app *apps.App, ho hub.Options) *clusterNode {
	t.Helper()
	eng, err := NewEngine(BrokerOptions{Options: o})
	if err != nil {
		t.Fatal(err)
	}
	store, err := apps.NewStatic([]apps.App{*app})
	if err != nil {
		t.Fatal(err)
	}
	cn := &clusterNode{node: eng.Node, broker: eng.Broker}
	ho.State, ho.Broker, ho.History, ho.Apps = eng.State(), eng, eng.History(), store
	cn.hub = hub.New(ho)
	if err := cn.node.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		cn.broker.Close()
		cn.node.Close()
	})
	testwait.For(t, 3*time.Second, "broker up", func() bool { return cn.broker.Healthy() == nil })
	return cn
}

func (cn *clusterNode) join(t *testing.T, app *apps.App, channel, user string) (*hub.Client, *recConn) {
	t.Helper()
	conn := &recConn{}
	sess, err := cn.hub.Admit(context.Background(), conn, hub.ConnInfo{Key: app.Key})
	if err != nil {
		t.Fatal(err)
	}
	c := sess.(*hub.Client)
	if err := cn.broker.Interest(context.Background(), app.ID, channel, true); err != nil {
		t.Fatal(err)
	}
	cd := `{"user_id":"` + user + `"}`
	auth := app.Key + ":" + protocol.Sign(app.Secret, protocol.ChannelAuthString(c.SocketID(), channel, cd))
	msg, _ := json.Marshal(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": channel, "auth": auth, "channel_data": cd}})
	c.HandleMessage(msg)
	if !conn.has("pusher_internal:subscription_succeeded " + channel) {
		t.Fatalf("%s not subscribed: %v", user, conn.events())
	}
	return c, conn
}

// markers publishes an event from each of nodes on channel, after what
// the test did so far, and waits until every conn has them all. A node's
// messages on one channel reach Redis in order (one publishing queue per
// channel), each node reads them on one subscriber connection and hands
// them to its sockets one at a time, and local sends happen before Publish
// returns: so whatever a node sent on the channel before its marker has
// reached every conn by then.
func markers(t *testing.T, app *apps.App, channel string, nodes []*clusterNode, conns ...*recConn) {
	t.Helper()
	var names []string
	for _, n := range nodes {
		name := "marker-" + n.broker.NodeID()
		names = append(names, name)
		if err := n.hub.Publish(context.Background(), app, hub.PublishRequest{Name: name, Channels: []string{channel}, Data: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, 2*time.Second, "the markers", func() bool {
		for _, c := range conns {
			for _, name := range names {
				if !c.has(name + " " + channel + " m") {
					return false
				}
			}
		}
		return true
	})
}

// Two hubs on one Redis: rosters, member events once, exclusion, and the
// clean-up after one node is killed.
func TestHubsOverRedis(t *testing.T) {
	p := testPrefix(t)
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", "278d425bdf160c739803", "7ad3773142a6692b25b8"
	app := &a
	n1 := newClusterNode(t, testOptions(testRedis, p), app)
	n2 := newClusterNode(t, testOptions(testRedis, p), app)
	const ch = "presence-room"
	ctx := context.Background()

	_, a1 := n1.join(t, app, ch, "u1")
	b1c, b1 := n2.join(t, app, ch, "u2")
	if !b1.has(`"u1"`) {
		t.Fatalf("u2's roster misses u1: %v", b1.events())
	}
	testwait.For(t, 2*time.Second, "member_added u2 on node 1", func() bool { return a1.has("member_added " + ch + ` {"user_id":"u2"}`) })
	_, b2 := n2.join(t, app, ch, "u1") // u1's second socket, on the other node
	_, a3 := n1.join(t, app, ch, "u3")
	testwait.For(t, 2*time.Second, "member_added u3 on node 2", func() bool { return b1.has(`member_added presence-room {"user_id":"u3"}`) })
	// A member event for the joins above went out before join returned:
	// to local sockets at once, and to Redis ahead of its node's marker.
	markers(t, app, ch, []*clusterNode{n1, n2}, a1, b1)
	if a1.has(`member_added presence-room {"user_id":"u1"}`) || b1.has(`member_added presence-room {"user_id":"u1"}`) {
		t.Fatal("member_added for u1's second socket")
	}
	if n := a1.count(`member_added presence-room {"user_id":"u2"}`); n != 1 {
		t.Fatalf("%d member_added for u2", n)
	}

	// An API event on node 1, to everyone but b1.
	if err := n1.hub.Publish(ctx, app, hub.PublishRequest{Name: "e", Channels: []string{ch}, Data: "x", ExceptSocketID: b1c.SocketID()}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 2*time.Second, "the event on node 2", func() bool { return b2.has("e " + ch + " x") })
	if !a1.has("e "+ch+" x") || !a3.has("e "+ch+" x") {
		t.Fatal("local delivery")
	}
	// Node 2 hands node 1's messages on the channel to its sockets one at
	// a time, in order: once b1 has node 1's next one, "e" went by.
	markers(t, app, ch, []*clusterNode{n1}, b1)
	if b1.has("e " + ch + " x") {
		t.Fatal("excluded socket got the event")
	}
	if info, _ := n2.hub.Channel(ctx, app, ch); info.SubscriptionCount != 4 || info.UserCount != 3 {
		t.Fatalf("channel info from node 2: %+v", info)
	}

	// Node 1 dies with u1 (still on node 2) and u3 (only on node 1).
	n1.node.stop()
	n1.broker.Close()
	testwait.For(t, 3*time.Second, "member_removed u3", func() bool { return b1.has(`member_removed presence-room {"user_id":"u3"}`) })
	// Node 2's reaper is the only one left; stop waits for its loop, so
	// whatever it was reporting has been sent to b1 (a local socket) by now.
	n2.node.stop()
	if b1.count(`member_removed presence-room {"user_id":"u3"}`) != 1 || b1.has(`member_removed presence-room {"user_id":"u1"}`) {
		t.Fatalf("member_removed: %v", b1.events())
	}
	if info, _ := n2.hub.Channel(ctx, app, ch); info.SubscriptionCount != 2 || info.UserCount != 2 {
		t.Fatalf("channel info after the reap: %+v", info)
	}
}
