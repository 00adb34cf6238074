package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
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
	rdb     *redis.Client
	ps      *redis.PubSub
	seed    maphash.Seed
	shards  []chan *pubReq
	done    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once

	mu       sync.RWMutex
	interest map[string]*interest // Redis channel → local interest

	// recv is the hub (Attach); messages that arrive before are dropped
	// (there is no interest before the hub exists).
	recv atomic.Pointer[receiver]

	up      atomic.Bool
	downErr atomic.Pointer[error]

	published, received, dropped atomic.Uint64
}

type interest struct {
	n     int           // refcount; subscribed while > 0
	ready chan struct{} // closed when Redis confirmed the SUBSCRIBE
}

type pubReq struct {
	channel string
	msg     []byte
	err     chan error
}

var _ hub.Broker = (*Broker)(nil)

// ErrBrokerClosed is returned by calls after Close.
var ErrBrokerClosed = errors.New("cluster: broker closed")

// pingEvery is how often an idle subscriber connection is checked.
const pingEvery = time.Second

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
		k:        keys{o.Prefix},
		rdb:      o.newClient(),
		seed:     maphash.MakeSeed(),
		done:     make(chan struct{}),
		interest: make(map[string]*interest),
	}
	down := error(errors.New("not connected to Redis yet"))
	b.downErr.Store(&down)
	// The node's own channel keeps the connection in subscribed mode, and
	// its confirmation after a reconnect tells the receiver Redis is back.
	b.ps = b.rdb.Subscribe(context.Background())
	_ = b.ps.Subscribe(context.Background(), b.k.pubNode(o.NodeID))
	b.shards = make([]chan *pubReq, o.PublishShards)
	for i := range b.shards {
		b.shards[i] = make(chan *pubReq, 1024)
		b.wg.Add(1)
		go b.publishLoop(b.shards[i])
	}
	b.wg.Add(1)
	go b.receiveLoop()
	return b, nil
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
	r := &pubReq{channel: ch, msg: EncodeMessage(nil, b.o.NodeID, m), err: make(chan error, 1)}
	q := b.shards[maphash.String(b.seed, key)%uint64(len(b.shards))]
	select {
	case <-b.done:
		return ErrBrokerClosed
	default:
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
			var err error
			if len(batch) == 1 {
				err = b.rdb.Publish(ctx, batch[0].channel, batch[0].msg).Err()
			} else {
				pipe := b.rdb.Pipeline()
				for _, r := range batch {
					pipe.Publish(ctx, r.channel, r.msg)
				}
				_, err = pipe.Exec(ctx)
			}
			cancel()
			if err != nil {
				err = fmt.Errorf("publish: %w", err)
			} else {
				b.published.Add(uint64(len(batch)))
			}
			for i, r := range batch {
				r.err <- err
				batch[i] = nil
			}
		}
	}
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
		err = b.ps.Subscribe(ctx, ch)
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
		err = b.ps.Unsubscribe(ctx, ch)
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

// Healthy returns nil while the subscriber connection is up, or why not
// (for /ready).
func (b *Broker) Healthy() error {
	if b.up.Load() {
		return nil
	}
	if p := b.downErr.Load(); p != nil {
		return fmt.Errorf("redis pub/sub: %w", *p)
	}
	return errors.New("redis pub/sub: down")
}

func (b *Broker) setDown(err error) {
	b.downErr.Store(&err)
	if b.up.Swap(false) {
		b.o.Logger.Error("Redis pub/sub lost, serving local clients only", "err", err)
	}
}

func (b *Broker) setUp() {
	if !b.up.Swap(true) {
		b.o.Logger.Info("Redis pub/sub connected", "node", b.o.NodeID, "channels", b.Interests())
	}
}

// receiveLoop reads the subscriber connection. go-redis reconnects it and
// subscribes its channels again after an error; the loop only backs off,
// pings an idle connection and tracks health.
func (b *Broker) receiveLoop() {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		msg, err := b.ps.ReceiveTimeout(context.Background(), pingEvery)
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && b.up.Load() {
				// Idle: check the connection; the PONG comes back here.
				ctx, cancel := context.WithTimeout(context.Background(), b.o.OpTimeout)
				if perr := b.ps.Ping(ctx); perr != nil {
					b.setDown(perr)
				}
				cancel()
				continue
			}
			b.setDown(err)
			select {
			case <-b.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch msg := msg.(type) {
		case *redis.Subscription:
			b.setUp()
			if msg.Kind == "subscribe" {
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
			b.setUp()
		case *redis.Message:
			b.setUp()
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
		err = b.ps.Close()
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
		return nil, fmt.Errorf("broker: %w", err)
	}
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
