package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-ws/herald/internal/config"
)

// load runs the YAML through Herald's own loader, as `herald config check` does.
func load(t *testing.T, y []byte) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, y, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Source{File: path})
	if err != nil {
		t.Fatalf("translated config does not load: %v\n%s", err, y)
	}
	return cfg
}

func TestSoketiRealisticConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/soketi.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Soketi(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res.YAML)
	if cfg.Port != 6002 || cfg.LogLevel != "debug" || cfg.ShutdownTimeout.String() != "5s" {
		t.Errorf("server keys: port %d log_level %q shutdown_timeout %v", cfg.Port, cfg.LogLevel, cfg.ShutdownTimeout)
	}
	if cfg.RedisURL != "redis://:hunter2@10.0.0.5:6379/0" || cfg.RedisPrefix != "soketi" {
		t.Errorf("redis: %q prefix %q", cfg.RedisURL, cfg.RedisPrefix)
	}
	if cfg.MetricsAddr != ":9601" {
		t.Errorf("metrics_addr %q", cfg.MetricsAddr)
	}
	if len(cfg.Apps) != 2 {
		t.Fatalf("%d apps, want 2", len(cfg.Apps))
	}
	a, b := cfg.Apps[0], cfg.Apps[1]
	if a.ID != "1" || a.Key != "key-1" || a.Secret != "secret-1" || !a.EnableClientMessages || a.ClientEventsPerSecond != -1 {
		t.Errorf("app 1: %+v", a)
	}
	// The app's own limit wins over the server-level presence.maxMembersPerChannel.
	if a.MaxPresenceMembers != 200 || b.MaxPresenceMembers != 50 {
		t.Errorf("max_presence_members: %d and %d, want 200 and 50", a.MaxPresenceMembers, b.MaxPresenceMembers)
	}
	if len(a.Webhooks) != 1 || a.Webhooks[0].URL != "https://example.com/hook" || a.Webhooks[0].Filter.ChannelNameStartsWith != "presence-" {
		t.Errorf("webhooks: %+v", a.Webhooks)
	}
	if b.EnableClientMessages {
		t.Error("app 2: client messages on, soketi's default is off")
	}
	all := strings.Join(res.Warnings, "\n")
	for _, key := range []string{
		`"cors.origin"`, `"metrics.prometheus.prefix"`, `"queue.driver"`,
		`"appManager.array.apps.0.webhooks.1.lambda_function"`,
		`"appManager.array.apps.1.frobnicate"`, `"appManager.array.apps.1.maxEventPayloadInKb"`,
	} {
		if !strings.Contains(all, key) {
			t.Errorf("no warning names %s:\n%s", key, all)
		}
	}
	if len(res.Warnings) != 7 {
		t.Errorf("%d warnings, want 7:\n%s", len(res.Warnings), all)
	}
	if strings.Contains(all, "hunter2") || strings.Contains(all, "secret-") {
		t.Errorf("a warning shows a secret:\n%s", all)
	}
}

func TestSoketiNestedAndDottedAgree(t *testing.T) {
	nested := `{"presence":{"maxMemberSizeInKb":4},"appManager":{"array":{"apps":[{"id":"a","key":"k","secret":"s","enableUserAuthentication":"true"}]}},"userAuthenticationTimeout":5000}`
	dotted := `{"presence.maxMemberSizeInKb":"4","appManager.array.apps.0.id":"a","appManager.array.apps.0.key":"k","appManager.array.apps.0.secret":"s","appManager.array.apps.0.enable_user_authentication":true,"userAuthenticationTimeout":"5000"}`
	var out []string
	for _, in := range []string{nested, dotted} {
		res, err := Soketi([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings for %s: %v", in, res.Warnings)
		}
		cfg := load(t, res.YAML)
		a := cfg.Apps[0]
		if a.MaxPresenceMemberSizeKB != 4 || !a.EnableUserAuthentication || a.UserAuthenticationTimeout.String() != "5s" {
			t.Errorf("app from %s: %+v", in, a)
		}
		out = append(out, string(res.YAML))
	}
	if out[0] != out[1] {
		t.Errorf("nested and dotted differ:\n%s\n---\n%s", out[0], out[1])
	}
}

func TestSoketiOtherDriversWarn(t *testing.T) {
	res, err := Soketi([]byte(`{"adapter":{"driver":"nats"},"appManager":{"driver":"mysql"},"ssl":{"certPath":"c.pem","keyPath":"k.pem","passphrase":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(res.Warnings, "\n")
	for _, key := range []string{`"adapter.driver"`, `"appManager.driver"`, `"ssl.passphrase"`} {
		if !strings.Contains(all, key) {
			t.Errorf("no warning names %s:\n%s", key, all)
		}
	}
	if !strings.Contains(string(res.YAML), "tls_cert: c.pem") {
		t.Errorf("tls_cert missing:\n%s", res.YAML)
	}
}

func TestSoketiRejectsNonObjects(t *testing.T) {
	for _, in := range []string{``, `[]`, `"x"`, `{"a":1} {"b":2}`, `{"appManager.array.apps.99999999.id":"x"}`} {
		if _, err := Soketi([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// FuzzSoketi: any input gives an error or YAML that parses, never a panic
// or a hang; a value never appears in a warning.
func FuzzSoketi(f *testing.F) {
	if data, err := os.ReadFile("testdata/soketi.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"appManager.array.apps.0.id":"a","appManager.array.apps.0.webhooks":"[{\"url\":\"https://x\"}]"}`))
	f.Add([]byte(`{"a.b.c":{"d":[1,{"e":null}]},"a.b":{"c":true}}`))
	f.Add([]byte(`{"appManager":{"array":{"apps":"[{\"id\":1}]"}},"database.redis.port":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Soketi(data)
		if err != nil {
			return
		}
		var v map[string]any
		if err := yamlUnmarshal(res.YAML, &v); err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, res.YAML)
		}
	})
}

// SOKETI_* variables apply over the file, as soketi applies them after it.
func TestSoketiEnvOverridesFile(t *testing.T) {
	file := []byte(`{"port": 6001, "appManager.array.apps": [{"id": "a", "key": "k", "secret": "s"}]}`)
	env := map[string]string{
		"SOKETI_PORT": "6005",
		"SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
		"SOKETI_DEFAULT_APP_MAX_CONNS":              "250",
		"SOKETI_PRESENCE_MAX_MEMBERS":               "20",
		"SOKETI_NOT_A_SETTING":                      "x",
		"PATH":                                      "/bin", // not soketi's: ignored
	}
	res, err := SoketiWithEnv(file, env)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, res.YAML)
	a := cfg.Apps[0]
	if cfg.Port != 6005 || a.ID != "a" || !a.EnableClientMessages || a.MaxConnections != 250 || a.MaxPresenceMembers != 20 {
		t.Errorf("port %d, app %+v", cfg.Port, a)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "SOKETI_NOT_A_SETTING") {
		t.Errorf("warnings: %v", res.Warnings)
	}
}

func TestSoketiEnvOnly(t *testing.T) {
	res, err := SoketiWithEnv(nil, map[string]string{
		"SOKETI_DEFAULT_APP_ID": "123", "SOKETI_DEFAULT_APP_KEY": "k", "SOKETI_DEFAULT_APP_SECRET": "s",
		"SOKETI_DEFAULT_APP_WEBHOOKS": `[{"url":"https://example.com/hook","event_types":["channel_vacated"]}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := load(t, res.YAML).Apps[0]
	if a.ID != "123" || len(a.Webhooks) != 1 || a.Webhooks[0].EventTypes[0] != "channel_vacated" {
		t.Errorf("app %+v", a)
	}
}
