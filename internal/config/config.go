// Package config loads Herald's configuration from a YAML file, HERALD_*
// environment variables and command-line flags (precedence: flags > env >
// file > defaults), fills in defaults and validates the result.
//
// Every error names where the bad value came from (file and line, env
// variable or flag) and the key, says what is wrong and what is expected, and
// Load reports all of them at once so that an operator fixes a file in one
// pass. Secrets (app secrets, the admin token, passwords in URLs) never
// appear in an error.
package config

import (
	"net"
	"strconv"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// Config is the server-level configuration plus the statically configured
// apps. The YAML keys are the snake_case names in the field tags; every
// top-level key except apps can also be set with HERALD_<UPPER_SNAKE> and a
// --kebab-case flag.
type Config struct {
	// Host is the interface the main listener binds ("" or 0.0.0.0: all).
	// With the development app (no app configured) and neither host nor
	// dev_app_public set, Load makes it 127.0.0.1: the development app's
	// secret is public.
	Host string `yaml:"host"`
	// Port is the main listener's TCP port (WebSocket and HTTP API).
	Port int `yaml:"port"`
	// PathPrefix goes before /app/{key} and /apps/{id} (e.g. "/ws") so that
	// Herald can share a host name with other services behind a proxy.
	PathPrefix string `yaml:"path_prefix"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is auto, text or json; auto means text on a terminal and
	// json otherwise (the caller decides which applies).
	LogFormat string `yaml:"log_format"`
	// ShutdownTimeout is the drain window on SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxRequestBodyKB limits HTTP API request bodies.
	MaxRequestBodyKB int `yaml:"max_request_body_kb"`
	// MaxMessageSizeKB is the largest inbound WebSocket message.
	MaxMessageSizeKB int `yaml:"max_message_size_kb"`
	// WriteQueueKB bounds each connection's outbound queue; a client that
	// falls further behind is disconnected so it cannot slow the others.
	WriteQueueKB int `yaml:"write_queue_kb"`
	// CacheTTL is how long a cache channel keeps its last event.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// SubscriptionCountInterval coalesces subscription_count events.
	SubscriptionCountInterval time.Duration `yaml:"subscription_count_interval"`
	// APITimestampWindow is the tolerance on the HTTP API's auth_timestamp.
	APITimestampWindow time.Duration `yaml:"api_timestamp_window"`
	// RedisURL (redis:// or rediss://) enables the cluster engine when set.
	RedisURL string `yaml:"redis_url"`
	// RedisPrefix starts every Redis key so deployments can share a Redis.
	RedisPrefix string `yaml:"redis_prefix"`
	// RedisLease is how long a node stays registered without a heartbeat:
	// a node that dies is cleaned up (its presence members removed) within
	// about 1.1 times this.
	RedisLease time.Duration `yaml:"redis_lease"`
	// AdminToken is the dashboard login. Empty turns the dashboard off,
	// except with the development app, where a token is made per run.
	AdminToken string `yaml:"admin_token"`
	// DevAppPublic serves the development app on host's interfaces (every
	// one by default) instead of the loopback alone.
	DevAppPublic bool `yaml:"dev_app_public"`
	// MetricsAddr ("host:port") serves /metrics on a separate listener;
	// empty serves it on the main port.
	MetricsAddr string `yaml:"metrics_addr"`
	// TLSCert and TLSKey are PEM files; set both to serve TLS, or neither.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// Webhook delivery, for every app (docs/webhooks.md); a target may
	// override batch_size, timeout and retry_for.
	//
	// WebhookBatchWindow is how long a batch stays open for more events.
	WebhookBatchWindow time.Duration `yaml:"webhook_batch_window"`
	// WebhookBatchSize is the most events in one request.
	WebhookBatchSize int `yaml:"webhook_batch_size"`
	// WebhookTimeout bounds one attempt, response included.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	// WebhookRetryFor is how long after its first event a batch is retried.
	WebhookRetryFor time.Duration `yaml:"webhook_retry_for"`
	// WebhookBackoffMin and WebhookBackoffMax bound the exponential backoff
	// between attempts (each delay is jittered between half and all of it).
	WebhookBackoffMin time.Duration `yaml:"webhook_backoff_min"`
	WebhookBackoffMax time.Duration `yaml:"webhook_backoff_max"`
	// WebhookQueueSize bounds the events waiting to be batched (per node).
	WebhookQueueSize int `yaml:"webhook_queue_size"`
	// WebhookMaxPending bounds the batches waiting for delivery or a retry
	// (per node alone, across the cluster with Redis).
	WebhookMaxPending int `yaml:"webhook_max_pending"`
	// WebhookQueueMB bounds, in MB, the webhook batches held (in memory
	// alone, in Redis across a cluster); the events waiting to be batched
	// may use a quarter of it. Past it the newest is dropped and counted.
	WebhookQueueMB int `yaml:"webhook_queue_mb"`
	// WebhookWorkers is the number of concurrent deliveries per node.
	WebhookWorkers int `yaml:"webhook_workers"`
	// WebhookPresenceDelay holds member_added/member_removed back so that a
	// user who leaves and rejoins within it causes neither (0: off).
	WebhookPresenceDelay time.Duration `yaml:"webhook_presence_delay"`
	// TLSReloadInterval is how often, at most, the TLS files are checked
	// for a change (on a handshake); a changed pair is loaded without a
	// restart and live connections stay.
	TLSReloadInterval time.Duration `yaml:"tls_reload_interval"`
	// ACME (acme.go): automatic certificates for these host names instead
	// of tls_cert/tls_key; setting ACMEDomains turns it on.
	ACMEDomains []string `yaml:"acme_domains"`
	// ACMEEmail is the ACME account's contact address (optional).
	ACMEEmail string `yaml:"acme_email"`
	// ACMECacheDir keeps the account key and the certificates across
	// restarts (required with ACME).
	ACMECacheDir string `yaml:"acme_cache_dir"`
	// ACMEDirectoryURL is the CA's ACME directory (Let's Encrypt production
	// by default; staging, step-ca or pebble for tests and private CAs).
	ACMEDirectoryURL string `yaml:"acme_directory_url"`
	// ACMEHTTPAddr ("host:port", e.g. ":80") answers HTTP-01 challenges and
	// redirects other plain HTTP to https; empty: TLS-ALPN-01 only.
	ACMEHTTPAddr string `yaml:"acme_http_addr"`
	// HandshakeTimeout bounds the time from accept to a complete upgrade
	// request (slowloris) and an idle HTTP keep-alive connection.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// HTTPRequestTimeout bounds the handling of one HTTP API or dashboard
	// request, Redis calls included: past it the request is answered 503.
	HTTPRequestTimeout time.Duration `yaml:"http_request_timeout"`
	// MaxNodeConnections caps the WebSocket connections of this node, all
	// apps together (-1: no cap); past it new ones are closed with 4100.
	MaxNodeConnections int `yaml:"max_node_connections"`
	// IPConnectionsPerSecond limits new WebSocket connections per client
	// IP (an IPv6 client is counted by its /64), with a burst of
	// IPConnectionsBurst (-1: no limit); past it they are closed with 4100.
	IPConnectionsPerSecond int `yaml:"ip_connections_per_second"`
	IPConnectionsBurst     int `yaml:"ip_connections_burst"`
	// TrustedProxies are the CIDRs (or IPs) of the reverse proxies whose
	// X-Forwarded-For and X-Forwarded-Proto headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MemoryLimitMB is the memory the process may use; 0 takes GOMEMLIMIT
	// when set, else the cgroup's memory limit, else none.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// MemoryGuardPercent refuses new connections (4100) while the process
	// uses more than this share of the memory limit (-1: never).
	MemoryGuardPercent int `yaml:"memory_guard_percent"`
	// OutboundBudgetMB bounds the bytes queued for all WebSocket
	// connections of the node together: past it the connections holding
	// the most are closed with 4100 (slow consumers first) until 3/4 of
	// it is left, and from half of it the HTTP API answers publishes with
	// 503 and Retry-After. 0: a quarter of the memory limit (512 MB when
	// none is known); -1: no budget.
	OutboundBudgetMB int `yaml:"outbound_budget_mb"`
	// SaturationDelay: while more than 1% of the recent socket writes
	// came later than this after their event's fanout started, the HTTP
	// API answers publishes with 503 and Retry-After and ingestion waits,
	// then drops (docs/security.md). 0s (the default): not watched, as
	// a passing stall of a loaded machine would refuse publishers that do
	// not retry, and lose their events.
	SaturationDelay time.Duration `yaml:"saturation_delay"`
	// ConnectionMessagesPerSecond limits every message one connection
	// sends (subscribe, unsubscribe, sign-in, pings, client events...),
	// with bursts of ConnectionMessagesBurst: a message over the rate is
	// refused with 4301 (the socket stays); a client that keeps sending
	// into a debt of a whole burst is closed with 4301. -1: no limit.
	ConnectionMessagesPerSecond int `yaml:"connection_messages_per_second"`
	ConnectionMessagesBurst     int `yaml:"connection_messages_burst"`
	// ConnectionPendingMessages bounds the messages read from one
	// connection and not yet handled; past it the connection is closed
	// with 4100.
	ConnectionPendingMessages int `yaml:"connection_pending_messages"`
	// MaxWorkers bounds the goroutines handling messages and HTTP
	// requests at once; past it work waits its turn (at most one waiting
	// job per connection).
	MaxWorkers int `yaml:"max_workers"`
	// PIDFile, when set, holds the PID of the process that serves: written
	// once it is ready, by the new process after a restart in place
	// (SIGHUP), and removed when the last owner exits.
	PIDFile string `yaml:"pid_file"`
	// RestartTimeout is how long a restart in place waits for the new
	// process to be ready; past it the new one is killed and the old one
	// keeps serving.
	RestartTimeout time.Duration `yaml:"restart_timeout"`
	// AppsStore is where the apps live (docs/apps.md): "config" (the apps
	// below and HERALD_APP_*), or a database URL whose scheme picks the
	// driver: postgres://, mysql://, sqlite:///path/file.db.
	AppsStore string `yaml:"apps_store"`
	// AppsCacheTTL is how long a node serves an app looked up in a
	// database store before asking again: a change reaches every node
	// within it.
	AppsCacheTTL time.Duration `yaml:"apps_cache_ttl"`
	// Apps are the statically configured apps. With the config store Load
	// never returns an empty list: with none configured it falls back to
	// DevApp. With a database store it is empty.
	Apps []apps.App `yaml:"apps"`
}

// Default returns the configuration Herald runs with when nothing is
// configured: every server setting at its default and the development app.
func Default() *Config {
	c := defaultServer()
	c.Apps = []apps.App{DevApp()}
	c.Host = "127.0.0.1" // as Load does for the development app
	return c
}

// defaultServer is Default without any app, the base a config file builds on.
func defaultServer() *Config {
	return &Config{
		Host:                      "0.0.0.0",
		Port:                      6001,
		LogLevel:                  "info",
		LogFormat:                 "auto",
		ShutdownTimeout:           10 * time.Second,
		MaxRequestBodyKB:          1024,
		MaxMessageSizeKB:          100,
		WriteQueueKB:              1024,
		CacheTTL:                  1800 * time.Second,
		SubscriptionCountInterval: time.Second,
		APITimestampWindow:        600 * time.Second,
		RedisPrefix:               "herald:",
		RedisLease:                10 * time.Second,
		WebhookBatchWindow:        250 * time.Millisecond,
		WebhookBatchSize:          20,
		WebhookTimeout:            4 * time.Second,
		WebhookRetryFor:           5 * time.Minute,
		WebhookBackoffMin:         time.Second,
		WebhookBackoffMax:         30 * time.Second,
		WebhookQueueSize:          10000,
		WebhookMaxPending:         10000,
		WebhookQueueMB:            64,
		WebhookWorkers:            4,
		WebhookPresenceDelay:      3 * time.Second,
		TLSReloadInterval:         5 * time.Second,
		ACMEDomains:               []string{},
		ACMEDirectoryURL:          DefaultACMEDirectoryURL,
		HandshakeTimeout:          10 * time.Second,
		HTTPRequestTimeout:        10 * time.Second,
		MaxNodeConnections:        -1,
		IPConnectionsPerSecond:    20,
		IPConnectionsBurst:        100,
		TrustedProxies:            []string{},
		MemoryGuardPercent:        90,
		AppsStore:                 "config",
		AppsCacheTTL:              5 * time.Second,
		RestartTimeout:            DefaultRestartTimeout,
		// 50 messages a second with bursts of 200: a page that
		// subscribes to a few hundred channels at load passes.
		ConnectionMessagesPerSecond: 50,
		ConnectionMessagesBurst:     200,
		ConnectionPendingMessages:   256,
		MaxWorkers:                  1024,
	}
}

// The development app's credentials are the ones soketi and the Pusher
// examples use, so that a client works against a fresh Herald unchanged.
const (
	devAppID     = "app-id"
	devAppKey    = "app-key"
	devAppSecret = "app-secret"
)

// DevApp returns the app Herald serves when no app is configured: id app-id,
// key app-key, secret app-secret, client messages and subscription counts on.
// Its secret is public, so it is only fit for development (see UsesDevApp).
func DevApp() apps.App {
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = devAppID, devAppKey, devAppSecret
	a.EnableClientMessages = true
	a.EnableSubscriptionCount = true
	return a
}

// UsesDevApp reports whether the first app has the development app's
// well-known secret, as when Load fell back to DevApp because no app was
// configured. Anyone can sign requests for such an app, so the server should
// warn. Only the first app is considered so that a caller may print
// Apps[0]'s secret when this is true without ever printing a real one.
func (c *Config) UsesDevApp() bool {
	return !c.DatabaseApps() && len(c.Apps) > 0 && c.Apps[0].Secret == devAppSecret
}

// DatabaseApps reports whether apps_store names a database rather than
// the config.
func (c *Config) DatabaseApps() bool {
	return c.AppsStore != "" && c.AppsStore != "config"
}

// Addr is the main listener's address, host:port.
func (c *Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// DevAppLoopbackOnly reports whether the development app is served on a
// loopback address only (see Host).
func (c *Config) DevAppLoopbackOnly() bool {
	if !c.UsesDevApp() {
		return false
	}
	ip := net.ParseIP(c.Host)
	return c.Host == "localhost" || ip != nil && ip.IsLoopback()
}

// TLSEnabled reports whether the main listener serves TLS (from files or
// through ACME).
func (c *Config) TLSEnabled() bool { return c.TLSCert != "" && c.TLSKey != "" || c.ACMEEnabled() }

// MaxRequestBodyBytes is MaxRequestBodyKB in bytes.
func (c *Config) MaxRequestBodyBytes() int { return c.MaxRequestBodyKB * 1024 }

// MaxMessageSizeBytes is MaxMessageSizeKB in bytes.
func (c *Config) MaxMessageSizeBytes() int { return c.MaxMessageSizeKB * 1024 }

// WriteQueueBytes is WriteQueueKB in bytes.
func (c *Config) WriteQueueBytes() int { return c.WriteQueueKB * 1024 }

// MinAdminTokenLength is the shortest admin_token accepted: the dashboard
// login is open to anyone who can reach the port.
const MinAdminTokenLength = 16
