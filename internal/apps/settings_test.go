package apps

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/settings"
)

// Every yaml field of App and of the structs within it has exactly one
// entry in its table, and every entry a field (settings.Bind checks both).
func TestTablesCoverEveryField(t *testing.T) {
	for _, bind := range []func() error{
		func() error { _, err := settings.Bind[App](AppSettings()); return err },
		func() error { _, err := settings.Bind[Webhook](WebhookSettings()); return err },
		func() error { _, err := settings.Bind[WebhookFilter](webhookFilterSettings()); return err },
		func() error { _, err := settings.Bind[LaravelRedis](laravelRedisSettings()); return err },
	} {
		if err := bind(); err != nil {
			t.Error(err)
		}
	}
}

// The CLI's and the dashboard's list of settings, the settings JSON's keys
// and the rules all come from the table.
func TestSettingsAreDerivedFromTheTable(t *testing.T) {
	var keys []string
	for _, s := range AppSettings() {
		if !slices.Contains(identityKeys, s.Key) {
			keys = append(keys, s.Key)
		}
	}
	if got := SettingKeys(); !slices.Equal(got, keys) {
		t.Errorf("SettingKeys %v, want the table's %v", got, keys)
	}
	var listed []string
	for _, s := range Settings() {
		listed = append(listed, s.Key)
		tb := settings.MustBind[App](AppSettings())
		want, _ := tb.Lookup(s.Key)
		if want.Rule.Expect != "" && s.Expect != want.Rule.Expect {
			t.Errorf("%s: Expect %q, the rule says %q", s.Key, s.Expect, want.Rule.Expect)
		}
	}
	if !slices.Equal(listed, keys) {
		t.Errorf("Settings lists %v, want %v", listed, keys)
	}

	// A webhook target's overrides: 0 keeps the server's, else the range.
	a := Defaults()
	a.ID, a.Key, a.Secret = "a", "k", "s"
	a.Webhooks = []Webhook{{URL: "http://h", EventTypes: []string{"member_added"}, BatchSize: 0, Timeout: 50 * time.Millisecond, RetryFor: 2 * time.Second}}
	errs := Validate(&a)
	if len(errs) != 1 || errs[0].Path != "webhooks[0].timeout" || !strings.Contains(errs[0].Msg, "got 50ms") {
		t.Errorf("webhook overrides: %v", errs)
	}
}

// SetSetting parses a command-line value as env and flags do, and words a
// bad one with the key's rule.
func TestSetSetting(t *testing.T) {
	a := Defaults()
	for key, raw := range map[string]string{"max_connections": "5", "activity_timeout": "60", "require_tls": "yes",
		"allowed_origins": "https://a.example, https://b.example", "laravel_redis": `{"url":"redis://h:6379/0"}`} {
		if err := SetSetting(&a, key, raw); err != nil {
			t.Errorf("%s=%s: %v", key, raw, err)
		}
	}
	want := Defaults()
	want.MaxConnections, want.ActivityTimeout, want.RequireTLS = 5, time.Minute, true
	want.AllowedOrigins = []string{"https://a.example", "https://b.example"}
	want.LaravelRedis.URL = "redis://h:6379/0"
	if !reflect.DeepEqual(a, want) {
		t.Errorf("got %+v\nwant %+v", a, want)
	}
	for key, msg := range map[string]string{
		"max_connections": `max_connections: must be -1 (unlimited) or a positive number, got "many"`,
		"id":              `"id" is not a per-app setting`,
		"nope":            `"nope" is not a per-app setting`,
		"webhooks":        "webhooks: must be a list, got an object",
	} {
		raw := "many"
		if key == "webhooks" {
			raw = "{}"
		}
		if err := SetSetting(&a, key, raw); err == nil || err.Error() != msg {
			t.Errorf("%s: err %v, want %s", key, err, msg)
		}
	}
}

// History rules are checked with the key named, and match by glob.
func TestHistoryRules(t *testing.T) {
	a := Defaults()
	a.ID, a.Key, a.Secret = "1", "k", "s"
	a.History = []HistoryRule{{Pattern: "orders-*", Size: 200, TTL: 5 * time.Minute}, {Pattern: "", Size: 0, TTL: 500 * time.Millisecond}}
	var paths []string
	for _, e := range Validate(&a) {
		paths = append(paths, e.Path)
	}
	if strings.Join(paths, ",") != "history[1].pattern,history[1].size,history[1].ttl" {
		t.Fatalf("errors at %v", paths)
	}
	var b App
	if errs := DecodeSettings([]byte(`{"history":[{"pattern":"chat-*-log","size":10,"ttl":"1h"}]}`), &b); len(errs) > 0 {
		t.Fatal(errs)
	}
	for ch, want := range map[string]bool{"chat-1-log": true, "chat--log": true, "chat-1-log2": false, "xchat-1-log": false} {
		if _, ok := b.HistoryRule(ch); ok != want {
			t.Errorf("%s: matched %v", ch, ok)
		}
	}
	if r, _ := b.HistoryRule("chat-a-log"); r.Size != 10 || r.TTL != time.Hour {
		t.Fatalf("rule %+v", r)
	}
}
