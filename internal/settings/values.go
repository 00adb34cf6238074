package settings

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// DurationType and StringsType are the field types parsed specially: a
// bare number is seconds, and a list is comma separated.
var (
	DurationType = reflect.TypeFor[time.Duration]()
	StringsType  = reflect.TypeFor[[]string]()
)

// ErrBadValue means a raw value does not parse as the field's type; the
// caller words the message (with Expectation).
var ErrBadValue = errors.New("bad value")

// Expectation describes the values a field accepts, for parse errors: the
// rule's Expect, else what the type takes.
func Expectation(r Rule, t reflect.Type) string {
	if r.Expect != "" {
		return r.Expect
	}
	switch {
	case t == DurationType:
		return `a duration (e.g. "30s", "2m", or 30 for seconds)`
	case t == StringsType:
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

// IsScalar reports whether a field of type t can be set from one string
// (an env variable, a flag). []string takes a comma separated list.
func IsScalar(t reflect.Type) bool {
	if t == DurationType || t == StringsType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Int, reflect.Bool:
		return true
	}
	return false
}

// SetScalar parses raw into v according to v's type: durations as
// ParseDuration, booleans as ParseBool, lists comma separated. It returns
// ErrBadValue when raw does not parse (or v is not IsScalar); the value is
// not range checked (Rule.Check does that).
func SetScalar(v reflect.Value, raw string) error {
	t := v.Type()
	switch {
	case t == DurationType:
		d, err := ParseDuration(raw)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case t == StringsType:
		list := []string{}
		for s := range strings.SplitSeq(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
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
			return ErrBadValue
		}
		v.SetInt(n)
	case reflect.Bool:
		b, ok := ParseBool(raw)
		if !ok {
			return ErrBadValue
		}
		v.SetBool(b)
	default:
		return ErrBadValue
	}
	return nil
}

// ParseDuration accepts a whole number of seconds or a Go duration string.
// A bare integer means seconds because that is what operators write for
// timeouts, while yaml.v3 would read it as nanoseconds.
func ParseDuration(raw string) (time.Duration, error) {
	s := strings.TrimSpace(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, ErrBadValue
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, ErrBadValue
	}
	return d, nil
}

// ParseBool accepts what strconv.ParseBool does plus yes/no/on/off, which
// YAML 1.1 users and shell users both write.
func ParseBool(raw string) (bool, bool) {
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

// FormatValue renders a value as a flag takes it, for help output:
// durations in the largest whole unit ("30m" rather than "30m0s"), lists
// comma separated (nothing for an empty list).
func FormatValue(v reflect.Value) string {
	if v.Type() == DurationType {
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
	if v.Type() == StringsType {
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}
