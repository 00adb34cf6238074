package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

type reapLog struct {
	mu   sync.Mutex
	reps []hub.Departure
}

func (l *reapLog) add(r hub.Departure) {
	l.mu.Lock()
	l.reps = append(l.reps, r)
	l.mu.Unlock()
}

func (l *reapLog) all() []hub.Departure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]hub.Departure(nil), l.reps...)
}

// A node that dies (no heartbeat, no cleanup) is cleaned up by the
// survivors within the lease window, once, even with two reapers.
func TestReaperCleansUpDeadNode(t *testing.T) {
	p := testPrefix(t)
	ctx := context.Background()
	var logB, logC reapLog
	oa := testOptions(testRedis, p)
	a := startNode(t, oa)
	ob, oc := testOptions(testRedis, p), testOptions(testRedis, p)
	b := startNode(t, ob, recv{depart: logB.add})
	c := startNode(t, oc, recv{depart: logC.add})

	sa, sb := a.State(), b.State()
	for _, s := range []struct {
		st      *State
		ch, id  string
		user    string
		members int
	}{
		{sa, "room", "a.1", "", 0},
		{sa, "room", "a.2", "", 0},
		{sb, "room", "b.1", "", 0},
		{sa, "lonely", "a.5", "", 0},
		{sa, "presence-p", "a.3", "u1", 0},
		{sa, "presence-p", "a.4", "u2", 0},
		{sa, "presence-p", "a.6", "u2", 0},
		{sb, "presence-p", "b.2", "u2", 0},
		{sb, "presence-p", "b.3", "u3", 0},
	} {
		var m = enginetest.Member(s.user)
		if s.user == "" {
			m = nil
		}
		if _, err := s.st.Subscribe(ctx, "app", s.ch, s.id, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Another app of the dead node's.
	if _, err := sa.Subscribe(ctx, "app2", "room", "a.7", nil, 0); err != nil {
		t.Fatal(err)
	}

	// Signed-in users: alice only on the dead node, bob on both.
	for _, u := range []struct {
		st         *State
		user, sock string
	}{{sa, "alice", "a.1"}, {sa, "bob", "a.2"}, {sb, "bob", "b.1"}} {
		if _, _, err := u.st.UserOnline(ctx, "app", u.user, u.sock); err != nil {
			t.Fatal(err)
		}
	}

	dead := a.ID()
	a.stop() // kill -9: no more heartbeats, nothing cleaned up
	killed := time.Now()

	type chanSum struct {
		removed, count int
		gone           []string
		vacated        int
	}
	sum := func() (map[string]*chanSum, int) {
		m := map[string]*chanSum{}
		n := 0
		for _, r := range append(logB.all(), logC.all()...) {
			n++
			if r.Node != dead {
				t.Fatalf("reaped %s, want %s", r.Node, dead)
			}
			for _, c := range r.Channels {
				k := c.AppID + "/" + c.Channel
				if m[k] == nil {
					m[k] = &chanSum{}
				}
				s := m[k]
				s.removed += c.Removed
				s.count = c.Count
				if c.Vacated {
					s.vacated++
				}
				for _, g := range c.Gone {
					s.gone = append(s.gone, g.ID)
				}
			}
		}
		return m, n
	}
	testwait.For(t, 3*time.Second, "the reap", func() bool { _, n := sum(); return n > 0 })
	took := time.Since(killed)
	// A second report could only come from a reap under way now (once the
	// first is done, the dead node is neither listed nor holds any entry:
	// checked below). stop waits for the reapers' loops, so such a report,
	// whole or cut short, is logged by the time it returns.
	b.stop()
	c.stop()
	got, reports := sum()
	t.Logf("cleaned up %v after the kill (lease %v)", took, ob.Lease)
	if took > ob.Lease+500*time.Millisecond {
		t.Fatalf("took %v, lease is %v", took, ob.Lease)
	}
	if reports != 1 {
		t.Fatalf("%d reports for one dead node", reports)
	}
	var offline []hub.DepartedUser
	for _, r := range append(logB.all(), logC.all()...) {
		offline = append(offline, r.Offline...)
	}
	if len(offline) != 1 || offline[0] != (hub.DepartedUser{AppID: "app", UserID: "alice"}) {
		t.Fatalf("offline %+v", offline)
	}
	if n, _ := sb.UserSockets(ctx, "app", "bob"); n != 1 {
		t.Fatalf("bob has %d sockets", n)
	}
	want := map[string]chanSum{
		"app/room":       {removed: 2, count: 1},
		"app/lonely":     {removed: 1, count: 0, vacated: 1},
		"app/presence-p": {removed: 3, count: 2, gone: []string{"u1"}},
		"app2/room":      {removed: 1, count: 0, vacated: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("channels %v", got)
	}
	for k, w := range want {
		g := got[k]
		if g == nil || g.removed != w.removed || g.count != w.count || g.vacated != w.vacated || len(g.gone) != len(w.gone) || (len(w.gone) > 0 && g.gone[0] != w.gone[0]) {
			t.Fatalf("%s: got %+v want %+v", k, g, w)
		}
	}
	// The shared state is right again, and the dead node's keys are gone.
	if c, _ := sb.Channel(ctx, "app", "presence-p"); c.SubscriptionCount != 2 || c.UserCount != 2 {
		t.Fatalf("presence-p %+v", c)
	}
	if ms, _ := sb.Members(ctx, "app", "presence-p"); len(ms) != 2 || ms[0].ID != "u2" || ms[1].ID != "u3" {
		t.Fatalf("members %+v", ms)
	}
	if chs, _ := sb.Channels(ctx, "app", ""); len(chs) != 2 {
		t.Fatalf("channels %+v", chs)
	}
	rdb := b.Client()
	if n, _ := rdb.Exists(ctx, b.k.nodeApps(dead), b.k.nodeSet("app", dead), b.k.nodeSet("app2", dead)).Result(); n != 0 {
		t.Fatalf("%d keys of the dead node left", n)
	}
	if _, err := rdb.ZScore(ctx, b.k.nodes(), dead).Result(); err == nil {
		t.Fatal("dead node still listed")
	}
	if n, _ := rdb.HLen(ctx, b.k.claims()).Result(); n != 0 {
		t.Fatalf("%d claims left", n)
	}
}

// A node that loses its lease while alive comes back under a new id and
// records its sockets again; what it does not record again is reaped.
func TestNodeRejoin(t *testing.T) {
	p := testPrefix(t)
	ctx := context.Background()
	var log reapLog
	rejoined := make(chan string, 4)
	o := testOptions(testRedis, p)
	var n *Node
	rejoin := func(ctx context.Context) {
		s := n.State()
		s.Subscribe(ctx, "app", "room", "1.1", nil, 0)
		s.Subscribe(ctx, "app", "presence-p", "1.3", enginetest.Member("u1"), 0)
		rejoined <- n.ID()
	}
	n = startNode(t, o, recv{depart: log.add, rejoin: rejoin})
	s := n.State()
	for _, id := range []string{"1.1", "1.2"} {
		if _, err := s.Subscribe(ctx, "app", "room", id, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Subscribe(ctx, "app", "presence-p", "1.3", enginetest.Member("u1"), 0); err != nil {
		t.Fatal(err)
	}
	old := n.ID()
	// The lease runs out (a long pause, a partition).
	if err := n.Client().ZAdd(ctx, n.k.nodes(), redisZ(0, old)).Err(); err != nil {
		t.Fatal(err)
	}
	var id string
	select {
	case id = <-rejoined:
	case <-time.After(3 * time.Second):
		t.Fatal("no rejoin")
	}
	if id == old {
		t.Fatal("same id after a lost lease")
	}
	// The report comes after the lease entry is gone: wait for the report.
	testwait.For(t, 3*time.Second, "the old id's reap", func() bool {
		for _, r := range log.all() {
			if r.Node == old {
				return true
			}
		}
		return false
	})
	testwait.For(t, 3*time.Second, "the old id's lease gone", func() bool {
		_, err := n.Client().ZScore(ctx, n.k.nodes(), old).Result()
		return err != nil
	})
	removed := map[string]int{}
	for _, r := range log.all() {
		for _, c := range r.Channels {
			removed[c.Channel] += c.Removed
		}
	}
	// 1.2 is always reaped; 1.1 and 1.3 only when the reap came before the
	// rejoin (they are then recorded again).
	if removed["room"] < 1 {
		t.Fatalf("removed %v", removed)
	}
	if c, _ := s.Channel(ctx, "app", "room"); c.SubscriptionCount != 1 {
		t.Fatalf("room %+v", c)
	}
	if ms, _ := s.Members(ctx, "app", "presence-p"); len(ms) != 1 {
		t.Fatalf("members %+v", ms)
	}
	if owner, _ := n.Client().HGet(ctx, n.k.sockets("app", "room"), "1.1").Result(); owner != id+"\n" {
		t.Fatalf("1.1 owned by %q, want %q", owner, id)
	}
	if err := n.Healthy(); err != nil {
		t.Fatal(err)
	}
}

func TestUserSockets(t *testing.T) {
	ctx := context.Background()
	p := testPrefix(t)
	a := startNode(t, testOptions(testRedis, p)).State()
	b := startNode(t, testOptions(testRedis, p)).State()
	if first, n, err := a.UserOnline(ctx, "app", "u", "1.1"); err != nil || !first || n != 1 {
		t.Fatalf("first: %v %d %v", first, n, err)
	}
	if first, n, _ := b.UserOnline(ctx, "app", "u", "2.1"); first || n != 2 {
		t.Fatalf("second node: %v %d", first, n)
	}
	if first, n, _ := b.UserOnline(ctx, "app", "u", "2.1"); first || n != 2 {
		t.Fatalf("again: %v %d", first, n)
	}
	if n, _ := a.UserSockets(ctx, "app", "u"); n != 2 {
		t.Fatalf("UserSockets %d", n)
	}
	a.Subscribe(ctx, "app", "room", "1.1", nil, 0)
	if chs, _ := a.Channels(ctx, "app", ""); len(chs) != 1 {
		t.Fatalf("users listed as channels: %+v", chs)
	}
	if last, n, _ := a.UserOffline(ctx, "app", "u", "1.1"); last || n != 1 {
		t.Fatalf("offline 1: %v %d", last, n)
	}
	if last, n, _ := b.UserOffline(ctx, "app", "u", "2.1"); !last || n != 0 {
		t.Fatalf("offline 2: %v %d", last, n)
	}
	if last, _, _ := b.UserOffline(ctx, "app", "u", "2.1"); last {
		t.Fatal("offline twice")
	}
}

// The brokers hash follows the leases: a lease names its node's broker
// (the barrier checks the node on the broker's own live channels), again
// at each renewal after a failover lost it, under the node's new id after
// a lost lease; a reaped node's entry goes with it, and so does one left
// by a node that a node of an earlier version reaped.
func TestBrokerIDsFollowTheLease(t *testing.T) {
	p := testPrefix(t)
	ctx := context.Background()
	o := testOptions(testRedis, p)
	e := startEngine(t, o, "E", nil)
	startNode(t, o) // the reaper
	rdb := e.Node.Client()
	k := e.Node.k
	broker := func(id string) string {
		v, _ := rdb.HGet(ctx, k.brokers(), id).Result()
		return v
	}
	if got := broker(e.Node.ID()); got != "E" {
		t.Fatalf("lease of %s names broker %q, want E", e.Node.ID(), got)
	}
	// A failover lost the entry: the next renewal writes it again.
	if err := rdb.HDel(ctx, k.brokers(), e.Node.ID()).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 3*time.Second, "the entry written again", func() bool { return broker(e.Node.ID()) == "E" })
	// A lost lease: the node comes back under a new id, naming its broker.
	old := e.Node.ID()
	if err := rdb.ZAdd(ctx, k.nodes(), redisZ(0, old)).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 3*time.Second, "the new id's entry", func() bool {
		id := e.Node.ID()
		return id != old && broker(id) == "E"
	})
	testwait.For(t, 3*time.Second, "the old id's entry reaped", func() bool { return broker(old) == "" })
	// An entry without a lease (reaped by a node of an earlier version).
	if err := rdb.HSet(ctx, k.brokers(), "gone", "Z").Err(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 3*time.Second, "the stale entry swept", func() bool { return broker("gone") == "" })
	// A dead node's entry goes with its reap.
	dead := e.Node.ID()
	e.Node.stop()
	testwait.For(t, 5*time.Second, "the dead node's entry reaped", func() bool { return broker(dead) == "" })
}
