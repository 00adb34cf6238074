// Package settings describes configuration keys declaratively: one table
// entry per key (its default, its rule, its help) from which the defaults,
// the range checks, the env variable and flag names, the flag help and the
// parse errors are all derived. It also owns the parsing of one raw value
// (an env variable, a flag, a CLI argument) into a field.
//
// internal/config owns the server's table and internal/apps the per-app
// tables; both bind a table to a struct by its yaml keys, so a field and
// its entry cannot drift apart unnoticed (Bind fails).
package settings

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DurationHint is appended to the flag help of every duration setting.
const DurationHint = " (e.g. 30s, 2m, or 30 for seconds)"

// Setting describes one key of a struct bound with Bind.
type Setting struct {
	// Key is the field's yaml key (snake_case).
	Key string
	// Default is the field's value when nothing sets it, of the field's
	// own type (6001, 10*time.Second, []string{"*"}); nil is the zero value.
	Default any
	// Rule is the range or enum the value must satisfy; the zero Rule
	// checks nothing (the owner checks what a range cannot).
	Rule Rule
	// Help is the usage line of the key's flag; a back-quoted word names
	// the value in -help output. Durations get DurationHint appended.
	Help string
	// Env overrides the derived env variable (prefix + UPPER_SNAKE key).
	Env string
}

// EnvVar is the setting's env variable: Env, or prefix followed by the
// key in upper case (HERALD_ + max_workers = HERALD_MAX_WORKERS).
func (s Setting) EnvVar(prefix string) string {
	if s.Env != "" {
		return s.Env
	}
	return prefix + strings.ToUpper(s.Key)
}

// FlagName is the setting's flag, the key with dashes (max-workers).
func (s Setting) FlagName() string { return FlagName(s.Key) }

// FlagName turns a yaml key into its flag name.
func FlagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

// Rule is the range check of one value. Expect is used both when a value
// does not parse and when it is out of range, so the operator reads the
// same sentence either way.
type Rule struct {
	Expect   string
	Min, Max int64    // inclusive; nanoseconds for durations
	MinusOne bool     // -1 is allowed too and means unlimited
	Zero     bool     // 0 is allowed too (it means "the server's setting")
	ZeroHint string   // appended to the error when the value is 0
	OneOf    []string // for strings: the allowed values
}

// Check returns the problem of field v under r ("must be ..., got ..."),
// or "" when v satisfies it. A zero Rule accepts anything.
func (r Rule) Check(v reflect.Value) string {
	if r.Expect == "" {
		return ""
	}
	switch {
	case v.Kind() == reflect.String:
		if !slices.Contains(r.OneOf, v.String()) {
			return fmt.Sprintf("must be %s, got %q", r.Expect, v.String())
		}
	case v.CanInt():
		n := v.Int()
		if (r.MinusOne && n == -1) || (r.Zero && n == 0) || (n >= r.Min && n <= r.Max) {
			return ""
		}
		got := strconv.FormatInt(n, 10)
		if v.Type() == DurationType {
			got = time.Duration(n).String()
		}
		hint := ""
		if n == 0 {
			hint = r.ZeroHint
		}
		return fmt.Sprintf("must be %s, got %s%s", r.Expect, got, hint)
	}
	return ""
}

// Table is a list of settings bound to the fields of one struct type.
type Table struct {
	typ   reflect.Type
	list  []Setting
	index []int          // field index of list[i]
	byKey map[string]int // key -> position in list
}

// Bind binds list to the yaml keys of struct type T. Every yaml field of T
// must have exactly one entry and every entry a field, in the fields'
// order (so that env variables and errors come in a stable order), with a
// Default of the field's type; anything else is an error naming the key.
func Bind[T any](list []Setting) (*Table, error) {
	t := reflect.TypeFor[T]()
	fields := Fields(t)
	fieldOf := make(map[string]int, len(fields)) // key -> field index
	for _, f := range fields {
		fieldOf[f.Key] = f.Index
	}
	tb := &Table{typ: t, list: list, index: make([]int, len(list)), byKey: make(map[string]int, len(list))}
	var problems []string
	for i, s := range list {
		if _, dup := tb.byKey[s.Key]; dup {
			problems = append(problems, fmt.Sprintf("%s: listed twice", s.Key))
			continue
		}
		tb.byKey[s.Key] = i
		fi, ok := fieldOf[s.Key]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no field of %s has this yaml key", s.Key, t))
			continue
		}
		tb.index[i] = fi
		if ft := t.Field(fi).Type; s.Default != nil && reflect.TypeOf(s.Default) != ft {
			problems = append(problems, fmt.Sprintf("%s: default %#v is a %T, the field a %s", s.Key, s.Default, s.Default, ft))
		}
	}
	for i := 1; i < len(list) && len(problems) == 0; i++ {
		if tb.index[i] < tb.index[i-1] {
			problems = append(problems, fmt.Sprintf("%s: listed before %s, unlike the fields", list[i-1].Key, list[i].Key))
		}
	}
	for _, f := range fields {
		if _, ok := tb.byKey[f.Key]; !ok {
			problems = append(problems, fmt.Sprintf("%s: field %s.%s has no setting", f.Key, t, t.Field(f.Index).Name))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("settings of %s: %s", t, strings.Join(problems, "; "))
	}
	return tb, nil
}

// MustBind is Bind for a table written in the code: a mismatch is a
// programming error (each owner's tests bind its tables).
func MustBind[T any](list []Setting) *Table {
	tb, err := Bind[T](list)
	if err != nil {
		panic(err)
	}
	return tb
}

// Type is the struct type the table is bound to.
func (tb *Table) Type() reflect.Type { return tb.typ }

// Settings lists the settings in the table's order.
func (tb *Table) Settings() []Setting { return slices.Clone(tb.list) }

// Lookup returns the setting of key.
func (tb *Table) Lookup(key string) (Setting, bool) {
	i, ok := tb.byKey[key]
	if !ok {
		return Setting{}, false
	}
	return tb.list[i], true
}

// Field returns the field of key in struct value v (of the table's type).
func (tb *Table) Field(v reflect.Value, key string) (reflect.Value, bool) {
	i, ok := tb.byKey[key]
	if !ok {
		return reflect.Value{}, false
	}
	return v.Field(tb.index[i]), true
}

// Each calls fn with every setting and its field in struct value v.
func (tb *Table) Each(v reflect.Value, fn func(s Setting, field reflect.Value)) {
	for i, s := range tb.list {
		fn(s, v.Field(tb.index[i]))
	}
}

// SetDefaults sets every field of *ptr that has a Default to it (a list is
// copied, so that the caller may change it).
func (tb *Table) SetDefaults(ptr any) {
	v := reflect.ValueOf(ptr).Elem()
	tb.Each(v, func(s Setting, f reflect.Value) {
		if s.Default == nil {
			return
		}
		d := reflect.ValueOf(s.Default)
		if d.Kind() == reflect.Slice {
			c := reflect.MakeSlice(d.Type(), d.Len(), d.Len())
			reflect.Copy(c, d)
			d = c
		}
		f.Set(d)
	})
}

// Problems checks every field of struct value v against its setting's
// rule; fn gets each key whose value breaks it, with the message.
func (tb *Table) Problems(v reflect.Value, fn func(key, msg string)) {
	tb.Each(v, func(s Setting, f reflect.Value) {
		if msg := s.Rule.Check(f); msg != "" {
			fn(s.Key, msg)
		}
	})
}

// Usage is the flag usage of s for a field of type t: Help, DurationHint
// for a duration, and the env variable when env is not "".
func (s Setting) Usage(t reflect.Type, env string) string {
	u := s.Help
	if t == DurationType {
		u += DurationHint
	}
	if env != "" {
		u += " (env " + env + ")"
	}
	return u
}

// Tables are the tables of a walk over nested structs (a Config and its
// apps), each found by the type of the struct a key is in: keys are only
// unique within their struct.
type Tables []*Table

// Of returns the table of struct type t, or nil.
func (ts Tables) Of(t reflect.Type) *Table {
	for _, tb := range ts {
		if tb.Type() == t {
			return tb
		}
	}
	return nil
}

// Rule is the rule of key in struct type t (the zero Rule when none).
func (ts Tables) Rule(t reflect.Type, key string) Rule {
	if tb := ts.Of(t); tb != nil {
		if s, ok := tb.Lookup(key); ok {
			return s.Rule
		}
	}
	return Rule{}
}

// Field is one settable field of a struct: its yaml key and index.
type Field struct {
	Key   string
	Index int
}

// Fields lists the fields of struct type t that have a yaml key, in
// declaration order.
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
