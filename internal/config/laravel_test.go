package config

import (
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/apps"
)

func TestLaravelRedisFromFile(t *testing.T) {
	p := writeConfig(t, `apps:
  - {id: a, key: a, secret: s, laravel_redis: {url: "redis://:pw@127.0.0.1:6379/2", prefix: "shop_database_"}}
  - {id: b, key: b, secret: s}
`)
	c := mustLoad(t, Source{File: p})
	if got := c.Apps[0].LaravelRedis; got != (apps.LaravelRedis{URL: "redis://:pw@127.0.0.1:6379/2", Prefix: "shop_database_"}) || !got.Enabled() {
		t.Fatalf("apps[0].laravel_redis = %+v", got)
	}
	if got := c.Apps[1].LaravelRedis; got.Enabled() || got.Prefix != apps.DefaultLaravelRedisPrefix {
		t.Fatalf("apps[1].laravel_redis = %+v, want off with the default prefix", got)
	}

	// The prefix defaults to Laravel's; an empty one is allowed (Laravel
	// with prefix '').
	p = writeConfig(t, "apps:\n  - {id: a, key: a, secret: s, laravel_redis: {url: 'redis://127.0.0.1'}}\n  - {id: b, key: b, secret: s, laravel_redis: {url: 'rediss://r:6380', prefix: ''}}\n")
	c = mustLoad(t, Source{File: p})
	if c.Apps[0].LaravelRedis.Prefix != apps.DefaultLaravelRedisPrefix || c.Apps[1].LaravelRedis.Prefix != "" {
		t.Fatalf("prefixes = %q, %q", c.Apps[0].LaravelRedis.Prefix, c.Apps[1].LaravelRedis.Prefix)
	}
}

func TestLaravelRedisEnv(t *testing.T) {
	c := mustLoad(t, Source{Env: env(map[string]string{
		"HERALD_APP_ID": "1", "HERALD_APP_KEY": "k", "HERALD_APP_SECRET": "s",
		"HERALD_APP_LARAVEL_REDIS_URL":    "redis://127.0.0.1:6379/0",
		"HERALD_APP_LARAVEL_REDIS_PREFIX": "x_",
	})})
	if got := c.Apps[0].LaravelRedis; got.URL != "redis://127.0.0.1:6379/0" || got.Prefix != "x_" {
		t.Fatalf("laravel_redis from env = %+v", got)
	}
	_, err := Load(Source{Env: env(map[string]string{"HERALD_APP_LARAVEL_REDIS_URL": "http://secret@h"})})
	wantErrs(t, err, `env HERALD_APP_LARAVEL_REDIS_URL: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got scheme "http"`)
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("the URL was echoed: %v", err)
	}
}

func TestLaravelRedisErrors(t *testing.T) {
	const app = "apps:\n  - {id: a, key: a, secret: s, "
	for _, tt := range []struct{ name, yaml, want string }{
		{"scheme", app + "laravel_redis: {url: 'http://pw@h'}}", `line 2: apps[0].laravel_redis.url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got scheme "http"`},
		{"no host", app + "laravel_redis: {url: 'redis://'}}", `apps[0].laravel_redis.url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), got no host`},
		{"bad db", app + "laravel_redis: {url: 'redis://h/x'}}", `apps[0].laravel_redis.url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0); the path must be a database number`},
		{"unparsable", app + "laravel_redis: {url: 'redis://[::1'}}", `apps[0].laravel_redis.url: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0); it does not parse as a URL`},
		{"no url", app + "laravel_redis: {prefix: p_}}", `apps[0].laravel_redis.url: must be set to Laravel's Redis URL`},
		{"empty block", app + "laravel_redis: {}}", `apps[0].laravel_redis.url: must be set to Laravel's Redis URL`},
		{"unknown key", app + "laravel_redis: {url: 'redis://h', prefx: p}}", `apps[0].laravel_redis: unknown key "prefx" (did you mean "prefix"?)`},
		{"not a mapping", app + "laravel_redis: 'redis://h'}", `apps[0].laravel_redis: must be a mapping of keys to values, got "redis://h"`},
		{"bad mode", app + "laravel_redis: {url: 'redis://pw@h', mode: sentinal}}", `apps[0].laravel_redis.mode: must be one of single, sentinel, cluster, got "sentinal"`},
		{"sentinel without master", app + "laravel_redis: {url: 'redis://pw@h:26379', mode: sentinel}}", `apps[0].laravel_redis.url: must be a sentinel URL`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.yaml+"\n")
			_, err := Load(Source{File: p})
			if err == nil {
				t.Fatalf("no error for %q", tt.yaml)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config "+p) || !strings.Contains(msg, tt.want) {
				t.Errorf("error lacks the file or %q:\n%s", tt.want, msg)
			}
			if strings.Contains(msg, "pw@") {
				t.Errorf("the URL was echoed:\n%s", msg)
			}
		})
	}
	// Built in code: the same rule.
	c := Default()
	c.Apps[0].LaravelRedis.URL = "tcp://h"
	wantErrs(t, c.Validate(), "apps[0].laravel_redis.url: must be a redis:// or rediss:// URL")
}
