// Package apps holds the settings of the applications Herald serves and the
// stores that look them up by id (HTTP API) or key (WebSocket).
package apps

import (
	"context"
	"errors"
	"time"

	"github.com/herald-ws/herald/internal/settings"
)

// App is one tenant: its credentials and its limits. An App is immutable once
// it has been handed out by a Store; a change in settings yields a new value.
type App struct {
	ID     string `yaml:"id" json:"id"`
	Key    string `yaml:"key" json:"key"`
	Secret string `yaml:"secret" json:"-"`

	// Enabled false refuses connections with 4003 and API calls with 403.
	Enabled bool `yaml:"enabled" json:"enabled"`

	// MaxConnections caps concurrent connections for the app (-1: no cap).
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// EnableClientMessages allows client-* events on private and presence channels.
	EnableClientMessages bool `yaml:"enable_client_messages" json:"enable_client_messages"`
	// ClientEventsPerSecond limits client events per connection (-1: no limit).
	ClientEventsPerSecond int `yaml:"client_events_per_second" json:"client_events_per_second"`
	// MaxBackendEventsPerSecond limits HTTP API triggers (points = channels; -1: no limit).
	MaxBackendEventsPerSecond int `yaml:"max_backend_events_per_second" json:"max_backend_events_per_second"`
	// MaxReadRequestsPerSecond limits HTTP API GET requests (-1: no limit).
	MaxReadRequestsPerSecond int `yaml:"max_read_requests_per_second" json:"max_read_requests_per_second"`

	// MaxChannelsPerConnection caps the channels one connection may be
	// subscribed to at once (-1: no cap).
	MaxChannelsPerConnection int `yaml:"max_channels_per_connection" json:"max_channels_per_connection"`

	MaxPresenceMembers      int `yaml:"max_presence_members" json:"max_presence_members"`
	MaxPresenceMemberSizeKB int `yaml:"max_presence_member_size_kb" json:"max_presence_member_size_kb"`
	MaxChannelNameLength    int `yaml:"max_channel_name_length" json:"max_channel_name_length"`
	MaxEventChannelsAtOnce  int `yaml:"max_event_channels_at_once" json:"max_event_channels_at_once"`
	MaxEventNameLength      int `yaml:"max_event_name_length" json:"max_event_name_length"`
	MaxEventPayloadKB       int `yaml:"max_event_payload_kb" json:"max_event_payload_kb"`
	MaxEventBatchSize       int `yaml:"max_event_batch_size" json:"max_event_batch_size"`

	// EnableUserAuthentication closes connections that do not sign in within
	// UserAuthenticationTimeout (4009).
	EnableUserAuthentication  bool          `yaml:"enable_user_authentication" json:"enable_user_authentication"`
	UserAuthenticationTimeout time.Duration `yaml:"user_authentication_timeout" json:"user_authentication_timeout"`

	// EnableSubscriptionCount sends pusher_internal:subscription_count on
	// non-presence channels when their subscriber count changes.
	EnableSubscriptionCount bool `yaml:"enable_subscription_count" json:"enable_subscription_count"`
	// EnableWatchlistEvents sends online/offline events for the ids in a
	// signed-in user's watchlist.
	EnableWatchlistEvents bool `yaml:"enable_watchlist_events" json:"enable_watchlist_events"`

	// RequireTLS refuses plain ws:// connections with 4000.
	RequireTLS bool `yaml:"require_tls" json:"require_tls"`
	// AllowedOrigins are exact origins or host patterns ("*.example.com");
	// "*" (the default) allows any origin.
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`

	// ActivityTimeout is the value sent in connection_established: how long a
	// client may stay silent before it pings, and the idle time after which
	// the server pings it.
	ActivityTimeout time.Duration `yaml:"activity_timeout" json:"activity_timeout"`

	Webhooks []Webhook `yaml:"webhooks" json:"webhooks,omitempty"`

	// History keeps the recent events of the channels its rules match, so
	// that a client reconnecting can recover what it missed (docs/recovery.md).
	// The first rule whose pattern matches a channel applies; none by default.
	History []HistoryRule `yaml:"history" json:"history,omitempty"`

	// LaravelRedis, when its URL is set, makes Herald ingest what Laravel's
	// redis broadcaster publishes for this app (internal/ingest). Off by
	// default.
	LaravelRedis LaravelRedis `yaml:"laravel_redis" json:"laravel_redis"`
}

// LaravelRedis is the Redis connection an app's Laravel backend broadcasts
// on with its redis broadcaster (BROADCAST_CONNECTION=redis): Laravel
// PUBLISHes {"event","data","socket"} to Prefix+channel, and Herald
// broadcasts each message as if it came through the HTTP API.
type LaravelRedis struct {
	// URL is a redis:// or rediss:// URL of the Redis server Laravel
	// publishes to; "" turns ingestion off. It may hold a password, so it
	// is never logged.
	URL string `yaml:"url" json:"url,omitempty"`
	// Mode says how URL is read, as the cluster's redis_mode: "single"
	// (or ""), "sentinel" (Laravel's Redis behind Redis Sentinel) or
	// "cluster" (a Redis Cluster); internal/redisurl parses both.
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// Prefix is the Redis connection's prefix option in Laravel's
	// config/database.php, which Laravel puts before every channel name
	// (DefaultLaravelRedisPrefix unless APP_NAME or REDIS_PREFIX change it).
	Prefix string `yaml:"prefix" json:"prefix"`
}

// DefaultLaravelRedisPrefix is Laravel's default Redis prefix (since
// Laravel 8) for an app named "Laravel".
const DefaultLaravelRedisPrefix = "laravel_database_"

// Enabled reports whether ingestion is on.
func (l LaravelRedis) Enabled() bool { return l.URL != "" }

// Webhook is one webhook target of an app.
type Webhook struct {
	URL        string            `yaml:"url" json:"url"`
	EventTypes []string          `yaml:"event_types" json:"event_types"`
	Headers    map[string]string `yaml:"headers" json:"headers,omitempty"`
	Filter     WebhookFilter     `yaml:"filter" json:"filter"`
	// BatchSize, Timeout and RetryFor override the server's webhook_batch_size,
	// webhook_timeout and webhook_retry_for for this target (0: the server's).
	BatchSize int           `yaml:"batch_size" json:"batch_size,omitempty"`
	Timeout   time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	RetryFor  time.Duration `yaml:"retry_for" json:"retry_for,omitempty"`
}

// HistoryRule keeps the last Size events of the channels matching Pattern,
// each for at most TTL (and the whole history while an event arrived within
// TTL).
type HistoryRule struct {
	// Pattern is a channel name, or a glob where "*" matches any run of
	// characters ("orders-*", "private-chat-*-log").
	Pattern string        `yaml:"pattern" json:"pattern"`
	Size    int           `yaml:"size" json:"size"`
	TTL     time.Duration `yaml:"ttl" json:"ttl"`
}

// Matches reports whether channel matches the rule's pattern.
func (r *HistoryRule) Matches(channel string) bool { return globMatch(r.Pattern, channel) }

// globMatch matches s against pattern, where '*' matches any run of bytes
// (empty included) and every other byte itself. Iterative with one
// backtrack point, so a hostile pattern costs O(len(pattern)*len(s)) at
// worst, never exponential.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// HistoryRule returns the first history rule matching channel; ok is false
// when none does (the common case costs one length check).
func (a *App) HistoryRule(channel string) (rule HistoryRule, ok bool) {
	for i := range a.History {
		if a.History[i].Matches(channel) {
			return a.History[i], true
		}
	}
	return HistoryRule{}, false
}

// WebhookFilter narrows the channels a webhook reports on (both must match when set).
type WebhookFilter struct {
	ChannelNameStartsWith string `yaml:"channel_name_starts_with" json:"channel_name_starts_with,omitempty"`
	ChannelNameEndsWith   string `yaml:"channel_name_ends_with" json:"channel_name_ends_with,omitempty"`
}

// Defaults returns an App with every setting at Herald's default (the
// AppSettings table's); callers fill in the identity.
func Defaults() App {
	var a App
	settings.MustBind[App](AppSettings()).SetDefaults(&a)
	return a
}

// MaxEventPayloadBytes is the largest accepted event data, in bytes.
func (a *App) MaxEventPayloadBytes() int { return a.MaxEventPayloadKB * 1024 }

// MaxPresenceMemberBytes is the largest accepted presence user_info, in bytes.
func (a *App) MaxPresenceMemberBytes() int { return a.MaxPresenceMemberSizeKB * 1024 }

// ErrNotFound is returned by a Store when no app matches.
var ErrNotFound = errors.New("app not found")

// Store finds apps. Implementations must be safe for concurrent use and
// return ErrNotFound (possibly wrapped) for an unknown id or key.
type Store interface {
	ByID(ctx context.Context, id string) (*App, error)
	ByKey(ctx context.Context, key string) (*App, error)
	// All lists every app (for the dashboard and metrics).
	All(ctx context.Context) ([]*App, error)
}

// Static is a Store over a fixed list of apps, as loaded from the config.
type Static struct {
	byID  map[string]*App
	byKey map[string]*App
	all   []*App
}

// NewStatic builds a Static store. It rejects duplicate ids and keys.
func NewStatic(list []App) (*Static, error) {
	s := &Static{byID: make(map[string]*App, len(list)), byKey: make(map[string]*App, len(list))}
	for i := range list {
		a := list[i]
		if _, dup := s.byID[a.ID]; dup {
			return nil, errors.New("duplicate app id " + a.ID)
		}
		if _, dup := s.byKey[a.Key]; dup {
			return nil, errors.New("duplicate app key " + a.Key)
		}
		s.byID[a.ID] = &a
		s.byKey[a.Key] = &a
		s.all = append(s.all, &a)
	}
	return s, nil
}

// ByID implements Store.
func (s *Static) ByID(_ context.Context, id string) (*App, error) {
	if a, ok := s.byID[id]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

// ByKey implements Store.
func (s *Static) ByKey(_ context.Context, key string) (*App, error) {
	if a, ok := s.byKey[key]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

// All implements Store.
func (s *Static) All(_ context.Context) ([]*App, error) {
	out := make([]*App, len(s.all))
	copy(out, s.all)
	return out, nil
}

// ErrExists is returned by Create when the id or the key is taken.
var ErrExists = errors.New("an app with this id or key already exists")

// ErrReadOnly is returned by the write operations of a store that cannot
// be written (the config store: edit the YAML file or the environment).
var ErrReadOnly = errors.New("the config apps store is read-only: apps come from the YAML file and HERALD_APP_* variables; set apps_store to a database to manage apps at run time")

// Writer is a Store whose apps can be changed at run time.
type Writer interface {
	Store
	// Create adds a valid app; ErrExists when its id or key is taken.
	Create(ctx context.Context, a *App) error
	// Update replaces the app with a's id; ErrNotFound when there is none.
	Update(ctx context.Context, a *App) error
	// Delete removes the app; ErrNotFound when there is none.
	Delete(ctx context.Context, id string) error
}
