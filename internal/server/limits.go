package server

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/guard"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/transport"
)

// Refusals counts the requests and connections each limit refused, per app
// and limit. It is the hub.Refusals that the hub, the transport, the HTTP
// API and ingest report to; the metrics package exports the same calls.
type Refusals struct {
	log *slog.Logger
	m   sync.Map // refusalKey -> *atomic.Int64
	// metrics, when set, is told of each refusal too (herald_refusals_total).
	metrics interface{ Refused(appID, limit string) }
}

type refusalKey struct{ app, limit string }

// Refused implements hub.Refusals.
func (r *Refusals) Refused(appID, limit string) {
	if r.metrics != nil {
		r.metrics.Refused(appID, limit)
	}
	k := refusalKey{appID, limit}
	v, ok := r.m.Load(k)
	if !ok {
		v, _ = r.m.LoadOrStore(k, new(atomic.Int64))
	}
	if v.(*atomic.Int64).Add(1) == 1 && r.log != nil {
		// Once per app and limit: a flood must not flood the log too.
		r.log.Warn("limit reached", "app_id", appID, "limit", limit)
	}
}

// Count returns how many times limit refused for appID ("" for the
// server's own limits).
func (r *Refusals) Count(appID, limit string) int64 {
	if v, ok := r.m.Load(refusalKey{appID, limit}); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Snapshot returns every count, keyed "app/limit" ("/limit" for the
// server's own), sorted by key.
func (r *Refusals) Snapshot() []RefusalCount {
	var out []RefusalCount
	r.m.Range(func(k, v any) bool {
		key := k.(refusalKey)
		out = append(out, RefusalCount{App: key.app, Limit: key.limit, Count: v.(*atomic.Int64).Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].Limit < out[j].Limit
	})
	return out
}

// RefusalCount is one entry of Refusals.Snapshot.
type RefusalCount struct {
	App, Limit string
	Count      int64
}

// nodeLimits are the node's own admission limits from cfg (the hub
// applies them), and the memory limit known (0: none) that the outbound
// budget is derived from.
func nodeLimits(cfg *config.Config, log *slog.Logger) (hub.NodeLimits, int64) {
	var nl hub.NodeLimits
	if cfg.MaxNodeConnections > 0 {
		nl.MaxConnections = cfg.MaxNodeConnections
	}
	if cfg.IPConnectionsPerSecond > 0 {
		nl.IPConnectionsPerSecond = float64(cfg.IPConnectionsPerSecond)
		nl.IPConnectionsBurst = cfg.IPConnectionsBurst
		if nl.IPConnectionsBurst <= 0 {
			nl.IPConnectionsBurst = cfg.IPConnectionsPerSecond
		}
		// Validated by config: parsed as trusted_proxies are.
		exempt, err := transport.ParseTrustedProxies(cfg.IPLimitExempt)
		if err != nil {
			log.Error("ip_limit_exempt ignored", "err", err)
		}
		nl.IPExempt = exempt
	}
	limit, source := guard.ResolveMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	switch {
	case cfg.MemoryGuardPercent <= 0:
		log.Info("memory guard off (memory_guard_percent: -1)")
	case limit == 0:
		log.Warn("memory guard off: no memory limit known (no cgroup limit, GOMEMLIMIT or physical memory size); set memory_limit_mb")
	default:
		nl.MemoryLimit = limit
		nl.MemoryGuardPercent = cfg.MemoryGuardPercent
		log.Info("memory guard", "limit_mb", limit>>20, "limit_from", source, "refuse_above_percent", cfg.MemoryGuardPercent)
	}
	return nl, limit
}

// transportLimits fills the connection limits of the transport from cfg;
// memLimit is the memory limit nodeLimits found.
func transportLimits(cfg *config.Config, tc *transport.Config, memLimit int64, log *slog.Logger) error {
	tp, err := transport.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("trusted_proxies: %w", err)
	}
	tc.TrustedProxies = tp
	if cfg.ConnectionMessagesPerSecond > 0 {
		tc.MessagesPerSecond = float64(cfg.ConnectionMessagesPerSecond)
		tc.MessageBurst = cfg.ConnectionMessagesBurst
	}
	tc.MaxPendingMessages = cfg.ConnectionPendingMessages
	tc.MaxWorkers = cfg.MaxWorkers
	tc.OutboundBudget = outboundBudget(cfg, memLimit)
	if tc.OutboundBudget > 0 {
		log.Info("outbound budget", "budget_mb", tc.OutboundBudget>>20, "publishes_refused_above_mb", tc.OutboundBudget>>21)
	}
	tc.SaturationDelay = cfg.SaturationDelay
	return nil
}

// defaultOutboundBudget is the outbound budget when no memory limit is
// known.
const defaultOutboundBudget = 512 << 20

// outboundBudget is outbound_budget_mb in bytes: by default a quarter of
// the memory limit, so that queued frames, the copies the socket layer
// keeps and the rest of the process fit together.
func outboundBudget(cfg *config.Config, memLimit int64) int64 {
	switch {
	case cfg.OutboundBudgetMB < 0:
		return 0
	case cfg.OutboundBudgetMB > 0:
		return int64(cfg.OutboundBudgetMB) << 20
	case memLimit > 0:
		return memLimit / 4
	}
	return defaultOutboundBudget
}

// SetGoMemLimit gives the Go runtime a soft memory limit (GOMEMLIMIT) of
// GoMemLimitPercent of memory_limit_mb or of the cgroup's limit, unless the
// environment sets GOMEMLIMIT: the garbage collector then works harder
// near the limit instead of the process being killed at it. It returns the
// limit set (0: none). It changes the whole process: only main calls it.
func SetGoMemLimit(cfg *config.Config, lookupEnv func(string) (string, bool), log *slog.Logger) int64 {
	if v, ok := lookupEnv("GOMEMLIMIT"); ok && v != "" {
		log.Info("GOMEMLIMIT from the environment", "GOMEMLIMIT", v)
		return 0
	}
	limit, source := guard.ResolveMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	if source != guard.MemorySourceConfig && source != guard.MemorySourceCgroup {
		log.Info("GOMEMLIMIT not set: no memory_limit_mb and no cgroup memory limit")
		return 0
	}
	soft := limit / 100 * guard.GoMemLimitPercent
	debug.SetMemoryLimit(soft)
	log.Info("GOMEMLIMIT set", "limit_mb", soft>>20, "percent_of", guard.GoMemLimitPercent, "limit_from", source)
	return soft
}
