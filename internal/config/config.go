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
// apps. Each field is one key of the table in settings.go, which says what
// it means, its default, the values it takes and its flag help; the YAML
// keys are the snake_case names in the field tags, and every top-level key
// except apps can also be set with HERALD_<UPPER_SNAKE> and a --kebab-case
// flag.
type Config struct {
	Host                      string        `yaml:"host"`
	Port                      int           `yaml:"port"`
	PathPrefix                string        `yaml:"path_prefix"`
	LogLevel                  string        `yaml:"log_level"`
	LogFormat                 string        `yaml:"log_format"`
	ShutdownTimeout           time.Duration `yaml:"shutdown_timeout"`
	MaxRequestBodyKB          int           `yaml:"max_request_body_kb"`
	MaxMessageSizeKB          int           `yaml:"max_message_size_kb"`
	WriteQueueKB              int           `yaml:"write_queue_kb"`
	CacheTTL                  time.Duration `yaml:"cache_ttl"`
	SubscriptionCountInterval time.Duration `yaml:"subscription_count_interval"`
	APITimestampWindow        time.Duration `yaml:"api_timestamp_window"`
	RedisURL                  string        `yaml:"redis_url"`
	RedisMode                 string        `yaml:"redis_mode"`
	RedisPrefix               string        `yaml:"redis_prefix"`
	RedisLease                time.Duration `yaml:"redis_lease"`
	AdminToken                string        `yaml:"admin_token"`
	DevAppPublic              bool          `yaml:"dev_app_public"`
	MetricsAddr               string        `yaml:"metrics_addr"`
	TLSCert                   string        `yaml:"tls_cert"`
	TLSKey                    string        `yaml:"tls_key"`

	// Webhook delivery, for every app (docs/webhooks.md).
	WebhookBatchWindow   time.Duration `yaml:"webhook_batch_window"`
	WebhookBatchSize     int           `yaml:"webhook_batch_size"`
	WebhookTimeout       time.Duration `yaml:"webhook_timeout"`
	WebhookRetryFor      time.Duration `yaml:"webhook_retry_for"`
	WebhookBackoffMin    time.Duration `yaml:"webhook_backoff_min"`
	WebhookBackoffMax    time.Duration `yaml:"webhook_backoff_max"`
	WebhookQueueSize     int           `yaml:"webhook_queue_size"`
	WebhookMaxPending    int           `yaml:"webhook_max_pending"`
	WebhookQueueMB       int           `yaml:"webhook_queue_mb"`
	HistoryMemoryMB      int           `yaml:"history_memory_mb"`
	WebhookWorkers       int           `yaml:"webhook_workers"`
	WebhookPresenceDelay time.Duration `yaml:"webhook_presence_delay"`

	TLSReloadInterval time.Duration `yaml:"tls_reload_interval"`

	// ACME (acme.go): automatic certificates instead of tls_cert/tls_key.
	ACMEDomains      []string `yaml:"acme_domains"`
	ACMEEmail        string   `yaml:"acme_email"`
	ACMECacheDir     string   `yaml:"acme_cache_dir"`
	ACMEDirectoryURL string   `yaml:"acme_directory_url"`
	ACMEHTTPAddr     string   `yaml:"acme_http_addr"`

	// Limits of the node (docs/security.md).
	HandshakeTimeout            time.Duration `yaml:"handshake_timeout"`
	HTTPRequestTimeout          time.Duration `yaml:"http_request_timeout"`
	MaxNodeConnections          int           `yaml:"max_node_connections"`
	IPConnectionsPerSecond      int           `yaml:"ip_connections_per_second"`
	IPConnectionsBurst          int           `yaml:"ip_connections_burst"`
	TrustedProxies              []string      `yaml:"trusted_proxies"`
	IPLimitExempt               []string      `yaml:"ip_limit_exempt"`
	MemoryLimitMB               int           `yaml:"memory_limit_mb"`
	MemoryGuardPercent          int           `yaml:"memory_guard_percent"`
	OutboundBudgetMB            int           `yaml:"outbound_budget_mb"`
	ConnectionMessagesPerSecond int           `yaml:"connection_messages_per_second"`
	ConnectionMessagesBurst     int           `yaml:"connection_messages_burst"`
	ConnectionPendingMessages   int           `yaml:"connection_pending_messages"`
	MaxWorkers                  int           `yaml:"max_workers"`
	SaturationDelay             time.Duration `yaml:"saturation_delay"`

	// Restarts in place (docs/restarts.md).
	PIDFile        string        `yaml:"pid_file"`
	RestartTimeout time.Duration `yaml:"restart_timeout"`

	// Where the apps live (docs/apps.md).
	AppsStore    string        `yaml:"apps_store"`
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
	c.IPLimitExempt = DevAppIPLimitExempt()
	return c
}

// defaultServer is Default without any app, the base a config file builds
// on: every key at its table default.
func defaultServer() *Config {
	c := &Config{}
	serverTable().SetDefaults(c)
	return c
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

// DevAppIPLimitExempt is ip_limit_exempt's value when Herald serves the
// development app and the key is not set: the loopback, so that a
// developer's page reloads and local load tests (bin/herald-bench opens
// thousands of connections from 127.0.0.1) are not refused.
func DevAppIPLimitExempt() []string { return []string{"127.0.0.0/8", "::1"} }

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
