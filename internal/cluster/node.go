package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-ws/herald/internal/hub"
)

// Node is this process's membership of the cluster: its id, its lease in
// Redis (renewed by a heartbeat), the reaper that cleans up after dead
// nodes, and the shared State recorded under its id.
type Node struct {
	o   Options
	rdb redis.UniversalClient
	// lease carries the lease (renewals, claims, releases) on a pool of
	// its own: bulk state work on rdb never delays a renewal.
	lease redis.UniversalClient
	// bulk bounds the subscribes and removals in flight on rdb
	// (Options.bulkLimit).
	bulk chan struct{}
	k    keys

	id         atomic.Pointer[string]
	registered atomic.Bool
	// broker is the id of the node's broker (NewEngine), written with the
	// lease: the barrier checks the node on that broker's own live
	// channels. "" (a Node without a Broker) leaves the node counted as
	// nodes of earlier builds are.
	broker string
	// stateUnchecked is set when the lease came back from an error: the
	// lease has a client of its own, and the state's client (rdb) may
	// still be backing off from failed dials. The reconcile loop clears
	// it once rdb answers; Healthy reports it meanwhile.
	stateUnchecked atomic.Bool

	appsMu sync.Mutex
	apps   map[string]struct{} // apps recorded in Pnode:<id>:apps for the current id

	healthMu  sync.Mutex
	healthErr error
	lastBeat  time.Time
	notBefore time.Time // the reaper waits until then (after start or an outage)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	rejoin chan struct{}
	ticked chan struct{} // a lease renewal for the reconcile loop
	once   sync.Once

	// recv is the hub (Attach): told of departures and rejoins.
	recv atomic.Pointer[receiver]

	// replicaAcked and replicaLagged count the waits of replicate.
	replicaAcked, replicaLagged atomic.Uint64

	// sweptAt is the last sweepBrokers (the reaper's goroutine only).
	sweptAt time.Time

	// replicas caches each primary's replica count for replicate (by
	// address), for replicaCountTTL.
	replicasMu sync.Mutex
	replicas   map[string]replicaCount
}

// replicaCount is a primary's number of replicas, as read at at.
type replicaCount struct {
	n  int
	at time.Time
}

// replicaCountTTL is how long replicate trusts a primary's replica count:
// a node's first socket in an app waits for a replica, and with many small
// apps most subscribes are a first one, which then cost a round trip for
// the count too.
const replicaCountTTL = 5 * time.Second

// receiver boxes a hub.Receiver for an atomic.Pointer.
type receiver struct{ hub.Receiver }

// Attach registers the hub: the reaper reports each dead node it cleaned
// up to it (HandleDeparture, from the reaper's goroutine), and a node that
// lost its lease has it record its sockets again (Reregister). Until then
// both are only logged.
func (n *Node) Attach(r hub.Receiver) { n.recv.Store(&receiver{r}) }

// ErrNotRegistered is returned by State writes while the node holds no
// lease (Redis unreachable since the start, or a lost lease being renewed).
var ErrNotRegistered = errors.New("cluster: node not registered in Redis")

// NewNode builds a node. It does not contact Redis: Start does, and keeps
// trying while Redis is unreachable.
func NewNode(o Options) (*Node, error) {
	if o.Redis == nil {
		return nil, errors.New("cluster: Options.Redis is required")
	}
	o = o.withDefaults()
	n := &Node{
		o:      o,
		rdb:    o.newClient(),
		lease:  o.newLeaseClient(),
		bulk:   make(chan struct{}, o.bulkLimit()),
		k:      keys{o.Prefix, o.sharded()},
		apps:   make(map[string]struct{}),
		rejoin: make(chan struct{}, 1),
		ticked: make(chan struct{}, 1),
	}
	id := o.NodeName + "-" + randomSuffix()
	n.id.Store(&id)
	n.healthErr = errors.New("cluster: not connected to Redis yet")
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// ID returns the node's current id.
func (n *Node) ID() string { return *n.id.Load() }

// State returns the shared State, recorded under this node's id.
func (n *Node) State() *State { return &State{n: n} }

// Client returns the node's Redis client (queries, tests).
func (n *Node) Client() redis.UniversalClient { return n.rdb }

// Start registers the node's lease and starts the heartbeat and the reaper.
// It returns after the first registration attempt; on failure the node
// keeps trying in the background and Healthy reports the error.
func (n *Node) Start() error {
	n.beat()
	n.checkState(n.ctx)
	n.wg.Add(2)
	go n.every(n.o.Heartbeat, n.beat)
	go n.every(n.o.ReapInterval, n.reapIfHealthy)
	n.wg.Add(1)
	go n.rejoinLoop()
	n.wg.Add(1)
	go n.reconcileLoop()
	return n.Healthy()
}

// Healthy returns nil when the lease was renewed within the last lease
// period, or why not (for /ready).
func (n *Node) Healthy() error {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	if n.healthErr != nil {
		return fmt.Errorf("redis: %w", n.healthErr)
	}
	if n.stateUnchecked.Load() {
		return errors.New("redis: lease renewed, state client not reconnected yet")
	}
	if time.Since(n.lastBeat) > n.o.Lease {
		return errors.New("redis: lease not renewed for a full lease period")
	}
	return nil
}

// Close stops the node's goroutines and ends its lease at once, so that the
// other nodes remove whatever it still had recorded (normally nothing: the
// hub unsubscribes every socket while draining).
func (n *Node) Close() error {
	n.stop()
	ctx, cancel := context.WithTimeout(context.Background(), n.o.OpTimeout)
	defer cancel()
	err := expireScript.Run(ctx, n.lease, []string{n.k.nodes()}, n.ID()).Err()
	if cerr := n.rdb.Close(); err == nil {
		err = cerr
	}
	if cerr := n.lease.Close(); err == nil {
		err = cerr
	}
	return err
}

// stop ends the goroutines without touching Redis (a kill, in tests).
func (n *Node) stop() {
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
	})
}

// acquireBulk takes a slot for a subscribe or a removal
// (Options.bulkLimit), or fails when ctx ends first; releaseBulk gives it
// back.
func (n *Node) acquireBulk(ctx context.Context) error {
	select {
	case n.bulk <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *Node) releaseBulk() { <-n.bulk }

// opCtx bounds a call by OpTimeout.
func (n *Node) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, n.o.OpTimeout)
}

// every runs f each period until the node stops (one of the node's
// goroutines: the caller has added it to n.wg).
func (n *Node) every(period time.Duration, f func()) {
	defer n.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// beat renews the lease, or registers a new one under a new id when the
// old one is gone.
func (n *Node) beat() {
	ctx, cancel := n.opCtx(n.ctx)
	defer cancel()
	mode := "renew"
	if !n.registered.Load() {
		mode = "register"
	}
	ks := []string{n.k.nodes(), n.k.claims(), n.k.brokers()}
	leaseMs := n.o.Lease.Milliseconds()
	ok, err := leaseScript.Run(ctx, n.lease, ks, n.ID(), leaseMs, mode, n.broker).Int()
	if err == nil && ok == 0 {
		// Expired or claimed: this id is being reaped. Come back as a new
		// node and have the hub record its sockets again.
		n.registered.Store(false)
		old := n.ID()
		id := n.o.NodeName + "-" + randomSuffix()
		n.appsMu.Lock()
		n.id.Store(&id)
		n.apps = make(map[string]struct{})
		n.appsMu.Unlock()
		n.o.Logger.Warn("lease lost, rejoining under a new id", "old", old, "node", id)
		err = leaseScript.Run(ctx, n.lease, ks, id, leaseMs, "register", n.broker).Err()
		if err == nil {
			n.replicate(ctx, n.lease, n.k.nodes())
			n.registered.Store(true)
			select {
			case n.rejoin <- struct{}{}:
			default:
			}
		}
	} else if err == nil && mode == "register" {
		n.replicate(ctx, n.lease, n.k.nodes())
		n.registered.Store(true)
	}
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	if err != nil {
		if n.healthErr == nil {
			n.o.Logger.Error("Redis unreachable, serving local clients only", "node", n.ID(), "err", err)
		}
		n.healthErr = err
		return
	}
	select {
	case n.ticked <- struct{}{}:
	default: // a reconciliation is due already
	}
	now := time.Now()
	if n.healthErr != nil {
		n.stateUnchecked.Store(true)
		if !n.lastBeat.IsZero() {
			n.o.Logger.Info("Redis reachable again", "node", n.ID())
		}
		// Give the other nodes a lease period to renew theirs before
		// reaping anyone: they were cut off too.
		n.notBefore = now.Add(n.o.Lease)
	}
	n.healthErr = nil
	n.lastBeat = now
}

func (n *Node) rejoinLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.rejoin:
			// State.Subscribe is idempotent and re-owns sockets that are
			// still recorded.
			if r := n.recv.Load(); r != nil {
				r.Reregister(n.ctx)
			}
		}
	}
}

// reconcileLoop repairs, after each lease renewal, what Redis lost of the
// node's own records (its apps index) and has the hub compare its sockets
// with what Redis holds under the node's id (the attached hub.Receiver's Reconcile). It runs
// off the heartbeat, so a long pass never delays a renewal.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.ticked:
			n.checkState(n.ctx)
			n.restoreApps(n.ctx)
			if r := n.recv.Load(); r != nil {
				r.Reconcile(n.ctx)
			}
		}
	}
}

// checkState clears stateUnchecked once the state's client answers (off
// the heartbeat: in a mass disconnect it waits behind the removals).
func (n *Node) checkState(ctx context.Context) {
	if !n.stateUnchecked.Load() {
		return
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	if n.rdb.Ping(ctx).Err() == nil {
		n.stateUnchecked.Store(false)
	}
}

// restoreApps records again the apps this node has entries in (a Redis
// that lost its data while the lease survived, or an eviction), so that a
// reaper still finds the entries if the node dies.
func (n *Node) restoreApps(ctx context.Context) {
	n.appsMu.Lock()
	node := n.ID()
	ids := make([]any, 0, len(n.apps))
	for id := range n.apps {
		ids = append(ids, id)
	}
	n.appsMu.Unlock()
	if len(ids) == 0 || !n.registered.Load() {
		return
	}
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	if err := n.rdb.SAdd(ctx, n.k.nodeApps(node), ids...).Err(); err != nil && ctx.Err() == nil {
		n.o.Logger.Warn("recording the node's apps again failed", "node", node, "err", err)
	}
}

// registerApp records that this node has entries in app, before the entry
// itself, so that a reaper always finds them.
func (n *Node) registerApp(ctx context.Context, node, appID string) error {
	n.appsMu.Lock()
	_, ok := n.apps[appID]
	n.appsMu.Unlock()
	if ok {
		return nil
	}
	if err := n.rdb.SAdd(ctx, n.k.nodeApps(node), appID).Err(); err != nil {
		return err
	}
	n.appsMu.Lock()
	if n.ID() == node {
		n.apps[appID] = struct{}{}
	}
	n.appsMu.Unlock()
	return nil
}

// reapIfHealthy reaps dead nodes unless this node is itself cut off from
// Redis or has just come back (the others, cut off too, may not have
// renewed their leases yet).
func (n *Node) reapIfHealthy() {
	n.healthMu.Lock()
	wait := n.healthErr != nil || time.Now().Before(n.notBefore)
	n.healthMu.Unlock()
	if !wait {
		n.reapOnce(n.ctx)
	}
}

// reapOnce claims and cleans up dead nodes, a few per pass.
func (n *Node) reapOnce(ctx context.Context) {
	for range 8 {
		cctx, cancel := n.opCtx(ctx)
		dead, err := claimScript.Run(cctx, n.lease, []string{n.k.nodes(), n.k.claims()}, n.ID(), 3*n.o.Lease.Milliseconds()).Text()
		cancel()
		if errors.Is(err, redis.Nil) {
			n.sweepBrokers(ctx)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				n.o.Logger.Warn("reaper claim failed", "err", err)
			}
			return
		}
		rep, err := n.reap(ctx, dead)
		if r := n.recv.Load(); r != nil && (len(rep.Channels) > 0 || len(rep.Offline) > 0) {
			r.HandleDeparture(rep)
		}
		if err != nil {
			// The claim runs out and a reaper (maybe this one) resumes.
			n.o.Logger.Warn("reaping a dead node failed", "dead", dead, "err", err)
			return
		}
		n.o.Logger.Info("dead node cleaned up", "dead", dead, "channels", len(rep.Channels))
	}
}

// reap removes what node dead recorded. Each removal is an unsubscribe
// script that checks the socket still belongs to dead, so a resumed or
// concurrent reap never reports a removal twice.
func (n *Node) reap(ctx context.Context, dead string) (hub.Departure, error) {
	rep := hub.Departure{Node: dead}
	idx := make(map[[2]string]int)
	cctx, cancel := n.opCtx(ctx)
	apps, err := n.rdb.SMembers(cctx, n.k.nodeApps(dead)).Result()
	cancel()
	if err != nil {
		return rep, err
	}
	loaded := false
	for _, app := range apps {
		set := n.k.nodeSet(app, dead)
		for {
			cctx, cancel := n.opCtx(ctx)
			entries, err := n.rdb.SRandMemberN(cctx, set, 256).Result()
			if err == nil && len(entries) > 0 && !loaded {
				err = unsubscribeScript.Load(cctx, n.rdb).Err()
				loaded = true
			}
			if err != nil || len(entries) == 0 {
				cancel()
				if err != nil {
					return rep, err
				}
				break
			}
			pipe := n.rdb.Pipeline()
			cmds := make([]*redis.Cmd, len(entries))
			for i, e := range entries {
				ch, sock, _ := strings.Cut(e, "\n")
				cmds[i] = unsubscribeScript.EvalSha(cctx, pipe, n.k.channel(app, ch, dead), sock, ch, dead)
			}
			_, err = pipe.Exec(cctx)
			cancel()
			for i, c := range cmds {
				v, cerr := c.Slice()
				if cerr != nil {
					continue
				}
				r := parseUnsubscribe(v)
				if !r.Removed {
					continue
				}
				ch, _, _ := strings.Cut(entries[i], "\n")
				if user, ok := strings.CutPrefix(ch, userMark); ok {
					if r.Count == 0 {
						rep.Offline = append(rep.Offline, hub.DepartedUser{AppID: app, UserID: user})
					}
					continue
				}
				key := [2]string{app, ch}
				j, ok := idx[key]
				if !ok {
					j = len(rep.Channels)
					idx[key] = j
					rep.Channels = append(rep.Channels, hub.DepartedChannel{AppID: app, Channel: ch})
				}
				rc := &rep.Channels[j]
				rc.Removed++
				rc.Count = r.Count
				rc.Vacated = r.Count == 0
				if r.LastForUser {
					rc.Gone = append(rc.Gone, r.Member)
				}
			}
			if err != nil {
				return rep, err
			}
		}
	}
	cctx, cancel = n.opCtx(ctx)
	defer cancel()
	if err := n.rdb.Del(cctx, n.k.nodeApps(dead)).Err(); err != nil {
		return rep, err
	}
	return rep, releaseScript.Run(cctx, n.lease, []string{n.k.nodes(), n.k.claims(), n.k.brokers()}, dead, n.ID()).Err()
}

// sweepBrokers drops the broker ids left by nodes that nodes of an earlier
// build reaped (they don't know the brokers hash), once nothing is left to
// reap, at most once a lease period: such leftovers only come with a
// rolling upgrade, and each node sweeps, so the sweep's cost on the
// leases' shard (a lookup per entry) stays that of a renewal per node and
// lease period.
func (n *Node) sweepBrokers(ctx context.Context) {
	now := time.Now()
	if now.Sub(n.sweptAt) < n.o.Lease {
		return
	}
	n.sweptAt = now
	ctx, cancel := n.opCtx(ctx)
	defer cancel()
	err := sweepBrokersScript.Run(ctx, n.lease, []string{n.k.nodes(), n.k.brokers()}).Err()
	if err != nil && ctx.Err() == nil {
		n.o.Logger.Warn("dropping the broker ids of departed nodes failed", "err", err)
	}
}

// replicate has a replica of the primary holding key acknowledge this
// node's writes there so far (WAIT), when that primary has replicas: the
// failover barrier relies on the write just made (the node's lease when
// it registers, its first socket in an app), and a primary killed before
// replicating it would leave the promoted replica without it, so that the
// barrier would not wait for this node. WAIT counts the writes of its own
// connection only, so a publish on the key's slot, which Redis replicates
// whether or not anyone listens, goes first on the same connection: the
// replication stream is ordered, so a replica that has it has the write
// too. A replica that does not answer within Options.ReplicaWait is
// logged and counted; the write stands (without a replica in time there
// is nothing to wait for).
func (n *Node) replicate(ctx context.Context, c redis.UniversalClient, key string) {
	if n.o.ReplicaWait <= 0 {
		return
	}
	var m *redis.Client
	switch c := c.(type) {
	case *redis.ClusterClient:
		var err error
		if m, err = c.MasterForKey(ctx, key); err != nil {
			n.o.Logger.Warn("finding the primary to wait for its replica failed", "key", key, "err", err)
			return
		}
	case *redis.Client: // one Redis, or Sentinel's primary
		m = c
	default:
		return
	}
	replicas, err := n.replicaCount(ctx, m)
	if err != nil {
		n.o.Logger.Warn("reading the primary's replicas failed", "key", key, "err", err)
		return
	}
	if replicas == 0 {
		return
	}
	pipe := m.Pipeline()
	if n.k.sharded {
		pipe.SPublish(ctx, n.k.p+"{"+n.k.pubTag(key)+"}:sync", "")
	} else {
		pipe.Publish(ctx, n.k.p+"sync", "")
	}
	wait := pipe.Do(ctx, "WAIT", 1, n.o.ReplicaWait.Milliseconds())
	_, err = pipe.Exec(ctx)
	if acked, _ := wait.Int64(); err == nil && acked >= 1 {
		n.replicaAcked.Add(1)
		return
	}
	n.replicaLagged.Add(1)
	n.o.Logger.Warn("no replica acknowledged a write the failover barrier relies on in time", "node", n.ID(), "key", key, "wait", n.o.ReplicaWait, "err", err)
}

// replicaCount returns the number of replicas of primary m, cached for
// replicaCountTTL.
func (n *Node) replicaCount(ctx context.Context, m *redis.Client) (int, error) {
	addr := m.Options().Addr
	now := time.Now()
	n.replicasMu.Lock()
	c, ok := n.replicas[addr]
	n.replicasMu.Unlock()
	if ok && now.Sub(c.at) < replicaCountTTL {
		return c.n, nil
	}
	info, err := m.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	c = replicaCount{n: connectedReplicas(info), at: now}
	n.replicasMu.Lock()
	if n.replicas == nil {
		n.replicas = make(map[string]replicaCount)
	}
	n.replicas[addr] = c
	n.replicasMu.Unlock()
	return c.n, nil
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(info string) int {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			c, _ := strconv.Atoi(v)
			return c
		}
	}
	return 0
}

// ReplicaWaits returns how many writes the failover barrier relies on a
// replica acknowledged in time, and how many it did not (replicate).
func (n *Node) ReplicaWaits() (acked, lagged uint64) {
	return n.replicaAcked.Load(), n.replicaLagged.Load()
}
