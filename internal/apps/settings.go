package apps

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-ws/herald/internal/settings"
)

// The per-app settings: one table per struct of an app (App, Webhook,
// WebhookFilter, LaravelRedis), one entry per yaml field in the field's
// order. Defaults (Defaults), the range checks (Validate), the settings
// JSON codec, the HERALD_APP_* variables of the YAML loader, the
// 'herald apps' flags and the dashboard's form are derived from them.
// A new per-app setting is a field of App with a yaml tag and an entry
// here; what a range cannot check lives in Validate.

// positive, unlimited and kbSize are the words of the common rules.
const (
	positive  = "a positive number"
	unlimited = "-1 (unlimited) or a positive number"
	kbSize    = "a size in KB between 1 and 1048576"
	durHint   = ` (e.g. "30s", "2m", or 30 for seconds)`
	whHint    = ` (e.g. "4s", "500ms", or 4 for seconds)`
)

func unlimitedOr(zeroHint string) settings.Rule {
	return settings.Rule{Expect: unlimited, Min: 1, Max: math.MaxInt, MinusOne: true, ZeroHint: zeroHint}
}

func atLeastOne() settings.Rule { return settings.Rule{Expect: positive, Min: 1, Max: math.MaxInt} }

// AppSettings is the table of App's keys.
func AppSettings() []settings.Setting {
	kb := settings.Rule{Expect: kbSize, Min: 1, Max: 1 << 20}
	upToHour := settings.Rule{Expect: "a duration between 1s and 1h" + durHint, Min: int64(time.Second), Max: int64(time.Hour)}
	return []settings.Setting{
		// The identity: columns of their own in the SQL stores.
		{Key: "id"},
		{Key: "key"},
		{Key: "secret"},
		{Key: "enabled", Default: true},

		{Key: "max_connections", Default: -1, Rule: unlimitedOr("")},
		{Key: "enable_client_messages", Default: false},
		{Key: "client_events_per_second", Default: 10,
			Rule: unlimitedOr(" (to turn client events off, set enable_client_messages: false)")},
		{Key: "max_backend_events_per_second", Default: -1, Rule: unlimitedOr("")},
		{Key: "max_read_requests_per_second", Default: -1, Rule: unlimitedOr("")},
		{Key: "max_channels_per_connection", Default: 200, Rule: unlimitedOr("")},
		{Key: "max_presence_members", Default: 100, Rule: atLeastOne()},
		{Key: "max_presence_member_size_kb", Default: 2, Rule: kb},
		{Key: "max_channel_name_length", Default: 200, Rule: atLeastOne()},
		{Key: "max_event_channels_at_once", Default: 100, Rule: atLeastOne()},
		{Key: "max_event_name_length", Default: 200, Rule: atLeastOne()},
		{Key: "max_event_payload_kb", Default: 100, Rule: kb},
		{Key: "max_event_batch_size", Default: 10, Rule: atLeastOne()},
		{Key: "enable_user_authentication", Default: false},
		{Key: "user_authentication_timeout", Default: 30 * time.Second, Rule: upToHour},
		{Key: "enable_subscription_count", Default: false},
		{Key: "enable_watchlist_events", Default: false},
		{Key: "require_tls", Default: false},
		// "*" allows any origin; Validate checks each entry.
		{Key: "allowed_origins", Default: []string{"*"}},
		{Key: "activity_timeout", Default: 120 * time.Second, Rule: upToHour},
		// A list of targets, each checked with WebhookSettings.
		{Key: "webhooks"},
		// A list of rules, each checked with HistorySettings.
		{Key: "history"},
		// Ingestion off (no URL), Laravel's default prefix.
		{Key: "laravel_redis", Default: LaravelRedis{Prefix: DefaultLaravelRedisPrefix}},
	}
}

// WebhookSettings is the table of a webhook target's keys. batch_size,
// timeout and retry_for override the server's webhook_* keys (0 keeps the
// server's; the ranges are the server's).
func WebhookSettings() []settings.Setting {
	return []settings.Setting{
		{Key: "url"},
		{Key: "event_types"},
		{Key: "headers"},
		{Key: "filter"},
		{Key: "batch_size", Rule: settings.Rule{Expect: "0 (webhook_batch_size) or a number of events between 1 and 1000",
			Min: 1, Max: WebhookMaxBatch, Zero: true}},
		{Key: "timeout", Rule: settings.Rule{Expect: "0 (webhook_timeout) or a duration between 100ms and 5m" + whHint,
			Min: int64(WebhookMinTimeout), Max: int64(WebhookMaxTimeout), Zero: true}},
		{Key: "retry_for", Rule: settings.Rule{Expect: "0 (webhook_retry_for) or a duration between 1s and 24h" + whHint,
			Min: int64(time.Second), Max: int64(WebhookMaxRetry), Zero: true}},
	}
}

// HistorySettings is the table of a history rule's keys.
func HistorySettings() []settings.Setting {
	return []settings.Setting{
		{Key: "pattern"},
		{Key: "size", Rule: settings.Rule{Expect: fmt.Sprintf("a number of events between 1 and %d", HistoryMaxSize),
			Min: 1, Max: HistoryMaxSize}},
		{Key: "ttl", Rule: settings.Rule{Expect: "a duration between 1s and 24h" + durHint,
			Min: int64(time.Second), Max: int64(HistoryMaxTTL)}},
	}
}

// webhookFilterSettings is the table of a webhook's filter.
func webhookFilterSettings() []settings.Setting {
	return []settings.Setting{{Key: "channel_name_starts_with"}, {Key: "channel_name_ends_with"}}
}

// laravelRedisSettings is the table of laravel_redis (its default is the
// laravel_redis entry's).
func laravelRedisSettings() []settings.Setting {
	return []settings.Setting{{Key: "url"}, {Key: "mode"}, {Key: "prefix"}}
}

// Tables binds the per-app tables to App and the structs within it, App's
// first. A walker of an app looks a key up in the table of the struct it
// is in.
func Tables() settings.Tables {
	return settings.Tables{
		settings.MustBind[App](AppSettings()),
		settings.MustBind[Webhook](WebhookSettings()),
		settings.MustBind[WebhookFilter](webhookFilterSettings()),
		settings.MustBind[LaravelRedis](laravelRedisSettings()),
		settings.MustBind[HistoryRule](HistorySettings()),
	}
}

// expectation describes the values a field takes, for errors; a block is
// a JSON object here.
func expectation(r settings.Rule, t reflect.Type) string {
	if r.Expect == "" && t.Kind() == reflect.Struct {
		return "an object"
	}
	return settings.Expectation(r, t)
}

// The settings codec: an app's per-app settings (every yaml key of App but
// the identity columns id, key, secret and enabled) as one JSON object,
// the "settings" column of the SQL stores. Keys are the YAML keys, values
// as in YAML: numbers, booleans, strings, lists; durations as Go duration
// strings ("30s") or whole seconds. A missing key takes Herald's default,
// so '{}' is a valid row and a future default reaches every app that did
// not set the key. The codec walks App by reflection over its yaml tags:
// a new per-app setting needs no change here.

// MaxSettingsBytes bounds the settings of one app (a hostile or broken row
// must not cost the node its memory).
const MaxSettingsBytes = 1 << 20

// identityKeys are App's yaml keys that are columns of their own.
var identityKeys = []string{"id", "key", "secret", "enabled"}

// SettingKeys lists the per-app setting keys (the settings object's keys),
// in App's declaration order.
func SettingKeys() []string {
	var out []string
	for _, s := range AppSettings() {
		if !slices.Contains(identityKeys, s.Key) {
			out = append(out, s.Key)
		}
	}
	return out
}

// EncodeSettings returns a's settings as JSON, with only the keys whose
// value differs from Defaults().
func EncodeSettings(a *App) ([]byte, error) {
	def := reflect.ValueOf(Defaults())
	v := reflect.ValueOf(a).Elem()
	out := make(map[string]any)
	for _, f := range settings.Fields(v.Type()) {
		if slices.Contains(identityKeys, f.Key) {
			continue
		}
		fv := v.Field(f.Index)
		if reflect.DeepEqual(fv.Interface(), def.Field(f.Index).Interface()) {
			continue
		}
		out[f.Key] = encodeValue(fv)
	}
	return json.Marshal(out)
}

// encodeValue turns a field into what encoding/json writes, durations as
// strings and structs by their yaml keys.
func encodeValue(v reflect.Value) any {
	switch {
	case v.Type() == settings.DurationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := make(map[string]any)
		for _, f := range settings.Fields(v.Type()) {
			fv := v.Field(f.Index)
			if fv.IsZero() {
				continue
			}
			m[f.Key] = encodeValue(fv)
		}
		return m
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		list := make([]any, v.Len())
		for i := range v.Len() {
			list[i] = encodeValue(v.Index(i))
		}
		return list
	}
	return v.Interface()
}

// DecodeSettings applies the settings JSON data to a (start from
// Defaults()). Unknown keys, values of the wrong type and JSON that does
// not parse are returned as FieldErrors naming the key; the values are
// not range checked here (Validate does that).
func DecodeSettings(data []byte, a *App) []FieldError { return decodeSettings(data, a, Tables()) }

// decodeSettings is DecodeSettings with the tables bound already.
func decodeSettings(data []byte, a *App, ts settings.Tables) []FieldError {
	if len(data) > MaxSettingsBytes {
		return []FieldError{{Path: "settings", Msg: fmt.Sprintf("must be at most %d bytes of JSON, got %d", MaxSettingsBytes, len(data))}}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // NULL or '': every default
	}
	d := decoder{tables: ts}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return []FieldError{{Path: "settings", Msg: "must be a JSON object of per-app settings: " + jsonProblem(err)}}
	}
	if m == nil {
		return nil // JSON null
	}
	d.object(m, reflect.ValueOf(a).Elem(), "", identityKeys)
	return d.errs
}

// jsonProblem words a JSON error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "got a JSON " + te.Value + ", not an object"
	}
	return "invalid JSON"
}

type decoder struct {
	tables settings.Tables
	errs   []FieldError
}

func (d *decoder) add(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// object sets the fields of struct v from m; keys in skip are not settable.
func (d *decoder) object(m map[string]json.RawMessage, v reflect.Value, path string, skip []string) {
	fields := settings.Fields(v.Type())
	known := make([]string, 0, len(fields))
	for _, f := range fields {
		if !slices.Contains(skip, f.Key) {
			known = append(known, f.Key)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.IndexFunc(fields, func(f settings.Field) bool { return f.Key == k })
		if i < 0 || slices.Contains(skip, k) {
			d.add(joinPath(path, SafeKey(k)), "is not a per-app setting (known: %s)", strings.Join(known, ", "))
			continue
		}
		d.value(m[k], v.Field(fields[i].Index), joinPath(path, k), d.tables.Rule(v.Type(), k))
	}
}

// value decodes raw into v, which is a field of App or Webhook (with rule
// r) or an entry of a list.
func (d *decoder) value(raw json.RawMessage, v reflect.Value, path string, r settings.Rule) {
	t := v.Type()
	want := expectation(r, t)
	bad := func() { d.add(path, "must be %s, got %s", want, describeJSON(raw)) }
	if string(bytes.TrimSpace(raw)) == "null" {
		return // SQL NULL copied into the object: the default
	}
	switch {
	case t == settings.DurationType:
		var s string
		if json.Unmarshal(raw, &s) == nil {
			dur, err := settings.ParseDuration(s)
			if err != nil {
				bad()
				return
			}
			v.SetInt(int64(dur))
			return
		}
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			bad()
			return
		}
		dur, err := settings.ParseDuration(n.String())
		if err != nil {
			bad()
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.Bool:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			// MySQL has no boolean: its JSON_OBJECT writes 0 and 1.
			switch string(bytes.TrimSpace(raw)) {
			case "0":
			case "1":
				b = true
			default:
				bad()
				return
			}
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int:
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			bad()
			return
		}
		i, err := strconv.ParseInt(n.String(), 10, strconv.IntSize)
		if err != nil {
			bad()
			return
		}
		v.SetInt(i)
	case t.Kind() == reflect.String:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			bad()
			return
		}
		v.SetString(s)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		var list []string
		if json.Unmarshal(raw, &list) != nil {
			bad()
			return
		}
		if list == nil {
			list = []string{}
		}
		v.Set(reflect.ValueOf(list))
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		var m map[string]string
		if json.Unmarshal(raw, &m) != nil {
			bad()
			return
		}
		v.Set(reflect.ValueOf(m))
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			bad()
			return
		}
		if len(list) > MaxWebhooks*4 {
			d.add(path, "must list at most %d entries, got %d", MaxWebhooks, len(list))
			return
		}
		out := reflect.MakeSlice(t, len(list), len(list))
		for i, item := range list {
			d.value(item, out.Index(i), indexPath(path, i), settings.Rule{})
		}
		v.Set(out)
	case t.Kind() == reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || m == nil {
			bad()
			return
		}
		d.object(m, v, path, nil)
	default:
		bad()
	}
}

// describeJSON names what a JSON value is, without echoing long input.
func describeJSON(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case s == "":
		return "nothing"
	case s[0] == '{':
		return "an object"
	case s[0] == '[':
		return "a list"
	}
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// Setting describes one per-app setting for a command-line flag or a form.
type Setting struct {
	Key    string       // yaml key, e.g. "max_connections"
	Type   reflect.Type // the field's type
	Expect string       // what values it takes
}

// Settings lists the per-app settings in App's declaration order.
func Settings() []Setting {
	tb := settings.MustBind[App](AppSettings())
	var out []Setting
	var a App
	tb.Each(reflect.ValueOf(&a).Elem(), func(s settings.Setting, f reflect.Value) {
		if slices.Contains(identityKeys, s.Key) {
			return
		}
		ft := f.Type()
		exp := expectation(s.Rule, ft)
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			exp = "a JSON list of objects, as in the YAML file"
		}
		out = append(out, Setting{Key: s.Key, Type: ft, Expect: exp})
	})
	return out
}

// SetSetting sets the per-app setting key of a from raw, as written on a
// command line: numbers, true/false (yes/no/on/off), durations ("30s" or
// seconds), comma separated lists, JSON for webhooks. The value is not
// range checked (Validate does that).
func SetSetting(a *App, key, raw string) error {
	tb := settings.MustBind[App](AppSettings())
	s, ok := tb.Lookup(key)
	if !ok || slices.Contains(identityKeys, key) {
		return fmt.Errorf("%q is not a per-app setting", SafeKey(key))
	}
	fv, _ := tb.Field(reflect.ValueOf(a).Elem(), key)
	if settings.IsScalar(fv.Type()) {
		if settings.SetScalar(fv, raw) != nil {
			return fmt.Errorf("%s: must be %s, got %q", key, expectation(s.Rule, fv.Type()), clipID(raw))
		}
		return nil
	}
	// Structured settings (webhooks, laravel_redis) take JSON, decoded as
	// in a row.
	d := decoder{tables: Tables()}
	d.value(json.RawMessage(raw), fv, key, s.Rule)
	if len(d.errs) > 0 {
		return d.errs[0]
	}
	return nil
}

// View is the app as one JSON object for the CLI and the admin API: id,
// key, enabled and every setting (defaults included), never the secret.
func View(a *App) map[string]any {
	v := reflect.ValueOf(a).Elem()
	out := make(map[string]any)
	for _, f := range settings.Fields(v.Type()) {
		if f.Key == "secret" {
			continue
		}
		fv := v.Field(f.Index)
		if fv.Kind() == reflect.Slice && fv.IsNil() {
			out[f.Key] = []any{}
			continue
		}
		out[f.Key] = encodeValue(fv)
	}
	return out
}

// DecodeRow builds an App from a store row: the identity columns and the
// settings JSON, over Defaults(), then Validate. A row that does not
// decode or validate gives an *InvalidError naming the app and the fields.
func DecodeRow(id, key, secret string, enabled bool, settingsJSON []byte) (*App, error) {
	// One binding of the tables for the whole row: a store decodes every
	// row it reads.
	ts := Tables()
	var a App
	ts.Of(reflect.TypeFor[App]()).SetDefaults(&a)
	a.ID, a.Key, a.Secret, a.Enabled = id, key, secret, enabled
	if errs := decodeSettings(settingsJSON, &a, ts); len(errs) > 0 {
		return nil, &InvalidError{App: clipID(id), Fields: errs}
	}
	if errs := validate(&a, ts); len(errs) > 0 {
		return nil, &InvalidError{App: clipID(a.ID), Fields: errs}
	}
	return &a, nil
}
