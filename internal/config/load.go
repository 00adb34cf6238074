package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/settings"
)

// EnvConfig is the env variable that names the config file when --config
// is not given (see NewSource).
const EnvConfig = "HERALD_CONFIG"

const (
	// envPrefix starts the variable of every top-level key.
	envPrefix = "HERALD_"
	// envAppPrefix starts the variable of every per-app key of the first app.
	envAppPrefix = "HERALD_APP_"
)

// FlagConfig is the key under which the func returned by RegisterFlags
// reports --config; NewSource moves it into Source.File.
const FlagConfig = "config"

// Source is what Load reads. Tests fill it by hand; production code builds
// it with NewSource.
type Source struct {
	// File is the path of the YAML file; "" means none.
	File string
	// Env looks up an environment variable (os.LookupEnv in production);
	// nil means an empty environment. A variable set to "" counts as unset,
	// so that HERALD_PORT=${PORT} with PORT unset does not break a deploy.
	Env func(string) (string, bool)
	// Flags maps config keys (snake_case) to the values of the flags the
	// user set explicitly, as returned by the func from RegisterFlags
	// without its "config" entry.
	Flags map[string]string
}

// NewSource builds the Source for a command line: File is --config when it
// was given, else HERALD_CONFIG; Flags are the other flags. flags is what the
// func returned by RegisterFlags gives; env is typically os.LookupEnv.
func NewSource(flags map[string]string, env func(string) (string, bool)) Source {
	src := Source{Env: env, Flags: make(map[string]string, len(flags))}
	for k, v := range flags {
		src.Flags[k] = v
	}
	if path, ok := flags[FlagConfig]; ok {
		src.File = path
		delete(src.Flags, FlagConfig)
	} else if env != nil {
		if path, ok := env(EnvConfig); ok {
			src.File = path
		}
	}
	return src
}

// Load builds the configuration from defaults, then src.File, then
// src.Env, then src.Flags, and validates it. The error, if any, lists every
// problem (errors.Join), each naming its source and key.
//
// Apps: when the file lists none, the first app is built from
// apps.Defaults() if HERALD_APP_ID, HERALD_APP_KEY or HERALD_APP_SECRET is
// set, and is DevApp() otherwise. HERALD_APP_<KEY> variables (any per-app
// scalar key; allowed_origins comma separated) and
// HERALD_APP_<BLOCK>_<KEY> (HERALD_APP_LARAVEL_REDIS_URL) then override the
// first app's settings. So a loaded Config always has at least one app.
func Load(src Source) (*Config, error) {
	cfg := defaultServer()
	l := loader{origins: origins{}, failed: map[string]bool{}, env: src.Env, tables: tables()}
	if l.env == nil {
		l.env = func(string) (string, bool) { return "", false }
	}

	if src.File != "" {
		l.origins[""] = origin{kind: fromFile, name: src.File}
		d := fileDecoder{file: src.File, origins: l.origins, failed: l.failed, tables: l.tables}
		if err := d.readFile(cfg); err != nil {
			return nil, err
		}
		l.errs = append(l.errs, d.errs...)
	}
	l.applyEnv(cfg)
	l.applyFlags(cfg, src.Flags)
	l.applyAppEnv(cfg)
	// The development app's secret is public: anyone who reaches it can
	// publish, sign channels and read presence. Unless asked otherwise
	// (a host chosen, or dev_app_public), serve it on the loopback only.
	if _, chosen := l.origins["host"]; !chosen && cfg.UsesDevApp() && !cfg.DevAppPublic {
		cfg.Host = "127.0.0.1"
	}
	// The per-IP limit charges the loopback too (docs/security.md), but
	// not on a development machine's own connections.
	if _, chosen := l.origins["ip_limit_exempt"]; !chosen && cfg.UsesDevApp() {
		cfg.IPLimitExempt = DevAppIPLimitExempt()
	}

	v := validator{origins: l.origins, failed: l.failed, tables: l.tables}
	v.config(cfg)
	if errs := append(l.errs, v.errs...); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// loader carries the state of one Load.
type loader struct {
	tables  settings.Tables
	env     func(string) (string, bool)
	origins origins
	failed  map[string]bool
	errs    []error
}

// lookup returns a non-empty env variable.
func (l *loader) lookup(name string) (string, bool) {
	v, ok := l.env(name)
	return v, ok && v != ""
}

// set parses raw into field v at path (its key's rule r words the error)
// and records at as its origin.
func (l *loader) set(v reflect.Value, path, raw string, r settings.Rule, at origin) {
	if err := settings.SetScalar(v, raw); err != nil {
		l.errs = append(l.errs, &fieldError{at: at, path: path,
			msg: fmt.Sprintf("must be %s, got %q", settings.Expectation(r, v.Type()), raw)})
		l.failed[path] = true
		return
	}
	l.origins[path] = at
	delete(l.failed, path) // a later source fixed an earlier bad value
}

// applyScalarEnv applies, to struct value v (of tb's type), the variable
// of every key that can be set from one string: prefix + UPPER_KEY.
func (l *loader) applyScalarEnv(tb *settings.Table, v reflect.Value, path, prefix string) {
	tb.Each(v, func(s settings.Setting, f reflect.Value) {
		if !settings.IsScalar(f.Type()) {
			return
		}
		name := s.EnvVar(prefix)
		if raw, ok := l.lookup(name); ok {
			l.set(f, joinPath(path, s.Key), raw, s.Rule, origin{kind: fromEnv, name: name})
		}
	})
}

// applyEnv applies HERALD_<KEY> for every top-level scalar key.
func (l *loader) applyEnv(cfg *Config) {
	l.applyScalarEnv(l.tables.Of(reflect.TypeFor[Config]()), reflect.ValueOf(cfg).Elem(), "", envPrefix)
}

// applyFlags applies the explicitly set flags, in a stable order.
func (l *loader) applyFlags(cfg *Config, flags map[string]string) {
	rv := reflect.ValueOf(cfg).Elem()
	tb := l.tables.Of(rv.Type())
	names := make([]string, 0, len(flags))
	for k := range flags {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, key := range names {
		at := origin{kind: fromFlag, name: settings.FlagName(key)}
		if key == FlagConfig {
			l.errs = append(l.errs, &fieldError{at: at,
				msg: "the config file path belongs in Source.File (build the Source with config.NewSource)"})
			continue
		}
		s, ok := tb.Lookup(key)
		f, _ := tb.Field(rv, key)
		if !ok || !settings.IsScalar(f.Type()) {
			l.errs = append(l.errs, &fieldError{at: at, msg: fmt.Sprintf("%q is not a config key", key)})
			continue
		}
		l.set(f, key, flags[key], s.Rule, at)
	}
}

// applyAppEnv makes sure there is a first app (the dev app, or one built
// from HERALD_APP_ID/KEY/SECRET) and applies HERALD_APP_<KEY> to it.
func (l *loader) applyAppEnv(cfg *Config) {
	const first = "apps[0]"
	if cfg.DatabaseApps() {
		// The apps live in the database; apps here would be ignored,
		// which an operator would rather hear about.
		if len(cfg.Apps) > 0 {
			l.errs = append(l.errs, &fieldError{at: l.origins.of("apps"), path: "apps",
				msg: "must not be set when apps_store is a database; manage those apps with 'herald apps' (docs/apps.md)"})
		}
		for _, k := range []string{"id", "key", "secret"} {
			if _, ok := l.lookup(envAppPrefix + strings.ToUpper(k)); ok {
				l.errs = append(l.errs, &fieldError{at: origin{kind: fromEnv, name: envAppPrefix + strings.ToUpper(k)},
					msg: "must not be set when apps_store is a database; manage apps with 'herald apps' (docs/apps.md)"})
			}
		}
		cfg.Apps = nil
		return
	}
	if len(cfg.Apps) == 0 {
		identity := false
		for _, k := range []string{"id", "key", "secret"} {
			if _, ok := l.lookup(envAppPrefix + strings.ToUpper(k)); ok {
				identity = true
			}
		}
		if identity {
			// Blame a missing id, key or secret on the variable to set.
			cfg.Apps = []apps.App{apps.Defaults()}
			for _, k := range []string{"id", "key", "secret"} {
				l.origins[joinPath(first, k)] = origin{kind: fromEnv, name: envAppPrefix + strings.ToUpper(k)}
			}
		} else {
			cfg.Apps = []apps.App{DevApp()}
		}
		l.origins["apps"] = origin{}
	}

	rv := reflect.ValueOf(&cfg.Apps[0]).Elem()
	l.applyScalarEnv(l.tables.Of(rv.Type()), rv, first, envAppPrefix)
	// A block of settings (laravel_redis) has a variable per scalar key:
	// HERALD_APP_LARAVEL_REDIS_URL.
	l.tables.Of(rv.Type()).Each(rv, func(s settings.Setting, f reflect.Value) {
		if tb := l.tables.Of(f.Type()); tb != nil && f.Kind() == reflect.Struct {
			l.applyScalarEnv(tb, f, joinPath(first, s.Key), s.EnvVar(envAppPrefix)+"_")
		}
	})
	if _, ok := l.lookup(envAppPrefix + "WEBHOOKS"); ok {
		l.errs = append(l.errs, &fieldError{at: origin{kind: fromEnv, name: envAppPrefix + "WEBHOOKS"},
			msg: "webhooks can only be set in the config file (apps[].webhooks)"})
	}
}
