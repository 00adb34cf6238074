package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/hub"
	"github.com/redis/go-redis/v9"
)

// BrokerOptions configure a Broker.
type BrokerOptions struct {
	Options
	// NodeID identifies this node's messages (the broker drops its own);
	// default: NodeName and a random suffix. It need not equal the Node's
	// id, which changes when the lease is lost.
	NodeID string
	// PublishShards is the number of publishing queues (default 4). Each
	// (app, channel) or (app, user) always goes through the same queue, so
	// its messages keep their order; each queue writes its backlog as one
	// pipeline.
	PublishShards int
}

// Broker is the hub.Broker over Redis pub/sub. A node subscribes only to
// the Redis channels of the (app, channel) and (app, user) pairs it has
// local subscribers for (Interest, UserInterest).
type Broker struct {
	o       BrokerOptions
	k       keys
	rdb     redis.UniversalClient
	seed    maphash.Seed
	shards  []chan *pubReq
	done    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once

	mu       sync.RWMutex
	interest map[string]*interest // Redis channel → local interest
	// anchor is the subscriber connection of the node's own channel; alone
	// or with Sentinel it carries every channel. In a Redis Cluster each
	// hash tag (app) with local interest has a connection of its own in
	// subs, to the shard that owns the tag's slot (sharded pub/sub).
	anchor *subConn
	subs   map[string]*subConn

	// recv is the hub (Attach); messages that arrive before are dropped
	// (there is no interest before the hub exists).
	recv atomic.Pointer[receiver]

	// suspect is set when the anchor lost its connection (one Redis or
	// Sentinel): until liveCheck finds every live node subscribed again,
	// each publishing batch is checked first.
	suspect atomic.Bool

	// tags is the barrier's record per hash tag (app) in a Redis Cluster
	// (shardCheck).
	tagsMu sync.Mutex
	tags   map[string]*tagState

	published, received, dropped atomic.Uint64
}

type interest struct {
	n     int           // refcount; subscribed while > 0
	ready chan struct{} // closed when Redis confirmed the SUBSCRIBE
}

// subConn is one subscriber connection and the goroutine reading it.
type subConn struct {
	ps  *redis.PubSub
	tag string // the hash tag of its channels (Redis Cluster), or ""
	n   int    // channels subscribed on it for interest (under Broker.mu)
	// up is false from an error until the connection answers again; a
	// tag's connection starts up (nothing failed yet), the anchor down
	// (Redis not reached yet).
	up      atomic.Bool
	downErr atomic.Pointer[error]
	closed  atomic.Bool // dropped by the broker: its errors mean nothing
}

// tagState is what a broker knows of one hash tag's shard in a Redis
// Cluster: the primary it last published to or was subscribed on, and
// whether the barrier must pass before the next publish.
type tagState struct {
	master  string
	suspect bool
	gen     uint64 // counts distrust calls: a check passes only if none came meanwhile
}

type pubReq struct {
	appID   string
	channel string
	msg     []byte
	err     chan error
}

var _ hub.Broker = (*Broker)(nil)

// ErrPubSubDown is returned by Publish while a subscriber connection of
// the broker is down, or after a loss until the barrier found every node
// subscribed again (liveCheck, shardCheck): the other nodes may not be
// subscribed yet either, so the message could be lost without anyone
// knowing.
var ErrPubSubDown = errors.New("cluster: Redis pub/sub down or resubscribing after a failover")

// ErrBrokerClosed is returned by calls after Close.
var ErrBrokerClosed = errors.New("cluster: broker closed")

// pingEvery is how often an idle subscriber connection is checked.
const pingEvery = time.Second

// A lost subscriber connection is redialed after redialMin, doubling up
// to redialMax, each wait drawn between its half and itself (so that the
// nodes don't all redial the promoted primary at once). The cap bounds
// how long a node stays away after the new primary answers, which the
// barrier makes every other node wait for: with 1 s it was most of a
// Redis Cluster failover beyond the election. A redial of a dead primary
// is refused at once, so four a second per connection cost little; a long
// outage is slowed further by go-redis's own dial breaker (one probe a
// second once a pool's dials failed PoolSize times in a row).
const (
	redialMin = 50 * time.Millisecond
	redialMax = 250 * time.Millisecond
)

// NewBroker connects the pub/sub side and starts the receiving and
// publishing goroutines. It does not fail when Redis is unreachable: the
// subscriber keeps reconnecting and Healthy reports the outage.
func NewBroker(o BrokerOptions) (*Broker, error) {
	if o.Redis == nil {
		return nil, errors.New("cluster: Options.Redis is required")
	}
	o.Options = o.Options.withDefaults()
	if o.NodeID == "" {
		o.NodeID = o.NodeName + "-" + randomSuffix()
	}
	if o.PublishShards <= 0 {
		o.PublishShards = 4
	}
	b := &Broker{
		o:        o,
		k:        keys{o.Prefix, o.sharded()},
		rdb:      o.newClient(),
		seed:     maphash.MakeSeed(),
		done:     make(chan struct{}),
		interest: make(map[string]*interest),
		subs:     make(map[string]*subConn),
		tags:     make(map[string]*tagState),
	}
	// The node's own channel keeps the connection in subscribed mode, and
	// its confirmation after a reconnect tells the receiver Redis is back.
	// With one Redis or Sentinel the anchor carries the live channel too,
	// whose subscribers the other nodes check (liveCheck): its own, and
	// the shared one that nodes of earlier builds count.
	chans := []string{b.k.pubNode(o.NodeID)}
	if !b.k.sharded {
		chans = append(chans, b.k.pubLive(), b.k.pubLiveNode(o.NodeID))
	}
	b.anchor = b.newSub(chans, false)
	b.shards = make([]chan *pubReq, o.PublishShards)
	for i := range b.shards {
		b.shards[i] = make(chan *pubReq, 1024)
		b.wg.Add(1)
		go b.publishLoop(b.shards[i])
	}
	return b, nil
}

// newSub opens a subscriber connection for the tag of chans (one tag),
// subscribes them on it and starts its reader. up says whether it counts
// as healthy before Redis answered.
func (b *Broker) newSub(chans []string, up bool) *subConn {
	sc := &subConn{tag: b.k.pubTag(chans[0])}
	sc.up.Store(up)
	down := error(errors.New("not connected to Redis yet"))
	sc.downErr.Store(&down)
	ctx := context.Background()
	if b.k.sharded {
		// go-redis's cluster PubSub dials the master of its first
		// channel's slot, at every reconnection too.
		sc.ps = b.rdb.SSubscribe(ctx)
		_ = sc.ps.SSubscribe(ctx, chans...)
	} else {
		sc.ps = b.rdb.Subscribe(ctx)
		_ = sc.ps.Subscribe(ctx, chans...)
	}
	b.wg.Add(1)
	go b.receiveLoop(sc)
	return sc
}

// subFor returns the connection ch is subscribed on, opening one for its
// tag in a Redis Cluster. The caller holds b.mu.
func (b *Broker) subFor(ch string, open bool) (sc *subConn, opened bool) {
	if !b.k.sharded {
		return b.anchor, false
	}
	tag := b.k.pubTag(ch)
	if sc = b.subs[tag]; sc != nil || !open {
		return sc, false
	}
	// The tag's live channels first (they name the connection's tag): a
	// node seen there is subscribed to all its channels of the tag
	// (shardCheck).
	sc = b.newSub([]string{b.k.pubLiveApp(tag), b.k.pubLiveAppNode(tag, b.o.NodeID), ch}, true)
	b.subs[tag] = sc
	return sc, true
}

// Attach implements hub.Broker: the broker delivers every message another
// node published on a channel or user this node has interest in to r, one
// at a time, in the order Redis delivered them.
func (b *Broker) Attach(r hub.Receiver) { b.recv.Store(&receiver{r}) }

// NodeID returns the id this broker stamps on its messages.
func (b *Broker) NodeID() string { return b.o.NodeID }

// Publish implements hub.Broker. It returns once Redis accepted the
// message, or with an error (Redis unreachable, ctx done, or OpTimeout
// passed when ctx has no deadline); when ctx ends first the message may
// still go out, in order.
func (b *Broker) Publish(ctx context.Context, m hub.BrokerMessage) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	var ch, key string
	switch {
	case m.TerminateUser != "":
		ch, key = b.k.pubUser(m.AppID, m.TerminateUser), m.AppID+"\x00u"+m.TerminateUser
	case m.ToUser != "":
		ch, key = b.k.pubUser(m.AppID, m.ToUser), m.AppID+"\x00u"+m.ToUser
	case m.Channel != "":
		ch, key = b.k.pubChannel(m.AppID, m.Channel), m.AppID+"\x00c"+m.Channel
	default:
		return errors.New("cluster: broker message without channel or user")
	}
	r := &pubReq{appID: m.AppID, channel: ch, msg: EncodeMessage(nil, b.o.NodeID, m), err: make(chan error, 1)}
	q := b.shards[maphash.String(b.seed, key)%uint64(len(b.shards))]
	select {
	case <-b.done:
		return ErrBrokerClosed
	default:
	}
	if err := b.fence(b.k.pubTag(ch)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case q <- r:
	case <-b.done:
		return ErrBrokerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-b.done:
		// Close answers what its queues hold; this catches a message queued
		// after its queue's last drain.
		select {
		case err := <-r.err:
			return err
		case <-time.After(b.o.OpTimeout):
			return ErrBrokerClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishLoop writes one queue's backlog as a pipeline of PUBLISH, one
// pipeline at a time, which keeps the queue's order.
func (b *Broker) publishLoop(q chan *pubReq) {
	defer b.wg.Done()
	batch := make([]*pubReq, 0, 128)
	cmds := make([]*redis.IntCmd, 0, cap(batch))
	for {
		select {
		case <-b.done:
			for {
				select {
				case r := <-q:
					r.err <- ErrBrokerClosed
				default:
					return
				}
			}
		case r := <-q:
			batch = append(batch[:0], r)
		fill:
			for len(batch) < cap(batch) {
				select {
				case r := <-q:
					batch = append(batch, r)
				default:
					break fill
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), b.o.OpTimeout)
			cmds = b.publishBatch(ctx, batch, cmds)
			cancel()
			clear(batch)
			clear(cmds)
		}
	}
}

// publishBatch passes the barrier (liveCheck, shardCheck), then writes
// what it let through as one pipeline and answers every request. In a
// Redis Cluster, go-redis splits the pipeline by shard (SPUBLISH routes
// by its channel's slot), and each message gets its own command's answer.
// cmds is the caller's buffer, returned for the next batch.
func (b *Broker) publishBatch(ctx context.Context, batch []*pubReq, cmds []*redis.IntCmd) []*redis.IntCmd {
	send := batch
	if b.k.sharded {
		send = b.shardChecks(ctx, batch)
	} else if err := b.liveCheck(ctx); err != nil {
		for _, r := range batch {
			r.err <- err
		}
		return cmds
	}
	cmds = cmds[:0]
	switch len(send) {
	case 0:
		return cmds
	case 1:
		cmds = append(cmds, b.publish(ctx, b.rdb, send[0]))
	default:
		pipe := b.rdb.Pipeline()
		for _, r := range send {
			cmds = append(cmds, b.publish(ctx, pipe, r))
		}
		_, _ = pipe.Exec(ctx) // each command holds its error
	}
	for i, r := range send {
		err := cmds[i].Err()
		if err != nil {
			// The shard may be failing over: check it before the next
			// publish there.
			b.distrust(b.k.pubTag(r.channel))
			err = fmt.Errorf("publish: %w", err)
		} else {
			b.published.Add(1)
		}
		r.err <- err
	}
	return cmds
}

// shardChecks runs shardCheck once per hash tag of batch, answers the
// requests it refuses and returns the others.
func (b *Broker) shardChecks(ctx context.Context, batch []*pubReq) []*pubReq {
	var (
		checked map[string]error
		send    []*pubReq
	)
	for i, r := range batch {
		tag := b.k.pubTag(r.channel)
		err, ok := checked[tag]
		if !ok {
			err = b.shardCheck(ctx, tag, r.appID)
			if checked == nil {
				checked = make(map[string]error, 1)
			}
			checked[tag] = err
		}
		switch {
		case err != nil && send == nil:
			send = append(make([]*pubReq, 0, len(batch)), batch[:i]...)
			fallthrough
		case err != nil:
			r.err <- err
		case send != nil:
			send = append(send, r)
		}
	}
	if send == nil {
		return batch
	}
	return send
}

// aliveScript lists the live nodes: leases not expired (Redis clock) and
// not claimed by a reaper, each with its broker's id ("" for a node of an
// earlier build). KEYS: nodes, claims, brokers. Reply: id, broker, id,
// broker... Sent with EVAL (it is short): a promoted replica may not have
// the script cached.
const aliveScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local r = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    r[#r + 1] = id
    r[#r + 1] = redis.call('HGET', KEYS[3], id) or ''
  end
end
return r`

// liveNode is a live node and its broker's id ("": a node of an earlier
// build, which subscribes only the shared live channel).
type liveNode struct{ id, broker string }

// aliveNodes runs aliveScript.
func (b *Broker) aliveNodes(ctx context.Context) ([]liveNode, error) {
	v, err := b.rdb.Eval(ctx, aliveScript, []string{b.k.nodes(), b.k.claims(), b.k.brokers()}).StringSlice()
	if err != nil {
		return nil, err
	}
	nodes := make([]liveNode, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		nodes = append(nodes, liveNode{v[i], v[i+1]})
	}
	return nodes, nil
}

// liveChannels returns the channels whose subscribers the barrier counts:
// shared first, then the own live channel of each broker among all.
func liveChannels(shared string, all []liveNode, own func(broker string) string) []string {
	chans := make([]string, 1, len(all)+1)
	chans[0] = shared
	for _, n := range all {
		if n.broker != "" {
			chans = append(chans, own(n.broker))
		}
	}
	return chans
}

// unsubscribed returns the ids of the nodes of want that are not
// subscribed, given the subscriber counts of liveChannels(shared, all,
// own). A node that names its broker is checked on that broker's own live
// channel, so that no other subscriber stands in for it: a node still
// subscribing its channels (not yet recorded), a broker whose lease is
// not registered yet, a tool. Nodes of earlier builds subscribe only
// the shared channel, as every node does: they are counted there, beyond
// the nodes of this build seen on their own channels, as those builds
// count (a rolling upgrade). want is a subset of all.
func unsubscribed(want, all []liveNode, subs map[string]int64, shared string, own func(broker string) string) []string {
	var missing []string
	legacy := 0
	for _, n := range want {
		switch {
		case n.broker == "":
			legacy++
		case subs[own(n.broker)] < 1:
			missing = append(missing, n.id)
		}
	}
	if legacy == 0 {
		return missing
	}
	have := subs[shared]
	seen := map[string]bool{}
	for _, n := range all {
		if n.broker != "" && !seen[n.broker] && subs[own(n.broker)] > 0 {
			seen[n.broker] = true
			have--
		}
	}
	if have < int64(legacy) {
		missing = append(missing, fmt.Sprintf("%d of %d nodes of an earlier build", int64(legacy)-max(have, 0), legacy))
	}
	return missing
}

// liveCheck is the barrier after a loss of the anchor (one Redis or
// Sentinel), before a batch is published: it passes once every live node
// is subscribed again, each seen on its broker's own live channel. Every
// node's anchor subscribes its live channels in the same SUBSCRIBE as all
// its other channels (go-redis subscribes a connection's channels again
// in one command, which Redis applies at once), so a node seen there is
// subscribed to everything it has interest in. Until then a publish could
// reach Redis before a node that lost its connection too (a failover cuts
// every node's) has subscribed again: it is refused with ErrPubSubDown
// instead, and nothing is published. Once passed, batches go out
// unchecked until the next loss, so a node that dies meanwhile costs no
// refusals (its lease stays counted until it expires).
func (b *Broker) liveCheck(ctx context.Context) error {
	if b.k.sharded || !b.suspect.Load() {
		return nil
	}
	nodes, err := b.aliveNodes(ctx)
	if err != nil {
		return fmt.Errorf("%w: listing the live nodes: %v", ErrPubSubDown, err)
	}
	shared := b.k.pubLive()
	subs, err := b.rdb.PubSubNumSub(ctx, liveChannels(shared, nodes, b.k.pubLiveNode)...).Result()
	if err != nil {
		return fmt.Errorf("%w: counting the subscribed nodes: %v", ErrPubSubDown, err)
	}
	if missing := unsubscribed(nodes, nodes, subs, shared, b.k.pubLiveNode); len(missing) > 0 {
		return fmt.Errorf("%w: live nodes not subscribed again: %s", ErrPubSubDown, strings.Join(missing, ", "))
	}
	if b.suspect.CompareAndSwap(true, false) {
		b.o.Logger.Info("every live node subscribed again, publishing", "node", b.o.NodeID, "nodes", len(nodes))
	}
	return nil
}

// shardCheck is the barrier of one hash tag (app) in a Redis Cluster,
// where pub/sub is sharded: a shard's failover cuts the connections to
// that shard only, and a node subscribes an app's channels on a
// connection of their own, to the app's shard, only while it has local
// interest in the app. Each such connection subscribes the app's live
// channels (the broker's own and the shared one) in the same SSUBSCRIBE
// as the app's other channels (go-redis subscribes a connection's
// channels again in one command), so a node seen on them on the shard
// (PUBSUB SHARDNUMSUB, on the primary) is subscribed to everything it has
// interest in there. The check passes once every live node that has
// sockets recorded in the app (its P{A}:node:N set, which the hub records
// after the interest) is seen there (unsubscribed).
//
// It runs only when the tag is suspect: its connection or a publish to it
// failed, or the primary of its slot changed since this node last
// published there (a node without interest in the app notices a failover
// so), and for the node's first publish there: a node that starts, or
// first publishes to the app, during a failover has no primary to
// compare with, and the other nodes may not be subscribed again.
func (b *Broker) shardCheck(ctx context.Context, tag, appID string) error {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	shared := b.k.pubLiveApp(tag)
	master, err := cc.MasterForKey(ctx, shared)
	if err != nil {
		return fmt.Errorf("%w: the primary of app %s: %v", ErrPubSubDown, appID, err)
	}
	addr := master.Options().Addr
	b.tagsMu.Lock()
	st := b.tags[tag]
	if st == nil {
		st = &tagState{master: addr, suspect: true}
		b.tags[tag] = st
	}
	pass := !st.suspect && st.master == addr
	gen := st.gen
	b.tagsMu.Unlock()
	if pass {
		return nil
	}
	nodes, err := b.aliveNodes(ctx)
	if err != nil {
		return fmt.Errorf("%w: listing the live nodes: %v", ErrPubSubDown, err)
	}
	own := func(broker string) string { return b.k.pubLiveAppNode(tag, broker) }
	pipe := master.Pipeline()
	recorded := make([]*redis.IntCmd, len(nodes))
	for i, n := range nodes {
		recorded[i] = pipe.Exists(ctx, b.k.nodeSet(appID, n.id)) // the app's slot
	}
	subs := pipe.PubSubShardNumSub(ctx, liveChannels(shared, nodes, own)...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: counting the subscribed nodes of app %s: %v", ErrPubSubDown, appID, err)
	}
	var want []liveNode
	for i, n := range nodes {
		if recorded[i].Val() > 0 {
			want = append(want, n)
		}
	}
	if missing := unsubscribed(want, nodes, subs.Val(), shared, own); len(missing) > 0 {
		return fmt.Errorf("%w: nodes with sockets in app %s not subscribed again: %s", ErrPubSubDown, appID, strings.Join(missing, ", "))
	}
	b.tagsMu.Lock()
	if st.gen == gen {
		// (Else it failed again meanwhile: the next publish checks again.)
		st.master, st.suspect = addr, false
	}
	b.tagsMu.Unlock()
	b.o.Logger.Info("every node with sockets in the app subscribed on its shard, publishing", "node", b.o.NodeID, "app_id", appID, "primary", addr, "nodes", len(want))
	return nil
}

// barrier is Publish's fence and barrier for a message published on ch
// outside the queues: a history event, which its append script publishes.
func (b *Broker) barrier(ctx context.Context, ch, appID string) error {
	tag := b.k.pubTag(ch)
	if err := b.fence(tag); err != nil {
		return err
	}
	if b.k.sharded {
		return b.shardCheck(ctx, tag, appID)
	}
	return b.liveCheck(ctx)
}

// distrust has the next publish of tag checked by shardCheck (a Redis
// Cluster only).
func (b *Broker) distrust(tag string) {
	if !b.k.sharded {
		return
	}
	b.tagsMu.Lock()
	defer b.tagsMu.Unlock()
	st := b.tags[tag]
	if st == nil {
		st = &tagState{}
		b.tags[tag] = st
	}
	st.suspect = true
	st.gen++
}

// publish is PUBLISH, or SPUBLISH in a Redis Cluster: a sharded message
// goes to the shard of its channel's slot only, where a PUBLISH would be
// passed on to every node of the cluster.
func (b *Broker) publish(ctx context.Context, c redis.Cmdable, r *pubReq) *redis.IntCmd {
	if b.k.sharded {
		return c.SPublish(ctx, r.channel, r.msg)
	}
	return c.Publish(ctx, r.channel, r.msg)
}

// Interest records that this node has (on) or no longer has (off) a local
// subscriber of channel. Calls are counted: the Redis channel is
// subscribed while ons outnumber offs, so the hub may call it on every
// local subscribe and unsubscribe, or only on 0→1 and 1→0. An on that
// subscribes waits until Redis confirmed the subscription (or ctx ends), so
// that an event published after the client's subscription_succeeded
// reaches it. The interest is kept even when the call fails: it is
// restored when Redis comes back. A ctx without a deadline is given one of
// OpTimeout.
func (b *Broker) Interest(ctx context.Context, appID, channel string, on bool) error {
	return b.setInterest(ctx, b.k.pubChannel(appID, channel), on)
}

// UserInterest is Interest for the messages to a user (server-to-user
// events and terminations): on when a socket signs in as the user, off
// when it leaves.
func (b *Broker) UserInterest(ctx context.Context, appID, userID string, on bool) error {
	return b.setInterest(ctx, b.k.pubUser(appID, userID), on)
}

// bound gives a ctx without a deadline one of OpTimeout.
func (b *Broker) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.o.OpTimeout)
}

func (b *Broker) setInterest(ctx context.Context, ch string, on bool) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	select {
	case <-b.done:
		return ErrBrokerClosed
	default:
	}
	b.mu.Lock()
	in := b.interest[ch]
	if in == nil {
		in = &interest{}
		b.interest[ch] = in
	}
	prev := in.n
	if on {
		in.n++
	} else {
		in.n--
	}
	var err error
	switch {
	case prev <= 0 && in.n > 0:
		in.ready = make(chan struct{})
		sc, opened := b.subFor(ch, true)
		sc.n++
		switch {
		case opened: // newSub subscribed ch
		case b.k.sharded:
			err = sc.ps.SSubscribe(ctx, ch)
		default:
			err = sc.ps.Subscribe(ctx, ch)
		}
	case prev > 0 && in.n <= 0:
		if in.ready != nil {
			// Release anyone still waiting: the interest is gone.
			select {
			case <-in.ready:
			default:
				close(in.ready)
			}
			in.ready = nil
		}
		sc, _ := b.subFor(ch, false)
		if sc == nil {
			break
		}
		sc.n--
		switch {
		case b.k.sharded && sc.n <= 0:
			// The tag's last channel: its connection goes.
			delete(b.subs, sc.tag)
			sc.closed.Store(true)
			err = sc.ps.Close()
		case b.k.sharded:
			err = sc.ps.SUnsubscribe(ctx, ch)
		default:
			err = sc.ps.Unsubscribe(ctx, ch)
		}
	}
	if in.n == 0 {
		// An off that overtook its on leaves a negative count until the on
		// arrives; zero is no interest at all.
		delete(b.interest, ch)
	}
	var ready chan struct{}
	if on && in.n > 0 {
		ready = in.ready
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("interest %s: %w", ch, err)
	}
	if ready == nil {
		return nil
	}
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interest %s: %w", ch, ctx.Err())
	case <-b.done:
		return ErrBrokerClosed
	}
}

// Interests returns the number of Redis channels subscribed for local
// interest.
func (b *Broker) Interests() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, in := range b.interest {
		if in.n > 0 {
			n++
		}
	}
	return n
}

// Healthy returns nil while every subscriber connection is up, or why
// not (for /ready).
func (b *Broker) Healthy() error {
	if err := b.anchor.healthy(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, sc := range b.subs {
		if err := sc.healthy(); err != nil {
			return fmt.Errorf("%w (hash tag %q)", err, sc.tag)
		}
	}
	return nil
}

// fence returns ErrPubSubDown while the subscriber connection that
// carries tag (one Redis or Sentinel: the anchor; a Redis Cluster: the
// tag's, if the node has one) is down. After a loss, the barrier
// (liveCheck, shardCheck) has the last word.
func (b *Broker) fence(tag string) error {
	sc := b.anchor
	if b.k.sharded {
		b.mu.RLock()
		sc = b.subs[tag]
		b.mu.RUnlock()
	}
	if sc != nil && !sc.up.Load() {
		return ErrPubSubDown
	}
	return nil
}

func (sc *subConn) healthy() error {
	if sc.up.Load() {
		return nil
	}
	if p := sc.downErr.Load(); p != nil {
		return fmt.Errorf("redis pub/sub: %w", *p)
	}
	return errors.New("redis pub/sub: down")
}

func (b *Broker) setDown(sc *subConn, err error) {
	sc.downErr.Store(&err)
	if sc.up.Swap(false) && !sc.closed.Load() {
		switch {
		case !b.k.sharded:
			b.suspect.Store(true)
		case sc != b.anchor:
			b.distrust(sc.tag)
		}
		b.o.Logger.Error("Redis pub/sub lost, serving local clients only", "node", b.o.NodeID, "tag", sc.tag, "err", err)
	}
}

func (b *Broker) setUp(sc *subConn) {
	if !sc.up.Swap(true) {
		b.o.Logger.Info("Redis pub/sub connected", "node", b.o.NodeID, "tag", sc.tag, "channels", b.Interests())
	}
}

// receiveLoop reads one subscriber connection until the broker closes or
// drops it. go-redis reconnects it and subscribes its channels again after
// an error; the loop backs off, pings an idle connection, tracks health
// and, in a Redis Cluster, has the slot map reloaded (a failover moves a
// slot to a new master) and reopens a connection Redis refused channels
// on (MOVED).
func (b *Broker) receiveLoop(sc *subConn) {
	defer b.wg.Done()
	backoff := redialMin
	for {
		msg, err := sc.ps.ReceiveTimeout(context.Background(), pingEvery)
		if err != nil {
			if errors.Is(err, redis.ErrClosed) || sc.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && sc.up.Load() {
				// Idle: check the connection; the PONG comes back here.
				ctx, cancel := context.WithTimeout(context.Background(), b.o.OpTimeout)
				if perr := sc.ps.Ping(ctx); perr != nil {
					b.setDown(sc, perr)
				}
				cancel()
				continue
			}
			b.setDown(sc, err)
			if cc, ok := b.rdb.(*redis.ClusterClient); ok {
				cc.ReloadState(context.Background())
				var rerr redis.Error
				if errors.As(err, &rerr) {
					b.reopen(sc)
				}
			}
			select {
			case <-b.done:
				return
			case <-time.After(backoff/2 + rand.N(backoff/2+1)):
			}
			backoff = min(backoff*2, redialMax)
			continue
		}
		backoff = redialMin
		switch msg := msg.(type) {
		case *redis.Subscription:
			b.setUp(sc)
			if msg.Kind == "subscribe" || msg.Kind == "ssubscribe" {
				b.mu.Lock()
				if in := b.interest[msg.Channel]; in != nil && in.ready != nil {
					select {
					case <-in.ready:
					default:
						close(in.ready)
					}
				}
				b.mu.Unlock()
			}
		case *redis.Pong:
			b.setUp(sc)
		case *redis.Message:
			b.setUp(sc)
			// Drop what arrives between an UNSUBSCRIBE and its effect.
			b.mu.RLock()
			in := b.interest[msg.Channel]
			wanted := in != nil && in.n > 0
			b.mu.RUnlock()
			if !wanted {
				continue
			}
			origin, m, err := DecodeMessage([]byte(msg.Payload))
			if err != nil {
				b.dropped.Add(1)
				continue
			}
			if origin == b.o.NodeID && m.Position.Epoch == "" {
				// The hub delivered its own message itself; a history event
				// (published by the history script) it delivers from here,
				// in offset order.
				continue
			}
			if r := b.recv.Load(); r != nil {
				b.received.Add(1)
				r.HandleBrokerMessage(m)
			}
		}
	}
}

// reopen replaces a Redis Cluster subscriber connection that Redis
// answered with an error (a slot that moved: go-redis would keep the
// connection to the old owner) by one to the slot's master now, with the
// same channels. Only sc's own reader calls it.
func (b *Broker) reopen(sc *subConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sc.closed.Load() {
		return
	}
	var chans []string
	if sc == b.anchor {
		chans = append(chans, b.k.pubNode(b.o.NodeID))
	} else {
		chans = append(chans, b.k.pubLiveApp(sc.tag), b.k.pubLiveAppNode(sc.tag, b.o.NodeID))
	}
	for ch, in := range b.interest {
		if in.n > 0 && b.k.pubTag(ch) == sc.tag && sc != b.anchor {
			chans = append(chans, ch)
		}
	}
	_ = sc.ps.Close()
	ctx := context.Background()
	sc.ps = b.rdb.SSubscribe(ctx)
	if len(chans) > 0 {
		_ = sc.ps.SSubscribe(ctx, chans...)
	}
}

// BrokerStats are counters for metrics.
type BrokerStats struct {
	Published, Received, Dropped uint64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() BrokerStats {
	return BrokerStats{Published: b.published.Load(), Received: b.received.Load(), Dropped: b.dropped.Load()}
}

// Close stops the broker's goroutines and waits for them. Messages still
// queued fail with ErrBrokerClosed.
func (b *Broker) Close() error {
	var err error
	b.closing.Do(func() {
		close(b.done)
		b.mu.Lock()
		subs := []*subConn{b.anchor}
		for _, sc := range b.subs {
			subs = append(subs, sc)
		}
		for _, sc := range subs {
			sc.closed.Store(true)
			if cerr := sc.ps.Close(); err == nil {
				err = cerr
			}
		}
		b.mu.Unlock()
		b.wg.Wait()
		if cerr := b.rdb.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// Engine is the Redis engine of one node: its Node (the shared State, the
// lease and the reaper) and its Broker. It is the hub.Broker the hub is
// given, so that Attach registers the hub with both. The caller starts and
// closes Node and Broker.
type Engine struct {
	Node   *Node
	Broker *Broker
	hist   *History
}

// History returns the engine's channel history (in Redis streams, shared
// by every node).
func (e *Engine) History() *History { return e.hist }

var _ hub.Broker = (*Engine)(nil)

// NewEngine builds a node and its broker (BrokerOptions.NodeID defaults to
// the node's first id). Nothing contacts Redis before Node.Start.
func NewEngine(o BrokerOptions) (*Engine, error) {
	n, err := NewNode(o.Options)
	if err != nil {
		return nil, err
	}
	if o.NodeID == "" {
		o.NodeID = n.ID()
	}
	b, err := NewBroker(o)
	if err != nil {
		_ = n.rdb.Close()
		_ = n.lease.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	// The lease names the broker: the barrier checks the node on the
	// broker's own live channels.
	n.broker = b.o.NodeID
	return &Engine{Node: n, Broker: b, hist: newHistory(b)}, nil
}

// State returns the node's shared State.
func (e *Engine) State() *State { return e.Node.State() }

// Attach implements hub.Broker: the hub receives the other nodes' messages
// and the node's departures and rejoins.
func (e *Engine) Attach(r hub.Receiver) {
	e.Node.Attach(r)
	e.Broker.Attach(r)
}

// Publish implements hub.Broker.
func (e *Engine) Publish(ctx context.Context, m hub.BrokerMessage) error {
	return e.Broker.Publish(ctx, m)
}

// Interest implements hub.Broker.
func (e *Engine) Interest(ctx context.Context, appID, channel string, on bool) error {
	return e.Broker.Interest(ctx, appID, channel, on)
}

// UserInterest implements hub.Broker.
func (e *Engine) UserInterest(ctx context.Context, appID, userID string, on bool) error {
	return e.Broker.UserInterest(ctx, appID, userID, on)
}
