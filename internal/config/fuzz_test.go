package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadYAML feeds arbitrary files to Load: it must never panic, and a
// config it accepts must pass Validate.
func FuzzLoadYAML(f *testing.F) {
	seeds := []string{
		"",
		"port: 7000\n",
		"prot: 7000\n",
		"port: abc\nlog_level: loud\n",
		"shutdown_timeout: 90\ncache_ttl: 2m\nsubscription_count_interval: 500ms\n",
		"path_prefix: /ws\nredis_url: redis://127.0.0.1:6379/0\nmetrics_addr: ':9601'\n",
		"apps:\n  - {id: a, key: a, secret: s}\n  - {id: a, key: a, secret: s}\n",
		"apps:\n  - id: chat\n    key: k\n    secret: s\n    max_connections: 0\n    activity_timeout: 60\n" +
			"    allowed_origins: ['*.example.com']\n    webhooks:\n      - url: https://x/hook\n" +
			"        event_types: [channel_occupied, client_event]\n        headers: {Authorization: Bearer t}\n" +
			"        filter: {channel_name_starts_with: presence-}\n",
		"apps:\n  - &a {id: a, key: a, secret: s}\n  - <<: *a\n    id: b\n    key: b\n",
		"a: &x [*x]\n",
		"<<: [*a, *b]\n",
		"- 1\n- 2\n",
		"port: 1\n---\nport: 2\n",
		"apps: [~, [], {}, '', {webhooks: [~, {headers: ~, filter: ~}]}]\n",
		"tls_cert: /nonexistent\ntls_key: /nonexistent\n",
		"apps:\n  - {id: a, key: a, secret: s, laravel_redis: {url: 'redis://:p@h:6379/2', prefix: x_}}\n  - {id: b, key: b, secret: s, laravel_redis: {prefix: ''}}\n",
		"port: 0x1F\nhost: '::'\n",
		"acme_domains: [ws.example.com, '*.example.com', 192.0.2.1]\nacme_cache_dir: /tmp\nacme_email: a@b.c\nacme_http_addr: ':80'\n",
		"acme_domains: ws.example.com\nacme_directory_url: 'http://[::1]:1/dir'\ntls_cert: /nonexistent\n",
		"webhook_timeout: 500ms\nwebhook_backoff_min: 10s\nwebhook_backoff_max: 1s\nwebhook_presence_delay: 0\n" +
			"apps:\n  - {id: a, key: a, secret: s, webhooks: [{url: 'http://h', event_types: [member_added], batch_size: 0, timeout: 2, retry_for: -1s}]}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Source{File: p})
		if err != nil {
			return
		}
		if len(c.Apps) == 0 {
			t.Fatal("Load succeeded without any app")
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that does not validate: %v", err)
		}
	})
}
