package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
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

// A broker whose subscriber connection came back from a loss refuses to
// publish for ResubscribeGrace (a minute here, so the check does not race
// the clock): the other nodes may not have subscribed again yet.
func TestBrokerRefusesPublishWhileResubscribing(t *testing.T) {
	port := freePort(t)
	srv := startRedis(t, port)
	o := testOptions(srv.addr(), "herald:")
	b, err := NewBroker(BrokerOptions{Options: o, NodeID: "A", ResubscribeGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	testwait.For(t, 3*time.Second, "broker up", func() bool { return b.Healthy() == nil })
	ctx := context.Background()
	m := hub.BrokerMessage{AppID: "app", Channel: "room", Payload: []byte("x")}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("before the loss: %v", err)
	}
	srv.kill()
	testwait.For(t, 3*time.Second, "broker down", func() bool { return !b.anchor.up.Load() })
	if err := b.Publish(ctx, m); !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("while down: %v, want ErrPubSubDown", err)
	}
	startRedis(t, port)
	testwait.For(t, 5*time.Second, "subscriber back", func() bool { return b.anchor.up.Load() })
	if err := b.Publish(ctx, m); !errors.Is(err, ErrPubSubDown) {
		t.Fatalf("resubscribing: %v, want ErrPubSubDown", err)
	}
	if b.Healthy() == nil {
		t.Fatal("healthy while resubscribing")
	}
}
