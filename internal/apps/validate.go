package apps

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
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
)

// Rule is the range check of one scalar per-app key. Expect is used both
// when a value does not parse and when it is out of range, so the operator
// reads the same sentence either way.
type Rule struct {
	Expect   string
	Min, Max int64    // inclusive; nanoseconds for durations
	MinusOne bool     // -1 is allowed too and means unlimited
	ZeroHint string   // appended when the value is 0
	OneOf    []string // for strings: the allowed values
}

// Webhook limits: wide enough for any sane deployment, narrow enough to
// catch a missing unit or an extra digit. The server-wide webhook_* keys
// (internal/config) share them.
const (
	WebhookMaxBatch   = 1000
	WebhookMinTimeout = 100 * time.Millisecond
	WebhookMaxTimeout = 5 * time.Minute
	WebhookMaxRetry   = 24 * time.Hour
)

// RuleFor returns the rule of a per-app key (the last segment of its path,
// including the per-webhook batch_size, timeout and retry_for), if any.
func RuleFor(key string) (Rule, bool) {
	const (
		durHint  = ` (e.g. "30s", "2m", or 30 for seconds)`
		whHint   = ` (e.g. "4s", "500ms", or 4 for seconds)`
		maxInt   = math.MaxInt
		positive = "a positive number"
		minusOne = "-1 (unlimited) or a positive number"
	)
	switch key {
	case "max_channels_per_connection", "max_connections", "max_backend_events_per_second", "max_read_requests_per_second":
		return Rule{Expect: minusOne, Min: 1, Max: maxInt, MinusOne: true}, true
	case "client_events_per_second":
		return Rule{Expect: minusOne, Min: 1, Max: maxInt, MinusOne: true,
			ZeroHint: " (to turn client events off, set enable_client_messages: false)"}, true
	case "activity_timeout", "user_authentication_timeout":
		return Rule{Expect: "a duration between 1s and 1h" + durHint, Min: int64(time.Second), Max: int64(time.Hour)}, true
	case "max_presence_member_size_kb", "max_event_payload_kb":
		return Rule{Expect: "a size in KB between 1 and 1048576", Min: 1, Max: 1 << 20}, true
	case "max_presence_members", "max_channel_name_length", "max_event_channels_at_once",
		"max_event_name_length", "max_event_batch_size":
		return Rule{Expect: positive, Min: 1, Max: maxInt}, true
	// Per webhook target: 0 keeps the server's setting.
	case "batch_size":
		return Rule{Expect: "0 (webhook_batch_size) or a number of events between 1 and 1000", Min: 0, Max: WebhookMaxBatch}, true
	case "timeout":
		return Rule{Expect: "0 (webhook_timeout) or a duration between 100ms and 5m" + whHint, Min: 0, Max: int64(WebhookMaxTimeout)}, true
	case "retry_for":
		return Rule{Expect: "0 (webhook_retry_for) or a duration between 1s and 24h" + whHint, Min: 0, Max: int64(WebhookMaxRetry)}, true
	}
	return Rule{}, false
}

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
func Validate(a *App) []FieldError {
	var v checker
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
		v.laravelRedisURL(a.LaravelRedis.URL)
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

// laravelRedisURL checks laravel_redis.url.
func (v *checker) laravelRedisURL(raw string) {
	if p := RedisURLProblem(raw); p != "" {
		v.add("laravel_redis.url", "%s", p)
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
type checker struct{ errs []FieldError }

func (v *checker) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeFor[time.Duration]()

// rules applies RuleFor to every field of struct s that has a rule.
func (v *checker) rules(s reflect.Value, path string) {
	for _, f := range Fields(s.Type()) {
		r, ok := RuleFor(f.Key)
		if !ok {
			continue
		}
		fv := s.Field(f.Index)
		p := joinPath(path, f.Key)
		switch {
		case fv.Kind() == reflect.String:
			if !slices.Contains(r.OneOf, fv.String()) {
				v.add(p, "must be %s, got %q", r.Expect, fv.String())
			}
		case fv.CanInt():
			n := fv.Int()
			if (r.MinusOne && n == -1) || (n >= r.Min && n <= r.Max) {
				continue
			}
			got := strconv.FormatInt(n, 10)
			if fv.Type() == durationType {
				got = time.Duration(n).String()
			}
			hint := ""
			if n == 0 {
				hint = r.ZeroHint
			}
			v.add(p, "must be %s, got %s%s", r.Expect, got, hint)
		}
	}
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

	check := func(key string, n, lo int64, show string) {
		r, _ := RuleFor(key)
		if n != 0 && (n < lo || n > r.Max) {
			v.add(joinPath(path, key), "must be %s, got %s", r.Expect, show)
		}
	}
	check("batch_size", int64(w.BatchSize), 1, strconv.Itoa(w.BatchSize))
	check("timeout", int64(w.Timeout), int64(WebhookMinTimeout), w.Timeout.String())
	check("retry_for", int64(w.RetryFor), int64(time.Second), w.RetryFor.String())

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

// Field is one settable field of a struct: its yaml key and index.
type Field struct {
	Key   string
	Index int
}

// Fields lists the fields of struct type t that have a yaml key, in
// declaration order. The YAML loader, the settings codec, the CLI flags
// and validation all walk the struct through it, so a new per-app setting
// is one field with a yaml tag (and, if it has a range, one RuleFor case).
func Fields(t reflect.Type) []Field {
	out := make([]Field, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		out = append(out, Field{Key: name, Index: i})
	}
	return out
}
