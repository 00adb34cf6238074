package metrics

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisHook returns a go-redis hook that counts and times the round trips
// of the cluster engine (cluster.Options.RedisHook).
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.m.redisDone(cmd.Name(), time.Since(start), err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.redisDone("pipeline", time.Since(start), err)
		return err
	}
}

// redisDone counts one round trip; redis.Nil (no such key) is an answer,
// not an error. Command names are Herald's own, so the labels are bounded.
func (m *Metrics) redisDone(cmd string, d time.Duration, err error) {
	result := "ok"
	if err != nil && !errors.Is(err, redis.Nil) {
		result = "error"
	}
	m.redisCmds.WithLabelValues(cmd, result).Inc()
	m.redisDur.WithLabelValues(cmd).Observe(d.Seconds())
}
