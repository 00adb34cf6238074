package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/herald-ws/herald/internal/apps"
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
	l := loader{origins: origins{}, failed: map[string]bool{}, env: src.Env}
	if l.env == nil {
		l.env = func(string) (string, bool) { return "", false }
	}

	if src.File != "" {
		l.origins[""] = origin{kind: fromFile, name: src.File}
		d := fileDecoder{file: src.File, origins: l.origins, failed: l.failed}
		if err := d.readFile(cfg); err != nil {
			return nil, err
		}
		l.errs = append(l.errs, d.errs...)
	}
	l.applyEnv(cfg)
	l.applyFlags(cfg, src.Flags)
	l.applyAppEnv(cfg)

	v := validator{origins: l.origins, failed: l.failed}
	v.config(cfg)
	if errs := append(l.errs, v.errs...); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// loader carries the state of one Load.
type loader struct {
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

// set parses raw into field v at path and records at as its origin.
func (l *loader) set(v reflect.Value, path, raw string, at origin) {
	if err := setScalar(v, raw); err != nil {
		l.errs = append(l.errs, &fieldError{at: at, path: path,
			msg: fmt.Sprintf("must be %s, got %q", expectation(leafKey(path), v.Type()), raw)})
		l.failed[path] = true
		return
	}
	l.origins[path] = at
	delete(l.failed, path) // a later source fixed an earlier bad value
}

// scalarFields lists the yaml keys of the fields of struct type t that can
// be set from one string, with their indexes, in declaration order.
func scalarFields(t reflect.Type) (keys []string, index []int) {
	idx, all := yamlFields(t)
	for _, k := range all {
		if isScalarField(t.Field(idx[k]).Type) {
			keys = append(keys, k)
			index = append(index, idx[k])
		}
	}
	return keys, index
}

// applyEnv applies HERALD_<KEY> for every top-level scalar key.
func (l *loader) applyEnv(cfg *Config) {
	rv := reflect.ValueOf(cfg).Elem()
	keys, index := scalarFields(rv.Type())
	for i, key := range keys {
		name := envPrefix + upperSnake(key)
		if raw, ok := l.lookup(name); ok {
			l.set(rv.Field(index[i]), key, raw, origin{kind: fromEnv, name: name})
		}
	}
}

// applyFlags applies the explicitly set flags, in a stable order.
func (l *loader) applyFlags(cfg *Config, flags map[string]string) {
	rv := reflect.ValueOf(cfg).Elem()
	keys, index := scalarFields(rv.Type())
	names := make([]string, 0, len(flags))
	for k := range flags {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, key := range names {
		at := origin{kind: fromFlag, name: flagName(key)}
		if key == FlagConfig {
			l.errs = append(l.errs, &fieldError{at: at,
				msg: "the config file path belongs in Source.File (build the Source with config.NewSource)"})
			continue
		}
		i := slices.Index(keys, key)
		if i < 0 {
			l.errs = append(l.errs, &fieldError{at: at, msg: fmt.Sprintf("%q is not a config key", key)})
			continue
		}
		l.set(rv.Field(index[i]), key, flags[key], at)
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
			if _, ok := l.lookup(envAppPrefix + upperSnake(k)); ok {
				l.errs = append(l.errs, &fieldError{at: origin{kind: fromEnv, name: envAppPrefix + upperSnake(k)},
					msg: "must not be set when apps_store is a database; manage apps with 'herald apps' (docs/apps.md)"})
			}
		}
		cfg.Apps = nil
		return
	}
	if len(cfg.Apps) == 0 {
		identity := false
		for _, k := range []string{"id", "key", "secret"} {
			if _, ok := l.lookup(envAppPrefix + upperSnake(k)); ok {
				identity = true
			}
		}
		if identity {
			// Blame a missing id, key or secret on the variable to set.
			cfg.Apps = []apps.App{apps.Defaults()}
			for _, k := range []string{"id", "key", "secret"} {
				l.origins[joinPath(first, k)] = origin{kind: fromEnv, name: envAppPrefix + upperSnake(k)}
			}
		} else {
			cfg.Apps = []apps.App{DevApp()}
		}
		l.origins["apps"] = origin{}
	}

	rv := reflect.ValueOf(&cfg.Apps[0]).Elem()
	keys, index := scalarFields(rv.Type())
	for i, key := range keys {
		name := envAppPrefix + upperSnake(key)
		if raw, ok := l.lookup(name); ok {
			l.set(rv.Field(index[i]), joinPath(first, key), raw, origin{kind: fromEnv, name: name})
		}
	}
	// A block of settings (laravel_redis) has a variable per scalar key:
	// HERALD_APP_LARAVEL_REDIS_URL.
	idx, all := yamlFields(rv.Type())
	for _, block := range all {
		f := rv.Field(idx[block])
		if f.Kind() != reflect.Struct || isScalarField(f.Type()) {
			continue
		}
		bkeys, bindex := scalarFields(f.Type())
		for i, key := range bkeys {
			name := envAppPrefix + upperSnake(block) + "_" + upperSnake(key)
			if raw, ok := l.lookup(name); ok {
				l.set(f.Field(bindex[i]), joinPath(joinPath(first, block), key), raw, origin{kind: fromEnv, name: name})
			}
		}
	}
	if _, ok := l.lookup(envAppPrefix + "WEBHOOKS"); ok {
		l.errs = append(l.errs, &fieldError{at: origin{kind: fromEnv, name: envAppPrefix + "WEBHOOKS"},
			msg: "webhooks can only be set in the config file (apps[].webhooks)"})
	}
}
