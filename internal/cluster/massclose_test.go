package cluster

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/cluster/enginetest"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/testwait"
)

// nullConn is a client connection that drops what the hub sends: cheap
// enough for thousands.
type nullConn struct{}

func (nullConn) Send([]byte, int64) bool { return true }
func (nullConn) Close(int, string)       {}
func (nullConn) Bind(string)             {}

// Thousands of sockets of one node close at once (a load balancer drops
// them, a client fleet goes away) on a small Redis pool: the node's lease
// is never lost (its renewal does not queue behind the removals, which go
// through at Redis's pace), and the shared state ends empty. Before the
// lease had a client of its own, the removals filled the pool, the
// renewals timed out, and the node rejoined under a new id.
func TestMassDisconnectKeepsLease(t *testing.T) {
	p := testPrefix(t)
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = "1", "278d425bdf160c739803", "7ad3773142a6692b25b8"
	app := &a
	ro := redisOpts(testRedis)
	ro.PoolSize = 2
	o := testOptionsOn(ro, p)
	// A longer lease than the other tests': a renewal that waits behind
	// the drain still loses it, one delayed by this busy test box not.
	o.Lease = 1500 * time.Millisecond
	cn := newClusterNode(t, o, app)
	id := cn.node.ID()
	// The hub's timers retry the removals that timed out (ghosts).
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); cn.hub.Run(runCtx) }()
	t.Cleanup(func() { stopRun(); <-ran })

	const conns = 3000
	clients := make([]*hub.Client, conns)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				sess, err := cn.hub.Admit(context.Background(), nullConn{}, hub.ConnInfo{Key: app.Key})
				if err != nil {
					t.Error(err)
					continue
				}
				c := sess.(*hub.Client)
				clients[i] = c
				enginetest.Subscribe(c, app, "room-"+strconv.Itoa(i%16), "")
				if i%4 == 0 {
					enginetest.Subscribe(c, app, "presence-p", "u"+strconv.Itoa(i%50))
				}
			}
		})
	}
	for i := range conns {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	ctx := context.Background()
	testwait.For(t, 10*time.Second, "every subscription recorded", func() bool {
		chs, err := cn.node.State().Channels(ctx, app.ID, "")
		if err != nil || len(chs) != 17 {
			return false
		}
		total := 0
		for _, c := range chs {
			total += c.SubscriptionCount
		}
		return total == conns+conns/4
	})

	t.Logf("%d sockets subscribed", conns)
	// Every socket closes at once; the lease must hold throughout.
	start := time.Now()
	var closing sync.WaitGroup
	for _, c := range clients {
		closing.Go(c.Closed)
	}
	lost := make(chan string, 1)
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if now := cn.node.ID(); now != id {
				lost <- now
				return
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	}()
	closing.Wait()
	t.Logf("closed in %v; ghosts %d; node %s (was %s)", time.Since(start), cn.hub.Ghosts(), cn.node.ID(), id)
	// The removals that timed out are retried by the hub (ghosts): wait
	// for the state to end empty, with the lease watched all along.
	testwait.For(t, 30*time.Second, "the shared state emptied", func() bool {
		chs, err := cn.node.State().Channels(ctx, app.ID, "")
		return err == nil && len(chs) == 0 && cn.hub.Ghosts() == 0
	})
	// A few more renewals after the drain.
	beats := 0
	testwait.For(t, 5*time.Second, "renewals after the drain", func() bool {
		if cn.node.Healthy() == nil {
			beats++
		}
		return beats >= 3
	})
	close(stopWatch)
	<-watched
	select {
	case now := <-lost:
		t.Fatalf("lease lost during the mass disconnect: node %s rejoined as %s", id, now)
	default:
	}
	if ms, err := cn.node.State().Members(ctx, app.ID, "presence-p"); err != nil || len(ms) != 0 {
		t.Fatalf("members left: %v %v", ms, err)
	}
	c := redis.NewClient(&redis.Options{Addr: testRedis})
	defer c.Close()
	if n, err := c.SCard(ctx, cn.node.k.nodeSet(app.ID, id)).Result(); err != nil || n != 0 {
		t.Fatalf("node set holds %d entries (%v)", n, err)
	}
}

// scriptGauge is a Redis hook that counts the subscribe and unsubscribe
// scripts in flight, from the call (before it waits for a connection of
// the pool) to the answer, and keeps the most at once.
type scriptGauge struct {
	shas     map[string]bool
	cur, top atomic.Int64
}

func newScriptGauge(scripts ...*redis.Script) *scriptGauge {
	g := &scriptGauge{shas: make(map[string]bool)}
	for _, s := range scripts {
		g.shas[s.Hash()] = true
	}
	return g
}

func (g *scriptGauge) counts(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 2 {
		return false
	}
	s, _ := args[1].(string)
	switch cmd.Name() {
	case "evalsha":
		return g.shas[s]
	case "eval": // after NOSCRIPT: the source
		sum := sha1.Sum([]byte(s))
		return g.shas[hex.EncodeToString(sum[:])]
	}
	return false
}

func (g *scriptGauge) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *scriptGauge) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !g.counts(cmd) {
			return next(ctx, cmd)
		}
		n := g.cur.Add(1)
		defer g.cur.Add(-1)
		for m := g.top.Load(); n > m && !g.top.CompareAndSwap(m, n); m = g.top.Load() {
		}
		return next(ctx, cmd)
	}
}

func (g *scriptGauge) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A reconnect storm: hundreds of sockets subscribe at once, then as many
// leave while others subscribe. The node never has more subscribes and
// removals in flight together than half its pool, so the queries keep the
// other half; before, the subscribes took the whole pool (and queued
// behind it by the hundred).
func TestSocketWritesBounded(t *testing.T) {
	ro := redisOpts(testRedis)
	ro.PoolSize = 8
	o := testOptionsOn(ro, testPrefix(t))
	o.OpTimeout = 10 * time.Second // the bound makes them wait, not fail
	g := newScriptGauge(subscribeScript, unsubscribeScript)
	o.RedisHook = g
	st := startNode(t, o).State()
	limit := o.bulkLimit()
	ctx := context.Background()
	const socks = 300
	sub := func(i int) {
		if _, err := st.Subscribe(ctx, "app", "room-"+itoa(i%8), "1."+itoa(i), nil, 0); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for i := range socks {
		wg.Go(func() { sub(i) })
	}
	wg.Wait()
	subs := g.top.Load()
	for i := range socks {
		wg.Go(func() {
			if _, err := st.Unsubscribe(ctx, "app", "room-"+itoa(i%8), "1."+itoa(i)); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() { sub(socks + i) })
	}
	wg.Wait()
	// At most the limit: how close to it the peak comes depends on how fast
	// Redis answers (unbounded, 300 goroutines put 299 in flight).
	if top := g.top.Load(); subs > int64(limit) || top > int64(limit) {
		t.Fatalf("at most %d subscribes in flight, then %d subscribes and removals: want at most %d (half the pool of %d)", subs, top, limit, ro.PoolSize)
	}
	chs, err := st.Channels(ctx, "app", "")
	total := 0
	for _, c := range chs {
		total += c.SubscriptionCount
	}
	if err != nil || total != socks {
		t.Fatalf("%d subscriptions recorded (%v), want %d", total, err, socks)
	}
}
