package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "herald:"

// Defaults of Options.
const (
	DefaultLease     = 10 * time.Second
	DefaultOpTimeout = 2 * time.Second
)

// Options configure a Node and a Broker. Redis is the only required field.
type Options struct {
	// Redis addresses the server, typically redis.ParseURL(HERALD_REDIS_URL).
	// The timeouts are tightened (dial 1 s, read/write OpTimeout) when
	// unset, and retries are always off: a retried PUBLISH could deliver
	// twice, and the hub would rather answer a client with an error than
	// hang.
	Redis *redis.Options
	// Prefix starts every key and pub/sub channel (default "herald:"), so
	// that several deployments can share one Redis.
	Prefix string
	// NodeName names this node in logs and in its node id (default: the
	// host name). The id adds a random suffix, renewed whenever the node
	// loses its lease.
	NodeName string
	// Lease is how long a node stays alive without a heartbeat (default
	// 10 s). A dead node is cleaned up within about Lease + ReapInterval.
	Lease time.Duration
	// Heartbeat is how often the lease is renewed (default Lease/3).
	Heartbeat time.Duration
	// ReapInterval is how often the node looks for dead nodes (default
	// Lease/10, at least 100 ms).
	ReapInterval time.Duration
	// OpTimeout bounds each Redis call whose context has no earlier
	// deadline (default 2 s).
	OpTimeout time.Duration
	// Logger receives connection losses and recoveries (default: none).
	Logger *slog.Logger
	// OnReap is called, from the reaper's goroutine, once per dead node this
	// node cleaned up, with what was removed. It must not block for long.
	OnReap func(Reaped)
	// OnRejoin is called, from a goroutine of the Node, after the node lost
	// its lease (Redis lost its data, or the node was cut off long enough to
	// be reaped) and registered again under a new id: the hub must record
	// its local subscriptions again (State.Subscribe is idempotent and
	// re-owns sockets that are still recorded). ctx ends when the Node
	// closes.
	OnRejoin func(ctx context.Context)
	// OnLeaseTick is called, from a goroutine of the Node (never the
	// heartbeat's), after each lease renewal, for the hub to reconcile its
	// local state with what Redis holds under the node's id
	// (hub.Hub.Reconcile). Renewals that come while a call is running are
	// folded into one later call. ctx ends when the Node closes.
	OnLeaseTick func(ctx context.Context)
	// RedisHook, when set, is added to every Redis client of the Node and
	// the Broker (metrics: round trips and their errors).
	RedisHook redis.Hook
}

// newClient makes a Redis client with the options' timeouts and hook.
func (o Options) newClient() *redis.Client {
	c := redis.NewClient(redisOptions(o.Redis, o.OpTimeout))
	if o.RedisHook != nil {
		c.AddHook(o.RedisHook)
	}
	return c
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.NodeName == "" {
		o.NodeName, _ = os.Hostname()
		if o.NodeName == "" {
			o.NodeName = "herald"
		}
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Heartbeat <= 0 || o.Heartbeat >= o.Lease {
		o.Heartbeat = o.Lease / 3
	}
	if o.ReapInterval <= 0 {
		o.ReapInterval = max(o.Lease/10, 100*time.Millisecond)
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// maxConcurrentDials bounds the connection attempts in flight per client.
const maxConcurrentDials = 4

// redisOptions returns a copy of o tuned for Herald.
func redisOptions(o *redis.Options, opTimeout time.Duration) *redis.Options {
	c := *o
	c.MaxRetries = -1
	if c.DialTimeout <= 0 {
		c.DialTimeout = time.Second
	}
	if c.DialerRetries <= 0 {
		// One attempt: the callers retry at their own pace.
		c.DialerRetries = 1
	}
	if c.MaxConcurrentDials <= 0 {
		// go-redis dials on goroutines of its own, as many at once as
		// the pool's size by default: against a Redis that is down, a
		// few in flight are enough, and callers fail fast meanwhile.
		c.MaxConcurrentDials = maxConcurrentDials
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = opTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = opTimeout
	}
	if c.PoolTimeout <= 0 {
		c.PoolTimeout = opTimeout
	}
	c.ContextTimeoutEnabled = true
	c.Protocol = 2
	c.DisableIdentity = true
	c.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &c
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
