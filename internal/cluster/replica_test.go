package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/redistest"
	"github.com/herald-ws/herald/internal/testwait"
)

// The writes the failover barrier relies on are acknowledged by a
// replica before they count as done: a node's lease when it registers
// and its first socket in an app (the barrier of a Redis Cluster waits
// for the nodes with sockets recorded in the app). A primary killed right
// after an unreplicated one would leave the promoted replica without it,
// and the barrier would not wait for that node. Later sockets in the app
// don't wait; a replica that does not answer is counted, and the
// subscribe stands.
func TestBarrierWritesWaitForAReplica(t *testing.T) {
	primary, err := redistest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Kill)
	replica, err := redistest.Start(t.TempDir(), "--replicaof", "127.0.0.1", itoa(primary.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Kill)
	t.Cleanup(func() { _ = replica.Resume() }) // before the kill
	ctx := context.Background()
	pc := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer pc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	defer rc.Close()
	testwait.For(t, 10*time.Second, "the replica in sync", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up") && connectedReplicas(pc.Info(ctx, "replication").Val()) == 1
	})

	o := testOptions(primary.Addr(), freshPrefix())
	o.Lease, o.Heartbeat, o.OpTimeout = 10*time.Second, time.Second, 2*time.Second
	o.ReplicaWait = 300 * time.Millisecond
	n := startNode(t, o)
	waits := func() [2]uint64 {
		a, l := n.ReplicaWaits()
		return [2]uint64{a, l}
	}
	if got := waits(); got != [2]uint64{1, 0} {
		t.Fatalf("after the registration: acked, lagged = %v, want the lease acknowledged", got)
	}
	s := n.State()
	if _, err := s.Subscribe(ctx, "app", "room", "1.1", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := waits(); got != [2]uint64{2, 0} {
		t.Fatalf("after the first socket in the app: acked, lagged = %v, want [2 0]", got)
	}
	if c, err := rc.Exists(ctx, n.k.nodeSet("app", n.ID())).Result(); err != nil || c != 1 {
		t.Fatalf("the replica does not have the node set once the subscribe returned: %d %v", c, err)
	}

	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, "app", "room2", "1.2", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := waits(); got != [2]uint64{2, 0} {
		t.Fatalf("a second socket in the app waited: acked, lagged = %v", got)
	}
	if _, err := s.Subscribe(ctx, "app2", "room", "1.3", nil, 0); err != nil {
		t.Fatalf("a first socket in an app, the replica not answering: %v", err)
	}
	if got := waits(); got != [2]uint64{2, 1} {
		t.Fatalf("a first socket in an app, the replica not answering: acked, lagged = %v, want [2 1]", got)
	}
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
}

// Without replicas nothing waits (the shared cluster has none; the
// waits of a Redis Cluster with replicas are checked by
// TestShardBarrierAfterFailover).
func TestNoReplicaNoWait(t *testing.T) {
	o := testOptionsOn(sharedCluster(t).Options(), freshPrefix())
	n := startNode(t, o)
	ctx := context.Background()
	for i, app := range []string{"app1", "app2"} {
		if _, err := n.State().Subscribe(ctx, app, "room", "1."+itoa(i), nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if a, l := n.ReplicaWaits(); a != 0 || l != 0 {
		t.Fatalf("acked %d, lagged %d without replicas, want 0, 0", a, l)
	}
}
