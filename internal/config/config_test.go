package config

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// writeConfig writes a YAML file into a fresh temp dir and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env turns a map into a Source.Env.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustLoad(t *testing.T, src Source) *Config {
	t.Helper()
	c, err := Load(src)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, Source{})
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load(Source{}) = %+v, want Default() %+v", c, Default())
	}
	want := &Config{
		Host: "127.0.0.1", Port: 6001, LogLevel: "info", LogFormat: "auto",
		ShutdownTimeout: 10 * time.Second, MaxRequestBodyKB: 1024, MaxMessageSizeKB: 100,
		WriteQueueKB: 1024, CacheTTL: 1800 * time.Second, SubscriptionCountInterval: time.Second,
		APITimestampWindow: 600 * time.Second, RedisMode: "single", RedisPrefix: "herald:", RedisLease: 10 * time.Second,
		TLSReloadInterval: 5 * time.Second, HandshakeTimeout: 10 * time.Second, HTTPRequestTimeout: 10 * time.Second, MaxNodeConnections: -1,
		IPConnectionsPerSecond: 20, IPConnectionsBurst: 100, TrustedProxies: []string{}, IPLimitExempt: DevAppIPLimitExempt(), MemoryGuardPercent: 90,
		ConnectionMessagesPerSecond: 50, ConnectionMessagesBurst: 200, ConnectionPendingMessages: 256, MaxWorkers: 1024,
		ACMEDomains: []string{}, ACMEDirectoryURL: DefaultACMEDirectoryURL,
		AppsStore: "config", AppsCacheTTL: 5 * time.Second,
		RestartTimeout: time.Minute,
		Apps:           []apps.App{DevApp()},
	}
	setWebhookDefaults(want)
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults = %+v, want %+v", c, want)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := c.Addr(); got != "127.0.0.1:6001" {
		t.Errorf("Addr() = %q", got)
	}
	if c.TLSEnabled() {
		t.Error("TLSEnabled() = true by default")
	}
	if c.MaxRequestBodyBytes() != 1024*1024 || c.MaxMessageSizeBytes() != 100*1024 || c.WriteQueueBytes() != 1024*1024 {
		t.Error("byte helpers disagree with the KB fields")
	}
}

func TestDevApp(t *testing.T) {
	d := DevApp()
	want := apps.Defaults()
	want.ID, want.Key, want.Secret = "app-id", "app-key", "app-secret"
	want.EnableClientMessages, want.EnableSubscriptionCount = true, true
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("DevApp() = %+v, want %+v", d, want)
	}

	tests := []struct {
		name    string
		yaml    string // "" = no file
		env     map[string]string
		wantDev bool
	}{
		{name: "no file", wantDev: true},
		{name: "empty file", yaml: "\n", wantDev: true},
		{name: "comments only", yaml: "# nothing\n", wantDev: true},
		{name: "file without apps", yaml: "port: 7000\n", wantDev: true},
		{name: "empty apps list", yaml: "apps: []\n", wantDev: true},
		{name: "null apps", yaml: "apps:\n", wantDev: true},
		{name: "app settings from env keep the dev app", env: map[string]string{"HERALD_APP_MAX_CONNECTIONS": "5"}, wantDev: true},
		{name: "configured app", yaml: "apps: [{id: a, key: b, secret: c}]\n"},
		{name: "app identity from env", env: map[string]string{"HERALD_APP_ID": "1", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := Source{Env: env(tt.env)}
			if tt.yaml != "" {
				src.File = writeConfig(t, tt.yaml)
			}
			c := mustLoad(t, src)
			if c.UsesDevApp() != tt.wantDev {
				t.Fatalf("UsesDevApp() = %v, want %v (apps %+v)", c.UsesDevApp(), tt.wantDev, c.Apps)
			}
			if len(c.Apps) != 1 {
				t.Fatalf("got %d apps, want 1", len(c.Apps))
			}
			if tt.wantDev && (c.Apps[0].ID != "app-id" || !c.Apps[0].EnableClientMessages || !c.Apps[0].EnableSubscriptionCount) {
				t.Fatalf("dev app = %+v", c.Apps[0])
			}
		})
	}
}

func TestFileOverrides(t *testing.T) {
	p := writeConfig(t, `
host: 127.0.0.1
port: 7000
path_prefix: /ws
log_level: debug
log_format: json
shutdown_timeout: 30s
max_request_body_kb: 2048
max_message_size_kb: 64
write_queue_kb: 512
cache_ttl: 1h
subscription_count_interval: 500ms
api_timestamp_window: 300
redis_url: redis://127.0.0.1:6379/0
redis_prefix: "staging:"
admin_token: tok-0123456789abcdef
metrics_addr: 127.0.0.1:9601
apps:
  - id: "1"
    key: key-one
    secret: secret-one
  - id: chat
    key: chat-key
    secret: chat-secret
    enabled: false
    max_connections: 500
    enable_client_messages: true
    client_events_per_second: -1
    allowed_origins: ["https://example.com", "*.example.org"]
    activity_timeout: 60
    user_authentication_timeout: 1m
    webhooks:
      - url: https://hooks.example.com/pusher
        event_types: [channel_occupied, channel_vacated]
        headers: {Authorization: Bearer x}
        filter: {channel_name_starts_with: presence-}
`)
	c := mustLoad(t, Source{File: p})
	want := &Config{
		Host: "127.0.0.1", Port: 7000, PathPrefix: "/ws", LogLevel: "debug", LogFormat: "json",
		ShutdownTimeout: 30 * time.Second, MaxRequestBodyKB: 2048, MaxMessageSizeKB: 64, WriteQueueKB: 512,
		CacheTTL: time.Hour, SubscriptionCountInterval: 500 * time.Millisecond, APITimestampWindow: 300 * time.Second,
		RedisURL: "redis://127.0.0.1:6379/0", RedisMode: "single", RedisPrefix: "staging:", RedisLease: 10 * time.Second, AdminToken: "tok-0123456789abcdef", MetricsAddr: "127.0.0.1:9601",
		TLSReloadInterval: 5 * time.Second, HandshakeTimeout: 10 * time.Second, HTTPRequestTimeout: 10 * time.Second, MaxNodeConnections: -1,
		IPConnectionsPerSecond: 20, IPConnectionsBurst: 100, TrustedProxies: []string{}, IPLimitExempt: []string{}, MemoryGuardPercent: 90,
		ConnectionMessagesPerSecond: 50, ConnectionMessagesBurst: 200, ConnectionPendingMessages: 256, MaxWorkers: 1024,
		ACMEDomains: []string{}, ACMEDirectoryURL: DefaultACMEDirectoryURL,
		AppsStore: "config", AppsCacheTTL: 5 * time.Second,
		RestartTimeout: time.Minute,
	}
	first := apps.Defaults()
	first.ID, first.Key, first.Secret = "1", "key-one", "secret-one"
	second := apps.Defaults()
	second.ID, second.Key, second.Secret = "chat", "chat-key", "chat-secret"
	second.Enabled = false
	second.MaxConnections = 500
	second.EnableClientMessages = true
	second.ClientEventsPerSecond = -1
	second.AllowedOrigins = []string{"https://example.com", "*.example.org"}
	second.ActivityTimeout = time.Minute
	second.UserAuthenticationTimeout = time.Minute
	second.Webhooks = []apps.Webhook{{
		URL:        "https://hooks.example.com/pusher",
		EventTypes: []string{"channel_occupied", "channel_vacated"},
		Headers:    map[string]string{"Authorization": "Bearer x"},
		Filter:     apps.WebhookFilter{ChannelNameStartsWith: "presence-"},
	}}
	want.Apps = []apps.App{first, second}
	setWebhookDefaults(want)
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
	if c.UsesDevApp() {
		t.Error("UsesDevApp() = true with configured apps")
	}
}

func TestMergeKeys(t *testing.T) {
	p := writeConfig(t, `
apps:
  - &base
    id: a
    key: a-key
    secret: a-secret
    max_connections: 10
    enable_client_messages: true
  - <<: *base
    id: b
    key: b-key
`)
	c := mustLoad(t, Source{File: p})
	b := c.Apps[1]
	if b.ID != "b" || b.Key != "b-key" || b.Secret != "a-secret" || b.MaxConnections != 10 || !b.EnableClientMessages {
		t.Fatalf("merged app = %+v", b)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeConfig(t, "port: 7000\nlog_level: debug\nredis_prefix: \"file:\"\nadmin_token: from-file-0123456789\n")
	tests := []struct {
		name     string
		env      map[string]string
		flags    map[string]string
		port     int
		level    string
		prefix   string
		adminTok string
	}{
		{name: "file over defaults", port: 7000, level: "debug", prefix: "file:", adminTok: "from-file-0123456789"},
		{name: "env over file", env: map[string]string{"HERALD_PORT": "7001", "HERALD_ADMIN_TOKEN": "from-env-0123456789"},
			port: 7001, level: "debug", prefix: "file:", adminTok: "from-env-0123456789"},
		{name: "flags over env", env: map[string]string{"HERALD_PORT": "7001", "HERALD_LOG_LEVEL": "warn"},
			flags: map[string]string{"port": "7002", "redis_prefix": "flag:"}, port: 7002, level: "warn", prefix: "flag:", adminTok: "from-file-0123456789"},
		{name: "empty env counts as unset", env: map[string]string{"HERALD_PORT": "", "HERALD_ADMIN_TOKEN": ""},
			port: 7000, level: "debug", prefix: "file:", adminTok: "from-file-0123456789"},
		{name: "explicit empty flag clears", flags: map[string]string{"admin_token": ""},
			port: 7000, level: "debug", prefix: "file:", adminTok: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, Source{File: file, Env: env(tt.env), Flags: tt.flags})
			if c.Port != tt.port || c.LogLevel != tt.level || c.RedisPrefix != tt.prefix || c.AdminToken != tt.adminTok {
				t.Fatalf("port %d level %q prefix %q token %q; want %d %q %q %q",
					c.Port, c.LogLevel, c.RedisPrefix, c.AdminToken, tt.port, tt.level, tt.prefix, tt.adminTok)
			}
		})
	}
}

func TestEveryTopLevelKeyFromEnvAndFlag(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "herald.pid")
	values := map[string]string{
		"host": "127.0.0.2", "port": "7100", "path_prefix": "/rt", "log_level": "error", "log_format": "text",
		"shutdown_timeout": "3", "max_request_body_kb": "10", "max_message_size_kb": "11", "write_queue_kb": "12",
		"cache_ttl": "5m", "subscription_count_interval": "2s", "api_timestamp_window": "60",
		"redis_url": "rediss://h:6380?addr=h2:6380", "redis_mode": "cluster", "redis_prefix": "p:", "redis_lease": "4s", "admin_token": "t-0123456789abcdef", "metrics_addr": ":9601", "dev_app_public": "true",
		"webhook_batch_window": "100ms", "webhook_batch_size": "5", "webhook_timeout": "2s", "webhook_retry_for": "1m",
		"webhook_backoff_min": "200ms", "webhook_backoff_max": "10s", "webhook_queue_size": "50", "webhook_max_pending": "60", "webhook_queue_mb": "8", "history_memory_mb": "16", "webhook_workers": "2", "webhook_presence_delay": "1s",
		"tls_cert": "", "tls_key": "", "tls_reload_interval": "2s", "handshake_timeout": "3s", "http_request_timeout": "4s",
		"max_node_connections": "1000", "ip_connections_per_second": "5", "ip_connections_burst": "7",
		"trusted_proxies": "10.0.0.0/8, 192.168.1.1", "ip_limit_exempt": "10.0.0.0/8, ::1", "memory_limit_mb": "512", "memory_guard_percent": "80",
		"outbound_budget_mb": "64", "connection_messages_per_second": "30", "connection_messages_burst": "60",
		"connection_pending_messages": "40", "max_workers": "100", "saturation_delay": "20ms",
		"acme_domains": "ws.example.com, rt.example.org", "acme_email": "ops@example.com", "acme_cache_dir": "/var/lib/herald/acme",
		"acme_directory_url": "https://acme-staging-v02.api.letsencrypt.org/directory", "acme_http_addr": ":80",
		"apps_store": "sqlite:///var/lib/herald/apps.db", "apps_cache_ttl": "2s",
		"pid_file": pidFile, "restart_timeout": "20s",
	}
	want := &Config{
		Host: "127.0.0.2", Port: 7100, PathPrefix: "/rt", LogLevel: "error", LogFormat: "text",
		ShutdownTimeout: 3 * time.Second, MaxRequestBodyKB: 10, MaxMessageSizeKB: 11, WriteQueueKB: 12,
		CacheTTL: 5 * time.Minute, SubscriptionCountInterval: 2 * time.Second, APITimestampWindow: time.Minute,
		RedisURL: "rediss://h:6380?addr=h2:6380", RedisMode: "cluster", RedisPrefix: "p:", RedisLease: 4 * time.Second, AdminToken: "t-0123456789abcdef", MetricsAddr: ":9601", DevAppPublic: true,
		WebhookBatchWindow: 100 * time.Millisecond, WebhookBatchSize: 5, WebhookTimeout: 2 * time.Second, WebhookRetryFor: time.Minute,
		WebhookBackoffMin: 200 * time.Millisecond, WebhookBackoffMax: 10 * time.Second, WebhookQueueSize: 50, WebhookMaxPending: 60, WebhookQueueMB: 8, HistoryMemoryMB: 16, WebhookWorkers: 2, WebhookPresenceDelay: time.Second,
		TLSReloadInterval: 2 * time.Second, HandshakeTimeout: 3 * time.Second, HTTPRequestTimeout: 4 * time.Second, MaxNodeConnections: 1000,
		IPConnectionsPerSecond: 5, IPConnectionsBurst: 7, TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1"},
		IPLimitExempt: []string{"10.0.0.0/8", "::1"}, MemoryLimitMB: 512, MemoryGuardPercent: 80,
		OutboundBudgetMB: 64, ConnectionMessagesPerSecond: 30, ConnectionMessagesBurst: 60, ConnectionPendingMessages: 40, MaxWorkers: 100, SaturationDelay: 20 * time.Millisecond,
		ACMEDomains: []string{"ws.example.com", "rt.example.org"}, ACMEEmail: "ops@example.com", ACMECacheDir: "/var/lib/herald/acme",
		ACMEDirectoryURL: "https://acme-staging-v02.api.letsencrypt.org/directory", ACMEHTTPAddr: ":80",
		AppsStore: "sqlite:///var/lib/herald/apps.db", AppsCacheTTL: 2 * time.Second,
		PIDFile: pidFile, RestartTimeout: 20 * time.Second,
	}
	keys := scalarKeys()
	if len(keys) != len(values) {
		t.Fatalf("test covers %d keys, Config has %d scalar keys: %v", len(values), len(keys), keys)
	}
	envVars := map[string]string{}
	for k, v := range values {
		envVars["HERALD_"+strings.ToUpper(k)] = v
	}
	if c := mustLoad(t, Source{Env: env(envVars)}); !reflect.DeepEqual(c, want) {
		t.Errorf("from env:\n%+v\nwant\n%+v", c, want)
	}
	if c := mustLoad(t, Source{Flags: values}); !reflect.DeepEqual(c, want) {
		t.Errorf("from flags:\n%+v\nwant\n%+v", c, want)
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		raw  string
		want time.Duration
	}{
		{"90", 90 * time.Second},
		{"0", 0},
		{"90s", 90 * time.Second},
		{"2m", 2 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1500ms", 1500 * time.Millisecond},
		{`"45"`, 45 * time.Second}, // quoted in YAML: still seconds
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c := mustLoad(t, Source{File: writeConfig(t, "shutdown_timeout: "+tt.raw+"\n")})
			if c.ShutdownTimeout != tt.want {
				t.Errorf("file: got %v, want %v", c.ShutdownTimeout, tt.want)
			}
			raw := strings.Trim(tt.raw, `"`)
			c = mustLoad(t, Source{Env: env(map[string]string{"HERALD_SHUTDOWN_TIMEOUT": raw})})
			if c.ShutdownTimeout != tt.want {
				t.Errorf("env: got %v, want %v", c.ShutdownTimeout, tt.want)
			}
			c = mustLoad(t, Source{Flags: map[string]string{"shutdown_timeout": raw}})
			if c.ShutdownTimeout != tt.want {
				t.Errorf("flag: got %v, want %v", c.ShutdownTimeout, tt.want)
			}
		})
	}

	// Per-app durations, in the file and through HERALD_APP_*.
	c := mustLoad(t, Source{File: writeConfig(t, `
apps:
  - {id: a, key: a, secret: s, activity_timeout: 60, user_authentication_timeout: 45}
  - {id: b, key: b, secret: s, activity_timeout: 2m, user_authentication_timeout: 10s}
`)})
	if c.Apps[0].ActivityTimeout != time.Minute || c.Apps[0].UserAuthenticationTimeout != 45*time.Second ||
		c.Apps[1].ActivityTimeout != 2*time.Minute || c.Apps[1].UserAuthenticationTimeout != 10*time.Second {
		t.Errorf("app durations: %v %v %v %v", c.Apps[0].ActivityTimeout, c.Apps[0].UserAuthenticationTimeout,
			c.Apps[1].ActivityTimeout, c.Apps[1].UserAuthenticationTimeout)
	}
	c = mustLoad(t, Source{Env: env(map[string]string{"HERALD_APP_ACTIVITY_TIMEOUT": "60", "HERALD_APP_USER_AUTHENTICATION_TIMEOUT": "1m"})})
	if c.Apps[0].ActivityTimeout != time.Minute || c.Apps[0].UserAuthenticationTimeout != time.Minute {
		t.Errorf("env app durations: %v %v", c.Apps[0].ActivityTimeout, c.Apps[0].UserAuthenticationTimeout)
	}
}

func TestAppEnv(t *testing.T) {
	file := writeConfig(t, `
apps:
  - {id: one, key: one-key, secret: one-secret}
  - {id: two, key: two-key, secret: two-secret}
`)
	c := mustLoad(t, Source{File: file, Env: env(map[string]string{
		"HERALD_APP_ID":                            "uno",
		"HERALD_APP_SECRET":                        "uno-secret",
		"HERALD_APP_ENABLE_CLIENT_MESSAGES":        "true",
		"HERALD_APP_MAX_CONNECTIONS":               "500",
		"HERALD_APP_ACTIVITY_TIMEOUT":              "60",
		"HERALD_APP_ALLOWED_ORIGINS":               "https://a.example, *.b.example ,",
		"HERALD_APP_ENABLED":                       "off",
		"HERALD_APP_MAX_BACKEND_EVENTS_PER_SECOND": "100",
	})})
	a := c.Apps[0]
	if a.ID != "uno" || a.Key != "one-key" || a.Secret != "uno-secret" || !a.EnableClientMessages || a.MaxConnections != 500 ||
		a.ActivityTimeout != time.Minute || a.Enabled || a.MaxBackendEventsPerSecond != 100 ||
		!reflect.DeepEqual(a.AllowedOrigins, []string{"https://a.example", "*.b.example"}) {
		t.Fatalf("first app = %+v", a)
	}
	if b := c.Apps[1]; b.ID != "two" || b.MaxConnections != -1 || b.EnableClientMessages {
		t.Fatalf("second app changed: %+v", b)
	}

	// Without any app, the identity variables create one from apps.Defaults().
	c = mustLoad(t, Source{Env: env(map[string]string{"HERALD_APP_ID": "1", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s"})})
	want := apps.Defaults()
	want.ID, want.Key, want.Secret = "1", "k", "s"
	if !reflect.DeepEqual(c.Apps, []apps.App{want}) {
		t.Fatalf("apps from env = %+v", c.Apps)
	}

	// Only part of the identity: the missing variables are named.
	_, err := Load(Source{Env: env(map[string]string{"HERALD_APP_KEY": "k"})})
	wantErrs(t, err, "env HERALD_APP_ID: must not be empty", "env HERALD_APP_SECRET: must not be empty")

	_, err = Load(Source{Env: env(map[string]string{"HERALD_APP_ENABLE_CLIENT_MESSAGES": "maybe", "HERALD_APP_WEBHOOKS": "[]"})})
	wantErrs(t, err, `env HERALD_APP_ENABLE_CLIENT_MESSAGES: must be true or false, got "maybe"`, "env HERALD_APP_WEBHOOKS: ")
}

// wantErrs fails unless err contains every fragment, each in some line.
func wantErrs(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error lacks %q:\n%v", f, err)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	const app = "apps:\n  - {id: a, key: a, secret: s, "
	tests := []struct {
		name string
		yaml string
		want string // after "config FILE line N: "
	}{
		{"port zero", "port: 0", "port: must be a port number 1-65535, got 0"},
		{"port too big", "port: 70000", "port: must be a port number 1-65535, got 70000"},
		{"port not a number", "port: abc", `port: must be a port number 1-65535, got "abc"`},
		{"port is a list", "port: [1]", "port: must be a port number 1-65535, got a list"},
		{"host with port", "host: 0.0.0.0:6001", "host: must be a host name or IP address without a port"},
		{"path prefix no slash", "path_prefix: ws", `path_prefix: must start with "/"`},
		{"path prefix trailing slash", "path_prefix: /ws/", `path_prefix: must start with "/", not end with "/"`},
		{"path prefix pattern chars", "path_prefix: /{x}", `path_prefix: must start with`},
		{"log level", "log_level: loud", `log_level: must be one of debug, info, warn, error, got "loud"`},
		{"log format", "log_format: xml", `log_format: must be one of auto, text, json, got "xml"`},
		{"negative shutdown", "shutdown_timeout: -1s", "shutdown_timeout: must be a duration of 0s or more"},
		{"bad duration", "cache_ttl: soon", `cache_ttl: must be a positive duration (e.g. "30s", "2m", or 30 for seconds), got "soon"`},
		{"float seconds", "cache_ttl: 1.5", `cache_ttl: must be a positive duration`},
		{"zero cache ttl", "cache_ttl: 0", "cache_ttl: must be a positive duration"},
		{"zero interval", "subscription_count_interval: 0s", "subscription_count_interval: must be a positive duration"},
		{"zero window", "api_timestamp_window: 0", "api_timestamp_window: must be a positive duration"},
		{"zero body", "max_request_body_kb: 0", "max_request_body_kb: must be a size in KB between 1 and 1048576, got 0"},
		{"huge message", "max_message_size_kb: 99999999", "max_message_size_kb: must be a size in KB between 1 and 1048576"},
		{"negative queue", "write_queue_kb: -1", "write_queue_kb: must be a size in KB between 1 and 1048576, got -1"},
		{"redis scheme", "redis_url: http://localhost", `redis_url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got scheme "http"`},
		{"redis no host", "redis_url: 'redis://'", "redis_url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got no host"},
		{"redis mode", "redis_mode: ring", `redis_mode: must be one of single, sentinel, cluster`},
		{"sentinel without master", "redis_mode: sentinel\nredis_url: redis://s1:26379", "redis_url: must be a Redis URL for redis_mode sentinel (docs/scaling.md): a sentinel URL needs the primary's name: ?master_name=mymaster"},
		{"cluster with a database", "redis_mode: cluster\nredis_url: redis://h1:7000/2", "redis_url: must be a Redis URL for redis_mode cluster (docs/scaling.md): a Redis Cluster has database 0 only"},
		{"several addresses alone", "redis_url: redis://h1:7000?addr=h2:7001", "redis_url: must be a Redis URL for redis_mode single (docs/scaling.md): several addresses or a master_name need redis_mode sentinel or cluster"},
		{"metrics addr", "metrics_addr: 9601", `metrics_addr: must be host:port`},
		{"short admin token", "admin_token: letmein", "admin_token: must be at least 16 characters (a long random string, e.g. from `openssl rand -hex 24`), got 7"},
		{"trusted proxy", "trusted_proxies: [10.0.0.0/8, nginx]", `trusted_proxies[1]: must be a CIDR (e.g. "10.0.0.0/8") or an IP address, got "nginx"`},
		{"ip limit exemption", "ip_limit_exempt: [127.0.0.1, localhost]", `ip_limit_exempt[1]: must be a CIDR (e.g. "10.0.0.0/8") or an IP address, got "localhost"`},
		{"zero ip rate", "ip_connections_per_second: 0", "ip_connections_per_second: must be -1 (unlimited) or a positive number, got 0"},
		{"unlimited burst", "ip_connections_burst: -1", "ip_connections_burst: must be a positive number, got -1"},
		{"guard percent", "memory_guard_percent: 150", "memory_guard_percent: must be -1 (off) or a percentage between 1 and 100, got 150"},
		{"negative memory", "memory_limit_mb: -5", "memory_limit_mb: must be 0 (GOMEMLIMIT, else the cgroup limit) or a size in MB, got -5"},
		{"zero handshake", "handshake_timeout: 0", "handshake_timeout: must be a duration between 1s and 5m"},
		{"zero channels", app + "max_channels_per_connection: 0}", "apps[0].max_channels_per_connection: must be -1 (unlimited) or a positive number, got 0"},
		{"metrics on main port", "metrics_addr: ':6001'", "metrics_addr: must not be the main listener's address"},
		{"apps not a list", "apps: {id: a}", "apps: must be a list, got a mapping"},
		{"app not a mapping", "apps: [a]", `apps[0]: must be a mapping of keys to values, got "a"`},
		{"empty id", "apps:\n  - {key: a, secret: s}", "apps[0].id: must not be empty"},
		{"empty key", "apps:\n  - {id: a, secret: s}", "apps[0].key: must not be empty"},
		{"empty secret", "apps:\n  - {id: a, key: a}", "apps[0].secret: must not be empty"},
		{"id chars", "apps:\n  - {id: a/b, key: a, secret: s}", `apps[0].id: must use only letters, digits and "_.-" (it appears in URL paths), got "a/b"`},
		{"key chars", "apps:\n  - {id: a, key: 'a b', secret: s}", `apps[0].key: must use only letters, digits and "_.-"`},
		{"max connections zero", app + "max_connections: 0}", "apps[0].max_connections: must be -1 (unlimited) or a positive number, got 0"},
		{"max connections -2", app + "max_connections: -2}", "apps[0].max_connections: must be -1 (unlimited) or a positive number, got -2"},
		{"client events zero", app + "client_events_per_second: 0}", "apps[0].client_events_per_second: must be -1 (unlimited) or a positive number, got 0 (to turn client events off, set enable_client_messages: false)"},
		{"backend rate zero", app + "max_backend_events_per_second: 0}", "apps[0].max_backend_events_per_second: must be -1 (unlimited) or a positive number, got 0"},
		{"read rate zero", app + "max_read_requests_per_second: 0}", "apps[0].max_read_requests_per_second: must be -1 (unlimited) or a positive number, got 0"},
		{"presence members -1", app + "max_presence_members: -1}", "apps[0].max_presence_members: must be a positive number, got -1"},
		{"member size", app + "max_presence_member_size_kb: 0}", "apps[0].max_presence_member_size_kb: must be a size in KB"},
		{"channel name length", app + "max_channel_name_length: 0}", "apps[0].max_channel_name_length: must be a positive number, got 0"},
		{"channels at once", app + "max_event_channels_at_once: 0}", "apps[0].max_event_channels_at_once: must be a positive number"},
		{"event name length", app + "max_event_name_length: 0}", "apps[0].max_event_name_length: must be a positive number"},
		{"payload", app + "max_event_payload_kb: 0}", "apps[0].max_event_payload_kb: must be a size in KB"},
		{"batch", app + "max_event_batch_size: 0}", "apps[0].max_event_batch_size: must be a positive number"},
		{"bool", app + "enabled: maybe}", `apps[0].enabled: must be true or false, got "maybe"`},
		{"activity too short", app + "activity_timeout: 0}", "apps[0].activity_timeout: must be a duration between 1s and 1h (e.g. \"30s\", \"2m\", or 30 for seconds), got 0s"},
		{"activity too long", app + "activity_timeout: 2h}", "apps[0].activity_timeout: must be a duration between 1s and 1h"},
		{"activity fraction", app + "activity_timeout: 1500ms}", "apps[0].activity_timeout: must be a whole number of seconds"},
		{"user auth timeout", app + "user_authentication_timeout: 0}", "apps[0].user_authentication_timeout: must be a duration between 1s and 1h"},
		{"no origins", app + "allowed_origins: []}", `apps[0].allowed_origins: must list at least one origin; use ["*"] to allow any`},
		{"blank origin", app + "allowed_origins: ['']}", `apps[0].allowed_origins[0]: must be an origin`},
		{"webhook scheme", app + "webhooks: [{url: 'ftp://x', event_types: [client_event]}]}", `apps[0].webhooks[0].url: must be an http:// or https:// URL, got scheme "ftp"`},
		{"webhook no url", app + "webhooks: [{event_types: [client_event]}]}", `apps[0].webhooks[0].url: must be an http:// or https:// URL, got nothing`},
		{"webhook no host", app + "webhooks: [{url: 'http:///x', event_types: [client_event]}]}", `apps[0].webhooks[0].url: must be an http:// or https:// URL with a host`},
		{"webhook bad url", app + "webhooks: [{url: 'http://[::1', event_types: [client_event]}]}", `apps[0].webhooks[0].url: must be an http:// or https:// URL; it does not parse as a URL`},
		{"webhook no events", app + "webhooks: [{url: 'https://x'}]}", `apps[0].webhooks[0].event_types: must list at least one of channel_occupied`},
		{"webhook bad event", app + "webhooks: [{url: 'https://x', event_types: [channel_created]}]}", `apps[0].webhooks[0].event_types[0]: must be one of channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, subscription_count, got "channel_created"`},
		{"webhook reserved header", app + "webhooks: [{url: 'https://x', event_types: [client_event], headers: {x-pusher-signature: a}}]}", `apps[0].webhooks[0].headers.x-pusher-signature: is set by Herald`},
		{"webhook header name", app + "webhooks: [{url: 'https://x', event_types: [client_event], headers: {'a(b': a}}]}", `apps[0].webhooks[0].headers.a(b: "a(b" is not a valid HTTP header name`},
		{"webhook header with space", app + "webhooks: [{url: 'https://x', event_types: [client_event], headers: {'a b': a}}]}", `apps[0].webhooks[0].headers.a…: "a…" is not a valid HTTP header name`},
		{"key with space", "apps:\n  - {id: a, key: a, secret: s, enabled false}", `apps[0]: unknown key "enabled…" (a missing ":" after the key?)`},
		{"webhook header value", app + "webhooks: [{url: 'https://x', event_types: [client_event], headers: {A: \"x\\r\\nB: y\"}}]}", `apps[0].webhooks[0].headers.A: value must not contain line breaks`},
		{"webhook filter type", app + "webhooks: [{url: 'https://x', event_types: [client_event], filter: [a]}]}", `apps[0].webhooks[0].filter: must be a mapping of keys to values, got a list`},
		{"duplicate id", "apps:\n  - {id: a, key: a, secret: s}\n  - {id: a, key: b, secret: s}", `line 3: apps[1].id: "a" is already the id of apps[0]; ids must be unique`},
		{"duplicate key", "apps:\n  - {id: a, key: k, secret: s}\n  - {id: b, key: k, secret: s}", `line 3: apps[1].key: "k" is already the key of apps[0]; keys must be unique`},
		{"duplicate yaml key", "port: 1\nport: 2", `line 2: port: set twice (first on line 1)`},
		{"not a mapping", "- a\n- b", `line 1: must be a mapping of keys to values, got a list`},
		{"syntax", "port: [1\n", `invalid YAML: `},
		{"tab syntax", "port:\n\t- 1", `line 2: invalid YAML: found character that cannot start any token`},
		{"two documents", "port: 1\n---\nport: 2\n", `line 2: a second YAML document`},
		{"merge non-mapping", "<<: 1\n", `<< must merge a mapping or a list of mappings, got "1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.yaml+"\n")
			_, err := Load(Source{File: p})
			if err == nil {
				t.Fatalf("no error for %q", tt.yaml)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config "+p) {
				t.Errorf("error does not start with the file name:\n%s", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error lacks %q:\n%s", tt.want, msg)
			}
			if n := strings.Count(msg, "\n") + 1; n != 1 {
				t.Errorf("want one error, got %d:\n%s", n, msg)
			}
		})
	}
}

func TestErrorsFormat(t *testing.T) {
	p := writeConfig(t, "port: 6001\napps:\n  - id: a\n    key: a\n    secret: s\n  - id: b\n    key: b\n    secret: s\n    max_connections: 0\n")
	_, err := Load(Source{File: p})
	if got, want := err.Error(), "config "+p+" line 9: apps[1].max_connections: must be -1 (unlimited) or a positive number, got 0"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	_, err = Load(Source{Env: env(map[string]string{"HERALD_PORT": "abc"})})
	if got, want := err.Error(), `env HERALD_PORT: must be a port number 1-65535, got "abc"`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, err = Load(Source{Env: env(map[string]string{"HERALD_PORT": "0"})})
	if got, want := err.Error(), `env HERALD_PORT: must be a port number 1-65535, got 0`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, err = Load(Source{Flags: map[string]string{"port": "99999"}})
	if got, want := err.Error(), `flag --port: must be a port number 1-65535, got 99999`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, err = Load(Source{Flags: map[string]string{"shutdown_timeout": "later"}})
	if got, want := err.Error(), `flag --shutdown-timeout: must be a duration of 0s or more (e.g. "30s", "2m", or 30 for seconds), got "later"`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	_, err = Load(Source{Flags: map[string]string{"nope": "1", FlagConfig: "x.yaml"}})
	wantErrs(t, err, `flag --nope: "nope" is not a config key`, "flag --config: ")

	// A key that was never set is blamed on the config as a whole.
	c := Default()
	c.Apps[0].MaxConnections = 0
	if got, want := c.Validate().Error(), "config: apps[0].max_connections: must be -1 (unlimited) or a positive number, got 0"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	c.Apps = nil
	wantErrs(t, c.Validate(), "config: apps: must list at least one app")
}

func TestAllErrorsAtOnce(t *testing.T) {
	p := writeConfig(t, `
port: 0
log_level: loud
apps:
  - {id: a, key: a, secret: s, max_connections: 0}
  - {id: a, key: 'b/c', secret: s}
`)
	_, err := Load(Source{File: p, Env: env(map[string]string{"HERALD_CACHE_TTL": "never"}), Flags: map[string]string{"write_queue_kb": "0"}})
	wantErrs(t, err,
		"line 2: port:", "line 3: log_level:", "line 5: apps[0].max_connections:",
		"line 6: apps[1].id:", "line 6: apps[1].key:",
		"env HERALD_CACHE_TTL: must be a positive duration", "flag --write-queue-kb: must be a size in KB")
	if n := strings.Count(err.Error(), "\n") + 1; n != 7 {
		t.Errorf("want 7 errors, got %d:\n%v", n, err)
	}
	var fe *fieldError
	if !errors.As(err, &fe) {
		t.Errorf("errors.As(*fieldError) failed")
	}
}

func TestLaterSourceFixesEarlierValue(t *testing.T) {
	// A bad file value is still reported, but the env value is what is validated.
	p := writeConfig(t, "port: 0\n")
	_, err := Load(Source{File: p, Env: env(map[string]string{"HERALD_PORT": "7000"})})
	if err != nil {
		t.Fatalf("env should have replaced port 0: %v", err)
	}
	p = writeConfig(t, "port: abc\n")
	_, err = Load(Source{File: p, Env: env(map[string]string{"HERALD_PORT": "7000"})})
	wantErrs(t, err, `port: must be a port number 1-65535, got "abc"`)
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"top-level typo", "port: 1\n\nprot: 7000\n", `line 3: unknown key "prot" (did you mean "port"?)`},
		{"app typo", "apps:\n  - id: a\n    key: a\n    secret: s\n    max_conections: 3\n", `line 5: apps[0]: unknown key "max_conections" (did you mean "max_connections"?)`},
		{"soketi spelling", "apps:\n  - {id: a, key: a, secret: s, maxConnections: 3}\n", `apps[0]: unknown key "maxConnections" (did you mean "max_connections"?)`},
		{"soketi presence", "apps:\n  - {id: a, key: a, secret: s, maxPresenceMembersPerChannel: 3}\n", `(did you mean "max_presence_members"?)`},
		{"reverb app_id", "apps:\n  - {app_id: a, key: a, secret: s}\n", `unknown key "app_id" (did you mean "id"?)`},
		{"webhook typo", "apps:\n  - {id: a, key: a, secret: s, webhooks: [{url: 'https://x', event_types: [client_event], header: {}}]}\n", `apps[0].webhooks[0]: unknown key "header" (did you mean "headers"?)`},
		{"filter typo", "apps:\n  - {id: a, key: a, secret: s, webhooks: [{url: 'https://x', event_types: [client_event], filter: {starts_with: x}}]}\n", `apps[0].webhooks[0].filter: unknown key "starts_with"`},
		{"no suggestion", "zzzzzzzz: 1\n", `unknown key "zzzzzzzz"; expected one of host, port,`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.yaml)
			_, err := Load(Source{File: p})
			wantErrs(t, err, "config "+p+" ", tt.want)
		})
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	const (
		secret   = "S3cr3t-Do-Not-Leak"
		token    = "Adm1n-Do-Not-Leak"
		password = "Pa55-Do-Not-Leak"
	)
	p := writeConfig(t, `
admin_token: `+token+`
redis_url: "http://user:`+password+`@host:6379"
apps:
  - id: "a b"
    key: a
    secret: `+secret+`
    max_connections: 0
    webhooks:
      - url: "ftp://u:`+password+`@x/?token=`+password+`"
        event_types: [nope]
        headers: {Authorization: "Bearer `+password+`\r\n", X-Pusher-Signature: `+secret+`, Authorization Bearer `+password+`}
  - id: "a b"
    key: a
    secret: `+secret+`
    secretz: `+secret+`
  - id: c
    key: c
    secret: [`+secret+`]
  - {id: d, key: d, secret `+secret+`}
`)
	_, err := Load(Source{File: p, Env: env(map[string]string{
		"HERALD_APP_SECRET":  secret,
		"HERALD_ADMIN_TOKEN": token,
		"HERALD_REDIS_URL":   "redis://:" + password + "@[bad",
		"HERALD_APP_ENABLED": "nope",
	})})
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{secret, token, password} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q:\n%v", s, err)
		}
	}
	// Still a useful message about the secret itself.
	wantErrs(t, err, "apps[2].secret: must be a string, got a list", `apps[3]: unknown key "secret…"`, "apps[3].secret: must not be empty")
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	key := filepath.Join(dir, "key.pem")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name  string
		flags map[string]string
		want  string // "" = valid
	}{
		{name: "neither"},
		{name: "both", flags: map[string]string{"tls_cert": cert, "tls_key": key}},
		{name: "cert only", flags: map[string]string{"tls_cert": cert}, want: "flag --tls-cert: is set but tls_key is not; set both or neither"},
		{name: "key only", flags: map[string]string{"tls_key": key}, want: "flag --tls-key: is set but tls_cert is not; set both or neither"},
		{name: "missing cert", flags: map[string]string{"tls_cert": missing, "tls_key": key}, want: `flag --tls-cert: cannot open "` + missing + `": no such file or directory; expected a readable PEM file`},
		{name: "directory key", flags: map[string]string{"tls_cert": cert, "tls_key": dir}, want: `flag --tls-key: "` + dir + `" is a directory; expected a PEM file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Source{Flags: tt.flags})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.TLSEnabled() != (tt.flags != nil) {
					t.Errorf("TLSEnabled() = %v", c.TLSEnabled())
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
	// From env and file too.
	_, err := Load(Source{Env: env(map[string]string{"HERALD_TLS_CERT": missing, "HERALD_TLS_KEY": key})})
	wantErrs(t, err, "env HERALD_TLS_CERT: cannot open")
	p := writeConfig(t, "tls_cert: "+cert+"\ntls_key: "+missing+"\n")
	_, err = Load(Source{File: p})
	wantErrs(t, err, "config "+p+" line 2: tls_key: cannot open")
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.yaml")
	_, err := Load(Source{File: p})
	if got, want := err.Error(), "config "+p+": open: no such file or directory"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("error does not wrap fs.ErrNotExist")
	}
	_, err = Load(Source{File: t.TempDir()})
	wantErrs(t, err, ": read: is a directory")
}

func TestRegisterFlags(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	set := RegisterFlags(fs)
	err := fs.Parse([]string{"--port", "7002", "--log-level=debug", "--config", "/etc/herald.yaml", "--shutdown-timeout=5", "--admin-token="})
	if err != nil {
		t.Fatal(err)
	}
	got := set()
	want := map[string]string{"port": "7002", "log_level": "debug", "config": "/etc/herald.yaml", "shutdown_timeout": "5", "admin_token": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("set flags = %v, want %v", got, want)
	}
	for _, name := range []string{"host", "port", "path-prefix", "log-level", "log-format", "redis-url", "redis-prefix",
		"admin-token", "tls-cert", "tls-key", "metrics-addr", "shutdown-timeout", "max-request-body-kb",
		"max-message-size-kb", "write-queue-kb", "cache-ttl", "subscription-count-interval", "api-timestamp-window", "config"} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s not registered", name)
			continue
		}
		if name != "config" && !strings.Contains(f.Usage, "(env HERALD_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))+")") {
			t.Errorf("--%s usage does not name its env variable: %q", name, f.Usage)
		}
	}
	if d := fs.Lookup("cache-ttl").DefValue; d != "30m" {
		t.Errorf("--cache-ttl default shown as %q", d)
	}

	// --config wins over HERALD_CONFIG; HERALD_CONFIG applies otherwise.
	e := env(map[string]string{"HERALD_CONFIG": "/env.yaml"})
	src := NewSource(got, e)
	if src.File != "/etc/herald.yaml" {
		t.Errorf("File = %q, want the flag's", src.File)
	}
	if _, ok := src.Flags["config"]; ok {
		t.Error("NewSource left config in Flags")
	}
	if got["config"] != "/etc/herald.yaml" {
		t.Error("NewSource modified its argument")
	}
	if src := NewSource(map[string]string{"port": "1"}, e); src.File != "/env.yaml" || src.Flags["port"] != "1" {
		t.Errorf("without --config: %+v", src)
	}
	if src := NewSource(nil, nil); src.File != "" {
		t.Errorf("nothing set: File = %q", src.File)
	}

	// End to end: the parsed flags load.
	src.File = writeConfig(t, "port: 7000\n")
	c := mustLoad(t, src)
	if c.Port != 7002 || c.LogLevel != "debug" || c.ShutdownTimeout != 5*time.Second {
		t.Errorf("loaded %+v", c)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"port", "host", "log_level", "max_connections"}
	tests := map[string]string{
		"prot": "port", "hots": "host", "loglevel": "log_level", "LOG_LEVEL": "log_level",
		"maxConnections": "max_connections", "something": "", "": "",
	}
	for in, want := range tests {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeepMergeChainFails(t *testing.T) {
	// Each level merges the previous one twice: without a budget this would
	// walk 2^40 nodes.
	var b strings.Builder
	b.WriteString("x0: &a0 {port: 1}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("<<: *a40\n")
	_, err := Load(Source{File: writeConfig(t, b.String())})
	wantErrs(t, err, "document too complex")
}

func TestPathPrefix(t *testing.T) {
	for p, ok := range map[string]bool{
		"/ws": true, "/ws/v1": true, "/a.b_c-d~e": true,
		"/": false, "ws": false, "/ws/": false, "//ws": false, "/ws//v1": false, "/./ws": false, "/ws/..": false,
		"/{key}": false, "/a b": false, "/a?b": false, "/a%20": false,
	} {
		if got := validPathPrefix(p); got != ok {
			t.Errorf("validPathPrefix(%q) = %v, want %v", p, got, ok)
		}
	}
}

func TestHostAndMetricsAddr(t *testing.T) {
	tests := []struct {
		host, metrics string
		ok            bool
	}{
		{"0.0.0.0", "", true},
		{"", "", true},
		{"::", "", true},
		{"localhost", "127.0.0.1:9601", true},
		{"127.0.0.1", "127.0.0.2:6001", true},
		{"127.0.0.1", "127.0.0.1:6001", false},
		{"0.0.0.0", "127.0.0.1:6001", false},
		{"127.0.0.1", ":6001", false},
		{"localhost:6001", "", false},
		{"[::]", "", false},
		{"0.0.0.0", "localhost", false},
		{"0.0.0.0", ":0", false},
	}
	for _, tt := range tests {
		c := Default()
		c.Host, c.MetricsAddr = tt.host, tt.metrics
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("host %q metrics_addr %q: err = %v, want ok %v", tt.host, tt.metrics, err, tt.ok)
		}
	}
}

// The development app is served on the loopback unless a host is chosen
// or dev_app_public is set.
func TestDevAppOnLoopbackUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		host string
	}{
		{"nothing set", Source{}, "127.0.0.1"},
		{"dev_app_public", Source{Env: env(map[string]string{"HERALD_DEV_APP_PUBLIC": "true"})}, "0.0.0.0"},
		{"host chosen", Source{Flags: map[string]string{"host": "0.0.0.0"}}, "0.0.0.0"},
		{"host from env", Source{Env: env(map[string]string{"HERALD_HOST": "::"})}, "::"},
		{"real app", Source{Env: env(map[string]string{"HERALD_APP_ID": "a", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s"})}, "0.0.0.0"},
	} {
		c := mustLoad(t, tc.src)
		if c.Host != tc.host {
			t.Errorf("%s: host %q, want %q", tc.name, c.Host, tc.host)
		}
		if got, want := c.DevAppLoopbackOnly(), tc.host == "127.0.0.1"; got != want {
			t.Errorf("%s: DevAppLoopbackOnly %v", tc.name, got)
		}
	}
}

// The per-IP limit charges the loopback unless configured otherwise; with
// the development app (and ip_limit_exempt not set) the loopback is exempt.
func TestIPLimitExemptDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want []string
	}{
		{"development app", Source{}, DevAppIPLimitExempt()},
		{"development app, set empty", Source{File: writeConfig(t, "ip_limit_exempt: []\n")}, []string{}},
		{"real app", Source{Env: env(map[string]string{"HERALD_APP_ID": "a", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s"})}, []string{}},
		{"real app, set", Source{Env: env(map[string]string{"HERALD_APP_ID": "a", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s",
			"HERALD_IP_LIMIT_EXEMPT": "10.0.0.0/8"})}, []string{"10.0.0.0/8"}},
	} {
		c := mustLoad(t, tc.src)
		if !slices.Equal(c.IPLimitExempt, tc.want) {
			t.Errorf("%s: ip_limit_exempt %q, want %q", tc.name, c.IPLimitExempt, tc.want)
		}
	}
	if got := Default().IPLimitExempt; !slices.Equal(got, DevAppIPLimitExempt()) {
		t.Errorf("Default: %q", got)
	}
}

func TestUsesDevAppLooksAtTheFirstAppOnly(t *testing.T) {
	// Callers print Apps[0].Secret when UsesDevApp is true: a real secret in
	// the first app must never make it true.
	c := mustLoad(t, Source{File: writeConfig(t, `
apps:
  - {id: prod, key: prod-key, secret: real-secret}
  - {id: app-id, key: app-key, secret: app-secret}
`)})
	if c.UsesDevApp() {
		t.Error("UsesDevApp() = true with a real first app")
	}
	c = mustLoad(t, Source{File: writeConfig(t, "apps: [{id: app-id, key: app-key, secret: app-secret}]\n")})
	if !c.UsesDevApp() {
		t.Error("UsesDevApp() = false with the dev credentials in the file")
	}
	if (&Config{}).UsesDevApp() {
		t.Error("UsesDevApp() = true without apps")
	}
}

func TestAppsStoreSetting(t *testing.T) {
	// A bad apps_store is named, never with its password.
	_, err := Load(Source{Env: env(map[string]string{"HERALD_APPS_STORE": "redis://u:hunter2-secret@h/0"})})
	if err == nil || !strings.Contains(err.Error(), "HERALD_APPS_STORE") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad apps_store: %v", err)
	}
	// A database store: no dev app, and apps in the file are refused.
	c := mustLoad(t, Source{Flags: map[string]string{"apps_store": "postgres://u:pw@db/apps"}})
	if len(c.Apps) != 0 || c.UsesDevApp() || !c.DatabaseApps() {
		t.Fatalf("database store: apps %v, dev %v", c.Apps, c.UsesDevApp())
	}
	file := writeConfig(t, "apps_store: sqlite:///tmp/x.db\napps:\n  - id: a\n    key: k\n    secret: s\n")
	_, err = Load(Source{File: file})
	if err == nil || !strings.Contains(err.Error(), "apps") || !strings.Contains(err.Error(), "herald apps") {
		t.Fatalf("apps with a database store: %v", err)
	}
	_, err = Load(Source{Env: env(map[string]string{"HERALD_APPS_STORE": "sqlite:///tmp/x.db", "HERALD_APP_KEY": "k"})})
	if err == nil || !strings.Contains(err.Error(), "HERALD_APP_KEY") {
		t.Fatalf("HERALD_APP_KEY with a database store: %v", err)
	}
	if _, err := Load(Source{Flags: map[string]string{"apps_cache_ttl": "0s"}}); err == nil || !strings.Contains(err.Error(), "apps-cache-ttl") {
		t.Fatalf("apps_cache_ttl 0: %v", err)
	}
}
