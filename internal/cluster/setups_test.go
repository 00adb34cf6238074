package cluster

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/redistest"
	"github.com/herald-ws/herald/internal/testwait"
)

// A dead node is reaped on every Redis setup: the reaper's pipelines of
// scripts over several apps stay within one slot each in a Redis Cluster.
func TestReaperOnEverySetup(t *testing.T) {
	for _, setup := range []struct {
		name string
		opts func(t *testing.T) (*redis.UniversalOptions, string)
	}{
		{"single", func(t *testing.T) (*redis.UniversalOptions, string) { return redisOpts(testRedis), testPrefix(t) }},
		{"sentinel", func(t *testing.T) (*redis.UniversalOptions, string) {
			return sharedSentinel(t).Options(), freshPrefix()
		}},
		{"cluster", func(t *testing.T) (*redis.UniversalOptions, string) { return sharedCluster(t).Options(), freshPrefix() }},
	} {
		t.Run(setup.name, func(t *testing.T) {
			ro, p := setup.opts(t)
			ctx := context.Background()
			var log reapLog
			dead := startNode(t, testOptionsOn(ro, p))
			survivor := startNode(t, testOptionsOn(ro, p), recv{depart: log.add})
			for _, app := range []string{"app1", "app2", "app3"} {
				if _, err := dead.State().Subscribe(ctx, app, "presence-p", "1.1", enginetest.Member("u1"), 0); err != nil {
					t.Fatal(err)
				}
				if _, err := survivor.State().Subscribe(ctx, app, "room", "2.1", nil, 0); err != nil {
					t.Fatal(err)
				}
			}
			dead.stop() // no more renewals: the lease runs out
			testwait.For(t, 10*time.Second, "the reap", func() bool {
				gone := 0
				for _, d := range log.all() {
					for _, c := range d.Channels {
						gone += len(c.Gone)
					}
				}
				return gone == 3
			})
			for _, app := range []string{"app1", "app2", "app3"} {
				if ms, err := survivor.State().Members(ctx, app, "presence-p"); err != nil || len(ms) != 0 {
					t.Fatalf("%s: members left %v %v", app, ms, err)
				}
				if chs, err := survivor.State().Channels(ctx, app, ""); err != nil || len(chs) != 1 || chs["room"].SubscriptionCount != 1 {
					t.Fatalf("%s: channels %v %v", app, chs, err)
				}
			}
		})
	}
}

// The barrier after a failover (one Redis or Sentinel): a node whose
// subscriber connection came back does not publish while another live
// node (B) has not subscribed again (its dialing is held here, the
// slowest of the nodes after a failover): a message Redis accepted would
// miss that node's subscribers without anyone knowing. Every publish
// either fails with ErrPubSubDown or reaches B once it is back. (Redis
// keeps its data over the restart, as a promoted replica does: the leases
// say which nodes are live.)
//
// B runs this build, with a broker X subscribed too that stands for no
// live node (a node starting, a lease being renewed): X must not stand in
// for B. Or B runs an earlier build, which does not name its broker in
// its lease (a rolling upgrade): it is counted on the shared live channel.
func TestPublishBarrierAfterFailover(t *testing.T) { heldNodeOfEachBuild(t, testPublishBarrier) }

// heldNodeOfEachBuild runs a barrier test with the held node of this
// build, then of an earlier one.
func heldNodeOfEachBuild(t *testing.T, test func(t *testing.T, earlier bool)) {
	t.Run("held node of this build", func(t *testing.T) { test(t, false) })
	t.Run("held node of an earlier build", func(t *testing.T) { test(t, true) })
}

func testPublishBarrier(t *testing.T, earlier bool) {
	port := freePort(t)
	dir := t.TempDir()
	srv := startRedisAOF(t, port, dir)
	o := testOptions(srv.addr(), "herald:")
	o.Lease, o.Heartbeat = 10*time.Second, 100*time.Millisecond

	got := newCollector()
	a := startEngine(t, o, "A", nil).Broker
	ob, hold, release := gatedDial(t, o)
	var b, x *Broker
	var bNode string
	if earlier {
		bNode = startNode(t, o).ID()
		b = startBroker(t, ob, "B", got.deliver)
	} else {
		eb := startEngine(t, ob, "B", got.deliver)
		b, bNode = eb.Broker, eb.Node.ID()
		x = startBroker(t, o, "X", nil)
	}
	ctx := context.Background()
	if err := b.Interest(ctx, "app", "room", true); err != nil {
		t.Fatal(err)
	}
	msg := func(i int) hub.BrokerMessage {
		return hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("m" + itoa(i))}
	}
	if err := a.Publish(ctx, msg(0)); err != nil {
		t.Fatalf("before the loss: %v", err)
	}
	got.waitPayload(t, "m0", 3*time.Second)

	hold()
	srv.kill()
	// (B's reader may not tell: go-redis redials within the read that
	// failed, and the dial is held.)
	testwait.For(t, 3*time.Second, "A down", func() bool { return !a.anchor.up.Load() })
	if err := a.Publish(ctx, msg(1)); !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("while down: %v, want ErrPubSubDown", err)
	}
	startRedisAOF(t, port, dir)
	testwait.For(t, 5*time.Second, "A subscribed again", func() bool { return a.anchor.up.Load() })
	if x != nil {
		testwait.For(t, 5*time.Second, "X subscribed again", func() bool { return x.anchor.up.Load() })
	}
	err := a.Publish(ctx, msg(2))
	if !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("B not subscribed yet: publish answered %v, want ErrPubSubDown", err)
	}
	if !earlier && !strings.Contains(err.Error(), bNode) {
		t.Fatalf("the refusal does not name B's node %s: %v", bNode, err)
	}
	// A history event is published by its append script: the same barrier.
	rule := apps.HistoryRule{Pattern: "*", Size: 10, TTL: time.Minute}
	if _, err := NewHistory(a).Append(ctx, rule, msg(3)); !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("B not subscribed yet: history append answered %v, want ErrPubSubDown", err)
	}
	release()
	var ok []int
	i := 4
	testwait.For(t, 5*time.Second, "publishing to resume once B is back", func() bool {
		err := a.Publish(ctx, msg(i))
		if err == nil {
			ok = append(ok, i)
		} else if !errors.Is(err, ErrPubSubDown) {
			t.Fatalf("publish %d: %v", i, err)
		}
		i++
		return len(ok) >= 3
	})
	for _, i := range ok {
		got.waitPayload(t, "m"+itoa(i), 3*time.Second)
	}
	for _, m := range got.all() {
		if p := string(m.Payload); p == "m1" || p == "m2" || p == "m3" {
			t.Fatalf("refused message %s delivered", p)
		}
	}
}

// startRedisAOF starts a redis-server that keeps its data in dir over a
// kill (append-only file, fsync always), like a replica promoted with it.
func startRedisAOF(t testing.TB, port int, dir string) *redisServer {
	t.Helper()
	cmd := exec.Command("/usr/bin/redis-server", "--port", itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server (Debian package redis-server) is required: %v", err)
	}
	s := &redisServer{port: port, cmd: cmd}
	t.Cleanup(s.kill)
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	testwait.For(t, 5*time.Second, "redis-server", func() bool { return c.Ping(context.Background()).Err() == nil })
	return s
}

// The barrier of a Redis Cluster, per shard: the primary of an app's
// shard is killed and its replica takes over. Node B, which has sockets
// and interest in the app, is held (its dialing, the slowest of the nodes
// after a failover): until it has subscribed again on the new primary,
// neither A (interest in the app: its connection to the shard failed) nor
// C (no interest, it only publishes: it sees the slot's primary change)
// gets a publish through, nor a history event (its script publishes it),
// and every publish either fails or reaches B once it is back.
//
// B runs this build, with node X subscribed to the app too but no
// sockets recorded there yet (a subscribe in flight): X must not stand in
// for B. Or B runs an earlier build, which does not name its broker in
// its lease (a rolling upgrade): it is counted on the app's shared live
// channel, and the first publishes of A and C before the failover (each
// checked: no primary to compare with yet) pass with it subscribed.
func TestShardBarrierAfterFailover(t *testing.T) { heldNodeOfEachBuild(t, testShardBarrier) }

func testShardBarrier(t *testing.T, earlier bool) {
	// A cluster of its own: the failover uses up the shard's replica.
	rc, err := redistest.StartCluster(t.TempDir(), 3, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	o := testOptionsOn(rc.Options(), freshPrefix())
	// Leases outlive the failover, whichever shard holds them, and a pause
	// of the whole box (the barrier counts the nodes with live leases).
	o.Lease, o.Heartbeat = time.Minute, 100*time.Millisecond
	ctx := context.Background()
	got := newCollector()
	ea := startEngine(t, o, "A", nil)
	a := ea.Broker
	ob, hold, release := gatedDial(t, o)
	var b, x *Broker
	var bState *State
	if earlier {
		bState = startNode(t, o).State()
		b = startBroker(t, ob, "B", got.deliver)
	} else {
		eb := startEngine(t, ob, "B", got.deliver)
		b, bState = eb.Broker, eb.State()
		x = startEngine(t, o, "X", nil).Broker
	}
	for i, st := range []*State{ea.State(), bState} {
		if _, err := st.Subscribe(ctx, "app", "room", itoa(i)+".1", nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A's lease and its first socket in the app, each on its slot's
	// primary, were acknowledged by that primary's replica
	// (TestBarrierWritesWaitForAReplica).
	if acked, lagged := ea.Node.ReplicaWaits(); acked != 2 || lagged != 0 {
		t.Fatalf("A's replica waits: acked %d, lagged %d, want 2, 0", acked, lagged)
	}
	c := startEngine(t, o, "C", nil).Broker
	// D publishes for the first time after the failover: it has no primary
	// of the app's shard to compare with.
	d := startEngine(t, o, "D", nil).Broker
	for _, y := range []*Broker{a, b, x} {
		if y == nil {
			continue
		}
		if err := y.Interest(ctx, "app", "room", true); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(i int) hub.BrokerMessage {
		return hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("m" + itoa(i))}
	}
	for i, y := range []*Broker{a, c} {
		if err := y.Publish(ctx, msg(i)); err != nil {
			t.Fatalf("before the failover: %v", err)
		}
		got.waitPayload(t, "m"+itoa(i), 3*time.Second)
	}
	tagUp := func(y *Broker) bool {
		y.mu.RLock()
		defer y.mu.RUnlock()
		sc := y.subs["app"]
		return sc != nil && sc.up.Load()
	}

	hold()
	primary, err := rc.PrimaryFor(ctx, o.Prefix+"{app}:x")
	if err != nil {
		t.Fatal(err)
	}
	primary.Kill()
	testwait.For(t, 5*time.Second, "A's connection to the shard down", func() bool { return !tagUp(a) })
	testwait.For(t, 20*time.Second, "A subscribed again on the promoted replica", func() bool { return tagUp(a) })
	if x != nil {
		testwait.For(t, 20*time.Second, "X subscribed again on the promoted replica", func() bool { return tagUp(x) })
	}
	// A's connection failed; C, which has none, learns the new primary from
	// its slot map (reloaded here as another command's error would) and
	// would publish there without an error of its own.
	cc := c.rdb.(*redis.ClusterClient)
	testwait.For(t, 10*time.Second, "C's slot map to show the new primary", func() bool {
		m, err := cc.MasterForKey(ctx, o.Prefix+"{app}:live")
		if err != nil || m.Options().Addr == primary.Addr() {
			cc.ReloadState(ctx)
			return false
		}
		return true
	})
	refused := map[string]bool{}
	i := 2
	for _, y := range []*Broker{a, c, d, a, c} {
		if err := y.Publish(ctx, msg(i)); !errors.Is(err, ErrPubSubDown) {
			t.Fatalf("%s: publish m%d while B was not subscribed again: %v, want ErrPubSubDown", y.NodeID(), i, err)
		}
		refused["m"+itoa(i)] = true
		i++
	}
	// A history event is published by its append script: the same barrier.
	rule := apps.HistoryRule{Pattern: "*", Size: 10, TTL: time.Minute}
	if _, err := NewHistory(a).Append(ctx, rule, msg(i)); !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("history append m%d while B was not subscribed again: %v, want ErrPubSubDown", i, err)
	}
	refused["m"+itoa(i)] = true
	i++
	release()
	var ok []int
	for _, y := range []*Broker{a, c, d} {
		n := 0
		testwait.For(t, 15*time.Second, "publishing to resume once B is back", func() bool {
			if err := y.Publish(ctx, msg(i)); err == nil {
				ok = append(ok, i)
				n++
			} else if errors.Is(err, ErrPubSubDown) {
				refused["m"+itoa(i)] = true
			}
			i++
			return n >= 3
		})
	}
	for _, i := range ok {
		got.waitPayload(t, "m"+itoa(i), 3*time.Second)
	}
	for _, m := range got.all() {
		if refused[string(m.Payload)] {
			t.Fatalf("refused message %s delivered", m.Payload)
		}
	}
}
