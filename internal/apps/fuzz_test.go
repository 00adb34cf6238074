package apps

import (
	"strings"
	"testing"
)

// FuzzDecodeRow: any settings JSON from a database row gives a valid app
// or an *InvalidError naming the app, never a panic, and never echoes the
// secret.
func FuzzDecodeRow(f *testing.F) {
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"max_connections":5}`, `{"max_connections":-5}`,
		`{"allowed_origins":["*","https://a.b"]}`, `{"activity_timeout":"30s"}`, `{"activity_timeout":30}`,
		`{"webhooks":[{"url":"https://x/y","event_types":["channel_occupied"],"headers":{"A":"b"},"timeout":"2s"}]}`,
		`{"webhooks":[{"filter":{"channel_name_starts_with":"p"}}]}`, `{"max_connections":1e400}`, `{"x":`, `"str"`} {
		f.Add("id", "key", s)
	}
	f.Fuzz(func(t *testing.T, id, key, settings string) {
		const secret = "fuzz-secret-value"
		a, err := DecodeRow(id, key, secret, true, []byte(settings))
		if err != nil {
			if _, ok := err.(*InvalidError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
			return
		}
		if errs := Validate(a); len(errs) > 0 {
			t.Fatalf("decoded app does not validate: %v", errs)
		}
		// What decodes encodes and decodes to the same app.
		enc, err := EncodeSettings(a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeRow(id, key, secret, true, enc)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if len(a.Webhooks) == 0 && len(b.Webhooks) == 0 {
			a.Webhooks, b.Webhooks = nil, nil
		}
		if ea, eb := View(a), View(b); !sameJSON(t, ea, eb) {
			t.Fatalf("round trip changed the app:\n%v\n%v", ea, eb)
		}
	})
}

// FuzzParseStoreURL: any apps_store value parses or fails without a panic,
// and neither the error nor the redacted form shows the password.
func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"config", "", "postgres://u:pw@h:5432/db?sslmode=disable", "postgresql://u:pw@/db?host=/tmp",
		"mysql://u:pw@tcp(h:3306)/db", "mysql://u:pw@h:3306/db?tls=true", "mysql://u:pw@unix(/s)/db", "sqlite:///var/x.db",
		"sqlite:rel.db", "sqlite://:memory:", "redis://x", "mysql://u:pw@h/", "postgres://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseStoreURL(raw)
		if err != nil {
			pw := passwordIn(raw)
			if pw == "" || !strings.Contains(err.Error(), pw) {
				return
			}
			// The error may spell the password's characters by chance (a
			// quoted scheme "a\xae00000" contains "0000"): it shows the
			// password only if the same URL with another password does not.
			if _, err2 := ParseStoreURL(withOtherPassword(raw, pw)); err2 == nil || !strings.Contains(err2.Error(), pw) {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if u.Password != "" && len(u.Password) > 3 && strings.Contains(u.Redacted, u.Password) {
			t.Fatalf("redacted form %q shows the password", u.Redacted)
		}
		if u.Dialect != DialectConfig && u.DSN == "" {
			t.Fatalf("%q: no DSN", raw)
		}
	})
}

// withOtherPassword is raw with the password that passwordIn finds, pw,
// replaced by a string of its length that shares no character with it.
func withOtherPassword(raw, pw string) string {
	other := strings.Repeat("Q", len(pw))
	if strings.Contains(pw, "Q") {
		other = strings.Repeat("Z", len(pw))
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	at := strings.LastIndex(rest, "@")
	user, _, _ := strings.Cut(rest[:at], ":")
	return scheme + "://" + user + ":" + other + rest[at:]
}

// passwordIn is the text between "user:" and "@" of a URL, if any.
func passwordIn(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok || len(pw) < 4 {
		return ""
	}
	return pw
}
