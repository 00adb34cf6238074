package apps

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-ws/herald/internal/redisurl"
	"github.com/herald-ws/herald/internal/settings"
)

// Validation is the one owner of the per-app rules: the YAML loader
// (internal/config) and every Store check an app with Validate, so an app
// is accepted or refused the same way wherever it lives.

// Bounds that keep one app's settings from costing the node: a store row
// is outside input, and a YAML file can be generated too.
const (
	// MaxIDLength bounds an app id and key (they appear in URL paths and
	// in the stores' VARCHAR(255) columns).
	MaxIDLength = 255
	// MaxSecretLength bounds an app secret.
	MaxSecretLength = 255
	// MaxOrigins bounds allowed_origins; every handshake walks the list.
	MaxOrigins = 1000
	// MaxOriginLength bounds one allowed origin.
	MaxOriginLength = 512
	// MaxWebhooks bounds the webhook targets of one app.
	MaxWebhooks = 64
	// MaxHistoryRules bounds the history rules of one app; a publish walks
	// them for each channel.
	MaxHistoryRules = 64
	// MaxHistoryPatternLength bounds one history rule's pattern.
	MaxHistoryPatternLength = 200
)

// History limits: a channel keeps at most HistoryMaxSize events for at
// most HistoryMaxTTL.
const (
	HistoryMaxSize = 10000
	HistoryMaxTTL  = 24 * time.Hour
)

// Webhook limits: wide enough for any sane deployment, narrow enough to
// catch a missing unit or an extra digit. The server-wide webhook_* keys
// (internal/config) share them; WebhookSettings holds the per-target rules.
const (
	WebhookMaxBatch   = 1000
	WebhookMinTimeout = 100 * time.Millisecond
	WebhookMaxTimeout = 5 * time.Minute
	WebhookMaxRetry   = 24 * time.Hour
)

// WebhookEventTypes are the event types a webhook may subscribe to.
func WebhookEventTypes() []string {
	return []string{"channel_occupied", "channel_vacated", "member_added", "member_removed",
		"client_event", "cache_miss", "subscription_count"}
}

// FieldError is one problem with one setting of an app. Path is relative
// to the app: "max_connections", "webhooks[0].url".
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// InvalidError is an app refused by Validate (or a row that does not
// decode): it names the app and every bad field, never the secret.
type InvalidError struct {
	App    string // the app id, or "" when it is unknown
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	if e.App != "" {
		fmt.Fprintf(&b, "app %q: ", e.App)
	}
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Check is Validate as an error: nil, or an *InvalidError.
func Check(a *App) error {
	if errs := Validate(a); len(errs) > 0 {
		return &InvalidError{App: clipID(a.ID), Fields: errs}
	}
	return nil
}

// clipID keeps an id fit for a log line or an error.
func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Validate checks one app and returns every problem. The secret is only
// checked for emptiness and length so that it cannot leak into a message.
func Validate(a *App) []FieldError { return validate(a, Tables()) }

// validate is Validate with the tables bound already.
func validate(a *App, ts settings.Tables) []FieldError {
	v := checker{tables: ts}
	for _, f := range []struct{ key, val string }{{"id", a.ID}, {"key", a.Key}} {
		switch {
		case f.val == "":
			v.add(f.key, "must not be empty")
		case len(f.val) > MaxIDLength:
			v.add(f.key, "must be at most %d characters, got %d", MaxIDLength, len(f.val))
		case strings.IndexFunc(f.val, func(r rune) bool { return !IsIDChar(r) }) >= 0:
			v.add(f.key, `must use only letters, digits and "_.-" (it appears in URL paths), got %q`, f.val)
		}
	}
	switch {
	case a.Secret == "":
		v.add("secret", "must not be empty")
	case len(a.Secret) > MaxSecretLength:
		v.add("secret", "must be at most %d bytes", MaxSecretLength)
	}

	v.rules(reflect.ValueOf(a).Elem(), "")
	if a.ActivityTimeout%time.Second != 0 {
		v.add("activity_timeout", "must be a whole number of seconds (clients receive it in seconds), got %s", a.ActivityTimeout)
	}

	const op = "allowed_origins"
	switch {
	case len(a.AllowedOrigins) == 0:
		v.add(op, `must list at least one origin; use ["*"] to allow any`)
	case len(a.AllowedOrigins) > MaxOrigins:
		v.add(op, "must list at most %d origins, got %d", MaxOrigins, len(a.AllowedOrigins))
	default:
		for i, o := range a.AllowedOrigins {
			switch {
			case len(o) > MaxOriginLength:
				v.add(indexPath(op, i), "must be at most %d characters, got %d", MaxOriginLength, len(o))
			case o == "" || strings.ContainsAny(o, " \t\r\n,"):
				v.add(indexPath(op, i), `must be an origin (e.g. "https://example.com"), a host pattern (e.g. "*.example.com") or "*", got %q`, o)
			}
		}
	}

	if a.LaravelRedis.URL != "" {
		v.laravelRedisURL(a.LaravelRedis.Mode, a.LaravelRedis.URL)
	}

	if len(a.History) > MaxHistoryRules {
		v.add("history", "must list at most %d rules, got %d", MaxHistoryRules, len(a.History))
	} else {
		for i := range a.History {
			v.historyRule(&a.History[i], indexPath("history", i))
		}
	}

	if len(a.Webhooks) > MaxWebhooks {
		v.add("webhooks", "must list at most %d targets, got %d", MaxWebhooks, len(a.Webhooks))
	} else {
		for i := range a.Webhooks {
			v.webhook(&a.Webhooks[i], indexPath("webhooks", i))
		}
	}
	return v.errs
}

// laravelRedisURL checks laravel_redis.url, read as laravel_redis.mode
// says.
func (v *checker) laravelRedisURL(mode, raw string) {
	switch mode {
	case "", redisurl.Single:
		if p := RedisURLProblem(raw); p != "" {
			v.add("laravel_redis.url", "%s", p)
		}
	case redisurl.Sentinel, redisurl.Cluster:
		if _, err := redisurl.Parse(mode, raw); err != nil {
			v.add("laravel_redis.url", "must be a %s URL (see docs/scaling.md): %v", mode, err)
		}
	default:
		v.add("laravel_redis.mode", "must be one of %s, got %q", strings.Join(redisurl.Modes, ", "), mode)
	}
}

// RedisURLProblem says what is wrong with a Redis URL ("" when nothing),
// without quoting it: it may hold a password.
func RedisURLProblem(raw string) string {
	const want = "must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0)"
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return want + "; it does not parse as a URL"
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return fmt.Sprintf("%s, got scheme %q", want, u.Scheme)
	case u.Host == "":
		return want + ", got no host"
	case !validRedisDB(u.Path):
		return want + "; the path must be a database number such as /0"
	}
	return ""
}

// validRedisDB accepts the path of a Redis URL: none, "/" or "/N".
func validRedisDB(p string) bool {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0
}

// checker collects the problems of one app.
type checker struct {
	tables settings.Tables
	errs   []FieldError
}

func (v *checker) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// rules checks every field of struct s (of an app) against its rule.
func (v *checker) rules(s reflect.Value, path string) {
	tb := v.tables.Of(s.Type())
	tb.Problems(s, func(key, msg string) { v.add(joinPath(path, key), "%s", msg) })
}

// historyRule checks one history rule.
func (v *checker) historyRule(r *HistoryRule, path string) {
	pp := joinPath(path, "pattern")
	switch {
	case r.Pattern == "":
		v.add(pp, `must be a channel name or a glob such as "orders-*", got nothing`)
	case len(r.Pattern) > MaxHistoryPatternLength:
		v.add(pp, "must be at most %d characters, got %d", MaxHistoryPatternLength, len(r.Pattern))
	case strings.ContainsAny(r.Pattern, " \t\r\n\x00"):
		v.add(pp, "must be a channel name or a glob without spaces, got %q", clipID(r.Pattern))
	}
	// size and ttl.
	v.rules(reflect.ValueOf(r).Elem(), path)
}

// webhook checks one webhook. The URL and header values are not echoed:
// they often carry tokens.
func (v *checker) webhook(w *Webhook, path string) {
	up := joinPath(path, "url")
	const want = "must be an http:// or https:// URL"
	if w.URL == "" {
		v.add(up, "%s, got nothing", want)
	} else if u, err := url.Parse(w.URL); err != nil {
		v.add(up, "%s; it does not parse as a URL", want)
	} else if u.Scheme != "http" && u.Scheme != "https" {
		v.add(up, "%s, got scheme %q", want, u.Scheme)
	} else if u.Host == "" {
		v.add(up, "%s with a host", want)
	}

	ep := joinPath(path, "event_types")
	types := WebhookEventTypes()
	if len(w.EventTypes) == 0 {
		v.add(ep, "must list at least one of %s", strings.Join(types, ", "))
	}
	for i, t := range w.EventTypes {
		if !slices.Contains(types, t) {
			v.add(indexPath(ep, i), "must be one of %s, got %q", strings.Join(types, ", "), clipID(t))
		}
	}

	// batch_size, timeout, retry_for.
	v.rules(reflect.ValueOf(w).Elem(), path)

	hp := joinPath(path, "headers")
	names := make([]string, 0, len(w.Headers))
	for name := range w.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := joinPath(hp, SafeKey(name))
		switch canon := http.CanonicalHeaderKey(name); {
		case !validHeaderName(name):
			v.add(p, "%q is not a valid HTTP header name", SafeKey(name))
		case ReservedWebhookHeader(canon):
			v.add(p, "is set by Herald on every webhook and cannot be overridden")
		case strings.ContainsAny(w.Headers[name], "\r\n\x00"):
			v.add(p, "value must not contain line breaks or NUL bytes")
		}
	}
}

// IsIDChar reports whether r may appear in an app id or key: they are used
// in URL paths unescaped.
func IsIDChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

// ReservedWebhookHeader reports whether Herald sets the header on every
// webhook itself (a target's headers cannot override it).
func ReservedWebhookHeader(canonical string) bool {
	switch canonical {
	case "Content-Type", "X-Pusher-Key", "X-Pusher-Signature", "X-Herald-Batch-Id", "Content-Length", "Host", "Transfer-Encoding":
		return true
	}
	return false
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// SafeKey shortens a key for a message. A key with a space in it is most
// likely "key value" with the colon missing, and the value may be a secret,
// so only the first word is shown.
func SafeKey(k string) string {
	if i := strings.IndexAny(k, " \t\r\n"); i >= 0 {
		k = k[:i] + "…"
	}
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return k
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
