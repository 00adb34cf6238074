package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// RouteRedisLogs sends go-redis's own log lines (one per failed dial while
// Redis is down, by default on stderr) to l at debug level. The setting is
// process-wide; Node and Broker log outages and recoveries themselves, once
// each.
func RouteRedisLogs(l *slog.Logger) { redis.SetLogger(redisLogger{l}) }
