package ingest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/testwait"
)

// node is one cluster node's Ingester with leases on a client of its own.
type node struct {
	r   *rig
	rdb *redis.Client
}

func startNode(t *testing.T, a apps.App, clusterPrefix string, ttl time.Duration) *node {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	l, err := NewLeases(LeaseOptions{Client: rdb, Prefix: clusterPrefix, TTL: ttl, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := startRig(t, []apps.App{a}, func(o *Options) { o.Leases = l; o.Logger = slog.New(slog.DiscardHandler) })
	return &node{r: r, rdb: rdb}
}

func (n *node) active() bool { return len(n.r.in.Ingesting()) == 1 }

// One of two nodes ingests; each message is published once; when the
// ingesting node dies without releasing its lease (its cluster Redis
// client is gone), the other takes over within TTL + Poll, never while
// the first still ingests.
func TestLeaseOneNodeIngestsAndTakeover(t *testing.T) {
	p := randomPrefix(t)
	cp := "herald-test:" + p
	a := testApp("a1", p)
	n1, n2 := startNode(t, a, cp, time.Second), startNode(t, a, cp, time.Second)
	var holder, standby *node
	testwait.For(t, 10*time.Second, "one node ingesting", func() bool {
		if n1.active() && n2.active() {
			t.Fatal("both nodes ingest")
		}
		switch {
		case n1.active():
			holder, standby = n1, n2
		case n2.active():
			holder, standby = n2, n1
		}
		return holder != nil
	})
	holder.r.publish(t, p+"c", laravelPayload("one", `"a":1`, ""))
	testwait.For(t, 5*time.Second, "published", func() bool { return len(holder.r.pub.list()) == 1 })
	if standby.r.cnt.total() != 0 {
		t.Fatal("the standby node read a message")
	}

	// The holder loses its cluster Redis: it cannot renew, so it stops by
	// itself when its lease ends, and the standby takes the expired lease.
	died := time.Now()
	_ = holder.rdb.Close()
	testwait.For(t, 10*time.Second, "takeover", func() bool {
		if holder.active() && standby.active() {
			t.Fatal("both nodes ingest during the takeover")
		}
		return standby.active()
	})
	if d := time.Since(died); d > 5*time.Second {
		t.Errorf("takeover took %v, want about TTL (1 s) + poll", d)
	}
	standby.r.publish(t, p+"c", laravelPayload("two", `"a":1`, ""))
	testwait.For(t, 5*time.Second, "published by the new holder", func() bool { return len(standby.r.pub.list()) == 1 })
	if holder.active() || len(holder.r.pub.list()) != 1 {
		t.Fatal("the old holder still ingests")
	}
}

// A graceful Close releases the lease: the standby takes over at its next
// poll, well before the TTL.
func TestLeaseReleasedOnClose(t *testing.T) {
	p := randomPrefix(t)
	cp := "herald-test:" + p
	a := testApp("a1", p)
	// A TTL far longer than the wait: only a released lease passes.
	n1, n2 := startNode(t, a, cp, time.Minute), startNode(t, a, cp, time.Minute)
	testwait.For(t, 10*time.Second, "one node ingesting", func() bool { return n1.active() != n2.active() })
	holder, standby := n1, n2
	if n2.active() {
		holder, standby = n2, n1
	}
	holder.r.in.Close()
	if v, _ := holder.rdb.Get(context.Background(), cp+"{a1}:ingest").Result(); v == holder.r.in.o.Leases.Token() {
		t.Fatal("lease still held after Close")
	}
	testwait.For(t, 5*time.Second, "takeover", standby.active)
}
