// Package memory is the engine kept in this process's memory: a hub.State
// and a hub.Broker. A single node uses New: its Broker has no other node
// to deliver to, so a publish costs an atomic load, and the hub runs the
// same code as on a Redis cluster. Several hubs of one process (tests)
// share a Cluster to behave as the nodes of one cluster, without Redis.
package memory

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

// Cluster is an in-process cluster: one shared State and a bus joining the
// Brokers made by NewBroker.
type Cluster struct {
	state *State
	hist  *History
	mu    sync.Mutex // serialises joins and leaves
	// nodes is replaced whole on a join or leave, so that Publish reads it
	// without a lock.
	nodes atomic.Pointer[[]*Broker]
}

// NewCluster returns an empty cluster whose State runs on clock now (nil:
// time.Now).
func NewCluster(now func() time.Time) *Cluster {
	if now == nil {
		now = time.Now
	}
	c := &Cluster{state: NewState(now)}
	c.hist = newHistory(c, now)
	c.nodes.Store(new([]*Broker))
	return c
}

// New returns the engine of a single node.
func New(now func() time.Time) (*State, *Broker) {
	c := NewCluster(now)
	return c.State(), c.NewBroker()
}

// State returns the State every node of the cluster shares.
func (c *Cluster) State() *State { return c.state }

// NewBroker joins a new node to the cluster and returns its Broker.
func (c *Cluster) NewBroker() *Broker {
	b := &Broker{c: c, interest: make(map[interestKey]int)}
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes := append(slices.Clone(*c.nodes.Load()), b)
	c.nodes.Store(&nodes)
	return b
}

// Broker is the hub.Broker of one node of a Cluster. It delivers
// synchronously: Publish returns once every interested node's hub has
// been handed the message, which keeps the order per publisher and
// channel and makes multi-node tests deterministic. The other hubs'
// HandleBrokerMessage runs on the publisher's goroutine: the publishing
// hub holds at most a presence stripe of its own then, which delivery
// never takes, so two hubs publishing to each other cannot deadlock.
type Broker struct {
	c    *Cluster
	recv atomic.Pointer[receiver]

	mu       sync.RWMutex
	interest map[interestKey]int // counted Interest and UserInterest calls
	closed   bool
}

// receiver boxes the hub.Receiver for an atomic.Pointer.
type receiver struct{ hub.Receiver }

type interestKey struct {
	app, name string
	user      bool
}

var _ hub.Broker = (*Broker)(nil)

// ErrClosed is returned by a Broker's calls after Close.
var ErrClosed = errors.New("memory: broker closed")

// Attach implements hub.Broker.
func (b *Broker) Attach(r hub.Receiver) { b.recv.Store(&receiver{r}) }

// Publish implements hub.Broker.
func (b *Broker) Publish(ctx context.Context, m hub.BrokerMessage) error {
	var k interestKey
	switch {
	case m.AppID == "":
		return errors.New("memory: broker message without app")
	case m.TerminateUser != "":
		k = interestKey{m.AppID, m.TerminateUser, true}
	case m.ToUser != "":
		k = interestKey{m.AppID, m.ToUser, true}
	case m.Channel != "":
		k = interestKey{m.AppID, m.Channel, false}
	default:
		return errors.New("memory: broker message without channel or user")
	}
	nodes := *b.c.nodes.Load()
	if len(nodes) <= 1 {
		// Alone: the hub has delivered to its own connections already.
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, n := range nodes {
		if n != b && n.wants(k) {
			if r := n.recv.Load(); r != nil {
				r.HandleBrokerMessage(m)
			}
		}
	}
	return nil
}

func (b *Broker) wants(k interestKey) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return !b.closed && b.interest[k] > 0
}

// Interest implements hub.Broker.
func (b *Broker) Interest(_ context.Context, appID, channel string, on bool) error {
	return b.count(interestKey{appID, channel, false}, on)
}

// UserInterest implements hub.Broker.
func (b *Broker) UserInterest(_ context.Context, appID, userID string, on bool) error {
	return b.count(interestKey{appID, userID, true}, on)
}

func (b *Broker) count(k interestKey, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if on {
		b.interest[k]++
	} else {
		b.interest[k]--
	}
	if b.interest[k] == 0 {
		// An off that overtook its on leaves a negative count until the
		// on arrives; zero is no interest at all.
		delete(b.interest, k)
	}
	return nil
}

// Interests returns the number of channels and users this node has
// interest in.
func (b *Broker) Interests() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n := 0
	for _, c := range b.interest {
		if c > 0 {
			n++
		}
	}
	return n
}

// Close takes the node out of the cluster: it receives nothing more, its
// publishes reach nobody and its interest calls fail with ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	nodes := slices.DeleteFunc(slices.Clone(*c.nodes.Load()), func(n *Broker) bool { return n == b })
	c.nodes.Store(&nodes)
	return nil
}
