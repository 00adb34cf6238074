package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/herald-ws/herald/internal/redisurl"
)

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "herald:"

// Defaults of Options.
const (
	DefaultLease     = 10 * time.Second
	DefaultOpTimeout = 2 * time.Second
	// DefaultReplicaWait is Options.ReplicaWait's default.
	DefaultReplicaWait = 500 * time.Millisecond
)

// Options configure a Node and a Broker. Redis is the only required field.
type Options struct {
	// Redis addresses one Redis, a primary behind Redis Sentinel or a
	// Redis Cluster, typically redisurl.Parse(redis_mode, redis_url);
	// go-redis's NewUniversalClient picks the client (a MasterName is
	// Sentinel, IsClusterMode or several Addrs a Cluster). The timeouts are
	// tightened (dial 1 s, read/write OpTimeout) when unset, and retries
	// are off: a retried PUBLISH could deliver twice, and the hub would
	// rather answer a client with an error than hang. (A Cluster client
	// still follows MOVED/ASK redirections, up to MaxRedirects.)
	Redis *redis.UniversalOptions
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
	// ReplicaWait bounds how long a write the failover barrier relies on
	// (a node's lease when it registers, its first socket in an app) waits
	// for a replica of its primary to acknowledge it (WAIT), when the
	// primary has replicas (default 500 ms; negative: no wait). Replication
	// is asynchronous: a primary killed right after such a write could
	// leave the promoted replica without it, and the barrier would then
	// not wait for that node. A replica that does not answer in time is
	// logged and counted, and the write stands.
	ReplicaWait time.Duration
	// Logger receives connection losses and recoveries (default: none).
	Logger *slog.Logger
	// RedisHook, when set, is added to every Redis client of the Node and
	// the Broker (metrics: round trips and their errors).
	RedisHook redis.Hook
}

// sharded reports whether the options address a Redis Cluster: keys and
// pub/sub channels then carry hash tags, and pub/sub is sharded.
func (o Options) sharded() bool { return redisurl.Mode(o.Redis) == redisurl.Cluster }

// newClient makes a Redis client with the options' timeouts and hook.
func (o Options) newClient() redis.UniversalClient {
	return o.clientFrom(redisOptions(o.Redis, o.OpTimeout))
}

// leasePoolSize is the pool of the lease client: the heartbeat and the
// reaper's claims, one at a time each.
const leasePoolSize = 2

// newLeaseClient makes the client of the node's lease: a small pool of
// its own, so that a renewal never waits for a connection behind bulk
// state work (a mass disconnect's removals fill the main pool).
func (o Options) newLeaseClient() redis.UniversalClient {
	ro := redisOptions(o.Redis, o.OpTimeout)
	ro.PoolSize, ro.MaxActiveConns, ro.MinIdleConns, ro.MaxIdleConns = leasePoolSize, leasePoolSize, 0, leasePoolSize
	return o.clientFrom(ro)
}

func (o Options) clientFrom(ro *redis.UniversalOptions) redis.UniversalClient {
	c := redis.NewUniversalClient(ro)
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.AddHook(reloadOnError{cc})
	}
	if o.RedisHook != nil {
		c.AddHook(o.RedisHook)
	}
	return c
}

// reloadOnError has a Redis Cluster client reload its slot map after a
// failed command. With retries off, go-redis would keep sending a slot's
// commands to a primary that died until its map is 10 s old; a shard's
// failover then costs the State up to that long after the replica took
// over. go-redis reloads in the background, at most every 200 ms.
type reloadOnError struct{ cc *redis.ClusterClient }

func (h reloadOnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(ctx, err)
		return err
	}
}

func (h reloadOnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(ctx, err)
		return err
	}
}

func (h reloadOnError) after(ctx context.Context, err error) {
	if err != nil && !errors.Is(err, redis.Nil) && !errors.Is(err, context.Canceled) {
		h.cc.ReloadState(ctx)
	}
}

// bulkLimit is how many subscribes and removals (State.Subscribe, and so
// UserOnline; State.Unsubscribe, State.Leave, UserOffline) a node has in
// flight at once, together: half its pool (per Redis node), so that a
// mass disconnect, a reconnect storm or a re-registration goes at Redis's
// pace and leaves connections to the queries (rosters, counts, cache,
// history) meanwhile.
func (o Options) bulkLimit() int {
	size := o.Redis.PoolSize
	if size <= 0 {
		size = 10 * runtime.GOMAXPROCS(0) // go-redis's default
	}
	return max(1, size/2)
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
	if o.ReplicaWait == 0 {
		o.ReplicaWait = DefaultReplicaWait
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// maxConcurrentDials bounds the connection attempts in flight per client.
const maxConcurrentDials = 4

// redisOptions returns a copy of o tuned for Herald.
func redisOptions(o *redis.UniversalOptions, opTimeout time.Duration) *redis.UniversalOptions {
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
