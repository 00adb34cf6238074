package config

import (
	"flag"
	"reflect"

	"github.com/herald-ws/herald/internal/settings"
)

// RegisterFlags registers --config and one flag per top-level scalar key
// (--host, --port, --path-prefix, --log-level, ..., --tls-key) on fs, each
// with its name, default and help from the settings table. Flags are plain
// strings parsed by Load, so that a bad value gets the same message as in
// the file or env, naming the flag.
//
// The returned func, called after fs.Parse, gives the flags the user set
// explicitly (fs.Visit), keyed by config key; --config is under FlagConfig.
// Pass the result to NewSource.
func RegisterFlags(fs *flag.FlagSet) func() map[string]string {
	names := map[string]string{FlagConfig: FlagConfig} // flag name -> config key
	fs.String(FlagConfig, "", "read the YAML config `file` (env "+EnvConfig+")")

	def := reflect.ValueOf(defaultServer()).Elem()
	serverTable().Each(def, func(s settings.Setting, f reflect.Value) {
		if !settings.IsScalar(f.Type()) {
			return // apps: the file, or HERALD_APP_*
		}
		name := s.FlagName()
		names[name] = s.Key
		usage := s.Usage(f.Type(), s.EnvVar(envPrefix))
		if f.Kind() == reflect.Bool {
			// --dev-app-public alone means true, as for any Go bool flag.
			fs.Var(&boolString{s: settings.FormatValue(f)}, name, usage)
			return
		}
		fs.String(name, settings.FormatValue(f), usage)
	})
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

// boolString is a string flag that may be given without a value (true);
// like every flag, Load parses it.
type boolString struct{ s string }

func (b *boolString) String() string     { return b.s }
func (b *boolString) Set(v string) error { b.s = v; return nil }
func (b *boolString) IsBoolFlag() bool   { return true }
