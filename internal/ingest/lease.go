package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leases elect the one node of a cluster that ingests each app: a key per
// app in the cluster's Redis, holding the token of the node that ingests,
// with a TTL the holder renews at a third of it.
type Leases struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	poll   time.Duration
	token  string
}

// LeaseOptions configure NewLeases.
type LeaseOptions struct {
	// Client is the cluster's Redis (the Node's client). Required.
	Client redis.UniversalClient
	// Prefix is the cluster's key prefix (redis_prefix).
	Prefix string
	// TTL is how long a lease outlives its holder's last renewal (default
	// 10 s, the cluster's redis_lease).
	TTL time.Duration
	// Poll is how often a node without the lease tries to take it
	// (default TTL/10, between 100 ms and 1 s).
	Poll time.Duration
	// Name starts this node's token (default: the host name).
	Name string
}

// NewLeases returns the leases of one node.
func NewLeases(o LeaseOptions) (*Leases, error) {
	if o.Client == nil {
		return nil, errors.New("ingest: LeaseOptions.Client is required")
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = min(max(o.TTL/10, 100*time.Millisecond), time.Second)
	}
	if o.Name == "" {
		o.Name, _ = os.Hostname()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Leases{rdb: o.Client, prefix: o.Prefix, ttl: o.TTL, poll: o.Poll, token: o.Name + "-" + hex.EncodeToString(b[:])}, nil
}

// Token identifies this node in the lease keys.
func (l *Leases) Token() string { return l.token }

func (l *Leases) key(appID string) string { return l.prefix + "{" + appID + "}:ingest" }

// takeScript takes the lease when it is free (SET NX PX) or renews it when
// this token holds it; 1 means held.
var takeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes the lease only when this token holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// take takes or renews the lease of appID. When held, until is the end of
// the lease as this node must see it: TTL after the request was sent, no
// later than Redis expires the key.
func (l *Leases) take(ctx context.Context, appID string) (held bool, until time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, min(l.ttl/3, 2*time.Second))
	defer cancel()
	sent := time.Now()
	n, err := takeScript.Run(ctx, l.rdb, []string{l.key(appID)}, l.token, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, time.Time{}, err
	}
	return n == 1, sent.Add(l.ttl), nil
}

// release gives the lease up, if this node holds it.
func (l *Leases) release(appID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), min(l.ttl/3, 2*time.Second))
	defer cancel()
	return releaseScript.Run(ctx, l.rdb, []string{l.key(appID)}, l.token).Err()
}

// keep renews a held lease until ctx ends, and calls lost when it can no
// longer be sure it holds it: another node has it, or until passed without
// a renewal (Redis unreachable).
func (l *Leases) keep(ctx context.Context, appID string, until time.Time, lost func(reason string)) {
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	deadline := time.NewTimer(time.Until(until))
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			lost("not renewed in time (cluster Redis unreachable?)")
			return
		case <-tick.C:
			held, u, err := l.take(ctx, appID)
			switch {
			case err != nil:
				continue // the deadline decides
			case !held:
				lost("taken by another node")
				return
			}
			deadline.Reset(time.Until(u))
		}
	}
}
