package config

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/settings"
)

// scalarKeys lists the keys that have an env variable and a flag.
func scalarKeys() []string {
	var keys []string
	var c Config
	serverTable().Each(reflect.ValueOf(&c).Elem(), func(s settings.Setting, f reflect.Value) {
		if settings.IsScalar(f.Type()) {
			keys = append(keys, s.Key)
		}
	})
	return keys
}

// flagUsage is the usage of key's flag as RegisterFlags registers it.
func flagUsage(t *testing.T, key string) string {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	RegisterFlags(fs)
	f := fs.Lookup(settings.FlagName(key))
	if f == nil {
		t.Fatalf("no flag for %s", key)
	}
	return f.Usage
}

// Every field of Config has exactly one entry in the table and every entry
// a field (settings.Bind checks both, and the order).
func TestSettingsTableCoversConfig(t *testing.T) {
	tb, err := settings.Bind[Config](serverSettings())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(tb.Settings()), len(settings.Fields(reflect.TypeFor[Config]())); got != want {
		t.Errorf("%d settings for %d fields", got, want)
	}
	var c Config
	tb.Each(reflect.ValueOf(&c).Elem(), func(s settings.Setting, f reflect.Value) {
		switch scalar := settings.IsScalar(f.Type()); {
		case scalar && s.Help == "":
			t.Errorf("%s has no flag help", s.Key)
		case scalar && f.Kind() != reflect.Bool && !strings.Contains(s.Help, "`"):
			t.Errorf("%s: flag help must name its value in back quotes: %q", s.Key, s.Help)
		case !scalar && s.Help != "":
			t.Errorf("%s has no flag, its help would be unused", s.Key)
		case s.Env != "":
			t.Errorf("%s overrides its env variable; the server's are all derived", s.Key)
		}
		if s.Rule.Expect == "" && (s.Rule.Min != 0 || s.Rule.Max != 0 || s.Rule.OneOf != nil) {
			t.Errorf("%s: a rule without Expect checks nothing", s.Key)
		}
	})
}

// The flags are the table's: one per scalar key (and --config), named,
// defaulted and explained from its entry, with the derived env variable.
func TestFlagsAreDerivedFromTheTable(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	RegisterFlags(fs)
	want := map[string]bool{FlagConfig: true}
	def := reflect.ValueOf(defaultServer()).Elem()
	serverTable().Each(def, func(s settings.Setting, v reflect.Value) {
		if !settings.IsScalar(v.Type()) {
			if fs.Lookup(s.FlagName()) != nil {
				t.Errorf("%s is not a scalar but has a flag", s.Key)
			}
			return
		}
		want[s.FlagName()] = true
		f := fs.Lookup(s.FlagName())
		if f == nil {
			t.Errorf("no --%s", s.FlagName())
			return
		}
		env := "HERALD_" + strings.ToUpper(s.Key)
		if !strings.HasSuffix(f.Usage, " (env "+env+")") || !strings.HasPrefix(f.Usage, s.Help) {
			t.Errorf("--%s usage %q, want the help and (env %s)", s.FlagName(), f.Usage, env)
		}
		if f.DefValue != settings.FormatValue(v) {
			t.Errorf("--%s default %q, want %q", s.FlagName(), f.DefValue, settings.FormatValue(v))
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if !want[f.Name] {
			t.Errorf("--%s is not in the table", f.Name)
		}
	})
}

// Every key of the tables is named in the guides (docs/*.md or the
// README), so that a new key comes with its documentation; the e2e docs
// test checks the other way round (every key the guides name exists).
func TestEveryKeyIsDocumented(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	var text strings.Builder
	for _, f := range append(files, "../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	docs := text.String()
	for _, tb := range tables() {
		for _, s := range tb.Settings() {
			if !regexp.MustCompile(`\b` + s.Key + `\b`).MatchString(docs) {
				t.Errorf("%s (%s) is named in no guide", s.Key, tb.Type())
			}
		}
	}
}
