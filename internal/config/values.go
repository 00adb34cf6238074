package config

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	stringsType  = reflect.TypeFor[[]string]()
)

// maxKB bounds every *_kb setting (1 GiB) so that KB*1024 cannot overflow
// and an extra digit is caught.
const maxKB = 1 << 20

// rule is the range check of one scalar key. expect is used both when a
// value does not parse and when it is out of range, so the operator reads
// the same sentence either way.
type rule struct {
	expect   string
	min, max int64    // inclusive; nanoseconds for durations
	minusOne bool     // -1 is allowed too and means unlimited
	zeroHint string   // appended when the value is 0
	oneOf    []string // for strings: the allowed values
}

// ruleFor returns the rule of a key (the last segment of its path), if any.
// Keys are unique across the top level and the app level; the per-app
// rules belong to internal/apps (apps.RuleFor), shared with every store.
func ruleFor(key string) (rule, bool) {
	const (
		durHint = ` (e.g. "30s", "2m", or 30 for seconds)`
		maxInt  = math.MaxInt
	)
	if r, ok := webhookRule(key); ok {
		return r, true
	}
	if r, ok := apps.RuleFor(key); ok {
		return rule{expect: r.Expect, min: r.Min, max: r.Max, minusOne: r.MinusOne, zeroHint: r.ZeroHint, oneOf: r.OneOf}, true
	}
	if r, ok := restartRule(key); ok {
		return r, true
	}
	switch key {
	case "port":
		return rule{expect: "a port number 1-65535", min: 1, max: 65535}, true
	case "log_level":
		return rule{expect: "one of debug, info, warn, error", oneOf: []string{"debug", "info", "warn", "error"}}, true
	case "log_format":
		return rule{expect: "one of auto, text, json", oneOf: []string{"auto", "text", "json"}}, true
	case "shutdown_timeout":
		return rule{expect: "a duration of 0s or more" + durHint, min: 0, max: math.MaxInt64}, true
	case "cache_ttl", "subscription_count_interval", "api_timestamp_window":
		return rule{expect: "a positive duration" + durHint, min: 1, max: math.MaxInt64}, true
	case "redis_lease":
		return rule{expect: "a duration between 1s and 5m" + durHint, min: int64(time.Second), max: int64(5 * time.Minute)}, true
	case "tls_reload_interval":
		return rule{expect: "a duration between 1s and 1h" + durHint, min: int64(time.Second), max: int64(time.Hour)}, true
	case "apps_cache_ttl":
		return rule{expect: "a duration between 100ms and 10m" + durHint, min: int64(100 * time.Millisecond), max: int64(10 * time.Minute)}, true
	case "handshake_timeout", "http_request_timeout":
		return rule{expect: "a duration between 1s and 5m" + durHint, min: int64(time.Second), max: int64(5 * time.Minute)}, true
	case "ip_connections_burst":
		return rule{expect: "a positive number", min: 1, max: maxInt}, true
	case "max_node_connections", "ip_connections_per_second":
		return rule{expect: "-1 (unlimited) or a positive number", min: 1, max: maxInt, minusOne: true}, true
	case "memory_limit_mb":
		return rule{expect: "0 (GOMEMLIMIT, else the cgroup limit) or a size in MB", min: 0, max: maxKB}, true
	case "outbound_budget_mb":
		return rule{expect: "-1 (no budget), 0 (a quarter of the memory limit) or a size in MB", min: 0, max: maxKB, minusOne: true}, true
	case "saturation_delay":
		return rule{expect: "0s (not watched) or a duration up to 1m" + durHint, min: 0, max: int64(time.Minute)}, true
	case "connection_messages_per_second":
		return rule{expect: "-1 (unlimited) or a positive number", min: 1, max: maxInt, minusOne: true}, true
	case "connection_messages_burst", "connection_pending_messages", "max_workers":
		return rule{expect: "a positive number", min: 1, max: maxInt}, true
	case "memory_guard_percent":
		return rule{expect: "-1 (off) or a percentage between 1 and 100", min: 1, max: 100, minusOne: true}, true
	case "max_request_body_kb", "max_message_size_kb", "write_queue_kb":
		return rule{expect: "a size in KB between 1 and 1048576", min: 1, max: maxKB}, true
	}
	return rule{}, false
}

// expectation describes the values a key accepts, for parse errors.
func expectation(key string, t reflect.Type) string {
	if r, ok := ruleFor(key); ok {
		return r.expect
	}
	switch {
	case t == durationType:
		return `a duration (e.g. "30s", "2m", or 30 for seconds)`
	case t == stringsType:
		return "a list of strings"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Map:
		return "a mapping of names to strings"
	case reflect.Struct:
		return "a mapping of keys to values"
	case reflect.Slice:
		return "a list"
	}
	return "a " + t.String()
}

// errBadValue means a raw value does not parse as the field's type.
var errBadValue = errors.New("bad value")

// isScalarField reports whether a field of type t can be set from one
// string (an env variable or a flag). []string takes a comma separated list.
func isScalarField(t reflect.Type) bool {
	if t == durationType || t == stringsType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Bool:
		return true
	}
	return false
}

// setScalar parses raw into v according to v's type. It returns errBadValue
// when raw does not parse; the caller words the message.
func setScalar(v reflect.Value, raw string) error {
	t := v.Type()
	switch {
	case t == durationType:
		d, err := parseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case t == stringsType:
		var list []string
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
		if list == nil {
			list = []string{}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, strconv.IntSize)
		if err != nil {
			return errBadValue
		}
		v.SetInt(n)
	case reflect.Bool:
		b, ok := parseBool(raw)
		if !ok {
			return errBadValue
		}
		v.SetBool(b)
	default:
		return errBadValue
	}
	return nil
}

// parseDuration accepts a whole number of seconds or a Go duration string.
// A bare integer means seconds because that is what operators write for
// timeouts, while yaml.v3 would read it as nanoseconds.
func parseDuration(raw string) (time.Duration, error) {
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

// parseBool accepts what strconv.ParseBool does plus yes/no/on/off, which
// YAML 1.1 users and shell users both write.
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

// upperSnake turns a YAML key into the suffix of its env variable.
func upperSnake(key string) string { return strings.ToUpper(key) }

// flagName turns a YAML key into its flag name.
func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// suggest returns the known key closest to an unknown one, or "". It knows
// the soketi and Reverb spellings, so that a migrated config gets a useful
// hint, and otherwise allows a couple of typos.
func suggest(unknown string, known []string) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	u := norm(unknown)
	switch u {
	case "appid":
		u = "id"
	case "maxclienteventspersecond", "maxclienteventspersec":
		u = "clienteventspersecond"
	case "maxpresencemembersperchannel":
		u = "maxpresencemembers"
	case "maxpresencemembersizeinkb":
		u = "maxpresencemembersizekb"
	case "maxeventpayloadinkb":
		u = "maxeventpayloadkb"
	case "maxconns":
		u = "maxconnections"
	case "pinginterval":
		u = "activitytimeout"
	}
	best, bestDist := "", 3
	for _, k := range known {
		if norm(k) == u {
			return k
		}
		if d := editDistance(unknown, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
