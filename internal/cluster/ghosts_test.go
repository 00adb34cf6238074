//go:build unix

package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// repairNode is a hub on the Redis engine wired as the server wires it for
// repairs: its timers run (ghost retries), and each lease tick reconciles.
func repairNode(t *testing.T, o Options, app *apps.App) *clusterNode {
	cn := idleRepairNode(t, o, app)
	runHub(t, cn)
	return cn
}

// idleRepairNode is repairNode with the hub's timers not running yet.
func idleRepairNode(t *testing.T, o Options, app *apps.App) *clusterNode {
	t.Helper()
	return newClusterNodeWith(t, o, app, hub.Options{StateTimeout: o.OpTimeout})
}

// runHub runs the hub's timers until the test ends.
func runHub(t *testing.T, cn *clusterNode) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cn.hub.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func unsubscribe(c *hub.Client, channel string) {
	msg, _ := json.Marshal(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": channel}})
	c.HandleMessage(msg)
}

func testApp() *apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", "278d425bdf160c739803", "7ad3773142a6692b25b8"
	return &a
}

// A presence leave whose Redis call times out (Redis stopped) but is
// applied when Redis resumes: the retry finds nothing to remove, learns
// what the late call did, and member_removed reaches the other node once.
func TestLateLeaveSendsMemberRemovedOnce(t *testing.T) {
	srv := startRedis(t, freePort(t))
	app := testApp()
	o := testOptions(srv.addr(), "herald:")
	// A long lease: the pause below must not cost anyone theirs.
	o.Lease, o.Heartbeat, o.OpTimeout = 20*time.Second, time.Second, 300*time.Millisecond
	n1 := idleRepairNode(t, o, app) // no retry before the late call ran
	n2 := repairNode(t, o, app)
	const ch = "presence-room"
	_, watcher := n2.join(t, app, ch, "stayer")
	c1, _ := n1.join(t, app, ch, "leaver")
	testwait.For(t, 3*time.Second, "member_added on node 2", func() bool { return watcher.has(`member_added presence-room {"user_id":"leaver"}`) })

	rdb := n1.node.Client()
	sockets := n1.node.k.sockets(app.ID, ch)
	// A running node has its scripts loaded; a first EVALSHA would only
	// get NOSCRIPT when it lands.
	if err := unsubscribeScript.Load(context.Background(), rdb).Err(); err != nil {
		t.Fatal(err)
	}
	pause(t, srv)
	unsubscribe(c1, ch) // times out: Redis is stopped
	if n1.hub.Ghosts() != 1 {
		t.Fatalf("%d ghosts after a leave that timed out, want 1", n1.hub.Ghosts())
	}
	resume(t, srv)
	// The late call ran once Redis resumed: the retry finds nothing left.
	testwait.For(t, 5*time.Second, "the late leave applied", func() bool {
		ok, err := rdb.HExists(context.Background(), sockets, c1.SocketID()).Result()
		return err == nil && !ok
	})
	runHub(t, n1)
	testwait.For(t, 5*time.Second, "member_removed on node 2", func() bool { return watcher.has(`member_removed presence-room {"user_id":"leaver"}`) })
	testwait.For(t, 5*time.Second, "the ghost settled", func() bool { return n1.hub.Ghosts() == 0 })
	markers(t, app, ch, []*clusterNode{n1, n2}, watcher)
	if n := watcher.count(`member_removed presence-room {"user_id":"leaver"}`); n != 1 {
		t.Fatalf("%d member_removed, want 1: %v", n, watcher.events())
	}
	if r := n1.hub.Repairs(); r.Ghosts != 1 {
		t.Fatalf("repairs %+v, want one ghost", r)
	}
}

// An entry Redis holds under a node's id that no socket of the node has
// (a subscribe applied after its caller gave up) is removed within a lease
// tick or two, with member_removed once.
func TestReconcileRemovesStaleEntry(t *testing.T) {
	app := testApp()
	o := testOptions(testRedis, testPrefix(t))
	o.Lease, o.Heartbeat = 3*time.Second, 200*time.Millisecond
	n1 := repairNode(t, o, app)
	n2 := repairNode(t, o, app)
	const ch = "presence-stale"
	_, watcher := n2.join(t, app, ch, "stayer")
	ctx := context.Background()
	if _, err := n1.node.State().Subscribe(ctx, app.ID, ch, "999.1", enginetest.Member("ghost"), 0); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "member_removed for the stale entry", func() bool { return watcher.has(`member_removed presence-stale {"user_id":"ghost"}`) })
	if info, err := n2.hub.Channel(ctx, app, ch); err != nil || info.SubscriptionCount != 1 || info.UserCount != 1 {
		t.Fatalf("after the repair: %+v, %v", info, err)
	}
	markers(t, app, ch, []*clusterNode{n1, n2}, watcher)
	if n := watcher.count(`member_removed presence-stale {"user_id":"ghost"}`); n != 1 {
		t.Fatalf("%d member_removed, want 1", n)
	}
	if r := n1.hub.Repairs(); r.Stale != 1 || r.Restored != 0 {
		t.Fatalf("repairs %+v, want one stale entry", r)
	}
	// The node's own sockets are left alone.
	if r := n2.hub.Repairs(); r != (hub.RepairCounts{}) {
		t.Fatalf("node 2 repaired %+v", r)
	}
}

// A Redis that lost the node's records gets them back: entries deleted
// while the lease survived, within a lease tick or two; everything
// (FLUSHALL, the lease too), through the new lease and the same repair.
func TestReconcileRestoresLostState(t *testing.T) {
	srv := startRedis(t, freePort(t))
	app := testApp()
	o := testOptions(srv.addr(), "herald:")
	o.Lease, o.Heartbeat = 3*time.Second, 200*time.Millisecond
	n1 := repairNode(t, o, app)
	n2 := repairNode(t, o, app)
	const ch = "presence-lost"
	n1.join(t, app, ch, "u1")
	roomClient, _ := n1.join(t, app, "room", "x")
	_, watcher := n2.join(t, app, ch, "u2")
	ctx := context.Background()
	rdb := n1.node.Client()
	want := func(what string) {
		t.Helper()
		testwait.For(t, 10*time.Second, what, func() bool {
			p, err1 := n2.hub.Channel(ctx, app, ch)
			r, err2 := n2.hub.Channel(ctx, app, "room")
			return err1 == nil && err2 == nil && p.SubscriptionCount == 2 && p.UserCount == 2 && r.SubscriptionCount == 1
		})
	}
	want("the state at the start")

	// Node 1's records of the presence channel and the room go; its lease
	// and node 2's records stay.
	k := n1.node.k
	for _, c := range []string{ch, "room"} {
		if err := rdb.HDel(ctx, k.sockets(app.ID, c), socketsOf(t, rdb, k.sockets(app.ID, c), n1.node.ID())...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a1 := app.ID
	pipe := rdb.TxPipeline()
	pipe.HDel(ctx, k.members(a1, ch), "u1")
	pipe.HDel(ctx, k.app(a1)+"r:"+ch, "u1")
	pipe.ZRem(ctx, k.order(a1, ch), "u1")
	pipe.Del(ctx, k.nodeSet(a1, n1.node.ID()), k.nodeApps(n1.node.ID()))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	want("node 1's records back")
	if r := n1.hub.Repairs(); r.Restored < 2 {
		t.Fatalf("repairs %+v, want two restored", r)
	}
	// The state is read from Redis; the announcement comes through pub/sub.
	testwait.For(t, 5*time.Second, "u1 announced again", func() bool {
		return watcher.has(`member_added presence-lost {"user_id":"u1"}`)
	})
	// The reaper finds them again if node 1 dies.
	if ok, err := rdb.SIsMember(ctx, k.nodeApps(n1.node.ID()), app.ID).Result(); err != nil || !ok {
		t.Fatalf("node 1's app index not restored: %v %v", ok, err)
	}

	// Only the node's index of its entries lost one: put back, so that a
	// reaper would find it.
	entry := "room\n" + roomClient.SocketID()
	if err := rdb.SRem(ctx, k.nodeSet(app.ID, n1.node.ID()), entry).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "the node set entry back", func() bool {
		ok, err := rdb.SIsMember(ctx, k.nodeSet(app.ID, n1.node.ID()), entry).Result()
		return err == nil && ok
	})

	// Everything lost.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	want("every record back after FLUSHALL")
}

// socketsOf lists the sockets of a channel hash owned by node.
func socketsOf(t *testing.T, rdb redis.UniversalClient, key, node string) []string {
	t.Helper()
	all, err := rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for sock, v := range all {
		if owner, _, _ := strings.Cut(v, "\n"); owner == node {
			out = append(out, sock)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no socket of %s in %s", node, key)
	}
	return out
}

func pause(t *testing.T, s *redisServer) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
}

func resume(t *testing.T, s *redisServer) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
