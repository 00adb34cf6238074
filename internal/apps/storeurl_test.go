package apps

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		raw, dialect, redacted, dsnHas string
	}{
		{"config", "config", "config", ""},
		{"", "config", "config", ""},
		{"postgres://herald:s3cr3t-pw@db:5432/apps?sslmode=disable", "postgres", "postgres://herald:xxxxx@db:5432/apps?sslmode=disable", "s3cr3t-pw"},
		{"mysql://herald:s3cr3t-pw@tcp(db:3306)/apps", "mysql", "mysql://herald:xxxxx@tcp(db:3306)/apps", "s3cr3t-pw@tcp(db:3306)/apps"},
		{"mysql://herald:s3cr3t-pw@db:3307/apps", "mysql", "mysql://herald:xxxxx@tcp(db:3307)/apps", "tcp(db:3307)"},
		{"mysql://herald@db/apps", "mysql", "mysql://herald@tcp(db:3306)/apps", "tcp(db:3306)"},
		{"sqlite:///var/lib/herald/apps.db", "sqlite", "sqlite:///var/lib/herald/apps.db", "file:/var/lib/herald/apps.db?"},
		{"sqlite:apps.db", "sqlite", "sqlite://apps.db", "file:apps.db?"},
	}
	for _, tt := range tests {
		u, err := ParseStoreURL(tt.raw)
		if err != nil {
			t.Errorf("%q: %v", tt.raw, err)
			continue
		}
		if string(u.Dialect) != tt.dialect || !strings.HasPrefix(u.Redacted, tt.redacted) || !strings.Contains(u.DSN, tt.dsnHas) {
			t.Errorf("%q = %+v", tt.raw, u)
		}
		if strings.Contains(u.Redacted, "s3cr3t") || strings.Contains(RedactStoreURL(tt.raw), "s3cr3t") {
			t.Errorf("%q: redacted form shows the password: %q", tt.raw, u.Redacted)
		}
	}
	for _, raw := range []string{"redis://u:s3cr3t-pw@h", "mysql://u:s3cr3t-pw@h:3306/", "postgres://u:s3cr3t-pw@/db", "sqlite://", "sqlite://:memory:", "nonsense", "mysql://u:s3cr3t-pw@tcp(h:3306"} {
		_, err := ParseStoreURL(raw)
		if err == nil {
			t.Errorf("%q: no error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: error shows the password: %v", raw, err)
		}
		if got := RedactStoreURL(raw); strings.Contains(got, "s3cr3t") {
			t.Errorf("RedactStoreURL(%q) = %q", raw, got)
		}
	}
}

func TestScrubHidesPasswordKeepsIs(t *testing.T) {
	err := Scrub(errors.Join(ErrNotFound, errors.New("dial postgres://u:hunter2-pw@h failed")), "hunter2-pw")
	if strings.Contains(err.Error(), "hunter2") || !errors.Is(err, ErrNotFound) {
		t.Fatalf("scrub: %v", err)
	}
}

func TestSettingsRoundTripAndDefaultsOnly(t *testing.T) {
	a := Defaults()
	a.ID, a.Key, a.Secret = "1", "k", "s"
	enc, err := EncodeSettings(&a)
	if err != nil || string(enc) != "{}" {
		t.Fatalf("defaults encode as %s, %v; want {}", enc, err)
	}
	if err := SetSetting(&a, "max_connections", "5"); err != nil {
		t.Fatal(err)
	}
	if err := SetSetting(&a, "activity_timeout", "30"); err != nil {
		t.Fatal(err)
	}
	if err := SetSetting(&a, "enable_client_messages", "yes"); err != nil {
		t.Fatal(err)
	}
	if err := SetSetting(&a, "allowed_origins", "https://a, *.b"); err != nil {
		t.Fatal(err)
	}
	if err := SetSetting(&a, "secret", "x"); err == nil {
		t.Fatal("secret is not a setting")
	}
	if err := SetSetting(&a, "max_connections", "many"); err == nil || !strings.Contains(err.Error(), "max_connections") {
		t.Fatalf("bad value: %v", err)
	}
	enc, _ = EncodeSettings(&a)
	want := `{"activity_timeout":"30s","allowed_origins":["https://a","*.b"],"enable_client_messages":true,"max_connections":5}`
	if string(enc) != want {
		t.Fatalf("encoded %s\nwant    %s", enc, want)
	}
	b, err := DecodeRow("1", "k", "s", true, enc)
	if err != nil || !sameJSON(t, View(&a), View(b)) {
		t.Fatalf("round trip: %v", err)
	}
}

// Every per-app YAML key is a setting or an identity column: a new App
// field cannot be forgotten by the stores.
func TestEveryAppKeyIsStored(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range SettingKeys() {
		keys[k] = true
	}
	for _, k := range identityKeys {
		keys[k] = true
	}
	for _, s := range Settings() {
		if s.Expect == "" {
			t.Errorf("%s has no description", s.Key)
		}
	}
	a := Defaults()
	for k := range View(&a) {
		if !keys[k] {
			t.Errorf("App key %q is neither a setting nor a column", k)
		}
	}
}
