package config

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// RegisterFlags registers --config and one flag per top-level scalar key
// (--host, --port, --path-prefix, --log-level, ..., --tls-key) on fs. Flags
// are plain strings parsed by Load, so that a bad value gets the same
// message as in the file or env, naming the flag.
//
// The returned func, called after fs.Parse, gives the flags the user set
// explicitly (fs.Visit), keyed by config key; --config is under FlagConfig.
// Pass the result to NewSource.
func RegisterFlags(fs *flag.FlagSet) func() map[string]string {
	names := map[string]string{FlagConfig: FlagConfig} // flag name -> config key
	fs.String(FlagConfig, "", "read the YAML config `file` (env "+EnvConfig+")")

	def := reflect.ValueOf(defaultServer()).Elem()
	keys, index := scalarFields(def.Type())
	for i, key := range keys {
		name := flagName(key)
		names[name] = key
		usage := fmt.Sprintf("%s (env %s%s)", flagHelp(key), envPrefix, upperSnake(key))
		if def.Field(index[i]).Kind() == reflect.Bool {
			// --dev-app-public alone means true, as for any Go bool flag.
			v := &boolString{s: formatDefault(def.Field(index[i]))}
			fs.Var(v, name, usage)
			continue
		}
		fs.String(name, formatDefault(def.Field(index[i])), usage)
	}
	return func() map[string]string {
		set := make(map[string]string)
		fs.Visit(func(f *flag.Flag) {
			if key, ok := names[f.Name]; ok {
				set[key] = f.Value.String()
			}
		})
		return set
	}
}

// formatDefault renders a default for the flag help: durations in the
// largest whole unit ("30m" rather than "30m0s").
func formatDefault(v reflect.Value) string {
	if v.Type() == durationType {
		d := time.Duration(v.Int())
		switch {
		case d == 0:
			return "0s"
		case d%time.Hour == 0:
			return fmt.Sprintf("%dh", d/time.Hour)
		case d%time.Minute == 0:
			return fmt.Sprintf("%dm", d/time.Minute)
		case d%time.Second == 0:
			return fmt.Sprintf("%ds", d/time.Second)
		}
		return d.String()
	}
	if v.Type() == stringsType {
		// As the flag takes it: comma separated, nothing for an empty list.
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// flagHelp is the usage line of a key's flag; the back-quoted word names
// the value in -help output.
func flagHelp(key string) string {
	const dur = " (e.g. 30s, 2m, or 30 for seconds)"
	if h, ok := webhookFlagHelp(key, dur); ok {
		return h
	}
	if h, ok := acmeFlagHelp(key); ok {
		return h
	}
	if h, ok := restartFlagHelp(key); ok {
		return h
	}
	switch key {
	case "host":
		return "listen on this `host` or IP address (with the development app: 127.0.0.1 unless set, or dev_app_public)"
	case "dev_app_public":
		return "serve the development app (public secret, used when no app is configured) on every interface, not only 127.0.0.1"
	case "port":
		return "listen on this TCP `port`"
	case "path_prefix":
		return "serve /app/{key} and /apps/{id} under this `prefix` (e.g. /ws)"
	case "log_level":
		return "log `level`: debug, info, warn or error"
	case "log_format":
		return "log `format`: auto (text on a terminal, json otherwise), text or json"
	case "shutdown_timeout":
		return "drain connections for this `duration` on SIGTERM" + dur
	case "max_request_body_kb":
		return "largest HTTP API request body, in `KB`"
	case "max_message_size_kb":
		return "largest inbound WebSocket message, in `KB`"
	case "write_queue_kb":
		return "disconnect a client whose outbound queue passes this many `KB`"
	case "cache_ttl":
		return "keep a cache channel's last event for this `duration`" + dur
	case "subscription_count_interval":
		return "coalesce subscription_count events over this `duration`" + dur
	case "api_timestamp_window":
		return "accept HTTP API auth_timestamp within this `duration` of now" + dur
	case "redis_url":
		return "Redis `URL` (redis:// or rediss://) to run as a cluster; empty runs alone"
	case "redis_prefix":
		return "`prefix` of every Redis key"
	case "redis_lease":
		return "a node silent for this `duration` is dead: the others remove its sockets and members" + dur
	case "admin_token":
		return "dashboard login `token` (prefer the env variable: flags show in ps); empty turns /dashboard off"
	case "metrics_addr":
		return "serve /metrics on this separate `host:port`; empty serves it on the main port"
	case "tls_cert":
		return "TLS certificate PEM `file` (with --tls-key)"
	case "tls_key":
		return "TLS private key PEM `file` (with --tls-cert)"
	case "tls_reload_interval":
		return "check the TLS files for a new certificate at most this often (`duration`)" + dur
	case "http_request_timeout":
		return "answer an HTTP API or dashboard request 503 when it is not done within this `duration`, Redis calls included" + dur
	case "handshake_timeout":
		return "close a connection that has not completed its upgrade request within this `duration`" + dur
	case "max_node_connections":
		return "refuse WebSocket connections past this `number` on this node (-1: no cap)"
	case "ip_connections_per_second":
		return "new WebSocket connections allowed per client IP per second (`rate`; -1: no limit)"
	case "ip_connections_burst":
		return "burst of new WebSocket connections allowed per client IP (`number`)"
	case "trusted_proxies":
		return "comma separated `CIDRs` of proxies whose X-Forwarded-For/-Proto are believed"
	case "memory_limit_mb":
		return "memory limit in `MB` for the memory guard (0: GOMEMLIMIT, else the cgroup limit)"
	case "apps_store":
		return "where apps live: config (the YAML file and HERALD_APP_*) or a database `URL`: postgres://..., mysql://..., sqlite:///path/file.db"
	case "apps_cache_ttl":
		return "serve an app looked up in a database store this long before asking again (`duration`)" + dur
	case "memory_guard_percent":
		return "refuse new connections above this `percent` of the memory limit (-1: off)"
	case "outbound_budget_mb":
		return "bytes queued for all connections, in `MB`, past which the slowest are closed and publishes get 503 from half of it (0: a quarter of the memory limit; -1: none)"
	case "saturation_delay":
		return "answer publishes with 503 while the p99 of recent deliveries (fanout to socket write) is over this `duration` (0s, the default: not watched)" + dur
	case "connection_messages_per_second":
		return "messages (any kind) one connection may send per second (`rate`; -1: no limit)"
	case "connection_messages_burst":
		return "burst of messages one connection may send (`number`)"
	case "connection_pending_messages":
		return "close a connection with this many `messages` read and not yet handled"
	case "max_workers":
		return "goroutines handling messages and HTTP requests at once (`number`)"
	}
	return "set " + key + " (see the configuration docs) to `value`"
}

// boolString is a string flag that may be given without a value (true);
// like every flag, Load parses it.
type boolString struct{ s string }

func (b *boolString) String() string     { return b.s }
func (b *boolString) Set(v string) error { b.s = v; return nil }
func (b *boolString) IsBoolFlag() bool   { return true }
