package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisQueueOptions configure a RedisQueue.
type RedisQueueOptions struct {
	// Client is the Redis connection (required).
	Client redis.UniversalClient
	// Prefix starts every key, as the cluster's keys do ("herald:").
	Prefix string
	// Limit bounds the batches held (pending and leased) across the
	// cluster (default 100,000; Push returns ErrQueueFull past it).
	Limit int
	// MaxBytes bounds the stored batches' bytes across the cluster (0: no
	// byte bound); past it Push returns ErrQueueFull and the newest batch
	// is dropped.
	MaxBytes int64
	// Lease is how long a batch handed out by Next belongs to its caller
	// before any node may take it again (default 30 s). It must exceed the
	// dispatcher's Timeout by a margin: a lease that ends mid-attempt only
	// costs a duplicate, but costs it every time.
	Lease time.Duration
	// Poll is the longest Next waits before it asks Redis again when
	// nothing is due (default 250 ms); batches pushed by this process wake
	// it at once.
	Poll time.Duration
}

// RedisQueue is a durable Queue shared by every node: a sorted set of batch
// ids by due time (Redis's clock) and a hash of the batches. Next leases a
// batch by moving its due time a Lease ahead, so the batches of a node that
// dies mid-delivery become due again for the others when the lease ends
// (at least once; receivers de-duplicate by X-Herald-Batch-Id). Every
// operation is one script over keys with the same hash tag (Redis
// Cluster-safe). A third key counts the batches' bytes.
type RedisQueue struct {
	rdb              redis.UniversalClient
	due, data, bytes string // bytes: the total size of data's values
	opt              RedisQueueOptions
	wake             chan struct{}
}

// NewRedisQueue returns a RedisQueue.
func NewRedisQueue(opt RedisQueueOptions) (*RedisQueue, error) {
	if opt.Client == nil {
		return nil, errors.New("webhooks: RedisQueueOptions.Client is required")
	}
	if opt.Limit <= 0 {
		opt.Limit = 100000
	}
	if opt.Lease <= 0 {
		opt.Lease = 30 * time.Second
	}
	if opt.Poll <= 0 {
		opt.Poll = 250 * time.Millisecond
	}
	base := opt.Prefix + "{webhooks}:"
	return &RedisQueue{rdb: opt.Client, due: base + "due", data: base + "data", bytes: base + "bytes", opt: opt,
		wake: make(chan struct{}, 1)}, nil
}

const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS: due, data, bytes. ARGV: id, payload, limit, max bytes (0: none).
// Returns 1, or 0 when full.
var pushScript = redis.NewScript(luaNow + `
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local size = string.len(ARGV[2])
local maxb = tonumber(ARGV[4])
if maxb > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') + size > maxb then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('INCRBY', KEYS[3], size)
return 1`)

// KEYS: due, data. ARGV: lease ms. Returns {1, id, payload} for a leased
// batch, or {0, ms until the next one is due (-1: none)}.
var claimScript = redis.NewScript(luaNow + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #ids == 0 then
  local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #nxt == 0 then return {0, -1} end
  return {0, math.max(0, tonumber(nxt[2]) - now)}
end
local id = ids[1]
local payload = redis.call('HGET', KEYS[2], id)
if not payload then
  redis.call('ZREM', KEYS[1], id)
  return {0, 0}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
return {1, id, payload}`)

// KEYS: due, data, bytes. ARGV: id, payload, delay ms. A batch already
// settled elsewhere (its lease had ended) is not brought back.
var retryScript = redis.NewScript(luaNow + `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[3], string.len(ARGV[2]) - redis.call('HSTRLEN', KEYS[2], ARGV[1]))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1`)

// KEYS: due, data, bytes. ARGV: id.
var doneScript = redis.NewScript(`
local size = redis.call('HSTRLEN', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if size > 0 and redis.call('DECRBY', KEYS[3], size) < 0 then redis.call('SET', KEYS[3], 0) end
return 1`)

// Push implements Queue.
func (q *RedisQueue) Push(ctx context.Context, d *Delivery) error {
	payload, err := json.Marshal(d)
	if err != nil {
		return err
	}
	ok, err := pushScript.Run(ctx, q.rdb, []string{q.due, q.data, q.bytes}, d.ID, payload, q.opt.Limit, q.opt.MaxBytes).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return ErrQueueFull
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Next implements Queue.
func (q *RedisQueue) Next(ctx context.Context) (*Delivery, error) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res, err := claimScript.Run(ctx, q.rdb, []string{q.due, q.data}, q.opt.Lease.Milliseconds()).Slice()
		if err != nil {
			return nil, err
		}
		if len(res) == 3 {
			id, _ := res[1].(string)
			payload, _ := res[2].(string)
			d := &Delivery{}
			if err := json.Unmarshal([]byte(payload), d); err != nil || d.ID != id {
				// Not ours to deliver: remove it rather than lease it forever.
				_ = doneScript.Run(ctx, q.rdb, []string{q.due, q.data, q.bytes}, id).Err()
				continue
			}
			return d, nil
		}
		wait := q.opt.Poll
		if len(res) == 2 {
			if ms, ok := res[1].(int64); ok && ms >= 0 && time.Duration(ms)*time.Millisecond < wait {
				wait = time.Duration(ms) * time.Millisecond
			}
		}
		if wait <= 0 {
			continue
		}
		if err := sleepOrWake(ctx, &t, wait, q.wake); err != nil {
			return nil, err
		}
	}
}

// Retry implements Queue.
func (q *RedisQueue) Retry(ctx context.Context, d *Delivery, after time.Duration) error {
	payload, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return retryScript.Run(ctx, q.rdb, []string{q.due, q.data, q.bytes}, d.ID, payload, after.Milliseconds()).Err()
}

// Done implements Queue.
func (q *RedisQueue) Done(ctx context.Context, d *Delivery) error {
	return doneScript.Run(ctx, q.rdb, []string{q.due, q.data, q.bytes}, d.ID).Err()
}

// Len implements Queue: the batches held across the cluster.
func (q *RedisQueue) Len(ctx context.Context) (int, error) {
	n, err := q.rdb.ZCard(ctx, q.due).Result()
	return int(n), err
}

// Durable implements Queue: a RedisQueue is.
func (q *RedisQueue) Durable() bool { return true }
