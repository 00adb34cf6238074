// Package migrate turns the configuration of another Pusher-protocol server
// into Herald's YAML. Today: soketi's JSON config file (`soketi start
// --config=FILE.json`).
//
// It only translates: the result is meant to be checked with `herald config
// check` (the server's own loader) before use. Every setting it cannot carry
// over is reported by name, never silently dropped, and no value (secrets,
// passwords in Redis settings) is ever put in a warning.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxSoketiInput bounds the file read by Soketi; soketi configs are a few KB.
const maxSoketiInput = 4 << 20

// maxApps bounds the apps of one file, so that a key such as
// "appManager.array.apps.99999999.id" cannot make us allocate a huge list.
const maxApps = 10_000

// Result is a translated configuration.
type Result struct {
	// YAML is the Herald config, ready for `herald serve --config`.
	YAML []byte
	// Warnings name each soketi setting that was not carried over, and why.
	Warnings []string
}

// Soketi translates a soketi JSON config. Keys may be nested objects or
// soketi's dotted form ("appManager.array.apps": [...], "presence.maxMembersPerChannel": 50),
// as `soketi start --config` accepts both. Values may be strings where
// numbers or booleans are expected, as soketi's env variables give them.
func Soketi(data []byte) (*Result, error) { return SoketiWithEnv(data, nil) }

// SoketiWithEnv translates a soketi JSON config (nil data: none) with the
// SOKETI_* variables of env applied on top, as `soketi start` applies them
// after the file. Variables soketi does not read are reported.
func SoketiWithEnv(data []byte, env map[string]string) (*Result, error) {
	top := map[string]any{}
	if data != nil {
		if len(data) > maxSoketiInput {
			return nil, fmt.Errorf("soketi config: larger than %d bytes", maxSoketiInput)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&top); err != nil {
			return nil, fmt.Errorf("soketi config: not a JSON object: %w", err)
		}
		if top == nil {
			return nil, errors.New("soketi config: not a JSON object: null")
		}
		if dec.More() {
			return nil, errors.New("soketi config: more than one JSON value")
		}
	}
	var envWarnings []string
	// Env variables win over the file: applied after it, key by key.
	envTop := map[string]any{}
	for _, name := range sortedStringKeys(env) {
		if !strings.HasPrefix(name, "SOKETI_") {
			continue
		}
		key, ok := soketiEnv[strings.TrimPrefix(name, "SOKETI_")]
		if !ok {
			envWarnings = append(envWarnings, fmt.Sprintf("soketi variable %s not carried over: soketi does not read it", name))
			continue
		}
		envTop[key] = envValue(env[name])
	}
	tree := map[string]any{}
	for _, layer := range []map[string]any{top, envTop} {
		keys := make([]string, 0, len(layer))
		for k := range layer {
			keys = append(keys, k)
		}
		slices.Sort(keys) // "a.b" before "a.b.c", as deterministic as soketi's order
		for _, k := range keys {
			if err := setDotted(tree, k, layer[k]); err != nil {
				return nil, fmt.Errorf("soketi config: %q: %w", k, err)
			}
		}
	}
	c := converter{warnings: envWarnings}
	c.convert(tree)
	out, err := c.yaml()
	if err != nil {
		return nil, err
	}
	return &Result{YAML: out, Warnings: c.warnings}, nil
}

// envValue reads a variable as soketi does: JSON when it parses, else the string.
func envValue(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil && !dec.More() && v != nil {
		return v
	}
	return s
}

func sortedStringKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// soketiEnv maps soketi's SOKETI_<NAME> variables (without the prefix) to
// its option keys (soketi's src/cli/cli.ts).
var soketiEnv = map[string]string{
	"ADAPTER_DRIVER":                         "adapter.driver",
	"ADAPTER_CLUSTER_REQUESTS_TIMEOUT":       "adapter.cluster.requestsTimeout",
	"ADAPTER_REDIS_PREFIX":                   "adapter.redis.prefix",
	"ADAPTER_REDIS_CLUSTER_MODE":             "adapter.redis.clusterMode",
	"ADAPTER_REDIS_REQUESTS_TIMEOUT":         "adapter.redis.requestsTimeout",
	"ADAPTER_REDIS_SUB_OPTIONS":              "adapter.redis.redisSubOptions",
	"ADAPTER_REDIS_PUB_OPTIONS":              "adapter.redis.redisPubOptions",
	"ADAPTER_REDIS_SHARD_MODE":               "adapter.redis.shardMode",
	"ADAPTER_NATS_PREFIX":                    "adapter.nats.prefix",
	"ADAPTER_NATS_SERVERS":                   "adapter.nats.servers",
	"ADAPTER_NATS_USER":                      "adapter.nats.user",
	"ADAPTER_NATS_PASSWORD":                  "adapter.nats.pass",
	"ADAPTER_NATS_TOKEN":                     "adapter.nats.token",
	"ADAPTER_NATS_CREDENTIALS":               "adapter.nats.credentials",
	"ADAPTER_NATS_TIMEOUT":                   "adapter.nats.timeout",
	"ADAPTER_NATS_REQUESTS_TIMEOUT":          "adapter.nats.requestsTimeout",
	"APP_MANAGER_DRIVER":                     "appManager.driver",
	"APP_MANAGER_CACHE_ENABLED":              "appManager.cache.enabled",
	"APP_MANAGER_CACHE_TTL":                  "appManager.cache.ttl",
	"APP_MANAGER_DYNAMODB_TABLE":             "appManager.dynamodb.table",
	"APP_MANAGER_DYNAMODB_REGION":            "appManager.dynamodb.region",
	"APP_MANAGER_DYNAMODB_ENDPOINT":          "appManager.dynamodb.endpoint",
	"APP_MANAGER_MYSQL_TABLE":                "appManager.mysql.table",
	"APP_MANAGER_MYSQL_VERSION":              "appManager.mysql.version",
	"APP_MANAGER_POSTGRES_TABLE":             "appManager.postgres.table",
	"APP_MANAGER_POSTGRES_VERSION":           "appManager.postgres.version",
	"APP_MANAGER_MYSQL_USE_V2":               "appManager.mysql.useMysql2",
	"CHANNEL_LIMITS_MAX_NAME_LENGTH":         "channelLimits.maxNameLength",
	"CHANNEL_CACHE_TTL":                      "channelLimits.cacheTtl",
	"CACHE_DRIVER":                           "cache.driver",
	"CACHE_REDIS_CLUSTER_MODE":               "cache.redis.clusterMode",
	"CACHE_REDIS_OPTIONS":                    "cache.redis.redisOptions",
	"CLUSTER_CHECK_INTERVAL":                 "cluster.checkInterval",
	"CLUSTER_HOST":                           "cluster.hostname",
	"CLUSTER_IGNORE_PROCESS":                 "cluster.ignoreProcess",
	"CLUSTER_BROADCAST_ADDRESS":              "cluster.broadcast",
	"CLUSTER_KEEPALIVE_INTERVAL":             "cluster.helloInterval",
	"CLUSTER_MASTER_TIMEOUT":                 "cluster.masterTimeout",
	"CLUSTER_MULTICAST_ADDRESS":              "cluster.multicast",
	"CLUSTER_NODE_TIMEOUT":                   "cluster.nodeTimeout",
	"CLUSTER_PORT":                           "cluster.port",
	"CLUSTER_PREFIX":                         "cluster.prefix",
	"CLUSTER_UNICAST_ADDRESSES":              "cluster.unicast",
	"DEBUG":                                  "debug",
	"DEFAULT_APP_ID":                         "appManager.array.apps.0.id",
	"DEFAULT_APP_KEY":                        "appManager.array.apps.0.key",
	"DEFAULT_APP_SECRET":                     "appManager.array.apps.0.secret",
	"DEFAULT_APP_MAX_CONNS":                  "appManager.array.apps.0.maxConnections",
	"DEFAULT_APP_ENABLE_CLIENT_MESSAGES":     "appManager.array.apps.0.enableClientMessages",
	"DEFAULT_APP_ENABLED":                    "appManager.array.apps.0.enabled",
	"DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC": "appManager.array.apps.0.maxBackendEventsPerSecond",
	"DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC":  "appManager.array.apps.0.maxClientEventsPerSecond",
	"DEFAULT_APP_MAX_READ_REQ_PER_SEC":       "appManager.array.apps.0.maxReadRequestsPerSecond",
	"DEFAULT_APP_WEBHOOKS":                   "appManager.array.apps.0.webhooks",
	"DEFAULT_APP_ENABLE_USER_AUTHENTICATION": "appManager.array.apps.0.enableUserAuthentication",
	"DB_POOLING_ENABLED":                     "databasePooling.enabled",
	"DB_POOLING_MIN":                         "databasePooling.min",
	"DB_POOLING_MAX":                         "databasePooling.max",
	"DB_MYSQL_HOST":                          "database.mysql.host",
	"DB_MYSQL_PORT":                          "database.mysql.port",
	"DB_MYSQL_USERNAME":                      "database.mysql.user",
	"DB_MYSQL_PASSWORD":                      "database.mysql.password",
	"DB_MYSQL_DATABASE":                      "database.mysql.database",
	"DB_POSTGRES_HOST":                       "database.postgres.host",
	"DB_POSTGRES_PORT":                       "database.postgres.port",
	"DB_POSTGRES_USERNAME":                   "database.postgres.user",
	"DB_POSTGRES_PASSWORD":                   "database.postgres.password",
	"DB_POSTGRES_DATABASE":                   "database.postgres.database",
	"DB_REDIS_HOST":                          "database.redis.host",
	"DB_REDIS_PORT":                          "database.redis.port",
	"DB_REDIS_DB":                            "database.redis.db",
	"DB_REDIS_USERNAME":                      "database.redis.username",
	"DB_REDIS_PASSWORD":                      "database.redis.password",
	"DB_REDIS_KEY_PREFIX":                    "database.redis.keyPrefix",
	"DB_REDIS_SENTINELS":                     "database.redis.sentinels",
	"DB_REDIS_SENTINEL_PASSWORD":             "database.redis.sentinelPassword",
	"DB_REDIS_CLUSTER_NODES":                 "database.redis.clusterNodes",
	"DB_REDIS_INSTANCE_NAME":                 "database.redis.name",
	"EVENT_MAX_BATCH_SIZE":                   "eventLimits.maxBatchSize",
	"EVENT_MAX_CHANNELS_AT_ONCE":             "eventLimits.maxChannelsAtOnce",
	"EVENT_MAX_NAME_LENGTH":                  "eventLimits.maxNameLength",
	"EVENT_MAX_SIZE_IN_KB":                   "eventLimits.maxPayloadInKb",
	"HTTP_ACCEPT_TRAFFIC_MEMORY_THRESHOLD":   "httpApi.acceptTraffic.memoryThreshold",
	"METRICS_ENABLED":                        "metrics.enabled",
	"METRICS_DRIVER":                         "metrics.driver",
	"METRICS_PROMETHEUS_PREFIX":              "metrics.prometheus.prefix",
	"METRICS_SERVER_PORT":                    "metrics.port",
	"MODE":                                   "mode",
	"PORT":                                   "port",
	"PATH_PREFIX":                            "pathPrefix",
	"PRESENCE_MAX_MEMBER_SIZE":               "presence.maxMemberSizeInKb",
	"PRESENCE_MAX_MEMBERS":                   "presence.maxMembersPerChannel",
	"QUEUE_DRIVER":                           "queue.driver",
	"QUEUE_REDIS_CONCURRENCY":                "queue.redis.concurrency",
	"QUEUE_REDIS_OPTIONS":                    "queue.redis.redisOptions",
	"QUEUE_REDIS_CLUSTER_MODE":               "queue.redis.clusterMode",
	"QUEUE_SQS_REGION":                       "queue.sqs.region",
	"QUEUE_SQS_CLIENT_OPTIONS":               "queue.sqs.clientOptions",
	"QUEUE_SQS_URL":                          "queue.sqs.queueUrl",
	"QUEUE_SQS_ENDPOINT":                     "queue.sqs.endpoint",
	"QUEUE_SQS_PROCESS_BATCH":                "queue.sqs.processBatch",
	"QUEUE_SQS_BATCH_SIZE":                   "queue.sqs.batchSize",
	"QUEUE_SQS_POLLING_WAIT_TIME_MS":         "queue.sqs.pollingWaitTimeMs",
	"RATE_LIMITER_DRIVER":                    "rateLimiter.driver",
	"RATE_LIMITER_REDIS_OPTIONS":             "rateLimiter.redis.redisOptions",
	"RATE_LIMITER_REDIS_CLUSTER_MODE":        "rateLimiter.redis.clusterMode",
	"SHUTDOWN_GRACE_PERIOD":                  "shutdownGracePeriod",
	"SSL_CERT":                               "ssl.certPath",
	"SSL_KEY":                                "ssl.keyPath",
	"SSL_PASS":                               "ssl.passphrase",
	"SSL_CA":                                 "ssl.caPath",
	"WEBHOOKS_BATCHING":                      "webhooks.batching.enabled",
	"WEBHOOKS_BATCHING_DURATION":             "webhooks.batching.duration",
}

// setDotted sets path (dot separated; numeric parts index arrays) in tree
// to v, the way soketi's setOptions (dot-object) does.
func setDotted(tree map[string]any, path string, v any) error {
	parts := strings.Split(path, ".")
	var cur any = tree
	for i, p := range parts {
		last := i == len(parts)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				node[p] = merge(node[p], v)
				return nil
			}
			next, ok := node[p]
			if !ok || !isContainer(next) {
				if _, err := strconv.Atoi(parts[i+1]); err == nil {
					next = []any{}
				} else {
					next = map[string]any{}
				}
			}
			node[p] = next
			if arr, ok := next.([]any); ok {
				// Arrays are replaced in their parent when they grow.
				grown, err := growFor(arr, parts[i+1])
				if err != nil {
					return err
				}
				node[p] = grown
				next = grown
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n >= len(node) {
				return fmt.Errorf("%q is not an index of a list", p)
			}
			if last {
				node[n] = merge(node[n], v)
				return nil
			}
			next := node[n]
			if !isContainer(next) {
				next = map[string]any{}
				node[n] = next
			}
			if arr, ok := next.([]any); ok {
				grown, err := growFor(arr, parts[i+1])
				if err != nil {
					return err
				}
				node[n] = grown
				next = grown
			}
			cur = next
		default:
			return errors.New("cannot set a key inside a value")
		}
	}
	return nil
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

// growFor extends arr so that index idx exists.
func growFor(arr []any, idx string) ([]any, error) {
	n, err := strconv.Atoi(idx)
	if err != nil {
		return nil, fmt.Errorf("%q is not an index of a list", idx)
	}
	if n < 0 || n >= maxApps {
		return nil, fmt.Errorf("index %d out of range (0-%d)", n, maxApps-1)
	}
	for len(arr) <= n {
		arr = append(arr, map[string]any{})
	}
	return arr, nil
}

// merge combines a value already in the tree with a new one: objects merge
// key by key (later wins), anything else is replaced.
func merge(old, v any) any {
	om, ok1 := old.(map[string]any)
	nm, ok2 := v.(map[string]any)
	if !ok1 || !ok2 {
		return v
	}
	for k, x := range nm {
		om[k] = merge(om[k], x)
	}
	return om
}

// converter walks the soketi tree and fills a Herald config.
type converter struct {
	out      heraldConfig
	warnings []string
	// server-level limits that Herald sets per app, applied to every app
	// that does not set its own
	appDefaults heraldApp
}

func (c *converter) warn(path, format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf("soketi setting %q not carried over: %s", path, fmt.Sprintf(format, args...)))
}

// heraldConfig is the subset of Herald's keys a soketi config maps to, in
// the order Herald's docs list them. Pointers: only what soketi set is written.
type heraldConfig struct {
	Host               *string     `yaml:"host,omitempty"`
	Port               *int        `yaml:"port,omitempty"`
	PathPrefix         *string     `yaml:"path_prefix,omitempty"`
	LogLevel           *string     `yaml:"log_level,omitempty"`
	ShutdownTimeout    *string     `yaml:"shutdown_timeout,omitempty"`
	MaxRequestBodyKB   *int        `yaml:"max_request_body_kb,omitempty"`
	CacheTTL           *string     `yaml:"cache_ttl,omitempty"`
	MemoryGuardPercent *int        `yaml:"memory_guard_percent,omitempty"`
	MetricsAddr        *string     `yaml:"metrics_addr,omitempty"`
	TLSCert            *string     `yaml:"tls_cert,omitempty"`
	TLSKey             *string     `yaml:"tls_key,omitempty"`
	RedisURL           *string     `yaml:"redis_url,omitempty"`
	RedisPrefix        *string     `yaml:"redis_prefix,omitempty"`
	WebhookBatchWindow *string     `yaml:"webhook_batch_window,omitempty"`
	Apps               []heraldApp `yaml:"apps,omitempty"`
}

type heraldApp struct {
	ID                        *string         `yaml:"id,omitempty"`
	Key                       *string         `yaml:"key,omitempty"`
	Secret                    *string         `yaml:"secret,omitempty"`
	Enabled                   *bool           `yaml:"enabled,omitempty"`
	MaxConnections            *int            `yaml:"max_connections,omitempty"`
	EnableClientMessages      *bool           `yaml:"enable_client_messages,omitempty"`
	ClientEventsPerSecond     *int            `yaml:"client_events_per_second,omitempty"`
	MaxBackendEventsPerSecond *int            `yaml:"max_backend_events_per_second,omitempty"`
	MaxReadRequestsPerSecond  *int            `yaml:"max_read_requests_per_second,omitempty"`
	MaxPresenceMembers        *int            `yaml:"max_presence_members,omitempty"`
	MaxPresenceMemberSizeKB   *int            `yaml:"max_presence_member_size_kb,omitempty"`
	MaxChannelNameLength      *int            `yaml:"max_channel_name_length,omitempty"`
	MaxEventChannelsAtOnce    *int            `yaml:"max_event_channels_at_once,omitempty"`
	MaxEventNameLength        *int            `yaml:"max_event_name_length,omitempty"`
	MaxEventPayloadKB         *int            `yaml:"max_event_payload_kb,omitempty"`
	MaxEventBatchSize         *int            `yaml:"max_event_batch_size,omitempty"`
	EnableUserAuthentication  *bool           `yaml:"enable_user_authentication,omitempty"`
	UserAuthenticationTimeout *string         `yaml:"user_authentication_timeout,omitempty"`
	Webhooks                  []heraldWebhook `yaml:"webhooks,omitempty"`
}

type heraldWebhook struct {
	URL        string            `yaml:"url"`
	EventTypes []string          `yaml:"event_types,omitempty"`
	Headers    map[string]string `yaml:"headers,omitempty"`
	Filter     *heraldFilter     `yaml:"filter,omitempty"`
}

type heraldFilter struct {
	ChannelNameStartsWith string `yaml:"channel_name_starts_with,omitempty"`
	ChannelNameEndsWith   string `yaml:"channel_name_ends_with,omitempty"`
}

func (c *converter) yaml() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Herald configuration translated from a soketi config by `herald config import soketi`.\n")
	b.WriteString("# Check it with `herald config check FILE` (docs/migrating.md lists what differs).\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c.out); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return b.Bytes(), nil
}

// convert maps the top level of the soketi tree.
func (c *converter) convert(tree map[string]any) {
	// The adapter decides whether the Redis database settings matter.
	adapter := "local"
	if a, ok := tree["adapter"].(map[string]any); ok {
		if d, ok := a["driver"].(string); ok {
			adapter = d
		}
	}
	var apps []any
	for _, k := range sortedKeys(tree) {
		v := tree[k]
		switch k {
		case "host":
			if s, ok := c.str(k, v); ok {
				c.out.Host = &s
			}
		case "port":
			if n, ok := c.integer(k, v); ok {
				c.out.Port = &n
			}
		case "pathPrefix":
			if s, ok := c.str(k, v); ok && s != "" {
				c.out.PathPrefix = &s
			}
		case "debug":
			if b, ok := c.boolean(k, v); ok && b {
				s := "debug"
				c.out.LogLevel = &s
			}
		case "shutdownGracePeriod":
			if n, ok := c.integer(k, v); ok {
				s := millis(n)
				c.out.ShutdownTimeout = &s
			}
		case "userAuthenticationTimeout":
			if n, ok := c.integer(k, v); ok {
				if n < 1000 || n > 3600_000 {
					c.warn(k, "Herald's user_authentication_timeout is between 1s and 1h, got %d ms", n)
				} else {
					s := millis(n)
					c.appDefaults.UserAuthenticationTimeout = &s
				}
			}
		case "channelLimits":
			c.object(k, v, map[string]func(string, any){
				"maxNameLength": func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxChannelNameLength) },
				"cacheTtl": func(p string, v any) {
					if n, ok := c.integer(p, v); ok {
						if n <= 0 {
							c.warn(p, "Herald's cache_ttl must be positive, got %d", n)
							return
						}
						s := (time.Duration(n) * time.Second).String()
						c.out.CacheTTL = &s
					}
				},
			})
		case "eventLimits":
			c.object(k, v, map[string]func(string, any){
				"maxChannelsAtOnce": func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxEventChannelsAtOnce) },
				"maxNameLength":     func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxEventNameLength) },
				"maxPayloadInKb":    func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxEventPayloadKB) },
				"maxBatchSize":      func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxEventBatchSize) },
			})
		case "presence":
			c.object(k, v, map[string]func(string, any){
				"maxMembersPerChannel": func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxPresenceMembers) },
				"maxMemberSizeInKb":    func(p string, v any) { c.positive(p, v, &c.appDefaults.MaxPresenceMemberSizeKB) },
			})
		case "httpApi":
			c.object(k, v, map[string]func(string, any){
				"requestLimitInMb": func(p string, v any) {
					if n, ok := c.integer(p, v); ok {
						if n < 1 || n > 1024 {
							c.warn(p, "Herald's max_request_body_kb is 1 KB to 1 GB, got %d MB", n)
							return
						}
						kb := n * 1024
						c.out.MaxRequestBodyKB = &kb
					}
				},
				"acceptTraffic": func(p string, v any) {
					c.object(p, v, map[string]func(string, any){
						"memoryThreshold": func(p string, v any) {
							if n, ok := c.integer(p, v); ok {
								if n < 1 || n > 100 {
									c.warn(p, "Herald's memory_guard_percent is 1-100 (or -1), got %d", n)
									return
								}
								c.out.MemoryGuardPercent = &n
							}
						},
					})
				},
			})
		case "metrics":
			c.metrics(k, v)
		case "ssl":
			c.object(k, v, map[string]func(string, any){
				"certPath": func(p string, v any) {
					if s, ok := c.str(p, v); ok && s != "" {
						c.out.TLSCert = &s
					}
				},
				"keyPath": func(p string, v any) {
					if s, ok := c.str(p, v); ok && s != "" {
						c.out.TLSKey = &s
					}
				},
				"passphrase": func(p string, v any) {
					if s, ok := v.(string); ok && s == "" {
						return
					}
					c.warn(p, "Herald reads unencrypted PEM keys only; decrypt the key (openssl pkey -in key.pem -out plain.pem)")
				},
				"caPath": func(p string, v any) {
					if s, ok := v.(string); ok && s == "" {
						return
					}
					c.warn(p, "append the CA chain to the certificate file given as tls_cert")
				},
			})
		case "adapter":
			c.adapter(k, v)
		case "database":
			c.database(k, v, adapter)
		case "appManager":
			apps = c.appManager(k, v)
		case "webhooks":
			c.object(k, v, map[string]func(string, any){
				"batching": func(p string, v any) {
					m, ok := v.(map[string]any)
					if !ok {
						c.warn(p, "expected an object")
						return
					}
					enabled, _ := c.boolean(p+".enabled", m["enabled"])
					for _, sub := range sortedKeys(m) {
						switch sub {
						case "enabled":
						case "duration":
							if n, ok := c.integer(p+".duration", m[sub]); ok && enabled {
								if n < 1 {
									c.warn(p+".duration", "must be positive, got %d", n)
									continue
								}
								s := millis(n)
								c.out.WebhookBatchWindow = &s
							}
						default:
							c.unknown(p + "." + sub)
						}
					}
				},
				"maxRetries": func(p string, v any) {
					c.warn(p, "Herald retries for a period, not a count: set webhook_retry_for (default 5m)")
				},
			})
		case "mode":
			if s, _ := v.(string); s != "full" {
				c.warn(k, "Herald has one mode: every node serves sockets and the HTTP API")
			}
		case "instance":
			// process_id names a soketi process; Herald makes its node ids.
		default:
			c.unsupported(k, v)
		}
	}
	c.apps(apps)
}

// unsupportedWhy explains the soketi settings Herald has no equivalent for.
var unsupportedWhy = map[string]string{
	"cors":            "Herald's HTTP API is for servers and sends no CORS headers; WebSocket origins are checked per app (allowed_origins)",
	"queue":           "Herald delivers webhooks from its own queue (in Redis on a cluster): webhook_* keys",
	"rateLimiter":     "Herald's rate limits live in each node (per-app buckets); no driver to choose",
	"cache":           "cache channels live in Herald's state (in Redis on a cluster); no driver to choose",
	"cluster":         "Herald clusters through Redis only (redis_url); no UDP discovery",
	"databasePooling": "no SQL app store is configured by this import",
}

func (c *converter) unsupported(path string, v any) {
	if why, ok := unsupportedWhy[path]; ok {
		for _, leaf := range leaves(path, v) {
			c.warn(leaf, "%s", why)
		}
		return
	}
	for _, leaf := range leaves(path, v) {
		c.unknown(leaf)
	}
}

func (c *converter) unknown(path string) {
	c.warnings = append(c.warnings, fmt.Sprintf("soketi setting %q not carried over: not a soketi setting Herald knows", path))
}

// leaves lists the dotted paths of the scalar leaves under v (v's own path
// for a scalar, an empty object or a list).
func leaves(path string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{path}
	}
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, leaves(path+"."+k, m[k])...)
	}
	return out
}

// object applies a handler per known key of the object v at path, and
// reports the others.
func (c *converter) object(path string, v any, handlers map[string]func(string, any)) {
	m, ok := v.(map[string]any)
	if !ok {
		c.warn(path, "expected an object, got %s", kind(v))
		return
	}
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		if h, ok := handlers[k]; ok {
			h(p, m[k])
			continue
		}
		for _, leaf := range leaves(p, m[k]) {
			c.unknown(leaf)
		}
	}
}

func (c *converter) metrics(path string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		c.warn(path, "expected an object, got %s", kind(v))
		return
	}
	enabled, _ := c.boolean(path+".enabled", m["enabled"])
	host, port := "", 0
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch k {
		case "enabled":
		case "host":
			host, _ = c.str(p, m[k])
		case "port":
			port, _ = c.integer(p, m[k])
		case "driver":
			if s, _ := m[k].(string); s != "prometheus" {
				c.warn(p, "Herald exposes Prometheus metrics only")
			}
		case "prometheus":
			if pm, ok := m[k].(map[string]any); ok {
				for _, sub := range sortedKeys(pm) {
					c.warn(p+"."+sub, "Herald's metric names start with herald_ (docs/monitoring.md)")
				}
			}
		default:
			for _, leaf := range leaves(p, m[k]) {
				c.unknown(leaf)
			}
		}
	}
	// Herald always serves /metrics (on the main port unless metrics_addr
	// is set); soketi served it on its own port when enabled.
	if enabled && port > 0 {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if host == "0.0.0.0" || host == "" {
			addr = ":" + strconv.Itoa(port)
		}
		c.out.MetricsAddr = &addr
	}
}

func (c *converter) adapter(path string, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		c.warn(path, "expected an object, got %s", kind(v))
		return
	}
	driver, _ := m["driver"].(string)
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch k {
		case "driver":
			switch driver {
			case "local", "redis":
			default:
				c.warn(p, "Herald clusters through Redis only (redis_url); %q is not available", driver)
			}
		case "redis":
			rm, ok := m[k].(map[string]any)
			if !ok {
				c.warn(p, "expected an object")
				continue
			}
			for _, sub := range sortedKeys(rm) {
				sp := p + "." + sub
				switch sub {
				case "prefix":
					if s, ok := c.str(sp, rm[sub]); ok && s != "" && driver == "redis" {
						c.out.RedisPrefix = &s
					}
				case "requestsTimeout":
					c.warn(sp, "Herald never asks the other nodes and waits: queries read the shared state")
				default:
					for _, leaf := range leaves(sp, rm[sub]) {
						c.warn(leaf, "no equivalent; Herald's Redis connection is the URL in redis_url")
					}
				}
			}
		default:
			if driver == k {
				continue // settings of an unavailable driver were reported with it
			}
			// Settings of drivers not in use do nothing in soketi either.
		}
	}
}

// database maps database.redis to redis_url when the redis adapter uses it;
// the SQL databases serve soketi's app managers, which this import does not
// carry over.
func (c *converter) database(path string, v any, adapter string) {
	m, ok := v.(map[string]any)
	if !ok {
		c.warn(path, "expected an object, got %s", kind(v))
		return
	}
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		if k != "redis" {
			for _, leaf := range leaves(p, m[k]) {
				c.warn(leaf, "apps come from the YAML file here; move them with their settings (docs/migrating.md)")
			}
			continue
		}
		rm, ok := m[k].(map[string]any)
		if !ok {
			c.warn(p, "expected an object")
			continue
		}
		u := url.URL{Scheme: "redis", Host: "127.0.0.1:6379", Path: "/0"}
		host, port := "127.0.0.1", "6379"
		var user, pass string
		for _, sub := range sortedKeys(rm) {
			sp := p + "." + sub
			switch sub {
			case "host":
				host, _ = c.str(sp, rm[sub])
			case "port":
				if n, ok := c.integer(sp, rm[sub]); ok {
					port = strconv.Itoa(n)
				}
			case "db":
				if n, ok := c.integer(sp, rm[sub]); ok {
					u.Path = "/" + strconv.Itoa(n)
				}
			case "username":
				user, _ = rm[sub].(string)
			case "password":
				pass, _ = rm[sub].(string)
			case "keyPrefix":
				if s, _ := rm[sub].(string); s != "" {
					c.warn(sp, "Herald prefixes its keys with redis_prefix (set from adapter.redis.prefix)")
				}
			case "sentinels", "sentinelPassword", "name", "clusterNodes":
				if rm[sub] == nil || isEmpty(rm[sub]) {
					continue
				}
				c.warn(sp, "Herald connects to one Redis URL; point redis_url at the primary (or a proxy)")
			default:
				c.unknown(sp)
			}
		}
		if adapter != "redis" {
			continue // soketi used these only for its other drivers
		}
		u.Host = net.JoinHostPort(host, port)
		switch {
		case user != "" && pass != "":
			u.User = url.UserPassword(user, pass)
		case pass != "":
			u.User = url.UserPassword("", pass)
		case user != "":
			u.User = url.User(user)
		}
		s := u.String()
		c.out.RedisURL = &s
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// appManager returns the apps of the array driver.
func (c *converter) appManager(path string, v any) []any {
	m, ok := v.(map[string]any)
	if !ok {
		c.warn(path, "expected an object, got %s", kind(v))
		return nil
	}
	driver := "array"
	if d, ok := m["driver"].(string); ok {
		driver = d
	}
	var apps []any
	for _, k := range sortedKeys(m) {
		p := path + "." + k
		switch k {
		case "driver":
			if driver != "array" {
				c.warn(p, "apps in %s are not imported; list them under apps: in the YAML", driver)
			}
		case "array":
			am, ok := m[k].(map[string]any)
			if !ok {
				c.warn(p, "expected an object")
				continue
			}
			for _, sub := range sortedKeys(am) {
				if sub != "apps" {
					c.unknown(p + "." + sub)
					continue
				}
				apps, ok = am[sub].([]any)
				if !ok {
					// soketi accepts a JSON string here (from an env variable).
					if s, isStr := am[sub].(string); isStr {
						dec := json.NewDecoder(strings.NewReader(s))
						dec.UseNumber()
						if err := dec.Decode(&apps); err != nil {
							c.warn(p+".apps", "not a JSON list of apps")
						}
						continue
					}
					c.warn(p+".apps", "expected a list of apps, got %s", kind(am[sub]))
				}
			}
		case "cache":
			for _, leaf := range leaves(p, m[k]) {
				c.warn(leaf, "apps from the YAML file are in memory; nothing to cache")
			}
		default:
			if k == driver {
				continue
			}
			// Settings of other drivers do nothing in soketi either.
		}
	}
	return apps
}

// appKeys maps each soketi app field (in every spelling soketi accepts) to
// a setter on a Herald app.
func (c *converter) appField(a *heraldApp, path, k string, v any) {
	switch k {
	case "id", "AppId":
		if s, ok := c.idString(path, v); ok {
			a.ID = &s
		}
	case "key", "AppKey":
		if s, ok := c.str(path, v); ok {
			a.Key = &s
		}
	case "secret", "AppSecret":
		if s, ok := c.str(path, v); ok {
			a.Secret = &s
		}
	case "enabled", "Enabled":
		if b, ok := c.boolean(path, v); ok {
			a.Enabled = &b
		}
	case "maxConnections", "MaxConnections", "max_connections":
		c.limit(path, v, &a.MaxConnections)
	case "enableClientMessages", "EnableClientMessages", "enable_client_messages":
		if b, ok := c.boolean(path, v); ok {
			a.EnableClientMessages = &b
		}
	case "maxClientEventsPerSecond", "MaxClientEventsPerSecond", "max_client_events_per_sec":
		c.limit(path, v, &a.ClientEventsPerSecond)
	case "maxBackendEventsPerSecond", "MaxBackendEventsPerSecond", "max_backend_events_per_sec":
		c.limit(path, v, &a.MaxBackendEventsPerSecond)
	case "maxReadRequestsPerSecond", "MaxReadRequestsPerSecond", "max_read_req_per_sec":
		c.limit(path, v, &a.MaxReadRequestsPerSecond)
	case "maxPresenceMembersPerChannel", "MaxPresenceMembersPerChannel", "max_presence_members_per_channel":
		c.positive(path, v, &a.MaxPresenceMembers)
	case "maxPresenceMemberSizeInKb", "MaxPresenceMemberSizeInKb", "max_presence_member_size_in_kb":
		c.positive(path, v, &a.MaxPresenceMemberSizeKB)
	case "maxChannelNameLength", "MaxChannelNameLength", "max_channel_name_length":
		c.positive(path, v, &a.MaxChannelNameLength)
	case "maxEventChannelsAtOnce", "MaxEventChannelsAtOnce", "max_event_channels_at_once":
		c.positive(path, v, &a.MaxEventChannelsAtOnce)
	case "maxEventNameLength", "MaxEventNameLength", "max_event_name_length":
		c.positive(path, v, &a.MaxEventNameLength)
	case "maxEventPayloadInKb", "MaxEventPayloadInKb", "max_event_payload_in_kb":
		c.positive(path, v, &a.MaxEventPayloadKB)
	case "maxEventBatchSize", "MaxEventBatchSize", "max_event_batch_size":
		c.positive(path, v, &a.MaxEventBatchSize)
	case "enableUserAuthentication", "EnableUserAuthentication", "enable_user_authentication":
		if b, ok := c.boolean(path, v); ok {
			a.EnableUserAuthentication = &b
		}
	case "webhooks", "Webhooks":
		a.Webhooks = c.webhooks(path, v)
	default:
		c.unknown(path)
	}
}

func (c *converter) apps(list []any) {
	for i, item := range list {
		path := fmt.Sprintf("appManager.array.apps.%d", i)
		m, ok := item.(map[string]any)
		if !ok {
			c.warn(path, "expected an app object, got %s", kind(item))
			continue
		}
		a := heraldApp{}
		for _, k := range sortedKeys(m) {
			c.appField(&a, path+"."+k, k, m[k])
		}
		fill(&a, c.appDefaults)
		if a.ID == nil && a.Key == nil && a.Secret == nil {
			c.warn(path, "an app without id, key and secret")
			continue
		}
		c.out.Apps = append(c.out.Apps, a)
	}
	if len(c.out.Apps) == 0 && !reflect.ValueOf(c.appDefaults).IsZero() {
		c.warnings = append(c.warnings, "no apps in the soketi config: the server-level limits (presence, eventLimits, channelLimits, userAuthenticationTimeout) are per app in Herald and were not written")
	}
}

// fill copies the server-level soketi limits into the fields an app left
// unset (soketi's per-app limits override its server-level ones too).
func fill(a *heraldApp, d heraldApp) {
	set := func(dst **int, src *int) {
		if *dst == nil && src != nil {
			v := *src
			*dst = &v
		}
	}
	set(&a.MaxPresenceMembers, d.MaxPresenceMembers)
	set(&a.MaxPresenceMemberSizeKB, d.MaxPresenceMemberSizeKB)
	set(&a.MaxChannelNameLength, d.MaxChannelNameLength)
	set(&a.MaxEventChannelsAtOnce, d.MaxEventChannelsAtOnce)
	set(&a.MaxEventNameLength, d.MaxEventNameLength)
	set(&a.MaxEventPayloadKB, d.MaxEventPayloadKB)
	set(&a.MaxEventBatchSize, d.MaxEventBatchSize)
	if a.UserAuthenticationTimeout == nil && d.UserAuthenticationTimeout != nil {
		s := *d.UserAuthenticationTimeout
		a.UserAuthenticationTimeout = &s
	}
}

func (c *converter) webhooks(path string, v any) []heraldWebhook {
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr { // JSON in a string, from SOKETI_DEFAULT_APP_WEBHOOKS
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if err := dec.Decode(&list); err != nil {
				c.warn(path, "not a JSON list of webhooks")
				return nil
			}
		} else {
			c.warn(path, "expected a list of webhooks, got %s", kind(v))
			return nil
		}
	}
	var out []heraldWebhook
	for i, item := range list {
		p := fmt.Sprintf("%s.%d", path, i)
		m, ok := item.(map[string]any)
		if !ok {
			c.warn(p, "expected a webhook object, got %s", kind(item))
			continue
		}
		w := heraldWebhook{}
		for _, k := range sortedKeys(m) {
			kp := p + "." + k
			switch k {
			case "url":
				w.URL, _ = c.str(kp, m[k])
			case "event_types":
				if l, ok := m[k].([]any); ok {
					for _, e := range l {
						if s, ok := e.(string); ok {
							w.EventTypes = append(w.EventTypes, s)
						}
					}
				} else {
					c.warn(kp, "expected a list of event types")
				}
			case "headers":
				if hm, ok := m[k].(map[string]any); ok {
					w.Headers = map[string]string{}
					for hk, hv := range hm {
						if s, ok := hv.(string); ok {
							w.Headers[hk] = s
						} else {
							c.warn(kp+"."+hk, "header values must be strings")
						}
					}
				} else {
					c.warn(kp, "expected an object of headers")
				}
			case "filter":
				if fm, ok := m[k].(map[string]any); ok {
					f := heraldFilter{}
					for _, fk := range sortedKeys(fm) {
						s, _ := fm[fk].(string)
						switch fk {
						case "channel_name_starts_with":
							f.ChannelNameStartsWith = s
						case "channel_name_ends_with":
							f.ChannelNameEndsWith = s
						default:
							c.unknown(kp + "." + fk)
						}
					}
					if f != (heraldFilter{}) {
						w.Filter = &f
					}
				} else {
					c.warn(kp, "expected an object")
				}
			case "lambda_function", "lambda":
				for _, leaf := range leaves(kp, m[k]) {
					c.warn(leaf, "Herald sends webhooks over HTTP only (put an HTTPS endpoint, e.g. a Lambda function URL, in url)")
				}
			default:
				c.unknown(kp)
			}
		}
		if w.URL == "" {
			c.warn(p, "a webhook without a url (a Lambda webhook?) is left out")
			continue
		}
		out = append(out, w)
	}
	return out
}

// Scalar readers. Each reports a value of the wrong type by path (never the
// value: it may be a secret).

func (c *converter) str(path string, v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	c.warn(path, "expected a string, got %s", kind(v))
	return "", false
}

// idString accepts a number too: soketi turns numeric app ids into strings.
func (c *converter) idString(path string, v any) (string, bool) { return c.str(path, v) }

func (c *converter) integer(path string, v any) (int, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		c.warn(path, "expected a number, got %s", kind(v))
		return 0, false
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f), true
	}
	c.warn(path, "expected a whole number")
	return 0, false
}

func (c *converter) boolean(path string, v any) (bool, bool) {
	switch x := v.(type) {
	case nil:
		return false, false
	case bool:
		return x, true
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
			return b, true
		}
	case json.Number:
		if n, err := x.Int64(); err == nil && (n == 0 || n == 1) {
			return n == 1, true
		}
	}
	c.warn(path, "expected true or false, got %s", kind(v))
	return false, false
}

// limit reads a soketi limit where -1 means none; Herald's -1 means the same.
func (c *converter) limit(path string, v any, dst **int) {
	n, ok := c.integer(path, v)
	if !ok {
		return
	}
	if n < 0 {
		n = -1
	}
	if n == 0 {
		c.warn(path, "0 has no equivalent in Herald (use -1 for no limit, or a positive number)")
		return
	}
	*dst = &n
}

// positive reads a soketi limit that Herald requires to be positive (no
// "unlimited" form in Herald).
func (c *converter) positive(path string, v any, dst **int) {
	n, ok := c.integer(path, v)
	if !ok {
		return
	}
	if n < 1 {
		c.warn(path, "Herald needs a positive number here (no unlimited form), got %d; its default applies", n)
		return
	}
	*dst = &n
}

func millis(n int) string { return (time.Duration(n) * time.Millisecond).String() }

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
