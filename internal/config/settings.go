package config

import (
	"math"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/redisurl"
	"github.com/herald-ws/herald/internal/settings"
)

// The server's settings: one entry per field of Config, in the field's
// order, with its default, its rule and its flag help. Defaults (Default),
// the range checks (Load, Validate), the HERALD_<KEY> variables and the
// --flags with their help (RegisterFlags) are all derived from it; what a
// range cannot say (host, URLs, files, combinations of keys) is checked in
// validate.go, acme.go, restart.go and webhooks.go.
//
// A new key is a field of Config with a yaml tag and an entry here.

// maxKB bounds every *_kb setting (1 GiB) so that KB*1024 cannot overflow
// and an extra digit is caught.
const maxKB = 1 << 20

// Words of the rules, shared by several keys.
const (
	durHint     = ` (e.g. "30s", "2m", or 30 for seconds)`
	webhookHint = ` (e.g. "4s", "500ms", or 4 for seconds)`
	positive    = "a positive number"
	unlimited   = "-1 (unlimited) or a positive number"
	kbSize      = "a size in KB between 1 and 1048576"
)

// Limits of the webhook settings, shared with the per-target overrides
// (apps.WebhookSettings).
const (
	webhookMaxBatch   = apps.WebhookMaxBatch
	webhookMinTimeout = apps.WebhookMinTimeout
	webhookMaxTimeout = apps.WebhookMaxTimeout
	webhookMaxRetry   = apps.WebhookMaxRetry
	webhookMaxQueue   = 10_000_000
)

// between is a range of durations; what is the start of its Expect.
func between(lo, hi time.Duration, what, hint string) settings.Rule {
	return settings.Rule{Expect: what + hint, Min: int64(lo), Max: int64(hi)}
}

// count is a range of numbers.
func count(lo, hi int64, expect string) settings.Rule {
	return settings.Rule{Expect: expect, Min: lo, Max: hi}
}

// unlimitedOr is a positive number, or -1 for no limit.
func unlimitedOr() settings.Rule {
	return settings.Rule{Expect: unlimited, Min: 1, Max: math.MaxInt, MinusOne: true}
}

// serverTable binds the server's settings to Config.
func serverTable() *settings.Table { return settings.MustBind[Config](serverSettings()) }

// tables are the settings tables one walk over a Config uses: the
// server's and the per-app ones (apps.Tables).
func tables() settings.Tables { return append(settings.Tables{serverTable()}, apps.Tables()...) }

// serverSettings is the table of the server's keys (see above).
func serverSettings() []settings.Setting {
	return []settings.Setting{
		// The interface the main listener binds ("" or 0.0.0.0: all). With
		// the development app (no app configured) and neither host nor
		// dev_app_public set, Load makes it 127.0.0.1: the development
		// app's secret is public.
		{Key: "host", Default: "0.0.0.0",
			Help: "listen on this `host` or IP address (with the development app: 127.0.0.1 unless set, or dev_app_public)"},
		// The main listener's TCP port (WebSocket and HTTP API).
		{Key: "port", Default: 6001,
			Rule: count(1, 65535, "a port number 1-65535"),
			Help: "listen on this TCP `port`"},
		// Goes before /app/{key} and /apps/{id} (e.g. "/ws") so that Herald
		// can share a host name with other services behind a proxy.
		{Key: "path_prefix",
			Help: "serve /app/{key} and /apps/{id} under this `prefix` (e.g. /ws)"},
		{Key: "log_level", Default: "info",
			Rule: settings.Rule{Expect: "one of debug, info, warn, error", OneOf: []string{"debug", "info", "warn", "error"}},
			Help: "log `level`: debug, info, warn or error"},
		// auto means text on a terminal and json otherwise (the caller
		// decides which applies).
		{Key: "log_format", Default: "auto",
			Rule: settings.Rule{Expect: "one of auto, text, json", OneOf: []string{"auto", "text", "json"}},
			Help: "log `format`: auto (text on a terminal, json otherwise), text or json"},
		// The drain window on SIGTERM.
		{Key: "shutdown_timeout", Default: 10 * time.Second,
			Rule: between(0, math.MaxInt64, "a duration of 0s or more", durHint),
			Help: "drain connections for this `duration` on SIGTERM"},
		{Key: "max_request_body_kb", Default: 1024,
			Rule: count(1, maxKB, kbSize),
			Help: "largest HTTP API request body, in `KB`"},
		{Key: "max_message_size_kb", Default: 100,
			Rule: count(1, maxKB, kbSize),
			Help: "largest inbound WebSocket message, in `KB`"},
		// Bounds each connection's outbound queue; a client that falls
		// further behind is disconnected so it cannot slow the others.
		{Key: "write_queue_kb", Default: 1024,
			Rule: count(1, maxKB, kbSize),
			Help: "disconnect a client whose outbound queue passes this many `KB`"},
		{Key: "cache_ttl", Default: 1800 * time.Second,
			Rule: between(1, math.MaxInt64, "a positive duration", durHint),
			Help: "keep a cache channel's last event for this `duration`"},
		{Key: "subscription_count_interval", Default: time.Second,
			Rule: between(1, math.MaxInt64, "a positive duration", durHint),
			Help: "coalesce subscription_count events over this `duration`"},
		// The tolerance on the HTTP API's auth_timestamp.
		{Key: "api_timestamp_window", Default: 600 * time.Second,
			Rule: between(1, math.MaxInt64, "a positive duration", durHint),
			Help: "accept HTTP API auth_timestamp within this `duration` of now"},
		// redis:// or rediss://; set, it turns the cluster engine on.
		// redis_mode says how go-redis reads it (internal/redisurl).
		{Key: "redis_url",
			Help: "Redis `URL` (redis:// or rediss://) to run as a cluster; empty runs alone"},
		{Key: "redis_mode", Default: redisurl.Single,
			Rule: settings.Rule{Expect: "one of single, sentinel, cluster", OneOf: redisurl.Modes},
			Help: "`mode` redis_url is read in: single (one Redis), sentinel (Redis Sentinel addresses and ?master_name=) or cluster (Redis Cluster nodes)"},
		// Starts every Redis key so deployments can share a Redis.
		{Key: "redis_prefix", Default: "herald:",
			Help: "`prefix` of every Redis key"},
		// How long a node stays registered without a heartbeat: a node that
		// dies is cleaned up (its presence members removed) within about
		// 1.1 times this.
		{Key: "redis_lease", Default: 10 * time.Second,
			Rule: between(time.Second, 5*time.Minute, "a duration between 1s and 5m", durHint),
			Help: "a node silent for this `duration` is dead: the others remove its sockets and members"},
		// The dashboard login. Empty turns the dashboard off, except with
		// the development app, where a token is made per run.
		{Key: "admin_token",
			Help: "dashboard login `token` (prefer the env variable: flags show in ps); empty turns /dashboard off"},
		// Serves the development app on host's interfaces (every one by
		// default) instead of the loopback alone.
		{Key: "dev_app_public",
			Help: "serve the development app (public secret, used when no app is configured) on every interface, not only 127.0.0.1"},
		// "host:port": serves /metrics on a separate listener; empty serves
		// it on the main port.
		{Key: "metrics_addr",
			Help: "serve /metrics on this separate `host:port`; empty serves it on the main port"},
		// PEM files; set both to serve TLS, or neither.
		{Key: "tls_cert",
			Help: "TLS certificate PEM `file` (with --tls-key)"},
		{Key: "tls_key",
			Help: "TLS private key PEM `file` (with --tls-cert)"},

		// Webhook delivery, for every app (docs/webhooks.md); a target may
		// override batch_size, timeout and retry_for.
		//
		// How long a batch stays open for more events.
		{Key: "webhook_batch_window", Default: 250 * time.Millisecond,
			Rule: between(time.Millisecond, time.Minute, "a duration between 1ms and 1m", webhookHint),
			Help: "keep a webhook batch open this `duration` for more events"},
		{Key: "webhook_batch_size", Default: 20,
			Rule: count(1, webhookMaxBatch, "a number of events between 1 and 1000"),
			Help: "send at most this many `events` in one webhook request"},
		// Bounds one attempt, response included.
		{Key: "webhook_timeout", Default: 4 * time.Second,
			Rule: between(webhookMinTimeout, webhookMaxTimeout, "a duration between 100ms and 5m", webhookHint),
			Help: "give up one webhook attempt after this `duration`"},
		// How long after its first event a batch is retried.
		{Key: "webhook_retry_for", Default: 5 * time.Minute,
			Rule: between(time.Second, webhookMaxRetry, "a duration between 1s and 24h", webhookHint),
			Help: "retry a failed webhook for this `duration` after its first event"},
		// The backoff between attempts is exponential between these two,
		// each delay jittered between half and all of it.
		{Key: "webhook_backoff_min", Default: time.Second,
			Rule: between(10*time.Millisecond, time.Hour, "a duration between 10ms and 1h", webhookHint),
			Help: "wait this `duration` before the first retry of a webhook, doubling per attempt"},
		{Key: "webhook_backoff_max", Default: 30 * time.Second,
			Rule: between(10*time.Millisecond, time.Hour, "a duration between 10ms and 1h", webhookHint),
			Help: "wait at most this `duration` between two attempts of a webhook"},
		// Bounds the events waiting to be batched (per node).
		{Key: "webhook_queue_size", Default: 10000,
			Rule: count(1, webhookMaxQueue, "a number between 1 and 10000000"),
			Help: "hold at most this many webhook `events` waiting to be batched (more are dropped and counted)"},
		// Bounds the batches waiting for delivery or a retry (per node
		// alone, across the cluster with Redis).
		{Key: "webhook_max_pending", Default: 10000,
			Rule: count(1, webhookMaxQueue, "a number between 1 and 10000000"),
			Help: "hold at most this many webhook `batches` waiting for delivery or a retry"},
		// Bounds, in MB, the webhook batches held (in memory alone, in Redis
		// across a cluster); the events waiting to be batched may use a
		// quarter of it. Past it the newest is dropped and counted.
		{Key: "webhook_queue_mb", Default: 64,
			Rule: count(1, 65536, "a size in MB between 1 and 65536"),
			Help: "hold at most this many `MB` of webhooks (batches waiting for delivery; a quarter for events waiting to be batched); the newest are dropped and counted past it"},
		// Bounds, in MB, the channel history a single node keeps in memory
		// (apps' history rules); past it the channels written least
		// recently lose theirs. In a cluster history lives in Redis.
		{Key: "history_memory_mb", Default: 64,
			Rule: count(1, 65536, "a size in MB between 1 and 65536"),
			Help: "keep at most this many `MB` of channel history in memory on a single node (apps' history rules); the channels written least recently lose theirs past it"},
		// Concurrent deliveries per node.
		{Key: "webhook_workers", Default: 4,
			Rule: count(1, 1024, "a number between 1 and 1024"),
			Help: "run at most this many webhook `deliveries` at once per node"},
		// Holds member_added/member_removed back so that a user who leaves
		// and rejoins within it causes neither (0: off).
		{Key: "webhook_presence_delay", Default: 3 * time.Second,
			Rule: between(0, time.Minute, "0s (no delay) or a duration up to 1m", webhookHint),
			Help: "hold member webhooks this `duration`; a leave and rejoin within it sends neither (0s: off)"},

		// How often, at most, the TLS files are checked for a change (on a
		// handshake); a changed pair is loaded without a restart and live
		// connections stay.
		{Key: "tls_reload_interval", Default: 5 * time.Second,
			Rule: between(time.Second, time.Hour, "a duration between 1s and 1h", durHint),
			Help: "check the TLS files for a new certificate at most this often (`duration`)"},

		// ACME (acme.go): automatic certificates for these host names
		// instead of tls_cert/tls_key; setting acme_domains turns it on.
		{Key: "acme_domains", Default: []string{},
			Help: "comma separated host `names` to obtain TLS certificates for through ACME (turns ACME on)"},
		// The ACME account's contact address (optional).
		{Key: "acme_email",
			Help: "contact `address` of the ACME account (optional; the CA may send notices about the account there)"},
		// Keeps the account key and the certificates across restarts
		// (required with ACME).
		{Key: "acme_cache_dir",
			Help: "`directory` that keeps the ACME account key and certificates across restarts (required with ACME)"},
		// The CA's ACME directory (Let's Encrypt production by default;
		// staging, step-ca or pebble for tests and private CAs).
		{Key: "acme_directory_url", Default: DefaultACMEDirectoryURL,
			Help: "ACME directory `URL` (Let's Encrypt production by default; use its staging URL to try things out)"},
		// "host:port" (e.g. ":80"): answers HTTP-01 challenges and redirects
		// other plain HTTP to https; empty: TLS-ALPN-01 only.
		{Key: "acme_http_addr",
			Help: "answer ACME HTTP-01 challenges and redirect plain HTTP to https on this `host:port` (e.g. :80); empty: TLS-ALPN-01 on the main port only"},

		// Bounds the time from accept to a complete upgrade request
		// (slowloris) and an idle HTTP keep-alive connection.
		{Key: "handshake_timeout", Default: 10 * time.Second,
			Rule: between(time.Second, 5*time.Minute, "a duration between 1s and 5m", durHint),
			Help: "close a connection that has not completed its upgrade request within this `duration`"},
		// Bounds the handling of one HTTP API or dashboard request, Redis
		// calls included: past it the request is answered 503.
		{Key: "http_request_timeout", Default: 10 * time.Second,
			Rule: between(time.Second, 5*time.Minute, "a duration between 1s and 5m", durHint),
			Help: "answer an HTTP API or dashboard request 503 when it is not done within this `duration`, Redis calls included"},
		// Caps the WebSocket connections of this node, all apps together
		// (-1: no cap); past it new ones are closed with 4100.
		{Key: "max_node_connections", Default: -1,
			Rule: unlimitedOr(),
			Help: "refuse WebSocket connections past this `number` on this node (-1: no cap)"},
		// Limits new WebSocket connections per client IP (an IPv6 client is
		// counted by its /64), with a burst of ip_connections_burst (-1: no
		// limit); past it they are closed with 4100.
		{Key: "ip_connections_per_second", Default: 20,
			Rule: unlimitedOr(),
			Help: "new WebSocket connections allowed per client IP per second (`rate`; -1: no limit)"},
		{Key: "ip_connections_burst", Default: 100,
			Rule: count(1, math.MaxInt, positive),
			Help: "burst of new WebSocket connections allowed per client IP (`number`)"},
		// The CIDRs (or IPs) of the reverse proxies whose X-Forwarded-For
		// and X-Forwarded-Proto headers are believed.
		{Key: "trusted_proxies", Default: []string{},
			Help: "comma separated `CIDRs` of proxies whose X-Forwarded-For/-Proto are believed"},
		// The client addresses (CIDRs or IPs, as resolved through
		// trusted_proxies) that ip_connections_per_second never charges.
		// Empty by default: loopback and private addresses are charged
		// too; with the development app, the loopback is exempt.
		{Key: "ip_limit_exempt", Default: []string{},
			Help: "comma separated `CIDRs` of client addresses the per-IP connection limit never charges (default none; the loopback with the development app)"},
		// The memory the process may use; 0 takes GOMEMLIMIT when set, else
		// the cgroup's memory limit, else none.
		{Key: "memory_limit_mb",
			Rule: count(0, maxKB, "0 (GOMEMLIMIT, else the cgroup limit) or a size in MB"),
			Help: "memory limit in `MB` for the memory guard (0: GOMEMLIMIT, else the cgroup limit)"},
		// Refuses new connections (4100) while the process uses more than
		// this share of the memory limit (-1: never).
		{Key: "memory_guard_percent", Default: 90,
			Rule: settings.Rule{Expect: "-1 (off) or a percentage between 1 and 100", Min: 1, Max: 100, MinusOne: true},
			Help: "refuse new connections above this `percent` of the memory limit (-1: off)"},
		// Bounds the bytes queued for all WebSocket connections of the node
		// together: past it the connections holding the most are closed
		// with 4100 (slow consumers first) until 3/4 of it is left, and
		// from half of it the HTTP API answers publishes with 503 and
		// Retry-After. 0: a quarter of the memory limit (512 MB when none is
		// known); -1: no budget.
		{Key: "outbound_budget_mb",
			Rule: settings.Rule{Expect: "-1 (no budget), 0 (a quarter of the memory limit) or a size in MB", Min: 0, Max: maxKB, MinusOne: true},
			Help: "bytes queued for all connections, in `MB`, past which the slowest are closed and publishes get 503 from half of it (0: a quarter of the memory limit; -1: none)"},
		// Limits every message one connection sends (subscribe, unsubscribe,
		// sign-in, pings, client events...), with bursts of
		// connection_messages_burst: a message over the rate is refused with
		// 4301 (the socket stays); a client that keeps sending into a debt
		// of a whole burst is closed with 4301. -1: no limit. 50 a second
		// with bursts of 200: a page that subscribes to a few hundred
		// channels at load passes.
		{Key: "connection_messages_per_second", Default: 50,
			Rule: unlimitedOr(),
			Help: "messages (any kind) one connection may send per second (`rate`; -1: no limit)"},
		{Key: "connection_messages_burst", Default: 200,
			Rule: count(1, math.MaxInt, positive),
			Help: "burst of messages one connection may send (`number`)"},
		// Bounds the messages read from one connection and not yet handled;
		// past it the connection is closed with 4100.
		{Key: "connection_pending_messages", Default: 256,
			Rule: count(1, math.MaxInt, positive),
			Help: "close a connection with this many `messages` read and not yet handled"},
		// Bounds the goroutines handling messages and HTTP requests at once;
		// past it work waits its turn (at most one waiting job per
		// connection).
		{Key: "max_workers", Default: 1024,
			Rule: count(1, math.MaxInt, positive),
			Help: "goroutines handling messages and HTTP requests at once (`number`)"},
		// While more than 1% of the recent socket writes came later than
		// this after their event's fanout started, the HTTP API answers
		// publishes with 503 and Retry-After and ingestion waits, then
		// drops (docs/security.md). 0s (the default): not watched, as a
		// passing stall of a loaded machine would refuse publishers that
		// do not retry, and lose their events.
		{Key: "saturation_delay", Default: time.Duration(0),
			Rule: between(0, time.Minute, "0s (not watched) or a duration up to 1m", durHint),
			Help: "answer publishes with 503 while the p99 of recent deliveries (fanout to socket write) is over this `duration` (0s, the default: not watched)"},

		// Restarts in place (docs/restarts.md). pid_file, when set, holds
		// the PID of the process that serves: written once it is ready, by
		// the new process after a restart in place (SIGHUP), and removed
		// when the last owner exits.
		{Key: "pid_file",
			Help: "write the `file` with the PID of the process that serves (after a restart with SIGHUP, the new one's); removed at exit"},
		// How long a restart in place waits for the new process to be
		// ready; past it the new one is killed and the old one keeps
		// serving.
		{Key: "restart_timeout", Default: DefaultRestartTimeout,
			Rule: between(time.Second, 10*time.Minute, "a duration between 1s and 10m", durHint),
			Help: "on SIGHUP, keep serving if the new process is not ready within this `duration`"},

		// Where the apps live (docs/apps.md): "config" (the apps below and
		// HERALD_APP_*), or a database URL whose scheme picks the driver:
		// postgres://, mysql://, sqlite:///path/file.db.
		{Key: "apps_store", Default: "config",
			Help: "where apps live: config (the YAML file and HERALD_APP_*) or a database `URL`: postgres://..., mysql://..., sqlite:///path/file.db"},
		// How long a node serves an app looked up in a database store before
		// asking again: a change reaches every node within it.
		{Key: "apps_cache_ttl", Default: 5 * time.Second,
			Rule: between(100*time.Millisecond, 10*time.Minute, "a duration between 100ms and 10m", durHint),
			Help: "serve an app looked up in a database store this long before asking again (`duration`)"},
		// The statically configured apps (apps.AppSettings for their keys).
		// With the config store Load never returns an empty list: with none
		// configured it falls back to DevApp. With a database store it is
		// empty. Not a scalar: no env variable or flag (HERALD_APP_* set
		// the first app).
		{Key: "apps"},
	}
}
