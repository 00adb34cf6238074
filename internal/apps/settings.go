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
)

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
	for _, f := range Fields(reflect.TypeFor[App]()) {
		if !slices.Contains(identityKeys, f.Key) {
			out = append(out, f.Key)
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
	for _, f := range Fields(v.Type()) {
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
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := make(map[string]any)
		for _, f := range Fields(v.Type()) {
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
func DecodeSettings(data []byte, a *App) []FieldError {
	if len(data) > MaxSettingsBytes {
		return []FieldError{{Path: "settings", Msg: fmt.Sprintf("must be at most %d bytes of JSON, got %d", MaxSettingsBytes, len(data))}}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // NULL or '': every default
	}
	var d decoder
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

type decoder struct{ errs []FieldError }

func (d *decoder) add(path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// object sets the fields of struct v from m; keys in skip are not settable.
func (d *decoder) object(m map[string]json.RawMessage, v reflect.Value, path string, skip []string) {
	fields := Fields(v.Type())
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
		i := slices.IndexFunc(fields, func(f Field) bool { return f.Key == k })
		if i < 0 || slices.Contains(skip, k) {
			d.add(joinPath(path, SafeKey(k)), "is not a per-app setting (known: %s)", strings.Join(known, ", "))
			continue
		}
		d.value(m[k], v.Field(fields[i].Index), joinPath(path, k))
	}
}

// value decodes raw into v, which is a field of App or Webhook.
func (d *decoder) value(raw json.RawMessage, v reflect.Value, path string) {
	t := v.Type()
	want := Expectation(leafKey(path), t)
	bad := func() { d.add(path, "must be %s, got %s", want, describeJSON(raw)) }
	if string(bytes.TrimSpace(raw)) == "null" {
		return // SQL NULL copied into the object: the default
	}
	switch {
	case t == durationType:
		var s string
		if json.Unmarshal(raw, &s) == nil {
			dur, err := ParseDuration(s)
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
		dur, err := ParseDuration(n.String())
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
			d.value(item, out.Index(i), indexPath(path, i))
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

// leafKey is the last key of path without indexes.
func leafKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '['); i >= 0 {
		path = path[:i]
	}
	return path
}

// Expectation describes the values a per-app key accepts, for errors.
func Expectation(key string, t reflect.Type) string {
	if r, ok := RuleFor(key); ok {
		return r.Expect
	}
	switch {
	case t == durationType:
		return `a duration (e.g. "30s", "2m", or 30 for seconds)`
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of strings"
	}
	switch t.Kind() {
	case reflect.Int:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return "a mapping of names to strings"
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return "a " + t.String()
}

// errBadValue means a raw value does not parse as the field's type.
var errBadValue = errors.New("bad value")

// ParseDuration accepts a whole number of seconds or a Go duration string,
// as the YAML loader does.
func ParseDuration(raw string) (time.Duration, error) {
	s := strings.TrimSpace(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, errBadValue
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errBadValue
	}
	return d, nil
}

// Setting describes one per-app setting for a command-line flag or a form.
type Setting struct {
	Key    string       // yaml key, e.g. "max_connections"
	Type   reflect.Type // the field's type
	Expect string       // what values it takes
}

// Settings lists the per-app settings in App's declaration order.
func Settings() []Setting {
	t := reflect.TypeFor[App]()
	var out []Setting
	for _, f := range Fields(t) {
		if slices.Contains(identityKeys, f.Key) {
			continue
		}
		ft := t.Field(f.Index).Type
		exp := Expectation(f.Key, ft)
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			exp = "a JSON list of objects, as in the YAML file"
		}
		out = append(out, Setting{Key: f.Key, Type: ft, Expect: exp})
	}
	return out
}

// SetSetting sets the per-app setting key of a from raw, as written on a
// command line: numbers, true/false (yes/no/on/off), durations ("30s" or
// seconds), comma separated lists, JSON for webhooks. The value is not
// range checked (Validate does that).
func SetSetting(a *App, key, raw string) error {
	v := reflect.ValueOf(a).Elem()
	i := slices.IndexFunc(Fields(v.Type()), func(f Field) bool { return f.Key == key })
	if i < 0 || slices.Contains(identityKeys, key) {
		return fmt.Errorf("%q is not a per-app setting", SafeKey(key))
	}
	fv := v.Field(Fields(v.Type())[i].Index)
	t := fv.Type()
	fail := func() error { return fmt.Errorf("%s: must be %s, got %q", key, Expectation(key, t), clipID(raw)) }
	switch {
	case t == durationType:
		d, err := ParseDuration(raw)
		if err != nil {
			return fail()
		}
		fv.SetInt(int64(d))
	case t.Kind() == reflect.Bool:
		b, ok := parseBool(raw)
		if !ok {
			return fail()
		}
		fv.SetBool(b)
	case t.Kind() == reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, strconv.IntSize)
		if err != nil {
			return fail()
		}
		fv.SetInt(n)
	case t.Kind() == reflect.String:
		fv.SetString(raw)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		list := []string{}
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		fv.Set(reflect.ValueOf(list))
	default:
		// Structured settings (webhooks) take JSON, decoded as in a row.
		var d decoder
		d.value(json.RawMessage(raw), fv, key)
		if len(d.errs) > 0 {
			return d.errs[0]
		}
	}
	return nil
}

// parseBool accepts what strconv.ParseBool does plus yes/no/on/off.
func parseBool(raw string) (bool, bool) {
	s := strings.TrimSpace(raw)
	switch strings.ToLower(s) {
	case "yes", "on", "y":
		return true, true
	case "no", "off", "n":
		return false, true
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}

// View is the app as one JSON object for the CLI and the admin API: id,
// key, enabled and every setting (defaults included), never the secret.
func View(a *App) map[string]any {
	v := reflect.ValueOf(a).Elem()
	out := make(map[string]any)
	for _, f := range Fields(v.Type()) {
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
func DecodeRow(id, key, secret string, enabled bool, settings []byte) (*App, error) {
	a := Defaults()
	a.ID, a.Key, a.Secret, a.Enabled = id, key, secret, enabled
	if errs := DecodeSettings(settings, &a); len(errs) > 0 {
		return nil, &InvalidError{App: clipID(id), Fields: errs}
	}
	if err := Check(&a); err != nil {
		return nil, err
	}
	return &a, nil
}
